package protocol

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// MaxRecordSize is the largest encoded record, in bytes. Payloads live in
// blobs, so records stay small.
const MaxRecordSize = 64 << 10

// Type names a record type; it is the envelope's "type" field.
type Type string

// The record types.
const (
	TypeManifest     Type = "manifest"
	TypeContribution Type = "contribution"
	TypeReview       Type = "review"
	// The entrepreneurial coalition's records (§5.5, §5.6), in a commons
	// whose genesis sets policy.coalition (§7.6).
	TypeProfile         Type = "profile"
	TypeSponsorship     Type = "sponsorship"
	TypePledge          Type = "pledge"
	TypeAcknowledgement Type = "acknowledgement"
	// The for-benefit association's records (§5.9–§5.13), in a commons
	// whose genesis sets policy.association (§7.7).
	TypeDispute     Type = "dispute"
	TypeStatement   Type = "statement"
	TypeResolution  Type = "resolution"
	TypeCertificate Type = "certificate"
	TypeRotation    Type = "rotation"
)

// Cosigned reports whether records of type t may carry co-signatures:
// manifests, and the association's other acts (acknowledgements,
// resolutions, certificates), which it signs as it signs manifests (§6.2);
// and rotations, which their successor co-signs (§5.13).
func Cosigned(t Type) bool {
	switch t {
	case TypeManifest, TypeAcknowledgement, TypeResolution, TypeCertificate, TypeRotation:
		return true
	}
	return false
}

// Body is the per-type part of a record: *Manifest, *Contribution, *Review,
// *Profile, *Sponsorship, *Pledge, *Acknowledgement, *Dispute, *Statement,
// *Resolution, *Certificate or *Rotation.
type Body interface {
	// Type returns the record type this body belongs to.
	Type() Type
	// links returns the record CIDs the body references.
	links() []cid.Cid
	// validate checks the body's fields statelessly.
	validate() error
}

// Cosig is an additional signature on a manifest by another association
// key, so that updates can meet a threshold above one.
type Cosig struct {
	Key PublicKey `cbor:"key"`
	Sig Signature `cbor:"sig"`
}

// Record is a decoded record. Commons is cid.Undef for a genesis manifest,
// whose own CID is the commons ID. Links, the envelope's dependency list, is
// derived from the body and so has no field of its own.
type Record struct {
	Commons cid.Cid
	Author  PublicKey
	Time    HLC
	Body    Body
	Sig     Signature
	Cosigs  []Cosig
}

// Type returns the record's type.
func (r *Record) Type() Type { return r.Body.Type() }

// Links returns the sorted, duplicate-free CIDs of the records this record
// depends on (a manifest's predecessors, a contribution's licence manifest
// and revised contribution, a review's target and manifest).
func (r *Record) Links() []cid.Cid { return sortLinks(r.Body.links()) }

// IsGenesis reports whether r is a genesis manifest.
func (r *Record) IsGenesis() bool { return r.Type() == TypeManifest && !r.Commons.Defined() }

// Manifest returns the body as a manifest, or nil.
func (r *Record) Manifest() *Manifest { m, _ := r.Body.(*Manifest); return m }

// Contribution returns the body as a contribution, or nil.
func (r *Record) Contribution() *Contribution { c, _ := r.Body.(*Contribution); return c }

// Review returns the body as a review, or nil.
func (r *Record) Review() *Review { v, _ := r.Body.(*Review); return v }

// Profile returns the body if the record is a profile, else nil.
func (r *Record) Profile() *Profile { v, _ := r.Body.(*Profile); return v }

// Sponsorship returns the body if the record is a sponsorship, else nil.
func (r *Record) Sponsorship() *Sponsorship { v, _ := r.Body.(*Sponsorship); return v }

// Pledge returns the body if the record is a pledge, else nil.
func (r *Record) Pledge() *Pledge { v, _ := r.Body.(*Pledge); return v }

// Acknowledgement returns the body if the record is an acknowledgement,
// else nil.
func (r *Record) Acknowledgement() *Acknowledgement { v, _ := r.Body.(*Acknowledgement); return v }

// Dispute returns the body if the record is a dispute, else nil.
func (r *Record) Dispute() *Dispute { v, _ := r.Body.(*Dispute); return v }

// Statement returns the body if the record is a statement, else nil.
func (r *Record) Statement() *Statement { v, _ := r.Body.(*Statement); return v }

// Resolution returns the body if the record is a resolution, else nil.
func (r *Record) Resolution() *Resolution { v, _ := r.Body.(*Resolution); return v }

// Certificate returns the body if the record is a certificate, else nil.
func (r *Record) Certificate() *Certificate { v, _ := r.Body.(*Certificate); return v }

// Rotation returns the body if the record is a rotation, else nil.
func (r *Record) Rotation() *Rotation { v, _ := r.Body.(*Rotation); return v }

// wireRecord is the envelope as it is encoded.
type wireRecord struct {
	Type    string          `cbor:"type"`
	Commons *Link           `cbor:"commons,omitempty"`
	Author  []byte          `cbor:"author"`
	Time    uint64          `cbor:"time"`
	Links   []Link          `cbor:"links,omitempty"`
	Body    cbor.RawMessage `cbor:"body"`
	Sig     []byte          `cbor:"sig,omitempty"`
	Cosigs  []Cosig         `cbor:"cosigs,omitempty"`
}

// MarshalCBOR encodes a key as a 32-byte byte string.
func (k PublicKey) MarshalCBOR() ([]byte, error) { return encMode.Marshal(k[:]) }

// UnmarshalCBOR decodes a key, insisting on 32 bytes.
func (k *PublicKey) UnmarshalCBOR(data []byte) error {
	var b []byte
	if err := decMode.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b) != PublicKeySize {
		return fmt.Errorf("public key has %d bytes, want %d", len(b), PublicKeySize)
	}
	copy(k[:], b)
	return nil
}

// MarshalCBOR encodes a signature as a 64-byte byte string.
func (s Signature) MarshalCBOR() ([]byte, error) { return encMode.Marshal(s[:]) }

// UnmarshalCBOR decodes a signature, insisting on 64 bytes.
func (s *Signature) UnmarshalCBOR(data []byte) error {
	var b []byte
	if err := decMode.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b) != SignatureSize {
		return fmt.Errorf("signature has %d bytes, want %d", len(b), SignatureSize)
	}
	copy(s[:], b)
	return nil
}

// encode produces the canonical bytes of r; with signed false, the bytes
// omit sig and cosigs (the bytes that signatures cover, before the prefix).
func (r *Record) encode(signed bool) ([]byte, error) {
	body, err := encMode.Marshal(r.Body)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	w := wireRecord{
		Type:   string(r.Type()),
		Author: r.Author[:],
		Time:   uint64(r.Time),
		Body:   body,
	}
	if r.Commons.Defined() {
		w.Commons = &Link{r.Commons}
	}
	for _, l := range r.Links() {
		w.Links = append(w.Links, Link{l})
	}
	if signed {
		w.Sig = r.Sig[:]
		w.Cosigs = r.Cosigs
	}
	return encMode.Marshal(&w)
}

// Encode validates r and returns its canonical DAG-CBOR bytes and CID.
// It does not check signatures; Sign fills them.
func Encode(r *Record) ([]byte, cid.Cid, error) {
	if err := r.validate(); err != nil {
		return nil, cid.Undef, err
	}
	raw, err := r.encode(true)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("protocol: encode record: %w", err)
	}
	if len(raw) > MaxRecordSize {
		return nil, cid.Undef, fieldErr("record", ErrTooLarge, "%d bytes, limit %d", len(raw), MaxRecordSize)
	}
	return raw, RecordCID(raw), nil
}

// Block is a record together with its exact bytes and CID. It holds no
// more: the bytes its signatures cover are derived when they are checked
// (SigningBytes), not kept, since a node holds many blocks.
//
// Raw is the record's canonical encoding (Parse checks it), and the
// signatures are checked over bytes cut out of Raw, not over Record
// encoded again; the two agree only while Raw is the canonical encoding of
// Record (its cosigs aside, which no signature covers). So a Block is
// built by Parse, ParseDraft, ParseStored (bytes Parse accepted before) or
// NewBlock, not by hand from bytes and a record never checked together.
type Block struct {
	CID    cid.Cid
	Raw    []byte
	Record *Record
}

// Parse decodes raw into a record and checks everything that does not need a
// signature check or a clock: size, DAG-CBOR shape and canonical form, type,
// required fields and field limits. It computes the CID.
func Parse(raw []byte) (*Block, error) { return parse(raw, true) }

// ParseDraft is Parse for a record its signers have not finished: a
// rotation its successor has not co-signed yet passes.
func ParseDraft(raw []byte) (*Block, error) { return parse(raw, false) }

func parse(raw []byte, whole bool) (*Block, error) {
	if len(raw) > MaxRecordSize {
		return nil, fieldErr("record", ErrTooLarge, "%d bytes, limit %d", len(raw), MaxRecordSize)
	}
	var w wireRecord
	if err := decMode.Unmarshal(raw, &w); err != nil {
		return nil, fieldErr("record", ErrMalformed, "%v", err)
	}
	r, links, err := fromWire(&w)
	if err != nil {
		return nil, err
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if x := r.Rotation(); x != nil {
		if err := x.checkEnvelope(r, whole); err != nil {
			return nil, err
		}
	}
	// Checked after validate, so that a body missing a link it must hold
	// is reported under the body field, not as a links mismatch.
	if want := r.Links(); !slices.EqualFunc(links, want, cid.Cid.Equals) {
		return nil, fieldErr("links", ErrInvalid, "must list exactly the record CIDs the body references, sorted")
	}
	again, err := r.encode(true)
	if err != nil {
		return nil, fieldErr("record", ErrMalformed, "%v", err)
	}
	if !bytes.Equal(again, raw) {
		return nil, fieldErr("record", ErrNonCanonical, "re-encoding gives different bytes")
	}
	return &Block{CID: RecordCID(raw), Raw: raw, Record: r}, nil
}

// ParseStored decodes a record that was parsed and admitted before, such
// as one read back from a node's store, under its CID c. It checks that raw
// hashes to c, so bytes changed since (a corrupt disk) are refused, and
// skips what raw's hash already vouches for: re-encoding it to check its
// canonical form, which costs about a third of Parse.
//
// It is only for bytes Parse accepted before: a record's signatures are
// checked over bytes cut out of raw, which match the record only if raw is
// canonical. Bytes from a peer, a file or a client go through Parse.
func ParseStored(c cid.Cid, raw []byte) (*Block, error) {
	if got := RecordCID(raw); !got.Equals(c) {
		return nil, fieldErr("record", ErrInvalid, "stored bytes hash to %s, not to %s: they changed since they were stored", got, c)
	}
	var w wireRecord
	if err := decMode.Unmarshal(raw, &w); err != nil {
		return nil, fieldErr("record", ErrMalformed, "%v", err)
	}
	r, _, err := fromWire(&w)
	if err != nil {
		return nil, err
	}
	return &Block{CID: c, Raw: raw, Record: r}, nil
}

// fromWire builds the record from its decoded envelope and returns it with
// the envelope's links, which Parse checks against the body once the body
// has been validated.
func fromWire(w *wireRecord) (*Record, []cid.Cid, error) {
	r := &Record{Time: HLC(w.Time), Cosigs: w.Cosigs}
	if w.Commons != nil {
		r.Commons = w.Commons.Cid
	}
	if len(w.Author) == 0 {
		return nil, nil, fieldErr("author", ErrMissing, "")
	}
	if len(w.Author) != PublicKeySize {
		return nil, nil, fieldErr("author", ErrInvalid, "%d bytes, want %d", len(w.Author), PublicKeySize)
	}
	copy(r.Author[:], w.Author)
	if len(w.Sig) == 0 {
		return nil, nil, fieldErr("sig", ErrMissing, "")
	}
	if len(w.Sig) != SignatureSize {
		return nil, nil, fieldErr("sig", ErrInvalid, "%d bytes, want %d", len(w.Sig), SignatureSize)
	}
	copy(r.Sig[:], w.Sig)
	switch Type(w.Type) {
	case TypeManifest:
		r.Body = new(Manifest)
	case TypeContribution:
		r.Body = new(Contribution)
	case TypeReview:
		r.Body = new(Review)
	case TypeProfile:
		r.Body = new(Profile)
	case TypeSponsorship:
		r.Body = new(Sponsorship)
	case TypePledge:
		r.Body = new(Pledge)
	case TypeAcknowledgement:
		r.Body = new(Acknowledgement)
	case TypeDispute:
		r.Body = new(Dispute)
	case TypeStatement:
		r.Body = new(Statement)
	case TypeResolution:
		r.Body = new(Resolution)
	case TypeCertificate:
		r.Body = new(Certificate)
	case TypeRotation:
		r.Body = new(Rotation)
	default:
		return nil, nil, fieldErr("type", ErrUnknownType, "%q", w.Type)
	}
	if len(w.Body) == 0 {
		return nil, nil, fieldErr("body", ErrMissing, "")
	}
	if err := decMode.Unmarshal(w.Body, r.Body); err != nil {
		return nil, nil, fieldErr("body", ErrMalformed, "%v", err)
	}
	links := make([]cid.Cid, len(w.Links))
	for i, l := range w.Links {
		links[i] = l.Cid
	}
	return r, links, nil
}

// validate checks the envelope and body statelessly.
func (r *Record) validate() error {
	if r.Body == nil {
		return fieldErr("body", ErrMissing, "")
	}
	if r.Time == 0 {
		return fieldErr("time", ErrMissing, "")
	}
	if r.Commons.Defined() {
		if err := checkCID(r.Commons, CodecDagCBOR); err != nil {
			return fieldErr("commons", ErrInvalid, "%v", err)
		}
	} else if r.Type() != TypeManifest {
		return fieldErr("commons", ErrMissing, "a %s must name its commons", r.Type())
	}
	if len(r.Cosigs) > MaxKeys {
		return fieldErr("cosigs", ErrTooLarge, "%d co-signatures, limit %d", len(r.Cosigs), MaxKeys)
	}
	if len(r.Cosigs) > 0 && !Cosigned(r.Type()) {
		return fieldErr("cosigs", ErrInvalid, "only manifests, acknowledgements, resolutions, certificates and rotations carry co-signatures")
	}
	for i, c := range r.Cosigs {
		if c.Key == r.Author {
			return fieldErr(fmt.Sprintf("cosigs[%d].key", i), ErrInvalid, "the author signs in sig, not in cosigs")
		}
		if i > 0 && r.Cosigs[i-1].Key.Compare(c.Key) >= 0 {
			return fieldErr("cosigs", ErrInvalid, "must be sorted by key, without duplicates")
		}
	}
	if err := r.Body.validate(); err != nil {
		return err
	}
	if m := r.Manifest(); m != nil {
		if err := m.validateEnvelope(r); err != nil {
			return err
		}
	}
	if x := r.Rotation(); x != nil {
		if err := x.checkEnvelope(r, false); err != nil {
			return err
		}
	}
	if p := r.Pledge(); p != nil && p.Beneficiary != nil && *p.Beneficiary == r.Author {
		return fieldErr("body.beneficiary", ErrInvalid, "a pledge's beneficiary is someone other than its author")
	}
	return nil
}

// CheckTime reports ErrFutureTime if the record's time is more than
// MaxClockSkew ahead of nowMillis. The caller supplies the clock; a record
// that fails may be valid later and must only be delayed.
func CheckTime(r *Record, nowMillis int64) error {
	if r.Time.Millis() > nowMillis+MaxClockSkewMillis {
		return fieldErr("time", ErrFutureTime, "%d ms ahead of this node's clock", r.Time.Millis()-nowMillis)
	}
	return nil
}

// MaxClockSkewMillis is how far ahead of the local clock a record's time may
// be before it is delayed: five minutes.
const MaxClockSkewMillis = 5 * 60 * 1000

func sortLinks(ls []cid.Cid) []cid.Cid {
	slices.SortFunc(ls, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return slices.CompactFunc(ls, cid.Cid.Equals)
}
