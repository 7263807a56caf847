package protocol

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"

	"github.com/ipfs/go-cid"
)

// Field limits. Counts are entries, lengths are bytes of UTF-8.
const (
	MaxNameLen      = 200
	MaxLicenceLen   = 200
	MaxTitleLen     = 300
	MaxSummaryLen   = 16 << 10
	MaxKindLen      = 64
	MaxRationaleLen = 8 << 10
	MaxKeys         = 256 // association, maintainers, revoked, banned: each
	MaxBootstrap    = 32
	MaxMultiaddrLen = 512
	MaxPrev         = 16
	MaxPayload      = 64
	MaxFileNameLen  = 255
	MaxAboutLen     = 2048 // a profile's about, a sponsorship's note
	MaxUses         = 16   // a profile's use declarations
	MaxURLLen       = 512
	// MaxAmount bounds a pledge's and an acknowledgement's amount: 2^53 - 1,
	// the largest integer every JSON reader holds exactly.
	MaxAmount = 1<<53 - 1
	// MaxMillis bounds a pledge's period: the last millisecond of the year
	// 9999, the last a time's text form (RFC 3339) can write.
	MaxMillis        = 253402300799999
	DefaultBlobLimit = 64 << 20 // payload blob size when the manifest sets none
)

// Provenance values of a contribution.
const (
	ProvenanceVolunteer = "volunteer"
	ProvenancePaid      = "paid"
)

// Review decisions.
const (
	DecisionAccept  = "accept"
	DecisionReject  = "reject"
	DecisionRetract = "retract"
)

// Policy holds a commons' limits.
type Policy struct {
	// MaxBlobBytes caps each payload blob; 0 means DefaultBlobLimit.
	MaxBlobBytes uint64 `cbor:"max_blob_bytes,omitempty"`
	// Work is the proof of work, in bits, every other record of the
	// commons must carry (§7.4); 0 means none. Only a genesis sets it.
	Work uint64 `cbor:"work,omitempty"`
	// Bans lets the commons' manifests ban keys (§7.5, §12.3). Only a
	// genesis sets it.
	Bans bool `cbor:"bans,omitempty"`
	// Coalition is the version of the entrepreneurial coalition's records
	// the commons carries (§7.6): 0 none, 1 profiles and sponsorships. Only
	// a genesis sets it.
	Coalition uint64 `cbor:"coalition,omitempty"`
	// Association is the version of the for-benefit association's records
	// the commons carries (§7.7): 0 none, 1 disputes, statements,
	// resolutions, certificates and rotations. Only a genesis sets it.
	Association uint64 `cbor:"association,omitempty"`
}

// CoalitionVersion is the highest policy.coalition this package knows.
const CoalitionVersion = 1

// Manifest is the for-benefit association's licence manifest. The genesis
// manifest (no commons, no prev, version 0) founds a commons; its CID is the
// commons ID. An update names its predecessors in Prev and must be signed by
// Threshold keys of each predecessor's Association.
type Manifest struct {
	Name         string      `cbor:"name"`
	Licence      string      `cbor:"licence"`
	LicenceText  *Link       `cbor:"licence_text,omitempty"`
	Association  []PublicKey `cbor:"association"`
	Threshold    uint64      `cbor:"threshold"`
	Maintainers  []PublicKey `cbor:"maintainers,omitempty"`
	Quorum       uint64      `cbor:"quorum,omitempty"`
	RejectQuorum uint64      `cbor:"reject_quorum,omitempty"`
	Revoked      []PublicKey `cbor:"revoked,omitempty"`
	Banned       []PublicKey `cbor:"banned,omitempty"`
	Bootstrap    []string    `cbor:"bootstrap,omitempty"`
	Policy       *Policy     `cbor:"policy,omitempty"`
	Prev         []Link      `cbor:"prev,omitempty"`
	Version      uint64      `cbor:"version,omitempty"`
}

// Type implements Body.
func (*Manifest) Type() Type { return TypeManifest }

func (m *Manifest) links() []cid.Cid {
	out := make([]cid.Cid, 0, len(m.Prev))
	for _, p := range m.Prev {
		out = append(out, p.Cid)
	}
	return out
}

// BlobLimit returns the payload blob size limit of this manifest version.
func (m *Manifest) BlobLimit() uint64 {
	if m.Policy == nil || m.Policy.MaxBlobBytes == 0 {
		return DefaultBlobLimit
	}
	return m.Policy.MaxBlobBytes
}

// IsMaintainer reports whether k is among the version's maintainers.
func (m *Manifest) IsMaintainer(k PublicKey) bool { return containsKey(m.Maintainers, k) }

// IsAssociation reports whether k is among the version's association keys.
func (m *Manifest) IsAssociation(k PublicKey) bool { return containsKey(m.Association, k) }

func containsKey(ks []PublicKey, k PublicKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (m *Manifest) validate() error {
	if err := checkText("body.name", m.Name, MaxNameLen, true); err != nil {
		return err
	}
	if err := checkLicence(m.Licence); err != nil {
		return err
	}
	if m.LicenceText != nil {
		if err := checkCID(m.LicenceText.Cid, CodecRaw); err != nil {
			return fieldErr("body.licence_text", ErrInvalid, "%v", err)
		}
	}
	for _, f := range []struct {
		name string
		keys []PublicKey
	}{{"body.association", m.Association}, {"body.maintainers", m.Maintainers}, {"body.revoked", m.Revoked}, {"body.banned", m.Banned}} {
		if err := checkKeySet(f.name, f.keys); err != nil {
			return err
		}
	}
	if len(m.Association) == 0 {
		return fieldErr("body.association", ErrMissing, "a manifest needs at least one association key")
	}
	if m.Threshold < 1 || m.Threshold > uint64(len(m.Association)) {
		return fieldErr("body.threshold", ErrInvalid, "%d, want 1..%d (the association's size)", m.Threshold, len(m.Association))
	}
	if len(m.Maintainers) == 0 {
		if m.Quorum != 0 || m.RejectQuorum != 0 {
			return fieldErr("body.quorum", ErrInvalid, "a quorum needs maintainers")
		}
	} else {
		if m.Quorum < 1 || m.Quorum > uint64(len(m.Maintainers)) {
			return fieldErr("body.quorum", ErrInvalid, "%d, want 1..%d (the number of maintainers)", m.Quorum, len(m.Maintainers))
		}
		if m.RejectQuorum < 1 || m.RejectQuorum > uint64(len(m.Maintainers)) {
			return fieldErr("body.reject_quorum", ErrInvalid, "%d, want 1..%d (the number of maintainers)", m.RejectQuorum, len(m.Maintainers))
		}
	}
	for _, k := range m.Banned {
		switch {
		case m.IsAssociation(k):
			return fieldErr("body.banned", ErrInvalid, "key %s is also an association key of this manifest", k)
		case m.IsMaintainer(k):
			return fieldErr("body.banned", ErrInvalid, "key %s is also a maintainer of this manifest", k)
		}
	}
	if len(m.Bootstrap) > MaxBootstrap {
		return fieldErr("body.bootstrap", ErrTooLarge, "%d addresses, limit %d", len(m.Bootstrap), MaxBootstrap)
	}
	for i, a := range m.Bootstrap {
		if a == "" || a[0] != '/' || len(a) > MaxMultiaddrLen || strings.ContainsFunc(a, unicode.IsSpace) {
			return fieldErr(fmt.Sprintf("body.bootstrap[%d]", i), ErrInvalid, "%q is not a multiaddr", a)
		}
	}
	if m.Policy != nil && *m.Policy == (Policy{}) {
		return fieldErr("body.policy", ErrInvalid, "an empty policy must be omitted")
	}
	if m.Policy != nil && m.Policy.Work > MaxWork {
		return fieldErr("body.policy.work", ErrInvalid, "%d bits, limit %d", m.Policy.Work, MaxWork)
	}
	if m.Policy != nil && m.Policy.Coalition > CoalitionVersion {
		return fieldErr("body.policy.coalition", ErrInvalid, "version %d, this node knows versions up to %d: a newer node is needed", m.Policy.Coalition, CoalitionVersion)
	}
	if m.Policy != nil && m.Policy.Association > AssociationVersion {
		return fieldErr("body.policy.association", ErrInvalid, "version %d, this node knows versions up to %d: a newer node is needed", m.Policy.Association, AssociationVersion)
	}
	if len(m.Prev) > MaxPrev {
		return fieldErr("body.prev", ErrTooLarge, "%d predecessors, limit %d", len(m.Prev), MaxPrev)
	}
	for i, p := range m.Prev {
		if err := checkCID(p.Cid, CodecDagCBOR); err != nil {
			return fieldErr(fmt.Sprintf("body.prev[%d]", i), ErrInvalid, "%v", err)
		}
		if i > 0 && bytes.Compare(m.Prev[i-1].Bytes(), p.Bytes()) >= 0 {
			return fieldErr("body.prev", ErrInvalid, "must be sorted by CID bytes, without duplicates")
		}
	}
	return nil
}

// validateEnvelope checks what ties a manifest body to its envelope.
func (m *Manifest) validateEnvelope(r *Record) error {
	if !r.Commons.Defined() {
		if len(m.Banned) > 0 && !m.BansAllowed() {
			return fieldErr("body.banned", ErrInvalid, "a genesis bans keys only when its policy.bans lets the commons' manifests ban them (§7.5)")
		}
		if len(m.Prev) != 0 {
			return fieldErr("body.prev", ErrInvalid, "a genesis manifest (no commons) has no prev")
		}
		if m.Version != 0 {
			return fieldErr("body.version", ErrInvalid, "a genesis manifest (no commons) has version 0")
		}
		if !m.IsAssociation(r.Author) {
			return fieldErr("author", ErrInvalid, "a genesis manifest is signed by one of its own association keys")
		}
		return nil
	}
	if m.WorkAsked() != 0 {
		return fieldErr("body.policy.work", ErrInvalid, "only a genesis sets the work its commons asks, for the commons' whole life")
	}
	if m.BansAllowed() {
		return fieldErr("body.policy.bans", ErrInvalid, "only a genesis says whether its commons' manifests may ban keys, for the commons' whole life")
	}
	if m.Coalition() != 0 {
		return fieldErr("body.policy.coalition", ErrInvalid, "only a genesis says whether its commons carries the coalition's records, for the commons' whole life")
	}
	if m.AssociationRecords() != 0 {
		return fieldErr("body.policy.association", ErrInvalid, "only a genesis says whether its commons carries the association's records, for the commons' whole life")
	}
	if len(m.Prev) == 0 {
		return fieldErr("body.prev", ErrMissing, "a manifest update names its predecessors")
	}
	if m.Version == 0 {
		return fieldErr("body.version", ErrInvalid, "a manifest update has version 1 or more")
	}
	return nil
}

// PayloadRef names one payload blob of a contribution.
type PayloadRef struct {
	CID  Link   `cbor:"cid"`
	Name string `cbor:"name,omitempty"`
	Size uint64 `cbor:"size"`
}

// Contribution is a contributor's signed work: open input to the commons.
// Licence is the manifest version the author contributes under (assent to
// its licence).
type Contribution struct {
	Title      string       `cbor:"title"`
	Summary    string       `cbor:"summary,omitempty"`
	Kind       string       `cbor:"kind,omitempty"`
	Payload    []PayloadRef `cbor:"payload,omitempty"`
	Licence    Link         `cbor:"licence"`
	Revises    *Link        `cbor:"revises,omitempty"`
	Provenance string       `cbor:"provenance"`
	Sponsor    *PublicKey   `cbor:"sponsor,omitempty"`
}

// Type implements Body.
func (*Contribution) Type() Type { return TypeContribution }

func (c *Contribution) links() []cid.Cid {
	out := []cid.Cid{c.Licence.Cid}
	if c.Revises != nil {
		out = append(out, c.Revises.Cid)
	}
	return out
}

func (c *Contribution) validate() error {
	if err := checkText("body.title", c.Title, MaxTitleLen, true); err != nil {
		return err
	}
	if err := checkText("body.summary", c.Summary, MaxSummaryLen, false); err != nil {
		return err
	}
	if err := checkToken("body.kind", c.Kind); err != nil {
		return err
	}
	if len(c.Payload) > MaxPayload {
		return fieldErr("body.payload", ErrTooLarge, "%d blobs, limit %d", len(c.Payload), MaxPayload)
	}
	seen := make(map[cid.Cid]bool, len(c.Payload))
	for i, p := range c.Payload {
		f := fmt.Sprintf("body.payload[%d]", i)
		if !p.CID.Defined() {
			return fieldErr(f+".cid", ErrMissing, "")
		}
		if err := checkCID(p.CID.Cid, CodecRaw); err != nil {
			return fieldErr(f+".cid", ErrInvalid, "%v", err)
		}
		if seen[p.CID.Cid] {
			return fieldErr(f+".cid", ErrInvalid, "duplicate payload %s", p.CID)
		}
		seen[p.CID.Cid] = true
		if err := checkText(f+".name", p.Name, MaxFileNameLen, false); err != nil {
			return err
		}
		if strings.ContainsAny(p.Name, "/\\\x00") {
			return fieldErr(f+".name", ErrInvalid, "%q: a file name, not a path", p.Name)
		}
	}
	if !c.Licence.Defined() {
		return fieldErr("body.licence", ErrMissing, "a contribution names the manifest it is licensed under")
	}
	if err := checkCID(c.Licence.Cid, CodecDagCBOR); err != nil {
		return fieldErr("body.licence", ErrInvalid, "%v", err)
	}
	if c.Revises != nil {
		if err := checkCID(c.Revises.Cid, CodecDagCBOR); err != nil {
			return fieldErr("body.revises", ErrInvalid, "%v", err)
		}
	}
	switch c.Provenance {
	case ProvenanceVolunteer:
		if c.Sponsor != nil {
			return fieldErr("body.sponsor", ErrInvalid, "volunteer work has no sponsor")
		}
	case ProvenancePaid:
	case "":
		return fieldErr("body.provenance", ErrMissing, "")
	default:
		return fieldErr("body.provenance", ErrInvalid, "%q, want %q or %q", c.Provenance, ProvenanceVolunteer, ProvenancePaid)
	}
	return nil
}

// Review is a maintainer's decision on a contribution, made under a manifest
// version (Under) that names them as maintainer.
type Review struct {
	Target    Link   `cbor:"target"`
	Decision  string `cbor:"decision"`
	Rationale string `cbor:"rationale,omitempty"`
	Under     Link   `cbor:"under"`
}

// Type implements Body.
func (*Review) Type() Type { return TypeReview }

func (v *Review) links() []cid.Cid { return []cid.Cid{v.Target.Cid, v.Under.Cid} }

func (v *Review) validate() error {
	if !v.Target.Defined() {
		return fieldErr("body.target", ErrMissing, "")
	}
	if err := checkCID(v.Target.Cid, CodecDagCBOR); err != nil {
		return fieldErr("body.target", ErrInvalid, "%v", err)
	}
	if !v.Under.Defined() {
		return fieldErr("body.under", ErrMissing, "")
	}
	if err := checkCID(v.Under.Cid, CodecDagCBOR); err != nil {
		return fieldErr("body.under", ErrInvalid, "%v", err)
	}
	switch v.Decision {
	case DecisionAccept, DecisionReject, DecisionRetract:
	case "":
		return fieldErr("body.decision", ErrMissing, "")
	default:
		return fieldErr("body.decision", ErrInvalid, "%q, want accept, reject or retract", v.Decision)
	}
	return checkText("body.rationale", v.Rationale, MaxRationaleLen, false)
}

// Profile is a participant's description of itself in one commons: a
// display name and, for an entrepreneur, what it does with the commons.
// The latest by (time, CID) of a key's profiles counts (§12.9).
type Profile struct {
	Name  string `cbor:"name"`
	About string `cbor:"about,omitempty"`
	Uses  []Use  `cbor:"uses,omitempty"`
}

// Use is a use declaration: a product or service built on the commons.
type Use struct {
	Kind string `cbor:"kind"`
	Name string `cbor:"name"`
	URL  string `cbor:"url,omitempty"`
}

// Type implements Body.
func (*Profile) Type() Type { return TypeProfile }

func (*Profile) links() []cid.Cid { return nil }

func (p *Profile) validate() error {
	if err := checkPlainText("body.name", p.Name, MaxNameLen, true); err != nil {
		return err
	}
	if err := checkPlainText("body.about", p.About, MaxAboutLen, false); err != nil {
		return err
	}
	if len(p.Uses) > MaxUses {
		return fieldErr("body.uses", ErrTooLarge, "%d uses, limit %d", len(p.Uses), MaxUses)
	}
	for i, u := range p.Uses {
		f := fmt.Sprintf("body.uses[%d]", i)
		if u.Kind == "" {
			return fieldErr(f+".kind", ErrMissing, "such as product, service or research")
		}
		if err := checkToken(f+".kind", u.Kind); err != nil {
			return err
		}
		if err := checkPlainText(f+".name", u.Name, MaxNameLen, true); err != nil {
			return err
		}
		if err := checkURL(f+".url", u.URL); err != nil {
			return err
		}
	}
	return nil
}

// Sponsorship is a sponsor's countersignature of a paid contribution that
// names it as sponsor (§5.6, §12.9).
type Sponsorship struct {
	Target Link   `cbor:"target"`
	Note   string `cbor:"note,omitempty"`
}

// Type implements Body.
func (*Sponsorship) Type() Type { return TypeSponsorship }

func (s *Sponsorship) links() []cid.Cid { return []cid.Cid{s.Target.Cid} }

func (s *Sponsorship) validate() error {
	if !s.Target.Defined() {
		return fieldErr("body.target", ErrMissing, "the paid contribution sponsored")
	}
	if err := checkCID(s.Target.Cid, CodecDagCBOR); err != nil {
		return fieldErr("body.target", ErrInvalid, "%v", err)
	}
	return checkPlainText("body.note", s.Note, MaxAboutLen, false)
}

// Pledge kinds.
const (
	PledgeMoney          = "money"
	PledgeHours          = "hours"
	PledgeInfrastructure = "infrastructure"
)

// Pledge is what a participant declares it gives back to the commons over
// a period: money, hours of paid contribution, or infrastructure such as
// a node it runs for the commons (§5.7). It is a claim; acknowledgements
// make it count (§12.11).
type Pledge struct {
	Kind string `cbor:"kind"`
	// Amount is money in the currency's smallest unit (cents), or whole
	// hours; absent for infrastructure.
	Amount   uint64 `cbor:"amount,omitempty"`
	Currency string `cbor:"currency,omitempty"`
	// Peer is the peer ID of the node an infrastructure pledge runs.
	Peer string `cbor:"peer,omitempty"`
	// From and Until bound the period, in Unix milliseconds.
	From  uint64 `cbor:"from"`
	Until uint64 `cbor:"until"`
	// Beneficiary receives what is pledged and acknowledges it; absent: the
	// association, under a manifest.
	Beneficiary *PublicKey `cbor:"beneficiary,omitempty"`
	Note        string     `cbor:"note,omitempty"`
	// Under is the manifest version current when the pledge was made: the
	// association acknowledges it under that version or a later one.
	Under Link `cbor:"under"`
}

// Type implements Body.
func (*Pledge) Type() Type { return TypePledge }

func (p *Pledge) links() []cid.Cid { return []cid.Cid{p.Under.Cid} }

func (p *Pledge) validate() error {
	switch p.Kind {
	case PledgeMoney, PledgeHours:
		if p.Amount == 0 {
			return fieldErr("body.amount", ErrMissing, "a %s pledge says how much", p.Kind)
		}
		if p.Amount > MaxAmount {
			return fieldErr("body.amount", ErrTooLarge, "%d, limit %d", p.Amount, uint64(MaxAmount))
		}
		if p.Peer != "" {
			return fieldErr("body.peer", ErrInvalid, "only an infrastructure pledge names a peer")
		}
	case PledgeInfrastructure:
		if p.Amount != 0 {
			return fieldErr("body.amount", ErrInvalid, "an infrastructure pledge has no amount")
		}
		if p.Peer == "" {
			return fieldErr("body.peer", ErrMissing, "the peer ID of the node it runs")
		}
		if k, err := ParsePublicKey(p.Peer); err != nil || k.String() != p.Peer {
			return fieldErr("body.peer", ErrInvalid, "%q is not the peer ID (12D3KooW…) of an ed25519 key", p.Peer)
		}
	case "":
		return fieldErr("body.kind", ErrMissing, "money, hours or infrastructure")
	default:
		return fieldErr("body.kind", ErrInvalid, "%q, want money, hours or infrastructure", p.Kind)
	}
	if p.Kind == PledgeMoney {
		if len(p.Currency) != 3 || strings.IndexFunc(p.Currency, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
			return fieldErr("body.currency", ErrInvalid, "%q: three capital letters (ISO 4217), such as EUR", p.Currency)
		}
	} else if p.Currency != "" {
		return fieldErr("body.currency", ErrInvalid, "only a money pledge has a currency")
	}
	if p.From == 0 {
		return fieldErr("body.from", ErrMissing, "")
	}
	if p.Until <= p.From {
		return fieldErr("body.until", ErrInvalid, "the period ends (%d) after it starts (%d)", p.Until, p.From)
	}
	if p.Until > MaxMillis {
		return fieldErr("body.until", ErrInvalid, "%d ms is after the year 9999", p.Until)
	}
	if !p.Under.Defined() {
		return fieldErr("body.under", ErrMissing, "the manifest version current when the pledge is made")
	}
	if err := checkCID(p.Under.Cid, CodecDagCBOR); err != nil {
		return fieldErr("body.under", ErrInvalid, "%v", err)
	}
	return checkPlainText("body.note", p.Note, MaxAboutLen, false)
}

// Acknowledgement says that a pledge was met, in part (Amount) or in full
// (§5.8): signed by the pledge's beneficiary, or by a threshold of the
// association under a manifest (Under), co-signed as manifests are.
type Acknowledgement struct {
	Pledge Link `cbor:"pledge"`
	// Amount is the part met, in the pledge's unit; absent for an
	// infrastructure pledge.
	Amount uint64 `cbor:"amount,omitempty"`
	Under  *Link  `cbor:"under,omitempty"`
	Note   string `cbor:"note,omitempty"`
}

// Type implements Body.
func (*Acknowledgement) Type() Type { return TypeAcknowledgement }

func (a *Acknowledgement) links() []cid.Cid {
	out := []cid.Cid{a.Pledge.Cid}
	if a.Under != nil {
		out = append(out, a.Under.Cid)
	}
	return out
}

func (a *Acknowledgement) validate() error {
	if !a.Pledge.Defined() {
		return fieldErr("body.pledge", ErrMissing, "the pledge acknowledged")
	}
	if err := checkCID(a.Pledge.Cid, CodecDagCBOR); err != nil {
		return fieldErr("body.pledge", ErrInvalid, "%v", err)
	}
	if a.Under != nil {
		if err := checkCID(a.Under.Cid, CodecDagCBOR); err != nil {
			return fieldErr("body.under", ErrInvalid, "%v", err)
		}
	}
	if a.Amount > MaxAmount {
		return fieldErr("body.amount", ErrTooLarge, "%d, limit %d", a.Amount, uint64(MaxAmount))
	}
	return checkPlainText("body.note", a.Note, MaxAboutLen, false)
}

// checkToken accepts a kind: up to MaxKindLen of a-z 0-9 - _ .
func checkToken(field, s string) error {
	if len(s) > MaxKindLen || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return fieldErr(field, ErrInvalid, "%q: use up to %d of a-z 0-9 - _ .", s, MaxKindLen)
	}
	return nil
}

// checkURL accepts an empty string or an http or https URL with a host,
// without white space or control characters.
func checkURL(field, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxURLLen {
		return fieldErr(field, ErrTooLarge, "%d bytes, limit %d", len(s), MaxURLLen)
	}
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(s, "http://")
	}
	host := rest[:strings.IndexFunc(rest+"/", func(r rune) bool { return r == '/' || r == '?' || r == '#' })]
	host = host[strings.LastIndex(host, "@")+1:] // after any user information
	if h, _, _ := strings.Cut(host, ":"); !strings.HasPrefix(host, "[") {
		host = h // before any port
	}
	if !ok || host == "" || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
		return fieldErr(field, ErrInvalid, "%q is not an http or https URL", s)
	}
	return nil
}

// checkPlainText is checkText for the coalition's records (§5.5–§5.8),
// which also refuse format characters (Unicode category Cf: bidirectional
// overrides, zero-width characters), so that a name cannot pose as
// another's.
func checkPlainText(field, s string, max int, required bool) error {
	if err := checkText(field, s, max, required); err != nil {
		return err
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) {
		return fieldErr(field, ErrInvalid, "format characters (such as bidirectional overrides or zero-width spaces) are not allowed")
	}
	return nil
}

func checkText(field, s string, max int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return fieldErr(field, ErrMissing, "")
	}
	if len(s) > max {
		return fieldErr(field, ErrTooLarge, "%d bytes, limit %d", len(s), max)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return fieldErr(field, ErrInvalid, "control characters are not allowed")
	}
	return nil
}

// checkLicence accepts an SPDX license expression: identifiers (letters,
// digits, '.', '-', '+', "LicenseRef-…"), the operators AND, OR and WITH,
// and parentheses.
func checkLicence(s string) error {
	if strings.TrimSpace(s) == "" {
		return fieldErr("body.licence", ErrMissing, "an SPDX licence expression, e.g. CC-BY-SA-4.0")
	}
	if len(s) > MaxLicenceLen {
		return fieldErr("body.licence", ErrTooLarge, "%d bytes, limit %d", len(s), MaxLicenceLen)
	}
	if err := parseSPDX(s); err != nil {
		return fieldErr("body.licence", ErrInvalid, "%q is not an SPDX expression: %v", s, err)
	}
	return nil
}

func checkKeySet(field string, ks []PublicKey) error {
	if len(ks) > MaxKeys {
		return fieldErr(field, ErrTooLarge, "%d keys, limit %d", len(ks), MaxKeys)
	}
	for i := 1; i < len(ks); i++ {
		if ks[i-1].Compare(ks[i]) >= 0 {
			return fieldErr(field, ErrInvalid, "keys must be sorted by bytes, without duplicates")
		}
	}
	return nil
}
