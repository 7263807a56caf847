package node_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
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

// blobAskCountingStore counts the blobs looked up in it: on a node that
// replicates no record claiming them, the requests its peers sent for
// them.
type blobAskCountingStore struct {
	store.Store
	asked *atomic.Int64
}

func (s blobAskCountingStore) HasBlob(ctx context.Context, c cid.Cid) (bool, error) {
	s.asked.Add(1)
	return s.Store.HasBlob(ctx, c)
}

// TestBlobSweepSparesPeersLackingPayloads: a node whose records claim
// many old payloads that its only peer lacks does not ask that peer for
// each of them at every sweep, but it still asks the peer for a fresh
// payload, which it has, and fetches the old ones as soon as a peer that
// has them connects.
func TestBlobSweepSparesPeersLackingPayloads(t *testing.T) {
	const (
		queueCap, retryCap, chunk = 8, 8, 16
		blobs                     = 400
	)
	var asked atomic.Int64
	opts := testnet.Options{Nodes: 3, Configure: func(i int, cfg *node.Config) {
		switch i {
		case 0:
			node.SetBlobBounds(cfg, queueCap, retryCap, chunk, nil)
		case 1:
			cfg.Store = blobAskCountingStore{Store: cfg.Store, asked: &asked}
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		ctx := context.Background()
		// Node 2 holds the payloads and is nobody's peer yet. Its records
		// reach node 0 once they are old: their payloads are not spreading
		// with them.
		want, raws := payloadCommons(t, n.Node(2), "lacked", blobs)
		time.Sleep(time.Hour)
		n.Connect(0, 1)
		if _, err := sim.Deliver(ctx, n.Node(0), raws...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		// Without the rule, each sweep asks for every payload: the first
		// at once, then after 30 s, 1, 2, 4, 8, 16 and 32 minutes (the
		// failures left out of the retry map back off as a whole). With
		// it, the peer is asked blobLackMisses of them, then set aside for
		// 1, 2, 4, 8, 16 and 32 minutes in turn: 6 times in the hour, and
		// one for slack.
		limit := int64(7 * node.BlobLackMisses)
		t.Logf("the peer lacking the payloads was asked for %d of them in the hour", asked.Load())
		if got := asked.Load(); got == 0 || got > limit {
			t.Fatalf("a peer lacking every old payload was asked for %d of them in an hour; want some, at most %d (%d payloads)", got, limit, blobs)
		}

		// A fresh payload, which the set-aside peer has, is asked of it.
		fresh, err := n.Node(2).PutBlob(ctx, []byte("fresh payload"))
		if err != nil {
			t.Fatal(err)
		}
		genesis, err := protocol.Parse(raws[0])
		if err != nil {
			t.Fatal(err)
		}
		id := genesis.CommonsID().String()
		if _, err := n.Node(2).Contribute(ctx, api.ContributeParams{Commons: id, Title: "fresh", Payload: []api.PayloadParam{{CID: fresh}}}); err != nil {
			t.Fatal(err)
		}
		all, err := sim.Records(ctx, n.Node(2), id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Deliver(ctx, n.Node(1), all...); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Node(1).PutBlob(ctx, []byte("fresh payload")); err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Deliver(ctx, n.Node(0), all[len(all)-1]); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n.WaitFor("the fresh payload fetched from the peer that lacked the old ones", func() bool {
			ok, err := n.Store(0).HasBlob(ctx, cid.MustParse(fresh))
			return err == nil && ok
		})
		if took := time.Since(start); took > time.Minute {
			t.Errorf("the fresh payload took %v; want it fetched within a minute", took)
		}

		// A peer that has the old payloads connects: they all arrive,
		// without waiting for the set-aside peer's turn.
		n.WaitFor("the peer lacking the old payloads set aside again", func() bool {
			return node.SetAside(n.Node(0), n.ID(1)) > 0
		})
		start = time.Now()
		n.Connect(0, 2)
		n.WaitFor("every old payload fetched from the new peer", func() bool { return allStored(t, n.Store(0), want) })
		if took := time.Since(start); took > time.Minute {
			t.Errorf("the old payloads took %v to come from a peer that has them; want them within a minute", took)
		}
	})
}

// allStored reports whether st holds every blob of want.
func allStored(t *testing.T, st store.Store, want []string) bool {
	t.Helper()
	for _, b := range want {
		if ok, err := st.HasBlob(context.Background(), cid.MustParse(b)); err != nil || !ok {
			return false
		}
	}
	return true
}

// TestBlobSetAsidePeerAskedWhenOthersFail: a peer set aside for lacking
// old payloads is asked for them all the same when the other peers fail
// otherwise than by lacking them (here a peer that is always busy): a peer
// that never answers "missing" must not keep the node from one that has
// the payloads until the set-aside ends.
func TestBlobSetAsidePeerAskedWhenOthersFail(t *testing.T) {
	const blobs = 100
	opts := testnet.Options{Nodes: 3, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			node.SetBlobBounds(cfg, 8, 8, 16, nil)
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		ctx := context.Background()
		want, raws := payloadCommons(t, n.Node(2), "refused", blobs)
		time.Sleep(time.Hour) // old records, by the time they arrive
		if _, err := sim.Deliver(ctx, n.Node(1), raws...); err != nil {
			t.Fatal(err)
		}
		n.Connect(0, 1)
		if _, err := sim.Deliver(ctx, n.Node(0), raws...); err != nil {
			t.Fatal(err)
		}
		n.WaitFor("node 1, lacking the payloads, set aside", func() bool {
			return node.SetAside(n.Node(0), n.ID(1)) > 0
		})
		for i := range blobs {
			if _, err := n.Node(1).PutBlob(ctx, payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		aside := node.SetAside(n.Node(0), n.ID(1))
		busy := n.AddHost()
		n.Host(busy).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			r := bufio.NewReader(s)
			size, err := binary.ReadUvarint(r)
			if err != nil || size > protocol.MaxBlobMessage {
				return
			}
			if _, err := io.CopyN(io.Discard, r, int64(size)); err != nil {
				return
			}
			resp, err := protocol.EncodeBlobResponse(&protocol.BlobResponse{Busy: true})
			if err != nil {
				return
			}
			_, _ = s.Write(append(binary.AppendUvarint(nil, uint64(len(resp))), resp...))
		})
		n.Connect(0, busy)
		start := time.Now()
		n.WaitFor("every payload fetched from the set-aside peer", func() bool { return allStored(t, n.Store(0), want) })
		if took := time.Since(start); took >= aside {
			t.Errorf("the payloads took %v, as long as node 1 was set aside (%v): it was not asked while a peer that is always busy was there", took, aside)
		}
	})
}

// TestBlobFetchesComeDueWhenAPeerJoins: payloads that failed for long,
// their retries and sweeps backing off towards an hour, are tried again
// soon after a peer connects, which may have them.
func TestBlobFetchesComeDueWhenAPeerJoins(t *testing.T) {
	const blobs = node.BlobLackMisses / 2 // too few for the peer to be set aside
	opts := testnet.Options{Nodes: 3, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			node.SetBlobBounds(cfg, 2, 2, 4, nil)
		}
	}}
	testnet.Run(t, opts, func(t *testing.T, n *testnet.Net) {
		ctx := context.Background()
		want, raws := payloadCommons(t, n.Node(2), "backed off", blobs)
		time.Sleep(time.Hour) // old records, by the time they arrive
		n.Connect(0, 1)
		if _, err := sim.Deliver(ctx, n.Node(0), raws...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Hour) // the retries and the sweeps back off
		if node.SetAside(n.Node(0), n.ID(1)) > 0 {
			t.Fatal("node 1 set aside: the test needs it asked")
		}
		start := time.Now()
		n.Connect(0, 2)
		n.WaitFor("every payload fetched from the new peer", func() bool { return allStored(t, n.Store(0), want) })
		if took := time.Since(start); took > time.Minute {
			t.Errorf("the payloads took %v to come from a peer that connected with them; want them within a minute", took)
		}
	})
}
