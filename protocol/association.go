package protocol

import (
	"bytes"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/oasisprotocol/curve25519-voi/curve"
)

// The for-benefit association's records (§5.9–§5.13), in a commons whose
// genesis sets policy.association (§7.7).

// AssociationVersion is the highest policy.association this package knows.
const AssociationVersion = 1

// Limits of the association's records.
const (
	MaxEvidence = 16  // a dispute's or a statement's evidence URLs
	MaxRelease  = 512 // a release certificate's contributions (each is in links too: 512 fit a record)
)

// Resolution outcomes and effects (§5.11, §12.12).
const (
	OutcomeDismiss = "dismiss"
	OutcomeUphold  = "uphold"

	EffectWithdraw = "withdraw"  // a contribution
	EffectSetAside = "set-aside" // a review or a sponsorship
	EffectUnmet    = "unmet"     // a pledge
)

// Disputable reports whether a dispute may name a record of type t as its
// subject (§12.12).
func Disputable(t Type) bool {
	switch t {
	case TypeContribution, TypeReview, TypeSponsorship, TypePledge:
		return true
	}
	return false
}

// Dispute is a participant's complaint about a record or about another
// participant, for the association to resolve (§5.9).
type Dispute struct {
	// Subject is the record disputed; Participant the key whose conduct
	// is. Exactly one is set.
	Subject     *Link      `cbor:"subject,omitempty"`
	Participant *PublicKey `cbor:"participant,omitempty"`
	Reason      string     `cbor:"reason"`
	Evidence    []string   `cbor:"evidence,omitempty"`
	// Under is the manifest version current when the dispute is opened:
	// the association resolves it under that version or a later one.
	Under Link `cbor:"under"`
}

// Type implements Body.
func (*Dispute) Type() Type { return TypeDispute }

func (d *Dispute) links() []cid.Cid {
	out := []cid.Cid{d.Under.Cid}
	if d.Subject != nil {
		out = append(out, d.Subject.Cid)
	}
	return out
}

func (d *Dispute) validate() error {
	switch {
	case d.Subject == nil && d.Participant == nil:
		return fieldErr("body.subject", ErrMissing, "a dispute is about a record (subject) or a key (participant)")
	case d.Subject != nil && d.Participant != nil:
		return fieldErr("body.participant", ErrInvalid, "a dispute is about a record or a key, not both")
	case d.Subject != nil:
		if err := checkCID(d.Subject.Cid, CodecDagCBOR); err != nil {
			return fieldErr("body.subject", ErrInvalid, "%v", err)
		}
	}
	if err := checkPlainText("body.reason", d.Reason, MaxRationaleLen, true); err != nil {
		return err
	}
	if err := checkEvidence(d.Evidence); err != nil {
		return err
	}
	return checkUnder("body.under", d.Under, "the manifest version current when the dispute is opened")
}

// Statement is what a participant adds to a dispute (§5.10).
type Statement struct {
	Dispute  Link     `cbor:"dispute"`
	Text     string   `cbor:"text"`
	Evidence []string `cbor:"evidence,omitempty"`
}

// Type implements Body.
func (*Statement) Type() Type { return TypeStatement }

func (s *Statement) links() []cid.Cid { return []cid.Cid{s.Dispute.Cid} }

func (s *Statement) validate() error {
	if err := checkUnder("body.dispute", s.Dispute, "the dispute"); err != nil {
		return err
	}
	if err := checkPlainText("body.text", s.Text, MaxRationaleLen, true); err != nil {
		return err
	}
	return checkEvidence(s.Evidence)
}

// Resolution is the association's decision on a dispute, signed by its
// threshold under a manifest (§5.11, §12.12).
type Resolution struct {
	Dispute Link   `cbor:"dispute"`
	Outcome string `cbor:"outcome"`
	// Effect is what upholding does: EffectWithdraw, EffectSetAside or
	// EffectUnmet; empty for a finding without effect.
	Effect string `cbor:"effect,omitempty"`
	Reason string `cbor:"reason"`
	// Replaces lists earlier resolutions of the same dispute, sorted by
	// CID bytes.
	Replaces []Link `cbor:"replaces,omitempty"`
	Under    Link   `cbor:"under"`
}

// Type implements Body.
func (*Resolution) Type() Type { return TypeResolution }

func (r *Resolution) links() []cid.Cid {
	out := []cid.Cid{r.Dispute.Cid, r.Under.Cid}
	for _, l := range r.Replaces {
		out = append(out, l.Cid)
	}
	return out
}

func (r *Resolution) validate() error {
	if err := checkUnder("body.dispute", r.Dispute, "the dispute resolved"); err != nil {
		return err
	}
	switch r.Outcome {
	case OutcomeDismiss:
		if r.Effect != "" {
			return fieldErr("body.effect", ErrInvalid, "a dismissal has no effect")
		}
	case OutcomeUphold:
		switch r.Effect {
		case "", EffectWithdraw, EffectSetAside, EffectUnmet:
		default:
			return fieldErr("body.effect", ErrInvalid, "%q, want withdraw, set-aside or unmet", r.Effect)
		}
	case "":
		return fieldErr("body.outcome", ErrMissing, "dismiss or uphold")
	default:
		return fieldErr("body.outcome", ErrInvalid, "%q, want dismiss or uphold", r.Outcome)
	}
	if err := checkPlainText("body.reason", r.Reason, MaxRationaleLen, true); err != nil {
		return err
	}
	if err := checkLinkSet("body.replaces", r.Replaces, MaxPrev); err != nil {
		return err
	}
	return checkUnder("body.under", r.Under, "the manifest version whose association resolves")
}

// Certificate is the association's attestation of a participant's role or
// of a release, signed by its threshold under a manifest (§5.12, §12.13).
type Certificate struct {
	// Participant and Role, or Release: exactly one of the two.
	Participant *PublicKey `cbor:"participant,omitempty"`
	Role        string     `cbor:"role,omitempty"`
	Release     *Release   `cbor:"release,omitempty"`
	// Expires is when the certificate stops attesting, Unix milliseconds.
	Expires uint64 `cbor:"expires"`
	Note    string `cbor:"note,omitempty"`
	Under   Link   `cbor:"under"`
}

// Release is a named set of contributions, as the association saw them at
// a state root.
type Release struct {
	Name          string `cbor:"name"`
	Root          []byte `cbor:"root"`
	Contributions []Link `cbor:"contributions"`
}

// Type implements Body.
func (*Certificate) Type() Type { return TypeCertificate }

func (c *Certificate) links() []cid.Cid {
	out := []cid.Cid{c.Under.Cid}
	if c.Release != nil {
		for _, l := range c.Release.Contributions {
			out = append(out, l.Cid)
		}
	}
	return out
}

func (c *Certificate) validate() error {
	switch {
	case c.Participant == nil && c.Release == nil:
		return fieldErr("body.participant", ErrMissing, "a certificate attests a participant or a release")
	case c.Participant != nil && c.Release != nil:
		return fieldErr("body.release", ErrInvalid, "a certificate attests a participant or a release, not both")
	case c.Participant != nil:
		if c.Role == "" {
			return fieldErr("body.role", ErrMissing, "the role certified, such as maintainer or partner")
		}
		if err := checkToken("body.role", c.Role); err != nil {
			return err
		}
	default:
		if c.Role != "" {
			return fieldErr("body.role", ErrInvalid, "only a participant's certificate names a role")
		}
		if err := checkPlainText("body.release.name", c.Release.Name, MaxNameLen, true); err != nil {
			return err
		}
		if len(c.Release.Root) == 0 {
			return fieldErr("body.release.root", ErrMissing, "the state root the release was certified from")
		}
		if len(c.Release.Root) != 32 {
			return fieldErr("body.release.root", ErrInvalid, "%d bytes, want a 32-byte state root", len(c.Release.Root))
		}
		if len(c.Release.Contributions) == 0 {
			return fieldErr("body.release.contributions", ErrMissing, "a release holds at least one contribution")
		}
		if err := checkLinkSet("body.release.contributions", c.Release.Contributions, MaxRelease); err != nil {
			return err
		}
	}
	if c.Expires == 0 {
		return fieldErr("body.expires", ErrMissing, "when the certificate stops attesting")
	}
	if c.Expires > MaxMillis {
		return fieldErr("body.expires", ErrInvalid, "%d ms is after the year 9999", c.Expires)
	}
	if err := checkPlainText("body.note", c.Note, MaxAboutLen, false); err != nil {
		return err
	}
	return checkUnder("body.under", c.Under, "the manifest version whose association certifies")
}

// Rotation hands its author's identity on to a successor key, which
// co-signs it (§5.13, §12.14).
type Rotation struct {
	Successor PublicKey `cbor:"successor"`
}

// Type implements Body.
func (*Rotation) Type() Type { return TypeRotation }

func (*Rotation) links() []cid.Cid { return nil }

func (*Rotation) validate() error { return nil }

// checkEnvelope checks what ties a rotation's body to its envelope: the
// successor is another key, and co-signs (once the record is whole).
func (x *Rotation) checkEnvelope(r *Record, whole bool) error {
	if x.Successor == (PublicKey{}) {
		return fieldErr("body.successor", ErrMissing, "the key that takes this key's place")
	}
	if x.Successor == r.Author {
		return fieldErr("body.successor", ErrInvalid, "a key's successor is another key")
	}
	if weakKey(x.Successor) {
		return fieldErr("body.successor", ErrInvalid, "not a usable ed25519 key: it does not decode canonically, or it is of small order (anyone could sign for it)")
	}
	if len(r.Cosigs) > 1 || len(r.Cosigs) == 1 && r.Cosigs[0].Key != x.Successor {
		return fieldErr("cosigs", ErrInvalid, "a rotation carries one co-signature, its successor's")
	}
	if whole && len(r.Cosigs) == 0 {
		return fieldErr("cosigs", ErrMissing, "the successor co-signs a rotation: it accepts the identity")
	}
	return nil
}

// weakKey reports whether k is no key a single holder controls: it does
// not decode as a canonical curve point, or the point is of small order,
// so that under ZIP-215 anyone can make signatures that verify for it.
func weakKey(k PublicKey) bool {
	var y curve.CompressedEdwardsY
	copy(y[:], k[:])
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&y); err != nil {
		return true
	}
	var again curve.CompressedEdwardsY
	again.SetEdwardsPoint(&p)
	return again != y || p.IsSmallOrder()
}

// checkUnder accepts a defined link to a record.
func checkUnder(field string, l Link, what string) error {
	if !l.Defined() {
		return fieldErr(field, ErrMissing, "%s", what)
	}
	if err := checkCID(l.Cid, CodecDagCBOR); err != nil {
		return fieldErr(field, ErrInvalid, "%v", err)
	}
	return nil
}

// checkLinkSet accepts at most max record links sorted by CID bytes,
// without duplicates.
func checkLinkSet(field string, ls []Link, max int) error {
	if len(ls) > max {
		return fieldErr(field, ErrTooLarge, "%d links, limit %d", len(ls), max)
	}
	for i, l := range ls {
		if err := checkCID(l.Cid, CodecDagCBOR); err != nil {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), ErrInvalid, "%v", err)
		}
		if i > 0 && bytes.Compare(ls[i-1].Bytes(), l.Bytes()) >= 0 {
			return fieldErr(field, ErrInvalid, "must be sorted by CID bytes, without duplicates")
		}
	}
	return nil
}

// checkEvidence accepts up to MaxEvidence distinct http(s) URLs.
func checkEvidence(urls []string) error {
	if len(urls) > MaxEvidence {
		return fieldErr("body.evidence", ErrTooLarge, "%d URLs, limit %d", len(urls), MaxEvidence)
	}
	seen := make(map[string]bool, len(urls))
	for i, u := range urls {
		f := fmt.Sprintf("body.evidence[%d]", i)
		if u == "" {
			return fieldErr(f, ErrMissing, "an http or https URL")
		}
		if err := checkURL(f, u); err != nil {
			return err
		}
		if seen[u] {
			return fieldErr(f, ErrInvalid, "%q is listed twice", u)
		}
		seen[u] = true
	}
	return nil
}
