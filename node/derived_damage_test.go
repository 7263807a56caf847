package node

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// startRepoErr starts a node on the badger repo in dir and returns Start's
// error (the node closed) instead of failing t.
func startRepoErr(t *testing.T, dir string, key crypto.PrivKey) error {
	t.Helper()
	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Offline: true, Store: st, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(t.Context())
	_ = n.Close()
	return err
}

// TestDamageFoundWhileReplayingAtStart: the derived state holds a damaged
// entry, and the process died before the derived state of the last
// records was saved. The next start applies those records again, and one
// of them (a review of the damaged contribution) reads the damaged entry:
// Open reads no entry, so that read is where the damage is found. The
// start derives the state again from the records, as it does for damage
// Open finds, and starts; so do the starts after it.
func TestDamageFoundWhileReplayingAtStart(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 3)
	waitSaved(t, cs, id)
	cs.failDerived.Store(true)
	// A second review of the first contribution: stored, not derived.
	must[api.Published](t)(n.Review(t.Context(), api.ReviewParams{Target: cons[0], Decision: "reject"}))
	_ = n.Close() // the save fails: "disk full"
	c, _ := cid.Decode(cons[0])
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, _ := st.Applied(t.Context(), id)
		head, _ := st.FeedHead(t.Context(), id)
		if applied >= head {
			t.Fatalf("derived state at %d of %d: want the last record unsaved", applied, head)
		}
		err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: []store.Write{
			{Key: append([]byte{prefixCRDT, 'e'}, c.Bytes()...), Value: []byte{1, 9, 9}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
	})
	for i := range 3 {
		err := startRepoErr(t, dir, key)
		if err != nil {
			t.Errorf("start %d: %v", i+1, err)
			if !errors.Is(err, crdt.ErrDamaged) || !strings.Contains(err.Error(), "load commons") {
				t.Fatalf("start %d failed otherwise than expected", i+1)
			}
		}
	}
	if t.Failed() {
		t.Log("every start fails on the damage found while replaying; want the state derived again (as when Open finds damage)")
	}
}

// flakyDerived fails derived-state reads while armed, as a disk that
// returns EIO once would.
type flakyDerived struct {
	store.Store
	armed atomic.Bool
}

var errEIO = errors.New("input/output error (test)")

func (f *flakyDerived) GetDerived(ctx context.Context, id cid.Cid, key []byte) ([]byte, error) {
	if f.armed.Load() {
		return nil, errEIO
	}
	return f.Store.GetDerived(ctx, id, key)
}

func (f *flakyDerived) ReadDerived(ctx context.Context, id cid.Cid) (store.DerivedView, error) {
	if f.armed.Load() {
		return nil, errEIO
	}
	return f.Store.ReadDerived(ctx, id)
}

// TestTransientReadErrorKeepsDerivedState: one derived-state read that
// fails with an I/O error, not damage, stops the node (what the state
// answered may rest on it) but does not mark the state damaged: nothing
// the State derived after the failed read reached the store (Ready
// refuses once Err is set), so the stored state is a good prefix, and the
// next start reads it again instead of merging every record.
func TestTransientReadErrorKeepsDerivedState(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	_, cons := fill(t, n, 6)
	closeNode(t, n)

	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyDerived{Store: st}
	n, err = New(Config{Offline: true, Store: flaky, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	flaky.armed.Store(true)
	_, err = n.Show(t.Context(), cons[0])
	flaky.armed.Store(false)
	if !errors.Is(err, errEIO) {
		t.Fatalf("show with the disk failing: %v; want the I/O error", err)
	}
	_ = n.Close()

	var log logBuffer
	n, cs := startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if l := log.String(); strings.Contains(l, "found damaged") || cs.feedReads.Load() > 0 {
		t.Errorf("after one failed read (not damage), the start re-derived the commons from its %d feed-log pages:\n%s", cs.feedReads.Load(), l)
	}
}

// TestReplayAtStartSavesAsItGoes: a start that applies records (after a
// crash, a migration, a layout change or an 'x' mark: every record of the
// commons) saves what they imply a page at a time, the replica it is
// loading included, although Start adds it to n.order only once loaded;
// else the State's pending writes, every index leaf it touched and the
// feed's tail of rows would stay in memory until the loop's first save.
func TestReplayAtStartSavesAsItGoes(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 6)
	waitSaved(t, cs, id)
	cs.failDerived.Store(true)
	more(t, n, id, 6)
	_ = n.Close() // the save fails: "disk full"

	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before, _ := st.Applied(t.Context(), id)
	head, _ := st.FeedHead(t.Context(), id)
	if before >= head {
		t.Fatalf("derived state at %d of %d: want records after it", before, head)
	}
	m, err := New(Config{Offline: true, Store: keepOpen{st}, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.loadReplica(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := st.Applied(t.Context(), id)
	if after != head {
		t.Errorf("after loadReplica applied records %d..%d, the stored derived state reflects %d; want %d (saved as it goes); unsaved: %d readies, %d feed rows, pending %v",
			before+1, head, after, head, len(rep.unsaved.readies), len(rep.unsaved.rows), rep.unsaved.pending)
	}
}
