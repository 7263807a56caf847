package crdt

import (
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// coalitionGenesis founds a commons with key 0 as association and key 1
// as maintainer, carrying the coalition's records unless off.
func coalitionGenesis(t *testing.T, on bool) *protocol.Block {
	t.Helper()
	m := manifest([]int{0}, 1, []int{1}, 1, 1)
	if on {
		m.Policy = &protocol.Policy{Coalition: 1}
	}
	return genesisBlock(t, m, 0)
}

func TestProfileLatestCounts(t *testing.T) {
	g := coalitionGenesis(t, true)
	s := New(g.CID)
	p1 := profile(t, g.CID, 5, 3, "first")
	p2 := profile(t, g.CID, 7, 3, "second")
	mustAdd(t, s, p2, g, p1)
	got, ok := s.Profile(key(3).Public())
	if !ok || got != p2.CID {
		t.Fatalf("Profile = %s, %v; want the later %s", got, ok, p2.CID)
	}
	if v, _ := s.Verdict(p1.CID); v.Class != ClassEffective {
		t.Errorf("earlier profile: %+v", v)
	}
}

// ack signs an acknowledgement of pledge by author and cosigners.
func ack(t *testing.T, id, pledge cid.Cid, under *protocol.Link, amount uint64, tm protocol.HLC, author int, cosigners ...int) *protocol.Block {
	t.Helper()
	return seal(t, &protocol.Record{Commons: id, Time: tm, Body: &protocol.Acknowledgement{
		Pledge: protocol.Link{Cid: pledge}, Amount: amount, Under: under}}, author, cosigners...)
}

// Who may acknowledge a pledge: the association's threshold under an
// accepted manifest, without revoked keys, whenever they signed; or the
// beneficiary the pledge names, and nobody else.
func TestAcknowledgementAuthority(t *testing.T) {
	m := manifest([]int{0, 1}, 2, nil, 0, 0)
	m.Policy = &protocol.Policy{Coalition: 1}
	g := genesisBlock(t, m, 0, 1)
	under := &protocol.Link{Cid: g.CID}
	s := New(g.CID)
	hours := seal(t, &protocol.Record{Commons: g.CID, Time: 2, Body: &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 4, From: 1, Until: 9, Under: protocol.Link{Cid: g.CID}}}, 3)
	ben := key(4).Public()
	toBen := seal(t, &protocol.Record{Commons: g.CID, Time: 2, Body: &protocol.Pledge{Kind: protocol.PledgeMoney, Amount: 100, Currency: "EUR", From: 1, Until: 9, Beneficiary: &ben, Under: protocol.Link{Cid: g.CID}}}, 3)
	alone := ack(t, g.CID, hours.CID, under, 2, 3, 0)
	both := ack(t, g.CID, hours.CID, under, 2, 3, 0, 1)
	stranger := ack(t, g.CID, hours.CID, under, 2, 3, 5, 2)
	assocForBen := ack(t, g.CID, toBen.CID, under, 100, 3, 0, 1)
	byBen := ack(t, g.CID, toBen.CID, nil, 60, 3, 4)
	mustAdd(t, s, g, hours, toBen, alone, both, stranger, assocForBen, byBen)
	want := map[cid.Cid]string{alone.CID: reasonAckSigners, both.CID: "", stranger.CID: reasonAckOutsider, assocForBen.CID: reasonNotBeneficiary, byBen.CID: ""}
	for c, reason := range want {
		v, _ := s.Verdict(c)
		if reason == "" && v.Class != ClassEffective || reason != "" && v.Reason != reason {
			t.Errorf("%s: %+v, want %q", c, v, reason)
		}
	}
	r, err := s.Reciprocity(0)
	if err != nil || len(r.Participants) != 1 || len(r.Participants[0].Pledges) != 2 {
		t.Fatalf("report: %+v, %v", r, err)
	}
	for _, p := range r.Participants[0].Pledges {
		switch p.CID {
		case hours.CID:
			if p.Acknowledged != 2 || p.Met || len(p.Acks) != 1 {
				t.Errorf("hours: %+v; want 2 of 4 acknowledged, by one", p)
			}
		case toBen.CID:
			if p.Acknowledged != 60 || p.Met {
				t.Errorf("money: %+v; want 60 of 100 acknowledged", p)
			}
		}
	}
	// Key 1 is revoked (it was stolen): its signature no longer counts, so
	// the association's acknowledgement falls short.
	m2 := manifest([]int{0, 2}, 1, nil, 0, 0)
	m2.Revoked = pubs(1)
	mustAdd(t, s, update(t, g.CID, 5, m2, 1, []cid.Cid{g.CID}, 0, 1))
	if v, _ := s.Verdict(both.CID); v.Reason != reasonAckSigners {
		t.Errorf("after key 1's revocation: %+v; want it short of the threshold", v)
	}
}

// A flooder's paid contributions naming a victim as sponsor are listed as
// unconfirmed until the association bans the flooder; then they say
// nothing. A key cannot confirm its own paid work.
func TestReciprocityFloodAndSelfSponsor(t *testing.T) {
	m := manifest([]int{0}, 1, []int{1}, 1, 1)
	m.Policy = &protocol.Policy{Bans: true, Coalition: 1}
	g := genesisBlock(t, m, 0)
	s := New(g.CID)
	victim := profileWithUse(t, g.CID, 2, 3)
	junk := paid(t, g.CID, g.CID, 3, 5, 3, "junk")
	own := paid(t, g.CID, g.CID, 3, 3, 3, "own")
	selfConfirm := sponsorship(t, g.CID, own.CID, 4, 3)
	mustAdd(t, s, g, victim, junk, own, selfConfirm)
	if v, _ := s.Verdict(selfConfirm.CID); v.Reason != reasonSelfSponsor {
		t.Errorf("a sponsorship of the sponsor's own work: %+v", v)
	}
	r, err := s.Reciprocity(0)
	if err != nil || len(r.Participants) != 1 || len(r.Participants[0].Unconfirmed) != 2 || len(r.Participants[0].Sponsored) != 0 {
		t.Fatalf("before the ban: %+v, %v; want the two claims unconfirmed", r, err)
	}
	m2 := manifest([]int{0}, 1, []int{1}, 1, 1)
	m2.Banned = pubs(5)
	mustAdd(t, s, update(t, g.CID, 5, m2, 1, []cid.Cid{g.CID}, 0))
	r, _ = s.Reciprocity(0)
	if len(r.Participants) != 1 || len(r.Participants[0].Unconfirmed) != 1 || r.Participants[0].Unconfirmed[0] != own.CID {
		t.Fatalf("after the flooder's ban: %+v; want only the key's own work unconfirmed", r)
	}
}

// profileWithUse signs a profile that declares a use.
func profileWithUse(t *testing.T, id cid.Cid, tm protocol.HLC, author int) *protocol.Block {
	t.Helper()
	return seal(t, &protocol.Record{Commons: id, Time: tm, Body: &protocol.Profile{Name: "p", Uses: []protocol.Use{{Kind: "product", Name: "x"}}}}, author)
}

// A draft of the association's acknowledgement, signed by one key of a
// threshold of two, could take effect once co-signed; one signed by a
// stranger under a manifest that does not list it could too (the keys that
// would co-sign are the association's), but not one of a pledge to a
// beneficiary.
func TestClassifyDraftAcknowledgement(t *testing.T) {
	m := manifest([]int{0, 1}, 2, nil, 0, 0)
	m.Policy = &protocol.Policy{Coalition: 1}
	g := genesisBlock(t, m, 0, 1)
	s := New(g.CID)
	hours := seal(t, &protocol.Record{Commons: g.CID, Time: 2, Body: &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 4, From: 1, Until: 9, Under: protocol.Link{Cid: g.CID}}}, 3)
	ben := key(4).Public()
	toBen := seal(t, &protocol.Record{Commons: g.CID, Time: 2, Body: &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 4, From: 1, Until: 9, Beneficiary: &ben, Under: protocol.Link{Cid: g.CID}}}, 3)
	mustAdd(t, s, g, hours, toBen)
	draft := ack(t, g.CID, hours.CID, &protocol.Link{Cid: g.CID}, 2, 3, 0)
	if v, _ := s.Classify(draft); v.Reason != reasonAckSigners {
		t.Fatalf("the draft as it is: %+v; want it short of signers", v)
	}
	if v, err := s.ClassifyDraft(draft); err != nil || v.Class != ClassEffective {
		t.Fatalf("the draft once co-signed: %+v, %v; want effective", v, err)
	}
	if v, _ := s.ClassifyDraft(ack(t, g.CID, toBen.CID, &protocol.Link{Cid: g.CID}, 2, 3, 0)); v.Reason != reasonNotBeneficiary {
		t.Fatalf("a draft for a beneficiary's pledge: %+v", v)
	}
}
