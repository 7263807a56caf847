package protocol

import (
	"bytes"
	"fmt"

	"github.com/ipfs/go-cid"
)

// BlobProtocol is the stream protocol that fetches one payload blob by CID
// from a peer (see SPEC.md, "The blob protocol").
const BlobProtocol = "/commons/blob/1.0.0"

// MaxBlobMessage caps one framed blob control message, in bytes. The blob's
// bytes follow the response unframed and are bounded by the size it names.
const MaxBlobMessage = 256

// BlobRequest asks a peer for one blob.
type BlobRequest struct {
	CID Link `cbor:"cid"`
}

// BlobResponse answers a BlobRequest. Exactly one field is set: Size (the
// blob's bytes follow, exactly that many), Missing (the peer does not hold
// the blob or does not serve it) or Busy (the peer serves too many of the
// requester's streams already; try later or elsewhere).
type BlobResponse struct {
	Size    *uint64 `cbor:"size,omitempty"`
	Missing bool    `cbor:"missing,omitempty"`
	Busy    bool    `cbor:"busy,omitempty"`
}

// CheckBlobCID reports whether c is a blob CID: CIDv1, raw, sha2-256.
func CheckBlobCID(c cid.Cid) error { return checkCID(c, CodecRaw) }

// EncodeBlobRequest encodes a request canonically.
func EncodeBlobRequest(r *BlobRequest) ([]byte, error) {
	if err := CheckBlobCID(r.CID.Cid); err != nil {
		return nil, fmt.Errorf("protocol: blob request: %w", err)
	}
	return encMode.Marshal(r)
}

// DecodeBlobRequest decodes and checks a request: canonical bytes, a blob
// CID.
func DecodeBlobRequest(b []byte) (*BlobRequest, error) {
	var r BlobRequest
	if err := decodeBlobMsg(b, &r); err != nil {
		return nil, err
	}
	if err := CheckBlobCID(r.CID.Cid); err != nil {
		return nil, fmt.Errorf("protocol: blob request: %w", err)
	}
	return &r, nil
}

// EncodeBlobResponse encodes a response canonically.
func EncodeBlobResponse(r *BlobResponse) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return encMode.Marshal(r)
}

// DecodeBlobResponse decodes and checks a response.
func DecodeBlobResponse(b []byte) (*BlobResponse, error) {
	var r BlobResponse
	if err := decodeBlobMsg(b, &r); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func decodeBlobMsg(b []byte, v any) error {
	if len(b) > MaxBlobMessage {
		return fmt.Errorf("protocol: blob message of %d bytes, limit %d", len(b), MaxBlobMessage)
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("protocol: blob message: %w", err)
	}
	again, err := encMode.Marshal(v)
	if err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("protocol: blob message is not canonical DAG-CBOR")
	}
	return nil
}

func (r *BlobResponse) check() error {
	set := 0
	for _, b := range []bool{r.Size != nil, r.Missing, r.Busy} {
		if b {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("protocol: blob response sets %d fields, want exactly 1", set)
	}
	return nil
}
