package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/store/memstore"
)

// benchRecords makes a commons of n records: a genesis, then contributions
// from 32 authors, every fourth followed by a maintainer's review.
func benchRecords(b *testing.B, n int) [][]byte {
	b.Helper()
	seed := func(i int) []byte {
		s := make([]byte, 32)
		s[0], s[1] = byte(i), byte(i>>8)
		return s
	}
	assoc := protocol.NewPrivateKeyFromSeed(seed(1000))
	maint := protocol.NewPrivateKeyFromSeed(seed(1001))
	g := &protocol.Record{Time: protocol.HLCFromMillis(1_700_000_000_000, 0), Body: &protocol.Manifest{
		Name: "bench", Licence: "CC-BY-SA-4.0", Association: []protocol.PublicKey{assoc.Public()}, Threshold: 1,
		Maintainers: []protocol.PublicKey{maint.Public()}, Quorum: 1, RejectQuorum: 1,
	}}
	gb := mustBlock(b, g, assoc)
	out := [][]byte{gb.Raw}
	var last *protocol.Block
	for i := 1; len(out) < n; i++ {
		t := protocol.HLCFromMillis(1_700_000_000_000+int64(i), 0)
		var r *protocol.Record
		key := protocol.NewPrivateKeyFromSeed(seed(i % 32))
		if i%5 == 0 && last != nil {
			key = maint
			r = &protocol.Record{Commons: gb.CID, Time: t, Body: &protocol.Review{
				Target: protocol.Link{Cid: last.CID}, Decision: protocol.DecisionAccept, Under: protocol.Link{Cid: gb.CID},
			}}
		} else {
			r = &protocol.Record{Commons: gb.CID, Time: t, Body: &protocol.Contribution{
				Title: fmt.Sprintf("Contribution %d: a change of ordinary size", i), Summary: "Fixes a thing and adds its test.",
				Kind: "code", Licence: protocol.Link{Cid: gb.CID}, Provenance: protocol.ProvenanceVolunteer,
			}}
		}
		blk := mustBlock(b, r, key)
		if r.Contribution() != nil {
			last = blk
		}
		out = append(out, blk.Raw)
	}
	return out
}

func mustBlock(b testing.TB, r *protocol.Record, k protocol.PrivateKey) *protocol.Block {
	if err := protocol.Sign(r, k); err != nil {
		b.Fatal(err)
	}
	blk, err := protocol.NewBlock(r)
	if err != nil {
		b.Fatal(err)
	}
	return blk
}

var (
	benchOnce sync.Once
	benchRaw  [][]byte
)

// benchSet returns a shared set of records, made once (signing is slow).
func benchSet(b *testing.B) [][]byte {
	benchOnce.Do(func() { benchRaw = benchRecords(b, 50_000) })
	return benchRaw
}

func benchNode(b *testing.B, st store.Store) *Node {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		b.Fatal(err)
	}
	n, err := New(Config{Store: st, Key: k, Offline: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

// BenchmarkVerifyStdlib is the baseline: a bare crypto/ed25519.Verify of a
// record's signature, nothing else.
func BenchmarkVerifyStdlib(b *testing.B) {
	raws := benchSet(b)
	blocks := make([]*protocol.Block, len(raws))
	msgs := make([][]byte, len(raws))
	for i, r := range raws {
		blocks[i], _ = protocol.Parse(r)
		msgs[i] = blocks[i].SigningBytes() // outside the timer: the bare verify alone
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk := blocks[i%len(blocks)]
		if !ed25519.Verify(blk.Record.Author[:], msgs[i%len(blocks)], blk.Record.Sig[:]) {
			b.Fatal("verify failed")
		}
	}
}

// ingestBench runs the full ingest path over b.N records: decode, verify
// (single or batch), CID, group-committed store, merge into the view.
func ingestBench(b *testing.B, newStore func() store.Store, batch int) {
	raws := benchSet(b)
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		k := min(b.N-done, len(raws))
		b.StopTimer()
		n := benchNode(b, newStore())
		if _, err := n.ingest(context.Background(), mustParse(b, raws[:1]), true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ingestAll(b, n, raws[1:k], batch)
		done += k
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
}

func mustParse(b *testing.B, raws [][]byte) []*protocol.Block {
	out := make([]*protocol.Block, len(raws))
	for i, r := range raws {
		blk, err := protocol.Validate(r)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = blk
	}
	return out
}

// ingestAll feeds records as the network would: parsed and verified by the
// receiving side, then handed to the event loop without waiting (the loop
// groups them into commits), and waits for the last commit.
func ingestAll(b *testing.B, n *Node, raws [][]byte, batch int) {
	var pending []*protocol.Block
	send := func(bs []*protocol.Block) {
		n.ingestCh <- &ingestReq{blocks: bs}
	}
	for _, r := range raws {
		blk, err := protocol.Parse(r)
		if err != nil {
			b.Fatal(err)
		}
		if batch <= 1 {
			if err := blk.Verify(); err != nil {
				b.Fatal(err)
			}
			send([]*protocol.Block{blk})
			continue
		}
		pending = append(pending, blk)
		if len(pending) == batch {
			for _, err := range protocol.VerifyBatch(pending) {
				if err != nil {
					b.Fatal(err)
				}
			}
			send(pending)
			pending = nil
		}
	}
	if len(pending) > 0 {
		for _, err := range protocol.VerifyBatch(pending) {
			if err != nil {
				b.Fatal(err)
			}
		}
		send(pending)
	}
	// A synchronous empty ingest returns after everything queued before it.
	if _, err := n.ingest(context.Background(), nil, false); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkIngestSingleMem(b *testing.B) {
	ingestBench(b, func() store.Store { return memstore.New() }, 1)
}

func BenchmarkIngestBatch64Mem(b *testing.B) {
	ingestBench(b, func() store.Store { return memstore.New() }, 64)
}

func badgerFactory(b *testing.B) func() store.Store {
	return func() store.Store {
		st, err := badgerstore.Open(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
}

func BenchmarkIngestSingleBadger(b *testing.B) { ingestBench(b, badgerFactory(b), 1) }

func BenchmarkIngestBatch64Badger(b *testing.B) { ingestBench(b, badgerFactory(b), 64) }
