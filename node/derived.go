package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/store"
)

// The derived state on disk.
//
// What a commons' records imply (package crdt's standing of every record,
// and the feed's status changes and contribution rows, node/feed) lives in
// the store's derived state of that commons, beside the records, under two
// prefixes: prefixCRDT for the crdt.State's KV, prefixFeed for the feed's
// rows. The loop applies a committed batch of records to the states, then
// hands what that implies to the committer, which commits it with the
// cursor through which the commons' records are now reflected
// (store.CommitDerived, all or nothing). So the derived state on disk is
// always that of a prefix of the feed log: never an effect without its
// record. A crash between the two commits leaves records after that
// cursor, which the next start applies again before anything reads the
// state (loadReplica), as it does for a repo written before the derived
// state was stored.
const (
	prefixCRDT = 'c'
	prefixFeed = 'f'
)

// storeKV is a commons' crdt.KV: its derived state in the store, under a
// prefix.
type storeKV struct {
	st     store.Store
	id     cid.Cid
	prefix byte
}

func (kv storeKV) key(k []byte) []byte { return append([]byte{kv.prefix}, k...) }

func (kv storeKV) Get(key []byte) ([]byte, error) {
	return kv.st.GetDerived(context.Background(), kv.id, kv.key(key))
}

func (kv storeKV) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return kv.st.ScanDerived(context.Background(), kv.id, kv.key(prefix), func(k, v []byte) error { return fn(k[1:], v) })
}

// unsaved is what a replica derived and has not committed yet: the
// state's Readies and the feed's rows, oldest first, and the cursor of the
// last record applied.
type unsaved struct {
	readies []*crdt.Ready
	rows    []store.Write
	applied uint64
}

func (u *unsaved) empty() bool { return len(u.readies) == 0 && len(u.rows) == 0 }

// openState opens a commons' state from the store.
func (n *Node) openState(id cid.Cid) (*crdt.State, error) {
	s, err := crdt.Open(id, storeKV{st: n.st, id: id, prefix: prefixCRDT}, storeRecords{n.st})
	if err != nil {
		return nil, fmt.Errorf("node: open the derived state of commons %s: %w", id, err)
	}
	return s, nil
}

// derive takes what applying records to rep implied, for the next save.
// done are the records applied, whose last cursor is now reflected.
func (n *Node) derive(rep *replica, done []feed.Applied) error {
	r, err := rep.state.Ready()
	if err != nil {
		return err
	}
	if r != nil {
		rep.unsaved.readies = append(rep.unsaved.readies, r)
	}
	rep.unsaved.rows = append(rep.unsaved.rows, feed.Rows(done)...)
	for _, a := range slices.Backward(done) {
		if a.Cursor > 0 {
			rep.unsaved.applied = max(rep.unsaved.applied, a.Cursor)
			break
		}
	}
	return nil
}

// saving is one save: per replica, how many of its readies and rows it
// carries.
type saving struct {
	rep           *replica
	readies, rows int
	derived       store.Derived
}

// saveBatch returns a batch that commits every replica's unsaved derived
// state, or nil if there is none. Loop only.
func (n *Node) saveBatch() *batch {
	var b *batch
	for _, id := range n.order {
		rep := n.commons[id]
		if rep == nil || rep.unsaved.empty() {
			continue
		}
		if b == nil {
			b = &batch{save: true}
		}
		b.saves = append(b.saves, n.saving(rep))
	}
	return b
}

func (n *Node) saving(rep *replica) saving {
	u := &rep.unsaved
	sv := saving{rep: rep, readies: len(u.readies), rows: len(u.rows)}
	d := store.Derived{Commons: rep.id, Applied: u.applied}
	for _, r := range u.readies {
		for _, w := range r.Writes {
			d.Writes = append(d.Writes, store.Write{Key: append([]byte{prefixCRDT}, w.Key...), Value: w.Value, Delete: w.Delete})
		}
	}
	for _, w := range u.rows {
		d.Writes = append(d.Writes, store.Write{Key: append([]byte{prefixFeed}, w.Key...), Value: w.Value, Delete: w.Delete})
	}
	c := n.feeds.CountsRow(rep.id)
	d.Writes = append(d.Writes, store.Write{Key: append([]byte{prefixFeed}, c.Key...), Value: c.Value},
		store.Write{Key: versionKey, Value: []byte(derivedVersion())})
	sv.derived = d
	return sv
}

// saved handles a save the committer is done with: on success the states
// stop holding what it carried; on failure it stays, to go with the next
// save. Loop only.
func (n *Node) saved(b *batch) {
	n.savingNow = false
	if b.err != nil {
		n.log.Error("the derived state could not be stored: it is kept in memory and stored with the next save (a restart derives it again from the records)", "err", b.err)
		n.saveRetry = time.Now().Add(time.Second)
		return
	}
	for _, sv := range b.saves {
		u := &sv.rep.unsaved
		for _, r := range u.readies[:sv.readies] {
			sv.rep.state.Advance(r)
		}
		u.readies = slices.Delete(u.readies, 0, sv.readies)
		u.rows = slices.Delete(u.rows, 0, sv.rows)
	}
}

// commitSave commits a save batch (committer only).
func (n *Node) commitSave(b *batch) {
	ds := make([]store.Derived, len(b.saves))
	for i, sv := range b.saves {
		ds[i] = sv.derived
	}
	if err := n.st.CommitDerived(context.Background(), ds); err != nil {
		b.err = fmt.Errorf("node: store derived state: %w", err)
	}
}

// saveNow commits every replica's unsaved derived state and waits (before
// the loop runs, or after it stopped).
func (n *Node) saveNow(ctx context.Context) error {
	b := n.saveBatch()
	if b == nil {
		return nil
	}
	n.commitSave(b)
	n.saved(b)
	return b.err
}

// derivedLayout numbers the layout of the derived state this version
// writes (crdt's keys and the feed's rows, under their prefixes). A stored
// state of another layout, or derived under other authority rules
// (crdt.RulesVersion), is dropped and derived again from the records.
const derivedLayout = 1

// versionKey is the derived-state key of the layout and rules it was
// written under.
var versionKey = []byte{'v'}

func derivedVersion() string {
	return fmt.Sprintf("layout %d, rules %d", derivedLayout, crdt.RulesVersion)
}

// derivedCurrent reports whether a commons' stored derived state was
// written under this version's layout and rules.
func (n *Node) derivedCurrent(ctx context.Context, id cid.Cid) (bool, error) {
	v, err := n.st.GetDerived(ctx, id, versionKey)
	if err != nil {
		return false, fmt.Errorf("node: read the derived state of commons %s: %w", id, err)
	}
	if string(v) == derivedVersion() {
		return true, nil
	}
	n.log.Info("the derived state of a commons was written by another version: deriving it again from the records", "commons", id, "stored", string(v), "now", derivedVersion())
	return false, nil
}

// dropDerived deletes a commons' stored derived state.
func (n *Node) dropDerived(ctx context.Context, id cid.Cid) error {
	var ws []store.Write
	err := n.st.ScanDerived(ctx, id, nil, func(k, _ []byte) error {
		ws = append(ws, store.Write{Key: slices.Clone(k), Delete: true})
		return nil
	})
	if err == nil {
		err = n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Writes: ws}})
	}
	if err != nil {
		return fmt.Errorf("node: drop the derived state of commons %s: %w", id, err)
	}
	return nil
}
