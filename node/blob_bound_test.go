package node_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/testnet"
	"github.com/commons-p2p/commons/testnet/sim"
)

// TestBlobMemoryBounded: a node holding many more references to payloads
// it cannot fetch than its blob exchange's caps keeps its queue and retry
// map within them, holds no reference in memory once saved, and still
// tries every payload, again and again, through sweeps of the stored
// references, while it has a peer that lacks them (at the pace such a
// peer is asked: BlobLackMisses payloads, then a wait that doubles, from
// a minute); those the peer has later arrive.
func TestBlobMemoryBounded(t *testing.T) {
	const (
		queueCap, retryCap, chunk = 4, 8, 3
		blobs                     = 40
		given                     = 5 // payloads a peer has later
	)
	var mu sync.Mutex
	attempts := map[cid.Cid]int{}
	opts := testnet.Options{Nodes: 3, Timeout: time.Hour, Configure: func(i int, cfg *node.Config) {
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
		// Node 1 contributes the payloads; node 0 gets the records with
		// node 2 for a peer, which has none of them.
		n.Connect(0, 2)
		want, raws := payloadCommons(t, n.Node(1), "bounded", blobs)
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

		// Node 2 gets the records and some of the payloads: those arrive.
		if _, err := sim.Deliver(ctx, n.Node(2), raws...); err != nil {
			t.Fatal(err)
		}
		some := want[:given]
		for i := range given {
			if _, err := n.Node(2).PutBlob(ctx, payload(i)); err != nil {
				t.Fatal(err)
			}
		}
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

// payloadCommons founds commons name on node a with count contributions,
// each claiming a payload of its own that a stores, and returns the
// payloads' CIDs and the commons' records.
func payloadCommons(t *testing.T, a *node.Node, name string, count int) (payloads []string, records [][]byte) {
	t.Helper()
	ctx := context.Background()
	id, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr(name), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range count {
		b, err := a.PutBlob(ctx, payload(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Contribute(ctx, api.ContributeParams{Commons: id, Title: "payload", Payload: []api.PayloadParam{{CID: b}}}); err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, b)
	}
	records, err = sim.Records(ctx, a, id)
	if err != nil {
		t.Fatal(err)
	}
	return payloads, records
}

// payload is the i-th payload of payloadCommons.
func payload(i int) []byte { return []byte{byte(i), byte(i >> 8), 'p'} }

func ptr[T any](v T) *T { return &v }

// TestBlobFetchWaitsForAPeer: a node with no peer neither tries a payload
// nor sweeps for them, however many its records claim (it would otherwise
// read the record claiming each, at each sweep, to fail at once); once a
// peer connects, it tries them all, and those the peer has arrive.
func TestBlobFetchWaitsForAPeer(t *testing.T) {
	const (
		queueCap, retryCap, chunk = 4, 8, 3
		blobs                     = 60
		given                     = 5
	)
	var mu sync.Mutex
	attempts := map[cid.Cid]int{}
	var reads atomic.Int64
	opts := testnet.Options{Nodes: 2, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			node.SetBlobBounds(cfg, queueCap, retryCap, chunk, func(c cid.Cid) {
				mu.Lock()
				attempts[c]++
				mu.Unlock()
			})
			cfg.Store = readCountingStore{Store: cfg.Store, reads: &reads}
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		ctx := context.Background()
		want, raws := payloadCommons(t, n.Node(1), "alone", blobs)
		before := reads.Load()
		if _, err := sim.Deliver(ctx, n.Node(0), raws...); err != nil {
			t.Fatal(err)
		}
		n.Settle(time.Hour) // retry ticks and sweeps, had anything failed
		mu.Lock()
		tried := len(attempts)
		mu.Unlock()
		queue, queued, retry, _ := node.BlobMemory(n.Node(0))
		if read := reads.Load() - before; tried != 0 || read != 0 || queued > queueCap+node.BlobWorkers || retry != 0 {
			t.Fatalf("alone for an hour: %d payloads tried, %d records read, %d queued (%d or running), %d to retry; want 0, 0, at most %d, 0",
				tried, read, queue, queued, retry, queueCap+node.BlobWorkers)
		}

		// Node 1, which holds the first payloads only, connects.
		for i := given; i < blobs; i++ {
			c := cid.MustParse(want[i])
			if err := n.Store(1).DeleteBlob(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		n.Connect(0, 1)
		n.WaitFor("every payload tried", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(attempts) == blobs
		})
		n.WaitFor("the payloads the peer has fetched", func() bool {
			for _, b := range want[:given] {
				if ok, err := n.Store(0).HasBlob(ctx, cid.MustParse(b)); err != nil || !ok {
					return false
				}
			}
			return true
		})
	})
}

// readCountingStore counts the records read from it.
type readCountingStore struct {
	store.Store
	reads *atomic.Int64
}

func (s readCountingStore) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	s.reads.Add(1)
	return s.Store.GetRecord(ctx, c)
}
