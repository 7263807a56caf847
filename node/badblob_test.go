package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/commons-p2p/commons/protocol"
)

// pipeRW is one side of a blob stream: what the peer sent, and what this
// side writes.
type pipeRW struct {
	in  io.Reader
	out bytes.Buffer
}

func (p *pipeRW) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *pipeRW) Write(b []byte) (int, error) { return p.out.Write(b) }

// blobFrame is a blob protocol frame: a length, then the message.
func blobFrame(msg []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(msg))), msg...) }

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// linkTag is a CID as a DAG-CBOR link: tag 42 around 0x00 and its bytes.
func linkTag(c []byte) cbor.Tag { return cbor.Tag{Number: 42, Content: append([]byte{0}, c...)} }

// Bad requests through the blob protocol, as a peer would send them to a
// node that serves a blob a record references. Each is refused with an
// error and answered with nothing; a well-formed request for a blob the
// node does not serve is answered "missing", without a byte of the blob.
func TestBlobServeBadInputs(t *testing.T) {
	w := newWorld(t)
	blob := cid.MustParse(w.blobCID)
	record := cid.MustParse(w.accepted)
	good, err := protocol.EncodeBlobRequest(&protocol.BlobRequest{CID: protocol.Link{Cid: blob}})
	if err != nil {
		t.Fatal(err)
	}
	idHash, _ := mh.Sum(w.blob, mh.IDENTITY, -1)
	sha1, _ := mh.Sum(w.blob, mh.SHA1, -1)
	sha512, _ := mh.Sum(w.blob, mh.SHA2_512, -1)
	unserved := protocol.BlobCID([]byte("no record references this"))
	if _, err := w.n.st.PutBlob(t.Context(), []byte("no record references this")); err != nil {
		t.Fatal(err)
	}
	absent := protocol.BlobCID([]byte("nobody stores this"))
	cases := []struct {
		name    string
		stream  []byte
		missing bool // answered "missing" rather than refused
	}{
		{name: "nothing", stream: nil},
		{name: "frame of length 0", stream: []byte{0}},
		{name: "frame over the message limit", stream: blobFrame(make([]byte, protocol.MaxBlobMessage+1))},
		{name: "frame length of 2^63", stream: binary.AppendUvarint(nil, 1<<63)},
		{name: "frame length varint of 11 bytes", stream: bytes.Repeat([]byte{0xff}, 11)},
		{name: "frame cut short", stream: blobFrame(good)[:len(good)-2]},
		{name: "garbage", stream: blobFrame([]byte{0xff, 0xfe, 0xfd})},
		{name: "a CBOR array", stream: blobFrame([]byte{0x80})},
		{name: "a CBOR text", stream: blobFrame([]byte{0x63, 'c', 'i', 'd'})},
		{name: "an empty map", stream: blobFrame([]byte{0xa0})},
		{name: "an unknown key", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(blob.Bytes()), "offset": 5}))},
		{name: "cid as a text string", stream: blobFrame(mustCBOR(t, map[string]any{"cid": blob.String()}))},
		{name: "cid as bytes, untagged", stream: blobFrame(mustCBOR(t, map[string]any{"cid": blob.Bytes()}))},
		{name: "cid without the 0x00 prefix", stream: blobFrame(mustCBOR(t, map[string]any{"cid": cbor.Tag{Number: 42, Content: blob.Bytes()}}))},
		{name: "cid under another tag", stream: blobFrame(mustCBOR(t, map[string]any{"cid": cbor.Tag{Number: 43, Content: append([]byte{0}, blob.Bytes()...)}}))},
		{name: "cid of garbage bytes", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag([]byte{1, 2, 3})}))},
		{name: "cid of a record (dag-cbor)", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(record.Bytes())}))},
		{name: "CIDv0", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(cid.NewCidV0(blobHash(t, w.blob)).Bytes())}))},
		{name: "identity hash", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(cid.NewCidV1(cid.Raw, idHash).Bytes())}))},
		{name: "sha1 hash", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(cid.NewCidV1(cid.Raw, sha1).Bytes())}))},
		{name: "key twice", stream: blobFrame(append(append([]byte{0xa2}, good[1:]...), good[1:]...))},
		{name: "trailing bytes", stream: blobFrame(append(bytes.Clone(good), 0x00))},
		{name: "indefinite-length map", stream: blobFrame(append(append([]byte{0xbf}, good[1:]...), 0xff))},
		{name: "map with a number key", stream: blobFrame(mustCBOR(t, map[int]any{1: linkTag(blob.Bytes())}))},
		{name: "nested: the request inside an array", stream: blobFrame(append([]byte{0x81}, good...))},
		{name: "cid null", stream: blobFrame(mustCBOR(t, map[string]any{"cid": nil}))},
		{name: "cid a map", stream: blobFrame(mustCBOR(t, map[string]any{"cid": map[string]any{"/": blob.String()}}))},
		{name: "cid with its digest cut", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(blob.Bytes()[:len(blob.Bytes())-4])}))},
		{name: "sha2-512 hash", stream: blobFrame(mustCBOR(t, map[string]any{"cid": linkTag(cid.NewCidV1(cid.Raw, sha512).Bytes())}))},
		{name: "a stored blob no record references", stream: blobFrame(mustEncodeReq(t, unserved)), missing: true},
		{name: "a blob not stored", stream: blobFrame(mustEncodeReq(t, absent)), missing: true},
	}
	missing, err := protocol.EncodeBlobResponse(&protocol.BlobResponse{Missing: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		rw := &pipeRW{in: bytes.NewReader(tc.stream)}
		err := w.n.serveBlobOn(rw, false)
		switch {
		case tc.missing && (err != nil || !bytes.Equal(rw.out.Bytes(), blobFrame(missing))):
			t.Errorf("%s: %v, answered %x; want \"missing\"", tc.name, err, rw.out.Bytes())
		case !tc.missing && (err == nil || rw.out.Len() != 0):
			t.Errorf("%s: %v, answered %d bytes; want an error and no answer", tc.name, err, rw.out.Len())
		}
	}
	// The good request still gets the blob.
	rw := &pipeRW{in: bytes.NewReader(blobFrame(good))}
	if err := w.n.serveBlobOn(rw, false); err != nil || !bytes.HasSuffix(rw.out.Bytes(), w.blob) {
		t.Fatalf("the good request: %v, answered %q", err, rw.out.Bytes())
	}
	t.Logf("%d bad requests, each refused or answered missing", len(cases))
}

// Bad answers through the blob protocol, as a hostile peer would give
// them to a node fetching a blob whose record states its size. Each fails
// the fetch with an error, the broken ones as a bad answer (the peer is
// marked bad for it), and nothing is returned as the blob.
func TestBlobFetchBadInputs(t *testing.T) {
	n := startOffline(t)
	data := []byte("the payload, exactly as the record states it")
	c := protocol.BlobCID(data)
	plan := blobPlan{sizes: []uint64{uint64(len(data))}, limit: 1 << 20}
	resp := func(r protocol.BlobResponse) []byte {
		b, err := protocol.EncodeBlobResponse(&r)
		if err != nil {
			t.Fatal(err)
		}
		return blobFrame(b)
	}
	size := func(k uint64) []byte { return resp(protocol.BlobResponse{Size: &k}) }
	right := uint64(len(data))
	other := bytes.Clone(data)
	other[3] ^= 1
	cases := []struct {
		name   string
		answer []byte
		bad    bool // a broken answer, not a peer without the blob or busy
		says   string
	}{
		{name: "nothing", answer: nil, says: "read answer"},
		{name: "frame of length 0", answer: []byte{0}, bad: true},
		{name: "frame over the message limit", answer: binary.AppendUvarint(nil, protocol.MaxBlobMessage+1), says: "limit"},
		{name: "frame length of 2^63", answer: binary.AppendUvarint(nil, 1<<63), says: "limit"},
		{name: "frame cut short", answer: size(right)[:2], says: "read answer"},
		{name: "garbage", answer: blobFrame([]byte{0xff, 0xfe}), bad: true},
		{name: "a CBOR array", answer: blobFrame([]byte{0x80}), bad: true},
		{name: "an empty map", answer: blobFrame([]byte{0xa0}), bad: true},
		{name: "size and missing", answer: blobFrame(mustCBOR(t, map[string]any{"size": right, "missing": true})), bad: true},
		{name: "size and busy", answer: blobFrame(mustCBOR(t, map[string]any{"size": right, "busy": true})), bad: true},
		{name: "missing false", answer: blobFrame(mustCBOR(t, map[string]any{"missing": false})), bad: true},
		{name: "size as text", answer: blobFrame(mustCBOR(t, map[string]any{"size": "45"})), bad: true},
		{name: "size negative", answer: blobFrame(mustCBOR(t, map[string]any{"size": -1})), bad: true},
		{name: "an unknown key", answer: blobFrame(mustCBOR(t, map[string]any{"size": right, "offset": 0})), bad: true},
		{name: "size as a float", answer: blobFrame(mustCBOR(t, map[string]any{"size": float64(right)})), bad: true},
		{name: "size as bytes", answer: blobFrame(mustCBOR(t, map[string]any{"size": []byte{byte(right)}})), bad: true},
		{name: "busy false", answer: blobFrame(mustCBOR(t, map[string]any{"busy": false})), bad: true},
		{name: "key twice", answer: blobFrame(append(append([]byte{0xa2}, size(right)[2:]...), size(right)[2:]...)), bad: true},
		{name: "trailing bytes in the frame", answer: blobFrame(append(bytes.Clone(size(right)[1:]), 0)), bad: true},
		{name: "indefinite-length map", answer: blobFrame(append(append([]byte{0xbf}, size(right)[2:]...), 0xff)), bad: true},
		{name: "the answer inside an array", answer: blobFrame(append([]byte{0x81}, size(right)[1:]...)), bad: true},
		{name: "size larger than the record states", answer: append(size(right+1), append(bytes.Clone(data), 'x')...), bad: true, says: "announced"},
		{name: "size smaller than the record states", answer: append(size(right-1), data[:right-1]...), bad: true, says: "announced"},
		{name: "size of 2^64-1", answer: size(1<<64 - 1), bad: true, says: "announced"},
		{name: "size, then fewer bytes", answer: append(size(right), data[:10]...), bad: true, says: "after 10 of the"},
		{name: "size, then nothing", answer: size(right), bad: true, says: "after 0 of the"},
		{name: "size, then other bytes", answer: append(size(right), other...), bad: true, says: "bytes hash to"},
		{name: "size, then the bytes of another blob", answer: append(size(right), bytes.Repeat([]byte{'a'}, len(data))...), bad: true, says: "bytes hash to"},
		{name: "missing", answer: resp(protocol.BlobResponse{Missing: true}), says: "does not have it"},
		{name: "busy", answer: resp(protocol.BlobResponse{Busy: true}), says: "busy"},
	}
	for _, tc := range cases {
		rw := &pipeRW{in: bytes.NewReader(tc.answer)}
		got, err := n.fetchOn(rw, c, plan)
		switch {
		case err == nil || got != nil:
			t.Errorf("%s: fetched %q, %v; want an error", tc.name, got, err)
		case tc.bad != errors.Is(err, errBadBlob):
			t.Errorf("%s: %v; a bad answer: %v", tc.name, err, tc.bad)
		case !strings.Contains(err.Error(), tc.says):
			t.Errorf("%s: %v; want it to say %q", tc.name, err, tc.says)
		}
	}
	rw := &pipeRW{in: bytes.NewReader(append(size(right), data...))}
	if got, err := n.fetchOn(rw, c, plan); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the good answer: %q, %v", got, err)
	}
	t.Logf("%d bad answers, each failing the fetch", len(cases))
}

func mustEncodeReq(t *testing.T, c cid.Cid) []byte {
	t.Helper()
	b, err := protocol.EncodeBlobRequest(&protocol.BlobRequest{CID: protocol.Link{Cid: c}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func blobHash(t *testing.T, data []byte) mh.Multihash {
	t.Helper()
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
