package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
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

// askBlob asks n for blob c as a peer would (serveBlobOn), and returns
// the blob, or nil if n answers that it does not serve it.
func askBlob(t *testing.T, n *Node, c cid.Cid) []byte {
	t.Helper()
	req, err := protocol.EncodeBlobRequest(&protocol.BlobRequest{CID: protocol.Link{Cid: c}})
	if err != nil {
		t.Fatal(err)
	}
	var in, out bytes.Buffer
	if err := writeFrame(&in, req); err != nil {
		t.Fatal(err)
	}
	if err := n.serveBlobOn(struct {
		io.Reader
		io.Writer
	}{&in, &out}, false); err != nil {
		t.Fatalf("serve blob %s: %v", c, err)
	}
	r := bufio.NewReader(&out)
	msg, err := readFrame(r, protocol.MaxBlobMessage)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := protocol.DecodeBlobResponse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Missing {
		return nil
	}
	data, err := io.ReadAll(r)
	if err != nil || uint64(len(data)) != *resp.Size {
		t.Fatalf("blob %s: %d bytes of %d announced, %v", c, len(data), *resp.Size, err)
	}
	return data
}

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

// TestBlobRefsServedAfterRestart: a node serves a blob that a record of a
// commons it replicates references, after a restart as before it (the
// references are stored with the derived state); it serves neither a blob
// nobody references nor one only a commons not replicated here references,
// though it stores both.
func TestBlobRefsServedAfterRestart(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id := foundTestCommons(t, n, n.Self())
	data := []byte("a payload of a replicated commons")
	payload := contributePayload(t, n, id, data)
	loose := []byte("stored, referenced by nobody")
	if _, err := n.PutBlob(t.Context(), loose); err != nil {
		t.Fatal(err)
	}
	if got := askBlob(t, n, payload); !bytes.Equal(got, data) {
		t.Fatalf("before the restart: served %q, want the payload", got)
	}
	closeNode(t, n)

	// The store also holds a reference of a commons not replicated here.
	other := []byte("referenced by a commons not replicated here")
	otherCommons := protocol.BlobCID([]byte("some other commons"))
	onRepo(t, dir, func(st *badgerstore.Store) {
		if _, err := st.PutBlob(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		key := append([]byte{prefixBlob}, protocol.BlobCID(other).Bytes()...)
		key = append(key, protocol.BlobCID([]byte("a record")).Bytes()...)
		row := store.Derived{Commons: otherCommons, Writes: []store.Write{{Key: key, Value: []byte{1, byte(len(other))}}}}
		if err := st.CommitDerived(t.Context(), []store.Derived{row}); err != nil {
			t.Fatal(err)
		}
	})

	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if got := askBlob(t, n, payload); !bytes.Equal(got, data) {
		t.Fatalf("after the restart: served %q, want the payload", got)
	}
	for name, b := range map[string][]byte{"an unreferenced blob": loose, "a blob of a commons not replicated here": other} {
		if got := askBlob(t, n, protocol.BlobCID(b)); got != nil {
			t.Errorf("%s was served", name)
		}
	}
	if _, err := n.fetchFromPeers(t.Context(), protocol.BlobCID(other), true); err == nil || !strings.Contains(err.Error(), "no record replicated here references it") {
		t.Errorf("fetch of a blob only a commons not replicated here references: %v", err)
	}
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
		if ok, disowned, err := n.claim(t.Context(), p, 0); !ok || disowned || err != nil {
			t.Errorf("payload %s: referenced %v, disowned %v, %v", p, ok, disowned, err)
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

// stallingWriter takes the first 1 KiB written (an answer's frame) at
// once; at the first write past it (the blob), it says so on blocked and
// waits for release.
type stallingWriter struct {
	bytes.Buffer
	blocked chan<- struct{}
	release <-chan struct{}
	stalled bool
}

func (w *stallingWriter) Write(p []byte) (int, error) {
	if !w.stalled && w.Len()+len(p) > 1<<10 {
		w.stalled = true
		w.blocked <- struct{}{}
		<-w.release
	}
	return w.Buffer.Write(p)
}

// TestServedBlobNotCopied: a node serving a blob to peers that read
// slowly holds a chunk of it per stream, not a copy: 4 streams each part
// way through a 16 MiB blob grow the heap by far less than one copy (they
// grew it by 4 copies, 64 MiB, when a served blob was read whole into
// memory), and the blob arrives whole.
func TestServedBlobNotCopied(t *testing.T) {
	const size, streams = 16 << 20, 4
	n, _ := startRepo(t, t.TempDir(), testKey(t), nil)
	defer closeNode(t, n)
	id := foundTestCommons(t, n, n.Self())
	data := bytes.Repeat([]byte("commons "), size/8)
	c := contributePayload(t, n, id, data)
	req, err := protocol.EncodeBlobRequest(&protocol.BlobRequest{CID: protocol.Link{Cid: c}})
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	blocked, release := make(chan struct{}), make(chan struct{})
	outs := make([]*stallingWriter, streams)
	errs := make(chan error, streams)
	for i := range outs {
		var in bytes.Buffer
		if err := writeFrame(&in, req); err != nil {
			t.Fatal(err)
		}
		outs[i] = &stallingWriter{blocked: blocked, release: release}
		go func() {
			errs <- n.serveBlobOn(struct {
				io.Reader
				io.Writer
			}{&in, outs[i]}, false)
		}()
	}
	for range streams {
		<-blocked
	}
	during := heap()
	close(release)
	for range streams {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("heap: %d MiB before, %d MiB while %d streams serve a %d MiB blob", before>>20, during>>20, streams, size>>20)
	if during > before+size/2 {
		t.Errorf("the heap grew by %d MiB while %d streams served a %d MiB blob; want less than half a copy", (during-before)>>20, streams, size>>20)
	}
	for i, out := range outs {
		r := bufio.NewReader(&out.Buffer)
		msg, err := readFrame(r, protocol.MaxBlobMessage)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := protocol.DecodeBlobResponse(msg)
		if err != nil || resp.Size == nil || *resp.Size != size {
			t.Fatalf("stream %d: answer %+v, %v; want the size %d", i, resp, err, size)
		}
		if got, _ := io.ReadAll(r); !bytes.Equal(got, data) {
			t.Fatalf("stream %d: %d bytes served, not the blob", i, len(got))
		}
	}
}
