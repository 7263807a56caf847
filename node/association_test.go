package node

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// A contribution disputed for its licence is withdrawn when the
// association upholds the dispute: its status says so, and the dispute's
// page lists the statement and the resolution. A stranger cannot resolve,
// and a resolution whose effect does not fit its subject is refused.
func TestDisputeWithdraws(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("d"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{n.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	work := signed(t, n, strangerKey(31), id, &protocol.Contribution{Title: "copied", Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer})
	if _, err := n.Publish(ctx, work.Raw, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Review(ctx, api.ReviewParams{Target: work.CID.String(), Decision: protocol.DecisionAccept}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.OpenDispute(ctx, api.DisputeParams{Subject: id.String(), Reason: "x"}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "is a manifest") {
		t.Fatalf("a dispute about a manifest: %v", err)
	}
	d, err := n.OpenDispute(ctx, api.DisputeParams{Subject: work.CID.String(), Reason: "copies a GPL work without its licence", Evidence: []string{"https://example.org/original"}})
	if err != nil || d.Class != "effective" {
		t.Fatalf("OpenDispute: %+v, %v", d, err)
	}
	st, err := n.AddStatement(ctx, api.StatementParams{Dispute: d.CID, Text: "the original is mine"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Resolve(ctx, api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeUphold, Effect: protocol.EffectUnmet, Reason: "r"}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "effect") {
		t.Fatalf("an effect that does not fit: %v", err)
	}
	// A stranger's resolution is inert, and refused.
	forged := signed(t, n, strangerKey(32), id, &protocol.Resolution{Dispute: protocol.Link{Cid: cid.MustParse(d.CID)}, Outcome: protocol.OutcomeUphold,
		Effect: protocol.EffectWithdraw, Reason: "mine", Under: protocol.Link{Cid: id}})
	if _, err := n.Publish(ctx, forged.Raw, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "not in that manifest's association") {
		t.Fatalf("a stranger's resolution: %v", err)
	}
	// A resolution replaces resolutions of its own dispute: anything else
	// is refused (it would wait, or be inert, for good).
	for _, tc := range []struct{ replaces, want string }{
		{work.CID.String(), "is a contribution, not a resolution"},
		{st.CID, "is a statement, not a resolution"},
		{strangerKey(60).Public().String(), "is not a CID"},
		{"bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "no record"},
	} {
		if _, err := n.Resolve(ctx, api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeUphold, Reason: "r", Replaces: []string{tc.replaces}}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("replaces %s: %v; want %q", tc.replaces, err, tc.want)
		}
	}
	// A dispute is opened in its subject's commons, whatever commons says.
	other, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("other"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.OpenDispute(ctx, api.DisputeParams{Commons: other, Subject: work.CID.String(), Reason: "x"}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "a dispute is opened in its subject's commons") {
		t.Errorf("a subject of another commons than the one named: %v", err)
	}
	res, err := n.Resolve(ctx, api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeUphold, Effect: protocol.EffectWithdraw, Reason: "the licence was not kept"})
	if err != nil || res.Class != "effective" {
		t.Fatalf("Resolve: %+v, %v", res, err)
	}
	info, err := n.Show(ctx, work.CID.String())
	if err != nil || info.Status != string(crdt.StatusWithdrawn) {
		t.Fatalf("status %q, %v; want withdrawn", info.Status, err)
	}
	if pub, err := n.Review(ctx, api.ReviewParams{Target: work.CID.String(), Decision: protocol.DecisionAccept, Rationale: "again"}); err != nil || len(pub.Warnings) != 1 || !strings.Contains(pub.Warnings[0], "is withdrawn") {
		t.Fatalf("a review of a withdrawn contribution: %+v, %v; want a warning that it decides nothing", pub, err)
	}
	v, err := n.Dispute(ctx, d.CID, "")
	if err != nil || v.Outcome != crdt.DisputeUpheld || v.Effect != protocol.EffectWithdraw || len(v.Statements) != 1 || v.Statements[0].CID != st.CID ||
		len(v.Resolutions) != 1 || !v.Resolutions[0].Counting || v.SubjectType != "contribution" {
		t.Fatalf("Dispute: %+v, %v", v, err)
	}
	// The association reconsiders: a dismissal that replaces the uphold.
	if _, err := n.Resolve(ctx, api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeDismiss, Reason: "licence added", Replaces: []string{res.CID}}); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.Show(ctx, work.CID.String()); info.Status != string(crdt.StatusAccepted) {
		t.Fatalf("after the replacing dismissal: %q, want accepted again", info.Status)
	}
	list, err := n.Disputes(ctx, c, "")
	if err != nil || len(list.Disputes) != 1 || list.Disputes[0].Outcome != crdt.DisputeDismissed {
		t.Fatalf("Disputes: %+v, %v", list, err)
	}
}

// A resolution of an association of threshold 2 is drafted by one member
// and co-signed by another; one member alone is refused, saying how.
func TestCosignedResolution(t *testing.T) {
	ctx := t.Context()
	a, b := startOffline(t), startOffline(t)
	c, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{a.Self(), b.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateManifest(ctx, c, api.ManifestParams{Threshold: ptr(uint64(2))}); err != nil {
		t.Fatal(err)
	}
	d, err := a.OpenDispute(ctx, api.DisputeParams{Commons: c, Participant: ptr(strangerKey(41).Public()), Reason: "harasses contributors"})
	if err != nil {
		t.Fatal(err)
	}
	p := api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeUphold, Reason: "found so"}
	if _, err := a.Resolve(ctx, p); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "dispute resolve --draft") {
		t.Fatalf("one member alone: %v", err)
	}
	draft, err := a.DraftResolution(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	copyCommons(t, a, b, c)
	cosigned, err := b.CosignManifest(ctx, draft, false)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := a.Publish(ctx, cosigned, false)
	if err != nil || pub.Class != "effective" {
		t.Fatalf("the co-signed resolution: %+v, %v", pub, err)
	}
	if v, _ := a.Dispute(ctx, d.CID, ""); v.Outcome != crdt.DisputeUpheld || v.Effect != "" {
		t.Fatalf("outcome %+v; want upheld without effect", v)
	}
}

// A release certificate holds, and a node that never saw the commons
// verifies it from the bundle alone; at a moment after its expiry it does
// not hold, and says so. A bundle whose genesis is missing names the
// unknown commons.
func TestCertificateVerifiedOffline(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("r"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{n.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	work := signed(t, n, strangerKey(51), id, &protocol.Contribution{Title: "w", Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer})
	if _, err := n.Publish(ctx, work.Raw, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Review(ctx, api.ReviewParams{Target: work.CID.String(), Decision: protocol.DecisionAccept}); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Millisecond)
	if _, err := n.Certify(ctx, api.CertifyParams{Commons: c, Release: "1.0", Contributions: []string{id.String()}, Expires: expires}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("a release naming a manifest: %v", err)
	}
	pending := signed(t, n, strangerKey(52), id, &protocol.Contribution{Title: "p", Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer})
	if _, err := n.Publish(ctx, pending.Raw, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Certify(ctx, api.CertifyParams{Commons: c, Release: "1.0", Contributions: []string{work.CID.String(), pending.CID.String()}, Expires: expires}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "is pending") {
		t.Fatalf("a release naming a pending contribution: %v", err)
	}
	if _, err := n.Certify(ctx, api.CertifyParams{Commons: c, Release: "1.0", Contributions: []string{work.CID.String()}, Expires: time.Now().Add(-time.Hour)}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "has passed") {
		t.Fatalf("a certificate expired when issued: %v", err)
	}
	pub, err := n.Certify(ctx, api.CertifyParams{Commons: c, Release: "1.0", Contributions: []string{work.CID.String()}, Expires: expires})
	if err != nil || pub.Class != "effective" {
		t.Fatalf("Certify: %+v, %v", pub, err)
	}
	got, err := n.Certificate(ctx, pub.CID, time.Time{})
	if err != nil || !got.Holds || got.Release == nil || got.Release.Contributions[0].Status != "accepted" {
		t.Fatalf("Certificate: %+v, %v", got, err)
	}
	raw, err := n.CertificateBundle(ctx, pub.CID)
	if err != nil {
		t.Fatal(err)
	}
	off, err := VerifyCertificate(bytes.NewReader(raw), cid.Undef, time.Now())
	if err != nil || !off.Holds || off.Release.Contributions[0].Status != "accepted" || off.CID != pub.CID {
		t.Fatalf("offline: %+v, %v", off, err)
	}
	late, err := VerifyCertificate(bytes.NewReader(raw), cid.Undef, expires.Add(time.Millisecond))
	if err != nil || late.Holds || len(late.Problems) != 1 || !strings.Contains(late.Problems[0], "expired") {
		t.Fatalf("after expiry: %+v, %v", late, err)
	}
	// The certificate alone, without its commons' manifests.
	root, err := api.DraftRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	certBlk, err := protocol.Validate(root)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := encodeBundle(bundle{draft: certBlk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCertificate(bytes.NewReader(alone), cid.Undef, time.Now()); !errors.Is(err, api.ErrUnknownCommons) || !strings.Contains(err.Error(), "unknown commons") {
		t.Fatalf("without the genesis: %v", err)
	}
	// The association withdraws the contribution: a bundle made now says
	// so offline too, for it carries the dispute and its resolution.
	d, err := n.OpenDispute(ctx, api.DisputeParams{Subject: work.CID.String(), Reason: "copied"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Resolve(ctx, api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeUphold, Effect: protocol.EffectWithdraw, Reason: "so it is"}); err != nil {
		t.Fatal(err)
	}
	again, err := n.CertificateBundle(ctx, pub.CID)
	if err != nil {
		t.Fatal(err)
	}
	if off, err := VerifyCertificate(bytes.NewReader(again), cid.Undef, time.Now()); err != nil || off.Release.Contributions[0].Status != "withdrawn" {
		t.Fatalf("offline after the withdrawal: %+v, %v", off, err)
	}
	// A forged signature anywhere in the file is refused.
	bad := bytes.Clone(raw)
	bad[len(bad)-10] ^= 1
	if _, err := VerifyCertificate(bytes.NewReader(bad), cid.Undef, time.Now()); err == nil {
		t.Fatal("a damaged bundle verified")
	}
}

// Commons founded without the association's records refuse disputes, with
// the reason.
func TestNoAssociationRecords(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("n"), Licence: ptr("MIT"), AssociationRecords: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.OpenDispute(ctx, api.DisputeParams{Commons: c, Participant: ptr(strangerKey(61).Public()), Reason: "x"}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "policy.association") {
		t.Fatalf("a dispute where the genesis carries none: %v", err)
	}
	if _, err := n.UpdateManifest(ctx, c, api.ManifestParams{AssociationRecords: ptr(true)}); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("an update setting it: %v", err)
	}
}

// A pledge the association marks unmet shows so in the report, naming the
// resolution, and its acknowledgements stop counting.
func TestPledgeMarkedUnmet(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("u"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	pledge := signed(t, n, strangerKey(91), id, &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 40, From: 1, Until: 2e12, Under: protocol.Link{Cid: id}})
	if _, err := n.Publish(ctx, pledge.Raw, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Acknowledge(ctx, api.AckParams{Pledge: pledge.CID.String(), Amount: 40}); err != nil {
		t.Fatal(err)
	}
	d, err := n.OpenDispute(ctx, api.DisputeParams{Subject: pledge.CID.String(), Reason: "the hours were never given"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Resolve(ctx, api.ResolveParams{Dispute: d.CID, Outcome: protocol.OutcomeUphold, Effect: protocol.EffectUnmet, Reason: "the acknowledgement was a mistake"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Reciprocity(ctx, c, time.Time{})
	if err != nil || len(r.Participants) != 1 {
		t.Fatalf("report: %+v, %v", r, err)
	}
	if p := r.Participants[0].Pledges[0]; p.Unmet != res.CID || p.Met || p.Acknowledged != 0 {
		t.Fatalf("pledge %+v; want unmet by %s, nothing acknowledged", p, res.CID)
	}
}

// An update that drops association keys without revoking them says what
// power they keep.
func TestRemovedKeysWarning(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	other := strangerKey(95).Public()
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("w"), Licence: ptr("MIT"), Association: []protocol.PublicKey{n.Self(), other}})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := n.UpdateManifest(ctx, c, api.ManifestParams{Association: []protocol.PublicKey{n.Self()}})
	if err != nil || len(pub.Warnings) == 0 || !strings.Contains(strings.Join(pub.Warnings, "\n"), other.String()+" left the association without being revoked") {
		t.Fatalf("dropping a key: %+v, %v", pub, err)
	}
	pub, err = n.UpdateManifest(ctx, c, api.ManifestParams{Name: ptr("renamed")})
	if err != nil || strings.Contains(strings.Join(pub.Warnings, "\n"), "left the association") {
		t.Fatalf("an update that drops nobody: %+v, %v", pub, err)
	}
}

// A commons with more disputes than a page holds lists them in pages that
// follow one another by their cursor, each dispute once; a cursor that is
// not a CID is refused.
func TestDisputePages(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range api.MaxDisputes + 1 {
		if _, err := n.OpenDispute(ctx, api.DisputeParams{Commons: c, Participant: ptr(strangerKey(41).Public()), Reason: fmt.Sprint("complaint ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := n.Disputes(ctx, c, "")
	if err != nil || len(first.Disputes) != api.MaxDisputes || !first.More || first.Next == "" {
		t.Fatalf("first page: %d disputes, more %v, next %q, %v", len(first.Disputes), first.More, first.Next, err)
	}
	second, err := n.Disputes(ctx, c, first.Next)
	if err != nil || len(second.Disputes) != 1 || second.More || second.Next != "" {
		t.Fatalf("second page: %+v, %v", second, err)
	}
	seen := map[string]bool{}
	for _, d := range append(first.Disputes, second.Disputes...) {
		if seen[d.CID] {
			t.Fatalf("dispute %s listed twice", d.CID)
		}
		seen[d.CID] = true
	}
	if _, err := n.Disputes(ctx, c, "page-2"); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not a CID") {
		t.Fatalf("a cursor that is not a CID: %v", err)
	}
	if _, err := n.Disputes(ctx, c, c); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not a dispute of commons") {
		t.Fatalf("a cursor that is no dispute: %v", err)
	}
}

// A dispute flooded with statements shows the first page of them, says
// there are more, and still lists every resolution that decides it, even
// one whose CID comes after the page.
func TestDisputeRepliesBounded(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	member := strangerKey(50)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{n.Self(), member.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	d, err := n.OpenDispute(ctx, api.DisputeParams{Commons: c, Participant: ptr(strangerKey(41).Public()), Reason: "harasses contributors"})
	if err != nil {
		t.Fatal(err)
	}
	dc := cid.MustParse(d.CID)
	// The member's resolution, with a CID high enough for a page of
	// statements to come before it.
	var res *protocol.Block
	for i := 0; res == nil || res.CID.Bytes()[len(res.CID.Bytes())-32] < 0xf0; i++ {
		res = signed(t, n, member, id, &protocol.Resolution{Dispute: protocol.Link{Cid: dc}, Outcome: protocol.OutcomeUphold,
			Reason: fmt.Sprint("found so, ", i), Under: protocol.Link{Cid: id}})
	}
	if _, err := n.Publish(ctx, res.Raw, false); err != nil {
		t.Fatal(err)
	}
	statements := 0
	for i, below := 0, 0; below <= api.MaxReplies; i++ {
		statements++
		st := signed(t, n, strangerKey(100+i%50), id, &protocol.Statement{Dispute: protocol.Link{Cid: dc}, Text: fmt.Sprint("me too ", i)})
		if bytes.Compare(st.CID.Bytes(), res.CID.Bytes()) < 0 {
			below++
		}
		if _, err := n.Publish(ctx, st.Raw, false); err != nil {
			t.Fatal(err)
		}
	}
	v, err := n.Dispute(ctx, d.CID, "")
	if err != nil {
		t.Fatal(err)
	}
	if !v.More || v.Next == "" || len(v.Statements) != api.MaxReplies || len(v.Resolutions) != 1 || v.Resolutions[0].CID != res.CID.String() || !v.Resolutions[0].Counting || v.Outcome != crdt.DisputeUpheld {
		t.Fatalf("more %v (next %q), %d statements, resolutions %+v, outcome %s; want more, %d statements, the member's resolution counting, upheld",
			v.More, v.Next, len(v.Statements), v.Resolutions, v.Outcome, api.MaxReplies)
	}
	// The next pages hold the other statements, each once, and the
	// resolution again.
	seen := map[string]bool{}
	for _, s := range v.Statements {
		seen[s.CID] = true
	}
	for next := v.Next; next != ""; {
		w, err := n.Dispute(ctx, d.CID, next)
		if err != nil || len(w.Resolutions) != 1 {
			t.Fatalf("page after %s: %d resolutions, %v", next, len(w.Resolutions), err)
		}
		for _, s := range w.Statements {
			if seen[s.CID] {
				t.Fatalf("statement %s on two pages", s.CID)
			}
			seen[s.CID] = true
		}
		next = w.Next
	}
	if len(seen) != statements {
		t.Errorf("%d statements in all pages, want %d", len(seen), statements)
	}
	if _, err := n.Dispute(ctx, d.CID, d.CID); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "no statement or resolution of dispute") {
		t.Errorf("a cursor that answers no dispute: %v", err)
	}
}

// A commons export is no draft: publishing or co-signing it is refused,
// saying what it is, rather than publishing its first record.
func TestPublishExportRefused(t *testing.T) {
	ctx := t.Context()
	n := startOffline(t)
	c, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(c)
	work := signed(t, n, strangerKey(53), id, &protocol.Contribution{Title: "w", Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer})
	if _, err := n.Publish(ctx, work.Raw, false); err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	if err := n.Export(ctx, c, &car); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, car.Bytes(), false); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "commons import") {
		t.Errorf("publishing an export: %v", err)
	}
	if _, err := n.CosignManifest(ctx, car.Bytes(), false); err == nil || !strings.Contains(err.Error(), "commons import") {
		t.Errorf("co-signing an export: %v", err)
	}
}
