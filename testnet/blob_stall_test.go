package testnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// A peer that announces a blob and then sends nothing more holds a fetch
// for the stall limit (20 s), not the whole attempt's 2 minutes, and
// counts against it: the blob then comes from an honest peer.
func TestBlobStallingPeer(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		data := blobData(50_000, 3)
		_, b := contributeBlob(t, n, 0, id, data)

		evil := n.AddHost()
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			if !readBlobRequest(s) {
				return
			}
			sz := uint64(len(data))
			resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &sz})
			writeTestFrame(s, resp)
			_, _ = s.Write(data[:100])
			_, _ = io.Copy(io.Discard, s) // and nothing more, until the fetcher gives up
		})

		copyRecords(t, n, 0, 1, id)
		n.Connect(1, evil)
		start := time.Now()
		if _, err := n.Node(1).GetBlob(ctx, b); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob from a stalling peer only: %v, want ErrNotFound", err)
		}
		if took := time.Since(start); took > time.Minute {
			t.Fatalf("a stalling peer held the fetch %v", took)
		}
		if got := metric(t, n, 1, `commons_blob_peer_failures_total{reason="bad"}`); got < 1 {
			t.Errorf("%v bad blob peers counted, want at least 1", got)
		}
		n.Connect(1, 0)
		got, err := n.Node(1).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetBlob with an honest peer too: %d bytes, %v", len(got), err)
		}
	})
}

// blobTimeout is node.blobTimeout.
const blobTimeout = 2 * time.Minute

// A peer that reads a blob request and never answers it does not hold a
// fetch: with nothing else to ask, the fetch gives up after about a second
// (not the whole attempt's 2 minutes). Its request times out after the
// answer's wait and is counted; the payload comes from an honest peer.
func TestBlobSilentPeer(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		data := blobData(20_000, 4)
		_, b1 := contributeBlob(t, n, 0, id, data)

		evil := n.AddHost()
		var asked atomic.Int32
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			if !readBlobRequest(s) {
				return
			}
			asked.Add(1)
			_, _ = io.Copy(io.Discard, s) // no answer, until the fetcher gives up
		})

		copyRecords(t, n, 0, 1, id)
		n.Connect(1, evil)
		start := time.Now()
		if _, err := n.Node(1).GetBlob(ctx, b1); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob from a silent peer only: %v, want ErrNotFound", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("a silent peer held the fetch %v", took)
		}
		if asked.Load() == 0 {
			t.Fatal("the silent peer was never asked")
		}
		n.Connect(1, 0)
		n.WaitFor("the first payload on node 1", func() bool { return hasBlob(n, 1, b1, t) })
		n.Settle(blobTimeout) // every request to the silent peer has ended

		if got := metric(t, n, 1, `commons_blob_peer_failures_total{reason="silent"}`); got < 1 {
			t.Errorf("%v silent blob peers counted, want at least 1", got)
		}
	})
}

// The requests a GetBlob gave up on end when the node closes: Close is not
// held by a silent peer, whatever context the caller gave.
func TestBlobCloseNotHeld(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		_, b := contributeBlob(t, n, 0, id, blobData(20_000, 9))
		copyRecords(t, n, 0, 1, id) // node 1 has no peer: its background fetch fails at once
		evil := n.AddHost()
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			_, _ = io.Copy(io.Discard, s) // no answer, until the fetcher gives up
		})
		n.Connect(1, evil)
		if _, err := n.Node(1).GetBlob(context.Background(), b); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob from a silent peer only: %v, want ErrNotFound", err)
		}
		start := time.Now()
		n.Stop(1)
		if took := time.Since(start); took > time.Second {
			t.Errorf("Close took %v, held by a request to a silent peer", took)
		}
	})
}

// slowBlobServer has host h serve data honestly, but answer each request
// only after delay() and count the requests and the whole sends.
func slowBlobServer(n *Net, h int, data []byte, delay func() time.Duration, asked, sent *atomic.Int32) {
	n.Host(h).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
		defer s.Close()
		if !readBlobRequest(s) {
			return
		}
		asked.Add(1)
		time.Sleep(delay())
		sz := uint64(len(data))
		resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &sz})
		writeTestFrame(s, resp)
		if _, err := s.Write(data); err == nil {
			sent.Add(1)
		}
	})
}

// A peer that answers after 1.5 s (a far link, a busy node) and is the
// only one to hold a payload: the fetch gives up on it after a second, but
// the blob it then sends is kept, not thrown away and asked for again.
func TestBlobLateAnswerKept(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		data := blobData(200_000, 7)
		_, b := contributeBlob(t, n, 0, id, data)
		slow := n.AddHost()
		var asked, sent atomic.Int32
		slowBlobServer(n, slow, data, func() time.Duration { return 1500 * time.Millisecond }, &asked, &sent)
		copyRecords(t, n, 0, 1, id)
		start := time.Now()
		n.Connect(1, slow) // the background fetch starts
		n.WaitFor("the payload on node 1", func() bool { return hasBlob(n, 1, b, t) })
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the payload took %v", took)
		}
		n.Settle(time.Minute)
		if got := sent.Load(); got != 1 {
			t.Errorf("the slow peer sent the payload whole %d times, want 1", got)
		}
	})
}

// An honest peer that stops answering for 25 s (a laptop lid, a long
// pause; the connection stays up) is not banned: silence only puts a peer
// last. Its payload arrives once it answers again.
func TestBlobPausedPeerNotBanned(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		data := blobData(20_000, 8)
		_, b := contributeBlob(t, n, 0, id, data)
		p := n.AddHost()
		var asked, sent atomic.Int32
		resume := time.Now().Add(25 * time.Second)
		slowBlobServer(n, p, data, func() time.Duration { return max(0, time.Until(resume)) }, &asked, &sent)
		n.Connect(1, p)
		copyRecords(t, n, 0, 1, id) // the background fetch starts
		n.WaitFor("the payload on node 1", func() bool { return hasBlob(n, 1, b, t) })
		n.Settle(time.Minute)
		if n.Host(1).Network().Connectedness(n.ID(p)) != network.Connected {
			t.Error("an honest peer silent for 25 s was disconnected")
		}
		if got := asked.Load(); got < 2 {
			t.Errorf("the paused peer was asked %d times; the check checked nothing", got)
		}
	})
}

// A fetch that has no answer within a second asks the next peer as well:
// two silent peers, first or not in the order asked, delay a payload by
// about two seconds, not by two answer waits.
func TestBlobHedge(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		_, b := contributeBlob(t, n, 0, id, blobData(30_000, 6))
		n.JoinAll(id, 1)
		for range 2 {
			evil := n.AddHost()
			n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
				defer s.Close()
				_, _ = io.Copy(io.Discard, s) // no answer, until the fetcher gives up
			})
			joinTopic(t, n, evil, id) // in the topic, among the first asked
			n.Connect(1, evil)
		}
		n.WaitTopicPeers(id, 2, 1)
		start := time.Now()
		n.Connect(0, 1) // the records come by sync, and the fetch starts
		n.WaitFor("the payload on node 1", func() bool { return hasBlob(n, 1, b, t) })
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("the payload took %v with two silent peers", took)
		}
	})
}

// A GetBlob whose caller goes away as soon as it returns (an HTTP request
// does): the late answer of an honest peer is still checked against the
// sizes the records state, here more than the 16 kept at hand, which asks
// the records again, and the blob is stored, the peer not counted bad.
func TestBlobLateAnswerCallerGone(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		data := blobData(20_000, 7)
		_, b := contributeBlob(t, n, 0, id, data)
		for k := range 16 { // other sizes stated for the same blob
			deliver(t, n, 0, [][]byte{forgeContribution(t, n, 0, id, id, b, uint64(100+k))})
		}
		slow := n.AddHost()
		var asked, sent atomic.Int32
		slowBlobServer(n, slow, data, func() time.Duration { return 1500 * time.Millisecond }, &asked, &sent)
		copyRecords(t, n, 0, 1, id) // no peer: the background fetch fails at once
		n.Connect(1, slow)
		ctx, cancel := context.WithCancel(context.Background())
		_, err := n.Node(1).GetBlob(ctx, b)
		cancel()
		if !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob from a peer answering after 1.5 s: %v, want ErrNotFound after a second", err)
		}
		n.WaitFor("the late payload on node 1", func() bool { return hasBlob(n, 1, b, t) })
		if got := metric(t, n, 1, `commons_blob_peer_failures_total{reason="bad"}`); got > 0 {
			t.Errorf("an honest late peer counted bad %v times", got)
		}
	})
}
