package crdt

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Each scenario is a set of records and what must hold of the state they
// make; it is checked in every arrival order of its records (all
// permutations up to 7 records, else rotations and reversals).

type scenario struct {
	id   cid.Cid
	recs []*protocol.Block
}

// orders returns the arrival orders to try.
func (sc scenario) orders() [][]*protocol.Block {
	if len(sc.recs) <= 7 {
		var out [][]*protocol.Block
		permute(slices.Clone(sc.recs), 0, &out)
		return out
	}
	var out [][]*protocol.Block
	for i := range sc.recs {
		rot := append(slices.Clone(sc.recs[i:]), sc.recs[:i]...)
		rev := slices.Clone(rot)
		slices.Reverse(rev)
		out = append(out, rot, rev)
	}
	return out
}

func permute(bs []*protocol.Block, i int, out *[][]*protocol.Block) {
	if i == len(bs) {
		*out = append(*out, slices.Clone(bs))
		return
	}
	for j := i; j < len(bs); j++ {
		bs[i], bs[j] = bs[j], bs[i]
		permute(bs, i+1, out)
		bs[i], bs[j] = bs[j], bs[i]
	}
}

// check builds the state in every order and runs fn on each.
func (sc scenario) check(t *testing.T, fn func(s *State)) {
	t.Helper()
	var first snapshot
	for i, order := range sc.orders() {
		s := New(sc.id)
		mustAdd(t, s, order...)
		fn(s)
		if i == 0 {
			first = snap(s)
		} else if d := snap(s).diff(first); d != "" {
			t.Fatalf("order %d gives another state:\n%s", i, d)
		}
	}
}

func wantStatus(t *testing.T, s *State, c *protocol.Block, want Status) {
	t.Helper()
	if got, _ := s.Status(c.CID); got != want {
		t.Fatalf("contribution %s: %s, want %s", c.CID, got, want)
	}
}

func wantInert(t *testing.T, s *State, c cid.Cid, reason string) {
	t.Helper()
	if v, _ := s.Classify(recordOf(t, s, c)); v.Class != ClassInert || v.Reason != reason {
		t.Fatalf("record %s: %+v, want inert (%s)", c, v, reason)
	}
}

func wantHead(t *testing.T, s *State, c cid.Cid) {
	t.Helper()
	if h, _ := s.Head(); h != c {
		t.Fatalf("head %s, want %s", h, c)
	}
}

// Keys: 0 is the honest association member H1, 2 the association key A2
// that gets stolen, 1 and 4 honest maintainers, 3 the thief's maintainer, 5
// a contributor.

// A revoked association key forks from the genesis with version 1000 (or
// 2^64-1), appoints its own maintainer and revokes the honest member: the
// honest update that revoked it stays the head, the fork is rejected, and
// nothing signed under it counts.
func TestRevokedKeyCannotTakeOver(t *testing.T) {
	for _, v := range []uint64{1000, math.MaxUint64} {
		g := genesisBlock(t, manifest([]int{0, 2}, 1, []int{1}, 1, 1), 0)
		v5m := manifest([]int{0}, 1, []int{1}, 1, 1)
		v5m.Revoked = pubs(2)
		v5 := update(t, g.CID, 50, v5m, 5, []cid.Cid{g.CID}, 0, 2)
		fm := manifest([]int{2}, 1, []int{3}, 1, 1)
		fm.Revoked = pubs(0)
		fork := update(t, g.CID, 60, fm, v, []cid.Cid{g.CID}, 2)
		honest := contribution(t, g.CID, v5.CID, 70, 5, "honest")
		byThief := review(t, g.CID, honest.CID, fork.CID, 80, 3, protocol.DecisionReject)
		byMaint := review(t, g.CID, honest.CID, v5.CID, 81, 1, protocol.DecisionAccept)
		underFork := contribution(t, g.CID, fork.CID, 72, 5, "under the fork")
		sc := scenario{g.CID, []*protocol.Block{g, v5, fork, honest, byThief, byMaint, underFork}}
		sc.check(t, func(s *State) {
			wantHead(t, s, v5.CID)
			wantInert(t, s, fork.CID, reasonSignersRevoked)
			wantInert(t, s, byThief.CID, reasonUnderInert) // the fork it names is rejected
			wantInert(t, s, underFork.CID, reasonLicenceInert)
			wantStatus(t, s, honest, StatusAccepted)
			if got := s.Revoked(); !slices.Equal(got, pubs(2)) {
				t.Fatalf("revoked %v, want only the stolen key", got)
			}
			if s.Forks() != nil || len(s.ContestedManifests()) != 0 {
				t.Fatalf("forks %v, contested %v", s.Forks(), s.ContestedManifests())
			}
			// H1 can still update, whatever version the fork claimed.
			next := update(t, g.CID, 90, manifest([]int{0}, 1, []int{1, 4}, 1, 1), 6, []cid.Cid{v5.CID}, 0)
			if v, err := s.Classify(next); err != nil || v.Class != ClassEffective {
				t.Fatalf("honest update after the fork: %+v, %v", v, err)
			}
		})
	}
}

// A fork signed by a revoked key revokes the honest maintainers and rejects
// an accepted contribution: it revokes nothing and changes no status.
func TestRejectedForkRevokesNothing(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0, 2}, 1, []int{1, 4}, 1, 1), 0)
	rm := manifest([]int{0}, 1, []int{1, 4}, 1, 1)
	rm.Revoked = pubs(2)
	r := update(t, g.CID, 20, rm, 1, []cid.Cid{g.CID}, 0)
	c := contribution(t, g.CID, g.CID, 10, 5, "c")
	acc := review(t, g.CID, c.CID, g.CID, 11, 1, protocol.DecisionAccept)
	fm := manifest([]int{2}, 1, []int{3}, 1, 1)
	fm.Revoked = pubs(1, 4)
	fork := update(t, g.CID, 30, fm, 7, []cid.Cid{g.CID}, 2)
	rej := review(t, g.CID, c.CID, fork.CID, 31, 3, protocol.DecisionReject)
	sc := scenario{g.CID, []*protocol.Block{g, r, c, acc, fork, rej}}
	sc.check(t, func(s *State) {
		wantStatus(t, s, c, StatusAccepted)
		wantInert(t, s, fork.CID, reasonSignersRevoked)
		wantInert(t, s, rej.CID, reasonUnderInert)
		if got := s.Revoked(); !slices.Equal(got, pubs(2)) {
			t.Fatalf("revoked %v, want only the stolen key", got)
		}
		if v, _ := viewOf(t, s, c.CID); !v.Reviews[0].Counts {
			t.Fatalf("the honest maintainer's accept does not count: %+v", v.Reviews)
		}
	})
}

// A maintainer removed in V1 names the genesis to accept or veto work made
// under V1: inert. Their reviews of work made under the genesis still count,
// and against an assent to the outdated version on purpose, the current
// maintainers' reject wins.
func TestRemovalBindsNewWork(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 4}, 1, 1), 0)
	v1 := update(t, g.CID, 20, manifest([]int{0}, 1, []int{1}, 1, 1), 1, []cid.Cid{g.CID}, 0)
	old := contribution(t, g.CID, g.CID, 10, 5, "before the removal")
	oldAcc := review(t, g.CID, old.CID, g.CID, 40, 4, protocol.DecisionAccept)
	fresh := contribution(t, g.CID, v1.CID, 30, 5, "after the removal")
	veto := review(t, g.CID, fresh.CID, g.CID, 1<<40, 4, protocol.DecisionReject)
	accept := review(t, g.CID, fresh.CID, v1.CID, 41, 1, protocol.DecisionAccept)
	sc := scenario{g.CID, []*protocol.Block{g, v1, old, oldAcc, fresh, veto, accept}}
	sc.check(t, func(s *State) {
		wantStatus(t, s, old, StatusAccepted)
		wantStatus(t, s, fresh, StatusAccepted)
		wantInert(t, s, veto.CID, reasonUnderNotLater)
	})

	outdated := contribution(t, g.CID, g.CID, 50, 5, "assents to the genesis on purpose")
	friend := review(t, g.CID, outdated.CID, g.CID, 51, 4, protocol.DecisionAccept)
	answer := review(t, g.CID, outdated.CID, v1.CID, 52, 1, protocol.DecisionReject)
	sc = scenario{g.CID, []*protocol.Block{g, v1, outdated, friend, answer}}
	sc.check(t, func(s *State) { wantStatus(t, s, outdated, StatusRejected) })
}

// Two keys of a 1-of-2 association revoke each other: both updates are
// contested, neither is a head, neither revocation applies (both keys are
// suspended), what was decided before stands, and what the contest touches
// is held. A third key the thief did not revoke decides it.
func TestMutualRevocationIsContested(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0, 1, 2}, 1, []int{4}, 1, 1), 0)
	hm := manifest([]int{0, 1}, 1, []int{4}, 1, 1)
	hm.Revoked = pubs(2)
	h := update(t, g.CID, 20, hm, 1, []cid.Cid{g.CID}, 0)
	am := manifest([]int{2}, 1, []int{3}, 1, 1)
	am.Revoked = pubs(0)
	a := update(t, g.CID, 21, am, 1, []cid.Cid{g.CID}, 2)
	before := contribution(t, g.CID, g.CID, 10, 5, "decided before")
	acc := review(t, g.CID, before.CID, g.CID, 11, 4, protocol.DecisionAccept)
	underH := contribution(t, g.CID, h.CID, 30, 5, "under the honest update")
	thief := contribution(t, g.CID, g.CID, 31, 5, "the thief's maintainer tries")
	thiefAcc := review(t, g.CID, thief.CID, a.CID, 32, 3, protocol.DecisionAccept)
	sc := scenario{g.CID, []*protocol.Block{g, h, a, before, acc, underH, thief, thiefAcc}}
	sc.check(t, func(s *State) {
		wantHead(t, s, g.CID)
		cm := s.ContestedManifests()
		if len(cm) != 2 || !s.Contested(h.CID) || !s.Contested(a.CID) {
			t.Fatalf("contested %v, want the two updates", cm)
		}
		for _, v := range cm {
			other := h.CID
			if v.CID == h.CID {
				other = a.CID
			}
			if !slices.Equal(v.AttackedBy, []cid.Cid{other}) {
				t.Fatalf("%s attacked by %v, want %s", v.CID, v.AttackedBy, other)
			}
		}
		if len(s.Revoked()) != 0 || !slices.Equal(s.Suspended(), pubs(0, 2)) {
			t.Fatalf("revoked %v, suspended %v", s.Revoked(), s.Suspended())
		}
		wantStatus(t, s, before, StatusAccepted)
		wantInert(t, s, underH.CID, reasonLicenceContested)
		wantStatus(t, s, thief, StatusPending)
		if v, _ := viewOf(t, s, thief.CID); !v.Held || v.Reviews[0].Suspended != reasonUnderContested {
			t.Fatalf("the thief's accept under its contested update: %+v", v)
		}
	})

	// Key 1, which the thief did not revoke, revokes the thief's key on
	// top of the genesis: undisputed. The thief's update is rejected, the
	// honest one accepted again, and the fork between the two honest
	// updates merges.
	rm := manifest([]int{0, 1}, 1, []int{4}, 1, 1)
	rm.Revoked = pubs(2)
	r2 := update(t, g.CID, 40, rm, 1, []cid.Cid{g.CID}, 1)
	sc = scenario{g.CID, append(slices.Clone(sc.recs), r2)}
	sc.check(t, func(s *State) {
		if len(s.ContestedManifests()) != 0 || !s.OnChain(h.CID) || !s.OnChain(r2.CID) {
			t.Fatalf("contested %v after the undisputed revocation", s.ContestedManifests())
		}
		wantInert(t, s, a.CID, reasonSignersRevoked)
		if !slices.Equal(s.Revoked(), pubs(2)) || len(s.Suspended()) != 0 {
			t.Fatalf("revoked %v, suspended %v", s.Revoked(), s.Suspended())
		}
		wantStatus(t, s, thief, StatusPending)
		wantInert(t, s, thiefAcc.CID, reasonUnderInert)
		if len(s.Forks()) != 2 {
			t.Fatalf("forks %v, want the two honest updates", s.Forks())
		}
		merge := update(t, g.CID, 50, manifest([]int{0, 1}, 1, []int{4}, 1, 1), 2, []cid.Cid{h.CID, r2.CID}, 0)
		if v, _ := s.Classify(merge); v.Class != ClassEffective {
			t.Fatalf("merge of the honest heads: %+v", v)
		}
	})
}

// Concurrent authorised updates: the head is the one with the larger past,
// then the lower CID; a version of 1000 decides nothing.
func TestForkIgnoresVersions(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0, 1}, 1, []int{4}, 1, 1), 0)
	big := update(t, g.CID, 20, manifest([]int{0, 1}, 1, []int{4}, 1, 1), 1000, []cid.Cid{g.CID}, 1)
	a := update(t, g.CID, 21, manifest([]int{0, 1}, 1, []int{3}, 1, 1), 1, []cid.Cid{g.CID}, 0)
	b := update(t, g.CID, 22, manifest([]int{0, 1}, 1, []int{1}, 1, 1), 2, []cid.Cid{a.CID}, 0)
	sc := scenario{g.CID, []*protocol.Block{g, big, a, b}}
	sc.check(t, func(s *State) {
		wantHead(t, s, b.CID)
		if f := s.Forks(); len(f) != 2 || f[1] != big.CID {
			t.Fatalf("forks %v", f)
		}
	})
	sc = scenario{g.CID, []*protocol.Block{g, big, a}}
	lo := big.CID
	if compareCID(a.CID, lo) < 0 {
		lo = a.CID
	}
	sc.check(t, func(s *State) { wantHead(t, s, lo) })
}

// Classify answers as Add will, and changes nothing.
func TestClassify(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0, 2}, 1, []int{1, 4}, 1, 1), 0)
	rm := manifest([]int{0}, 1, []int{1}, 1, 1)
	rm.Revoked = pubs(2)
	r := update(t, g.CID, 20, rm, 1, []cid.Cid{g.CID}, 0, 2)
	c := contribution(t, g.CID, r.CID, 30, 5, "c")
	s := New(g.CID)
	mustAdd(t, s, g, r, c)
	before := snap(s)

	fm := manifest([]int{2}, 1, []int{3}, 1, 1)
	fm.Revoked = pubs(0)
	missing := update(t, g.CID, 35, manifest([]int{0}, 1, []int{1}, 1, 1), 3, []cid.Cid{r.CID}, 0)
	cases := []struct {
		name   string
		b      *protocol.Block
		class  Class
		reason string
	}{
		{"update by the revoked key", update(t, g.CID, 40, fm, 1000, []cid.Cid{g.CID}, 2), ClassInert, reasonSignersRevoked},
		{"honest update", update(t, g.CID, 40, manifest([]int{0}, 1, []int{1}, 1, 1), 2, []cid.Cid{r.CID}, 0), ClassEffective, ""},
		{"update short of signatures", update(t, g.CID, 40, manifest([]int{0}, 1, []int{1}, 1, 1), 2, []cid.Cid{r.CID}, 5), ClassInert, reasonSigners},
		{"update naming a contribution", update(t, g.CID, 40, manifest([]int{0}, 1, []int{1}, 1, 1), 9, []cid.Cid{c.CID}, 0), ClassInert, reasonPrev},
		{"update on a missing version", update(t, g.CID, 40, manifest([]int{0}, 1, []int{1}, 1, 1), 9, []cid.Cid{missing.CID}, 0), ClassWaiting, ""},
		{"review by a revoked key", review(t, g.CID, c.CID, g.CID, 41, 2, protocol.DecisionAccept), ClassInert, reasonRevoked},
		{"review by a removed maintainer", review(t, g.CID, c.CID, g.CID, 41, 4, protocol.DecisionAccept), ClassInert, reasonUnderNotLater},
		{"review by a maintainer", review(t, g.CID, c.CID, r.CID, 41, 1, protocol.DecisionAccept), ClassEffective, ""},
		{"review of a missing contribution", review(t, g.CID, contribution(t, g.CID, r.CID, 1, 5, "absent").CID, r.CID, 41, 1, protocol.DecisionAccept), ClassWaiting, ""},
		{"contribution", contribution(t, g.CID, r.CID, 42, 5, "d"), ClassEffective, ""},
		{"record already here", c, ClassEffective, ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.Classify(tt.b)
			if err != nil || v.Class != tt.class || v.Reason != tt.reason {
				t.Fatalf("Classify: %+v, %v; want %s (%s)", v, err, tt.class, tt.reason)
			}
			if d := snap(s).diff(before); d != "" {
				t.Fatalf("Classify changed the state:\n%s", d)
			}
			s2 := merge(t, s, New(g.CID))
			mustAdd(t, s2, tt.b)
			if got, _ := s2.Classify(tt.b); got != v {
				t.Fatalf("after Add: %+v, Classify said %+v", got, v)
			}
		})
	}
	other := genesisBlock(t, manifest([]int{1}, 1, nil, 0, 0), 1)
	if _, err := s.Classify(other); !errors.Is(err, ErrWrongCommons) {
		t.Fatalf("Classify of another commons' genesis: %v", err)
	}
}

// ReviewUnder names a version under which the review counts, or says why
// there is none.
func TestReviewUnder(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 4}, 1, 1), 0)
	v1 := update(t, g.CID, 20, manifest([]int{0}, 1, []int{1}, 1, 1), 1, []cid.Cid{g.CID}, 0)
	old := contribution(t, g.CID, g.CID, 10, 5, "old")
	fresh := contribution(t, g.CID, v1.CID, 30, 5, "fresh")
	s := New(g.CID)
	mustAdd(t, s, g, v1, old, fresh)
	for _, tt := range []struct {
		name       string
		c          cid.Cid
		maintainer int
		want       cid.Cid
	}{
		{"current maintainer, new work", fresh.CID, 1, v1.CID},
		{"current maintainer, old work", old.CID, 1, v1.CID},
		{"removed maintainer, old work", old.CID, 4, g.CID},
		{"removed maintainer, new work", fresh.CID, 4, cid.Undef},
		{"not a contribution", v1.CID, 1, cid.Undef},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ReviewUnder(tt.c, key(tt.maintainer).Public())
			if got != tt.want || (err != nil) != !tt.want.Defined() || err != nil && !errors.Is(err, ErrNoAuthority) {
				t.Fatalf("ReviewUnder: %s, %v; want %s", got, err, tt.want)
			}
			if err == nil {
				r := review(t, g.CID, tt.c, got, 50, tt.maintainer, protocol.DecisionAccept)
				if v, _ := s.Classify(r); v.Class != ClassEffective {
					t.Fatalf("a review under %s: %+v", got, v)
				}
			}
		})
	}
}

// ClassifyDraft says whether a draft short of signatures can ever take
// effect.
func TestClassifyDraft(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0, 1, 2}, 1, []int{4}, 1, 1), 0)
	rm := manifest([]int{0, 1}, 2, []int{4}, 1, 1)
	rm.Revoked = pubs(2)
	r := update(t, g.CID, 20, rm, 1, []cid.Cid{g.CID}, 0)
	fork := update(t, g.CID, 21, manifest([]int{2, 3}, 2, []int{3}, 1, 1), 1, []cid.Cid{g.CID}, 2)
	s := New(g.CID)
	mustAdd(t, s, g, r, fork)
	for _, tt := range []struct {
		name  string
		b     *protocol.Block
		class Class
	}{
		{"one signature of two, honest", update(t, g.CID, 30, manifest([]int{0, 1}, 2, []int{4}, 1, 1), 2, []cid.Cid{r.CID}, 0), ClassEffective},
		{"on a rejected fork", update(t, g.CID, 30, manifest([]int{2, 3}, 2, []int{3}, 1, 1), 9, []cid.Cid{fork.CID}, 2), ClassInert},
		{"version not above", update(t, g.CID, 30, manifest([]int{0, 1}, 2, []int{4}, 1, 1), 1, []cid.Cid{r.CID}, 0), ClassInert},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.ClassifyDraft(tt.b)
			if err != nil || v.Class != tt.class {
				t.Fatalf("ClassifyDraft: %+v, %v; want %s", v, err, tt.class)
			}
			if v, _ := s.Classify(tt.b); v.Class != ClassInert {
				t.Fatalf("Classify of the draft itself: %+v, want inert (short of signatures)", v)
			}
			// Someone publishes the half-signed draft: co-signing it is
			// still worth it.
			s2 := merge(t, s, New(g.CID))
			mustAdd(t, s2, tt.b)
			if v, err := s2.ClassifyDraft(tt.b); err != nil || v.Class != tt.class {
				t.Fatalf("ClassifyDraft once the half-signed draft is published: %+v, %v; want %s", v, err, tt.class)
			}
		})
	}
}
