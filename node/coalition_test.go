package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// signed signs body as a record of commons by k at the node's clock.
func signed(t *testing.T, n *Node, k protocol.PrivateKey, commons cid.Cid, body protocol.Body) *protocol.Block {
	t.Helper()
	r := &protocol.Record{Commons: commons, Time: protocol.HLCFromMillis(n.nowMillis(), 0), Body: body}
	if err := protocol.Sign(r, k); err != nil {
		t.Fatal(err)
	}
	b, err := protocol.NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// paidBy is a paid contribution by k naming sponsor, under the licence lic.
func paidBy(t *testing.T, n *Node, k protocol.PrivateKey, commons, lic cid.Cid, sponsor protocol.PublicKey) *protocol.Block {
	return signed(t, n, k, commons, &protocol.Contribution{Title: "paid work", Licence: protocol.Link{Cid: lic},
		Provenance: protocol.ProvenancePaid, Sponsor: &sponsor})
}

// The sponsor named by a paid contribution countersigns it, and show says
// the contribution is confirmed; nobody else's countersignature confirms
// it, a second one is refused, and so is a sponsorship of work that names
// another sponsor or none.
func TestSponsorship(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("s"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{n.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	contributor, thief := strangerKey(21), strangerKey(22)
	work := paidBy(t, n, contributor, id, id, n.Self())
	if _, err := n.Publish(ctx, work.Raw, false); err != nil {
		t.Fatal(err)
	}
	if info, err := n.Show(ctx, work.CID.String()); err != nil || info.ConfirmedBy != "" {
		t.Fatalf("before the sponsor signs: confirmed by %q, %v; want nobody", info.ConfirmedBy, err)
	}

	// A key the contribution does not name countersigns it: inert, and the
	// contribution is not confirmed.
	forged := signed(t, n, thief, id, &protocol.Sponsorship{Target: protocol.Link{Cid: work.CID}})
	if _, err := n.Publish(ctx, forged.Raw, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "does not name this key as its sponsor") {
		t.Fatalf("a stranger's sponsorship: %v; want it refused as inert, with the reason", err)
	}
	if pub, err := n.Publish(ctx, forged.Raw, true); err != nil || pub.Class != "inert" {
		t.Fatalf("forced: %+v, %v", pub, err)
	}
	if info, _ := n.Show(ctx, work.CID.String()); info.ConfirmedBy != "" {
		t.Fatalf("a stranger's sponsorship confirmed the work: %q", info.ConfirmedBy)
	}

	pub, err := n.Sponsor(ctx, api.SponsorParams{Target: work.CID.String(), Note: "invoice 7"})
	if err != nil || pub.Class != "effective" {
		t.Fatalf("Sponsor: %+v, %v", pub, err)
	}
	info, err := n.Show(ctx, work.CID.String())
	if err != nil || info.ConfirmedBy != pub.CID {
		t.Fatalf("confirmed by %q, %v; want %s", info.ConfirmedBy, err, pub.CID)
	}
	if sp, err := n.Show(ctx, pub.CID); err != nil || sp.Sponsorship == nil || sp.Sponsorship.Note != "invoice 7" || sp.Inert != "" {
		t.Fatalf("show the sponsorship: %+v, %v", sp, err)
	}
	before := n.recordCount(t, id)
	if _, err := n.Sponsor(ctx, api.SponsorParams{Target: work.CID.String()}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "confirmed already") {
		t.Fatalf("a second sponsorship: %v; want it refused", err)
	}

	// Work that names another sponsor, or none: refused, nothing stored.
	other := paidBy(t, n, contributor, id, id, thief.Public())
	volunteer := signedContribution(t, contributor, id, protocol.HLCFromMillis(n.nowMillis(), 1))
	for _, b := range []*protocol.Block{other, volunteer} {
		if _, err := n.Publish(ctx, b.Raw, false); err != nil {
			t.Fatal(err)
		}
		before++
		if _, err := n.Sponsor(ctx, api.SponsorParams{Target: b.CID.String()}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "does not name this key as its sponsor") {
			t.Fatalf("sponsoring %s: %v; want it refused with the reason", b.CID, err)
		}
	}
	if _, err := n.Sponsor(ctx, api.SponsorParams{Target: c}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not a contribution") {
		t.Fatalf("sponsoring the manifest: %v", err)
	}
	if _, err := n.Sponsor(ctx, api.SponsorParams{Target: forged.CID.String()[:20]}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("sponsoring a bad CID: %v", err)
	}
	if after := n.recordCount(t, id); after != before {
		t.Fatalf("%d records after the refusals, want %d: a refusal stored something", after, before)
	}

	// Banning the stranger: its sponsorship says why it is inert, and the
	// sponsor's confirmation stands.
	if _, err := n.UpdateManifest(ctx, c, api.ManifestParams{Ban: []protocol.PublicKey{thief.Public()}}); err != nil {
		t.Fatal(err)
	}
	if f, err := n.Show(ctx, forged.CID.String()); err != nil || f.Inert != "author: key is banned" {
		t.Fatalf("the banned key's sponsorship: %q, %v", f.Inert, err)
	}
	if info, _ := n.Show(ctx, work.CID.String()); info.ConfirmedBy != pub.CID {
		t.Fatalf("a ban of another key moved the confirmation: %q", info.ConfirmedBy)
	}

	// The report: the sponsor (this node) sponsored one contribution, the
	// stranger's claims confirm nothing and the stranger is no
	// participant; the work naming the stranger is the stranger's
	// contributors' word alone, and the stranger is not listed for it.
	if _, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "Sponsor", Uses: []protocol.Use{{Kind: "product", Name: "Thing"}}}); err != nil {
		t.Fatal(err)
	}
	r, err := n.Reciprocity(ctx, c, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Participants) != 1 || r.Participants[0].Key != n.Self() || len(r.Participants[0].Sponsored) != 1 ||
		r.Participants[0].Sponsored[0].Sponsorship != pub.CID || r.Participants[0].Name != "Sponsor" || r.Accepted != 0 {
		t.Fatalf("report: %+v", r)
	}
	if _, err := n.Review(ctx, api.ReviewParams{Target: work.CID.String(), Decision: protocol.DecisionAccept}); err != nil {
		t.Fatal(err)
	}
	if r, _ := n.Reciprocity(ctx, c, time.Time{}); r.Accepted != 1 || r.Participants[0].Accepted != 1 || r.Participants[0].Share != 1 {
		t.Fatalf("after the accept: %+v", r)
	}
	if r, _ := n.Reciprocity(ctx, c, time.Now().Add(time.Hour)); r.Accepted != 0 || len(r.Participants) != 1 || len(r.Participants[0].Sponsored) != 0 {
		t.Fatalf("a period after every contribution: %+v", r)
	}
}

// A participant's profile: the latest counts; publishing the same again is
// refused; a banned key's profile counts for nothing.
func TestProfile(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("p"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	if _, err := n.Profile(ctx, c, ""); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("no profile yet: %v", err)
	}
	uses := []protocol.Use{{Kind: "service", Name: "Acme Cloud", URL: "https://cloud.acme.example"}}
	p1, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "Acme", Uses: uses})
	if err != nil {
		t.Fatal(err)
	}
	got, err := n.Profile(ctx, c, n.Self().String())
	if err != nil || got.CID != p1.CID || got.Profile.Name != "Acme" || len(got.Profile.Uses) != 1 {
		t.Fatalf("Profile: %+v, %v", got, err)
	}
	if _, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "Acme", Uses: uses}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("the same profile again: %v; want it refused", err)
	}
	p2, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "Acme Co-op", Uses: uses})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := n.Profile(ctx, c, ""); got.CID != p2.CID {
		t.Fatalf("after an update the profile is %s, want %s", got.CID, p2.CID)
	}
	if _, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "x", Uses: []protocol.Use{{Kind: "Bad Kind", Name: "n"}}}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "body.uses[0].kind") {
		t.Fatalf("a bad use: %v; want it refused naming the field", err)
	}

	// A flooder's profile, then its ban.
	flooder := strangerKey(31)
	fp := signed(t, n, flooder, id, &protocol.Profile{Name: "totally the association"})
	if _, err := n.Publish(ctx, fp.Raw, false); err != nil {
		t.Fatal(err)
	}
	if got, err := n.Profile(ctx, c, flooder.Public().String()); err != nil || got.CID != fp.CID.String() {
		t.Fatalf("the stranger's profile: %+v, %v", got, err)
	}
	if _, err := n.UpdateManifest(ctx, c, api.ManifestParams{Ban: []protocol.PublicKey{flooder.Public()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Profile(ctx, c, flooder.Public().String()); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a banned key's profile: %v; want none", err)
	}
	if _, err := n.Profile(ctx, c, "not-a-key"); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("a bad key: %v", err)
	}
}

// A commons founded without the coalition's records refuses them, naming
// the genesis rule; no update can change that.
func TestNoCoalition(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("n"), Licence: ptr("MIT"), Coalition: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := n.Manifest(ctx, c); err != nil || m.Coalition != 0 {
		t.Fatalf("manifest: coalition %d, %v; want 0", m.Coalition, err)
	}
	if _, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "Acme"}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "policy.coalition") {
		t.Fatalf("a profile: %v; want it refused naming policy.coalition", err)
	}
	work := paidBy(t, n, strangerKey(41), cid.MustParse(c), cid.MustParse(c), n.Self())
	if _, err := n.Publish(ctx, work.Raw, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Sponsor(ctx, api.SponsorParams{Target: work.CID.String()}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "policy.coalition") {
		t.Fatalf("a sponsorship: %v; want it refused naming policy.coalition", err)
	}
	if _, err := n.Reciprocity(ctx, c, time.Time{}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "no reciprocity report") {
		t.Fatalf("the report: %v; want it refused", err)
	}
	if _, err := n.UpdateManifest(ctx, c, api.ManifestParams{Coalition: ptr(true)}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("an update turning it on: %v; want it refused", err)
	}
	// A commons that carries them takes updates as before: the genesis's
	// policy is not carried into them.
	c2, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("y"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.UpdateManifest(ctx, c2, api.ManifestParams{Name: ptr("y2")}); err != nil {
		t.Fatalf("an update of a coalition commons: %v", err)
	}
	if m, err := n.Manifest(ctx, c2); err != nil || m.Coalition != protocol.CoalitionVersion {
		t.Fatalf("after the update: coalition %d, %v", m.Coalition, err)
	}
}

// recordCount returns how many records the state of commons id holds.
func (n *Node) recordCount(t *testing.T, id cid.Cid) int {
	t.Helper()
	var count int
	if err := n.do(t.Context(), func() { count = n.commons[id].state.Len() }); err != nil {
		t.Fatal(err)
	}
	return count
}

// Pledges and their acknowledgements: the association's key acknowledges a
// pledge to the association, in parts; a pledge to a beneficiary is the
// beneficiary's alone to acknowledge; bad pledges are refused naming the
// field.
func TestPledges(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("g"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	from, until := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	entrepreneur, beneficiary := strangerKey(61), strangerKey(62)
	hours := signed(t, n, entrepreneur, id, &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 40,
		From: uint64(from.UnixMilli()), Until: uint64(until.UnixMilli()), Under: protocol.Link{Cid: id}})
	ben := beneficiary.Public()
	money := signed(t, n, entrepreneur, id, &protocol.Pledge{Kind: protocol.PledgeMoney, Amount: 50000, Currency: "EUR",
		From: uint64(from.UnixMilli()), Until: uint64(until.UnixMilli()), Beneficiary: &ben, Under: protocol.Link{Cid: id}})
	for _, b := range []*protocol.Block{hours, money} {
		if _, err := n.Publish(ctx, b.Raw, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Acknowledge(ctx, api.AckParams{Pledge: hours.CID.String()}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "give the amount") {
		t.Fatalf("an acknowledgement without an amount: %v", err)
	}
	for _, amount := range []uint64{10, 50} {
		if pub, err := n.Acknowledge(ctx, api.AckParams{Pledge: hours.CID.String(), Amount: amount}); err != nil || pub.Class != "effective" {
			t.Fatalf("acknowledge %d hours: %+v, %v", amount, pub, err)
		}
	}
	if _, err := n.Acknowledge(ctx, api.AckParams{Pledge: money.CID.String(), Amount: 100}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "not the pledge's beneficiary") {
		t.Fatalf("the association acknowledging a beneficiary's pledge: %v", err)
	}
	byBen := signed(t, n, beneficiary, id, &protocol.Acknowledgement{Pledge: protocol.Link{Cid: money.CID}, Amount: 20000})
	if pub, err := n.Publish(ctx, byBen.Raw, false); err != nil || pub.Class != "effective" {
		t.Fatalf("the beneficiary's acknowledgement: %+v, %v", pub, err)
	}
	forged := signed(t, n, entrepreneur, id, &protocol.Acknowledgement{Pledge: protocol.Link{Cid: money.CID}, Amount: 30000})
	if _, err := n.Publish(ctx, forged.Raw, false); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("the pledger acknowledging its own pledge: %v; want it refused as inert", err)
	}
	r, err := n.Reciprocity(ctx, c, time.Time{})
	if err != nil || len(r.Participants) != 1 || len(r.Participants[0].Pledges) != 2 {
		t.Fatalf("report: %+v, %v", r, err)
	}
	for _, p := range r.Participants[0].Pledges {
		switch p.CID {
		case hours.CID.String():
			if p.Acknowledged != 40 || !p.Met || len(p.Acks) != 2 {
				t.Errorf("hours: %+v; want 40 of 40 (10 + 50, capped), met", p)
			}
		case money.CID.String():
			if p.Acknowledged != 20000 || p.Met || p.Beneficiary == nil || *p.Beneficiary != ben {
				t.Errorf("money: %+v; want 20000 of 50000", p)
			}
		}
	}
	// A period after the pledges' leaves them out.
	if r, _ := n.Reciprocity(ctx, c, until.Add(time.Hour)); len(r.Participants) != 0 {
		t.Errorf("a later period: %+v; want nobody", r)
	}
	for _, bad := range []struct {
		p     api.PledgeParams
		field string
	}{
		{api.PledgeParams{Kind: "gold", Amount: 1}, "body.kind"},
		{api.PledgeParams{Kind: protocol.PledgeMoney, Amount: 1, Currency: "euro"}, "body.currency"},
		{api.PledgeParams{Kind: protocol.PledgeInfrastructure, Peer: "not-a-peer"}, "body.peer"},
		{api.PledgeParams{Kind: protocol.PledgeHours, Amount: 1, Until: from.Add(-time.Hour)}, "body.until"},
	} {
		bad.p.Commons, bad.p.From = c, from
		if bad.p.Until.IsZero() {
			bad.p.Until = until
		}
		if _, err := n.Pledge(ctx, bad.p); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("pledge %+v: %v; want it refused naming %s", bad.p, err, bad.field)
		}
	}
	if pub, err := n.Pledge(ctx, api.PledgeParams{Commons: c, Kind: protocol.PledgeInfrastructure, Peer: n.Self().String(), From: from, Until: until}); err != nil || pub.Class != "effective" {
		t.Fatalf("an infrastructure pledge: %+v, %v", pub, err)
	}
	if _, err := n.Acknowledge(ctx, api.AckParams{Pledge: c}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not a pledge") {
		t.Fatalf("acknowledging a manifest: %v", err)
	}
}

// A profile published while this key's latest is dated ahead of the clock
// (another device's, or a thief's) is dated after it, so that it counts.
func TestProfileAfterOneDatedAhead(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("f"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	ahead := &protocol.Record{Commons: cid.MustParse(c), Time: protocol.HLCFromMillis(n.nowMillis()+4*60*1000, 0), Body: &protocol.Profile{Name: "Not Acme"}}
	if err := protocol.Sign(ahead, n.key); err != nil {
		t.Fatal(err)
	}
	b, err := protocol.NewBlock(ahead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, b.Raw, false); err != nil {
		t.Fatal(err)
	}
	pub, err := n.SetProfile(ctx, api.ProfileParams{Commons: c, Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := n.Profile(ctx, c, ""); err != nil || got.CID != pub.CID {
		t.Fatalf("the profile that counts is %s (%v), want the one just published, %s", got.CID, err, pub.CID)
	}
}

// An association whose threshold is two acknowledges a pledge as it
// updates its manifest: one member drafts, another co-signs, and the
// published acknowledgement counts. One member alone is refused, saying
// how; a stranger cannot co-sign.
func TestCosignedAcknowledgement(t *testing.T) {
	ctx := t.Context()
	a, b, stranger := startOffline(t), startOffline(t), startOffline(t)
	c, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{a.Self(), b.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateManifest(ctx, c, api.ManifestParams{Threshold: ptr(uint64(2))}); err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	lagging := startOffline(t) // it has the commons, not the pledge
	copyCommons(t, a, lagging, c)
	pledge := signed(t, a, strangerKey(81), id, &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 40, From: 1, Until: 2e12, Under: protocol.Link{Cid: id}})
	if _, err := a.Publish(ctx, pledge.Raw, false); err != nil {
		t.Fatal(err)
	}
	p := api.AckParams{Pledge: pledge.CID.String(), Amount: 25}
	if _, err := a.Acknowledge(ctx, p); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "acknowledge --draft") {
		t.Fatalf("one member alone: %v; want it refused, saying how to draft", err)
	}
	draft, err := a.DraftAcknowledgement(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, draft, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "signers: fewer than the threshold") {
		t.Fatalf("the draft published with one signature: %v", err)
	}
	// A node that has not seen the pledge does not sign blind, nor one
	// without the commons.
	if _, err := lagging.CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "is not here") {
		t.Fatalf("co-signing without the pledge: %v", err)
	}
	if _, err := b.CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrUnknownCommons) {
		t.Fatalf("co-signing on a node without the commons: %v", err)
	}
	copyCommons(t, a, b, c)
	copyCommons(t, a, stranger, c)
	if _, err := stranger.CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "not an association key") {
		t.Fatalf("a stranger co-signing: %v", err)
	}
	cosigned, err := b.CosignManifest(ctx, draft, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CosignManifest(ctx, cosigned, false); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "signed acknowledgement") {
		t.Fatalf("co-signing twice: %v", err)
	}
	pub, err := a.Publish(ctx, cosigned, false)
	if err != nil || pub.Class != "effective" {
		t.Fatalf("the co-signed acknowledgement: %+v, %v", pub, err)
	}
	r, err := a.Reciprocity(ctx, c, time.Time{})
	if err != nil || len(r.Participants) != 1 || r.Participants[0].Pledges[0].Acknowledged != 25 {
		t.Fatalf("report: %+v, %v", r, err)
	}
	// A draft made under a version the manifest has moved past is not
	// co-signed: the current version's association decides.
	stale, err := a.DraftAcknowledgement(ctx, api.AckParams{Pledge: pledge.CID.String(), Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	update, err := a.DraftManifest(ctx, c, api.ManifestParams{Name: ptr("T, renamed")})
	if err != nil {
		t.Fatal(err)
	}
	copyCommons(t, a, b, c)
	if update, err = b.CosignManifest(ctx, update, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, update, false); err != nil {
		t.Fatal(err)
	}
	copyCommons(t, a, b, c)
	if _, err := b.CosignManifest(ctx, stale, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "not the current one") {
		t.Fatalf("co-signing a draft under an older version: %v", err)
	}
}
