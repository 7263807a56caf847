package node

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// contributePayload stores data on n and contributes it as a payload to
// commons id.
func contributePayload(t *testing.T, n *Node, id cid.Cid, data []byte) cid.Cid {
	t.Helper()
	b := must[string](t)(n.PutBlob(t.Context(), data))
	must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: "payload", Payload: []api.PayloadParam{{CID: b}}}))
	c, err := cid.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// blobRowCount counts the stored blob references of commons id.
func blobRowCount(t *testing.T, st store.Store, id cid.Cid) int {
	t.Helper()
	k := 0
	err := st.ScanDerived(t.Context(), id, []byte{prefixBlob}, nil, func(_, _ []byte) error {
		k++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestStartDerivesBlobRefs: a derived state of layout 2, which has no
// blob references, is derived again at start, and the references are
// there afterwards.
func TestStartDerivesBlobRefs(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id := foundTestCommons(t, n, n.Self())
	var payloads []cid.Cid
	for i := range 5 {
		payloads = append(payloads, contributePayload(t, n, id, fmt.Appendf(nil, "payload %d", i)))
	}
	waitSaved(t, cs, id)
	if k := blobRowCount(t, cs, id); k != len(payloads) {
		t.Fatalf("%d blob references stored, want %d", k, len(payloads))
	}
	closeNode(t, n)
	// What layout 2 wrote: the same, without the blob references.
	onRepo(t, dir, func(st *badgerstore.Store) {
		ws := []store.Write{{Key: versionKey, Value: fmt.Appendf(nil, "layout 2, rules %d", crdt.RulesVersion)}}
		err := st.ScanDerived(t.Context(), id, []byte{prefixBlob}, nil, func(k, _ []byte) error {
			ws = append(ws, store.Write{Key: slices.Clone(k), Delete: true})
			return nil
		})
		if err == nil {
			applied, _ := st.Applied(t.Context(), id)
			err = st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}})
		}
		if err != nil {
			t.Fatal(err)
		}
	})

	var log logBuffer
	n, cs = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if !strings.Contains(log.String(), "written by an earlier version") || !strings.Contains(log.String(), "deriving the state of a commons from its records") {
		t.Errorf("start did not say it derives the state again:\n%s", log.String())
	}
	if k := blobRowCount(t, cs, id); k != len(payloads) {
		t.Fatalf("after the start: %d blob references stored, want %d", k, len(payloads))
	}
	for _, p := range payloads {
		if ok, err := n.referenced(t.Context(), p); !ok || err != nil {
			t.Errorf("payload %s: referenced %v, %v", p, ok, err)
		}
	}
}

// TestBlobRows: a record's references encode and decode (a payload with
// its size, a licence text without), and a summary of many references
// keeps the smallest sizes only.
func TestBlobRows(t *testing.T) {
	id := protocol.BlobCID([]byte("commons"))
	for _, want := range []blobRef{{commons: id}, {commons: id, size: 0, known: true}, {commons: id, size: 1 << 40, known: true}} {
		v := []byte{0}
		if want.known {
			v = binary.AppendUvarint([]byte{1}, want.size)
		}
		if got, err := decodeBlobRef(id, v); err != nil || got != want {
			t.Errorf("decode %x: %+v, %v; want %+v", v, got, err, want)
		}
	}
	for _, v := range [][]byte{nil, {2}, {0, 0}, {1}, {1, 0x80}} {
		if _, err := decodeBlobRef(id, v); err == nil {
			t.Errorf("decode %x: no error", v)
		}
	}

	var s blobSummary
	other := protocol.BlobCID([]byte("other commons"))
	for i := range 100 {
		s.add(blobRef{commons: []cid.Cid{id, other}[i%2], size: uint64(1000 - i), known: true})
		s.add(blobRef{commons: id, size: uint64(1000 - i), known: true})
	}
	s.add(blobRef{commons: id})
	if len(s.commons) != 2 || !s.unknown || !s.more || len(s.sizes) != maxStatedSizes || s.sizes[0] != 901 || s.sizes[maxStatedSizes-1] != 916 {
		t.Errorf("summary of 200 references: %+v", s)
	}
}
