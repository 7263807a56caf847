package crdt

import (
	"errors"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// fx is a commons founded by key 0 alone (threshold 1) with maintainers
// 1, 2 and 3.
type fx struct {
	t  *testing.T
	g  *protocol.Block
	id cid.Cid
	s  *State
}

func newFx(t *testing.T, q, rq uint64) *fx {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 2, 3}, q, rq), 0)
	f := &fx{t: t, g: g, id: g.CID, s: New(g.CID)}
	mustAdd(t, f.s, g)
	return f
}

func (f *fx) con(title string) *protocol.Block {
	return contribution(f.t, f.id, f.id, 10, 4, title)
}

func (f *fx) rev(c, under *protocol.Block, t protocol.HLC, author int, d string) *protocol.Block {
	return review(f.t, f.id, c.CID, under.CID, t, author, d)
}

func (f *fx) add(bs ...*protocol.Block) { f.t.Helper(); mustAdd(f.t, f.s, bs...) }

func (f *fx) wantStatus(c *protocol.Block, want Status) {
	f.t.Helper()
	if got, ok := f.s.Status(c.CID); !ok || got != want {
		f.t.Fatalf("status %q (%v), want %q", got, ok, want)
	}
}

func (f *fx) wantInert(c cid.Cid, reason string) {
	f.t.Helper()
	for _, r := range inertOf(f.t, f.s) {
		if r.CID == c {
			if r.Reason != reason {
				f.t.Fatalf("inert for %q, want %q", r.Reason, reason)
			}
			return
		}
	}
	f.t.Fatalf("%s not inert, want %q", c, reason)
}

func (f *fx) wantHead(c cid.Cid) {
	f.t.Helper()
	if h, m := f.s.Head(); h != c || m == nil {
		f.t.Fatalf("head %s, want %s", h, c)
	}
}

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		run  func(f *fx)
	}{
		{"quorum reached", func(f *fx) {
			c := f.con("c")
			f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept))
			f.wantStatus(c, StatusPending)
			f.add(f.rev(c, f.g, 12, 2, protocol.DecisionAccept))
			f.wantStatus(c, StatusAccepted)
		}},
		{"non-maintainer review is inert", func(f *fx) {
			c := f.con("c")
			r := f.rev(c, f.g, 11, 4, protocol.DecisionAccept)
			f.add(c, r, f.rev(c, f.g, 12, 1, protocol.DecisionAccept))
			f.wantStatus(c, StatusPending)
			f.wantInert(r.CID, reasonNotMaintainer)
		}},
		{"reject wins", func(f *fx) {
			c := f.con("c")
			f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept), f.rev(c, f.g, 11, 2, protocol.DecisionAccept))
			f.wantStatus(c, StatusAccepted)
			f.add(f.rev(c, f.g, 11, 3, protocol.DecisionReject), f.rev(c, f.g, 12, 4, protocol.DecisionReject))
			f.wantStatus(c, StatusAccepted) // key 4 is no maintainer
			f.add(f.rev(c, f.g, 13, 2, protocol.DecisionReject))
			f.wantStatus(c, StatusRejected)
		}},
		{"retract withdraws a vote", func(f *fx) {
			c := f.con("c")
			f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept), f.rev(c, f.g, 11, 2, protocol.DecisionAccept))
			f.wantStatus(c, StatusAccepted)
			r := f.rev(c, f.g, 12, 2, protocol.DecisionRetract)
			f.add(r)
			f.wantStatus(c, StatusPending)
			v, _ := viewOf(t, f.s, c.CID)
			if n := len(v.Reviews); n != 3 || !v.Reviews[2].Counts || v.Reviews[2].CID != r.CID || v.Reviews[1].Counts != (v.Reviews[1].Maintainer == key(1).Public()) {
				t.Fatalf("reviews %+v", v.Reviews)
			}
		}},
		{"same time, greater CID wins", func(f *fx) {
			c := f.con("c")
			a, b := f.rev(c, f.g, 11, 1, protocol.DecisionAccept), f.rev(c, f.g, 11, 1, protocol.DecisionReject)
			f.add(c, b, a, f.rev(c, f.g, 11, 2, protocol.DecisionReject))
			want := StatusRejected
			if compareCID(a.CID, b.CID) > 0 {
				want = StatusPending
			}
			f.wantStatus(c, want)
		}},
		{"lowering quorum later does not accept old reviews", func(f *fx) {
			c := f.con("c")
			f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept))
			v1 := update(t, f.id, 12, manifest([]int{0}, 1, []int{1, 2, 3}, 1, 1), 1, []cid.Cid{f.id}, 0)
			f.add(v1)
			f.wantHead(v1.CID)
			f.wantStatus(c, StatusPending)
			f.add(f.rev(c, v1, 13, 2, protocol.DecisionAccept))
			f.wantStatus(c, StatusAccepted)
		}},
		{"removal is not retroactive", func(f *fx) {
			c := f.con("c")
			f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept), f.rev(c, f.g, 11, 2, protocol.DecisionAccept))
			v1 := update(t, f.id, 12, manifest([]int{0}, 1, []int{1, 3}, 2, 2), 1, []cid.Cid{f.id}, 0)
			late := f.rev(c, v1, 13, 2, protocol.DecisionReject)
			f.add(v1, late)
			f.wantStatus(c, StatusAccepted)
			f.wantInert(late.CID, reasonNotMaintainer)
		}},
		{"revocation is retroactive", func(f *fx) {
			c := f.con("c")
			r2 := f.rev(c, f.g, 11, 2, protocol.DecisionAccept)
			f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept), r2)
			f.wantStatus(c, StatusAccepted)
			m := manifest([]int{0}, 1, []int{1, 3}, 2, 2)
			m.Revoked = pubs(2)
			f.add(update(t, f.id, 12, m, 1, []cid.Cid{f.id}, 0))
			f.wantStatus(c, StatusPending)
			f.wantInert(r2.CID, reasonRevoked)
			if got := f.s.Revoked(); !slices.Equal(got, pubs(2)) {
				t.Fatalf("revoked %v", got)
			}
		}},
		{"fork visible and resolved, merge heals it", func(f *fx) {
			a := update(t, f.id, 12, manifest([]int{0}, 1, []int{1}, 1, 1), 1, []cid.Cid{f.id}, 0)
			b := update(t, f.id, 13, manifest([]int{0}, 1, []int{2}, 1, 1), 1, []cid.Cid{f.id}, 0)
			f.add(a, b)
			lo, hi := a.CID, b.CID
			if compareCID(lo, hi) > 0 {
				lo, hi = hi, lo
			}
			if got := f.s.Forks(); !slices.Equal(got, []cid.Cid{lo, hi}) {
				t.Fatalf("forks %v", got)
			}
			f.wantHead(lo)
			c2 := update(t, f.id, 14, manifest([]int{0}, 1, []int{3}, 1, 1), 2, []cid.Cid{b.CID}, 0)
			f.add(c2)
			f.wantHead(c2.CID) // the larger past wins
			m := update(t, f.id, 15, manifest([]int{0}, 1, []int{1}, 1, 1), 3, []cid.Cid{a.CID, c2.CID}, 0)
			f.add(m)
			f.wantHead(m.CID)
			if got := f.s.Forks(); got != nil {
				t.Fatalf("forks after merge %v", got)
			}
			if h := f.s.History(); len(h) != 5 || !h[4].Head || h[3].Head {
				t.Fatalf("history %+v", h)
			}
		}},
		{"review before contribution", func(f *fx) {
			c := f.con("c")
			f.add(f.rev(c, f.g, 11, 1, protocol.DecisionAccept), f.rev(c, f.g, 11, 2, protocol.DecisionAccept))
			if f.s.Waiting() != 2 {
				t.Fatalf("waiting %d", f.s.Waiting())
			}
			ch, err := f.s.Add(c)
			if err != nil || len(ch) != 1 || ch[0] != (Change{Contribution: c.CID, To: StatusAccepted}) {
				t.Fatalf("changes %v, %v", ch, err)
			}
			if f.s.Waiting() != 0 {
				t.Fatalf("waiting %d", f.s.Waiting())
			}
		}},
		{"update before predecessor", func(f *fx) {
			v1 := update(t, f.id, 12, manifest([]int{0}, 1, []int{1}, 1, 1), 1, []cid.Cid{f.id}, 0)
			v2 := update(t, f.id, 13, manifest([]int{0}, 1, []int{2}, 1, 1), 2, []cid.Cid{v1.CID}, 0)
			c := f.con("c")
			f.add(v2, c, f.rev(c, v2, 14, 2, protocol.DecisionAccept))
			f.wantHead(f.id)
			f.wantStatus(c, StatusPending)
			f.add(v1)
			f.wantHead(v2.CID)
			f.wantStatus(c, StatusAccepted)
		}},
		{"version must grow", func(f *fx) {
			v1 := update(t, f.id, 12, manifest([]int{0}, 1, []int{1}, 1, 1), 1, []cid.Cid{f.id}, 0)
			again := update(t, f.id, 13, manifest([]int{0}, 1, []int{2}, 1, 1), 1, []cid.Cid{v1.CID}, 0)
			f.add(v1, again)
			f.wantInert(again.CID, reasonVersion)
		}},
		{"contribution under an inert licence", func(f *fx) {
			bad := update(t, f.id, 12, manifest([]int{5}, 1, []int{1}, 1, 1), 1, []cid.Cid{f.id}, 5)
			c := contribution(t, f.id, bad.CID, 13, 4, "c")
			f.add(c, bad, review(t, f.id, c.CID, f.id, 14, 1, protocol.DecisionAccept))
			f.wantInert(bad.CID, reasonSigners)
			f.wantInert(c.CID, reasonLicenceInert)
			f.wantStatus(c, StatusPending)
		}},
		{"review of a manifest is inert", func(f *fx) {
			r := review(t, f.id, f.id, f.id, 14, 1, protocol.DecisionAccept)
			f.add(r)
			f.wantInert(r.CID, reasonTargetNotCon)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(newFx(t, 2, 2)) })
	}
}

func TestThreshold(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0, 1, 2}, 2, []int{3}, 1, 1), 0, 1)
	s := New(g.CID)
	lone := genesisBlock(t, manifest([]int{0, 1, 2}, 2, []int{3}, 1, 1), 0)
	if _, err := s.Add(lone); !errors.Is(err, ErrWrongCommons) {
		t.Fatalf("another genesis: %v", err)
	}
	mustAdd(t, s, g)
	if !s.OnChain(g.CID) || s.Genesis() == nil {
		t.Fatal("genesis signed by 2 of 3 is not on the chain")
	}
	one := update(t, g.CID, 2, manifest([]int{0, 1}, 1, []int{3}, 1, 1), 1, []cid.Cid{g.CID}, 0)
	outsider := update(t, g.CID, 2, manifest([]int{0, 1}, 1, []int{4}, 1, 1), 1, []cid.Cid{g.CID}, 0, 5)
	two := update(t, g.CID, 2, manifest([]int{0, 1}, 1, []int{3}, 1, 1), 1, []cid.Cid{g.CID}, 1, 2)
	mustAdd(t, s, one, outsider, two)
	for _, b := range []*protocol.Block{one, outsider} {
		if s.OnChain(b.CID) {
			t.Fatalf("update signed by one association key is on the chain")
		}
	}
	if h, _ := s.Head(); h != two.CID {
		t.Fatalf("head %s, want the 2-signer update", h)
	}
	// Key 1 revoked in v2: it no longer counts toward v2's threshold.
	m := manifest([]int{0, 1}, 2, []int{3}, 1, 1)
	m.Revoked = pubs(1)
	v2 := update(t, g.CID, 3, m, 2, []cid.Cid{two.CID}, 0, 1)
	v3 := update(t, g.CID, 4, manifest([]int{0, 1}, 1, []int{3}, 1, 1), 3, []cid.Cid{v2.CID}, 0, 1)
	mustAdd(t, s, v2, v3)
	if !s.OnChain(v2.CID) || s.OnChain(v3.CID) {
		t.Fatalf("v2 on chain %v (want true), v3 %v (want false)", s.OnChain(v2.CID), s.OnChain(v3.CID))
	}
}

func TestWrongCommons(t *testing.T) {
	f := newFx(t, 1, 1)
	other := genesisBlock(t, manifest([]int{1}, 1, nil, 0, 0), 1)
	foreign := contribution(t, other.CID, other.CID, 5, 2, "elsewhere")
	root := f.s.Root()
	for _, b := range []*protocol.Block{other, foreign} {
		if _, err := f.s.Add(b); !errors.Is(err, ErrWrongCommons) {
			t.Fatalf("add %s: %v", b.CID, err)
		}
	}
	if _, err := f.s.AddBatch([]*protocol.Block{f.con("ok"), foreign}); !errors.Is(err, ErrWrongCommons) {
		t.Fatalf("batch: %v", err)
	}
	if _, err := f.s.Add(nil); !errors.Is(err, ErrNilBlock) {
		t.Fatalf("nil: %v", err)
	}
	if f.s.Len() != 1 || f.s.Root() != root || f.s.Has(foreign.CID) {
		t.Fatalf("state changed: len %d", f.s.Len())
	}
}

func TestAddBatchNetChanges(t *testing.T) {
	f := newFx(t, 1, 1)
	a, b := f.con("a"), f.con("b")
	f.add(a, b, f.rev(a, f.g, 11, 1, protocol.DecisionAccept))
	ch, err := f.s.AddBatch([]*protocol.Block{
		f.rev(a, f.g, 12, 1, protocol.DecisionRetract), f.rev(a, f.g, 13, 1, protocol.DecisionAccept), // net: none
		f.rev(b, f.g, 12, 2, protocol.DecisionReject), // b: pending -> rejected
		f.con("c"), // new
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.con("c")
	want := []Change{{Contribution: b.CID, From: StatusPending, To: StatusRejected}, {Contribution: c.CID, To: StatusPending}}
	slices.SortFunc(want, func(x, y Change) int { return compareCID(x.Contribution, y.Contribution) })
	if !slices.Equal(ch, want) {
		t.Fatalf("changes %v, want %v", ch, want)
	}
	if ch, _ := f.s.Add(c); ch != nil {
		t.Fatalf("re-adding gave changes %v", ch)
	}
	if p, acc, rej := f.s.Counts(); p != 1 || acc != 1 || rej != 1 {
		t.Fatalf("counts %d %d %d", p, acc, rej)
	}
}

func TestRoot(t *testing.T) {
	f := newFx(t, 1, 1)
	a, b := f.con("a"), f.con("b")
	s1, s2 := New(f.id), New(f.id)
	mustAdd(t, s1, f.g, a, b)
	mustAdd(t, s2, b, f.g)
	if s1.Root() == s2.Root() {
		t.Fatal("different sets, same root")
	}
	mustAdd(t, s2, a, a)
	if s1.Root() != s2.Root() || len(s1.Root().String()) != 64 {
		t.Fatalf("roots %s %s", s1.Root(), s2.Root())
	}
	if got := s1.CIDs(); len(got) != 3 || !slices.IsSortedFunc(got, compareCID) {
		t.Fatalf("cids %v", got)
	}
	if recordOf(t, s1, a.CID) != a || recordOf(t, s1, f.con("z").CID) != nil || !s1.Has(a.CID) || s1.ID() != f.id {
		t.Fatal("lookups")
	}
}
