package node

import (
	"errors"
	"strings"
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
// records was saved. The next start applies those records again; one of
// them (a review of the damaged contribution) reads the damaged entry.
// That read is the only place the damage is found now that Open reads no
// entry, and loadReplica does not treat it as it treats damage found by
// Open: the start fails, writes no 'x' mark, and every later start fails
// the same way. The node never starts again without an operator.
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
