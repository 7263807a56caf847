package crdt

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// TestAddAtKeepsPlace: a contribution added at a place (AddAt) gives that
// place back with every change of its status, the one it arrives with and
// those a review causes later, also from a state opened again from its
// KV, and those a manifest causes; a review's own place is not the
// contribution's; one added by Add gives 0. Places change nothing else:
// the root, the statuses and the contributions' views are those of the
// same records added by Add.
func TestAddAtKeepsPlace(t *testing.T) {
	g := genesisBlock(t, allowingBans(manifest([]int{0}, 1, []int{1, 2, 3}, 2, 2)), 0)
	kv, recs := &MemKV{}, memRecords{}
	s, err := Open(g.CID, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	plain := New(g.CID)
	add := func(b *protocol.Block, pos uint64) []Change {
		t.Helper()
		recs[b.CID] = b
		var ch []Change
		if pos == 0 {
			ch, err = s.Add(b)
		} else {
			ch, err = s.AddAt(b, pos)
		}
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, plain, b)
		r, err := s.Ready()
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			kv.Apply(r.Writes)
			s.Advance(r)
		}
		if s, err = Open(g.CID, kv, recs); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	want := func(got []Change, want ...Change) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("changes %v, want %v", got, want)
		}
	}
	want(add(g, 1))
	a := contribution(t, g.CID, g.CID, 10, 4, "a")
	b := contribution(t, g.CID, g.CID, 10, 4, "b")
	want(add(a, 2), Change{Contribution: a.CID, To: StatusPending, Pos: 2})
	want(add(b, 0), Change{Contribution: b.CID, To: StatusPending})
	want(add(review(t, g.CID, a.CID, g.CID, 11, 1, protocol.DecisionAccept), 3))
	want(add(review(t, g.CID, a.CID, g.CID, 11, 2, protocol.DecisionAccept), 4), Change{Contribution: a.CID, From: StatusPending, To: StatusAccepted, Pos: 2})
	want(add(review(t, g.CID, b.CID, g.CID, 11, 1, protocol.DecisionReject), 5))
	want(add(review(t, g.CID, b.CID, g.CID, 11, 2, protocol.DecisionReject), 6), Change{Contribution: b.CID, From: StatusPending, To: StatusRejected})
	want(add(review(t, g.CID, a.CID, g.CID, 12, 2, protocol.DecisionRetract), 7), Change{Contribution: a.CID, From: StatusAccepted, To: StatusPending, Pos: 2})
	// Changes a manifest causes (it bans the contributions' author, whose
	// contributions fall back to pending) give the contributions' places
	// too.
	want(add(review(t, g.CID, a.CID, g.CID, 13, 2, protocol.DecisionAccept), 8), Change{Contribution: a.CID, From: StatusPending, To: StatusAccepted, Pos: 2})
	bm := manifest([]int{0}, 1, []int{1, 2, 3}, 2, 2)
	bm.Banned = pubs(4)
	ws := []Change{{Contribution: a.CID, From: StatusAccepted, To: StatusPending, Pos: 2}, {Contribution: b.CID, From: StatusRejected, To: StatusPending}}
	slices.SortFunc(ws, func(x, y Change) int { return compareCID(x.Contribution, y.Contribution) })
	want(add(update(t, g.CID, 20, bm, 1, []cid.Cid{g.CID}, 0), 9), ws...)
	if s.Root() != plain.Root() {
		t.Fatalf("root %x with places, %x without", s.Root(), plain.Root())
	}
	if got, w := viewsOf(t, s), viewsOf(t, plain); len(got) != 2 || !reflect.DeepEqual(got, w) {
		t.Fatalf("views with places:\n%+v\nwithout:\n%+v", got, w)
	}
	for _, c := range []*protocol.Block{a, b} {
		got, ok := s.Status(c.CID)
		if w, _ := plain.Status(c.CID); !ok || got != w {
			t.Fatalf("status of %s %q with places, %q without", c.CID, got, w)
		}
	}
	// A place of 0 written out is not one AddAt writes: the entry is damaged.
	key := cidKey(tagEntry, a.CID)
	raw, _ := kv.Get(key)
	bad := append(bytes.Clone(raw[:len(raw)-1]), 0)
	kv.Apply([]Write{{Key: key, Value: bad}})
	if s, err = Open(g.CID, kv, recs); err == nil {
		_, ok := s.Status(a.CID)
		err = s.Err()
		if err == nil && ok {
			t.Fatal("an entry with place 0 was read")
		}
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("reading an entry with place 0: %v, want ErrDamaged", err)
	}
}
