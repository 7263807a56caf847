package protocol

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, and every
// input it accepts must be the one canonical encoding of the parsed record:
// Encode gives back exactly the same bytes and CID. Accepted inputs must
// also survive signature verification without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	for _, file := range files {
		var v recordVector
		readJSON(f, file, &v)
		f.Add(unhex(f, v.Record))
	}
	var mal []malformedVector
	readJSON(f, filepath.Join("testdata", "malformed.json"), &mal)
	for _, v := range mal {
		f.Add(unhex(f, v.Record))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := Parse(raw)
		if err != nil {
			if b != nil {
				t.Fatal("Parse returned a block and an error")
			}
			return
		}
		again, c, err := Encode(b.Record)
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("accepted input is not canonical:\n in  %x\n out %x", raw, again)
		}
		if !c.Equals(b.CID) || !c.Equals(RecordCID(raw)) {
			t.Fatalf("CID %s, re-encoded %s", b.CID, c)
		}
		if !bytes.HasPrefix(b.SigningBytes(), []byte(SigningPrefix+string(b.Record.Type())+"\n")) {
			t.Fatal("signing bytes lack the prefix")
		}
		slow, err := b.Record.signingBytes()
		if err != nil {
			t.Fatalf("accepted record has no signing bytes: %v", err)
		}
		if fast, ok := signingFromRaw(string(b.Record.Type()), raw); !ok || !bytes.Equal(fast, slow) {
			t.Fatalf("signing bytes cut from the record's bytes (ok %v)\n %x\ndiffer from those encoded again\n %x", ok, fast, slow)
		}
		_ = b.Verify()
		_ = VerifyBatch([]*Block{b, b})
		_ = CheckTime(b.Record, 0)
		_ = b.Record.Links()
		_ = b.Record.Signers()
	})
}
