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

// A contribution added without a place (Add, or a state written before
// places were kept) takes one from Place, kept across a reopening, and its
// later changes give it back; the root, the views and the statuses stay
// those of the same records added by Add. A place held already is kept.
func TestPlaceGivesAPlaceLater(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 2, 3}, 2, 2), 0)
	kv, recs := &MemKV{}, memRecords{}
	s, err := Open(g.CID, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	plain := New(g.CID)
	save := func() {
		t.Helper()
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
	}
	add := func(b *protocol.Block, pos uint64) []Change {
		t.Helper()
		recs[b.CID] = b
		ch, err := s.AddAt(b, pos)
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, plain, b)
		save()
		return ch
	}
	add(g, 0)
	a := contribution(t, g.CID, g.CID, 10, 4, "a")
	b := contribution(t, g.CID, g.CID, 10, 4, "b")
	add(a, 0)
	add(b, 7)
	r1 := review(t, g.CID, a.CID, g.CID, 11, 1, protocol.DecisionAccept)
	add(r1, 0)
	if ch := add(review(t, g.CID, a.CID, g.CID, 11, 2, protocol.DecisionAccept), 0); len(ch) != 1 || ch[0].Pos != 0 {
		t.Fatalf("a change of a contribution without a place: %v", ch)
	}
	rootBefore := s.Root()
	for _, tc := range []struct {
		c      cid.Cid
		pos    uint64
		status Status
		at     uint64
		ok     bool
	}{
		{a.CID, 2, StatusAccepted, 2, true},
		{a.CID, 5, StatusAccepted, 2, true}, // placed already: kept
		{b.CID, 3, StatusPending, 7, true},  // added with a place: kept
		{r1.CID, 4, "", 0, false},           // a review
		{g.CID, 4, "", 0, false},            // a manifest
		{contribution(t, g.CID, g.CID, 10, 4, "absent").CID, 4, "", 0, false},
	} {
		st, at, ok, err := s.Place(tc.c, tc.pos)
		if err != nil || st != tc.status || at != tc.at || ok != tc.ok {
			t.Fatalf("Place(%s, %d) = %q, %d, %v, %v; want %q, %d, %v", tc.c, tc.pos, st, at, ok, err, tc.status, tc.at, tc.ok)
		}
		if !tc.ok || tc.at != tc.pos { // nothing to write
			if r, err := s.Ready(); r != nil || err != nil {
				t.Fatalf("Place(%s, %d), which changes nothing, left writes %v (%v)", tc.c, tc.pos, r, err)
			}
		}
		save()
	}
	if _, _, _, err := s.Place(a.CID, 0); err == nil {
		t.Fatal("Place at 0 succeeded")
	}
	if s.Root() != rootBefore || s.Root() != plain.Root() {
		t.Fatalf("root %x after the places, %x before, %x without", s.Root(), rootBefore, plain.Root())
	}
	// Placed and read again from the KV: a's changes give its place back.
	if ch := add(review(t, g.CID, a.CID, g.CID, 12, 2, protocol.DecisionRetract), 0); len(ch) != 1 || ch[0] != (Change{Contribution: a.CID, From: StatusAccepted, To: StatusPending, Pos: 2}) {
		t.Fatalf("a change after Place: %v", ch)
	}
	if got, w := viewsOf(t, s), viewsOf(t, plain); !reflect.DeepEqual(got, w) {
		t.Fatalf("views with places:\n%+v\nwithout:\n%+v", got, w)
	}
	for _, c := range []*protocol.Block{a, b} {
		got, ok := s.Status(c.CID)
		if w, _ := plain.Status(c.CID); !ok || got != w {
			t.Fatalf("status of %s %q with places, %q without", c.CID, got, w)
		}
	}
	// The same on a state in memory (New): the place is kept at once.
	m := New(g.CID)
	for _, blk := range []*protocol.Block{g, a} {
		mustAdd(t, m, blk)
	}
	if _, at, ok, err := m.Place(a.CID, 9); err != nil || !ok || at != 9 {
		t.Fatalf("Place on a state in memory: %d, %v, %v", at, ok, err)
	}
	if ch, err := m.Add(review(t, g.CID, a.CID, g.CID, 11, 1, protocol.DecisionReject)); err != nil || len(ch) != 0 {
		t.Fatalf("one reject: %v, %v", ch, err)
	}
	if ch, err := m.Add(review(t, g.CID, a.CID, g.CID, 11, 2, protocol.DecisionReject)); err != nil || len(ch) != 1 || ch[0].Pos != 9 {
		t.Fatalf("a change after Place on a state in memory: %v, %v", ch, err)
	}
}
