package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func testKey(b byte) PrivateKey { return NewPrivateKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

func genesis(t testing.TB, k PrivateKey) *Block {
	t.Helper()
	r := &Record{Time: HLCFromMillis(1_700_000_000_000, 0), Body: &Manifest{
		Name: "Test commons", Licence: "CC-BY-SA-4.0", Association: []PublicKey{k.Public()}, Threshold: 1,
		Maintainers: []PublicKey{k.Public()}, Quorum: 1, RejectQuorum: 1,
	}}
	if err := Sign(r, k); err != nil {
		t.Fatal(err)
	}
	b, err := NewBlock(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	k := testKey(1)
	g := genesis(t, k)
	b, err := Validate(g.Raw)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !b.CID.Equals(g.CID) {
		t.Fatalf("cid %s != %s", b.CID, g.CID)
	}
	c := &Record{Commons: g.CID, Time: g.Record.Time + 1, Body: &Contribution{
		Title: "hello", Licence: Link{g.CID}, Provenance: ProvenanceVolunteer,
		Payload: []PayloadRef{{CID: Link{BlobCID([]byte("x"))}, Name: "x.txt", Size: 1}},
	}}
	if err := Sign(c, testKey(2)); err != nil {
		t.Fatal(err)
	}
	cb, err := NewBlock(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(cb.Raw); err != nil {
		t.Fatalf("validate contribution: %v", err)
	}
	bad := bytes.Clone(cb.Raw)
	bad[len(bad)-70] ^= 1
	if _, err := Validate(bad); err == nil {
		t.Fatal("tampered record validated")
	} else {
		t.Logf("tampered: %v", err)
	}
	if errs := VerifyBatch([]*Block{g, cb}); errs[0] != nil || errs[1] != nil {
		t.Fatalf("batch: %v", errs)
	}
	cb2 := *cb
	cb2.Record = &Record{}
	*cb2.Record = *cb.Record
	cb2.Record.Sig[0] ^= 1
	if errs := VerifyBatch([]*Block{g, &cb2}); errs[0] != nil || !errors.Is(errs[1], ErrBadSignature) {
		t.Fatalf("batch with bad: %v", errs)
	}
}
