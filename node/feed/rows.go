package feed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// What a feed keeps in the store, so that a node starts without merging
// its records again and memory does not grow with the commons: per
// commons, one row per status change, per contribution and per record,
// and the counts by type. The node stores the rows with the commons' derived state
// (store.CommitDerived), in the same commit as the state they come from,
// under RowPrefix, and then says so (Saved); replays and contribution
// lists read them from there, Load reads the counts back.
//
//	's' cursor seq   → contribution digest, from, to (status codes)
//	'c' cursor       → contribution digest, author, time, arrival status, kind
//	'e' cursor       → the record's summary: digest, author, time, type, title, target, decision
//	                   (a contribution's: its title; its 'c' row has the rest)
//	'b'              → from, through: the cursors whose records have 'e' rows
//	't' cursor       → the status of the contribution at cursor, once a change moved it from the
//	                   status it arrived with (status code)
//	'm'              → from, through: the cursors whose contributions have 't' rows
//	'n'              → the counts of records by type
//
// Cursors are 8 bytes and seqs 4, big-endian, so rows sort by position.
// A feed page reads the summaries of its records in one scan of 'e' rows
// rather than each record's bytes (a lookup of its key, then of its
// value in badger's value log): at 10,000,000 records, where the
// process keeps few of the store's pages mapped, each lookup costs page
// faults. The records of a repo made before 'e' rows were (from, in the
// 'b' row, says where they begin) are read whole as before, until the
// daemon has written their rows (BackfillRows, node/backfill.go).
//
// A page gives each contribution's status now (Statuses) from the same
// kind of scans: its contribution row's arrival status, and the 't' row
// its last change wrote, keyed by the contribution's cursor, which the
// state keeps with the contribution and gives back with each change
// (crdt.State.AddAt). Looked up in the state instead, a page of 100 at
// 10,000,000 records costs 100 point reads at random places of the
// store, most of its time. The contributions of a repo made before 't'
// rows were (from, in the 'm' row, says where they begin) have no
// cursor in the state: their statuses are looked up there, as before,
// until the daemon has given them their cursors and rows
// (OlderContributions, node/backfill.go). A node reads a page's
// contribution rows and 't' rows while it reads its summary rows (Ahead):
// three scans side by side, where one after another each waited on the
// disk in turn.
const (
	rowStatus    = 's'
	rowContrib   = 'c'
	rowSummary   = 'e'
	rowSummaries = 'b'
	rowNow       = 't'
	rowStatuses  = 'm'
	rowCounts    = 'n'
)

// RowPrefix begins the keys of the feed's rows in a commons' derived
// state: Rows and CountsRow give keys without it, the node prepends it.
const RowPrefix = 'f'

func statusKey(p Pos) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte{RowPrefix, rowStatus}, p.Cursor), uint32(p.Seq))
}

func contribKey(cursor uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{RowPrefix, rowContrib}, cursor)
}

func nowKey(cursor uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{RowPrefix, rowNow}, cursor)
}

// SummaryKey returns the key, without RowPrefix, of the summary row of the
// record at cursor.
func SummaryKey(cursor uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{rowSummary}, cursor)
}

// Summary is what a feed page shows of a record, but for its status.
type Summary struct {
	Cursor                  uint64
	CID                     cid.Cid
	Type                    protocol.Type
	Author                  protocol.PublicKey
	Time                    protocol.HLC
	Title, Target, Decision string
}

// SummaryOf returns the summary of record b, merged at cursor. Its
// strings are copies: a summary held in the tail does not hold the record.
func SummaryOf(cursor uint64, b *protocol.Block) Summary {
	title, _, target, decision := describe(b.Record)
	return Summary{Cursor: cursor, CID: b.CID, Type: b.Record.Type(), Author: b.Record.Author, Time: b.Record.Time,
		Title: strings.Clone(title), Target: strings.Clone(target), Decision: strings.Clone(decision)}
}

// A summary row's value begins with its form: summaryWhole, then the
// record's digest, author and time, then its type, title, target and
// decision, each after its length (uvarint); or, for a contribution,
// summaryContrib, then its title after its length: its digest, author and
// time are in its contribution row, at the same cursor, and it has no
// target or decision. A contribution's row is about 80 bytes shorter
// than it would be whole, and more than half of a commons' records are
// contributions: those bytes are written again by each compaction.
const (
	summaryWhole   = 0
	summaryContrib = 1
)

// encodeSummary returns the value of summary s's row.
func encodeSummary(s Summary) []byte {
	if s.Type == protocol.TypeContribution && s.Target == "" && s.Decision == "" {
		return appendField(append(make([]byte, 0, 4+len(s.Title)), summaryContrib), s.Title)
	}
	return encodeWhole(s)
}

func appendField(v []byte, f string) []byte {
	return append(binary.AppendUvarint(v, uint64(len(f))), f...)
}

// encodeWhole returns the value of summary s's row in the whole form.
func encodeWhole(s Summary) []byte {
	d, _ := protocol.RecordDigest(s.CID)
	v := make([]byte, 0, 73+4+len(s.Type)+len(s.Title)+len(s.Target)+len(s.Decision))
	v = append(append(append(v, summaryWhole), d[:]...), s.Author[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(s.Time))
	for _, f := range []string{string(s.Type), s.Title, s.Target, s.Decision} {
		v = appendField(v, f)
	}
	return v
}

// decodeSummary decodes a summary row (key with RowPrefix). A
// contribution's (contrib true) lacks its CID, author and time, which its
// contribution row gives (withContrib).
func decodeSummary(k, v []byte) (s Summary, contrib, ok bool) {
	if len(k) != 10 || len(v) < 1 {
		return Summary{}, false, false
	}
	s.Cursor = binary.BigEndian.Uint64(k[2:])
	fields := func(v []byte, fs []string) bool {
		for i := range fs {
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n {
				return false
			}
			fs[i], v = string(v[w:w+int(n)]), v[w+int(n):]
		}
		return len(v) == 0
	}
	switch v[0] {
	case summaryContrib:
		var fs [1]string
		if !fields(v[1:], fs[:]) {
			return Summary{}, false, false
		}
		s.Type, s.Title = protocol.TypeContribution, fs[0]
		return s, true, true
	case summaryWhole:
		if len(v) < 73 {
			return Summary{}, false, false
		}
		s.CID, s.Author, s.Time = protocol.Digest(v[1:33]).CID(), protocol.PublicKey(v[33:65]), protocol.HLC(binary.BigEndian.Uint64(v[65:73]))
		var fs [4]string
		if !fields(v[73:], fs[:]) || fs[0] == "" {
			return Summary{}, false, false
		}
		s.Type, s.Title, s.Target, s.Decision = protocol.Type(fs[0]), fs[1], fs[2], fs[3]
		return s, false, true
	}
	return Summary{}, false, false
}

// withContrib returns contribution summary s with what contribution row c
// gives of it.
func withContrib(s Summary, c contrib) Summary {
	s.CID, s.Author, s.Time = c.con.CID(), c.author, c.time
	return s
}

// decodeStatus decodes a status row (key with RowPrefix).
func decodeStatus(k, v []byte) (statusChange, bool) {
	if len(k) != 14 || len(v) != 34 || v[32] >= uint8(len(statuses)) || v[33] >= uint8(len(statuses)) {
		return statusChange{}, false
	}
	pos := Pos{Cursor: binary.BigEndian.Uint64(k[2:]), Seq: int(binary.BigEndian.Uint32(k[10:]))}
	return statusChange{pos: pos, con: protocol.Digest(v[:32]), from: v[32], to: v[33]}, true
}

// decodeContrib decodes a contribution row (key with RowPrefix).
func decodeContrib(k, v []byte) (contrib, bool) {
	if len(k) != 10 || len(v) < 73 || v[72] >= uint8(len(statuses)) {
		return contrib{}, false
	}
	return contrib{cursor: binary.BigEndian.Uint64(k[2:]), con: protocol.Digest(v[:32]), author: protocol.PublicKey(v[32:64]),
		time: protocol.HLC(binary.BigEndian.Uint64(v[64:72])), arrival: v[72], kind: string(v[73:])}, true
}

// errDone stops a scan early.
var errDone = errors.New("done")

// statusChanges returns commons f's status changes after position from,
// through cursor last, in position order: the stored rows (through the
// saved cursor), then the tail.
func (h *Hub) statusChanges(ctx context.Context, f *commonsFeed, from Pos, last uint64) ([]statusChange, error) {
	f.mu.RLock()
	saved := f.saved
	i := sort.Search(len(f.tailStatus), func(i int) bool { return from.less(f.tailStatus[i].pos) })
	j := i + sort.Search(len(f.tailStatus)-i, func(j int) bool { return f.tailStatus[i+j].pos.Cursor > last })
	tail := slices.Clone(f.tailStatus[i:j])
	f.mu.RUnlock()
	var out []statusChange
	if upto := min(saved, last); from.Cursor <= upto {
		err := h.log.ScanDerived(ctx, f.id, []byte{RowPrefix, rowStatus}, statusKey(Pos{from.Cursor, from.Seq + 1}), func(k, v []byte) error {
			sc, ok := decodeStatus(k, v)
			if !ok {
				return fmt.Errorf("%w: commons %s: status row %x", ErrDamaged, f.id, k[1:])
			}
			if sc.pos.Cursor > upto {
				return errDone
			}
			out = append(out, sc)
			return nil
		})
		if err != nil && !errors.Is(err, errDone) {
			return nil, h.rowsErr(f, "status changes", err)
		}
	}
	return append(out, tail...), nil
}

// contribs returns up to limit of commons f's contributions after cursor
// after, through cursor last, in cursor order: the stored rows (through
// the saved cursor), then the tail.
func (h *Hub) contribs(ctx context.Context, f *commonsFeed, after, last uint64, limit int, a *Ahead) ([]contrib, error) {
	f.mu.RLock()
	saved := f.saved
	i := sort.Search(len(f.tailContribs), func(i int) bool { return f.tailContribs[i].cursor > after })
	j := i + sort.Search(len(f.tailContribs)-i, func(j int) bool { return f.tailContribs[i+j].cursor > last })
	tail := slices.Clone(f.tailContribs[i:min(j, i+limit)])
	epoch := f.epoch
	f.mu.RUnlock()
	var out []contrib
	if upto := min(saved, last); after < upto {
		var ok bool
		if out, ok = a.contribRows(ctx, f, epoch, after, upto, limit); !ok {
			var err error
			if out, err = h.scanContribs(ctx, f, after, upto, limit); err != nil {
				return nil, h.rowsErr(f, "contributions", err)
			}
		}
	}
	out = append(out, tail...)
	return out[:min(len(out), limit)], nil
}

// scanContribs returns up to limit of commons f's stored contribution
// rows after cursor after, through cursor upto, in cursor order, read in
// one scan.
func (h *Hub) scanContribs(ctx context.Context, f *commonsFeed, after, upto uint64, limit int) ([]contrib, error) {
	var out []contrib
	err := h.log.ScanDerived(ctx, f.id, []byte{RowPrefix, rowContrib}, contribKey(after+1), func(k, v []byte) error {
		c, ok := decodeContrib(k, v)
		if !ok {
			return fmt.Errorf("%w: commons %s: contribution row %x", ErrDamaged, f.id, k[1:])
		}
		if c.cursor > upto || len(out) == limit {
			return errDone
		}
		out = append(out, c)
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, err
	}
	return out, nil
}

// Summaries returns up to limit summaries of commons id's records after
// cursor after, through cursor last, in cursor order, read from the
// store's rows (and the tail): those of the records after SummariesFrom.
// A record left out of the commons' state (damaged, node/leftout.go) has
// none, and one whose bytes were dropped has none once the drop deleted
// it (node/dropdisowned.go).
func (h *Hub) Summaries(ctx context.Context, id cid.Cid, after, last uint64, limit int, a *Ahead) ([]Summary, error) {
	f := h.lookup(id)
	if f == nil || limit <= 0 {
		return nil, nil
	}
	f.mu.RLock()
	saved, epoch := f.saved, f.epoch
	i := sort.Search(len(f.tailSummaries), func(i int) bool { return f.tailSummaries[i].Cursor > after })
	j := i + sort.Search(len(f.tailSummaries)-i, func(j int) bool { return f.tailSummaries[i+j].Cursor > last })
	tail := make([]Summary, 0, min(j, i+limit)-i)
	for _, t := range f.tailSummaries[i:min(j, i+limit)] {
		tail = append(tail, t.Summary)
	}
	f.mu.RUnlock()
	var out []Summary
	var contribs []int // the contributions in out, to complete from their contribution rows
	if upto := min(saved, last); after < upto {
		err := h.log.ScanDerived(ctx, f.id, []byte{RowPrefix, rowSummary}, append([]byte{RowPrefix}, SummaryKey(after+1)...), func(k, v []byte) error {
			s, contrib, ok := decodeSummary(k, v)
			if !ok {
				return fmt.Errorf("%w: commons %s: summary row %x", ErrDamaged, f.id, k[1:])
			}
			if s.Cursor > upto || len(out) == limit {
				return errDone
			}
			if contrib {
				contribs = append(contribs, len(out))
			}
			out = append(out, s)
			return nil
		})
		if err == nil || errors.Is(err, errDone) {
			err = h.completeContribs(ctx, f, epoch, out, contribs, a)
		}
		if err != nil && !errors.Is(err, errDone) {
			return nil, h.rowsErr(f, "record summaries", err)
		}
	}
	// The tail may hold records taken back at their place (add), before
	// saved: merged in cursor order, and once only.
	merged := make([]Summary, 0, min(len(out)+len(tail), limit))
	for len(merged) < limit && (len(out) > 0 || len(tail) > 0) {
		switch {
		case len(tail) == 0 || len(out) > 0 && out[0].Cursor < tail[0].Cursor:
			merged, out = append(merged, out[0]), out[1:]
		case len(out) > 0 && out[0].Cursor == tail[0].Cursor:
			merged, out, tail = append(merged, tail[0]), out[1:], tail[1:]
		default:
			merged, tail = append(merged, tail[0]), tail[1:]
		}
	}
	return merged, nil
}

// completeContribs completes the contributions' summaries out[i], i in
// contribs (in cursor order, through commons f's saved cursor, with the
// rows and the tail as they were at f's epoch), from their contribution
// rows, read ahead (a) or in one scan.
func (h *Hub) completeContribs(ctx context.Context, f *commonsFeed, epoch uint64, out []Summary, contribs []int, a *Ahead) error {
	if len(contribs) == 0 {
		return nil
	}
	first, last := out[contribs[0]].Cursor, out[contribs[len(contribs)-1]].Cursor
	rows, ahead := a.contribRows(ctx, f, epoch, first-1, last, int(last-first+1))
	if ahead && !completes(out, contribs, rows) {
		// A commit since the rows were read ahead stored a summary row
		// the scan of summaries saw, and its contribution row after the
		// read ahead passed its place (a record taken back at its place,
		// carried by a save not yet Saved): a scan says.
		ahead = false
	}
	if !ahead {
		var err error
		if rows, err = h.scanContribs(ctx, f, first-1, last, int(last-first+1)); err != nil {
			return err
		}
	}
	next := 0
	for _, c := range rows {
		if i := contribs[next]; c.cursor == out[i].Cursor {
			out[i] = withContrib(out[i], c)
			if next++; next == len(contribs) {
				break
			}
		}
	}
	if next < len(contribs) {
		return fmt.Errorf("%w: commons %s: summary row %x of a contribution without its contribution row", ErrDamaged, f.id, SummaryKey(out[contribs[next]].Cursor))
	}
	return nil
}

// completes reports whether rows (in cursor order) hold the contribution
// row of each of the summaries out[i], i in contribs (in cursor order).
func completes(out []Summary, contribs []int, rows []contrib) bool {
	next := 0
	for _, c := range rows {
		if next < len(contribs) && c.cursor == out[contribs[next]].Cursor {
			next++
		}
	}
	return next == len(contribs)
}

// SummariesFrom returns the cursor after which commons id's records have
// summaries (Summaries): 0, unless the repo was made by a version that
// kept none, or ok false if the hub does not hold the commons.
func (h *Hub) SummariesFrom(id cid.Cid) (from uint64, ok bool) {
	return h.from(id, func(f *commonsFeed) uint64 { return f.summariesFrom })
}

// SummariesRow returns the row that says which of commons id's records
// have summary rows, for a save that stores its rows through cursor
// through: those after through, if the hub does not hold the commons.
func (h *Hub) SummariesRow(id cid.Cid, through uint64) store.Write {
	return h.savedFromRow(id, SummariesRowKey(), through, func(f *commonsFeed) uint64 { return f.summariesFrom })
}

// from returns what of commons id's feed field reads, under its lock; ok
// false if the hub does not hold the commons.
func (h *Hub) from(id cid.Cid, field func(f *commonsFeed) uint64) (uint64, bool) {
	f := h.lookup(id)
	if f == nil {
		return 0, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return field(f), true
}

// savedFromRow returns fromRow's row under key of the cursor field reads
// of commons id's feed, for a save through cursor through: through itself
// if the hub does not hold the commons.
func (h *Hub) savedFromRow(id cid.Cid, key []byte, through uint64, field func(f *commonsFeed) uint64) store.Write {
	from, ok := h.from(id, field)
	if !ok {
		from = through
	}
	return fromRow(key, from, through)
}

// fromRow is a row under key that says the records (or contributions)
// after cursor from have rows of a kind, in a state saved through cursor
// through ('b' and 'm' rows; Load reads them with readFrom).
func fromRow(key []byte, from, through uint64) store.Write {
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, from), through)
	return store.Write{Key: key, Value: v}
}

// readFrom returns the cursor fromRow's row of commons id under key gives
// in a state saved through cursor head, or head if there is no such row
// or it was saved through another cursor (by a version that kept no rows
// of its kind, which saved records since that have none).
func (h *Hub) readFrom(ctx context.Context, id cid.Cid, key []byte, what string, head uint64) (uint64, error) {
	from := head
	err := h.log.ScanDerived(ctx, id, append([]byte{RowPrefix}, key...), nil, func(k, v []byte) error {
		if len(k) != 1+len(key) || len(v) != 16 {
			return fmt.Errorf("%w: commons %s: %s row %x", ErrDamaged, id, what, k[1:])
		}
		if f, through := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]); through == head && f <= head {
			from = f
		}
		return nil
	})
	return from, err
}

// BackfillRows returns the summary rows of summaries ss, in cursor order,
// of commons id's records at or before SummariesFrom: a repo made by a
// version that kept none reads them whole until then. Each record was
// applied, so a contribution's contribution row is stored: its summary
// row then holds its title alone, as Rows writes it; one without (its
// digest differs) gets a whole row. The node saves them with
// BackfilledRow, and then says so (Backfilled).
func (h *Hub) BackfillRows(ctx context.Context, id cid.Cid, ss []Summary) ([]store.Write, error) {
	f := h.lookup(id)
	if f == nil {
		return nil, fmt.Errorf("feed: commons %s is not held", id)
	}
	stored := make(map[uint64]protocol.Digest)
	if len(ss) > 0 {
		first, last := ss[0].Cursor, ss[len(ss)-1].Cursor
		cs, err := h.contribs(ctx, f, first-1, last, int(last-first+1), nil)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			stored[c.cursor] = c.con
		}
	}
	ws := make([]store.Write, 0, len(ss))
	for _, s := range ss {
		v := encodeSummary(s)
		if d, _ := protocol.RecordDigest(s.CID); v[0] == summaryContrib && stored[s.Cursor] != d {
			v = encodeWhole(s)
		}
		ws = append(ws, store.Write{Key: SummaryKey(s.Cursor), Value: v})
	}
	return ws, nil
}

// BackfilledRow returns the row that says the records after cursor from
// have summary rows, committed with BackfillRows' rows of the records
// after from, in a state saved through cursor through.
func BackfilledRow(from, through uint64) store.Write {
	return fromRow(SummariesRowKey(), from, through)
}

// Backfilled tells the hub that the rows BackfillRows gave, from cursor
// from, are stored: the records after from have summary rows.
func (h *Hub) Backfilled(id cid.Cid, from uint64) {
	h.lower(id, func(f *commonsFeed) *uint64 { return &f.summariesFrom }, from)
}

// lower lowers the cursor field gives of commons id's feed to from, under
// its lock, if the hub holds the commons and from is lower.
func (h *Hub) lower(id cid.Cid, field func(f *commonsFeed) *uint64, from uint64) {
	if f := h.lookup(id); f != nil {
		f.mu.Lock()
		p := field(f)
		*p = min(*p, from)
		f.epoch++
		f.mu.Unlock()
	}
}

// StatusesFrom returns the cursor after which commons id's contributions
// have their statuses in the rows (Statuses): 0, unless the repo was made
// by a version that kept none; ok false if the hub does not hold the
// commons.
func (h *Hub) StatusesFrom(id cid.Cid) (from uint64, ok bool) {
	return h.from(id, func(f *commonsFeed) uint64 { return f.statusesFrom })
}

// StatusesRow returns the row that says which of commons id's
// contributions have their status in the rows (Statuses), for a save that
// stores its rows through cursor through: those after through, if the hub
// does not hold the commons.
func (h *Hub) StatusesRow(id cid.Cid, through uint64) store.Write {
	return h.savedFromRow(id, StatusesRowKey(), through, func(f *commonsFeed) uint64 { return f.statusesFrom })
}

// Older is a contribution of a repo made by a version that kept no 't'
// rows, as OlderContributions reads it from its contribution row.
type Older struct {
	Cursor  uint64
	CID     cid.Cid
	Arrival crdt.Status // the status it arrived with ("" if the row does not say)
}

// OlderContributions returns commons id's contributions after cursor
// after through cursor last, in cursor order, from their contribution
// rows: those through StatusesFrom have no 't' row, and their status is
// looked up in the state until the node has placed them (crdt.State.Place)
// and saved a NowRow for each whose status moved, with
// StatusesBackfilledRow.
func (h *Hub) OlderContributions(ctx context.Context, id cid.Cid, after, last uint64) ([]Older, error) {
	f := h.lookup(id)
	if f == nil {
		return nil, fmt.Errorf("feed: commons %s is not held", id)
	}
	if last <= after {
		return nil, nil
	}
	cs, err := h.contribs(ctx, f, after, last, int(last-after), nil)
	if err != nil {
		return nil, err
	}
	out := make([]Older, len(cs))
	for i, c := range cs {
		out[i] = Older{Cursor: c.cursor, CID: c.con.CID(), Arrival: statuses[c.arrival]}
	}
	return out, nil
}

// NowRow returns the 't' row, without RowPrefix, that says the
// contribution at cursor has status now.
func NowRow(cursor uint64, now crdt.Status) store.Write {
	return store.Write{Key: nowKey(cursor)[1:], Value: []byte{statusCode(now)}}
}

// StatusesBackfilledRow returns the row that says the contributions after
// cursor from have their statuses in the rows, committed with the places
// and NowRows of those after from that OlderContributions gave, in a
// state saved through cursor through.
func StatusesBackfilledRow(from, through uint64) store.Write {
	return fromRow(StatusesRowKey(), from, through)
}

// StatusesBackfilled tells the hub that the rows of StatusesBackfilledRow
// for cursor from are stored: the contributions after from have their
// statuses in the rows.
func (h *Hub) StatusesBackfilled(id cid.Cid, from uint64) {
	h.lower(id, func(f *commonsFeed) *uint64 { return &f.statusesFrom }, from)
}

// StatusesRowKey is the key, without RowPrefix, of StatusesRow's row.
func StatusesRowKey() []byte { return []byte{rowStatuses} }

// Statuses returns the status now of commons id's contributions at
// cursors (ascending), from the rows: the status its last change set
// ('t' rows, then the tail's), or else the status it arrived with (its
// contribution row). It is "" where the rows do not say: a contribution
// at or before the cursor the 'm' row gives (a repo made by a version
// that kept no 't' rows), or one without its contribution row. The
// caller asks the state for those.
func (h *Hub) Statuses(ctx context.Context, id cid.Cid, cursors []uint64, a *Ahead) ([]crdt.Status, error) {
	out := make([]crdt.Status, len(cursors))
	// The store's rows are those of the saves gathered before the tail
	// was taken, and the tail the statuses set since, if no save gathered
	// rows meanwhile (it may be stored before the tail lets them go) and
	// the feed was not loaded again: read again if one was. Saves come
	// every second or so at most, a read takes milliseconds.
	for range statusReads {
		f := h.lookup(id)
		if f == nil {
			return out, nil
		}
		f.mu.RLock()
		skip := sort.Search(len(cursors), func(i int) bool { return cursors[i] > f.statusesFrom })
		cs := cursors[skip:]
		if len(cs) == 0 {
			f.mu.RUnlock()
			return out, nil
		}
		var tail []nowChange
		for _, c := range f.tailNow {
			if c.at >= cs[0] && c.at <= cs[len(cs)-1] {
				tail = append(tail, c)
			}
		}
		gathered, epoch := f.gathered, f.epoch
		f.mu.RUnlock()
		now, err := h.statuses(ctx, f, cs, tail, epoch, a)
		if err != nil {
			return nil, err
		}
		f.mu.RLock()
		same := f.gathered == gathered
		f.mu.RUnlock()
		if same && h.lookup(id) == f { // and not loaded again meanwhile (a leave, a join)
			copy(out[skip:], now)
			return out, nil
		}
	}
	return out, nil // saves came too often: the caller asks the state
}

// statusReads is how many times Statuses reads the rows before it leaves
// the statuses to the caller.
const statusReads = 3

// statuses returns the statuses of commons f's contributions at cursors
// (ascending), from the stored rows (read ahead, a, or scanned) and then
// the tail's statuses, taken at f's epoch, or "" where they do not say.
func (h *Hub) statuses(ctx context.Context, f *commonsFeed, cursors []uint64, tail []nowChange, epoch uint64, a *Ahead) ([]crdt.Status, error) {
	first, last := cursors[0], cursors[len(cursors)-1]
	codes := make([]uint8, len(cursors))
	known := make([]bool, len(cursors))
	cs, err := h.contribs(ctx, f, first-1, last, int(last-first+1), a)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if j, ok := slices.BinarySearch(cursors, c.cursor); ok {
			codes[j], known[j] = c.arrival, true
		}
	}
	now, ok := a.nowRows(ctx, f, epoch, first, last)
	if !ok {
		if now, err = h.scanNow(ctx, f, first, last); err != nil {
			return nil, h.rowsErr(f, "statuses", err)
		}
	}
	for _, r := range now {
		if j, ok := slices.BinarySearch(cursors, r.cursor); ok && known[j] {
			codes[j] = r.code
		}
	}
	for _, c := range tail {
		if j, ok := slices.BinarySearch(cursors, c.at); ok && known[j] {
			codes[j] = c.to
		}
	}
	out := make([]crdt.Status, len(cursors))
	for j, code := range codes {
		if known[j] {
			out[j] = statuses[code]
		}
	}
	return out, nil
}

// SummariesRowKey is the key, without RowPrefix, of SummariesRow's row.
func SummariesRowKey() []byte { return []byte{rowSummaries} }

// OnDamaged sets fn to be called, from any goroutine, when a read finds a
// stored row of commons id that does not decode (err wraps ErrDamaged).
// Call it before the hub is used.
func (h *Hub) OnDamaged(fn func(id cid.Cid, err error)) { h.damaged = fn }

// rowsErr wraps a read's error, and reports a damaged row.
func (h *Hub) rowsErr(f *commonsFeed, what string, err error) error {
	if errors.Is(err, ErrDamaged) && h.damaged != nil {
		h.damaged(f.id, err)
	}
	return fmt.Errorf("feed: read the %s: %w", what, err)
}

// Saved tells the hub that commons id's rows through cursor are in the
// store, and the summaries of its tail up to mark (Mark, when the save
// gathered its rows): it stops holding them. The node calls it after each
// save. (A record taken back at its place, before cursor, after the save
// gathered its rows, is not in it: its summary stays in the tail.)
func (h *Hub) Saved(id cid.Cid, cursor, mark uint64) {
	f := h.lookup(id)
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Trimmed even when cursor is not past f.saved: a record taken back
	// at its place in the log (node/leftout.go) may lie there.
	f.saved = max(f.saved, cursor)
	f.epoch++
	i := sort.Search(len(f.tailStatus), func(i int) bool { return f.tailStatus[i].pos.Cursor > cursor })
	f.tailStatus = slices.Delete(f.tailStatus, 0, i)
	i = sort.Search(len(f.tailContribs), func(i int) bool { return f.tailContribs[i].cursor > cursor })
	f.tailContribs = slices.Delete(f.tailContribs, 0, i)
	f.tailSummaries = slices.DeleteFunc(f.tailSummaries, func(t tailSummary) bool { return t.n <= mark })
	f.tailNow = slices.DeleteFunc(f.tailNow, func(c nowChange) bool { return c.n <= mark })
}

// tailSummary is a summary in the tail, the nth added.
type tailSummary struct {
	Summary
	n uint64
}

// Mark returns what a save of commons id's rows, gathered now, carries of
// its tail of summaries and statuses, for Saved, and counts the save for
// Statuses. One writer at a time (the node's event loop, as Added).
func (h *Hub) Mark(id cid.Cid) uint64 {
	f := h.lookup(id)
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gathered++
	return f.added
}

// nowRow reports whether change ch, caused by a, gets a 't' row: every
// change of a contribution added with its cursor (crdt.Change.Pos) but
// its arrival with a, which its contribution row holds.
func nowRow(a Applied, ch Change) bool {
	return ch.Pos != 0 && (ch.From != "" || ch.Contribution != a.Block.CID)
}

// Rows returns the rows the records just applied add (see Load).
func Rows(done []Applied) []store.Write {
	var ws []store.Write
	for _, a := range done {
		if a.Cursor == 0 {
			continue
		}
		k := 0
		var arrival uint8
		for _, ch := range a.Changes {
			if ch.From == "" {
				if ch.Contribution == a.Block.CID {
					arrival = statusCode(ch.To)
				}
				continue
			}
			k++
			d, _ := protocol.RecordDigest(ch.Contribution)
			key := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64([]byte{rowStatus}, a.Cursor), uint32(k))
			v := append(d[:], statusCode(ch.From), statusCode(ch.To))
			ws = append(ws, store.Write{Key: key, Value: v})
		}
		for _, ch := range a.Changes {
			if nowRow(a, ch) {
				// A later change of the same contribution, in this call or a
				// later one of the same save, writes over it.
				ws = append(ws, NowRow(ch.Pos, ch.To))
			}
		}
		if c := a.Block.Record.Contribution(); c != nil {
			d, _ := protocol.RecordDigest(a.Block.CID)
			r := a.Block.Record
			v := append(d[:], r.Author[:]...)
			v = binary.BigEndian.AppendUint64(v, uint64(r.Time))
			v = append(append(v, arrival), c.Kind...)
			ws = append(ws, store.Write{Key: binary.BigEndian.AppendUint64([]byte{rowContrib}, a.Cursor), Value: v})
		}
		ws = append(ws, store.Write{Key: SummaryKey(a.Cursor), Value: encodeSummary(SummaryOf(a.Cursor, a.Block))})
	}
	return ws
}

// CountsRow returns the row of commons id's counts by type, as they stand.
func (h *Hub) CountsRow(id cid.Cid) store.Write {
	var v []byte
	if f := h.lookup(id); f != nil {
		f.mu.RLock()
		for t, n := range f.counts {
			v = binary.AppendUvarint(v, uint64(len(t)))
			v = append(v, t...)
			v = binary.AppendUvarint(v, n)
		}
		f.mu.RUnlock()
	}
	return store.Write{Key: []byte{rowCounts}, Value: v}
}

// ErrDamaged is wrapped by Load's error when a stored row does not decode.
var ErrDamaged = errors.New("feed: a stored row is damaged")

// Unload forgets commons id's feed (a node that found its rows damaged
// loads them again; a node that leaves the commons). Its subscriptions end
// with ErrGone.
func (h *Hub) Unload(id cid.Cid) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.commons[id]; f != nil {
		close(f.gone)
		delete(h.commons, id)
	}
}

// Load opens commons id's feed, which must be empty, from its rows: the
// feed of the records up to cursor head, whose rows are all stored, as
// Added would have made it. It reads the counts and the rows at head, not
// every row: the others are read when a replay or a list needs them.
func (h *Hub) Load(ctx context.Context, id cid.Cid, head uint64) error {
	f := h.feed(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.head != (Pos{}) {
		return fmt.Errorf("feed: load commons %s: its feed is not empty", id)
	}
	bad := func(what string, k []byte) error {
		return fmt.Errorf("%w: commons %s: %s row %x", ErrDamaged, id, what, k[1:])
	}
	f.head = Pos{Cursor: head}
	// The head's status changes give its last position; a row past the
	// head is not a state the node wrote.
	err := h.log.ScanDerived(ctx, id, []byte{RowPrefix, rowStatus}, statusKey(Pos{Cursor: head}), func(k, v []byte) error {
		sc, ok := decodeStatus(k, v)
		if !ok || sc.pos.Cursor > head {
			return bad("status", k)
		}
		f.head = sc.pos
		return nil
	})
	if err == nil {
		err = h.log.ScanDerived(ctx, id, []byte{RowPrefix, rowContrib}, contribKey(head), func(k, v []byte) error {
			if c, ok := decodeContrib(k, v); !ok || c.cursor > head {
				return bad("contribution", k)
			}
			return nil
		})
	}
	if err == nil {
		err = h.log.ScanDerived(ctx, id, []byte{RowPrefix, rowCounts}, nil, func(k, v []byte) error {
			for len(v) > 0 {
				n, w := binary.Uvarint(v)
				if w <= 0 || uint64(len(v)-w) < n {
					return bad("counts", k)
				}
				t := protocol.Type(v[w : w+int(n)])
				v = v[w+int(n):]
				c, w := binary.Uvarint(v)
				if w <= 0 {
					return bad("counts", k)
				}
				v = v[w:]
				f.counts[t] = c
			}
			return nil
		})
	}
	// The summary and status rows begin after the head of a repo made by
	// a version that kept none, and after the head too when one such
	// version saved records since (they hold none): through is not the
	// head then.
	f.summariesFrom, f.statusesFrom = head, head
	if err == nil {
		f.summariesFrom, err = h.readFrom(ctx, id, SummariesRowKey(), "summaries", head)
	}
	if err == nil {
		f.statusesFrom, err = h.readFrom(ctx, id, StatusesRowKey(), "statuses", head)
	}
	if err != nil {
		f.head = Pos{}
		return fmt.Errorf("feed: load commons %s: %w", id, err)
	}
	f.saved = head
	f.pub = f.head
	return nil
}
