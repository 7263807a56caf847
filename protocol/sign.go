package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// SigningPrefix begins the bytes every record signature covers:
// "commons/record/v1/" + type + "\n", then the canonical DAG-CBOR encoding of
// the record without its sig and cosigs fields. The prefix keeps a record
// signature from ever being valid as any other message.
const SigningPrefix = "commons/record/v1/"

// zip215 pins the one ed25519 validity rule every node applies, for single
// and batch verification alike (ZIP-215: cofactored equation, non-canonical
// point encodings accepted, S must be canonical).
var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

func (r *Record) signingBytes() ([]byte, error) {
	body, err := r.encode(false)
	if err != nil {
		return nil, err
	}
	prefix := SigningPrefix + string(r.Type()) + "\n"
	out := make([]byte, 0, len(prefix)+len(body))
	out = append(out, prefix...)
	return append(out, body...), nil
}

// Sign sets r's author to key's public half and signs r. Co-signatures
// already present are cleared, since they cover the old bytes.
func Sign(r *Record, key PrivateKey) error {
	r.Author = key.Public()
	r.Cosigs = nil
	if err := r.validate(); err != nil {
		return err
	}
	msg, err := r.signingBytes()
	if err != nil {
		return fmt.Errorf("protocol: sign: %w", err)
	}
	copy(r.Sig[:], ed25519.Sign(ed25519.PrivateKey(key), msg))
	return nil
}

// Cosign adds key's signature to a record of a co-signed type (Cosigned)
// signed by its author, keeping cosigs sorted. It fails for the author's own key
// or one already present.
func Cosign(r *Record, key PrivateKey) error {
	if !Cosigned(r.Type()) {
		return fieldErr("cosigs", ErrInvalid, "only manifests, acknowledgements, resolutions, certificates and rotations carry co-signatures")
	}
	pub := key.Public()
	if pub == r.Author {
		return fieldErr("cosigs", ErrInvalid, "the author already signed")
	}
	if x := r.Rotation(); x != nil && x.Successor != pub {
		return fieldErr("cosigs", ErrInvalid, "only the successor %s co-signs a rotation, not %s", x.Successor, pub)
	}
	msg, err := r.signingBytes()
	if err != nil {
		return fmt.Errorf("protocol: cosign: %w", err)
	}
	c := Cosig{Key: pub}
	copy(c.Sig[:], ed25519.Sign(ed25519.PrivateKey(key), msg))
	i := 0
	for i < len(r.Cosigs) && r.Cosigs[i].Key.Compare(pub) < 0 {
		i++
	}
	if i < len(r.Cosigs) && r.Cosigs[i].Key == pub {
		return fieldErr("cosigs", ErrInvalid, "%s already co-signed", pub)
	}
	r.Cosigs = append(r.Cosigs[:i], append([]Cosig{c}, r.Cosigs[i:]...)...)
	return nil
}

// SigningDigest returns the SHA-256 of r's signing bytes (§6.1): the same
// for every copy of a record that differs only in its signatures, such as
// two co-signings of one draft.
func (r *Record) SigningDigest() ([sha256.Size]byte, error) {
	msg, err := r.signingBytes()
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(msg), nil
}

// Signers returns every key that signed the block: the author, then the
// co-signers.
func (r *Record) Signers() []PublicKey {
	out := make([]PublicKey, 0, 1+len(r.Cosigs))
	out = append(out, r.Author)
	for _, c := range r.Cosigs {
		out = append(out, c.Key)
	}
	return out
}

// VerifySignature checks one signature under the pinned ZIP-215 rule.
func VerifySignature(key PublicKey, msg []byte, sig Signature) bool {
	return voi.VerifyWithOptions(voi.PublicKey(key[:]), msg, sig[:], zip215)
}

// Verify checks every signature on the block (author and co-signers).
func (b *Block) Verify() error {
	signing, err := b.signing()
	if err != nil {
		return fieldErr("record", ErrMalformed, "%v", err)
	}
	return verifyWith(b, signing)
}

// verifyWith checks b's signatures over signing.
func verifyWith(b *Block, signing []byte) error {
	if !VerifySignature(b.Record.Author, signing, b.Record.Sig) {
		return fieldErr("sig", ErrBadSignature, "author %s", b.Record.Author)
	}
	for i, c := range b.Record.Cosigs {
		if !VerifySignature(c.Key, signing, c.Sig) {
			return fieldErr(fmt.Sprintf("cosigs[%d].sig", i), ErrBadSignature, "co-signer %s", c.Key)
		}
	}
	return nil
}

// SigningBytes returns the exact bytes the block's signatures cover,
// derived each time: cut out of b.Raw, or, when b.Raw is not of a
// record's shape, the record encoded again (nil if it cannot be encoded,
// which a parsed record always can).
func (b *Block) SigningBytes() []byte {
	signing, err := b.signing()
	if err != nil {
		return nil
	}
	return signing
}

// VerifyBatch checks the signatures of many blocks at once with batch
// verification, which costs less per signature than one by one and follows
// the same ZIP-215 rule. It returns one error per block, nil where the block
// verified.
func VerifyBatch(blocks []*Block) []error {
	errs := make([]error, len(blocks))
	signing := make([][]byte, len(blocks))
	for i, b := range blocks {
		var err error
		if signing[i], err = b.signing(); err != nil {
			errs[i] = fieldErr("record", ErrMalformed, "%v", err)
		}
	}
	return verifyBatchWith(blocks, signing, errs)
}

// verifyBatchWith is VerifyBatch over the given signing bytes, keeping the
// errors already in errs.
func verifyBatchWith(blocks []*Block, signing [][]byte, errs []error) []error {
	if len(blocks) == 1 {
		if errs[0] == nil {
			errs[0] = verifyWith(blocks[0], signing[0])
		}
		return errs
	}
	bv := voi.NewBatchVerifier()
	owner := make([]int, 0, len(blocks))
	for i, b := range blocks {
		if errs[i] != nil {
			continue
		}
		bv.AddWithOptions(voi.PublicKey(b.Record.Author[:]), signing[i], b.Record.Sig[:], zip215)
		owner = append(owner, i)
		for _, c := range b.Record.Cosigs {
			bv.AddWithOptions(voi.PublicKey(c.Key[:]), signing[i], c.Sig[:], zip215)
			owner = append(owner, i)
		}
	}
	if len(owner) == 0 {
		return errs
	}
	ok, valid := bv.Verify(nil)
	if ok {
		return errs
	}
	for j, v := range valid {
		if i := owner[j]; !v && errs[i] == nil {
			// Name the exact failing signature.
			errs[i] = verifyWith(blocks[i], signing[i])
			if errs[i] == nil {
				errs[i] = fieldErr("sig", ErrBadSignature, "batch verification")
			}
		}
	}
	return errs
}

// Validate parses raw and verifies its signatures: every stateless check
// except the clock. It is what a node runs before storing or forwarding.
func Validate(raw []byte) (*Block, error) {
	b, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if err := b.Verify(); err != nil {
		return nil, err
	}
	return b, nil
}

// ValidateDraft is Validate for a record its signers have not finished
// (ParseDraft): the signatures it carries are checked.
func ValidateDraft(raw []byte) (*Block, error) {
	b, err := ParseDraft(raw)
	if err != nil {
		return nil, err
	}
	if err := b.Verify(); err != nil {
		return nil, err
	}
	return b, nil
}

// NewBlock encodes a signed record into a block.
func NewBlock(r *Record) (*Block, error) {
	raw, c, err := Encode(r)
	if err != nil {
		return nil, err
	}
	return &Block{CID: c, Raw: raw, Record: r}, nil
}
