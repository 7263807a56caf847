package node

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// malformedRecord is one of protocol's malformed record vectors
// (protocol/testdata/malformed.json): bytes no entry point may store, and
// the field whose error names them.
type malformedRecord struct {
	Name   string `json:"name"`
	Record string `json:"record"`
	Field  string `json:"field"`
	raw    []byte
}

func malformedRecords(t *testing.T) []malformedRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "protocol", "testdata", "malformed.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []malformedRecord
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for i := range vs {
		if vs[i].raw, err = hex.DecodeString(vs[i].Record); err != nil {
			t.Fatalf("vector %q: %v", vs[i].Name, err)
		}
	}
	if len(vs) < 30 {
		t.Fatalf("%d malformed record vectors; the table wants at least 30", len(vs))
	}
	return vs
}

// Bad input through Import, one file at a time, into a node that holds a
// commons: every malformed record vector beside good records, and files
// broken in their structure. A bad record is refused and named with the
// field at fault while the good ones are kept; a file that is not a CAR
// is refused saying so; a file damaged part way keeps what came before
// the damage and says after how many records it broke. Nothing bad is
// ever stored, and the node's records stay those of the good files.
func TestImportBadInputs(t *testing.T) {
	w := newWorld(t)
	var export bytes.Buffer
	if err := w.n.Export(t.Context(), w.commons, &export); err != nil {
		t.Fatal(err)
	}
	whole := export.Bytes()
	roots, good := readCAR(t, whole)
	header := len(whole) - sectionsLen(good)

	type badFile struct {
		name      string
		file      []byte
		err       string // the import's error, "" for none
		rejected  []cid.Cid
		reason    string // in every rejected record's reason
		stored    int    // good records the file brings (imported or present)
		notStored []cid.Cid
	}
	var cases []badFile
	for _, v := range malformedRecords(t) {
		c := protocol.RecordCID(v.raw)
		cases = append(cases, badFile{
			name: "record: " + v.Name, file: writeCAR(t, roots, append(good[:3:3], carBlock{c, v.raw})),
			rejected: []cid.Cid{c}, reason: v.Field, stored: 3, notStored: []cid.Cid{c},
		})
	}
	tampered := bytes.Clone(good[4].raw)
	tampered[len(tampered)/2] ^= 0x20
	sum, err := mh.Sum(good[4].raw, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	asRaw := cid.NewCidV1(cid.Raw, sum)
	asV0 := cid.NewCidV0(sum)
	huge := append(whole[:header:header], binary.AppendUvarint(nil, 1<<30)...)
	oversized := make([]byte, protocol.MaxRecordSize+1024)
	cases = append(cases,
		badFile{name: "empty file", file: nil, err: "not a CAR file"},
		badFile{name: "text", file: []byte("commons records\n"), err: "not a CAR file"},
		badFile{name: "JSON", file: []byte(`{"roots":[],"blocks":[]}`), err: "not a CAR file"},
		badFile{name: "header cut short", file: whole[:header/2], err: "not a CAR file"},
		badFile{name: "header length of 2^63", file: binary.AppendUvarint(nil, 1<<63), err: "not a CAR file"},
		badFile{name: "header length past the end", file: append(binary.AppendUvarint(nil, 1000), whole[1:header]...), err: "not a CAR file"},
		badFile{name: "CARv2 pragma, then nothing", file: []byte{0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02}, err: "not a CAR file"},
		badFile{name: "cut inside a block", file: whole[:len(whole)-len(good[len(good)-1].raw)/2], err: "damaged after 5 records", stored: 5},
		badFile{name: "cut inside a block's CID", file: whole[:header+sectionsLen(good[:2])+3], err: "damaged after 2 records", stored: 2},
		badFile{name: "section of 1 GiB announced", file: huge, err: "damaged after 0 records"},
		badFile{name: "section over the record limit", file: writeCAR(t, roots, append(good[:2:2], carBlock{protocol.RecordCID(oversized), oversized})), err: "damaged after 2 records", stored: 2},
		badFile{name: "garbage after the records", file: append(bytes.Clone(whole), 0xff, 0xff, 0xff), err: "damaged after 6 records", stored: 6},
		badFile{name: "a record's bytes tampered", file: writeCAR(t, roots, []carBlock{good[0], {good[4].cid, tampered}}),
			rejected: []cid.Cid{good[4].cid}, reason: "do not match the CID", stored: 1},
		badFile{name: "a record under a raw CID", file: writeCAR(t, roots, []carBlock{{asRaw, good[4].raw}}),
			rejected: []cid.Cid{asRaw}, reason: "do not match the CID", notStored: []cid.Cid{asRaw}},
		badFile{name: "a record under a CIDv0", file: writeCAR(t, roots, []carBlock{{asV0, good[4].raw}}),
			rejected: []cid.Cid{asV0}, reason: "do not match the CID", notStored: []cid.Cid{asV0}},
		badFile{name: "an empty block", file: writeCAR(t, roots, []carBlock{{protocol.RecordCID(nil), nil}}),
			rejected: []cid.Cid{protocol.RecordCID(nil)}, reason: "record", notStored: []cid.Cid{protocol.RecordCID(nil)}},
		badFile{name: "a payload blob as a record", file: writeCAR(t, roots, []carBlock{{protocol.RecordCID(w.blob), w.blob}}),
			rejected: []cid.Cid{protocol.RecordCID(w.blob)}, reason: "record", notStored: []cid.Cid{protocol.RecordCID(w.blob)}},
	)

	dst := startOffline(t)
	for _, tc := range cases {
		rep, err := dst.Import(t.Context(), bytes.NewReader(tc.file), true)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: import failed: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, api.ErrBadRequest)):
			t.Errorf("%s: import error %v; want a bad request saying %q", tc.name, err, tc.err)
		}
		if got := rep.Imported + rep.Duplicates; got != tc.stored {
			t.Errorf("%s: %d good records imported or present; want %d", tc.name, got, tc.stored)
		}
		if rep.RejectedTotal != len(tc.rejected) {
			t.Errorf("%s: %d rejected (%+v); want %d", tc.name, rep.RejectedTotal, rep.Rejected, len(tc.rejected))
		}
		for i, c := range tc.rejected {
			if i >= len(rep.Rejected) || rep.Rejected[i].CID != c.String() || !strings.Contains(rep.Rejected[i].Reason, tc.reason) {
				t.Errorf("%s: rejected %+v; want %s named, with a reason saying %q", tc.name, rep.Rejected, c, tc.reason)
			}
		}
		for _, c := range tc.notStored {
			if has, err := dst.st.HasRecord(t.Context(), c); err != nil || has {
				t.Errorf("%s: the bad record %s is stored (%v)", tc.name, c, err)
			}
		}
	}
	st, err := dst.Status(t.Context())
	if err != nil || len(st.Commons) != 1 || st.Commons[0].Records != len(good) {
		t.Fatalf("after the bad files: %+v, %v; want the commons with its %d good records", st.Commons, err, len(good))
	}
	t.Logf("%d bad files imported: each refused as it should be", len(cases))
}

// sectionsLen is the length of the CAR sections of blocks.
func sectionsLen(blocks []carBlock) int {
	n := 0
	for _, b := range blocks {
		k := len(b.cid.Bytes()) + len(b.raw)
		n += len(binary.AppendUvarint(nil, uint64(k))) + k
	}
	return n
}
