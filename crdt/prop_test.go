package crdt

import (
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"
)

// Failures print a -rapid.seed=… flag (and save a fail file under
// testdata/rapid); rerun with it to replay the exact history.

// build adds blocks to a fresh state, in chunks of random size through
// Add or AddBatch.
func build(t *rapid.T, id cid.Cid, bs []*protocol.Block) *State {
	s := New(id)
	for len(bs) > 0 {
		n := rapid.IntRange(1, len(bs)).Draw(t, "chunk")
		var err error
		if n == 1 {
			_, err = s.Add(bs[0])
		} else {
			_, err = s.AddBatch(bs[:n])
		}
		if err != nil {
			t.Fatalf("add: %v", err)
		}
		bs = bs[n:]
	}
	return s
}

// TestReference checks the fast state against the from-scratch reference
// after every step, and checks that the reported changes track statuses.
// The state keeps its records in memory (New) or reads them as bytes, as
// from a node's store (NewWith), or keeps its derived state in a KV as a
// node does (Open): it applies the writes of each batch some batches later,
// and opens the state again from the KV now and then.
//
// A State in a KV reads it key by key, or through GetMany (a ManyKV).
func TestReference(t *testing.T) {
	var manyCalls, manyKeys, manyRuns atomic.Int64
	rapid.Check(t, func(t *rapid.T) {
		id, bs := drawHistory(t)
		s, raw := New(id), rawRecords{}
		var kv *MemKV
		var wrap func(*MemKV) KV
		var flight []*Ready
		mode := rapid.IntRange(0, 3).Draw(t, "mode")
		switch mode {
		case 1:
			s = NewWith(id, raw)
		case 2:
			kv, wrap = &MemKV{}, func(kv *MemKV) KV { return kv }
			s = open(t, id, kv, raw)
		case 3:
			manyRuns.Add(1)
			kv, wrap = &MemKV{}, func(kv *MemKV) KV { return manyKV{KV: kv, calls: &manyCalls, keys: &manyKeys} }
			s = open(t, id, wrap(kv), raw)
		}
		set := map[cid.Cid]*protocol.Block{}
		shadow := map[string]Status{}
		for len(bs) > 0 {
			n := rapid.IntRange(1, min(4, len(bs))).Draw(t, "chunk")
			chunk := bs[:n]
			bs = bs[n:]
			for _, b := range chunk {
				raw[b.CID] = b.Raw
			}
			var changes []Change
			var err error
			if n == 1 {
				changes, err = s.Add(chunk[0])
			} else {
				changes, err = s.AddBatch(chunk)
			}
			if err != nil {
				t.Fatalf("add: %v", err)
			}
			if kv != nil {
				s, flight = commit(t, s, id, kv, wrap, raw, flight)
			}
			for _, b := range chunk {
				set[b.CID] = b
			}
			checkChanges(t, shadow, changes)
			if mode == 3 {
				checkStandingAtOnce(t, s, set)
			}
			want, got := reference(set), snap(s)
			if d := got.diff(want); d != "" {
				t.Fatalf("after %d records, fast != reference:\n%s", len(set), d)
			}
			if len(shadow) != len(got.Status) {
				t.Fatalf("changes announced %d contributions, state has %d", len(shadow), len(got.Status))
			}
			for c, st := range got.Status {
				if shadow[c] != st {
					t.Fatalf("contribution %s: changes say %q, state says %q", c, shadow[c], st)
				}
			}
		}
	})
	// With the default number of checks, about 25 histories are read
	// through GetMany; a replay of one seed may draw none.
	if manyRuns.Load() >= 10 && manyCalls.Load() == 0 {
		t.Fatalf("%d histories read through a ManyKV, and no State called GetMany", manyRuns.Load())
	}
	t.Logf("GetMany: %d calls, %d keys", manyCalls.Load(), manyKeys.Load())
}

// checkStandingAtOnce checks that each contribution's view, read with the
// State's cache emptied (its reviews' entries through GetMany), is the
// one Contributions gives, which the reference checks.
func checkStandingAtOnce(t *rapid.T, s *State, set map[cid.Cid]*protocol.Block) {
	s.cache = nil
	views := map[cid.Cid]ContributionView{}
	for c, b := range set {
		if b.Record.Contribution() == nil {
			continue
		}
		v, ok, err := s.Contribution(c)
		if err != nil {
			t.Fatalf("contribution %s: %v", c, err)
		}
		if ok {
			views[c] = v
		}
	}
	cs, err := s.Contributions()
	if err != nil {
		t.Fatalf("contributions: %v", err)
	}
	if len(cs) != len(views) {
		t.Fatalf("%d contributions, %d views read one by one", len(cs), len(views))
	}
	for _, want := range cs {
		if got := views[want.CID]; !reflect.DeepEqual(got, want) {
			t.Fatalf("contribution %s read alone:\n%+v\nin Contributions:\n%+v", want.CID, got, want)
		}
	}
}

// checkChanges applies changes to shadow, checking each From and the order.
func checkChanges(t *rapid.T, shadow map[string]Status, changes []Change) {
	for i, c := range changes {
		if i > 0 && compareCID(changes[i-1].Contribution, c.Contribution) >= 0 {
			t.Fatalf("changes not sorted by CID: %v", changes)
		}
		k := c.Contribution.String()
		old, known := shadow[k]
		if (c.From == "") == known || known && old != c.From {
			t.Fatalf("change %v: shadow has %q (known %v)", c, old, known)
		}
		if c.From != "" && c.From == c.To {
			t.Fatalf("no-op change %v", c)
		}
		shadow[k] = c.To
	}
}

// TestOrderIndependence checks that permutation, duplication and
// split-then-merge of the same records give the same state.
func TestOrderIndependence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id, bs := drawHistory(t)
		want := snap(build(t, id, bs))

		perm := rapid.Permutation(bs).Draw(t, "perm")
		dups := rapid.SliceOfN(rapid.SampledFrom(bs), 0, 5).Draw(t, "dups")
		perm = append(perm, dups...)
		perm = rapid.Permutation(perm).Draw(t, "perm2")
		if d := snap(build(t, id, perm)).diff(want); d != "" {
			t.Fatalf("permuted history differs:\n%s", d)
		}

		var left, right []*protocol.Block
		for _, b := range bs {
			switch rapid.IntRange(0, 2).Draw(t, "side") {
			case 0:
				left = append(left, b)
			case 1:
				right = append(right, b)
			default:
				left, right = append(left, b), append(right, b)
			}
		}
		m := merge(t, build(t, id, left), build(t, id, right))
		if d := snap(m).diff(want); d != "" {
			t.Fatalf("split-then-merge differs:\n%s", d)
		}
	})
}

// TestMergeLaws checks that Merge is commutative, associative and
// idempotent, and leaves its inputs alone.
func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id, bs := drawHistory(t)
		part := func(label string) *State {
			var sub []*protocol.Block
			for _, b := range bs {
				if rapid.Bool().Draw(t, label) {
					sub = append(sub, b)
				}
			}
			return build(t, id, sub)
		}
		a, b, c := part("a"), part("b"), part("c")
		sa, sb, sc := snap(a), snap(b), snap(c)
		if d := snap(merge(t, a, b)).diff(snap(merge(t, b, a))); d != "" {
			t.Fatalf("not commutative:\n%s", d)
		}
		if d := snap(merge(t, merge(t, a, b), c)).diff(snap(merge(t, a, merge(t, b, c)))); d != "" {
			t.Fatalf("not associative:\n%s", d)
		}
		if d := snap(merge(t, a, a)).diff(sa); d != "" {
			t.Fatalf("not idempotent:\n%s", d)
		}
		for _, x := range []struct {
			s    *State
			want snapshot
		}{{a, sa}, {b, sb}, {c, sc}} {
			if d := snap(x.s).diff(x.want); d != "" {
				t.Fatalf("merge mutated an input:\n%s", d)
			}
		}
	})
}

// open opens the state kv holds, failing t if it cannot.
func open(t *rapid.T, id cid.Cid, kv KV, recs Records) *State {
	s, err := Open(id, kv, recs)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// commit takes the writes of the batch just added, and applies those in
// flight to kv, oldest first, now or after later batches; then it may open
// the state anew from kv as wrap gives it (having applied everything first,
// and written a start snapshot or not).
func commit(t *rapid.T, s *State, id cid.Cid, kv *MemKV, wrap func(*MemKV) KV, recs Records, flight []*Ready) (*State, []*Ready) {
	r, err := s.Ready()
	if err != nil {
		t.Fatalf("ready: %v", err)
	}
	if r != nil {
		flight = append(flight, r)
	}
	reopen := rapid.IntRange(0, 3).Draw(t, "reopen") == 0
	n := len(flight)
	if !reopen {
		n = rapid.IntRange(0, len(flight)).Draw(t, "apply")
	}
	for _, r := range flight[:n] {
		kv.Apply(r.Writes)
		s.Advance(r)
	}
	flight = flight[n:]
	if reopen {
		// A clean stop writes a start snapshot (snapshot.go), which the
		// next Open must take; after a crash there is none, or an old one.
		snapped := rapid.Bool().Draw(t, "snapshot")
		if snapped {
			writeSnapshot(t, s, kv)
		}
		s = open(t, id, wrap(kv), recs)
		if snapped && s.Len() > 0 && !s.snapHeld {
			t.Fatalf("Open did not take the snapshot written just before")
		}
	}
	return s, flight
}
