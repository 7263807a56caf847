package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/protocol"
)

// A peer that announces a blob of the largest size accepted and then
// sends a few bytes costs the fetching node those bytes, not the size it
// announced.
func TestBlobFetchAllocatesWhatArrives(t *testing.T) {
	const announced = 256 << 20
	c := protocol.BlobCID([]byte("the blob asked for"))
	var in bytes.Buffer
	size := uint64(announced)
	resp, err := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &size})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(&in, resp); err != nil {
		t.Fatal(err)
	}
	in.Write(make([]byte, 1000))
	n := &Node{}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = n.fetchOn(struct {
		io.Reader
		io.Writer
	}{&in, io.Discard}, c, blobPlan{limit: announced, unknown: true})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a blob cut short after 1000 of %d bytes: err %v, want io.ErrUnexpectedEOF", announced, err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("fetching it allocated %d bytes; the peer sent 1000", got)
	}
}

// The per-peer counts of the blob exchange hold only peers with something
// running, and the peers remembered for bad answers are bounded: peer IDs
// cost nothing to make.
func TestBlobPeerCountsBounded(t *testing.T) {
	var b blobState
	b.init(blobBounds{})
	id := func(i int) peer.ID { return peer.ID(fmt.Sprint("peer ", i)) }
	for i := range 3 * blobServeTotal {
		if b.startServing(id(i)) {
			b.stopServing(id(i))
		}
	}
	if len(b.serving) != 0 || b.served != 0 {
		t.Errorf("after every stream ended: %d peers in serving, %d streams counted", len(b.serving), b.served)
	}
	for i := range 3 * blobBadPeers {
		b.markBad(id(i))
	}
	if len(b.bad) > blobBadPeers {
		t.Errorf("%d peers remembered for bad answers, at most %d wanted", len(b.bad), blobBadPeers)
	}
	b.markBad(id(0))
	b.markBad(id(0))
	if b.bad[id(0)] < 2 {
		t.Errorf("a peer's bad answers: %d counted, want 2 or more", b.bad[id(0)])
	}
}

// Serving is capped per peer and in all: one peer gets blobServePerPeer
// streams at once, and peers together blobServeTotal, each new one then
// told it is busy; a slot given back is taken again.
func TestBlobServeSlots(t *testing.T) {
	var b blobState
	b.init(blobBounds{})
	id := func(i int) peer.ID { return peer.ID(fmt.Sprint("peer ", i)) }
	for range blobServePerPeer {
		if !b.startServing(id(0)) {
			t.Fatal("a peer was refused before blobServePerPeer streams")
		}
	}
	if b.startServing(id(0)) {
		t.Errorf("a peer got %d streams at once, limit %d", blobServePerPeer+1, blobServePerPeer)
	}
	got := blobServePerPeer
	for i := 1; b.startServing(id(i)); i++ {
		got++
		if got > 10*blobServeTotal {
			break
		}
	}
	if got != blobServeTotal {
		t.Errorf("%d streams served at once over many peers, want blobServeTotal (%d)", got, blobServeTotal)
	}
	b.stopServing(id(0))
	if !b.startServing(id(999)) {
		t.Error("a slot given back was not taken again")
	}
}
