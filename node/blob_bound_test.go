package node_test

import (
	"context"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/testnet"
	"github.com/commons-p2p/commons/testnet/sim"
)

// TestBlobMemoryBounded: a node holding many more references to payloads
// it cannot fetch than its blob exchange's caps keeps its queue and retry
// map within them, holds no reference in memory once saved, and still
// tries every payload, again and again, through sweeps of the stored
// references; those a peer has later arrive.
func TestBlobMemoryBounded(t *testing.T) {
	const (
		queueCap, retryCap, chunk = 4, 8, 3
		blobs                     = 120
		given                     = 5 // payloads a peer has later
	)
	var mu sync.Mutex
	attempts := map[cid.Cid]int{}
	opts := testnet.Options{Nodes: 3, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			node.SetBlobBounds(cfg, queueCap, retryCap, chunk, func(c cid.Cid) {
				mu.Lock()
				attempts[c]++
				mu.Unlock()
			})
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		ctx := context.Background()
		// Node 1 contributes the payloads; node 0 gets the records while
		// alone, so that no peer has them for it.
		id, err := n.Node(1).CreateManifest(ctx, api.ManifestParams{Name: ptr("bounded"), Licence: ptr("MIT")})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range blobs {
			b, err := n.Node(1).PutBlob(ctx, payload(i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Node(1).Contribute(ctx, api.ContributeParams{Commons: id, Title: "payload", Payload: []api.PayloadParam{{CID: b}}}); err != nil {
				t.Fatal(err)
			}
			want = append(want, b)
		}
		raws, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Deliver(ctx, n.Node(0), raws...); err != nil {
			t.Fatal(err)
		}

		within := func() {
			t.Helper()
			queue, queued, retry, _ := node.BlobMemory(n.Node(0))
			if queue > queueCap || queued > queueCap+node.BlobWorkers || retry > retryCap {
				t.Fatalf("blob exchange over its caps: %d queued (cap %d), %d queued or running, %d to retry (cap %d)", queue, queueCap, queued, retry, retryCap)
			}
		}
		attemptedAll := func(times int) func() bool {
			return func() bool {
				within()
				mu.Lock()
				defer mu.Unlock()
				for _, b := range want {
					if attempts[cid.MustParse(b)] < times {
						return false
					}
				}
				return true
			}
		}
		n.WaitFor("every payload tried once", attemptedAll(1))
		n.WaitFor("every payload tried again", attemptedAll(2))
		n.WaitFor("no blob reference unsaved", func() bool {
			_, _, _, unsaved := node.BlobMemory(n.Node(0))
			return unsaved == 0
		})

		// Node 2 gets the records and some of the payloads, and node 0 a
		// peer: those arrive.
		if _, err := sim.Deliver(ctx, n.Node(2), raws...); err != nil {
			t.Fatal(err)
		}
		some := want[:given]
		for i := range given {
			if _, err := n.Node(2).PutBlob(ctx, payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		n.Connect(0, 2)
		n.WaitFor("the payloads a peer has fetched", func() bool {
			within()
			for _, b := range some {
				if ok, err := n.Store(0).HasBlob(ctx, cid.MustParse(b)); err != nil || !ok {
					return false
				}
			}
			return true
		})
	})
}

// payload is the i-th payload of TestBlobMemoryBounded.
func payload(i int) []byte { return []byte{byte(i), byte(i >> 8), 'p'} }

func ptr[T any](v T) *T { return &v }
