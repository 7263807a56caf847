package testnet

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/store"
)

// damagingStore reads one record as damaged, as badgerstore does when the
// record's bytes on disk no longer hash to its CID: its feed pages and
// reads fail naming it, until PutRecords is given its bytes (badgerstore
// then writes them in place of the damaged ones).
type damagingStore struct {
	store.Store
	victim  cid.Cid
	damaged atomic.Bool
	mended  atomic.Bool
	// blobs read as damaged (as badgerstore reads them: GetBlob fails,
	// ReadBlob gives wrong bytes), until PutBlob is given them: then they
	// are mended.
	mu         sync.Mutex
	blobs      map[cid.Cid]bool // damaged
	blobMended map[cid.Cid]bool
}

func (s *damagingStore) damageBlob(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs == nil {
		s.blobs, s.blobMended = map[cid.Cid]bool{}, map[cid.Cid]bool{}
	}
	s.blobs[c] = true
}

func (s *damagingStore) blobState(c cid.Cid) (damaged, mended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs[c], s.blobMended[c]
}

func (s *damagingStore) GetBlob(ctx context.Context, c cid.Cid) ([]byte, error) {
	if damaged, _ := s.blobState(c); damaged {
		return nil, fmt.Errorf("damagingStore: %w: blob %s", store.ErrCorrupt, c)
	}
	return s.Store.GetBlob(ctx, c)
}

func (s *damagingStore) ReadBlob(ctx context.Context, c cid.Cid, off int64, p []byte) (int, int64, error) {
	n, size, err := s.Store.ReadBlob(ctx, c, off, p)
	if damaged, _ := s.blobState(c); damaged && n > 0 {
		p[0] ^= 0x01
	}
	return n, size, err
}

func (s *damagingStore) PutBlob(ctx context.Context, data []byte) (cid.Cid, error) {
	c, err := s.Store.PutBlob(ctx, data)
	if err == nil {
		s.mu.Lock()
		if s.blobs[c] {
			delete(s.blobs, c)
			s.blobMended[c] = true
		}
		s.mu.Unlock()
	}
	return c, err
}

func (s *damagingStore) damage(c cid.Cid) error {
	return fmt.Errorf("damagingStore: %w", &store.DamagedRecordError{CID: c})
}

func (s *damagingStore) Feed(ctx context.Context, commons cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	page, err := s.Store.Feed(ctx, commons, after, limit)
	if err != nil || !s.damaged.Load() {
		return page, err
	}
	for _, st := range page {
		if st.CID.Equals(s.victim) {
			return nil, fmt.Errorf("damagingStore: %w", &store.DamagedRecordError{CID: st.CID, Cursor: st.Cursor})
		}
	}
	return page, nil
}

func (s *damagingStore) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	if s.damaged.Load() && c.Equals(s.victim) {
		return nil, s.damage(c)
	}
	return s.Store.GetRecord(ctx, c)
}

func (s *damagingStore) GetRecords(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	for _, c := range cs {
		if s.damaged.Load() && c.Equals(s.victim) {
			return nil, s.damage(c)
		}
	}
	return s.Store.GetRecords(ctx, cs)
}

func (s *damagingStore) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	cursors, err := s.Store.PutRecords(ctx, es)
	if err == nil {
		for _, e := range es {
			if e.CID.Equals(s.victim) && s.damaged.CompareAndSwap(true, false) {
				s.mended.Store(true)
			}
		}
	}
	return cursors, err
}

// runDamaging runs fn on a Net of nodes members whose node 1 stores
// through ds, after node 0 founded a commons with 5 contributions and node
// 1 replicated it.
func runDamaging(t *testing.T, nodes int, fn func(t *testing.T, n *Net, ds *damagingStore, id string, cons []string)) {
	ds := &damagingStore{}
	opts := Options{Nodes: nodes, ExchangeInterval: 30 * time.Second, Configure: func(i int, cfg *node.Config) {
		if i == 1 {
			ds.Store = cfg.Store
			cfg.Store = ds
		}
	}}
	Run(t, opts, func(t *testing.T, n *Net) {
		n.Connect(0, 1)
		id := found(t, n, 0, []int{0}, 1)
		if err := n.Node(1).Join(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		var cons []string
		for k := range 5 {
			cons = append(cons, contribute(t, n, 0, id, fmt.Sprintf("record %d", k)))
		}
		n.WaitConverged(id, 0, 1)
		fn(t, n, ds, id, cons)
	})
}

// A node whose state is derived again while one of its records is
// damaged on disk starts without it, and the next sync with a peer brings
// it back: the peer's copy mends the store, and the two converge.
func TestDamagedRecordComesBackBySync(t *testing.T) {
	runDamaging(t, 2, func(t *testing.T, n *Net, ds *damagingStore, id string, cons []string) {
		ctx := context.Background()
		want := n.MustCommons(1, id)

		n.Stop(1)
		// The derived state of an earlier rules version, to be derived
		// again at the next start (node's versionKey), and a record damaged.
		err := n.Store(1).CommitDerived(ctx, []store.Derived{{Commons: mustCID(t, id), Applied: uint64(want.Records - 1),
			Writes: []store.Write{{Key: []byte{'v'}, Value: []byte("layout 3, rules 3")}}}})
		if err != nil {
			t.Fatal(err)
		}
		ds.victim = mustCID(t, cons[2])
		ds.damaged.Store(true)
		n.Start(1)
		if got := n.MustCommons(1, id); got.Records != want.Records-1 {
			t.Fatalf("started with %d records; want %d, the damaged one left out", got.Records, want.Records-1)
		}
		n.Connect(1, 0)
		n.WaitConverged(id, 0, 1)
		if !ds.mended.Load() {
			t.Error("the peer's copy of the damaged record was not given to the store")
		}
		if got := n.MustCommons(1, id); got.Records != want.Records || got.StateRoot != want.StateRoot {
			t.Errorf("after the sync: %d records, root %s; want %d, %s", got.Records, got.StateRoot, want.Records, want.StateRoot)
		}
		show(t, n, 1, cons[2])
	})
}

// A blob stored damaged is not served: the node that holds it finds it
// damaged as it serves it (a blob of one chunk: it answers that it lacks
// it; of several: it resets the stream before the last), fetches it again
// from another peer by itself, then serves it. A damaged blob read
// through the API is fetched again at once.
func TestDamagedBlobFetchedAgain(t *testing.T) {
	ds := &damagingStore{}
	opts := Options{Nodes: 3, ExchangeInterval: time.Hour, Configure: func(i int, cfg *node.Config) {
		if i == 1 {
			ds.Store = cfg.Store
			cfg.Store = ds
		}
	}}
	Run(t, opts, func(t *testing.T, n *Net) {
		ctx := context.Background()
		payloads := map[string][]byte{}
		id := found(t, n, 0, nil, 0)
		var made []string
		for k, size := range []int{50_000, 600_000, 70_000} {
			data := blobData(size, byte(k))
			_, b := contributeBlob(t, n, 0, id, data)
			payloads[b] = data
			made = append(made, b)
		}
		small, large, read := made[0], made[1], made[2] // served in one chunk, served in several, read
		copyRecords(t, n, 0, 1, id)
		n.Connect(1, 0)
		n.WaitFor("node 1 fetches the payloads", func() bool { return hasBlob(n, 1, small, t) && hasBlob(n, 1, large, t) && hasBlob(n, 1, read, t) })
		for b := range payloads {
			ds.damageBlob(mustCID(t, b))
		}

		got, err := n.Node(1).GetBlob(ctx, read)
		if err != nil || !bytes.Equal(got, payloads[read]) {
			t.Fatalf("node 1: GetBlob of its damaged payload: %d bytes, %v; want it fetched again", len(got), err)
		}
		if damaged, mended := ds.blobState(mustCID(t, read)); damaged || !mended {
			t.Error("the peer's copy was not given to the store")
		}

		// Node 2 knows only node 1.
		copyRecords(t, n, 0, 2, id)
		n.Connect(2, 1)
		for _, b := range []string{small, large} {
			n.WaitFor("node 1 finds a payload damaged as it serves it, and fetches it again from node 0", func() bool {
				_, mended := ds.blobState(mustCID(t, b))
				return mended
			})
		}
		n.WaitFor("node 2 gets every payload from node 1", func() bool {
			return hasBlob(n, 2, small, t) && hasBlob(n, 2, large, t) && hasBlob(n, 2, read, t)
		})
		for b, data := range payloads {
			if got, err := n.Store(2).GetBlob(ctx, mustCID(t, b)); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("node 2's copy of %s: %d bytes, %v", b, len(got), err)
			}
		}
	})
}

// A record the state holds but the store holds damaged is not sent by
// sync, and costs the session no more than its own absence: a peer that
// joins from that node alone gets every other record, and the damaged one
// from another peer later.
func TestDamagedRecordNotSent(t *testing.T) {
	runDamaging(t, 3, func(t *testing.T, n *Net, ds *damagingStore, id string, cons []string) {
		ctx := context.Background()
		want := n.MustCommons(0, id)
		ds.victim = mustCID(t, cons[2])
		ds.damaged.Store(true)

		n.Connect(2, 1)
		if err := n.Node(2).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		n.WaitRecords(id, want.Records-1, 2)
		if ok, err := n.Store(2).HasRecord(ctx, ds.victim); ok || err != nil {
			t.Fatalf("node 2 got the damaged record from node 1 (%v)", err)
		}
		n.Connect(2, 0)
		n.WaitConverged(id, 0, 2)
	})
}
