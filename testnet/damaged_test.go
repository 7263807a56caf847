package testnet

import (
	"bytes"
	"context"
	"fmt"
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
	// blob reads as damaged while blobDamaged, until PutBlob is given it.
	blob        cid.Cid
	blobDamaged atomic.Bool
	blobMended  atomic.Bool
}

func (s *damagingStore) GetBlob(ctx context.Context, c cid.Cid) ([]byte, error) {
	if s.blobDamaged.Load() && c.Equals(s.blob) {
		return nil, fmt.Errorf("damagingStore: %w: blob %s", store.ErrCorrupt, c)
	}
	return s.Store.GetBlob(ctx, c)
}

func (s *damagingStore) ReadBlob(ctx context.Context, c cid.Cid, off int64, p []byte) (int, int64, error) {
	if off == 0 && s.blobDamaged.Load() && c.Equals(s.blob) {
		return 0, 0, fmt.Errorf("damagingStore: %w: blob %s", store.ErrCorrupt, c)
	}
	return s.Store.ReadBlob(ctx, c, off, p)
}

func (s *damagingStore) PutBlob(ctx context.Context, data []byte) (cid.Cid, error) {
	c, err := s.Store.PutBlob(ctx, data)
	if err == nil && c.Equals(s.blob) && s.blobDamaged.CompareAndSwap(true, false) {
		s.blobMended.Store(true)
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

// A node whose state is derived again while one of its records is
// damaged on disk starts without it, and the next sync with a peer brings
// it back: the peer's copy mends the store, and the two converge.
func TestDamagedRecordComesBackBySync(t *testing.T) {
	ds := &damagingStore{}
	opts := Options{Nodes: 2, ExchangeInterval: 30 * time.Second, Configure: func(i int, cfg *node.Config) {
		if i == 1 {
			ds.Store = cfg.Store
			cfg.Store = ds
		}
	}}
	Run(t, opts, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.Connect(0, 1)
		id := found(t, n, 0, []int{0}, 1)
		if err := n.Node(1).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		var cons []string
		for k := range 5 {
			cons = append(cons, contribute(t, n, 0, id, fmt.Sprintf("record %d", k)))
		}
		n.WaitConverged(id, 0, 1)
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

// A blob stored damaged is neither served to a peer nor returned: reading
// it fetches it again from a peer, whose copy the store writes in its
// place, and then it is served.
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
		data := blobData(50_000, 3)
		id := found(t, n, 0, nil, 0)
		_, b := contributeBlob(t, n, 0, id, data)
		copyRecords(t, n, 0, 1, id)
		n.Connect(1, 0)
		n.WaitFor("node 1 fetches the payload", func() bool { return hasBlob(n, 1, b, t) })
		ds.blob = mustCID(t, b)
		ds.blobDamaged.Store(true)

		// Node 2 knows only node 1: the damaged bytes are not served.
		copyRecords(t, n, 0, 2, id)
		n.Connect(2, 1)
		if _, err := n.Node(2).GetBlob(ctx, b); err == nil {
			t.Fatal("node 2 got the payload from node 1, which holds it damaged")
		}

		got, err := n.Node(1).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node 1: GetBlob of its damaged payload: %d bytes, %v; want it fetched again", len(got), err)
		}
		if !ds.blobMended.Load() {
			t.Error("the peer's copy was not given to the store")
		}
		if got, err := n.Node(2).GetBlob(ctx, b); err != nil || !bytes.Equal(got, data) {
			t.Errorf("node 2, once node 1 holds it whole: %d bytes, %v", len(got), err)
		}
	})
}
