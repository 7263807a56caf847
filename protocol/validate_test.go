package protocol

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func sortedKeys(n int) []PublicKey {
	ks := make([]PublicKey, n)
	for i := range ks {
		ks[i][0], ks[i][1] = byte(i>>8), byte(i)
	}
	return ks
}

var (
	testCommons = RecordCID([]byte("commons"))
	testOther   = RecordCID([]byte("other"))
	testBlob    = BlobCID([]byte("blob"))
)

func genesisRecord(author PublicKey) *Record {
	return &Record{Author: author, Time: HLCFromMillis(vectorTime, 0), Body: &Manifest{
		Name: "Commons", Licence: "MIT", Association: []PublicKey{author}, Threshold: 1,
	}}
}

func updateRecord(author PublicKey) *Record {
	r := genesisRecord(author)
	r.Commons = testCommons
	m := r.Manifest()
	m.Prev, m.Version = []Link{{testCommons}}, 1
	return r
}

func contributionRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Contribution{
		Title: "Title", Licence: Link{testCommons}, Provenance: ProvenanceVolunteer,
	}}
}

func reviewRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Review{
		Target: Link{testOther}, Decision: DecisionReject, Under: Link{testCommons},
	}}
}

func profileRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Profile{
		Name: "Name", Uses: []Use{{Kind: "product", Name: "Product", URL: "https://example.org/product"}},
	}}
}

func sponsorshipRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Sponsorship{
		Target: Link{testOther},
	}}
}

func pledgeRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Pledge{
		Kind: PledgeMoney, Amount: 100, Currency: "EUR", From: vectorTime, Until: vectorTime + 1, Under: Link{testCommons},
	}}
}

// infrastructurePledgeRecord pledges a node whose peer ID is testKey(7)'s.
func infrastructurePledgeRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Pledge{
		Kind: PledgeInfrastructure, Peer: testKey(7).Public().String(), From: vectorTime, Until: vectorTime + 1, Under: Link{testCommons},
	}}
}

func acknowledgementRecord() *Record {
	return &Record{Commons: testCommons, Author: testKey(9).Public(), Time: HLCFromMillis(vectorTime, 0), Body: &Acknowledgement{
		Pledge: Link{testOther},
	}}
}

type validationCase struct {
	name   string
	record func() *Record
	err    error  // nil: valid
	field  string // FieldError.Field when err != nil
}

func TestValidateEnvelope(t *testing.T) {
	author := testKey(1).Public()
	runValidation(t, []validationCase{
		{"genesis ok", func() *Record { return genesisRecord(author) }, nil, ""},
		{"update ok", func() *Record { return updateRecord(author) }, nil, ""},
		{"time zero", func() *Record { r := genesisRecord(author); r.Time = 0; return r }, ErrMissing, "time"},
		{"no body", func() *Record { r := genesisRecord(author); r.Body = nil; return r }, ErrMissing, "body"},
		{"contribution without commons", func() *Record { r := contributionRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"review without commons", func() *Record { r := reviewRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := contributionRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"cosigs on a review", func() *Record {
			r := reviewRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r
		}, ErrInvalid, "cosigs"},
		{"cosig by the author", func() *Record {
			r := genesisRecord(author)
			r.Cosigs = []Cosig{{Key: author}}
			return r
		}, ErrInvalid, "cosigs[0].key"},
		{"cosigs unsorted", func() *Record {
			r := genesisRecord(author)
			r.Cosigs = []Cosig{{Key: sortedKeys(3)[2]}, {Key: sortedKeys(3)[1]}}
			return r
		}, ErrInvalid, "cosigs"},
		{"cosigs duplicate", func() *Record {
			r := genesisRecord(author)
			r.Cosigs = []Cosig{{Key: sortedKeys(3)[1]}, {Key: sortedKeys(3)[1]}}
			return r
		}, ErrInvalid, "cosigs"},
		{"cosigs at the limit", func() *Record {
			r := genesisRecord(author)
			for _, k := range sortedKeys(MaxKeys) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
			return r
		}, nil, ""},
		{"cosigs over the limit", func() *Record {
			r := genesisRecord(author)
			for _, k := range sortedKeys(MaxKeys + 1) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
			return r
		}, ErrTooLarge, "cosigs"},
		{"record over MaxRecordSize", func() *Record {
			r := genesisRecord(author)
			m := r.Manifest()
			m.Association = append(sortedKeys(MaxKeys-1), author)
			m.Maintainers, m.Revoked = sortedKeys(MaxKeys), sortedKeys(MaxKeys)
			m.Quorum, m.RejectQuorum = 1, 1
			for i := range MaxBootstrap {
				m.Bootstrap = append(m.Bootstrap, fmt.Sprintf("/dns4/%03d", i)+strings.Repeat("x", MaxMultiaddrLen-9))
			}
			for _, k := range sortedKeys(MaxKeys - 1) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
			return r
		}, ErrTooLarge, "record"},
	})
}

func TestValidateManifest(t *testing.T) {
	author := testKey(1).Public()
	g := func(f func(m *Manifest)) func() *Record {
		return func() *Record { r := genesisRecord(author); f(r.Manifest()); return r }
	}
	u := func(f func(m *Manifest)) func() *Record {
		return func() *Record { r := updateRecord(author); f(r.Manifest()); return r }
	}
	prevs := func(n int) []Link {
		ls := make([]Link, n)
		for i := range ls {
			ls[i] = Link{RecordCID([]byte{byte(i)})}
		}
		slices.SortFunc(ls, func(a, b Link) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
		return ls
	}
	withAuthor := func(ks []PublicKey) []PublicKey {
		ks = append(ks, author)
		slices.SortFunc(ks, PublicKey.Compare)
		return ks
	}
	runValidation(t, []validationCase{
		{"name empty", g(func(m *Manifest) { m.Name = "" }), ErrMissing, "body.name"},
		{"name blank", g(func(m *Manifest) { m.Name = " \t\n" }), ErrMissing, "body.name"},
		{"name at limit", g(func(m *Manifest) { m.Name = strings.Repeat("n", MaxNameLen) }), nil, ""},
		{"name over limit", g(func(m *Manifest) { m.Name = strings.Repeat("n", MaxNameLen+1) }), ErrTooLarge, "body.name"},
		{"name with newline", g(func(m *Manifest) { m.Name = "a\nb" }), nil, ""},
		{"name with control character", g(func(m *Manifest) { m.Name = "a\x1bb" }), ErrInvalid, "body.name"},
		{"name with DEL", g(func(m *Manifest) { m.Name = "a\x7fb" }), ErrInvalid, "body.name"},
		{"licence empty", g(func(m *Manifest) { m.Licence = "" }), ErrMissing, "body.licence"},
		{"licence over limit", g(func(m *Manifest) { m.Licence = strings.Repeat("A", MaxLicenceLen+1) }), ErrTooLarge, "body.licence"},
		{"licence not SPDX", g(func(m *Manifest) { m.Licence = "MIT AND" }), ErrInvalid, "body.licence"},
		{"licence text raw", g(func(m *Manifest) { m.LicenceText = &Link{testBlob} }), nil, ""},
		{"licence text dag-cbor", g(func(m *Manifest) { m.LicenceText = &Link{testOther} }), ErrInvalid, "body.licence_text"},
		{"association empty", g(func(m *Manifest) { m.Association = nil }), ErrMissing, "body.association"},
		{"association over limit", g(func(m *Manifest) { m.Association = sortedKeys(MaxKeys + 1) }), ErrTooLarge, "body.association"},
		{"association at limit", g(func(m *Manifest) { m.Association = withAuthor(sortedKeys(MaxKeys - 1)) }), nil, ""},
		{"association unsorted", g(func(m *Manifest) { m.Association = []PublicKey{author, sortedKeys(1)[0]} }), ErrInvalid, "body.association"},
		{"association duplicate", g(func(m *Manifest) { m.Association = []PublicKey{author, author} }), ErrInvalid, "body.association"},
		{"maintainers unsorted", g(func(m *Manifest) {
			m.Maintainers, m.Quorum, m.RejectQuorum = []PublicKey{sortedKeys(2)[1], sortedKeys(2)[0]}, 1, 1
		}), ErrInvalid, "body.maintainers"},
		{"maintainers over limit", g(func(m *Manifest) { m.Maintainers, m.Quorum, m.RejectQuorum = sortedKeys(MaxKeys+1), 1, 1 }), ErrTooLarge, "body.maintainers"},
		{"revoked over limit", g(func(m *Manifest) { m.Revoked = sortedKeys(MaxKeys + 1) }), ErrTooLarge, "body.revoked"},
		{"revoked duplicate", g(func(m *Manifest) { m.Revoked = []PublicKey{author, author} }), ErrInvalid, "body.revoked"},
		{"banned without policy.bans", g(func(m *Manifest) { m.Banned = sortedKeys(3) }), ErrInvalid, "body.banned"},
		{"banned", g(func(m *Manifest) { m.Banned, m.Policy = sortedKeys(3), &Policy{Bans: true} }), nil, ""},
		{"banned over limit", g(func(m *Manifest) { m.Banned, m.Policy = sortedKeys(MaxKeys+1), &Policy{Bans: true} }), ErrTooLarge, "body.banned"},
		{"banned unsorted", g(func(m *Manifest) {
			m.Banned, m.Policy = []PublicKey{sortedKeys(2)[1], sortedKeys(2)[0]}, &Policy{Bans: true}
		}), ErrInvalid, "body.banned"},
		{"banned association key", g(func(m *Manifest) { m.Banned, m.Policy = []PublicKey{author}, &Policy{Bans: true} }), ErrInvalid, "body.banned"},
		{"banned maintainer", g(func(m *Manifest) {
			m.Maintainers, m.Quorum, m.RejectQuorum, m.Banned, m.Policy = sortedKeys(2), 1, 1, sortedKeys(2)[1:], &Policy{Bans: true}
		}), ErrInvalid, "body.banned"},
		{"threshold zero", g(func(m *Manifest) { m.Threshold = 0 }), ErrInvalid, "body.threshold"},
		{"threshold above association", g(func(m *Manifest) { m.Threshold = 2 }), ErrInvalid, "body.threshold"},
		{"quorum without maintainers", g(func(m *Manifest) { m.Quorum = 1 }), ErrInvalid, "body.quorum"},
		{"reject quorum without maintainers", g(func(m *Manifest) { m.RejectQuorum = 1 }), ErrInvalid, "body.quorum"},
		{"quorum zero", g(func(m *Manifest) { m.Maintainers, m.RejectQuorum = sortedKeys(2), 1 }), ErrInvalid, "body.quorum"},
		{"quorum above maintainers", g(func(m *Manifest) { m.Maintainers, m.Quorum, m.RejectQuorum = sortedKeys(2), 3, 1 }), ErrInvalid, "body.quorum"},
		{"reject quorum zero", g(func(m *Manifest) { m.Maintainers, m.Quorum = sortedKeys(2), 2 }), ErrInvalid, "body.reject_quorum"},
		{"reject quorum above maintainers", g(func(m *Manifest) { m.Maintainers, m.Quorum, m.RejectQuorum = sortedKeys(2), 1, 3 }), ErrInvalid, "body.reject_quorum"},
		{"quorums at maintainers", g(func(m *Manifest) { m.Maintainers, m.Quorum, m.RejectQuorum = sortedKeys(2), 2, 2 }), nil, ""},
		{"bootstrap at limit", g(func(m *Manifest) { m.Bootstrap = slices.Repeat([]string{"/ip4/10.0.0.1/tcp/4001"}, MaxBootstrap) }), nil, ""},
		{"bootstrap over limit", g(func(m *Manifest) { m.Bootstrap = slices.Repeat([]string{"/ip4/10.0.0.1/tcp/4001"}, MaxBootstrap+1) }), ErrTooLarge, "body.bootstrap"},
		{"bootstrap empty string", g(func(m *Manifest) { m.Bootstrap = []string{"/ip4/10.0.0.1/tcp/1", ""} }), ErrInvalid, "body.bootstrap[1]"},
		{"bootstrap without slash", g(func(m *Manifest) { m.Bootstrap = []string{"ip4/10.0.0.1"} }), ErrInvalid, "body.bootstrap[0]"},
		{"bootstrap with space", g(func(m *Manifest) { m.Bootstrap = []string{"/ip4/10.0.0.1 /tcp/1"} }), ErrInvalid, "body.bootstrap[0]"},
		{"bootstrap address at limit", g(func(m *Manifest) { m.Bootstrap = []string{"/" + strings.Repeat("a", MaxMultiaddrLen-1)} }), nil, ""},
		{"bootstrap address over limit", g(func(m *Manifest) { m.Bootstrap = []string{"/" + strings.Repeat("a", MaxMultiaddrLen)} }), ErrInvalid, "body.bootstrap[0]"},
		{"policy empty", g(func(m *Manifest) { m.Policy = &Policy{} }), ErrInvalid, "body.policy"},
		{"policy set", g(func(m *Manifest) { m.Policy = &Policy{MaxBlobBytes: 1} }), nil, ""},
		{"policy coalition", g(func(m *Manifest) { m.Policy = &Policy{Coalition: CoalitionVersion} }), nil, ""},
		{"policy coalition above the version known", g(func(m *Manifest) { m.Policy = &Policy{Coalition: CoalitionVersion + 1} }), ErrInvalid, "body.policy.coalition"},
		{"policy coalition 2", g(func(m *Manifest) { m.Policy = &Policy{Coalition: 2} }), ErrInvalid, "body.policy.coalition"},
		{"policy coalition huge", g(func(m *Manifest) { m.Policy = &Policy{Coalition: 1 << 63} }), ErrInvalid, "body.policy.coalition"},
		{"policy coalition with work and bans", g(func(m *Manifest) { m.Policy = &Policy{Coalition: 1, Work: 1, Bans: true} }), nil, ""},
		{"genesis with prev", g(func(m *Manifest) { m.Prev = []Link{{testOther}} }), ErrInvalid, "body.prev"},
		{"genesis with version", g(func(m *Manifest) { m.Version = 1 }), ErrInvalid, "body.version"},
		{"genesis by a non-member", func() *Record {
			r := genesisRecord(author)
			r.Manifest().Association = []PublicKey{testKey(2).Public()}
			return r
		}, ErrInvalid, "author"},
		{"update without prev", u(func(m *Manifest) { m.Prev = nil }), ErrMissing, "body.prev"},
		{"update with version 0", u(func(m *Manifest) { m.Version = 0 }), ErrInvalid, "body.version"},
		{"update setting policy coalition", u(func(m *Manifest) { m.Policy = &Policy{Coalition: 1} }), ErrInvalid, "body.policy.coalition"},
		{"update setting policy coalition 2", u(func(m *Manifest) { m.Policy = &Policy{Coalition: 2} }), ErrInvalid, "body.policy.coalition"},
		{"update setting policy coalition beside a blob limit", u(func(m *Manifest) { m.Policy = &Policy{MaxBlobBytes: 1, Coalition: 1} }), ErrInvalid, "body.policy.coalition"},
		{"update by a non-member", func() *Record {
			r := updateRecord(author)
			r.Manifest().Association = []PublicKey{testKey(2).Public()}
			return r // authority is crdt's business: statelessly valid
		}, nil, ""},
		{"prev at limit", u(func(m *Manifest) { m.Prev = prevs(MaxPrev) }), nil, ""},
		{"prev over limit", u(func(m *Manifest) { m.Prev = prevs(MaxPrev + 1) }), ErrTooLarge, "body.prev"},
		{"prev unsorted", u(func(m *Manifest) { p := prevs(2); m.Prev = []Link{p[1], p[0]} }), ErrInvalid, "body.prev"},
		{"prev duplicate", u(func(m *Manifest) { m.Prev = []Link{{testOther}, {testOther}} }), ErrInvalid, "body.prev"},
		{"prev raw CID", u(func(m *Manifest) { m.Prev = []Link{{testBlob}} }), ErrInvalid, "body.prev[0]"},
	})
}

func TestValidateContribution(t *testing.T) {
	c := func(f func(c *Contribution)) func() *Record {
		return func() *Record { r := contributionRecord(); f(r.Contribution()); return r }
	}
	blobs := func(n int) []PayloadRef {
		ps := make([]PayloadRef, n)
		for i := range ps {
			ps[i] = PayloadRef{CID: Link{BlobCID([]byte{byte(i)})}}
		}
		return ps
	}
	sponsor := testKey(3).Public()
	runValidation(t, []validationCase{
		{"ok", c(func(*Contribution) {}), nil, ""},
		{"title empty", c(func(c *Contribution) { c.Title = "" }), ErrMissing, "body.title"},
		{"title at limit", c(func(c *Contribution) { c.Title = strings.Repeat("t", MaxTitleLen) }), nil, ""},
		{"title over limit", c(func(c *Contribution) { c.Title = strings.Repeat("t", MaxTitleLen+1) }), ErrTooLarge, "body.title"},
		{"title with NUL", c(func(c *Contribution) { c.Title = "a\x00" }), ErrInvalid, "body.title"},
		// Only the coalition's records refuse format characters (Cf).
		{"title with a zero-width space", c(func(c *Contribution) { c.Title = "a\u200bb" }), nil, ""},
		{"summary with a right-to-left override", c(func(c *Contribution) { c.Summary = "a\u202eb" }), nil, ""},
		{"summary at limit", c(func(c *Contribution) { c.Summary = strings.Repeat("s", MaxSummaryLen) }), nil, ""},
		{"summary over limit", c(func(c *Contribution) { c.Summary = strings.Repeat("s", MaxSummaryLen+1) }), ErrTooLarge, "body.summary"},
		{"summary with tab and newline", c(func(c *Contribution) { c.Summary = "a\tb\nc" }), nil, ""},
		{"summary with carriage return", c(func(c *Contribution) { c.Summary = "a\r\nb" }), ErrInvalid, "body.summary"},
		{"kind at limit", c(func(c *Contribution) { c.Kind = strings.Repeat("k", MaxKindLen) }), nil, ""},
		{"kind over limit", c(func(c *Contribution) { c.Kind = strings.Repeat("k", MaxKindLen+1) }), ErrInvalid, "body.kind"},
		{"kind upper case", c(func(c *Contribution) { c.Kind = "Code" }), ErrInvalid, "body.kind"},
		{"kind punctuation", c(func(c *Contribution) { c.Kind = "a-b_c.d9" }), nil, ""},
		{"payload at limit", c(func(c *Contribution) { c.Payload = blobs(MaxPayload) }), nil, ""},
		{"payload over limit", c(func(c *Contribution) { c.Payload = blobs(MaxPayload + 1) }), ErrTooLarge, "body.payload"},
		{"payload CID undefined", c(func(c *Contribution) { c.Payload = []PayloadRef{{Name: "x"}} }), ErrMissing, "body.payload[0].cid"},
		{"payload CID dag-cbor", c(func(c *Contribution) { c.Payload = []PayloadRef{{CID: Link{testOther}}} }), ErrInvalid, "body.payload[0].cid"},
		{"payload duplicate", c(func(c *Contribution) { c.Payload = append(blobs(2), blobs(1)...) }), ErrInvalid, "body.payload[2].cid"},
		{"payload name at limit", c(func(c *Contribution) { c.Payload = blobs(1); c.Payload[0].Name = strings.Repeat("f", MaxFileNameLen) }), nil, ""},
		{"payload name over limit", c(func(c *Contribution) { c.Payload = blobs(1); c.Payload[0].Name = strings.Repeat("f", MaxFileNameLen+1) }), ErrTooLarge, "body.payload[0].name"},
		{"payload name is a path", c(func(c *Contribution) { c.Payload = blobs(2); c.Payload[1].Name = "a/b" }), ErrInvalid, "body.payload[1].name"},
		{"payload name with backslash", c(func(c *Contribution) { c.Payload = blobs(1); c.Payload[0].Name = `a\b` }), ErrInvalid, "body.payload[0].name"},
		{"payload name with control character", c(func(c *Contribution) { c.Payload = blobs(1); c.Payload[0].Name = "a\x01b" }), ErrInvalid, "body.payload[0].name"},
		{"licence undefined", c(func(c *Contribution) { c.Licence = Link{} }), ErrMissing, "body.licence"},
		{"licence raw", c(func(c *Contribution) { c.Licence = Link{testBlob} }), ErrInvalid, "body.licence"},
		{"revises", c(func(c *Contribution) { c.Revises = &Link{testOther} }), nil, ""},
		{"revises raw", c(func(c *Contribution) { c.Revises = &Link{testBlob} }), ErrInvalid, "body.revises"},
		{"provenance empty", c(func(c *Contribution) { c.Provenance = "" }), ErrMissing, "body.provenance"},
		{"provenance unknown", c(func(c *Contribution) { c.Provenance = "Volunteer" }), ErrInvalid, "body.provenance"},
		{"volunteer with sponsor", c(func(c *Contribution) { c.Sponsor = &sponsor }), ErrInvalid, "body.sponsor"},
		{"paid with sponsor", c(func(c *Contribution) { c.Provenance, c.Sponsor = ProvenancePaid, &sponsor }), nil, ""},
		{"paid without sponsor", c(func(c *Contribution) { c.Provenance = ProvenancePaid }), nil, ""},
	})
}

func TestValidateReview(t *testing.T) {
	v := func(f func(v *Review)) func() *Record {
		return func() *Record { r := reviewRecord(); f(r.Review()); return r }
	}
	runValidation(t, []validationCase{
		{"ok", v(func(*Review) {}), nil, ""},
		{"accept", v(func(v *Review) { v.Decision = DecisionAccept }), nil, ""},
		{"retract", v(func(v *Review) { v.Decision = DecisionRetract }), nil, ""},
		{"target undefined", v(func(v *Review) { v.Target = Link{} }), ErrMissing, "body.target"},
		{"target raw", v(func(v *Review) { v.Target = Link{testBlob} }), ErrInvalid, "body.target"},
		{"under undefined", v(func(v *Review) { v.Under = Link{} }), ErrMissing, "body.under"},
		{"under raw", v(func(v *Review) { v.Under = Link{testBlob} }), ErrInvalid, "body.under"},
		{"decision empty", v(func(v *Review) { v.Decision = "" }), ErrMissing, "body.decision"},
		{"decision unknown", v(func(v *Review) { v.Decision = "ACCEPT" }), ErrInvalid, "body.decision"},
		{"rationale at limit", v(func(v *Review) { v.Rationale = strings.Repeat("r", MaxRationaleLen) }), nil, ""},
		{"rationale over limit", v(func(v *Review) { v.Rationale = strings.Repeat("r", MaxRationaleLen+1) }), ErrTooLarge, "body.rationale"},
		{"same target and under", v(func(v *Review) { v.Target = v.Under }), nil, ""},
		{"rationale with a zero-width space", v(func(v *Review) { v.Rationale = "a\u200bb" }), nil, ""},
	})
}

func TestValidateProfile(t *testing.T) {
	p := func(f func(p *Profile)) func() *Record {
		return func() *Record { r := profileRecord(); f(r.Profile()); return r }
	}
	uses := func(n int) []Use {
		us := make([]Use, n)
		for i := range us {
			us[i] = Use{Kind: "service", Name: fmt.Sprintf("Service %d", i)}
		}
		return us
	}
	url := func(s string) func() *Record {
		return p(func(p *Profile) { p.Uses = uses(3); p.Uses[2].URL = s })
	}
	runValidation(t, []validationCase{
		{"ok", p(func(*Profile) {}), nil, ""},
		{"name only", p(func(p *Profile) { p.Uses = nil }), nil, ""},
		{"name empty", p(func(p *Profile) { p.Name = "" }), ErrMissing, "body.name"},
		{"name blank", p(func(p *Profile) { p.Name = " \t\n" }), ErrMissing, "body.name"},
		{"name at limit", p(func(p *Profile) { p.Name = strings.Repeat("n", MaxNameLen) }), nil, ""},
		{"name over limit", p(func(p *Profile) { p.Name = strings.Repeat("n", MaxNameLen+1) }), ErrTooLarge, "body.name"},
		{"name with control character", p(func(p *Profile) { p.Name = "a\x1bb" }), ErrInvalid, "body.name"},
		{"name with NUL", p(func(p *Profile) { p.Name = "a\x00" }), ErrInvalid, "body.name"},
		{"name with a right-to-left override", p(func(p *Profile) { p.Name = "Example\u202eLtd" }), ErrInvalid, "body.name"},
		{"name with a zero-width space", p(func(p *Profile) { p.Name = "Exa\u200bmple" }), ErrInvalid, "body.name"},
		{"name with a zero-width joiner", p(func(p *Profile) { p.Name = "a\u200db" }), ErrInvalid, "body.name"},
		{"name with a byte order mark", p(func(p *Profile) { p.Name = "\ufeffName" }), ErrInvalid, "body.name"},
		{"name with a soft hyphen", p(func(p *Profile) { p.Name = "Ex\u00adample" }), ErrInvalid, "body.name"},
		{"name with a tag character", p(func(p *Profile) { p.Name = "a\U000e0041" }), ErrInvalid, "body.name"},
		{"name of a format character only", p(func(p *Profile) { p.Name = "\u200b" }), ErrInvalid, "body.name"},
		{"name with accents and symbols", p(func(p *Profile) { p.Name = "Café Zoë — 5 € ✓ 日本" }), nil, ""},
		{"name with a right-to-left script", p(func(p *Profile) { p.Name = "שלום" }), nil, ""},
		{"name with a format character and about over limit", p(func(p *Profile) {
			p.Name, p.About = "a\u202eb", strings.Repeat("a", MaxAboutLen+1)
		}), ErrInvalid, "body.name"},
		{"about at limit", p(func(p *Profile) { p.About = strings.Repeat("a", MaxAboutLen) }), nil, ""},
		{"about over limit", p(func(p *Profile) { p.About = strings.Repeat("a", MaxAboutLen+1) }), ErrTooLarge, "body.about"},
		{"about with tab and newline", p(func(p *Profile) { p.About = "a\tb\nc" }), nil, ""},
		{"about with carriage return", p(func(p *Profile) { p.About = "a\r\nb" }), ErrInvalid, "body.about"},
		{"about with C1 control", p(func(p *Profile) { p.About = "a\u0085b" }), ErrInvalid, "body.about"},
		{"about blank", p(func(p *Profile) { p.About = " " }), nil, ""},
		{"about with a zero-width space", p(func(p *Profile) { p.About = "a\u200bb" }), ErrInvalid, "body.about"},
		{"about with a right-to-left override", p(func(p *Profile) { p.About = "a\n\u202eb" }), ErrInvalid, "body.about"},
		{"uses at limit", p(func(p *Profile) { p.Uses = uses(MaxUses) }), nil, ""},
		{"uses over limit", p(func(p *Profile) { p.Uses = uses(MaxUses + 1) }), ErrTooLarge, "body.uses"},
		{"17 uses", p(func(p *Profile) { p.Uses = uses(17) }), ErrTooLarge, "body.uses"},
		{"use kind missing", p(func(p *Profile) { p.Uses[0].Kind = "" }), ErrMissing, "body.uses[0].kind"},
		{"use kind upper case", p(func(p *Profile) { p.Uses[0].Kind = "Product" }), ErrInvalid, "body.uses[0].kind"},
		{"use kind with space", p(func(p *Profile) { p.Uses = uses(2); p.Uses[1].Kind = "open source" }), ErrInvalid, "body.uses[1].kind"},
		{"use kind with slash", p(func(p *Profile) { p.Uses[0].Kind = "a/b" }), ErrInvalid, "body.uses[0].kind"},
		{"use kind not ASCII", p(func(p *Profile) { p.Uses[0].Kind = "produit-été" }), ErrInvalid, "body.uses[0].kind"},
		{"use kind punctuation", p(func(p *Profile) { p.Uses[0].Kind = "a-b_c.d9" }), nil, ""},
		{"use kind at limit", p(func(p *Profile) { p.Uses[0].Kind = strings.Repeat("k", MaxKindLen) }), nil, ""},
		{"use kind over limit", p(func(p *Profile) { p.Uses[0].Kind = strings.Repeat("k", MaxKindLen+1) }), ErrInvalid, "body.uses[0].kind"},
		{"use name missing", p(func(p *Profile) { p.Uses = uses(2); p.Uses[1].Name = "" }), ErrMissing, "body.uses[1].name"},
		{"use name blank", p(func(p *Profile) { p.Uses[0].Name = "  " }), ErrMissing, "body.uses[0].name"},
		{"use name at limit", p(func(p *Profile) { p.Uses[0].Name = strings.Repeat("n", MaxNameLen) }), nil, ""},
		{"use name over limit", p(func(p *Profile) { p.Uses[0].Name = strings.Repeat("n", MaxNameLen+1) }), ErrTooLarge, "body.uses[0].name"},
		{"use name with control character", p(func(p *Profile) { p.Uses[0].Name = "a\x07b" }), ErrInvalid, "body.uses[0].name"},
		{"use name with a right-to-left override", p(func(p *Profile) { p.Uses = uses(2); p.Uses[1].Name = "a\u202eb" }), ErrInvalid, "body.uses[1].name"},
		{"use name with a zero-width space", p(func(p *Profile) { p.Uses[0].Name = "\u200bProduct" }), ErrInvalid, "body.uses[0].name"},
		{"url absent", url(""), nil, ""},
		{"url http", url("http://x"), nil, ""},
		{"url https with path and query", url("https://example.org/a/b?c=d#e"), nil, ""},
		{"url with port", url("https://example.org:8443/"), nil, ""},
		{"url with user information", url("https://me@example.org"), nil, ""},
		{"url with an IPv6 host", url("http://[::1]:8080/"), nil, ""},
		{"url host then query", url("https://example.org?x"), nil, ""},
		{"url ftp", url("ftp://x"), ErrInvalid, "body.uses[2].url"},
		{"url without scheme", url("example.org"), ErrInvalid, "body.uses[2].url"},
		{"url scheme only", url("https://"), ErrInvalid, "body.uses[2].url"},
		{"url http scheme only", url("http://"), ErrInvalid, "body.uses[2].url"},
		{"url without host", url("https:///path"), ErrInvalid, "body.uses[2].url"},
		{"url with a query and no host", url("https://?q=1"), ErrInvalid, "body.uses[2].url"},
		{"url with a fragment and no host", url("https://#frag"), ErrInvalid, "body.uses[2].url"},
		{"url with a port and no host", url("https://:443/"), ErrInvalid, "body.uses[2].url"},
		{"url with user information and no host", url("https://user@/"), ErrInvalid, "body.uses[2].url"},
		{"url with an empty query and no host", url("http://?"), ErrInvalid, "body.uses[2].url"},
		{"url with space", url("https:// x"), ErrInvalid, "body.uses[2].url"},
		{"url with space in path", url("https://x/a b"), ErrInvalid, "body.uses[2].url"},
		{"url with tab", url("https://x/\t"), ErrInvalid, "body.uses[2].url"},
		{"url with newline", url("https://x\n"), ErrInvalid, "body.uses[2].url"},
		{"url with no-break space", url("https://x/\u00a0"), ErrInvalid, "body.uses[2].url"},
		{"url with NUL", url("https://x/\x00"), ErrInvalid, "body.uses[2].url"},
		{"url with DEL", url("https://x/\x7f"), ErrInvalid, "body.uses[2].url"},
		{"url javascript", url("javascript:alert(1)"), ErrInvalid, "body.uses[2].url"},
		{"url with a right-to-left override", url("https://example.org/\u202egpj.exe"), ErrInvalid, "body.uses[2].url"},
		{"url with a zero-width space in the host", url("https://exa\u200bmple.org/"), ErrInvalid, "body.uses[2].url"},
		{"url with a byte order mark", url("https://example.org/\ufeff"), ErrInvalid, "body.uses[2].url"},
		{"url with a soft hyphen", url("https://example.org/a\u00adb"), ErrInvalid, "body.uses[2].url"},
		{"url with a zero-width joiner in the query", url("https://example.org/?q=a\u200db"), ErrInvalid, "body.uses[2].url"},
		{"url with a non-ASCII path", url("https://example.org/café"), nil, ""},
		{"url at limit", url("https://x/" + strings.Repeat("p", MaxURLLen-len("https://x/"))), nil, ""},
		{"url of 513 bytes", url("https://x/" + strings.Repeat("p", 513-len("https://x/"))), ErrTooLarge, "body.uses[2].url"},
		{"url over limit, not a URL", url(strings.Repeat(" ", MaxURLLen+1)), ErrTooLarge, "body.uses[2].url"},
		{"first bad use named", p(func(p *Profile) { p.Uses = uses(3); p.Uses[1].URL, p.Uses[2].Kind = "ftp://x", "" }), ErrInvalid, "body.uses[1].url"},
		{"without commons", func() *Record { r := profileRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := profileRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"cosigs on a profile", func() *Record {
			r := profileRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r
		}, ErrInvalid, "cosigs"},
	})
	if ls := profileRecord().Links(); len(ls) != 0 {
		t.Errorf("a profile links %v, want nothing", ls)
	}
}

func TestValidateSponsorship(t *testing.T) {
	s := func(f func(s *Sponsorship)) func() *Record {
		return func() *Record { r := sponsorshipRecord(); f(r.Sponsorship()); return r }
	}
	runValidation(t, []validationCase{
		{"ok", s(func(*Sponsorship) {}), nil, ""},
		{"with note", s(func(s *Sponsorship) { s.Note = "Paid for by\tExample Ltd.\n" }), nil, ""},
		{"target undefined", s(func(s *Sponsorship) { s.Target = Link{} }), ErrMissing, "body.target"},
		{"target raw", s(func(s *Sponsorship) { s.Target = Link{testBlob} }), ErrInvalid, "body.target"},
		{"target the commons", s(func(s *Sponsorship) { s.Target = Link{testCommons} }), nil, ""},
		{"note at limit", s(func(s *Sponsorship) { s.Note = strings.Repeat("n", MaxAboutLen) }), nil, ""},
		{"note over limit", s(func(s *Sponsorship) { s.Note = strings.Repeat("n", MaxAboutLen+1) }), ErrTooLarge, "body.note"},
		{"note with control character", s(func(s *Sponsorship) { s.Note = "a\x1bb" }), ErrInvalid, "body.note"},
		{"note with carriage return", s(func(s *Sponsorship) { s.Note = "a\rb" }), ErrInvalid, "body.note"},
		{"note with a right-to-left override", s(func(s *Sponsorship) { s.Note = "a\u202eb" }), ErrInvalid, "body.note"},
		{"note with a zero-width space", s(func(s *Sponsorship) { s.Note = "a\u200bb" }), ErrInvalid, "body.note"},
		{"note with accents", s(func(s *Sponsorship) { s.Note = "Payé par Ünïcode SARL — 5 €." }), nil, ""},
		{"target undefined and note with a format character", s(func(s *Sponsorship) { s.Target, s.Note = Link{}, "a\u200bb" }), ErrMissing, "body.target"},
		{"target undefined and note over limit", s(func(s *Sponsorship) {
			s.Target, s.Note = Link{}, strings.Repeat("n", MaxAboutLen+1)
		}), ErrMissing, "body.target"},
		{"without commons", func() *Record { r := sponsorshipRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"cosigs on a sponsorship", func() *Record {
			r := sponsorshipRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r
		}, ErrInvalid, "cosigs"},
	})
	if ls := sponsorshipRecord().Links(); len(ls) != 1 || !ls[0].Equals(testOther) {
		t.Errorf("a sponsorship links %v, want [%s] (its target)", ls, testOther)
	}
}

func TestValidatePledge(t *testing.T) {
	p := func(f func(p *Pledge)) func() *Record {
		return func() *Record { r := pledgeRecord(); f(r.Pledge()); return r }
	}
	i := func(f func(p *Pledge)) func() *Record {
		return func() *Record { r := infrastructurePledgeRecord(); f(r.Pledge()); return r }
	}
	hours := func(f func(p *Pledge)) func() *Record {
		return p(func(p *Pledge) { p.Kind, p.Currency = PledgeHours, ""; f(p) })
	}
	peerID := testKey(7).Public()
	secp, _, err := crypto.GenerateSecp256k1Key(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	secpID, err := peer.IDFromPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	beneficiary, author := testKey(3).Public(), testKey(9).Public()
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		t.Fatal(err)
	}
	runValidation(t, []validationCase{
		{"money ok", p(func(*Pledge) {}), nil, ""},
		{"hours ok", hours(func(*Pledge) {}), nil, ""},
		{"infrastructure ok", i(func(*Pledge) {}), nil, ""},
		{"with beneficiary", p(func(p *Pledge) { p.Beneficiary = &beneficiary }), nil, ""},
		{"beneficiary its author", p(func(p *Pledge) { p.Beneficiary = &author }), ErrInvalid, "body.beneficiary"},
		{"hours, beneficiary its author", hours(func(p *Pledge) { p.Beneficiary = &author }), ErrInvalid, "body.beneficiary"},
		{"infrastructure, beneficiary its author", i(func(p *Pledge) { p.Beneficiary = &author }), ErrInvalid, "body.beneficiary"},
		{"beneficiary its author and note over limit", p(func(p *Pledge) {
			p.Beneficiary, p.Note = &author, strings.Repeat("n", MaxAboutLen+1)
		}), ErrTooLarge, "body.note"},
		{"beneficiary its author, author another key", func() *Record {
			r := pledgeRecord()
			r.Author, r.Pledge().Beneficiary = beneficiary, &author
			return r
		}, nil, ""},
		{"beneficiary its author, both another key", func() *Record {
			r := pledgeRecord()
			r.Author, r.Pledge().Beneficiary = beneficiary, &beneficiary
			return r
		}, ErrInvalid, "body.beneficiary"},
		{"under undefined", p(func(p *Pledge) { p.Under = Link{} }), ErrMissing, "body.under"},
		{"infrastructure under undefined", i(func(p *Pledge) { p.Under = Link{} }), ErrMissing, "body.under"},
		{"under raw", p(func(p *Pledge) { p.Under = Link{testBlob} }), ErrInvalid, "body.under"},
		{"under CIDv0", p(func(p *Pledge) { p.Under = Link{v0} }), ErrInvalid, "body.under"},
		{"under another record", p(func(p *Pledge) { p.Under = Link{testOther} }), nil, ""},
		{"under undefined and note over limit", p(func(p *Pledge) { p.Under, p.Note = Link{}, strings.Repeat("n", MaxAboutLen+1) }), ErrMissing, "body.under"},
		{"under raw and note with a format character", p(func(p *Pledge) { p.Under, p.Note = Link{testBlob}, "a\u202eb" }), ErrInvalid, "body.under"},
		{"until bad and under undefined", p(func(p *Pledge) { p.Until, p.Under = 0, Link{} }), ErrInvalid, "body.until"},
		{"under undefined and beneficiary its author", p(func(p *Pledge) { p.Under, p.Beneficiary = Link{}, &author }), ErrMissing, "body.under"},
		{"with note", p(func(p *Pledge) { p.Note = "Ten per cent\tof sales.\n" }), nil, ""},
		{"kind empty", p(func(p *Pledge) { p.Kind = "" }), ErrMissing, "body.kind"},
		{"kind upper case", p(func(p *Pledge) { p.Kind = "Money" }), ErrInvalid, "body.kind"},
		{"kind unknown", p(func(p *Pledge) { p.Kind = "time" }), ErrInvalid, "body.kind"},
		{"kind with trailing space", p(func(p *Pledge) { p.Kind = "money " }), ErrInvalid, "body.kind"},
		{"kind plural", hours(func(p *Pledge) { p.Kind = "hour" }), ErrInvalid, "body.kind"},
		{"kind empty, nothing else set", p(func(p *Pledge) { *p = Pledge{} }), ErrMissing, "body.kind"},
		{"kind empty and from zero", p(func(p *Pledge) { p.Kind, p.From = "", 0 }), ErrMissing, "body.kind"},
		{"money amount zero", p(func(p *Pledge) { p.Amount = 0 }), ErrMissing, "body.amount"},
		{"money amount 1", p(func(p *Pledge) { p.Amount = 1 }), nil, ""},
		{"money amount MaxAmount", p(func(p *Pledge) { p.Amount = MaxAmount }), nil, ""},
		{"money amount 2^53-1", p(func(p *Pledge) { p.Amount = 9007199254740991 }), nil, ""},
		{"money amount MaxAmount+1", p(func(p *Pledge) { p.Amount = MaxAmount + 1 }), ErrTooLarge, "body.amount"},
		{"money amount 2^64-1", p(func(p *Pledge) { p.Amount = 1<<64 - 1 }), ErrTooLarge, "body.amount"},
		{"money amount over max and currency bad", p(func(p *Pledge) { p.Amount, p.Currency = MaxAmount+1, "eur" }), ErrTooLarge, "body.amount"},
		{"money amount over max and peer", p(func(p *Pledge) { p.Amount, p.Peer = MaxAmount+1, peerID.String() }), ErrTooLarge, "body.amount"},
		{"hours amount MaxAmount", hours(func(p *Pledge) { p.Amount = MaxAmount }), nil, ""},
		{"hours amount MaxAmount+1", hours(func(p *Pledge) { p.Amount = MaxAmount + 1 }), ErrTooLarge, "body.amount"},
		{"infrastructure with amount MaxAmount+1", i(func(p *Pledge) { p.Amount = MaxAmount + 1 }), ErrInvalid, "body.amount"},
		{"money with peer", p(func(p *Pledge) { p.Peer = peerID.String() }), ErrInvalid, "body.peer"},
		{"money amount zero and peer", p(func(p *Pledge) { p.Amount, p.Peer = 0, peerID.String() }), ErrMissing, "body.amount"},
		{"hours amount zero", hours(func(p *Pledge) { p.Amount = 0 }), ErrMissing, "body.amount"},
		{"hours amount 1", hours(func(p *Pledge) { p.Amount = 1 }), nil, ""},
		{"hours with peer", hours(func(p *Pledge) { p.Peer = peerID.String() }), ErrInvalid, "body.peer"},
		{"infrastructure with amount", i(func(p *Pledge) { p.Amount = 1 }), ErrInvalid, "body.amount"},
		{"infrastructure without peer", i(func(p *Pledge) { p.Peer = "" }), ErrMissing, "body.peer"},
		{"infrastructure with amount and without peer", i(func(p *Pledge) { p.Amount, p.Peer = 1, "" }), ErrInvalid, "body.amount"},
		{"infrastructure peer as hex", i(func(p *Pledge) { p.Peer = peerID.Hex() }), ErrInvalid, "body.peer"},
		{"infrastructure peer as upper-case hex", i(func(p *Pledge) { p.Peer = strings.ToUpper(peerID.Hex()) }), ErrInvalid, "body.peer"},
		{"infrastructure peer of 62 hex digits", i(func(p *Pledge) { p.Peer = peerID.Hex()[:62] }), ErrInvalid, "body.peer"},
		{"infrastructure peer of a secp256k1 key", i(func(p *Pledge) { p.Peer = secpID.String() }), ErrInvalid, "body.peer"},
		{"infrastructure peer as a sha2-256 ID", i(func(p *Pledge) { p.Peer = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N" }), ErrInvalid, "body.peer"},
		{"infrastructure peer in its CID form", i(func(p *Pledge) { p.Peer = peer.ToCid(testKey(7).Public().PeerID()).String() }), ErrInvalid, "body.peer"},
		{"infrastructure peer prefix only", i(func(p *Pledge) { p.Peer = "12D3KooW" }), ErrInvalid, "body.peer"},
		{"infrastructure peer truncated", i(func(p *Pledge) { p.Peer = peerID.String()[:len(peerID.String())-1] }), ErrInvalid, "body.peer"},
		{"infrastructure peer with a trailing space", i(func(p *Pledge) { p.Peer = peerID.String() + " " }), ErrInvalid, "body.peer"},
		{"infrastructure peer as a multiaddr", i(func(p *Pledge) { p.Peer = "/p2p/" + peerID.String() }), ErrInvalid, "body.peer"},
		{"infrastructure peer not an ID", i(func(p *Pledge) { p.Peer = "node-1" }), ErrInvalid, "body.peer"},
		{"money currency empty", p(func(p *Pledge) { p.Currency = "" }), ErrInvalid, "body.currency"},
		{"money currency lower case", p(func(p *Pledge) { p.Currency = "eur" }), ErrInvalid, "body.currency"},
		{"money currency mixed case", p(func(p *Pledge) { p.Currency = "Eur" }), ErrInvalid, "body.currency"},
		{"money currency of two letters", p(func(p *Pledge) { p.Currency = "EU" }), ErrInvalid, "body.currency"},
		{"money currency of four letters", p(func(p *Pledge) { p.Currency = "EURO" }), ErrInvalid, "body.currency"},
		{"money currency with a digit", p(func(p *Pledge) { p.Currency = "EU1" }), ErrInvalid, "body.currency"},
		{"money currency with a space", p(func(p *Pledge) { p.Currency = "EU " }), ErrInvalid, "body.currency"},
		{"money currency a symbol of three bytes", p(func(p *Pledge) { p.Currency = "€" }), ErrInvalid, "body.currency"},
		{"money currency with an accent", p(func(p *Pledge) { p.Currency = "ÉU" }), ErrInvalid, "body.currency"},
		{"money currency AAA", p(func(p *Pledge) { p.Currency = "AAA" }), nil, ""},
		{"money currency ZZZ", p(func(p *Pledge) { p.Currency = "ZZZ" }), nil, ""},
		{"money currency with @ and [", p(func(p *Pledge) { p.Currency = "@[A" }), ErrInvalid, "body.currency"},
		{"hours with currency", hours(func(p *Pledge) { p.Currency = "EUR" }), ErrInvalid, "body.currency"},
		{"infrastructure with currency", i(func(p *Pledge) { p.Currency = "EUR" }), ErrInvalid, "body.currency"},
		{"money currency bad and from zero", p(func(p *Pledge) { p.Currency, p.From = "eur", 0 }), ErrInvalid, "body.currency"},
		{"from zero", p(func(p *Pledge) { p.From = 0 }), ErrMissing, "body.from"},
		{"from zero, until zero", p(func(p *Pledge) { p.From, p.Until = 0, 0 }), ErrMissing, "body.from"},
		{"from 1, until 2", p(func(p *Pledge) { p.From, p.Until = 1, 2 }), nil, ""},
		{"until zero", p(func(p *Pledge) { p.Until = 0 }), ErrInvalid, "body.until"},
		{"until equal to from", p(func(p *Pledge) { p.Until = p.From }), ErrInvalid, "body.until"},
		{"until before from", p(func(p *Pledge) { p.Until = p.From - 1 }), ErrInvalid, "body.until"},
		{"until MaxMillis", p(func(p *Pledge) { p.Until = MaxMillis }), nil, ""},
		{"until 9999-12-31T23:59:59.999Z", p(func(p *Pledge) { p.Until = 253402300799999 }), nil, ""},
		{"until MaxMillis+1", p(func(p *Pledge) { p.Until = MaxMillis + 1 }), ErrInvalid, "body.until"},
		{"infrastructure until MaxMillis+1", i(func(p *Pledge) { p.Until = MaxMillis + 1 }), ErrInvalid, "body.until"},
		{"until 2^64-1", p(func(p *Pledge) { p.Until = 1<<64 - 1 }), ErrInvalid, "body.until"},
		{"from MaxMillis-1, until MaxMillis", p(func(p *Pledge) { p.From, p.Until = MaxMillis-1, MaxMillis }), nil, ""},
		{"from MaxMillis, until MaxMillis+1", p(func(p *Pledge) { p.From, p.Until = MaxMillis, MaxMillis+1 }), ErrInvalid, "body.until"},
		{"from MaxMillis+1, until MaxMillis+2", p(func(p *Pledge) { p.From, p.Until = MaxMillis+1, MaxMillis+2 }), ErrInvalid, "body.until"},
		{"from max", p(func(p *Pledge) { p.From, p.Until = 1<<64-1, 1<<64-1 }), ErrInvalid, "body.until"},
		{"until over max and note over limit", p(func(p *Pledge) { p.Until, p.Note = MaxMillis+1, strings.Repeat("n", MaxAboutLen+1) }), ErrInvalid, "body.until"},
		{"until before from and note over limit", p(func(p *Pledge) { p.Until, p.Note = 0, strings.Repeat("n", MaxAboutLen+1) }), ErrInvalid, "body.until"},
		{"note at limit", p(func(p *Pledge) { p.Note = strings.Repeat("n", MaxAboutLen) }), nil, ""},
		{"note over limit", p(func(p *Pledge) { p.Note = strings.Repeat("n", MaxAboutLen+1) }), ErrTooLarge, "body.note"},
		{"note with control character", p(func(p *Pledge) { p.Note = "a\x1bb" }), ErrInvalid, "body.note"},
		{"note with carriage return", i(func(p *Pledge) { p.Note = "a\rb" }), ErrInvalid, "body.note"},
		{"note blank", p(func(p *Pledge) { p.Note = " " }), nil, ""},
		{"note with a right-to-left override", p(func(p *Pledge) { p.Note = "a\u202eb" }), ErrInvalid, "body.note"},
		{"note with a zero-width space", p(func(p *Pledge) { p.Note = "a\u200bb" }), ErrInvalid, "body.note"},
		{"note with a byte order mark", i(func(p *Pledge) { p.Note = "\ufeffa" }), ErrInvalid, "body.note"},
		{"note with accents and symbols", p(func(p *Pledge) { p.Note = "Dix pour cent des ventes — 5 €." }), nil, ""},
		{"without commons", func() *Record { r := pledgeRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := pledgeRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"cosigs on a pledge", func() *Record {
			r := pledgeRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r
		}, ErrInvalid, "cosigs"},
	})
	for _, r := range []*Record{pledgeRecord(), infrastructurePledgeRecord()} {
		if ls := r.Links(); len(ls) != 1 || !ls[0].Equals(testCommons) {
			t.Errorf("a %s pledge links %v, want [%s] (its under)", r.Pledge().Kind, ls, testCommons)
		}
	}
	r := pledgeRecord()
	r.Pledge().Under = Link{testOther}
	if ls := r.Links(); len(ls) != 1 || !ls[0].Equals(testOther) {
		t.Errorf("a pledge under %s links %v, want [%s]", testOther, ls, testOther)
	}
}

// TestPledgeBeneficiaryAuthor checks that a pledge naming its own author as
// beneficiary is refused on every path: Sign, Encode, and, for bytes
// written by another implementation, Parse and Validate.
func TestPledgeBeneficiaryAuthor(t *testing.T) {
	k := testKey(9)
	self := k.Public()
	r := pledgeRecord()
	r.Pledge().Beneficiary = &self
	checkFieldErr(t, Sign(r, k), ErrInvalid, "body.beneficiary")
	_, _, err := Encode(r)
	checkFieldErr(t, err, ErrInvalid, "body.beneficiary")

	// Bytes signed without validating, as another writer might: refused
	// before the signature is looked at, though it is good.
	raw := signUnchecked(t, r, k)
	_, err = Parse(raw)
	checkFieldErr(t, err, ErrInvalid, "body.beneficiary")
	_, err = Validate(raw)
	checkFieldErr(t, err, ErrInvalid, "body.beneficiary")
	// The same record naming another beneficiary is a valid pledge.
	other := testKey(3).Public()
	r.Pledge().Beneficiary = &other
	if _, err := Validate(signUnchecked(t, r, k)); err != nil {
		t.Fatalf("Validate with another beneficiary: %v", err)
	}
}

// signUnchecked signs r with k and encodes it, skipping the validation
// Sign and Encode do.
func signUnchecked(t *testing.T, r *Record, k PrivateKey) []byte {
	t.Helper()
	r.Author = k.Public()
	msg, err := r.signingBytes()
	if err != nil {
		t.Fatal(err)
	}
	copy(r.Sig[:], ed25519.Sign(ed25519.PrivateKey(k), msg))
	raw, err := r.encode(true)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestValidateAcknowledgement(t *testing.T) {
	a := func(f func(a *Acknowledgement)) func() *Record {
		return func() *Record { r := acknowledgementRecord(); f(r.Acknowledgement()); return r }
	}
	cosigned := func(f func(r *Record)) func() *Record {
		return func() *Record {
			r := acknowledgementRecord()
			r.Acknowledgement().Under = &Link{testCommons}
			f(r)
			return r
		}
	}
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		t.Fatal(err)
	}
	author := testKey(9).Public()
	runValidation(t, []validationCase{
		{"ok", a(func(*Acknowledgement) {}), nil, ""},
		{"with amount", a(func(a *Acknowledgement) { a.Amount = 1 }), nil, ""},
		{"with amount MaxAmount", a(func(a *Acknowledgement) { a.Amount = MaxAmount }), nil, ""},
		{"with amount MaxAmount+1", a(func(a *Acknowledgement) { a.Amount = MaxAmount + 1 }), ErrTooLarge, "body.amount"},
		{"with amount 2^64-1", a(func(a *Acknowledgement) { a.Amount = 1<<64 - 1 }), ErrTooLarge, "body.amount"},
		{"under, amount MaxAmount+1", a(func(a *Acknowledgement) { a.Under, a.Amount = &Link{testCommons}, MaxAmount+1 }), ErrTooLarge, "body.amount"},
		{"pledge undefined and amount over max", a(func(a *Acknowledgement) { a.Pledge, a.Amount = Link{}, MaxAmount+1 }), ErrMissing, "body.pledge"},
		{"under raw and amount over max", a(func(a *Acknowledgement) { a.Under, a.Amount = &Link{testBlob}, MaxAmount+1 }), ErrInvalid, "body.under"},
		{"amount over max and note over limit", a(func(a *Acknowledgement) { a.Amount, a.Note = MaxAmount+1, strings.Repeat("n", MaxAboutLen+1) }), ErrTooLarge, "body.amount"},
		{"under", a(func(a *Acknowledgement) { a.Under = &Link{testCommons} }), nil, ""},
		{"under its pledge", a(func(a *Acknowledgement) { a.Under = &Link{testOther} }), nil, ""},
		{"with note", a(func(a *Acknowledgement) { a.Note = "Received\twith thanks.\n" }), nil, ""},
		{"pledge undefined", a(func(a *Acknowledgement) { a.Pledge = Link{} }), ErrMissing, "body.pledge"},
		{"pledge raw", a(func(a *Acknowledgement) { a.Pledge = Link{testBlob} }), ErrInvalid, "body.pledge"},
		{"pledge CIDv0", a(func(a *Acknowledgement) { a.Pledge = Link{v0} }), ErrInvalid, "body.pledge"},
		{"pledge the commons", a(func(a *Acknowledgement) { a.Pledge = Link{testCommons} }), nil, ""},
		{"under raw", a(func(a *Acknowledgement) { a.Under = &Link{testBlob} }), ErrInvalid, "body.under"},
		{"under CIDv0", a(func(a *Acknowledgement) { a.Under = &Link{v0} }), ErrInvalid, "body.under"},
		{"under present but undefined", a(func(a *Acknowledgement) { a.Under = &Link{} }), ErrInvalid, "body.under"},
		{"pledge undefined and under raw", a(func(a *Acknowledgement) { a.Pledge, a.Under = Link{}, &Link{testBlob} }), ErrMissing, "body.pledge"},
		{"pledge raw and under raw", a(func(a *Acknowledgement) { a.Pledge, a.Under = Link{testBlob}, &Link{testBlob} }), ErrInvalid, "body.pledge"},
		{"under raw and note over limit", a(func(a *Acknowledgement) {
			a.Under, a.Note = &Link{testBlob}, strings.Repeat("n", MaxAboutLen+1)
		}), ErrInvalid, "body.under"},
		{"note at limit", a(func(a *Acknowledgement) { a.Note = strings.Repeat("n", MaxAboutLen) }), nil, ""},
		{"note over limit", a(func(a *Acknowledgement) { a.Note = strings.Repeat("n", MaxAboutLen+1) }), ErrTooLarge, "body.note"},
		{"note with control character", a(func(a *Acknowledgement) { a.Note = "a\x1bb" }), ErrInvalid, "body.note"},
		{"note with carriage return", a(func(a *Acknowledgement) { a.Note = "a\r\nb" }), ErrInvalid, "body.note"},
		{"note with C1 control", a(func(a *Acknowledgement) { a.Note = "a\u0085b" }), ErrInvalid, "body.note"},
		{"note with a right-to-left override", a(func(a *Acknowledgement) { a.Note = "a\u202eb" }), ErrInvalid, "body.note"},
		{"note with a zero-width space", a(func(a *Acknowledgement) { a.Note = "a\u200bb" }), ErrInvalid, "body.note"},
		{"note with a left-to-right mark", a(func(a *Acknowledgement) { a.Note = "a\u200eb" }), ErrInvalid, "body.note"},
		{"note with accents", a(func(a *Acknowledgement) { a.Note = "Reçu — merci." }), nil, ""},
		{"without commons", func() *Record { r := acknowledgementRecord(); r.Commons = cid.Undef; return r }, ErrMissing, "commons"},
		{"commons is a raw CID", func() *Record { r := acknowledgementRecord(); r.Commons = testBlob; return r }, ErrInvalid, "commons"},
		{"cosigs", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(2)[0]}, {Key: sortedKeys(2)[1]}} }), nil, ""},
		{"cosigs without under", func() *Record {
			r := acknowledgementRecord()
			r.Cosigs = []Cosig{{Key: testKey(2).Public()}}
			return r // whether its signers count is crdt's business
		}, nil, ""},
		{"cosig by the author", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(1)[0]}, {Key: author}} }), ErrInvalid, "cosigs[1].key"},
		{"cosigs unsorted", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(3)[2]}, {Key: sortedKeys(3)[1]}} }), ErrInvalid, "cosigs"},
		{"cosigs duplicate", cosigned(func(r *Record) { r.Cosigs = []Cosig{{Key: sortedKeys(2)[1]}, {Key: sortedKeys(2)[1]}} }), ErrInvalid, "cosigs"},
		{"cosigs at the limit", cosigned(func(r *Record) {
			for _, k := range sortedKeys(MaxKeys) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
		}), nil, ""},
		{"cosigs over the limit", cosigned(func(r *Record) {
			for _, k := range sortedKeys(MaxKeys + 1) {
				r.Cosigs = append(r.Cosigs, Cosig{Key: k})
			}
		}), ErrTooLarge, "cosigs"},
	})
	if ls := acknowledgementRecord().Links(); len(ls) != 1 || !ls[0].Equals(testOther) {
		t.Errorf("an acknowledgement links %v, want [%s] (its pledge)", ls, testOther)
	}
	r := acknowledgementRecord()
	r.Acknowledgement().Under = &Link{testCommons}
	want := []cid.Cid{testOther, testCommons}
	slices.SortFunc(want, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	if ls := r.Links(); !slices.EqualFunc(ls, want, cid.Cid.Equals) {
		t.Errorf("an acknowledgement under a manifest links %v, want %v (pledge and under, sorted)", ls, want)
	}
	r.Acknowledgement().Under = &Link{testOther}
	if ls := r.Links(); len(ls) != 1 || !ls[0].Equals(testOther) {
		t.Errorf("an acknowledgement under its own pledge links %v, want [%s] once", ls, testOther)
	}
}

// TestParseCoalitionLinks checks, through Parse, that a sponsorship's links
// must be exactly [target], a pledge's [under], an acknowledgement's
// [pledge] plus [under] when it has one, sorted, and a profile's empty.
func TestParseCoalitionLinks(t *testing.T) {
	k := testKey(9)
	seal := func(r *Record) cborMap {
		t.Helper()
		if err := Sign(r, k); err != nil {
			t.Fatal(err)
		}
		raw, _, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(raw); err != nil {
			t.Fatalf("Parse of the unedited record: %v", err)
		}
		return mustDecode(raw)
	}
	links := func(cs ...cid.Cid) []byte {
		out := cborHead(4, uint64(len(cs)))
		for _, c := range cs {
			out = append(out, cborLink(c, true)...)
		}
		return out
	}
	spo, pro := seal(sponsorshipRecord()), seal(profileRecord())
	ack, ple := seal(acknowledgementRecord()), seal(pledgeRecord())
	under := acknowledgementRecord()
	under.Acknowledgement().Under = &Link{testCommons}
	ackUnder := seal(under)
	if got := ple.get("links"); !bytes.Equal(got, links(testCommons)) {
		t.Fatalf("pledge: links %x, want %x (its under)", got, links(testCommons))
	}
	// The acknowledgement's pledge and under, sorted by CID bytes.
	lo, hi := testOther, testCommons
	if bytes.Compare(lo.Bytes(), hi.Bytes()) > 0 {
		lo, hi = hi, lo
	}
	if got := ackUnder.get("links"); !bytes.Equal(got, links(lo, hi)) {
		t.Fatalf("acknowledgement under a manifest: links %x, want %x", got, links(lo, hi))
	}
	self := acknowledgementRecord()
	self.Acknowledgement().Under = &Link{testOther}
	ackSelf := seal(self)
	if got := ackSelf.get("links"); !bytes.Equal(got, links(testOther)) {
		t.Fatalf("acknowledgement under its own pledge: links %x, want %x", got, links(testOther))
	}
	for _, tc := range []struct {
		name string
		env  cborMap
	}{
		{"sponsorship without links", spo.del("links")},
		{"sponsorship linking another record", spo.set("links", links(testCommons))},
		{"sponsorship linking its target and another", spo.set("links", links(testCommons, testOther))},
		{"sponsorship linking its target twice", spo.set("links", links(testOther, testOther))},
		{"sponsorship linking its target as a raw CID", spo.set("links", links(cid.NewCidV1(cid.Raw, testOther.Hash())))},
		{"profile with links", pro.set("links", links(testOther))},
		{"pledge linking another record", ple.set("links", links(testOther))},
		{"pledge without links", ple.del("links")},
		{"pledge with empty links", ple.set("links", links())},
		{"pledge linking its under twice", ple.set("links", links(testCommons, testCommons))},
		{"pledge linking its under and another", ple.set("links", links(lo, hi))},
		{"pledge linking its under as a raw CID", ple.set("links", links(cid.NewCidV1(cid.Raw, testCommons.Hash())))},
		{"acknowledgement without links", ack.del("links")},
		{"acknowledgement with empty links", ack.set("links", links())},
		{"acknowledgement linking another record", ack.set("links", links(testCommons))},
		{"acknowledgement linking its pledge and another", ack.set("links", links(lo, hi))},
		{"acknowledgement linking its pledge twice", ack.set("links", links(testOther, testOther))},
		{"acknowledgement linking its pledge as a raw CID", ack.set("links", links(cid.NewCidV1(cid.Raw, testOther.Hash())))},
		{"acknowledgement under a manifest without links", ackUnder.del("links")},
		{"acknowledgement under a manifest linking its pledge only", ackUnder.set("links", links(testOther))},
		{"acknowledgement under a manifest linking its under only", ackUnder.set("links", links(testCommons))},
		{"acknowledgement under a manifest, links unsorted", ackUnder.set("links", links(hi, lo))},
		{"acknowledgement under a manifest, links with an extra CID", ackUnder.set("links", links(lo, hi, testBlob))},
		{"acknowledgement under a manifest, links with a third record", ackUnder.set("links", links(lo, hi, RecordCID([]byte("third"))))},
		{"acknowledgement under a manifest, a link twice", ackUnder.set("links", links(lo, lo, hi))},
		{"acknowledgement under its pledge linking it twice", ackSelf.set("links", links(testOther, testOther))},
		{"acknowledgement under its pledge without links", ackSelf.del("links")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.env.encode())
			checkFieldErr(t, err, ErrInvalid, "links")
		})
	}
}

// TestParseCoalitionTypes checks that the coalition's type names are
// matched exactly: a near miss is an unknown type, not a profile or a
// sponsorship.
func TestParseCoalitionTypes(t *testing.T) {
	r := profileRecord()
	if err := Sign(r, testKey(9)); err != nil {
		t.Fatal(err)
	}
	raw, _, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	env := mustDecode(raw)
	for _, typ := range []string{
		"Profile", "profiles", "profile ", "sponsor", "Sponsorship", "coalition",
		"Pledge", "pledges", "pledge ", "acknowledgment", "Acknowledgement", "acknowledgements", "ack",
	} {
		t.Run(typ, func(t *testing.T) {
			_, err := Parse(env.set("type", cborText(typ)).encode())
			checkFieldErr(t, err, ErrUnknownType, "type")
		})
	}
	// The same body under another known type is that type's business:
	// a sponsorship has no name field.
	_, err = Parse(env.set("type", cborText(string(TypeSponsorship))).encode())
	checkFieldErr(t, err, ErrMalformed, "body")
}

// runValidation checks each case through Encode (the write path) and, for
// valid records, through Sign, NewBlock and Validate (the read path).
func runValidation(t *testing.T, cases []validationCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Encode(tc.record())
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				return
			}
			checkFieldErr(t, err, tc.err, tc.field)
			if !Permanent(err) {
				t.Errorf("Permanent(%v) = false", err)
			}
		})
	}
}

// TestParseNamesBodyField checks, through Parse, that a body lacking a link
// it must hold is reported under that body field and not as a links
// mismatch.
func TestParseNamesBodyField(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		body        []byte
	}{
		{"contribution without licence", "body.licence", mustEncode(t, map[string]any{"title": "t", "provenance": "paid"})},
		{"review without target", "body.target", mustEncode(t, map[string]any{"decision": "accept", "under": Link{testCommons}})},
		{"sponsorship without target", "body.target", mustEncode(t, map[string]any{"note": "n"})},
		{"profile without name", "body.name", mustEncode(t, map[string]any{"about": "a"})},
		{"profile with a use without kind", "body.uses[0].kind", mustEncode(t, map[string]any{"name": "n", "uses": []map[string]any{{"name": "n"}}})},
		{"pledge without kind", "body.kind", mustEncode(t, map[string]any{"amount": 1, "from": 1, "until": 2})},
		{"pledge without amount", "body.amount", mustEncode(t, map[string]any{"kind": "hours", "from": 1, "until": 2})},
		{"pledge without from", "body.from", mustEncode(t, map[string]any{"kind": "hours", "amount": 1, "until": 2})},
		{"pledge without peer", "body.peer", mustEncode(t, map[string]any{"kind": "infrastructure", "from": 1, "until": 2})},
		{"pledge without under", "body.under", mustEncode(t, map[string]any{"kind": "hours", "amount": 1, "from": 1, "until": 2})},
		{"acknowledgement without pledge", "body.pledge", mustEncode(t, map[string]any{"note": "n"})},
		{"acknowledgement under a manifest without pledge", "body.pledge", mustEncode(t, map[string]any{"under": Link{testCommons}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, _, _ := strings.Cut(tc.name, " ")
			env := cborMap{}.set("type", cborText(typ)).set("commons", cborLink(testCommons, true)).
				set("author", cborBytes(make([]byte, 32))).set("time", []byte{0x01}).
				set("body", tc.body).set("sig", cborBytes(make([]byte, 64)))
			_, err := Parse(env.encode())
			checkFieldErr(t, err, ErrMissing, tc.field)
		})
	}
}

func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(make([]byte, MaxRecordSize+1))
	checkFieldErr(t, err, ErrTooLarge, "record")
	_, err = Parse(nil)
	checkFieldErr(t, err, ErrMalformed, "record")
}

func TestSPDX(t *testing.T) {
	for _, s := range []string{
		"MIT", "CC-BY-SA-4.0", "CC0-1.0", "GPL-2.0+", "GPL-2.0-or-later", "LicenseRef-my-licence",
		"DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2", "MIT OR Apache-2.0",
		"(MIT OR Apache-2.0) AND BSD-3-Clause", "GPL-2.0-only WITH Classpath-exception-2.0",
		"((MIT))", "Apache-2.0 AND (MIT OR GPL-2.0-only WITH GCC-exception-2.0)",
		"MIT AND Apache-2.0 OR BSD-2-Clause", "  MIT  ", "(MIT)AND(Apache-2.0)",
	} {
		t.Run("accept "+s, func(t *testing.T) {
			if err := checkLicence(s); err != nil {
				t.Fatalf("%q rejected: %v", s, err)
			}
		})
	}
	for _, tc := range []struct {
		s   string
		err error
	}{
		{"", ErrMissing}, {"   ", ErrMissing},
		{"MIT AND", ErrInvalid}, {"AND MIT", ErrInvalid}, {"MIT OR OR Apache-2.0", ErrInvalid},
		{"(MIT", ErrInvalid}, {"MIT)", ErrInvalid}, {"()", ErrInvalid}, {"MIT WITH", ErrInvalid},
		{"MIT WITH AND", ErrInvalid}, {"MIT Apache-2.0", ErrInvalid}, {"MIT and Apache-2.0", ErrInvalid},
		{"MIT/Apache-2.0", ErrInvalid}, {"GPL-2.0++", ErrInvalid}, {"+", ErrInvalid},
		{"(MIT) WITH Classpath-exception-2.0", ErrInvalid}, {"MIT,Apache-2.0", ErrInvalid},
		{"Lizenz-ä", ErrInvalid}, {"MIT WITH A WITH B", ErrInvalid},
		{strings.Repeat("(", 98) + "MIT" + strings.Repeat(")", 98), nil},
		{strings.Repeat("(", 101) + "MIT" + strings.Repeat(")", 101), ErrTooLarge},
	} {
		t.Run("reject "+tc.s, func(t *testing.T) {
			err := checkLicence(tc.s)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkFieldErr(t, err, tc.err, "body.licence")
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	k := testKey(7).Public()
	upper := strings.ToUpper(k.Hex())
	for _, s := range []string{k.String(), k.Hex(), upper} {
		got, err := ParsePublicKey(s)
		if err != nil || got != k {
			t.Errorf("ParsePublicKey(%q) = %v, %v; want %v", s, got, err, k)
		}
	}
	var u PublicKey
	text, _ := k.MarshalText()
	if err := u.UnmarshalText(text); err != nil || u != k {
		t.Errorf("text round trip: %v, %v", u, err)
	}
	if got, err := PublicKeyFromPeerID(k.PeerID()); err != nil || got != k {
		t.Errorf("PublicKeyFromPeerID = %v, %v", got, err)
	}
	if !strings.HasPrefix(k.String(), "12D3KooW") {
		t.Errorf("peer ID %s: want an identity-multihash ed25519 ID", k)
	}

	secp, _, err := crypto.GenerateSecp256k1Key(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	secpID, err := peer.IDFromPrivateKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"", "zz" + k.Hex()[2:], k.Hex()[:62], k.Hex() + "00", "12D3KooW", k.String() + "x",
		secpID.String(),
		"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", // sha2-256 ID: no key inside
	} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded", s)
		}
		if err := u.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", s)
		}
	}
	if _, err := PrivateKeyFromLibp2p(secp); err == nil {
		t.Error("PrivateKeyFromLibp2p accepted a secp256k1 key")
	}
	edPriv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{2}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := PrivateKeyFromLibp2p(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := peer.IDFromPrivateKey(edPriv); pk.Public().PeerID() != id {
		t.Errorf("libp2p key's peer ID %s, protocol's %s", id, pk.Public().PeerID())
	}
	if s := fmt.Sprint(pk); strings.Contains(s, fmt.Sprintf("%x", []byte(pk)[:8])) {
		t.Errorf("private key printed: %s", s)
	}
}

func TestHLC(t *testing.T) {
	if h := HLCFromMillis(1234, 5); h.Millis() != 1234 || h.Counter() != 5 {
		t.Errorf("HLCFromMillis(1234, 5) = %d/%d", h.Millis(), h.Counter())
	}
	if h := HLCFromMillis(-5, 1); h.Millis() != 0 || h.Counter() != 1 {
		t.Errorf("negative millis: %d/%d", h.Millis(), h.Counter())
	}
	for _, tc := range []struct {
		name string
		now  int64
		last HLC
		want HLC
	}{
		{"clock ahead", 2000, HLCFromMillis(1000, 7), HLCFromMillis(2000, 0)},
		{"same millisecond", 1000, HLCFromMillis(1000, 7), HLCFromMillis(1000, 8)},
		{"clock behind", 500, HLCFromMillis(1000, 7), HLCFromMillis(1000, 8)},
		{"counter carries", 1000, HLCFromMillis(1000, 0xffff), HLCFromMillis(1001, 0)},
		{"zero last", 1, 0, HLCFromMillis(1, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NextHLC(tc.now, tc.last); got != tc.want {
				t.Errorf("NextHLC(%d, %d/%d) = %d/%d, want %d/%d", tc.now, tc.last.Millis(), tc.last.Counter(),
					got.Millis(), got.Counter(), tc.want.Millis(), tc.want.Counter())
			}
		})
	}
	// Properties over a random walk of a clock that jumps back and forth
	// and of timestamps received from others.
	rng := rand.New(rand.NewPCG(1, 2))
	var last HLC
	now := int64(vectorTime)
	for range 100_000 {
		now += rng.Int64N(11) - 5
		if rng.IntN(10) == 0 { // receive a remote timestamp
			remote := HLCFromMillis(now+rng.Int64N(2001)-1000, uint16(rng.Uint32()))
			last = max(last, remote)
		}
		next := NextHLC(now, last)
		if next <= last {
			t.Fatalf("NextHLC(%d, %d) = %d, not after last", now, last, next)
		}
		if next.Millis() < now {
			t.Fatalf("NextHLC(%d, %d) = %d, behind the wall clock", now, last, next)
		}
		if next.Millis() > max(now, last.Millis()+1) {
			t.Fatalf("NextHLC(%d, %d) = %d, jumps ahead", now, last, next)
		}
		last = next
	}
}

func TestCheckTime(t *testing.T) {
	r := contributionRecord()
	now := r.Time.Millis()
	for _, tc := range []struct {
		name string
		now  int64
		err  bool
	}{
		{"same time", now, false},
		{"record in the past", now + 1e9, false},
		{"ahead within skew", now - MaxClockSkewMillis, false},
		{"ahead beyond skew", now - MaxClockSkewMillis - 1, true},
		{"far ahead", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTime(r, tc.now)
			if !tc.err {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkFieldErr(t, err, ErrFutureTime, "time")
			if Permanent(err) {
				t.Error("ErrFutureTime must not be permanent")
			}
		})
	}
	if Permanent(nil) {
		t.Error("Permanent(nil)")
	}
}

func TestCosign(t *testing.T) {
	keys := make([]PrivateKey, 6)
	pubs := make([]PublicKey, len(keys))
	for i := range keys {
		keys[i] = testKey(byte(40 + i))
		pubs[i] = keys[i].Public()
	}
	slices.SortFunc(pubs, PublicKey.Compare)
	r := genesisRecord(keys[0].Public())
	r.Manifest().Association, r.Manifest().Threshold = pubs, 4
	if err := Sign(r, keys[0]); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{4, 1, 5, 2, 3} {
		if err := Cosign(r, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.IsSortedFunc(r.Cosigs, func(a, b Cosig) int { return a.Key.Compare(b.Key) }) || len(r.Cosigs) != 5 {
		t.Fatalf("cosigs not sorted: %v", r.Cosigs)
	}
	b, err := NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Validate(b.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := pb.Record.Signers(); len(got) != 6 || got[0] != keys[0].Public() {
		t.Errorf("Signers = %v", got)
	}

	err = Cosign(r, keys[2])
	checkFieldErr(t, err, ErrInvalid, "cosigs")
	err = Cosign(r, keys[0])
	checkFieldErr(t, err, ErrInvalid, "cosigs")
	err = Cosign(contributionRecord(), keys[1])
	checkFieldErr(t, err, ErrInvalid, "cosigs")

	// Re-signing clears co-signatures: they covered the old bytes.
	r.Manifest().Name = "Renamed"
	if err := Sign(r, keys[0]); err != nil || r.Cosigs != nil {
		t.Fatalf("Sign: %v, cosigs %v", err, r.Cosigs)
	}
	// A cosig over other bytes fails verification, named by index.
	stale := *pb.Record
	stale.Cosigs = slices.Clone(pb.Record.Cosigs)
	stale.Cosigs[3].Sig[5] ^= 1
	sb, err := NewBlock(&stale)
	if err != nil {
		t.Fatal(err)
	}
	checkFieldErr(t, sb.Verify(), ErrBadSignature, "cosigs[3].sig")
	errs := VerifyBatch([]*Block{pb, sb, pb})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("VerifyBatch: %v", errs)
	}
	checkFieldErr(t, errs[1], ErrBadSignature, "cosigs[3].sig")
}

// TestCosignAcknowledgement checks that an acknowledgement is co-signed as
// a manifest is, and that Cosign refuses the coalition's other records.
func TestCosignAcknowledgement(t *testing.T) {
	author, c1, c2 := testKey(40), testKey(41), testKey(42)
	r := acknowledgementRecord()
	r.Author = author.Public()
	r.Acknowledgement().Under, r.Acknowledgement().Amount = &Link{testCommons}, 50
	if err := Sign(r, author); err != nil {
		t.Fatal(err)
	}
	for _, k := range []PrivateKey{c2, c1} {
		if err := Cosign(r, k); err != nil {
			t.Fatalf("Cosign of an acknowledgement: %v", err)
		}
	}
	if !slices.IsSortedFunc(r.Cosigs, func(a, b Cosig) int { return a.Key.Compare(b.Key) }) || len(r.Cosigs) != 2 {
		t.Fatalf("cosigs not sorted: %v", r.Cosigs)
	}
	b, err := NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Validate(b.Raw)
	if err != nil {
		t.Fatalf("Validate of a co-signed acknowledgement: %v", err)
	}
	if got := pb.Record.Signers(); len(got) != 3 || got[0] != author.Public() || !slices.Contains(got, c1.Public()) || !slices.Contains(got, c2.Public()) {
		t.Errorf("Signers = %v", got)
	}
	checkFieldErr(t, Cosign(r, c1), ErrInvalid, "cosigs")
	checkFieldErr(t, Cosign(r, author), ErrInvalid, "cosigs")

	// Neither a profile, a sponsorship nor a pledge is co-signed.
	for _, o := range []*Record{profileRecord(), sponsorshipRecord(), pledgeRecord(), infrastructurePledgeRecord()} {
		if err := Sign(o, testKey(9)); err != nil {
			t.Fatal(err)
		}
		err := Cosign(o, c1)
		checkFieldErr(t, err, ErrInvalid, "cosigs")
		if o.Cosigs != nil {
			t.Errorf("Cosign of a %s left cosigs %v", o.Type(), o.Cosigs)
		}
	}
	// Nor do they take an acknowledgement's co-signatures at the CBOR level.
	env := mustDecode(pb.Raw)
	for _, o := range []*Record{profileRecord(), sponsorshipRecord(), pledgeRecord()} {
		ob := sealed(t, o, testKey(9))
		_, err := Parse(mustDecode(ob.Raw).set("cosigs", env.get("cosigs")).encode())
		checkFieldErr(t, err, ErrInvalid, "cosigs")
	}

	// A co-signature over other bytes fails verification, named by index.
	for i := range pb.Record.Cosigs {
		bad := *pb.Record
		bad.Cosigs = slices.Clone(pb.Record.Cosigs)
		bad.Cosigs[i].Sig[9] ^= 1
		bb, err := NewBlock(&bad)
		if err != nil {
			t.Fatal(err)
		}
		field := fmt.Sprintf("cosigs[%d].sig", i)
		checkFieldErr(t, bb.Verify(), ErrBadSignature, field)
		_, err = Validate(bb.Raw)
		checkFieldErr(t, err, ErrBadSignature, field)
		errs := VerifyBatch([]*Block{pb, bb, pb})
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("VerifyBatch: %v", errs)
		}
		checkFieldErr(t, errs[1], ErrBadSignature, field)
	}
	// A co-signature of the body before an edit: the amount changed after
	// signing, the author re-signs, the stale cosig stays.
	stale := *pb.Record
	stale.Cosigs = slices.Clone(pb.Record.Cosigs)
	stale.Body = &Acknowledgement{Pledge: Link{testOther}, Amount: 51, Under: &Link{testCommons}}
	if err := Sign(&stale, author); err != nil || stale.Cosigs != nil {
		t.Fatalf("Sign: %v, cosigs %v (re-signing must clear them)", err, stale.Cosigs)
	}
	stale.Cosigs = slices.Clone(pb.Record.Cosigs)
	sb, err := NewBlock(&stale)
	if err != nil {
		t.Fatal(err)
	}
	checkFieldErr(t, sb.Verify(), ErrBadSignature, "cosigs[0].sig")
}

func TestVerifyBatchSizes(t *testing.T) {
	if errs := VerifyBatch(nil); len(errs) != 0 {
		t.Fatal(errs)
	}
	g := genesis(t, testKey(1))
	bad := *g
	bad.Record = &Record{}
	*bad.Record = *g.Record
	bad.Record.Sig[0] ^= 1
	for n := 1; n <= 9; n++ {
		blocks := slices.Repeat([]*Block{g}, n)
		blocks[n/2] = &bad
		for i, err := range VerifyBatch(blocks) {
			if i == n/2 {
				checkFieldErr(t, err, ErrBadSignature, "sig")
			} else if err != nil {
				t.Fatalf("n=%d: block %d: %v", n, i, err)
			}
		}
	}
}

func TestTopic(t *testing.T) {
	if got := Topic(testCommons); got != TopicPrefix+testCommons.String() || !strings.HasPrefix(got, "/commons/1.0.0/records/bafy") {
		t.Errorf("Topic = %q", got)
	}
	if !errors.Is(fieldErr("x", ErrInvalid, ""), ErrInvalid) {
		t.Error("fieldErr without detail does not wrap")
	}
}

func TestMessageID(t *testing.T) {
	g := genesis(t, testKey(1))
	topic := Topic(g.CID)
	if got := MessageID(topic, g.Raw); got != topic+"\x00"+string(g.CID.Bytes()) {
		t.Errorf("MessageID = %q, want the topic, NUL and the CID bytes %x", got, g.CID.Bytes())
	}
	if MessageID(Topic(testOther), g.Raw) == MessageID(topic, g.Raw) {
		t.Error("the same record has the same message ID on two topics")
	}
}
