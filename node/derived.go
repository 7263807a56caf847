package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/store"
)

// The derived state on disk.
//
// What a commons' records imply (package crdt's standing of every record,
// the feed's status changes and contribution rows, node/feed, and the
// blobs the records reference, blobrefs.go) lives in the store's derived
// state of that commons, beside the records, under three prefixes:
// prefixCRDT for the crdt.State's KV, prefixFeed for the feed's rows,
// prefixBlob for the blob references (and prefixLeftOut for records left
// out as damaged, leftout.go). The loop applies a committed batch of records to the states, then
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
	prefixFeed = feed.RowPrefix
	prefixBlob = 'b'
)

// storeKV is a commons' crdt.KV: its derived state in the store, under a
// prefix. Between begin and end it reads through one store view, which
// costs less per read.
type storeKV struct {
	st     store.Store
	id     cid.Cid
	prefix byte
	view   store.DerivedView
	depth  int // begin calls not ended yet
	buf    []byte
}

func (kv *storeKV) key(k []byte) []byte {
	kv.buf = append(append(kv.buf[:0], kv.prefix), k...)
	return kv.buf
}

func (kv *storeKV) Get(key []byte) ([]byte, error) {
	if kv.view != nil {
		return kv.view.Get(kv.key(key))
	}
	return kv.st.GetDerived(context.Background(), kv.id, kv.key(key))
}

func (kv *storeKV) Scan(prefix, from []byte, fn func(key, value []byte) error) error {
	strip := func(k, v []byte) error { return fn(k[1:], v) }
	var f []byte
	if from != nil {
		f = append([]byte{kv.prefix}, from...)
	}
	if kv.view != nil {
		return kv.view.Scan(kv.key(prefix), f, strip)
	}
	return kv.st.ScanDerived(context.Background(), kv.id, kv.key(prefix), f, strip)
}

// GetMany implements crdt.ManyKV: it reads the keys side by side
// (sideBySide), each in its own read of the store; between begin and end,
// one after another through the view.
func (kv *storeKV) GetMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if kv.view != nil {
		for i, k := range keys {
			v, err := kv.Get(k)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	errs := make([]error, len(keys))
	var failed atomic.Bool
	sideBySide(len(keys), func(i int) {
		if failed.Load() {
			return // the first error is the answer
		}
		errs[i] = guard(func() (err error) {
			out[i], err = kv.st.GetDerived(context.Background(), kv.id, append([]byte{kv.prefix}, keys[i]...))
			return err
		})
		if errs[i] != nil {
			failed.Store(true)
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readersAtOnce is the most reads sideBySide makes at once.
const readersAtOnce = 8

// sideBySide calls read(i) for each i below n, on up to readersAtOnce
// goroutines at once, and returns when every call has. A lookup that
// needs several records or entries of a store the page cache does not
// hold waits on the disk for each, and the disk serves several reads at
// once: a contribution's reviews, read side by side, cost about one
// read's wait rather than one each.
func sideBySide(n int, read func(i int)) {
	if n <= 1 {
		if n == 1 {
			read(0)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, readersAtOnce) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				read(i)
			}
		})
	}
	wg.Wait()
}

// begin opens a view to read through until end; if it cannot, reads go
// to the store one by one, and fail there if the store does.
func (kv *storeKV) begin() {
	kv.depth++
	if kv.depth > 1 {
		return
	}
	if v, err := kv.st.ReadDerived(context.Background(), kv.id); err == nil {
		kv.view = v
	}
}

func (kv *storeKV) end() {
	if kv.depth--; kv.depth == 0 && kv.view != nil {
		kv.view.Close()
		kv.view = nil
	}
}

// unsaved is what a replica derived and has not committed yet: the
// state's Readies, the feed's rows and the blob references, oldest first,
// and the cursor of the last record applied.
type unsaved struct {
	readies []*crdt.Ready // taken from the state, not saved yet (a save failed, or is with the committer)
	pending bool          // records were applied since the state's last Ready
	rows    []store.Write
	blobs   []store.Write // blob references (blobRows)
	marks   []store.Write // records left out as damaged, and taken back (leftout.go)
	applied uint64
	// backfill holds the summary rows of records saved before any were
	// kept, those after cursor backfillFrom (backfill.go), for the next
	// save; backfilled is closed once a save stored them (nil: none).
	backfill     []store.Write
	backfillFrom uint64
	backfilled   chan struct{}
	// placed is closed once a save stored the places given to the
	// contributions after cursor placedFrom that a version before kept
	// none for, and their status rows (in rows), with the row that says
	// so (backfill.go; nil: none).
	placedFrom uint64
	placed     chan struct{}
}

func (u *unsaved) empty() bool {
	return len(u.readies) == 0 && len(u.rows) == 0 && len(u.blobs) == 0 && len(u.marks) == 0 && !u.pending && u.backfilled == nil && u.placed == nil
}

// openState opens a commons' state from the store.
func (n *Node) openState(id cid.Cid) (*crdt.State, *storeKV, error) {
	kv := &storeKV{st: n.st, id: id, prefix: prefixCRDT}
	kv.begin()
	defer kv.end()
	start := time.Now()
	s, err := crdt.Open(id, kv, storeRecords{n.st})
	if err != nil {
		return nil, nil, fmt.Errorf("node: open the derived state of commons %s: %w", id, err)
	}
	n.log.Debug("derived state opened", "commons", id, "records", s.Len(), "from_snapshot", s.FromSnapshot(), "took", time.Since(start))
	return s, kv, nil
}

// openDerived opens a commons' state and loads its feed from the store,
// as they reflect the records up to cursor applied.
func (n *Node) openDerived(id cid.Cid, applied uint64) (*crdt.State, *storeKV, error) {
	st, kv, err := n.openState(id)
	if err != nil {
		return nil, nil, err
	}
	if err := n.feeds.Load(context.Background(), id, applied); err != nil {
		return nil, nil, err
	}
	return st, kv, nil
}

// derive notes what applying records to rep implied, for the next save:
// the feed's rows and the blob references (the state keeps its own writes
// until the save takes them, State.Ready). done are the records applied,
// whose last cursor is now reflected.
func (n *Node) derive(rep *replica, done []feed.Applied) {
	rep.unsaved.pending = true
	rep.unsaved.rows = append(rep.unsaved.rows, feed.Rows(done)...)
	for _, a := range done {
		rep.unsaved.blobs = append(rep.unsaved.blobs, blobRows(a.Block)...)
	}
	for _, a := range slices.Backward(done) {
		if a.Cursor > 0 {
			rep.unsaved.applied = max(rep.unsaved.applied, a.Cursor)
			break
		}
	}
}

// saving is what one save carries of a replica: the state's readies, the
// feed's rows and the blob references not saved yet (gathered on the
// loop, prefixed on the committer), its counts row, and the cursor they
// reflect.
type saving struct {
	rep     *replica
	applied uint64
	state   []*crdt.Ready
	feed    []store.Write
	blobs   []store.Write
	marks   []store.Write
	counts  store.Write
	// summaries and statuses are the feed's rows that say which records
	// have summary rows and which contributions status rows; mark, what
	// the save carries of the feed's tail (feed.Hub.Mark).
	summaries, statuses store.Write
	mark                uint64
	// The summary rows of older records (unsaved.backfill), if any.
	backfill     []store.Write
	backfillFrom uint64
	backfilled   chan struct{}
	// The places of older contributions (unsaved.placed), if any.
	placedFrom uint64
	placed     chan struct{}
}

// saveBatch returns a batch that commits every replica's unsaved derived
// state, and loading's (a replica Start is loading, not in n.order yet),
// or nil if there is none. A replica whose state cannot be read stops the
// node (unreadable); the others are saved all the same. Loop only.
func (n *Node) saveBatch(loading ...*replica) *batch {
	var b *batch
	add := func(rep *replica) {
		if rep == nil || rep.unsaved.empty() {
			return
		}
		sv, err := n.saving(rep)
		if err != nil {
			n.unreadable(rep.id, err)
			return
		}
		if b == nil {
			b = &batch{save: true}
		}
		b.saves = append(b.saves, sv)
	}
	for _, id := range n.order {
		add(n.commons[id])
	}
	for _, rep := range loading {
		add(rep)
	}
	if b != nil {
		b.sweep, n.sweepAfterSave = n.sweepAfterSave, false
	}
	return b
}

func (n *Node) saving(rep *replica) (saving, error) {
	u := &rep.unsaved
	if u.pending {
		r, err := rep.state.Ready()
		if err != nil {
			return saving{}, err
		}
		if r != nil {
			u.readies = append(u.readies, r)
		}
		u.pending = false
	}
	sv := saving{rep: rep, applied: u.applied, state: slices.Clone(u.readies), feed: slices.Clone(u.rows),
		blobs: slices.Clone(u.blobs), marks: slices.Clone(u.marks), counts: n.feeds.CountsRow(rep.id),
		summaries: n.feeds.SummariesRow(rep.id, u.applied), statuses: n.feeds.StatusesRow(rep.id, u.applied), mark: n.feeds.Mark(rep.id)}
	if u.backfilled != nil {
		sv.backfill, sv.backfillFrom, sv.backfilled = u.backfill, u.backfillFrom, u.backfilled
		sv.summaries = feed.BackfilledRow(u.backfillFrom, u.applied)
	}
	if u.placed != nil {
		sv.placedFrom, sv.placed = u.placedFrom, u.placed
		sv.statuses = feed.StatusesBackfilledRow(u.placedFrom, u.applied)
	}
	return sv, nil
}

// derived returns what sv writes (committer only).
func (sv *saving) derived() store.Derived {
	n := len(sv.feed) + len(sv.backfill) + len(sv.blobs) + len(sv.marks) + 4
	for _, r := range sv.state {
		n += len(r.Writes)
	}
	d := store.Derived{Commons: sv.rep.id, Applied: sv.applied, Writes: make([]store.Write, 0, n)}
	prefixed := func(p byte, w store.Write) store.Write {
		return store.Write{Key: append([]byte{p}, w.Key...), Value: w.Value, Delete: w.Delete}
	}
	for _, r := range sv.state {
		for _, w := range r.Writes {
			d.Writes = append(d.Writes, prefixed(prefixCRDT, store.Write(w)))
		}
	}
	for _, w := range sv.feed {
		d.Writes = append(d.Writes, prefixed(prefixFeed, w))
	}
	for _, w := range sv.backfill {
		d.Writes = append(d.Writes, prefixed(prefixFeed, w))
	}
	for _, w := range sv.blobs {
		d.Writes = append(d.Writes, prefixed(prefixBlob, w))
	}
	d.Writes = append(d.Writes, sv.marks...) // under their own prefix already
	d.Writes = append(d.Writes, prefixed(prefixFeed, sv.counts), prefixed(prefixFeed, sv.summaries), prefixed(prefixFeed, sv.statuses), store.Write{Key: versionKey, Value: []byte(derivedVersion())})
	return d
}

// saved handles a save the committer is done with: on success the states
// stop holding what it carried; on failure it stays, to go with the next
// save. Loop only.
func (n *Node) saved(b *batch) {
	n.savingNow = false
	if n.savedHook != nil {
		defer n.savedHook(b.err)
	}
	if b.err != nil {
		if !errors.Is(b.err, api.ErrDiskFull) { // logged as the disk fills (diskOK)
			n.log.Error("the derived state could not be stored: it is kept in memory and stored with the next save (a restart derives it again from the records)", "err", b.err)
		}
		n.saveRetry = time.Now().Add(saveRetryDelay)
		n.sweepAfterSave = n.sweepAfterSave || b.sweep
		return
	}
	n.saveRetry = time.Time{}
	if b.sweep {
		n.blobs.overflowed(n.cfg.Now())
	}
	for _, sv := range b.saves {
		u := &sv.rep.unsaved
		for _, r := range sv.state {
			sv.rep.state.Advance(r)
		}
		u.readies = slices.Delete(u.readies, 0, len(sv.state))
		u.rows = slices.Delete(u.rows, 0, len(sv.feed))
		u.blobs = slices.Delete(u.blobs, 0, len(sv.blobs))
		u.marks = slices.Delete(u.marks, 0, len(sv.marks))
		n.feeds.Saved(sv.rep.id, sv.applied, sv.mark)
		if sv.backfilled != nil && u.backfilled == sv.backfilled {
			n.feeds.Backfilled(sv.rep.id, sv.backfillFrom)
			u.backfill, u.backfilled = nil, nil
			close(sv.backfilled)
		}
		if sv.placed != nil && u.placed == sv.placed {
			n.feeds.StatusesBackfilled(sv.rep.id, sv.placedFrom)
			u.placed = nil
			close(sv.placed)
		}
		// A Ready writes a bounded number of the trie's leaf hashes that
		// Root computed (crdt's trieSaveMax): the rest go with the next
		// saves, which the loop makes after this one, and saveNow at once.
		if sv.rep.state.TrieUnsaved() {
			u.pending = true
		}
	}
}

// hashIdle computes the state roots of the commons whose saved records
// changed them, now that nothing has come for idleHashDelay, and saves
// again the trie leaves that hashed: a start then finds their hashes
// instead of reading the leaves' records at its first status. It waits for
// a pause because a leaf changed by each batch of an import or a join
// would be read and hashed again after each one. Loop only.
func (n *Node) hashIdle() {
	for rep := range n.toHash {
		delete(n.toHash, rep)
		if n.commons[rep.id] != rep {
			continue // dropped since
		}
		leaves := rep.state.RootLeaves()
		rep.hashRoot()
		n.log.Debug("state root hashed while idle", "commons", rep.id, "records", rep.root.records, "leaves_looked_up", leaves, "took", rep.root.took)
		if rep.state.TrieUnsaved() {
			rep.unsaved.pending = true
		}
	}
	if n.checkStates() != nil {
		return // a leaf could not be read: the node stops
	}
	n.save()
}

// idleHashDelay is how long no batch must have come before hashIdle runs.
var idleHashDelay = 2 * time.Second

// hashDeferMax is the longest hashIdle waits for a pause after a save: a
// steady trickle of records (one every second, say) never pauses, and
// would otherwise keep the trie's hashes from being stored until Close
// (after a crash, the first status would read every leaf changed since).
// It is long, because hashing a large import's changed leaves reads most
// of the trie's keys, on the loop.
var hashDeferMax = 5 * time.Minute

// saveRetryDelay is how long the node waits, after a save failed, before
// it tries again with nothing else to do (a new batch tries at once).
var saveRetryDelay = time.Second

// commitSave commits a save batch (committer only).
func (n *Node) commitSave(b *batch) {
	if err := n.diskOK(); err != nil {
		b.err = err // kept in memory, and saved once there is room
		return
	}
	ds := make([]store.Derived, len(b.saves))
	for i := range b.saves {
		ds[i] = b.saves[i].derived()
	}
	if err := n.st.CommitDerived(context.Background(), ds); err != nil {
		b.err = fmt.Errorf("node: store derived state: %w", err)
	}
}

// saveNow commits every replica's unsaved derived state, and loading's,
// and waits (before the loop runs, or after it stopped): as many saves as
// that takes (saved), each bounded, while each carries some of the
// states' writes.
func (n *Node) saveNow(ctx context.Context, loading ...*replica) error {
	for {
		b := n.saveBatch(loading...)
		if b == nil {
			return nil
		}
		n.commitSave(b)
		n.saved(b)
		if b.err != nil || !slices.ContainsFunc(b.saves, func(sv saving) bool { return len(sv.state) > 0 }) {
			return b.err
		}
	}
}

// snapshotStates stores a start snapshot of each state whose derived
// state is all stored (crdt's Snapshot): the next start reads it instead
// of every leaf of the root trie and the reconciliation index. The
// snapshot is committed a piece at a time, its head last, so that what it
// holds in memory does not grow with the commons. Without it a start is
// slower, not wrong: a failure is logged, not returned. Close only, after
// the last save.
func (n *Node) snapshotStates() {
	for _, id := range n.order {
		rep := n.commons[id]
		if rep == nil || !rep.unsaved.empty() {
			continue
		}
		pieces := 0
		_, err := rep.state.Snapshot(func(ws []crdt.Write) error {
			if err := n.diskOK(); err != nil {
				return err
			}
			d := store.Derived{Commons: id, Applied: rep.unsaved.applied, Writes: make([]store.Write, len(ws))}
			for i, w := range ws {
				d.Writes[i] = store.Write{Key: append([]byte{prefixCRDT}, w.Key...), Value: w.Value, Delete: w.Delete}
			}
			if err := n.st.CommitDerived(context.Background(), []store.Derived{d}); err != nil {
				return err
			}
			pieces++
			return nil
		})
		if err != nil {
			n.log.Warn("no start snapshot of the commons' state stored: the next start reads its trie and index", "commons", id, "pieces_stored", pieces, "err", err)
		}
	}
}

// derivedLayout numbers the layout of the derived state this version
// writes (crdt's keys, the feed's rows and the blob references, under
// their prefixes). A stored state of another layout, or derived under
// other authority rules (crdt.RulesVersion), is dropped and derived again
// from the records. Layout 2 added crdt's root-trie keys (its records and
// leaves, 'r' and 'k') and its reconciliation index's ('i' and 'j'),
// which a layout-1 state lacks; layout 3 the blob references
// (prefixBlob).
const derivedLayout = 3

// versionKey is the derived-state key of the layout and rules it was
// written under.
var versionKey = []byte{'v'}

// damagedKey marks a commons' derived state found damaged while the node
// ran (its value says how): the next start drops it and derives it again
// from the records.
var damagedKey = []byte{'x'}

// unreadable stops the node: commons id's state could not be read, and
// what it would derive now may rest on the read that failed. Nothing
// derived since reaches the store (the State's Ready fails), so the
// stored state is still that of a prefix of the records: the next start
// reads it again, unless the read found it damaged, in which case it is
// marked so and derived again from the records. Loop only.
func (n *Node) unreadable(id cid.Cid, err error) {
	if n.ctx.Err() == nil { // said once: the node stops
		n.log.Error("the derived state of a commons cannot be read: stopping", "commons", id, "err", err)
	}
	if isDamaged(err) {
		n.damaged(id, err)
	}
	n.cancel()
}

// damaged marks commons id's derived state damaged (damagedKey), once, so
// that the next start derives it again from the records, and says so. The
// feed calls it when a row it reads does not decode. Any goroutine.
func (n *Node) damaged(id cid.Cid, err error) {
	if _, dup := n.damagedSeen.LoadOrStore(id, true); dup {
		return
	}
	// Applied 0: the state reflects nothing the next start can trust. A
	// save still in flight may set it again; the mark stays either way.
	mark := store.Derived{Commons: id, Writes: []store.Write{{Key: damagedKey, Value: []byte(err.Error())}}}
	if merr := n.st.CommitDerived(context.Background(), []store.Derived{mark}); merr != nil {
		n.log.Error("the derived state of a commons is damaged, and could not be marked so: the next start may not derive it again; remove the repo's derived state by importing its records into a fresh repo (commons export, then import)",
			"commons", id, "err", err, "mark", merr)
		return
	}
	n.log.Error("the derived state of a commons is damaged: the next start derives it again from the records", "commons", id, "err", err)
}

func derivedVersion() string {
	return fmt.Sprintf("layout %d, rules %d, feed summaries, feed statuses", derivedLayout, crdt.RulesVersion)
}

// derivedVersionBefore is the version the same layout and rules were
// written under before the feed kept its records' summaries (feed.Summaries),
// and derivedVersionSummaries the one before it kept its contributions'
// statuses (feed.Statuses). This version reads a state of either as its
// own, the feed reading whole the records it has no summary rows of and
// asking the state for the statuses it has no rows of. A version before
// reads this version's as an earlier one's (it parses the layout and
// rules alone, and they differ in nothing else), and derives it again:
// what it changed without moving the state's cursor (records dropped, or
// taken back at their place) would otherwise leave the rows stale, and
// it would find damaged the state's entries that keep a contribution's
// cursor (crdt.State.AddAt).
func derivedVersionBefore() string {
	return fmt.Sprintf("layout %d, rules %d", derivedLayout, crdt.RulesVersion)
}

func derivedVersionSummaries() string {
	return fmt.Sprintf("layout %d, rules %d, feed summaries", derivedLayout, crdt.RulesVersion)
}

// summariesRowKey and statusesRowKey are the derived-state keys of the
// feed's rows that say which records have summary rows and which
// contributions status rows.
func summariesRowKey() []byte {
	return append([]byte{prefixFeed}, feed.SummariesRowKey()...)
}

func statusesRowKey() []byte {
	return append([]byte{prefixFeed}, feed.StatusesRowKey()...)
}

// derivedCurrent reports whether a commons' stored derived state was
// written under this version's layout and rules.
func (n *Node) derivedCurrent(ctx context.Context, id cid.Cid) (bool, error) {
	v, err := n.st.GetDerived(ctx, id, versionKey)
	if err != nil {
		return false, fmt.Errorf("node: read the derived state of commons %s: %w", id, err)
	}
	var stale []store.Write
	switch string(v) {
	case derivedVersion():
		return true, nil
	case derivedVersionBefore():
		stale = []store.Write{{Key: summariesRowKey(), Delete: true}, {Key: statusesRowKey(), Delete: true}}
	case derivedVersionSummaries():
		stale = []store.Write{{Key: statusesRowKey(), Delete: true}}
	}
	if stale != nil {
		// Its rows that say which records have summary or status rows, if
		// this version wrote them before that version ran on the repo, are
		// not to be trusted: without them, the feed reads whole the records
		// up to the state's cursor, and asks the state for their statuses.
		applied, err := n.st.Applied(ctx, id)
		if err == nil {
			err = n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Applied: applied, Writes: stale}})
		}
		if err != nil {
			return false, fmt.Errorf("node: read the derived state of commons %s: %w", id, err)
		}
		return true, nil
	}
	var layout, rules int
	if _, err := fmt.Sscanf(string(v), "layout %d, rules %d", &layout, &rules); err == nil && (layout > derivedLayout || rules > crdt.RulesVersion) {
		return false, fmt.Errorf("%w: the derived state of commons %s was written by a newer version of commons (%s; this one writes %s); run a newer commons on this repo", ErrStoreFormat, id, v, derivedVersion())
	}
	// Warn: a command run on the repo shows it, and the user waits while
	// every record is read again (about as long as an import of them).
	n.log.Warn("the derived state of a commons was written by an earlier version: deriving it again from the records, once (about as long as importing them)", "commons", id, "stored", string(v), "now", derivedVersion())
	return false, nil
}

// dropDerived deletes a commons' stored derived state, dropChunk keys at
// a time, so that its memory does not grow with the commons (a layout
// change drops every commons' state at the first start of a new version).
// It marks the state damaged (damagedKey) first and unmarks it last: a
// start that finds the mark, after a crash part way, drops the rest.
func (n *Node) dropDerived(ctx context.Context, id cid.Cid) error {
	mark := store.Write{Key: damagedKey, Value: []byte("being dropped, to be derived again from the records")}
	err := n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Writes: []store.Write{mark}}})
	var from []byte
	for err == nil {
		var ws []store.Write
		var next []byte
		err = n.st.ScanDerived(ctx, id, nil, from, func(k, _ []byte) error {
			if len(ws) == dropChunk {
				next = slices.Clone(k)
				return errStop
			}
			if !bytes.Equal(k, damagedKey) {
				ws = append(ws, store.Write{Key: slices.Clone(k), Delete: true})
			}
			return nil
		})
		if errors.Is(err, errStop) {
			err = nil
		}
		if err == nil && len(ws) > 0 {
			err = n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Writes: ws}})
			n.streamed.Add(int64(len(ws))) // keys read in bulk
		}
		if err == nil && next == nil {
			break
		}
		from = next
	}
	if err == nil {
		err = n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Writes: []store.Write{{Key: damagedKey, Delete: true}}}})
	}
	if err != nil {
		return fmt.Errorf("node: drop the derived state of commons %s: %w", id, err)
	}
	return nil
}

// dropChunk is how many keys dropDerived deletes at once.
var dropChunk = 16384
