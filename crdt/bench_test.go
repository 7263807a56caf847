package crdt

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// unsigned encodes r by author without signing it: crdt trusts its caller
// to have verified signatures, and signing millions of benchmark records
// would dominate the run.
func unsigned(b *testing.B, r *protocol.Record, author int) *protocol.Block {
	r.Author = key(author).Public()
	blk, err := protocol.NewBlock(r)
	if err != nil {
		b.Fatal(err)
	}
	return blk
}

// benchRecords returns n records for the commons id: contributions, each
// followed by a review by one of maintainers 1..3.
func benchRecords(b *testing.B, id cid.Cid, from, n int) []*protocol.Block {
	out := make([]*protocol.Block, 0, n)
	var last cid.Cid
	for i := from; len(out) < n; i++ {
		t := protocol.HLC(1000 + i)
		if i%2 == 0 {
			blk := unsigned(b, &protocol.Record{Commons: id, Time: t, Body: &protocol.Contribution{
				Title: fmt.Sprint("contribution ", i), Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer,
			}}, 4)
			last = blk.CID
			out = append(out, blk)
			continue
		}
		d := protocol.DecisionAccept
		if i%7 == 1 {
			d = protocol.DecisionReject
		}
		out = append(out, unsigned(b, &protocol.Record{Commons: id, Time: t, Body: &protocol.Review{
			Target: protocol.Link{Cid: last}, Decision: d, Under: protocol.Link{Cid: id},
		}}, 1+i%3))
	}
	return out
}

// benchState returns a state holding a genesis and 10k records.
func benchState(b *testing.B) (*State, cid.Cid) {
	g := genesisBlock(b, manifest([]int{0}, 1, []int{1, 2, 3}, 2, 2), 0)
	s := New(g.CID)
	mustAdd(b, s, g)
	if _, err := s.AddBatch(benchRecords(b, g.CID, 0, 10_000)); err != nil {
		b.Fatal(err)
	}
	return s, g.CID
}

// BenchmarkAdd is the cost of adding one contribution or review to a state
// of 10k records (the state grows by b.N as it runs).
func BenchmarkAdd(b *testing.B) {
	s, id := benchState(b)
	bs := benchRecords(b, id, 10_000, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Add(bs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddBatch64 is AddBatch in batches of 64; ns/op is per record.
func BenchmarkAddBatch64(b *testing.B) {
	s, id := benchState(b)
	bs := benchRecords(b, id, 10_000, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		if _, err := s.AddBatch(bs[i:min(i+64, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoot is the root of a 10k-record state after one more record.
func BenchmarkRoot(b *testing.B) {
	s, id := benchState(b)
	bs := benchRecords(b, id, 10_000, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustAdd(b, s, bs[i])
		_ = s.Root()
	}
}

// BenchmarkIndexMemory inserts 1,000,000 items (random times and digests)
// into the reconciliation index and reports the heap it holds per item
// (an item is a time and a digest; the index holds no record bytes): the
// figure that decides whether the index can stay in memory at 10,000,000
// records.
//
//	go test -run '^$' -bench IndexMemory -benchtime 1x ./crdt
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	items := make([]Item, n)
	for i := range items {
		items[i].Time = rng.Uint64() >> 20
		for j := 0; j < len(items[i].Digest); j += 8 {
			binary.LittleEndian.PutUint64(items[i].Digest[j:], rng.Uint64())
		}
	}
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var x Index
		for _, it := range items {
			x.Insert(it)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/item")
		runtime.KeepAlive(&x)
	}
}

// BenchmarkTrieMemory adds 500,000 random digests to a root trie whose
// leaves are in a MemKV, applying its writes every 10,000, and reports the
// heap the State holds per digest beyond its KV: first as an import
// leaves it, having computed no root (trie-import-B/digest), then opened
// again once a root was computed every 10,000 (trie-B/digest: its inner
// nodes and their leaf summaries); and the time of a root after Open.
//
//	go test -run '^$' -bench TrieMemory -benchtime 1x ./crdt
func BenchmarkTrieMemory(b *testing.B) {
	const n = 500_000
	rng := rand.New(rand.NewPCG(1, 2))
	ds := make([]protocol.Digest, n)
	for i := range ds {
		for j := 0; j < len(ds[i]); j += 8 {
			binary.LittleEndian.PutUint64(ds[i][j:], rng.Uint64())
		}
	}
	heap := liveHeap
	add := func(s *State, kv *MemKV, root bool) {
		for i := range ds {
			s.addDigest(ds[i])
			if i%10_000 == 9_999 || i == n-1 {
				if root {
					_ = s.Root()
				}
				r, err := s.Ready()
				if err != nil {
					b.Fatal(err)
				}
				kv.Apply(r.Writes)
				s.Advance(r)
			}
		}
	}
	for range b.N {
		kv := &MemKV{}
		s := openTrie(b, kv, 0)
		add(s, kv, false)
		with := heap()
		runtime.KeepAlive(s)
		s = nil
		without := heap()
		runtime.KeepAlive(kv)
		b.ReportMetric((float64(with)-float64(without))/n, "trie-import-B/digest")

		kv = &MemKV{}
		s = openTrie(b, kv, 0)
		add(s, kv, true)
		s = nil
		without = heap()
		s = openTrie(b, kv, n)
		with = heap()
		start := time.Now()
		_ = s.Root()
		b.ReportMetric(float64(time.Since(start).Microseconds()), "root-after-open-µs")
		b.ReportMetric((float64(with)-float64(without))/n, "trie-B/digest")
		runtime.KeepAlive(s)
	}
}

// BenchmarkDisputeManySuspended asks how a dispute stands, and whether its
// withdrawal binds its contribution, when keys whose revocation is
// contested (keys 0 and 1 revoke each other) signed 2,000 resolutions of
// it, each replacing the one before: what a thief holding such keys can
// make every reclassification of the contribution pay.
func BenchmarkDisputeManySuspended(b *testing.B) {
	m := manifest([]int{0, 1, 4}, 1, []int{2, 3}, 1, 1)
	m.Policy = &protocol.Policy{Association: 1}
	g := genesisBlock(b, m, 0)
	ma := manifest([]int{0, 4}, 1, []int{2, 3}, 1, 1)
	ma.Revoked = pubs(1)
	mb := manifest([]int{1, 4}, 1, []int{2, 3}, 1, 1)
	mb.Revoked = pubs(0)
	c := contribution(b, g.CID, g.CID, 2, 5, "work")
	d := seal(b, &protocol.Record{Commons: g.CID, Time: 3, Body: &protocol.Dispute{
		Subject: &protocol.Link{Cid: c.CID}, Reason: "infringes", Under: protocol.Link{Cid: g.CID}}}, 4)
	recs := []*protocol.Block{g, update(b, g.CID, 7, ma, 1, []cid.Cid{g.CID}, 0), update(b, g.CID, 7, mb, 1, []cid.Cid{g.CID}, 1), c, d}
	var prev []cid.Cid
	for i := range 2000 {
		r := seal(b, &protocol.Record{Commons: g.CID, Time: protocol.HLC(8 + i), Body: &protocol.Resolution{
			Dispute: protocol.Link{Cid: d.CID}, Outcome: protocol.OutcomeUphold, Effect: protocol.EffectWithdraw,
			Reason: fmt.Sprint("decided ", i), Replaces: links(prev...), Under: protocol.Link{Cid: g.CID}}}, 1)
		recs, prev = append(recs, r), []cid.Cid{r.CID}
	}
	s := New(g.CID)
	mustAdd(b, s, recs...)
	if o, _ := s.DisputeOutcome(d.CID); !o.Held {
		b.Fatalf("%+v; want held", o)
	}
	b.ResetTimer()
	for range b.N {
		s.DisputeOutcome(d.CID)
		s.Effect(c.CID, protocol.EffectWithdraw)
	}
}

// BenchmarkTrieDaemonMemory measures the root trie of 5,000,000 digests
// as a daemon keeps it: opened from its leaves' summaries (which give
// every inner node its leaves' hashes), its root computed and saved, then
// 20,000 digests more, one at a time, the root computed and the trie's
// writes saved after each, as when records arrive by gossip. It reports
// the trie's heap then, and how many inner nodes hold their leaves'
// hashes (at most trieHashesMax after a save).
func BenchmarkTrieDaemonMemory(b *testing.B) {
	const n = 5_000_000
	rng := rand.New(rand.NewPCG(3, 4))
	digest := func() protocol.Digest { return randDigest(rng) }
	heap := liveHeap
	for range b.N {
		kv := &MemKV{}
		s := openTrie(b, kv, 0)
		save := func() { settleAll(b, s, kv) }
		for range n {
			s.addDigest(digest())
		}
		_ = s.Root()
		save()
		s = openTrie(b, kv, n)
		_ = s.Root()
		save()
		for range 20_000 {
			s.addDigest(digest())
			_ = s.Root()
			save()
		}
		nodes, held := innerNodes(s.root.top)
		b.ReportMetric(float64(nodes), "inner-nodes")
		b.ReportMetric(float64(held), "nodes-with-leaf-hashes")
		with := heap()
		runtime.KeepAlive(s)
		s = nil
		without := heap()
		runtime.KeepAlive(kv)
		b.ReportMetric(float64(with-without)/(1<<20), "trie-MiB")
	}
}
