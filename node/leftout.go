package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// Records left out as damaged.
//
// Deriving a commons' state reads its records from the store (replay: at
// the first start of a version with other rules, after a crash, or when
// the derived state is found damaged). A record whose stored bytes no
// longer hash to its CID cannot be applied; stopping there would keep the
// node from starting at all. It is left out instead: the state is that of
// the commons without it, and a mark in the derived state (prefixLeftOut,
// committed with the cursor past it) remembers it. Being missing, it is
// what the next sync with a peer that holds it asks for; the peer's copy
// comes through ingest like any record, and PutRecords writes its bytes
// in place of the damaged ones. A start reads the marks: a record mended
// meanwhile (commons repo repair --from) is applied then, and those still
// damaged are named in the log. A record taken back is applied at its
// place in the log: the feed counts it and stores its rows there, but
// publishes no event, having passed that place. Reads of the feed log
// (readFeed: the API's feed pages, subscriptions replaying, export) leave
// out the records left out, rather than fail at them.
const prefixLeftOut = 'l'

func leftOutKey(c cid.Cid) []byte { return append([]byte{prefixLeftOut}, c.Bytes()...) }

// unreadable is a record of a feed log that a read could not give whole:
// stored damaged, or dropped (DropRecordBytes: the commons disowned it).
type unreadable struct {
	c       cid.Cid
	cursor  uint64
	dropped bool
}

// leaveOut marks a record found damaged or dropped while rep's records
// were replayed, and moves the state's cursor past it. Before the loop
// runs. A dropped record is left out as a damaged one is, and taken back
// the same way: the state derived again lacks it, and so its next sync
// with a peer that kept it takes it again.
func (n *Node) leaveOut(rep *replica, u unreadable) {
	say := n.log.Debug
	if rep.leftNow < leftOutNamed {
		say = n.log.Warn
	}
	what := "a stored record is damaged: it is left out of the commons' state until a peer that holds it sends it again (or, with the daemon stopped, commons repo repair --from a file a peer exported)"
	if u.dropped {
		what = "a record whose bytes were dropped (its author's key banned) cannot be derived again: it is left out of the commons' state until a peer that kept it sends it again"
	}
	say(what, "commons", rep.id, "record", u.c, "cursor", u.cursor)
	rep.unsaved.marks = append(rep.unsaved.marks, store.Write{Key: leftOutKey(u.c), Value: binary.BigEndian.AppendUint64(nil, u.cursor)})
	rep.unsaved.applied = max(rep.unsaved.applied, u.cursor)
	rep.leftNow++
}

// leftOutNamed is how many records left out a start names at Warn, one
// line each; the rest are counted.
const leftOutNamed = 10

// leftOut is a record of rep left out as damaged.
type leftOut struct {
	c      cid.Cid
	cursor uint64
}

// leftOutChunk is how many marks of records left out as damaged a start
// reads, and how many of their records it holds, at once: a repair may
// have mended any number of them.
var leftOutChunk = 1024 // a variable for tests

// readLeftOut returns up to limit of the records of rep left out as
// damaged, from the mark whose key is from on (nil: the first), and the
// key to read the next from (nil once it read the last).
func (n *Node) readLeftOut(ctx context.Context, rep *replica, from []byte, limit int) ([]leftOut, []byte, error) {
	var out []leftOut
	var next []byte
	err := n.st.ScanDerived(ctx, rep.id, []byte{prefixLeftOut}, from, func(k, v []byte) error {
		if len(out) == limit {
			next = append([]byte(nil), k...)
			return errFull
		}
		c, err := cid.Cast(k[1:])
		if err != nil || len(v) != 8 {
			return fmt.Errorf("%w: the mark of a record left out as damaged (%x) does not decode", crdt.ErrDamaged, k)
		}
		out = append(out, leftOut{c, binary.BigEndian.Uint64(v)})
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, nil, fmt.Errorf("node: read the records of commons %s left out as damaged: %w", rep.id, err)
	}
	return out, next, nil
}

// errFull stops a scan that has read as much as it was asked.
var errFull = errors.New("read as much as asked")

// applyLeftOut applies the records of rep left out as damaged that the
// store now holds whole, drops the marks of those the state holds, and
// names in the log those still damaged; leftOutChunk marks at a time,
// each chunk saved before the next is read. At start, before the loop
// runs.
func (n *Node) applyLeftOut(ctx context.Context, rep *replica) error {
	defer func() { rep.leftNow = 0 }()
	var from []byte
	applied, damaged, first := 0, 0, ""
	for {
		marks, next, err := n.readLeftOut(ctx, rep, from, leftOutChunk)
		if err != nil {
			return err
		}
		if len(marks) == 0 {
			if from == nil {
				return nil // none at all: nothing to save
			}
			break
		}
		var blocks []*protocol.Block
		var cursors []uint64
		for _, m := range marks {
			if rep.state.Has(m.c) {
				rep.unsaved.marks = append(rep.unsaved.marks, store.Write{Key: leftOutKey(m.c), Delete: true})
				continue
			}
			raw, err := n.st.GetRecord(ctx, m.c)
			if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrDropped) {
				if damaged++; first == "" {
					first = m.c.String()
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("node: read record %s of commons %s, left out as damaged: %w", m.c, rep.id, err)
			}
			b, err := protocol.ParseStored(m.c, raw)
			if err != nil {
				return fmt.Errorf("node: record %s of commons %s, left out as damaged: %w", m.c, rep.id, err)
			}
			blocks = append(blocks, b)
			cursors = append(cursors, m.cursor)
			rep.unsaved.marks = append(rep.unsaved.marks, store.Write{Key: leftOutKey(m.c), Delete: true})
		}
		if len(blocks) > 0 {
			done, err := n.apply(rep, blocks, cursors, false)
			if err != nil {
				return fmt.Errorf("node: load commons %s: %w", rep.id, err)
			}
			n.feeds.Added(rep.id, done, false)
			applied += len(blocks)
		}
		if next == nil {
			break
		}
		if err := n.saveNow(ctx, rep); err != nil {
			return err
		}
		from = next
	}
	if applied > 0 {
		n.log.Info("records left out as damaged are whole again in the store: applied", "commons", rep.id, "records", applied)
	}
	rep.leftOut = damaged
	if damaged > min(rep.leftNow, leftOutNamed) { // more than this start named
		n.log.Warn("stored records are damaged or dropped, and left out of the commons' state until a peer that holds them sends them again (or, with the daemon stopped, commons repo repair --from a file a peer exported)",
			"commons", rep.id, "records", damaged, "first", first)
	}
	return n.saveNow(ctx, rep)
}

// takenBack is called for a record that was stored already yet not in
// rep's state, about to be applied: if it was left out as damaged (the
// store has just written this copy in place of the damaged bytes), it
// drops the mark and returns the record's cursor; otherwise 0. Loop only
// (also while the node closes: it reads with a context of its own).
func (n *Node) takenBack(rep *replica, c cid.Cid) uint64 {
	v, err := n.st.GetDerived(context.Background(), rep.id, leftOutKey(c))
	if err != nil || len(v) != 8 {
		return 0
	}
	rep.unsaved.marks = append(rep.unsaved.marks, store.Write{Key: leftOutKey(c), Delete: true})
	rep.leftOut = max(rep.leftOut-1, 0)
	n.log.Info("a record left out as damaged came again, whole: the store holds it whole again, and it is applied", "commons", rep.id, "record", c)
	return binary.BigEndian.Uint64(v)
}

// readFeed is the store's Feed, less the records left out as damaged and
// those dropped (the commons disowned them): a page that reaches one holds
// the records before and after it. A damaged record not left out (damaged
// since it was applied) fails the read, as the store's does.
func (n *Node) readFeed(ctx context.Context, id cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	return n.readFeedKeeping(ctx, id, after, limit, false)
}

// readFeedKeeping is readFeed, keeping the dropped records in its pages,
// marked, if keep is set.
func (n *Node) readFeedKeeping(ctx context.Context, id cid.Cid, after uint64, limit int, keep bool) ([]store.Stored, error) {
	whole, _, err := n.feedPast(ctx, id, after, limit, func(u unreadable, err error) error {
		if u.dropped {
			if keep {
				return errKeep
			}
			return nil
		}
		if v, merr := n.st.GetDerived(ctx, id, leftOutKey(u.c)); merr != nil || v == nil {
			return err
		}
		return nil
	})
	return whole, err
}

// replayPage reads up to limit records of commons id's feed log after
// cursor after, for replay: the whole ones, the damaged and dropped ones
// among them (to be left out), and the cursor it reached.
func (n *Node) replayPage(ctx context.Context, id cid.Cid, after uint64, limit int) (whole []store.Stored, damaged []unreadable, next uint64, err error) {
	whole, next, err = n.feedPast(ctx, id, after, limit, func(u unreadable, _ error) error {
		damaged = append(damaged, u)
		if len(damaged) == limit {
			return errStop // a page of them
		}
		return nil
	})
	if err != nil {
		return nil, nil, after, err
	}
	n.streamed.Add(int64(len(whole) + len(damaged)))
	return whole, damaged, next, nil
}

// errKeep, returned by feedPast's pass for a dropped record, keeps it in
// the page, marked.
var errKeep = errors.New("keep")

// feedPage is the fewest entries feedPast reads from the store at once
// once it has met dropped records, so that a long run of them costs few
// reads.
const feedPage = 256

// feedPast reads up to limit whole records of commons id's feed log after
// cursor after, and returns them and the cursor it reached. It hands each
// damaged or dropped record it meets to pass, with the store's error, and
// goes past it if pass returns nil, or keeps it (a dropped one) if pass
// returns errKeep; it stops there if pass returns errStop, and fails with
// any other error.
func (n *Node) feedPast(ctx context.Context, id cid.Cid, after uint64, limit int, pass func(unreadable, error) error) ([]store.Stored, uint64, error) {
	var whole []store.Stored
	passed := false // met a dropped record it left out
	for len(whole) < limit {
		want := limit - len(whole)
		if passed {
			want = max(want, feedPage)
		}
		page, err := n.st.Feed(ctx, id, after, want)
		var dmg *store.DamagedRecordError
		if errors.As(err, &dmg) && dmg.Cursor > after {
			// The records before the damaged one, then the damaged one.
			if page, err = n.st.Feed(ctx, id, after, int(dmg.Cursor-after-1)); err != nil {
				return nil, after, err
			}
		} else if err != nil {
			return nil, after, err
		} else {
			dmg = nil
		}
		for _, s := range page {
			if len(whole) == limit {
				return whole, after, nil
			}
			if !s.Dropped {
				whole, after = append(whole, s), s.Cursor
				continue
			}
			err := pass(unreadable{c: s.CID, cursor: s.Cursor, dropped: true}, &store.DroppedRecordError{CID: s.CID})
			switch {
			case errors.Is(err, errKeep):
				whole = append(whole, s)
			case err == nil:
				passed = true
			case errors.Is(err, errStop):
				return whole, s.Cursor, nil
			case err != nil:
				return nil, after, err
			}
			after = s.Cursor
		}
		if dmg != nil {
			if len(whole) == limit {
				break
			}
			after = dmg.Cursor
			if err := pass(unreadable{c: dmg.CID, cursor: dmg.Cursor}, dmg); errors.Is(err, errStop) {
				break
			} else if err != nil {
				return nil, after, err
			}
			continue
		}
		if len(page) < want {
			break // the end of the log
		}
	}
	return whole, after, nil
}

// feedLog is the feed hub's store: the node's, its feed log read through
// readFeed, keeping the dropped records marked (the feed's rows name
// them).
type feedLog struct {
	store.Store
	n *Node
}

func (l feedLog) Feed(ctx context.Context, id cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	page, err := l.n.readFeedKeeping(ctx, id, after, limit, true)
	l.n.streamed.Add(int64(len(page))) // a live feed's replay, read in bulk
	return page, err
}

// wholeRecords reads records cs one at a time, for a sync to send: a
// damaged one is left out (nil), and noted (recordDamaged). A peer
// forgets what it wanted and did not get at the end of the turn (SPEC
// §11.4), so a damaged record costs a session no more than its own
// absence, and the peer takes it from another.
func (n *Node) wholeRecords(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	raws := make([][]byte, len(cs))
	for i, c := range cs {
		raw, err := n.st.GetRecord(ctx, c)
		switch {
		case errors.Is(err, store.ErrDropped):
			// Not sent: the commons disowned it.
		case errors.Is(err, store.ErrCorrupt):
			n.recordDamaged(c, err)
		case err != nil:
			return nil, err
		default:
			raws[i] = raw
		}
	}
	return raws, nil
}

// recordDamaged logs, at Warn the first time for each (of the last
// maxDamagedRecords), that a record the state holds is stored damaged.
// It is not sent to peers; commons repo repair drops the derived state,
// and the next start leaves the record out and takes it again from a
// peer.
func (n *Node) recordDamaged(c cid.Cid, err error) {
	n.damagedMu.Lock()
	seen := n.damagedRecords[c]
	if !seen {
		if len(n.damagedRecords) >= maxDamagedRecords {
			clear(n.damagedRecords)
		}
		n.damagedRecords[c] = true
	}
	n.damagedMu.Unlock()
	say := n.log.Debug
	if !seen {
		say = n.log.Warn
	}
	say("a stored record is damaged: it is not sent to peers (with the daemon stopped, commons repo repair; the next start then takes it again from a peer)", "record", c, "err", err)
}

// maxDamagedRecords bounds the damaged records recordDamaged remembers.
const maxDamagedRecords = 1024
