package node_test

import (
	"context"
	"errors"
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

// TestBlobSweepsBackOffUnderTrickle: payloads that no peer has are tried
// again with a back-off, whatever else arrives. A trickle of new records,
// each referencing more new payloads than the fetch queue has room for,
// must not make every save start a sweep that tries every missing payload
// of the commons again (each attempt asks every connected peer).
func TestBlobSweepsBackOffUnderTrickle(t *testing.T) {
	const (
		queueCap, retryCap, chunk = 2, 2, 4
		stale                     = 20 // payloads nobody has, referenced first
		trickle                   = 60 // records, one a second, 3 new payloads each
	)
	var mu sync.Mutex
	counting := false
	attempts := map[cid.Cid]int{}
	opts := testnet.Options{Nodes: 3, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			node.SetBlobBounds(cfg, queueCap, retryCap, chunk, func(c cid.Cid) {
				mu.Lock()
				if counting {
					attempts[c]++
				}
				mu.Unlock()
			})
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		ctx := context.Background()
		id, err := n.Node(1).CreateManifest(ctx, api.ManifestParams{Name: ptr("trickle"), Licence: ptr("MIT")})
		if err != nil {
			t.Fatal(err)
		}
		seq := 0
		contribute := func(k int) []cid.Cid {
			var ps []api.PayloadParam
			var cs []cid.Cid
			for range k {
				seq++
				b, err := n.Node(1).PutBlob(ctx, []byte{byte(seq), byte(seq >> 8), 'r'})
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, api.PayloadParam{CID: b})
				cs = append(cs, cid.MustParse(b))
			}
			if _, err := n.Node(1).Contribute(ctx, api.ContributeParams{Commons: id, Title: "payloads", Payload: ps}); err != nil {
				t.Fatal(err)
			}
			return cs
		}
		var staleBlobs []cid.Cid
		for range stale {
			staleBlobs = append(staleBlobs, contribute(1)...)
		}
		first, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}
		// Node 0 gets the records while node 1 (the only holder of the
		// payloads) is not its peer; node 2, its peer, has none of them.
		n.Connect(0, 2)
		if _, err := sim.Deliver(ctx, n.Node(0), first...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute) // the stale payloads fail and back off

		for range trickle {
			contribute(3)
		}
		all, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}
		old := map[string]bool{}
		for _, r := range first {
			old[string(r)] = true
		}
		mu.Lock()
		counting = true
		mu.Unlock()
		for _, r := range all {
			if old[string(r)] {
				continue
			}
			if _, err := sim.Deliver(ctx, n.Node(0), r); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		mu.Lock()
		counting = false
		most := 0
		for _, c := range staleBlobs {
			most = max(most, attempts[c])
		}
		mu.Unlock()
		// The first retry waits blobRetry (1 s), and each later one twice
		// as long: the attempts that fit in the trickle, and one for slack.
		limit := 1
		for wait, d := time.Duration(0), time.Second; wait <= trickle*time.Second; d *= 2 {
			wait += d
			limit++
		}
		if most > limit {
			t.Errorf("a payload nobody has was tried %d times in %d s of trickle; want at most %d (back-off)", most, trickle, limit)
		}
	})
}

// scanFailingStore fails every scan of the blob references ('b' rows).
type scanFailingStore struct {
	store.Store
	scans *atomic.Int64
}

func (s scanFailingStore) ScanDerived(ctx context.Context, c cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error {
	if len(prefix) > 0 && prefix[0] == 'b' {
		s.scans.Add(1)
		return errors.New("read error (test)")
	}
	return s.Store.ScanDerived(ctx, c, prefix, from, fn)
}

// TestBlobSweepReadErrorsBackOff: when the blob references cannot be
// read, the sweep that would fetch the missing payloads is tried again
// with a growing wait, not at every retry tick (each try reads the disk
// and logs a warning).
func TestBlobSweepReadErrorsBackOff(t *testing.T) {
	var scans atomic.Int64
	opts := testnet.Options{Nodes: 2, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Store = scanFailingStore{Store: cfg.Store, scans: &scans}
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		if _, err := n.Node(0).CreateManifest(context.Background(), api.ManifestParams{Name: ptr("unreadable"), Licence: ptr("MIT")}); err != nil {
			t.Fatal(err)
		}
		n.Restart(0) // it sweeps at start, with a peer: the commons is there now
		n.Connect(0, 1)
		time.Sleep(time.Second)
		start := scans.Load()
		if start == 0 {
			t.Fatal("no sweep at start")
		}
		time.Sleep(time.Hour)
		// A retry tick every 30 s would be 120 tries; backing off from
		// 30 s, doubling, is 7.
		if got := scans.Load() - start; got > 10 {
			t.Errorf("%d sweeps of unreadable references in an hour; want a back-off (at most 10)", got)
		}
	})
}
