package crdt

import (
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Keys as in compromise_test.go: 0 the honest association member, 2 an
// association key that gets stolen, 1 and 4 maintainers, 3 the thief's
// maintainer, 5 a contributor who floods.

// allowingBans returns m with a policy letting the commons ban keys.
func allowingBans(m *protocol.Manifest) *protocol.Manifest {
	m.Policy = &protocol.Policy{Bans: true}
	return m
}

// An accepted manifest bans a contributor and a maintainer it removes:
// their contributions and reviews are inert whenever they were made, and
// what they decided is undone. A later version that lists them keeps them
// banned; one that leaves them out lifts the ban, and what they decided
// stands again.
func TestBanMakesAuthorInert(t *testing.T) {
	g := genesisBlock(t, allowingBans(manifest([]int{0}, 1, []int{1, 4}, 1, 1)), 0)
	junk := contribution(t, g.CID, g.CID, 10, 5, "before the ban")
	acc := review(t, g.CID, junk.CID, g.CID, 11, 1, protocol.DecisionAccept)
	other := contribution(t, g.CID, g.CID, 12, 3, "by someone else")
	byBanned := review(t, g.CID, other.CID, g.CID, 13, 4, protocol.DecisionAccept)
	bm := manifest([]int{0}, 1, []int{1}, 1, 1)
	bm.Banned = pubs(4, 5)
	ban := update(t, g.CID, 20, bm, 1, []cid.Cid{g.CID}, 0)
	km := manifest([]int{0}, 1, []int{1}, 1, 1)
	km.Banned = pubs(4, 5)
	keep := update(t, g.CID, 30, km, 2, []cid.Cid{ban.CID}, 0)
	after := contribution(t, g.CID, keep.CID, 40, 5, "after the ban")
	byFlooder := update(t, g.CID, 25, manifest([]int{5}, 1, nil, 0, 0), 1, []cid.Cid{g.CID}, 5) // inert: not the association's
	banned := func(s *State) {
		t.Helper()
		if got := s.Banned(); !slices.Equal(got, pubs(4, 5)) {
			t.Fatalf("banned %v, want keys 4 and 5", got)
		}
		wantInert(t, s, junk.CID, reasonBanned)
		wantStatus(t, s, junk, StatusPending)
		wantInert(t, s, acc.CID, reasonTargetInert)
		wantInert(t, s, byBanned.CID, reasonBanned)
		wantStatus(t, s, other, StatusPending)
		wantDisowned(t, s, map[cid.Cid]bool{junk.CID: true, byBanned.CID: true, byFlooder.CID: true, acc.CID: false, other.CID: false, g.CID: false, ban.CID: false})
		if _, accepted, _ := s.Counts(); accepted != 0 {
			t.Fatalf("%d accepted: nothing is, once the only votes are undone", accepted)
		}
	}
	sc := scenario{g.CID, []*protocol.Block{g, junk, acc, other, byBanned, ban, byFlooder}}
	sc.check(t, banned)
	sc = scenario{g.CID, []*protocol.Block{g, junk, acc, ban, keep}}
	sc.check(t, func(s *State) {
		if got := s.Banned(); !slices.Equal(got, pubs(4, 5)) {
			t.Fatalf("banned %v under a version that lists them again, want keys 4 and 5", got)
		}
		wantInert(t, s, junk.CID, reasonBanned)
		if v, err := s.Classify(after); err != nil || v.Class != ClassInert || v.Reason != reasonBanned {
			t.Fatalf("a contribution by a banned key, before it is added: %+v, %v", v, err)
		}
	})
	lift := update(t, g.CID, 30, manifest([]int{0}, 1, []int{1}, 1, 1), 2, []cid.Cid{ban.CID}, 0)
	sc = scenario{g.CID, []*protocol.Block{g, other, byBanned, ban, lift}}
	sc.check(t, func(s *State) {
		if got := s.Banned(); len(got) != 0 {
			t.Fatalf("banned %v after a version that leaves them out, want none", got)
		}
		wantDisowned(t, s, map[cid.Cid]bool{byBanned.CID: false, other.CID: false})
		wantStatus(t, s, other, StatusAccepted) // the lifted maintainer's accept counts again
	})
}

// A thief holding an association key bans the maintainers' work: the ban
// holds while the key is trusted, and lifts, with everything it undid,
// once the association revokes the key in an update that leaves the
// banning version out of its past.
func TestStolenKeyBanLiftedByRevocation(t *testing.T) {
	g := genesisBlock(t, allowingBans(manifest([]int{0, 2}, 1, []int{1}, 1, 1)), 0)
	c := contribution(t, g.CID, g.CID, 10, 5, "honest work")
	acc := review(t, g.CID, c.CID, g.CID, 11, 1, protocol.DecisionAccept)
	fm := manifest([]int{0, 2}, 1, []int{1}, 1, 1)
	fm.Banned = pubs(5)
	theft := update(t, g.CID, 20, fm, 1, []cid.Cid{g.CID}, 2)
	sc := scenario{g.CID, []*protocol.Block{g, c, acc, theft}}
	sc.check(t, func(s *State) {
		if got := s.Banned(); !slices.Equal(got, pubs(5)) {
			t.Fatalf("banned %v, want key 5 while the stolen key is trusted", got)
		}
		wantStatus(t, s, c, StatusPending)
	})

	rm := manifest([]int{0}, 1, []int{1}, 1, 1)
	rm.Revoked = pubs(2)
	revoke := update(t, g.CID, 30, rm, 1, []cid.Cid{g.CID}, 0)
	sc = scenario{g.CID, []*protocol.Block{g, c, acc, theft, revoke}}
	sc.check(t, func(s *State) {
		wantInert(t, s, theft.CID, reasonSignersRevoked)
		if got := s.Banned(); len(got) != 0 {
			t.Fatalf("banned %v after the revocation, want none", got)
		}
		wantStatus(t, s, c, StatusAccepted)
	})
}

// A ban in a contested manifest is suspended, as a contested revocation
// is: the thief who revokes the honest key and bans the contributor gets a
// contest, and the contributor's work is held pending, neither dropped nor
// decided, until the contest is. A ban by keys short of the threshold bans
// nobody.
func TestContestedBanHoldsForgedBanBansNobody(t *testing.T) {
	g := genesisBlock(t, allowingBans(manifest([]int{0, 1, 2}, 1, []int{4}, 1, 1)), 0)
	c := contribution(t, g.CID, g.CID, 10, 5, "honest work")
	acc := review(t, g.CID, c.CID, g.CID, 11, 4, protocol.DecisionAccept)
	hm := manifest([]int{0, 1}, 1, []int{4}, 1, 1)
	hm.Revoked = pubs(2)
	h := update(t, g.CID, 20, hm, 1, []cid.Cid{g.CID}, 0)
	am := manifest([]int{2}, 1, []int{3}, 1, 1)
	am.Revoked, am.Banned = pubs(0), pubs(5)
	a := update(t, g.CID, 21, am, 1, []cid.Cid{g.CID}, 2)
	sc := scenario{g.CID, []*protocol.Block{g, c, acc, h, a}}
	sc.check(t, func(s *State) {
		if !s.Contested(a.CID) {
			t.Fatalf("the thief's update is not contested: %v", s.ContestedManifests())
		}
		if got := s.Banned(); len(got) != 0 {
			t.Fatalf("banned %v by a contested manifest, want none", got)
		}
		if got := s.BanSuspended(); !slices.Equal(got, pubs(5)) {
			t.Fatalf("ban-suspended %v, want the contributor", got)
		}
		wantInert(t, s, c.CID, reasonBanContested)
		wantDisowned(t, s, map[cid.Cid]bool{c.CID: false})
		if v, _ := viewOf(t, s, c.CID); v.Status != StatusPending || !v.Held {
			t.Fatalf("the contributor's work under a contested ban: %+v, want pending and held", v)
		}
	})
	// Key 1, which the thief did not revoke, settles the contest: the ban
	// goes with the thief's update, and the work stands again.
	sm := manifest([]int{0, 1}, 1, []int{4}, 1, 1)
	sm.Revoked = pubs(2)
	settle := update(t, g.CID, 30, sm, 1, []cid.Cid{g.CID}, 1)
	sc = scenario{g.CID, []*protocol.Block{g, c, acc, h, a, settle}}
	sc.check(t, func(s *State) {
		if len(s.Banned()) != 0 || len(s.BanSuspended()) != 0 {
			t.Fatalf("banned %v, ban-suspended %v once the contest is settled", s.Banned(), s.BanSuspended())
		}
		wantStatus(t, s, c, StatusAccepted)
	})

	g2 := genesisBlock(t, allowingBans(manifest([]int{0, 2}, 2, []int{4}, 1, 1)), 0, 2)
	c2 := contribution(t, g2.CID, g2.CID, 10, 5, "honest work")
	acc2 := review(t, g2.CID, c2.CID, g2.CID, 11, 4, protocol.DecisionAccept)
	fm := manifest([]int{0, 2}, 2, []int{4}, 1, 1)
	fm.Banned = pubs(5)
	forged := update(t, g2.CID, 20, fm, 1, []cid.Cid{g2.CID}, 2) // one of two signatures
	sc = scenario{g2.CID, []*protocol.Block{g2, c2, acc2, forged}}
	sc.check(t, func(s *State) {
		wantInert(t, s, forged.CID, reasonSigners)
		if got := s.Banned(); len(got) != 0 {
			t.Fatalf("banned %v by a forged manifest, want none", got)
		}
		wantStatus(t, s, c2, StatusAccepted)
	})
}

// In a commons whose genesis does not allow bans (SPEC §7.5), nodes refuse
// a banning update; a state given one all the same counts its bans for
// nothing.
func TestBanNeedsTheGenesis(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1}, 1, 1), 0)
	c := contribution(t, g.CID, g.CID, 10, 5, "work")
	acc := review(t, g.CID, c.CID, g.CID, 11, 1, protocol.DecisionAccept)
	bm := manifest([]int{0}, 1, []int{1}, 1, 1)
	bm.Banned = pubs(5)
	ban := update(t, g.CID, 20, bm, 1, []cid.Cid{g.CID}, 0)
	sc := scenario{g.CID, []*protocol.Block{g, c, acc, ban}}
	sc.check(t, func(s *State) {
		if len(s.Banned()) != 0 {
			t.Fatalf("banned %v where the genesis allows no ban", s.Banned())
		}
		wantStatus(t, s, c, StatusAccepted)
	})
}

// wantDisowned checks State.Disowned for each record of want: only the
// records of banned keys are disowned (their manifests too), not those
// inert for another reason (a review of a banned key's work), nor those of
// a key whose ban is contested.
func wantDisowned(t *testing.T, s *State, want map[cid.Cid]bool) {
	t.Helper()
	for c, w := range want {
		if got := s.Disowned(c); got != w {
			t.Errorf("record %s: disowned %v, want %v", c, got, w)
		}
	}
	if s.Disowned(cid.Undef) {
		t.Error("a record not in the set is disowned")
	}
}
