package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ipfs/go-cid"
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
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, errBadBlob) {
		t.Errorf("a blob cut short after 1000 of %d bytes: err %v, want io.ErrUnexpectedEOF, counted against the peer", announced, err)
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
	for i := range 100 {
		for range blobServePerPeer {
			if !b.startServing(id(i)) {
				t.Fatalf("peer %d refused before blobServePerPeer streams", i)
			}
		}
		if b.startServing(id(i)) {
			t.Fatalf("peer %d got %d streams at once, limit %d", i, blobServePerPeer+1, blobServePerPeer)
		}
		for range blobServePerPeer {
			b.stopServing(id(i))
		}
	}
	if len(b.serving) != 0 {
		t.Errorf("after every stream ended: %d peers still counted", len(b.serving))
	}
	// A peer that answered badly three times is not forgotten for the
	// many new IDs that each answer badly once.
	for range 3 {
		b.markBad(id(-1))
	}
	for i := range 3 * blobBadPeers {
		b.markBad(id(i))
	}
	if len(b.bad) > blobBadPeers {
		t.Errorf("%d peers remembered for bad answers, at most %d wanted", len(b.bad), blobBadPeers)
	}
	if b.bad[id(-1)] != 3 {
		t.Errorf("the peer with three bad answers: %d remembered, want 3", b.bad[id(-1)])
	}
}

// readBlob takes exactly the size announced: all of it, also when the
// last bytes come with the end of the stream, and an error naming what
// was missing when the stream ends early.
func TestReadBlob(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 50_000) // 800 KB: several growths
	got, err := readBlob(iotest.DataErrReader(bytes.NewReader(data)), uint64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the whole blob, EOF with the last bytes: %d bytes, %v", len(got), err)
	}
	got, err = readBlob(iotest.OneByteReader(bytes.NewReader(data[:1000])), uint64(len(data)))
	if !errors.Is(err, io.ErrUnexpectedEOF) || got != nil {
		t.Errorf("a blob cut short: %d bytes, %v; want io.ErrUnexpectedEOF", len(got), err)
	}
	if got, err := readBlob(bytes.NewReader(nil), 0); err != nil || len(got) != 0 {
		t.Errorf("an empty blob: %d bytes, %v", len(got), err)
	}
}

// A peer is set aside for lacking payloads after blobLackMisses
// "missing" answers in a row, for blobLackWait, then twice as long each
// time; "missing" answers while it is set aside (to fresh payloads, or to
// a user's fetch) do not count; and the peers remembered are bounded.
func TestBlobLackingPeers(t *testing.T) {
	var b blobState
	b.init(blobBounds{})
	p := peer.ID("lacking peer")
	now := time.Unix(1_700_000_000, 0)
	for round, want := range []time.Duration{blobLackWait, 2 * blobLackWait, 4 * blobLackWait} {
		for i := range blobLackMisses - 1 {
			if d := b.missed(p, now); d != 0 || b.lacks(p, now) {
				t.Fatalf("round %d: set aside after %d misses, want %d", round, i+1, blobLackMisses)
			}
		}
		if d := b.missed(p, now); d != want || !b.lacks(p, now) {
			t.Fatalf("round %d: after %d misses set aside for %v (lacks: %v), want %v", round, blobLackMisses, d, b.lacks(p, now), want)
		}
		for range 3 * blobLackMisses {
			if d := b.missed(p, now.Add(want-time.Second)); d != 0 {
				t.Fatalf("round %d: a miss while set aside set it aside again, for %v", round, d)
			}
		}
		now = now.Add(want)
		if b.lacks(p, now) {
			t.Fatalf("round %d: still set aside after %v", round, want)
		}
	}
	// Set aside a fourth time, for 8 minutes: the many new IDs, each set
	// aside for a minute, do not wash it out.
	for range blobLackMisses {
		b.missed(p, now)
	}
	for i := range 3 * blobBadPeers {
		for range blobLackMisses {
			b.missed(peer.ID(fmt.Sprint("peer ", i)), now)
		}
	}
	if len(b.lacking) > blobBadPeers {
		t.Errorf("%d peers remembered for lacking payloads, at most %d wanted", len(b.lacking), blobBadPeers)
	}
	if !b.lacks(p, now.Add(7*time.Minute)) {
		t.Error("the peer set aside longest was forgotten for new IDs set aside a minute")
	}
	if got, want := b.lackEnds(now), now.Add(blobLackWait); !got.Equal(want) {
		t.Errorf("retries that left set-aside peers out are due at %v, want %v (the first set aside may be asked then)", got, want)
	}
}

// Peers that keep connecting make the failed fetches due again at most
// every blobSweepRetry, then twice as seldom each time while no background
// fetch succeeds; a peer set aside for lacking payloads does not at all.
func TestBlobPeerJoinsBackOff(t *testing.T) {
	var b blobState
	b.init(blobBounds{})
	now := time.Unix(1_700_000_000, 0)
	r := &blobRetryState{failures: 10}
	b.retry[cid.Undef] = r
	due := 0
	for s := range 3600 { // a new peer every second for an hour
		r.next = now.Add(time.Hour)
		b.peerJoined(peer.ID(fmt.Sprint("peer ", s)), now.Add(time.Duration(s)*time.Second))
		if r.next.IsZero() {
			due++
		}
	}
	// At 0, 30 s, then 1, 2, 4, 8, 16 and 32 minutes after the one before.
	if due < 2 || due > 8 {
		t.Errorf("an hour of peers connecting made the failed fetches due %d times; want 2 to 8", due)
	}
	lacking := peer.ID("lacking")
	for range blobLackMisses {
		b.missed(lacking, now)
	}
	b.joinSweep, b.joins = time.Time{}, 0
	r.next = now.Add(time.Hour)
	b.peerJoined(lacking, now)
	if r.next.IsZero() {
		t.Error("a peer set aside for lacking payloads made the failed fetches due")
	}
}
