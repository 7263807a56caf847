package node

import (
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// reviewAs has n review contribution c with decision d.
func reviewAs(t *testing.T, n *Node, c, d string) {
	t.Helper()
	must[api.Published](t)(n.Review(t.Context(), api.ReviewParams{Target: c, Decision: d}))
}

// statusOf returns contribution c's status in commons id's state.
func statusOf(t *testing.T, n *Node, id cid.Cid, c string) crdt.Status {
	t.Helper()
	var st crdt.Status
	if err := n.do(t.Context(), func() { st, _ = n.commons[id].state.Status(must[cid.Cid](t)(cid.Decode(c))) }); err != nil {
		t.Fatal(err)
	}
	return st
}

// entryGetsFor returns how many of the state's entries were read from the
// store one by one while a feed page of commons id, from cursor since,
// was read.
func entryGetsFor(t *testing.T, n *Node, cs *countingStore, id cid.Cid, since uint64) int64 {
	t.Helper()
	before := cs.entryGets.Load()
	if _, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Since: since, Limit: 100}); err != nil {
		t.Fatal(err)
	}
	return cs.entryGets.Load() - before
}

// checkRowStatuses checks that the feed's rows give the status of each of
// commons id's contributions after StatusesFrom, as the state gives it:
// that a page needs not ask the state.
func checkRowStatuses(t *testing.T, n *Node, id cid.Cid) {
	t.Helper()
	from, _ := n.feeds.StatusesFrom(id)
	items, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Since: from, Limit: api.MaxFeedLimit})
	if err != nil {
		t.Fatal(err)
	}
	var cursors []uint64
	var cons []string
	for _, it := range items {
		if it.Type == "contribution" {
			cursors, cons = append(cursors, it.Cursor), append(cons, it.CID)
		}
	}
	if len(cons) == 0 {
		t.Fatal("no contribution to read the status of")
	}
	got, err := n.feeds.Statuses(t.Context(), id, cursors)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cons {
		if want := statusOf(t, n, id, c); got[i] != want {
			t.Errorf("the rows give contribution %s (cursor %d) status %q; the state, %q", c, cursors[i], got[i], want)
		}
	}
}

// TestFeedStatusesFromRows: a feed page gives each contribution's status
// now, as the state gives it, from the feed's rows: as reviews move the
// statuses of earlier contributions again and again, before and after a
// save, with saves failing (the statuses set since are in memory), and
// after a restart, when a page reads no entry of the state.
func TestFeedStatusesFromRows(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 6)
	reviewAs(t, n, cons[2], "accept")  // pending, accepted
	reviewAs(t, n, cons[0], "reject")  // accepted, rejected
	reviewAs(t, n, cons[1], "retract") // rejected, pending
	for c, want := range map[int]crdt.Status{0: crdt.StatusRejected, 1: crdt.StatusPending, 2: crdt.StatusAccepted} {
		if got := statusOf(t, n, id, cons[c]); got != want {
			t.Fatalf("contribution %d is %s, want %s: the test does not move statuses as it means to", c, got, want)
		}
	}
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)

	cs.failDerived.Store(true)
	reviewAs(t, n, cons[0], "accept")
	reviewAs(t, n, cons[2], "retract")
	more(t, n, id, 2)
	reviewAs(t, n, cons[0], "retract")
	if got := statusOf(t, n, id, cons[2]); got != crdt.StatusPending {
		t.Fatalf("contribution 2 is %s, want pending", got)
	}
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id) // the tail's statuses over the saved rows'
	cs.failDerived.Store(false)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)
	closeNode(t, n)

	n, cs = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if gets := entryGetsFor(t, n, cs, id, 0); gets != 0 {
		t.Errorf("a feed page read %d entries of the state; want its statuses read from the feed's rows", gets)
	}
	checkFeedPages(t, n, id)
}

// TestFeedStatusesOfARepoWithoutThem: a repo made by a version that kept
// no status rows, and no cursor of a contribution in the state, shows the
// same pages: the statuses of its contributions come from the state (its
// later changes have no cursor to write a row by), those of the
// contributions that came after from the rows, also after a restart. The
// row that says where they begin is trusted only if it was saved with the
// state as it stands.
func TestFeedStatusesOfARepoWithoutThem(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	keepPlaces = false
	t.Cleanup(func() { keepPlaces = true })
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 6)
	waitSaved(t, cs, id)
	closeNode(t, n)
	keepPlaces = true
	var old uint64
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, err := st.Applied(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		old = applied
		ws := []store.Write{{Key: statusesRowKey(), Delete: true}, {Key: versionKey, Value: []byte(derivedVersionSummaries())}}
		if err := st.ScanDerived(t.Context(), id, []byte{prefixFeed, 't'}, nil, func(k, _ []byte) error {
			ws = append(ws, store.Write{Key: append([]byte(nil), k...), Delete: true})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(ws) != 2 {
			t.Fatalf("the repo has %d status rows; without the contributions' cursors in the state, want none", len(ws)-2)
		}
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	})

	n, cs = startRepo(t, dir, key, nil)
	if from, ok := n.feeds.StatusesFrom(id); !ok || from != old {
		t.Fatalf("statuses from %d (%v) in a repo without them, of %d records; want from %d", from, ok, old, old)
	}
	if gets := entryGetsFor(t, n, cs, id, 0); gets == 0 {
		t.Errorf("a feed page of a repo without status rows read no entry of the state")
	}
	checkFeedPages(t, n, id)
	reviewAs(t, n, cons[0], "reject")
	more(t, n, id, 3)
	reviewAs(t, n, cons[5], "accept")
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)
	closeNode(t, n)

	n, cs = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.StatusesFrom(id); from != old {
		t.Errorf("statuses from %d after a restart; want %d still", from, old)
	}
	if gets := entryGetsFor(t, n, cs, id, old); gets != 0 {
		t.Errorf("a feed page of the contributions added since read %d entries of the state; want their statuses from the rows", gets)
	}
	checkFeedPages(t, n, id)
	head := n.feeds.Head(id).Cursor
	closeNode(t, n)

	// A row saved with the state through an earlier cursor is not trusted.
	writeDerived(t, dir, id, head, store.Write{Key: statusesRowKey(), Value: append(make([]byte, 15), byte(old))})
	n, _ = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if from, _ := n.feeds.StatusesFrom(id); from != head {
		t.Errorf("statuses from %d after a row saved through %d, with the state through %d; want from %d", from, old, head, head)
	}
	checkFeedPages(t, n, id)
}
