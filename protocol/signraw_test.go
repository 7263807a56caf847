package protocol

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestSigningFromRaw checks, for every record vector, that the signing
// bytes cut out of its bytes are those encoding the record again without
// its signatures gives, and that verification takes them.
func TestSigningFromRaw(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no record vectors: %v", err)
	}
	cosigned := 0
	for _, f := range files {
		var v recordVector
		readJSON(t, f, &v)
		raw := unhex(t, v.Record)
		b, err := Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		slow, err := b.Record.signingBytes()
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		fast, ok := signingFromRaw(string(b.Record.Type()), raw)
		if !ok || !bytes.Equal(fast, slow) {
			t.Errorf("%s: cut from the bytes (ok %v)\n %x\nencoded again\n %x", v.Name, ok, fast, slow)
		}
		if err := b.Verify(); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
		if len(b.Record.Cosigs) > 0 {
			cosigned++
		}
	}
	if cosigned == 0 {
		t.Error("no vector carries co-signatures: the cosigs entry is never cut")
	}
}

// TestSigningFromRawTampered checks that a signature is checked over the
// block's bytes: bytes changed after the signature, the record decoded
// before the change left as it was, no longer verify.
func TestSigningFromRawTampered(t *testing.T) {
	k := NewPrivateKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	b := genesis(t, k)
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	tampered := *b
	tampered.Raw = bytes.Clone(b.Raw)
	i := bytes.Index(tampered.Raw, b.Record.Author[:])
	if i < 0 {
		t.Fatal("author not found in the record's bytes")
	}
	tampered.Raw[i] ^= 1
	if err := tampered.Verify(); err == nil {
		t.Fatal("bytes with another author verified against the decoded record's signature")
	}
	if errs := VerifyBatch([]*Block{&tampered}); errs[0] == nil {
		t.Fatal("batch: bytes with another author verified")
	}
}

// TestSigningFromRawRefuses checks that bytes of another shape are not
// cut, so that the record is encoded again instead.
func TestSigningFromRawRefuses(t *testing.T) {
	k := NewPrivateKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	good := genesis(t, k).Raw
	deep := bytes.Repeat([]byte{0x81}, maxSkipDepth+2) // arrays in arrays
	deep = append(deep, 0)
	cases := map[string][]byte{
		"empty":                nil,
		"not a map":            {0x80},
		"indefinite map":       append([]byte{0xbf}, good[1:]...),
		"map of 24 entries":    {0xb8, 24},
		"truncated":            good[:len(good)-1],
		"trailing byte":        append(bytes.Clone(good), 0),
		"integer key":          {0xa1, 0x01, 0x02},
		"string past the end":  {0xa1, 0x63, 's', 'i', 'g', 0x58, 0xff, 0},
		"indefinite string":    {0xa1, 0x61, 'a', 0x5f, 0x41, 0, 0xff},
		"reserved information": {0xa1, 0x61, 'a', 0x1c},
		"nested too deep":      append([]byte{0xa1, 0x61, 'a'}, deep...),
		"huge map count":       {0xa1, 0x61, 'a', 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, raw := range cases {
		if s, ok := signingFromRaw("manifest", raw); ok {
			t.Errorf("%s: cut %x", name, s)
		}
	}
	// A block without its bytes falls back on encoding the record.
	b := genesis(t, k)
	b.Raw = nil
	if err := b.Verify(); err != nil {
		t.Fatalf("a block without its bytes: %v", err)
	}
}

// BenchmarkSigningBytes compares cutting a record's signing bytes out of
// its bytes with encoding the record again.
func BenchmarkSigningBytes(b *testing.B) {
	blk := genesis(b, NewPrivateKeyFromSeed(bytes.Repeat([]byte{3}, 32)))
	b.Run("cut", func(b *testing.B) {
		for b.Loop() {
			if _, ok := signingFromRaw(string(blk.Record.Type()), blk.Raw); !ok {
				b.Fatal("not cut")
			}
		}
	})
	b.Run("encoded", func(b *testing.B) {
		for b.Loop() {
			if _, err := blk.Record.signingBytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
