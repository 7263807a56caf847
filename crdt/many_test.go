package crdt

import (
	"errors"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// manyKV is a KV read as a ManyKV: GetMany reads each key through Get, and
// counts its calls and the keys they asked for. fail, if set, is what
// GetMany returns instead; short drops the last value.
type manyKV struct {
	KV
	calls, keys *atomic.Int64
	fail        error
	short       bool
}

func (m manyKV) GetMany(keys [][]byte) ([][]byte, error) {
	m.calls.Add(1)
	m.keys.Add(int64(len(keys)))
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := m.Get(k)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	if m.short {
		out = out[:len(out)-1]
	}
	return out, nil
}

// reviewedState returns a KV holding the state of a commons with one
// contribution and three maintainers' reviews of it, and another
// contribution with none, and the records.
func reviewedState(t *testing.T) (id, reviewed, bare cid.Cid, kv *MemKV, raw rawRecords) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 2, 3}, 2, 2), 0)
	c := contribution(t, g.CID, g.CID, 2, 5, "reviewed")
	other := contribution(t, g.CID, g.CID, 3, 6, "not reviewed")
	bs := []*protocol.Block{g, c, other,
		review(t, g.CID, c.CID, g.CID, 4, 1, protocol.DecisionAccept),
		review(t, g.CID, c.CID, g.CID, 5, 2, protocol.DecisionReject),
		review(t, g.CID, c.CID, g.CID, 6, 3, protocol.DecisionAccept),
	}
	kv, raw = &MemKV{}, rawRecords{}
	s, err := Open(g.CID, kv, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		raw[b.CID] = b.Raw
	}
	mustAdd(t, s, bs...)
	r, err := s.Ready()
	if err != nil || r == nil {
		t.Fatalf("Ready: %v, %v", r, err)
	}
	kv.Apply(r.Writes)
	s.Advance(r)
	return g.CID, c.CID, other.CID, kv, raw
}

// A contribution's reviews are read with one GetMany when the KV has it,
// and the view is the one read key by key; an error of GetMany, or fewer
// values than keys, is the State's error, and no view is given.
func TestStandingReadsReviewsAtOnce(t *testing.T) {
	id, reviewed, bare, kv, raw := reviewedState(t)
	plain, err := Open(id, kv, raw)
	if err != nil {
		t.Fatal(err)
	}
	want, ok, err := plain.Standing(reviewed)
	if err != nil || !ok || len(want.Reviews) != 3 {
		t.Fatalf("Standing read key by key: %v, %v, %d reviews", ok, err, len(want.Reviews))
	}

	var calls, keys atomic.Int64
	s, err := Open(id, manyKV{KV: kv, calls: &calls, keys: &keys}, raw)
	if err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	keys.Store(0)
	got, ok, err := s.Standing(reviewed)
	if err != nil || !ok {
		t.Fatalf("Standing through GetMany: %v, %v", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("through GetMany:\n%+v\nkey by key:\n%+v", got, want)
	}
	if calls.Load() != 1 || keys.Load() != 3 {
		t.Fatalf("GetMany called %d times for %d keys, want once for the 3 reviews", calls.Load(), keys.Load())
	}
	// Read once, the reviews' entries are held: no read again.
	if _, _, err := s.Standing(reviewed); err != nil || calls.Load() != 1 {
		t.Fatalf("Standing again: %v, GetMany called %d times in all", err, calls.Load())
	}
	// No reviews: nothing to ask for.
	if v, ok, err := s.Standing(bare); err != nil || !ok || len(v.Reviews) != 0 || calls.Load() != 1 {
		t.Fatalf("Standing of a contribution without reviews: %v, %v, %d reviews, GetMany called %d times", ok, err, len(v.Reviews), calls.Load())
	}

	broken := errors.New("disk on fire")
	for _, m := range []manyKV{{KV: kv, fail: broken}, {KV: kv, short: true}} {
		m.calls, m.keys = new(atomic.Int64), new(atomic.Int64)
		s, err := Open(id, m, raw)
		if err != nil {
			t.Fatal(err)
		}
		v, ok, err := s.Standing(reviewed)
		if err == nil || ok || len(v.Reviews) != 0 {
			t.Fatalf("GetMany failing (%v, short %v): Standing gave %v, %v, %d reviews", m.fail, m.short, ok, err, len(v.Reviews))
		}
		if m.fail != nil && !errors.Is(err, broken) {
			t.Fatalf("Standing's error %v does not wrap GetMany's", err)
		}
		if s.Err() == nil {
			t.Fatalf("the State has no error after a failed read")
		}
	}
}
