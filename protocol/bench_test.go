package protocol

import (
	"crypto/ed25519"
	"testing"
)

func benchBlocks(b *testing.B, n int) []*Block {
	g := genesis(b, testKey(1))
	out := make([]*Block, n)
	for i := range out {
		r := &Record{Commons: g.CID, Time: HLCFromMillis(1_700_000_000_000+int64(i), 0), Body: &Contribution{
			Title: "A contribution of ordinary length", Summary: "Fixes the thing that was broken, with tests.",
			Licence: Link{g.CID}, Provenance: ProvenanceVolunteer, Kind: "code",
		}}
		if err := Sign(r, testKey(byte(2+i%50))); err != nil {
			b.Fatal(err)
		}
		blk, err := NewBlock(r)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = blk
	}
	return out
}

// BenchmarkVerifyStdlib is the baseline: a bare crypto/ed25519.Verify over
// the same signing bytes a record carries.
func BenchmarkVerifyStdlib(b *testing.B) {
	blks := benchBlocks(b, 64)
	msgs := make([][]byte, len(blks))
	for i, blk := range blks {
		msgs[i] = blk.SigningBytes()
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		blk := blks[i%len(blks)]
		if !ed25519.Verify(blk.Record.Author[:], msgs[i%len(blks)], blk.Record.Sig[:]) {
			b.Fatal("verify")
		}
		i++
	}
}

// BenchmarkVerifyZIP215 is one signature under the pinned rule.
func BenchmarkVerifyZIP215(b *testing.B) {
	blks := benchBlocks(b, 64)
	i := 0
	for b.Loop() {
		if err := blks[i%len(blks)].Verify(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyBatch64 is batch verification; ns/op is per record.
func BenchmarkVerifyBatch64(b *testing.B) {
	blks := benchBlocks(b, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		for _, err := range VerifyBatch(blks) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkParse is decode, canonical check and CID, without signatures.
func BenchmarkParse(b *testing.B) {
	blks := benchBlocks(b, 64)
	i := 0
	for b.Loop() {
		if _, err := Parse(blks[i%len(blks)].Raw); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSolveWork measures what a record's proof of work costs its
// author: one op is one record solved at 16 bits (expect 2^16 hashes).
func BenchmarkSolveWork16(b *testing.B) {
	r := contributionRecord()
	for b.Loop() {
		r.Time += 1 << 24
		if ok, err := SolveWork(r, 16, 1<<26); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkCheckWork measures what checking it costs a receiver.
func BenchmarkCheckWork(b *testing.B) {
	blk, err := NewBlock(contributionRecord())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = blk.Work()
	}
}
