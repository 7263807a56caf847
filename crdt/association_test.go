package crdt

import (
	"fmt"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"
)

// assocGenesis founds a commons with keys 0 and 1 as association of
// threshold 2, keys 2 and 3 as maintainers (quorum 1, reject quorum 1),
// carrying the association's and the coalition's records and allowing
// bans.
func assocGenesis(t *testing.T) *protocol.Block {
	t.Helper()
	m := manifest([]int{0, 1}, 2, []int{2, 3}, 1, 1)
	m.Policy = &protocol.Policy{Association: 1, Coalition: 1, Bans: true}
	return genesisBlock(t, m, 0, 1)
}

func dispute(t *testing.T, id, under, subject cid.Cid, tm protocol.HLC, author int) *protocol.Block {
	t.Helper()
	return seal(t, &protocol.Record{Commons: id, Time: tm, Body: &protocol.Dispute{
		Subject: &protocol.Link{Cid: subject}, Reason: "infringes", Under: protocol.Link{Cid: under}}}, author)
}

func resolution(t *testing.T, id, d, under cid.Cid, outcome, effect string, replaces []cid.Cid, tm protocol.HLC, author int, cosigners ...int) *protocol.Block {
	t.Helper()
	return seal(t, &protocol.Record{Commons: id, Time: tm, Body: &protocol.Resolution{
		Dispute: protocol.Link{Cid: d}, Outcome: outcome, Effect: effect, Reason: "decided",
		Replaces: links(replaces...), Under: protocol.Link{Cid: under}}}, author, cosigners...)
}

func wantVerdict(t *testing.T, s *State, c cid.Cid, reason string) {
	t.Helper()
	v, ok := s.Verdict(c)
	if !ok || reason == "" && v.Class != ClassEffective || reason != "" && v.Reason != reason {
		t.Errorf("%s: %+v, %v; want %q", c, v, ok, reason)
	}
}

// An upheld dispute withdraws an accepted contribution; a resolution that
// replaces it brings the accepted status back; revoking a signer of the
// replacing resolution withdraws it again. Each step is the same
// whatever order the records arrive in.
func TestWithdrawAndReplace(t *testing.T) {
	g := assocGenesis(t)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	acc := review(t, g.CID, c.CID, g.CID, 3, 2, protocol.DecisionAccept)
	d := dispute(t, g.CID, g.CID, c.CID, 4, 6)
	up := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 1)
	back := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeDismiss, "", []cid.Cid{up.CID}, 6, 0, 1)
	all := []*protocol.Block{g, c, acc, d, up, back}
	for _, reverse := range []bool{false, true} {
		s := New(g.CID)
		for i := range all {
			b := all[i]
			if reverse {
				b = all[len(all)-1-i]
			}
			mustAdd(t, s, b)
		}
		wantStatus(t, s, c, StatusAccepted)
		if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeDismissed || o.Held || len(o.Counting) != 1 || o.Counting[0].CID != back.CID {
			t.Errorf("reverse %v: outcome %+v; want dismissed by the replacing resolution", reverse, o)
		}
	}
	s := New(g.CID)
	mustAdd(t, s, g, c, acc)
	wantStatus(t, s, c, StatusAccepted)
	mustAdd(t, s, d, up)
	wantStatus(t, s, c, StatusWithdrawn)
	if _, _, rej := s.Counts(); rej != 0 || s.Withdrawn() != 1 {
		t.Errorf("withdrawn count %d", s.Withdrawn())
	}
	if r, sure, _ := s.Effect(c.CID, protocol.EffectWithdraw); !sure || r != up.CID {
		t.Errorf("Effect = %s, %v; want %s", r, sure, up.CID)
	}
	mustAdd(t, s, back)
	wantStatus(t, s, c, StatusAccepted)
	// Key 1 is revoked: the replacing resolution falls short of the
	// threshold, and so does the upholding one: the dispute is open again
	// and nothing is withdrawn.
	m2 := manifest([]int{0, 4}, 1, []int{2, 3}, 1, 1)
	m2.Revoked = pubs(1)
	mustAdd(t, s, update(t, g.CID, 7, m2, 1, []cid.Cid{g.CID}, 0, 1))
	wantVerdict(t, s, back.CID, reasonAckSigners)
	wantVerdict(t, s, up.CID, reasonAckSigners)
	wantStatus(t, s, c, StatusAccepted)
	if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeOpen {
		t.Errorf("after the revocation: %+v, want open", o)
	}
}

// A review set aside stops counting: the maintainer's earlier review
// counts again. Only a resolution whose effect fits the subject counts,
// and only the association's threshold, under a version no older than the
// review's, can resolve.
func TestSetAsideReview(t *testing.T) {
	g := assocGenesis(t)
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	rej := review(t, g.CID, c.CID, g.CID, 3, 2, protocol.DecisionReject)
	d := dispute(t, g.CID, g.CID, rej.CID, 4, 5)
	alone := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectSetAside, nil, 5, 0)
	wrong := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 1)
	stranger := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectSetAside, nil, 5, 0, 4)
	mustAdd(t, s, g, c, rej, d, alone, wrong, stranger)
	wantStatus(t, s, c, StatusRejected)
	wantVerdict(t, s, alone.CID, reasonAckSigners)
	wantVerdict(t, s, wrong.CID, reasonEffectFit)
	wantVerdict(t, s, stranger.CID, reasonAckOutsider)
	both := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectSetAside, nil, 5, 0, 1)
	mustAdd(t, s, both)
	wantVerdict(t, s, rej.CID, reasonSetAside)
	wantStatus(t, s, c, StatusPending)
	// Concurrent resolutions that disagree: upholding wins.
	dismiss := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeDismiss, "", nil, 6, 0, 1)
	mustAdd(t, s, dismiss)
	if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeUpheld || o.Effect != protocol.EffectSetAside {
		t.Errorf("outcome %+v, want upheld with set-aside", o)
	}
	wantVerdict(t, s, rej.CID, reasonSetAside)
}

// A resolution under a version older than the one the disputed record was
// made under is inert: members an update removed cannot resolve by naming
// the version they served in.
func TestResolutionUnderOlderVersion(t *testing.T) {
	g := assocGenesis(t)
	m2 := manifest([]int{0, 4}, 2, []int{2, 3}, 1, 1)
	v1 := update(t, g.CID, 2, m2, 1, []cid.Cid{g.CID}, 0, 1)
	s := New(g.CID)
	c := contribution(t, g.CID, v1.CID, 3, 5, "work")
	d := dispute(t, g.CID, g.CID, c.CID, 4, 6)
	old := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 1)
	cur := resolution(t, g.CID, d.CID, v1.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 4)
	mustAdd(t, s, g, v1, c, d, old)
	wantVerdict(t, s, old.CID, reasonResNotLater)
	wantStatus(t, s, c, StatusPending)
	mustAdd(t, s, cur)
	wantStatus(t, s, c, StatusWithdrawn)
}

// Records of the association's types are inert in a commons whose genesis
// does not carry them, and a banned key's dispute is inert.
func TestAssociationGate(t *testing.T) {
	g := coalitionGenesis(t, true)
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	d := dispute(t, g.CID, g.CID, c.CID, 4, 6)
	mustAdd(t, s, g, c, d)
	wantVerdict(t, s, d.CID, reasonNoAssociation)
}

func rotation(t *testing.T, id cid.Cid, tm protocol.HLC, author, succ int) *protocol.Block {
	t.Helper()
	return seal(t, &protocol.Record{Commons: id, Time: tm, Body: &protocol.Rotation{Successor: key(succ).Public()}}, author, succ)
}

// A key that rotates to two keys, or two keys that rotate to one, make
// every rotation involved inert; a revoked key's rotation is inert.
func TestRotationConflicts(t *testing.T) {
	g := assocGenesis(t)
	s := New(g.CID)
	r1 := rotation(t, g.CID, 2, 2, 5)
	r1again := rotation(t, g.CID, 3, 2, 5)
	mustAdd(t, s, g, r1, r1again)
	wantVerdict(t, s, r1.CID, "")
	wantVerdict(t, s, r1again.CID, "")
	r2 := rotation(t, g.CID, 4, 2, 6)
	mustAdd(t, s, r2)
	for _, b := range []*protocol.Block{r1, r1again, r2} {
		wantVerdict(t, s, b.CID, reasonRotatedTwice)
	}
	r3 := rotation(t, g.CID, 2, 3, 7)
	r4 := rotation(t, g.CID, 2, 4, 7)
	mustAdd(t, s, r4, r3)
	wantVerdict(t, s, r3.CID, reasonSuccessorTwice)
	wantVerdict(t, s, r4.CID, reasonSuccessorTwice)
	r5 := rotation(t, g.CID, 2, 8, 9)
	m2 := manifest([]int{0, 1}, 2, []int{2, 3}, 1, 1)
	m2.Revoked = pubs(8)
	mustAdd(t, s, r5, update(t, g.CID, 7, m2, 1, []cid.Cid{g.CID}, 0, 1))
	wantVerdict(t, s, r5.CID, reasonRevoked)
}

// A review set aside counts as its maintainer's retraction: an accept the
// maintainer made before and then rejected does not come back.
func TestSetAsideIsRetraction(t *testing.T) {
	g := assocGenesis(t)
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	acc := review(t, g.CID, c.CID, g.CID, 3, 2, protocol.DecisionAccept)
	rej := review(t, g.CID, c.CID, g.CID, 4, 2, protocol.DecisionReject)
	d := dispute(t, g.CID, g.CID, rej.CID, 5, 5)
	up := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectSetAside, nil, 6, 0, 1)
	mustAdd(t, s, g, c, acc, rej)
	wantStatus(t, s, c, StatusRejected)
	mustAdd(t, s, d, up)
	wantStatus(t, s, c, StatusPending)
	wantVerdict(t, s, rej.CID, reasonSetAside)
}

// The association of a later version overrules a resolution made under an
// earlier one, whatever the earlier one's members sign: members an update
// removed cannot undo what the current association decided, nor replace
// its resolutions.
func TestLaterVersionSupersedes(t *testing.T) {
	g := assocGenesis(t) // association {0, 1}, threshold 2
	m2 := manifest([]int{0, 4}, 2, []int{2, 3}, 1, 1)
	v1 := update(t, g.CID, 2, m2, 1, []cid.Cid{g.CID}, 0, 1)
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "made under the genesis")
	acc := review(t, g.CID, c.CID, g.CID, 3, 2, protocol.DecisionAccept)
	d := dispute(t, g.CID, g.CID, c.CID, 4, 6)
	dismiss := resolution(t, g.CID, d.CID, v1.CID, protocol.OutcomeDismiss, "", nil, 5, 0, 4)
	// Keys 0 and 1 signed under the genesis: key 1 was removed by v1.
	oldUp := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 9, 0, 1)
	oldReplace := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, []cid.Cid{dismiss.CID}, 9, 1, 0)
	mustAdd(t, s, g, v1, c, acc, d, dismiss, oldUp, oldReplace)
	wantVerdict(t, s, oldReplace.CID, reasonReplacesLater)
	wantStatus(t, s, c, StatusAccepted)
	if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeDismissed || len(o.Counting) != 1 || o.Counting[0].CID != dismiss.CID {
		t.Errorf("outcome %+v; want dismissed under v1 alone", o)
	}
}

// Copies of a resolution that differ only in their signatures are one
// resolution: replacing one replaces them all.
func TestReplacedCopies(t *testing.T) {
	m := manifest([]int{0, 1, 4}, 2, []int{2, 3}, 1, 1)
	m.Policy = &protocol.Policy{Association: 1}
	g := genesisBlock(t, m, 0, 1)
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	d := dispute(t, g.CID, g.CID, c.CID, 4, 5)
	up := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 1, 4)
	copy01 := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 1)
	copy04 := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 0, 4)
	back := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeDismiss, "", []cid.Cid{up.CID}, 6, 0, 1)
	mustAdd(t, s, g, c, d, up, copy01, copy04)
	wantStatus(t, s, c, StatusWithdrawn)
	if o, _ := s.DisputeOutcome(d.CID); len(o.Counting) != 1 {
		t.Errorf("counting %+v; want the copies as one", o.Counting)
	}
	mustAdd(t, s, back)
	wantStatus(t, s, c, StatusPending)
}

// A contest neither undoes a resolution nor lets one decide: when a
// resolution's threshold rests on a key whose revocation is contested, the
// contribution it would withdraw is held pending, not accepted, and a
// review it would set aside is suspended.
func TestResolutionHeldByContest(t *testing.T) {
	// Association {0, 1, 4} of threshold 1; maintainers 2 and 3.
	m := manifest([]int{0, 1, 4}, 1, []int{2, 3}, 1, 1)
	m.Policy = &protocol.Policy{Association: 1}
	g := genesisBlock(t, m, 0)
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	acc := review(t, g.CID, c.CID, g.CID, 3, 2, protocol.DecisionAccept)
	d := dispute(t, g.CID, g.CID, c.CID, 4, 5)
	up := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 5, 1)
	mustAdd(t, s, g, c, acc, d, up)
	wantStatus(t, s, c, StatusWithdrawn)
	// Keys 0 and 1 revoke each other from the genesis: both updates are
	// contested, and key 1 is suspended.
	ma := manifest([]int{0, 4}, 1, []int{2, 3}, 1, 1)
	ma.Revoked = pubs(1)
	mb := manifest([]int{1, 4}, 1, []int{2, 3}, 1, 1)
	mb.Revoked = pubs(0)
	mustAdd(t, s, update(t, g.CID, 7, ma, 1, []cid.Cid{g.CID}, 0), update(t, g.CID, 7, mb, 1, []cid.Cid{g.CID}, 1))
	if v, _ := s.Verdict(up.CID); v.Class != ClassSuspended {
		t.Fatalf("resolution by a suspended key: %+v; want suspended", v)
	}
	st, _ := s.Status(c.CID)
	if v, _ := viewOf(t, s, c.CID); st != StatusPending || !v.Held {
		t.Errorf("status %s, held %v; want pending, held by the contest", st, v.Held)
	}
	if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeOpen || !o.Held {
		t.Errorf("outcome %+v; want open, held", o)
	}
}

// A certificate holds while it is effective, unexpired, and the
// association of today still counts its signers: one signed by members an
// update removed stops holding; one by a revoked key never holds.
func TestCertificateHolds(t *testing.T) {
	g := assocGenesis(t) // association {0, 1}, threshold 2
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	role := seal(t, &protocol.Record{Commons: g.CID, Time: 3, Body: &protocol.Certificate{
		Participant: ptr(key(2).Public()), Role: "maintainer", Expires: 1000, Under: protocol.Link{Cid: g.CID}}}, 0, 1)
	release := seal(t, &protocol.Record{Commons: g.CID, Time: 3, Body: &protocol.Certificate{
		Release: &protocol.Release{Name: "r1", Root: make([]byte, 32), Contributions: links(c.CID)}, Expires: 1000, Under: protocol.Link{Cid: g.CID}}}, 0, 1)
	short := seal(t, &protocol.Record{Commons: g.CID, Time: 3, Body: &protocol.Certificate{
		Participant: ptr(key(2).Public()), Role: "partner", Expires: 1000, Under: protocol.Link{Cid: g.CID}}}, 0)
	mustAdd(t, s, g, c, role, release, short)
	check := func(b *protocol.Block, now uint64, holds bool) {
		t.Helper()
		got, ok, err := s.CheckCertificate(b.CID, now)
		if !ok || err != nil || got.Holds != holds {
			t.Errorf("%s at %d: %+v, %v, %v; want holds %v", b.CID, now, got, ok, err, holds)
		}
	}
	check(role, 999, true)
	check(role, 1000, false) // expired
	check(release, 10, true)
	check(short, 10, false)
	wantVerdict(t, s, short.CID, reasonAckSigners)
	// v1 replaces key 1 by key 4: the genesis' certificates are no longer
	// vouched for by the association of today.
	m2 := manifest([]int{0, 4}, 2, []int{2, 3}, 1, 1)
	mustAdd(t, s, update(t, g.CID, 7, m2, 1, []cid.Cid{g.CID}, 0, 1))
	check(role, 10, false)
	if got, _, _ := s.CheckCertificate(role.CID, 10); got.Verdict.Class != ClassEffective || got.Vouched {
		t.Errorf("after v1: %+v; want effective, not vouched", got)
	}
}

func ptr[T any](v T) *T { return &v }

// A maintainer that rotates to a new key: the new key's reviews count in
// the old key's slot, as its latest vote, until an update names the new
// key itself; revoking the old key voids the rotation and with it what the
// new key counted for; a thief's conflicting rotation voids it too.
func TestRotatedMaintainerReviews(t *testing.T) {
	g := assocGenesis(t) // maintainers 2 and 3, quorum 1, reject quorum 1
	s := New(g.CID)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	rot := rotation(t, g.CID, 3, 2, 7) // maintainer 2 hands on to key 7
	byNew := review(t, g.CID, c.CID, g.CID, 4, 7, protocol.DecisionAccept)
	mustAdd(t, s, g, c, byNew)
	wantVerdict(t, s, byNew.CID, reasonNotMaintainer)
	wantStatus(t, s, c, StatusPending)
	mustAdd(t, s, rot)
	wantVerdict(t, s, byNew.CID, "")
	wantStatus(t, s, c, StatusAccepted)
	// The old key's later review is the slot's latest vote: one vote per
	// slot, not two.
	old := review(t, g.CID, c.CID, g.CID, 5, 2, protocol.DecisionRetract)
	mustAdd(t, s, old)
	wantStatus(t, s, c, StatusPending)
	again := review(t, g.CID, c.CID, g.CID, 6, 7, protocol.DecisionAccept)
	mustAdd(t, s, again)
	wantStatus(t, s, c, StatusAccepted)
	if v, _ := viewOf(t, s, c.CID); len(v.Reviews) != 3 || v.Reviews[2].For != key(2).Public() || !v.Reviews[2].Counts {
		t.Errorf("reviews %+v; want the new key's latest counting for key 2", v.Reviews)
	}
	// A conflicting rotation by the old key (a thief's) voids both.
	thief := rotation(t, g.CID, 7, 2, 8)
	mustAdd(t, s, thief)
	wantVerdict(t, s, rot.CID, reasonRotatedTwice)
	wantVerdict(t, s, again.CID, reasonNotMaintainer)
	wantStatus(t, s, c, StatusPending)
}

// The same records in the other order give the same state.
func TestRotatedMaintainerOrder(t *testing.T) {
	g := assocGenesis(t)
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	rot := rotation(t, g.CID, 3, 2, 7)
	byNew := review(t, g.CID, c.CID, g.CID, 4, 7, protocol.DecisionReject)
	m2 := manifest([]int{0, 1}, 2, []int{2, 3}, 1, 1)
	m2.Revoked = pubs(2)
	rev := update(t, g.CID, 8, m2, 1, []cid.Cid{g.CID}, 0, 1)
	a, b := New(g.CID), New(g.CID)
	mustAdd(t, a, g, c, rot, byNew)
	wantStatus(t, a, c, StatusRejected)
	mustAdd(t, a, rev) // revoking the old key voids its rotation
	wantStatus(t, a, c, StatusPending)
	mustAdd(t, b, rev, byNew, c, rot, g)
	wantStatus(t, b, c, StatusPending)
	wantVerdict(t, b, rot.CID, reasonRevoked)
}

// A dispute is shown held only when some end of the contest changes its
// outcome (SPEC §12.12): a suspended dismissal that replaces a finding
// without effect leaves the dispute upheld, with its withdrawal, however
// the contest ends, as a second finding that withdraws still counts.
func TestDisputeNotHeldWhenNoEndChangesIt(t *testing.T) {
	g, a, b := contestGenesis(t) // association {0, 1, 4} of threshold 1; keys 0 and 1 suspended
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	d := dispute(t, g.CID, g.CID, c.CID, 4, 5)
	finding := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, "", nil, 5, 4)
	withdraw := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeUphold, protocol.EffectWithdraw, nil, 6, 4)
	back := resolution(t, g.CID, d.CID, g.CID, protocol.OutcomeDismiss, "", []cid.Cid{finding.CID}, 7, 1)
	s := New(g.CID)
	mustAdd(t, s, g, a, b, c, d, finding, withdraw, back)
	wantVerdict(t, s, back.CID, reasonActSuspended)
	if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeUpheld || o.Effect != protocol.EffectWithdraw || o.Held {
		t.Errorf("%+v; want upheld with withdraw, not held", o)
	}
	wantStatus(t, s, c, StatusWithdrawn)
	// Without the withdrawing finding, the same suspended dismissal could
	// leave the dispute dismissed: held.
	s = New(g.CID)
	mustAdd(t, s, g, a, b, c, d, finding, back)
	if o, _ := s.DisputeOutcome(d.CID); o.State != DisputeOpen || !o.Held {
		t.Errorf("without the withdrawal: %+v; want open (the finding could be replaced), held", o)
	}
}

// A release names contributions: one naming another kind of record is
// inert, whatever signs it.
func TestReleaseNamesContributions(t *testing.T) {
	g := assocGenesis(t) // association {0, 1}, threshold 2
	c := contribution(t, g.CID, g.CID, 2, 5, "work")
	p := profile(t, g.CID, 2, 5, "someone")
	rel := func(tm protocol.HLC, cs ...cid.Cid) *protocol.Block {
		return seal(t, &protocol.Record{Commons: g.CID, Time: tm, Body: &protocol.Certificate{
			Release: &protocol.Release{Name: "r1", Root: make([]byte, 32), Contributions: links(cs...)}, Expires: 1000, Under: protocol.Link{Cid: g.CID}}}, 0, 1)
	}
	good, bad := rel(3, c.CID), rel(4, c.CID, p.CID)
	s := New(g.CID)
	mustAdd(t, s, g, c, p, good, bad)
	wantVerdict(t, s, good.CID, "")
	wantVerdict(t, s, bad.CID, reasonReleaseNotCon)
	if ch, _, _ := s.CheckCertificate(bad.CID, 10); ch.Holds {
		t.Errorf("a release naming a profile holds")
	}
}

// A sponsorship or a pledge that a contest could set aside or mark unmet
// is treated as if it were (SPEC §12.12: "also while the effect could
// bind it"): the report states what surely stands.
func TestSponsorshipAndPledgeWhileHeld(t *testing.T) {
	g, a, b := contestGenesis(t) // keys 0 and 1 suspended; key 4 not
	c := paid(t, g.CID, g.CID, 2, 5, 3, "paid work")
	sp := sponsorship(t, g.CID, c.CID, 3, 3)
	pl := seal(t, &protocol.Record{Commons: g.CID, Time: 2, Body: &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 4, From: 1, Until: 9, Under: protocol.Link{Cid: g.CID}}}, 3)
	met := ack(t, g.CID, pl.CID, &protocol.Link{Cid: g.CID}, 4, 3, 4)
	ds, dp := dispute(t, g.CID, g.CID, sp.CID, 4, 6), dispute(t, g.CID, g.CID, pl.CID, 4, 6)
	s := New(g.CID)
	mustAdd(t, s, g, c, sp, pl, met, ds, dp)
	wantVerdict(t, s, sp.CID, "")
	pledge := func() PledgeView {
		r, err := s.Reciprocity(0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Participants {
			for _, v := range p.Pledges {
				if v.CID == pl.CID {
					return v
				}
			}
		}
		t.Fatalf("the pledge is not in the report: %+v", r)
		return PledgeView{}
	}
	if v := pledge(); !v.Met || v.Unmet.Defined() {
		t.Fatalf("before any resolution: %+v; want met", v)
	}
	// Resolutions by key 1: effective now, suspended once keys 0 and 1
	// revoke each other.
	setAside := resolution(t, g.CID, ds.CID, g.CID, protocol.OutcomeUphold, protocol.EffectSetAside, nil, 7, 1)
	unmet := resolution(t, g.CID, dp.CID, g.CID, protocol.OutcomeUphold, protocol.EffectUnmet, nil, 7, 1)
	mustAdd(t, s, setAside, unmet, a, b)
	wantVerdict(t, s, setAside.CID, reasonActSuspended)
	wantVerdict(t, s, sp.CID, reasonSetAside)
	if got, ok := s.Sponsorship(c.CID); ok {
		t.Errorf("a sponsorship a contest could set aside confirms: %s", got)
	}
	if v := pledge(); v.Met || v.Unmet != unmet.CID || len(v.Acks) != 0 {
		t.Errorf("a pledge a contest could mark unmet: %+v; want unmet by %s, no acknowledgement counting", v, unmet.CID)
	}
}

// What is derived from the disputes at one DisputeGeneration holds while
// it stays: records added in any order never move a dispute's verdict or
// outcome without moving the generation.
func TestDisputeGeneration(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		draw := rapid.SampledFrom([]func(*rapid.T) (cid.Cid, []*protocol.Block){drawDisputes, drawAssociation}).Draw(t, "history")
		id, bs := draw(t)
		s := New(id)
		var disputes []cid.Cid
		for _, b := range bs {
			if b.Record.Dispute() != nil {
				disputes = append(disputes, b.CID)
			}
		}
		seen := func() []string {
			var out []string
			for _, d := range disputes {
				v, _ := s.Verdict(d)
				o, _ := s.DisputeOutcome(d)
				out = append(out, fmt.Sprint(v, outcomeEntry(o.State, o.Effect, o.Held, nil), len(o.Counting)))
			}
			return out
		}
		for len(bs) > 0 {
			n := rapid.IntRange(1, len(bs)).Draw(t, "batch")
			gen, was := s.DisputeGeneration(), seen()
			if _, err := s.AddBatch(bs[:n]); err != nil {
				t.Fatal(err)
			}
			bs = bs[n:]
			if now := seen(); s.DisputeGeneration() == gen && !slices.Equal(now, was) {
				t.Fatalf("the disputes moved, the generation did not:\nbefore %v\nafter  %v", was, now)
			}
			var all []cid.Cid
			s.Disputes(cid.Undef, func(c cid.Cid) bool { all = append(all, c); return true })
			for _, d := range all {
				replies, more := s.Replies(d, cid.Undef, 0)
				k := rapid.IntRange(1, len(replies)+1).Draw(t, "limit")
				page, pmore := s.Replies(d, cid.Undef, k)
				if more || pmore != (k < len(replies)) || !slices.Equal(page, replies[:min(k, len(replies))]) {
					t.Fatalf("replies of %s: %v (more %v) at most %d: %v (more %v)", d, replies, more, k, page, pmore)
				}
				if len(replies) > 0 {
					i := rapid.IntRange(0, len(replies)-1).Draw(t, "afterReply")
					if tail, _ := s.Replies(d, replies[i], 0); !slices.Equal(tail, replies[i+1:]) {
						t.Fatalf("replies of %s after %s: %v; want %v", d, replies[i], tail, replies[i+1:])
					}
				}
				var standing []cid.Cid
				for _, r := range replies {
					if v, _ := s.Verdict(r); recordOf(t, s, r).Record.Resolution() != nil && (v.Class == ClassEffective || v.Class == ClassSuspended) {
						standing = append(standing, r)
					}
				}
				if got := s.Resolutions(d); !slices.Equal(got, standing) {
					t.Fatalf("resolutions of %s: %v; want those that stand or are suspended, %v", d, got, standing)
				}
			}
			if len(all) > 0 {
				i := rapid.IntRange(0, len(all)-1).Draw(t, "after")
				var tail []cid.Cid
				s.Disputes(all[i], func(c cid.Cid) bool { tail = append(tail, c); return true })
				if !slices.Equal(tail, all[i+1:]) {
					t.Fatalf("the disputes after %s: %v; want %v", all[i], tail, all[i+1:])
				}
			}
		}
	})
}

// Past maxHeldExact resolutions, contestCould answers without weighing
// every end of the contest, but never less cautiously: an effective
// upholding resolution replaced only by a suspended one (itself replaced
// for sure) could count again, so the dispute is held however many other
// resolutions it has.
func TestHeldPastExactBound(t *testing.T) {
	s := New(cid.Undef)
	under := cid.NewCidV1(cid.Raw, []byte{0})
	res := func(i int, suspended bool, outcome string, replaces ...int) Resolution {
		r := Resolution{Under: under, Outcome: outcome, Suspended: suspended}
		r.digest[0] = byte(i + 1)
		for _, j := range replaces {
			var d [32]byte
			d[0] = byte(j + 1)
			r.replaces = map[[32]byte]bool{d: true}
		}
		return r
	}
	rs := []Resolution{
		res(0, false, protocol.OutcomeUphold),     // counts unless the next one stands
		res(1, true, protocol.OutcomeDismiss, 0),  // suspended: replaces the first
		res(2, false, protocol.OutcomeDismiss, 1), // replaces the second for sure
	}
	out := Outcome{State: DisputeDismissed}
	if !s.contestCould(rs, out) {
		t.Fatal("3 resolutions: not held, yet the contest voiding the suspended one upholds the dispute")
	}
	for i := len(rs); len(rs) <= maxHeldExact; i++ {
		rs = append(rs, res(i, false, protocol.OutcomeDismiss))
	}
	if !s.contestCould(rs, out) {
		t.Errorf("%d resolutions: not held, yet the contest voiding the suspended one upholds the dispute", len(rs))
	}
}

// A certificate holds at no moment before it was made (SPEC §12.13).
func TestCertificateNotBeforeItWasMade(t *testing.T) {
	g := assocGenesis(t) // association {0, 1}, threshold 2
	cert := seal(t, &protocol.Record{Commons: g.CID, Time: protocol.HLCFromMillis(5000, 0), Body: &protocol.Certificate{
		Participant: ptr(key(2).Public()), Role: "maintainer", Expires: 9000, Under: protocol.Link{Cid: g.CID}}}, 0, 1)
	s := New(g.CID)
	mustAdd(t, s, g, cert)
	for _, tc := range []struct {
		at           uint64
		holds, early bool
	}{{4999, false, true}, {5000, true, false}, {8999, true, false}, {9000, false, false}} {
		ch, ok, err := s.CheckCertificate(cert.CID, tc.at)
		if !ok || err != nil || ch.Holds != tc.holds || ch.Early != tc.early {
			t.Errorf("at %d: holds %v, early %v (%v, %v); want holds %v, early %v", tc.at, ch.Holds, ch.Early, ok, err, tc.holds, tc.early)
		}
	}
}
