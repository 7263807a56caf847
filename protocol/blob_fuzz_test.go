package protocol

import (
	"bytes"
	"testing"
)

// FuzzDecodeBlob: the blob exchange's decoders never panic, and every
// request or response they accept encodes back to the same bytes.
func FuzzDecodeBlob(f *testing.F) {
	size := uint64(12)
	for _, r := range []*BlobResponse{{Size: &size}, {Missing: true}, {Busy: true}} {
		b, err := EncodeBlobResponse(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	req, err := EncodeBlobRequest(&BlobRequest{CID: Link{Cid: BlobCID([]byte("payload"))}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(req)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if r, err := DecodeBlobResponse(raw); err == nil {
			again, err := EncodeBlobResponse(r)
			if err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("accepted response does not encode back to its bytes: %x, %v", again, err)
			}
		}
		if r, err := DecodeBlobRequest(raw); err == nil {
			again, err := EncodeBlobRequest(r)
			if err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("accepted request does not encode back to its bytes: %x, %v", again, err)
			}
		}
	})
}
