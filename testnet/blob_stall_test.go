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

// blobAnswerWait is node.blobAnswerWait; blobTimeout node.blobTimeout.
const (
	blobAnswerWait = 10 * time.Second
	blobTimeout    = 2 * time.Minute
)

// A peer that reads a blob request and never answers it does not hold a
// fetch: with nothing else to ask, the fetch gives up after about a second
// (not the whole attempt's 2 minutes). Its request times out after the
// answer's wait, and it is asked last from then on: later payloads come
// from an honest peer without asking it at all.
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
		joinTopic(t, n, evil, id)
		n.WaitTopicPeers(id, 2, 1)
		before := asked.Load()
		for k := range 6 {
			_, b := contributeBlob(t, n, 0, id, blobData(20_000, byte(10+k)))
			n.WaitFor("a later payload on node 1", func() bool { return hasBlob(n, 1, b, t) })
		}
		n.Settle(time.Minute) // retries, had any been left
		if got := asked.Load() - before; got > 0 {
			t.Errorf("the silent peer was asked %d times for a payload an honest peer had", got)
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
		if took := time.Since(start); took >= blobAnswerWait {
			t.Errorf("the payload took %v with two silent peers", took)
		}
	})
}
