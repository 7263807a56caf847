package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
)

// sideBySide calls each index once, with as many calls under way at once
// as it has indexes, up to readersAtOnce.
func TestSideBySide(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, readersAtOnce, readersAtOnce + 5, 50} {
		synctest.Test(t, func(t *testing.T) {
			calls := make([]atomic.Int64, n)
			var inFlight, most atomic.Int64
			release := make(chan struct{})
			done := make(chan struct{})
			go func() {
				sideBySide(n, func(i int) {
					calls[i].Add(1)
					now := inFlight.Add(1)
					for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
					}
					<-release
					inFlight.Add(-1)
				})
				close(done)
			}()
			synctest.Wait() // every call that can start is blocked in it
			if want := int64(min(n, readersAtOnce)); inFlight.Load() != want {
				t.Fatalf("%d reads: %d under way at once, want %d", n, inFlight.Load(), want)
			}
			close(release)
			<-done
			if most.Load() > readersAtOnce {
				t.Fatalf("%d reads: %d at once, more than %d", n, most.Load(), readersAtOnce)
			}
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Fatalf("%d reads: index %d read %d times", n, i, c)
				}
			}
		})
	}
}

// storeKV's GetMany gives what Get gives for each key, present or absent,
// with a view open or not, and the error of any read that fails.
func TestStoreKVGetMany(t *testing.T) {
	st := &flakyDerived{Store: memstore.New()}
	id := testCommonsID(t)
	var ws []store.Write
	var keys [][]byte
	for i := range 20 {
		k := fmt.Appendf(nil, "e%02d", i)
		keys = append(keys, k)
		if i%3 != 0 {
			v := fmt.Appendf(nil, "value %d", i)
			if i == 4 {
				v = []byte{} // stored, and empty
			}
			ws = append(ws, store.Write{Key: append([]byte{prefixCRDT}, k...), Value: v})
		}
	}
	if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Writes: ws, Applied: 1}}); err != nil {
		t.Fatal(err)
	}
	kv := &storeKV{st: st, id: id, prefix: prefixCRDT}
	var _ crdt.ManyKV = kv
	check := func(how string) {
		t.Helper()
		got, err := kv.GetMany(keys)
		if err != nil || len(got) != len(keys) {
			t.Fatalf("%s: GetMany: %d values, %v", how, len(got), err)
		}
		for i, k := range keys {
			want, err := kv.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[i], want) || (got[i] == nil) != (want == nil) || (i%3 == 0) != (want == nil) {
				t.Fatalf("%s: key %s: GetMany gave %q (nil %v), Get %q (nil %v)", how, k, got[i], got[i] == nil, want, want == nil)
			}
		}
	}
	check("without a view")
	kv.begin()
	check("through a view")
	kv.end()

	st.armed.Store(true)
	if got, err := kv.GetMany(keys); !errors.Is(err, errEIO) || got != nil {
		t.Fatalf("GetMany on a failing disk: %d values, %v; want %v", len(got), err, errEIO)
	}
	st.armed.Store(false)

	// A read that panics (badger does, on some damaged blocks) is an
	// error, not the end of the daemon.
	kv.st = panicStore{st}
	if got, err := kv.GetMany(keys); err == nil || !strings.Contains(err.Error(), "damaged block") || got != nil {
		t.Fatalf("GetMany on a store that panics: %d values, %v", len(got), err)
	}
}

// panicStore panics on every read of a derived key or a record, as badger
// does on some damaged blocks.
type panicStore struct{ store.Store }

func (panicStore) GetDerived(context.Context, cid.Cid, []byte) ([]byte, error) {
	panic("damaged block (test)")
}

func (panicStore) GetRecord(context.Context, cid.Cid) ([]byte, error) {
	panic("damaged block (test)")
}

// readRecords hands out each record it read ahead once, reads any other
// from the store, and turns a read that panics into an error.
func TestReadRecords(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	ctx := t.Context()
	id := foundTestCommons(t, n, n.Self())
	var cs []cid.Cid
	for i := range 3 {
		c, err := cid.Decode(must[string](t)(n.Contribute(ctx, api.ContributeParams{Commons: id.String(), Title: fmt.Sprint("c", i)})))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	recs := readRecords(ctx, n.st, cs[:2]).(readAhead)
	if len(recs.reads) != 2 {
		t.Fatalf("%d records read ahead, want 2", len(recs.reads))
	}
	for _, c := range cs {
		b, err := recs.Record(c)
		if err != nil || b.CID != c || b.Record.Contribution() == nil {
			t.Fatalf("record %s: %v", c, err)
		}
	}
	if len(recs.reads) != 0 {
		t.Fatalf("%d records held after they were handed out", len(recs.reads))
	}

	recs = readRecords(ctx, panicStore{n.st}, cs).(readAhead)
	for _, c := range cs {
		if x, ok := recs.reads[c]; ok && (x.err == nil || !strings.Contains(x.err.Error(), "damaged block")) {
			t.Fatalf("record %s from a store that panics: %v", c, x.err)
		}
	}
	if len(recs.reads) == 0 {
		t.Fatalf("no read of a store that panics gave its error")
	}
}

// testCommonsID is a CID to keep a derived state under.
func testCommonsID(t *testing.T) cid.Cid {
	t.Helper()
	c, err := cid.Decode(absentCID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// overlapStore holds each read of a gated key (entry keys ending in, and
// records of, the CIDs in gated) until `at` such reads of its kind are
// under way, so that reads made one after another never finish: a test
// sees them give up after a while, and fails.
type overlapStore struct {
	store.Store
	gated   map[string]bool // CIDs' bytes
	armed   atomic.Bool
	at      int
	entries barrier
	records barrier
}

type barrier struct {
	arrived atomic.Int64
	all     chan struct{}
	missed  atomic.Bool
}

func (b *barrier) wait(at int) {
	if int(b.arrived.Add(1)) == at {
		close(b.all)
	}
	select {
	case <-b.all:
	case <-time.After(10 * time.Second):
		b.missed.Store(true)
	}
}

func (s *overlapStore) GetDerived(ctx context.Context, c cid.Cid, key []byte) ([]byte, error) {
	if s.armed.Load() && len(key) > 2 && key[0] == prefixCRDT && key[1] == 'e' && s.gated[string(key[2:])] {
		s.entries.wait(s.at)
	}
	return s.Store.GetDerived(ctx, c, key)
}

func (s *overlapStore) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	if s.armed.Load() && s.gated[string(c.Bytes())] {
		s.records.wait(s.at)
	}
	return s.Store.GetRecord(ctx, c)
}

// A contribution's lookup on a node just started (nothing of its reviews
// read yet) reads its reviews' entries side by side, then their records
// side by side, and shows what it showed before the restart.
func TestShowReadsReviewsSideBySide(t *testing.T) {
	dir, key, n, c := contributedRepo(t, "reviewed thrice")
	ctx := t.Context()
	gated := map[string]bool{}
	for i, d := range []string{"accept", "reject", "accept"} {
		p := must[api.Published](t)(n.Review(ctx, api.ReviewParams{Target: c, Decision: d, Rationale: fmt.Sprint("take ", i)}))
		r, err := cid.Decode(p.CID)
		if err != nil {
			t.Fatal(err)
		}
		gated[string(r.Bytes())] = true
	}
	want := must[api.RecordInfo](t)(n.Show(ctx, c))
	if len(want.Reviews) != 3 || want.Reviews[2].Rationale != "take 2" || !want.Reviews[2].Counts {
		t.Fatalf("before the restart: %+v", want.Reviews)
	}
	closeNode(t, n)

	var ov *overlapStore
	n, _ = startRepoWith(t, dir, key, nil, func(cfg *Config) {
		ov = &overlapStore{Store: cfg.Store, gated: gated, at: len(gated)}
		ov.entries.all, ov.records.all = make(chan struct{}), make(chan struct{})
		cfg.Store = ov
	})
	defer closeNode(t, n)
	ov.armed.Store(true)
	got, err := n.Show(ctx, c)
	ov.armed.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restart:\n%+v\nbefore:\n%+v", got, want)
	}
	for _, x := range []struct {
		what string
		b    *barrier
	}{{"entries", &ov.entries}, {"records", &ov.records}} {
		if x.b.arrived.Load() != int64(len(gated)) || x.b.missed.Load() {
			t.Errorf("the reviews' %s: %d read, side by side: %v", x.what, x.b.arrived.Load(), !x.b.missed.Load())
		}
	}
}

// A contribution with more reviews than a lookup reads ahead shows every
// one, with its rationale, in order.
func TestShowManyReviews(t *testing.T) {
	dir, key, n, c := contributedRepo(t, "much reviewed")
	ctx := t.Context()
	const reviews = readAheadMax + 6
	for i := range reviews {
		must[api.Published](t)(n.Review(ctx, api.ReviewParams{Target: c, Decision: "accept", Rationale: fmt.Sprint("take ", i)}))
	}
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	info := must[api.RecordInfo](t)(n.Show(ctx, c))
	if len(info.Reviews) != reviews {
		t.Fatalf("%d reviews shown, want %d", len(info.Reviews), reviews)
	}
	for i, r := range info.Reviews {
		if r.Rationale != fmt.Sprint("take ", i) || r.Counts != (i == reviews-1) {
			t.Fatalf("review %d: rationale %q, counts %v", i, r.Rationale, r.Counts)
		}
	}
}

// lateStore answers the first read of the record late as the store did
// before the record arrived: not found.
type lateStore struct {
	store.Store
	late  string // CID bytes
	asked atomic.Int64
}

func (s *lateStore) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	if string(c.Bytes()) == s.late && s.asked.Add(1) == 1 {
		return nil, store.ErrNotFound
	}
	return s.Store.GetRecord(ctx, c)
}

// A lookup reads the record while the loop looks it up: if the record
// arrived between that read and the lookup, so that the state knows a
// record the read did not find, it reads it again.
func TestShowRecordArrivingMeanwhile(t *testing.T) {
	dir, key, n, c := contributedRepo(t, "just arrived")
	ctx := t.Context()
	closeNode(t, n)
	cc, err := cid.Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	var late *lateStore
	n, _ = startRepoWith(t, dir, key, nil, func(cfg *Config) {
		late = &lateStore{Store: cfg.Store, late: string(cc.Bytes())}
		cfg.Store = late
	})
	defer closeNode(t, n)
	info, err := n.Show(ctx, c)
	if err != nil || info.Contribution == nil || info.Contribution.Title != "just arrived" {
		t.Fatalf("Show: %+v, %v", info, err)
	}
	if late.asked.Load() < 2 {
		t.Fatalf("the record read %d times: the test did not make the first read miss it", late.asked.Load())
	}
}

// contributedRepo starts a node on a fresh badger repo, founds a commons
// with the node as its maintainer, and contributes to it: the repo's
// directory and key, the node, and the contribution's CID.
func contributedRepo(t *testing.T, title string) (dir string, key crypto.PrivKey, n *Node, c string) {
	t.Helper()
	dir, key = t.TempDir(), testKey(t)
	n, _ = startRepo(t, dir, key, nil)
	id := foundTestCommons(t, n, n.Self())
	c = must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: title}))
	return dir, key, n, c
}
