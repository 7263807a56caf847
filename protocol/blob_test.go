package protocol

import (
	"testing"
)

func TestBlobMessages(t *testing.T) {
	c := BlobCID([]byte("hello"))
	req, err := EncodeBlobRequest(&BlobRequest{CID: Link{c}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBlobRequest(req)
	if err != nil || !got.CID.Equals(c) {
		t.Fatalf("request round trip: %v, %v", got, err)
	}
	if _, err := EncodeBlobRequest(&BlobRequest{CID: Link{RecordCID([]byte("x"))}}); err == nil {
		t.Error("a record CID was accepted as a blob CID")
	}
	size := uint64(0)
	for _, tc := range []struct {
		name string
		r    BlobResponse
		ok   bool
	}{
		{"size zero", BlobResponse{Size: &size}, true},
		{"missing", BlobResponse{Missing: true}, true},
		{"busy", BlobResponse{Busy: true}, true},
		{"empty", BlobResponse{}, false},
		{"two", BlobResponse{Size: &size, Busy: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeBlobResponse(&tc.r)
			if (err == nil) != tc.ok {
				t.Fatalf("encode: %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if _, err := DecodeBlobResponse(b); err != nil {
				t.Fatalf("decode: %v", err)
			}
		})
	}
	// Non-canonical: size 1 as a two-byte integer.
	if _, err := DecodeBlobResponse([]byte{0xa1, 0x64, 's', 'i', 'z', 'e', 0x18, 0x01}); err == nil {
		t.Error("non-minimal size accepted")
	}
	if _, err := DecodeBlobResponse([]byte{0xa1, 0x64, 'b', 'u', 's', 'y', 0xf4}); err == nil {
		t.Error("busy: false accepted")
	}
}
