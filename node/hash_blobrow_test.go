package node

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// TestTrickleStillHashes: a steady trickle of records, each arriving
// within idleHashDelay of the last, must not keep the trie's hashes from
// being computed and stored for ever (after a crash, the first status
// would read every leaf changed since the last pause).
func TestTrickleStillHashes(t *testing.T) {
	defer func(d, m time.Duration) { idleHashDelay, hashDeferMax = d, m }(idleHashDelay, hashDeferMax)
	idleHashDelay, hashDeferMax = time.Hour, 200*time.Millisecond
	n, cs := startRepo(t, t.TempDir(), testKey(t), nil)
	defer closeNode(t, n)
	id := foundTestCommons(t, n, n.Self())
	before := cs.trieScans.Load()
	deadline := time.Now().Add(5 * hashDeferMax)
	for i := 0; time.Now().Before(deadline); i++ {
		must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: fmt.Sprintf("t%d", i)}))
		time.Sleep(hashDeferMax / 10)
	}
	if got := cs.trieScans.Load() - before; got == 0 {
		t.Errorf("records arrived every %v for %v and the trie was never hashed (hashDeferMax %v)", hashDeferMax/10, 5*hashDeferMax, hashDeferMax)
	}
}

// TestDamagedBlobRowDerivedAgain: a stored blob reference that does not
// decode marks the commons' derived state damaged when it is read; the
// next start derives it again from the records, and the blob is served
// again.
func TestDamagedBlobRowDerivedAgain(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id := foundTestCommons(t, n, n.Self())
	data := []byte("a payload whose reference is damaged")
	payload := contributePayload(t, n, id, data)
	waitSaved(t, cs, id)
	closeNode(t, n)

	rowKey := append(append([]byte{prefixBlob}, payload.Bytes()...), []byte{}...)
	onRepo(t, dir, func(st *badgerstore.Store) {
		var ws []store.Write
		err := st.ScanDerived(t.Context(), id, rowKey, nil, func(k, _ []byte) error {
			ws = append(ws, store.Write{Key: bytes.Clone(k), Value: []byte{7, 7}})
			return nil
		})
		if err != nil || len(ws) != 1 {
			t.Fatalf("%d rows, %v", len(ws), err)
		}
		applied, _ := st.Applied(t.Context(), id)
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	})

	var log logBuffer
	n, cs = startRepo(t, dir, key, &log)
	if got := askBlob(t, n, payload); got != nil {
		t.Errorf("served through a damaged reference: %q", got)
	}
	if mark, err := cs.GetDerived(t.Context(), id, damagedKey); err != nil || mark == nil {
		t.Fatalf("no damage mark after reading a damaged blob row: %q, %v", mark, err)
	}
	closeNode(t, n)

	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if got := askBlob(t, n, payload); !bytes.Equal(got, data) {
		t.Fatalf("after the start that derives again: served %q, want the payload\n%s", got, log.String())
	}
}

// TestDropDerivedInChunks: the first start after a layout change drops
// the stored derived state a chunk of keys at a time (its memory does not
// grow with the commons), and derives it again; a drop cut short (its mark
// left, some keys left) is finished at the next start.
func TestDropDerivedInChunks(t *testing.T) {
	defer func(c int) { dropChunk = c }(dropChunk)
	dropChunk = 7
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 12)
	want := commonsView(t, n, id, cons)
	waitSaved(t, cs, id)
	closeNode(t, n)
	for _, cut := range []bool{false, true} {
		onRepo(t, dir, func(st *badgerstore.Store) {
			ws := []store.Write{{Key: versionKey, Value: []byte("layout 2, rules 1")}, {Key: []byte{prefixCRDT, 's'}, Value: []byte{1, 1, 1, 1, 1, 1, 1}}}
			if cut { // a drop that stopped after its mark and a first chunk
				ws = append(ws, store.Write{Key: damagedKey, Value: []byte("being dropped")})
			}
			if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: 100, Writes: ws}}); err != nil {
				t.Fatal(err)
			}
		})
		n, _ = startRepo(t, dir, key, nil)
		if got := commonsView(t, n, id, cons); got != want {
			t.Fatalf("cut %v: derived again: %s", cut, viewDiff(got, want))
		}
		if mark, err := n.st.GetDerived(t.Context(), id, damagedKey); err != nil || mark != nil {
			t.Fatalf("cut %v: mark left after the drop: %q, %v", cut, mark, err)
		}
		closeNode(t, n)
	}
}
