package protocol

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// cidTag is the CBOR tag for IPLD links (DAG-CBOR).
const cidTag = 42

// Multicodec codes used in CIDs.
const (
	CodecDagCBOR = 0x71
	CodecRaw     = 0x55
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	// DAG-CBOR's canonical form: definite lengths, shortest integer and
	// length forms, map keys sorted length-first then bytewise.
	eo := cbor.CanonicalEncOptions()
	eo.Sort = cbor.SortLengthFirst
	eo.ShortestFloat = cbor.ShortestFloatNone // floats are not used
	var err error
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   16,
		MaxArrayElements:  4096,
		MaxMapPairs:       64,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// Link is a CID as it appears inside a record: DAG-CBOR tag 42 over a byte
// string holding a zero byte followed by the binary CID.
type Link struct{ cid.Cid }

// MarshalCBOR encodes the link as tag 42.
func (l Link) MarshalCBOR() ([]byte, error) {
	if !l.Defined() {
		return nil, fmt.Errorf("protocol: cannot encode an undefined CID")
	}
	b := l.Bytes()
	content := make([]byte, 0, len(b)+1)
	content = append(content, 0)
	content = append(content, b...)
	return encMode.Marshal(cbor.Tag{Number: cidTag, Content: content})
}

// UnmarshalCBOR decodes a tag-42 link.
func (l *Link) UnmarshalCBOR(data []byte) error {
	var raw cbor.RawTag
	if err := decMode.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if raw.Number != cidTag {
		return fmt.Errorf("link: tag %d, want 42", raw.Number)
	}
	var content []byte
	if err := decMode.Unmarshal(raw.Content, &content); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if len(content) < 2 || content[0] != 0 {
		return fmt.Errorf("link: missing multibase identity prefix")
	}
	n, c, err := cid.CidFromBytes(content[1:])
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if n != len(content)-1 {
		return fmt.Errorf("link: trailing bytes after CID")
	}
	l.Cid = c
	return nil
}

// RecordCID returns the CID of an encoded record: CIDv1, dag-cbor, sha2-256.
func RecordCID(raw []byte) cid.Cid { return sumCID(CodecDagCBOR, raw) }

// BlobCID returns the CID of a payload blob: CIDv1, raw, sha2-256.
func BlobCID(data []byte) cid.Cid { return sumCID(CodecRaw, data) }

func sumCID(codec uint64, data []byte) cid.Cid {
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		panic(err) // unreachable for sha2-256
	}
	return cid.NewCidV1(codec, h)
}

// checkCID reports whether c is a CIDv1 of the given codec with a sha2-256
// multihash, the only form records may reference.
func checkCID(c cid.Cid, codec uint64) error {
	p := c.Prefix()
	if p.Version != 1 || p.Codec != codec || p.MhType != mh.SHA2_256 || p.MhLength != 32 {
		return fmt.Errorf("CID %s is not CIDv1/%s/sha2-256", c, codecName(codec))
	}
	return nil
}

func codecName(c uint64) string {
	switch c {
	case CodecDagCBOR:
		return "dag-cbor"
	case CodecRaw:
		return "raw"
	}
	return fmt.Sprintf("0x%x", c)
}
