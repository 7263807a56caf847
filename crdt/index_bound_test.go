package crdt

import (
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"pgregory.net/rapid"

	"github.com/commons-p2p/commons/protocol"
)

// BenchmarkHostileTurnLeafReads measures what a peer's first turn of a
// few bytes (the salt and one empty ID list over the whole key space,
// which SPEC.md §11.6 lets a joining node send) costs the responder, on
// the node's event loop: it walks its index up to MaxTurnPush records (all
// of the 100,000 here), reading the leaves it does not hold from the KV,
// and lists them to push.
//
//	go test -run '^$' -bench HostileTurnLeafReads -benchtime 3x ./crdt
func BenchmarkHostileTurnLeafReads(b *testing.B) {
	const n = 100_000
	st := &countingLeaves{testLeaves: &testLeaves{}}
	x := &Index{st: st}
	for i := range n {
		x.Insert(synthItem(3, i, 1<<40))
	}
	st.ready()
	st.store()
	leaves, _, err := readLeaves(&st.kv)
	if err != nil {
		b.Fatal(err)
	}
	turn := Turn{Salt: testSalt, Ranges: []protocol.SyncRange{{Time: protocol.Inf.Time, Mode: protocol.ModeIDList}}}
	st.reads = 0
	pushed := 0
	for range b.N {
		x = &Index{}
		x.open(st, leaves)
		_, push, err := NewSession(x, SyncParams{}).Receive(turn)
		if err != nil {
			b.Fatal(err)
		}
		pushed += len(push)
	}
	b.ReportMetric(float64(st.reads)/float64(b.N), "leaf-reads/turn")
	b.ReportMetric(float64(pushed)/float64(b.N), "pushed/turn")
}

// TestIndexLoadedLeavesBounded: memory holds the items of at most
// leafCache leaves once their writes are stored, leaves made by splits
// included: a State that derives its records (a start after a layout
// change or an 'x' mark, a fresh node syncing a commons) inserts into
// leaves it made itself and reads none from the store.
func TestIndexLoadedLeavesBounded(t *testing.T) {
	const n = 200_000
	st := &testLeaves{}
	x := &Index{st: st}
	for i := range n {
		x.Insert(synthItem(5, i, 1<<40))
		if i%1000 == 999 { // a save a page, as the node does
			st.ready()
			st.store()
		}
	}
	st.ready()
	st.store()
	x.evict() // as the next leaf read or split does
	leaves, _, err := readLeaves(&st.kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d leaves, %d loaded, every write stored", len(leaves), x.loaded)
	if x.loaded > leafCache {
		t.Errorf("%d leaves' items in memory after every write was stored; want at most leafCache (%d)", x.loaded, leafCache)
	}
}

// BenchmarkStoredIndexMemory inserts 1,000,000 items into an index whose
// items are in a KV, storing its writes every 1,000 as a node does, and
// reports the heap the index itself holds per item once every write is
// stored (heap-B/item: its inner nodes, its leaves' summaries and the
// items of the leaves it keeps loaded, a bounded cache; unloaded-B/item:
// the same less those items, the part that grows with the index), and its
// leaves' mean fill.
// "ordered" inserts in time order, as an import or a join does; "random"
// in random order.
//
//	go test -run '^$' -bench StoredIndexMemory -benchtime 1x ./crdt
func BenchmarkStoredIndexMemory(b *testing.B) {
	const n = 1_000_000
	heap := liveHeap
	for _, order := range []string{"ordered", "random"} {
		b.Run(order, func(b *testing.B) {
			items := make([]Item, n)
			for i := range items {
				items[i] = synthItem(7, i, 1<<40)
			}
			if order == "ordered" {
				slices.SortFunc(items, func(a, b Item) int { return a.compare(&b) })
			}
			for range b.N {
				st := &testLeaves{}
				x := &Index{st: st}
				for i, it := range items {
					x.Insert(it)
					if i%1000 == 999 {
						st.ready()
						st.store()
					}
				}
				st.ready()
				st.store()
				x.Insert(items[0]) // present: a read that lets the cache evict
				with := heap()
				leaves, loaded := 0, 0
				first := x.root
				for !first.leaf() {
					first = first.kids[0]
				}
				for l := first; l != nil; l = l.next {
					leaves++
					if l.loaded != nil {
						loaded += cap(l.items) * int(unsafe.Sizeof(Item{}))
					}
				}
				x = nil
				without := heap()
				b.ReportMetric(float64(with-without)/n, "heap-B/item")
				b.ReportMetric(float64(int(with-without)-loaded)/n, "unloaded-B/item")
				b.ReportMetric(float64(n)/float64(leaves), "items/leaf")
				runtime.KeepAlive(st)
			}
		})
	}
}

// TestIndexEdgeSplitsFill: items added in time order, as an import or a
// join adds them, leave leaves about 7/8 full, not half; items added
// anywhere else still split leaves in half, so no order of insertion
// leaves a leaf other than the last below half full.
func TestIndexEdgeSplitsFill(t *testing.T) {
	const n = 50_000
	items := make([]Item, n)
	for i := range items {
		items[i] = synthItem(11, i, 1<<40)
	}
	slices.SortFunc(items, func(a, b Item) int { return a.compare(&b) })
	fill := func(x *Index) (minFill, leaves int) {
		first := x.root
		for !first.leaf() {
			first = first.kids[0]
		}
		minFill = leafMax
		for l := first; l != nil; l = l.next {
			leaves++
			if l.next != nil && l.a.Count < minFill {
				minFill = l.a.Count
			}
		}
		return minFill, leaves
	}
	var ordered Index
	for _, it := range items {
		ordered.Insert(it)
	}
	if m, leaves := fill(&ordered); n/leaves < leafMax-leafEdgeSlack-1 || m < leafMax-leafEdgeSlack {
		t.Errorf("in time order: %d leaves for %d items, the emptiest but the last holding %d; want about %d each", leaves, n, m, leafMax-leafEdgeSlack)
	}
	var reversed Index
	for i := n - 1; i >= 0; i-- {
		reversed.Insert(items[i])
	}
	if m, _ := fill(&reversed); m < leafMax/2 {
		t.Errorf("in reverse order: a leaf holds %d items; want at least %d", m, leafMax/2)
	}
	var want Agg
	for i := range items {
		want.addItem(&items[i])
	}
	for _, x := range []*Index{&ordered, &reversed} {
		if x.Len() != n || x.All() != want {
			t.Fatalf("the index holds %d items, or the wrong ones; want %d", x.Len(), n)
		}
	}
}

// TestIndexEdgeSplitsRanks: an index filled mostly in time order, deep
// enough for its inner nodes to split at the edge too (over 128 leaves of
// up to 128 items), with a drawn share of items arriving late, answers
// ranks, prefix sums, bounds and ranges as the sorted items do.
func TestIndexEdgeSplitsRanks(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(leafMax*nodeMax, 3*leafMax*nodeMax).Draw(t, "n")
		seed := rapid.Uint64().Draw(t, "seed")
		sorted := make([]Item, n)
		for i := range sorted {
			sorted[i] = synthItem(seed, i, 1<<40)
		}
		slices.SortFunc(sorted, func(a, b Item) int { return a.compare(&b) })
		order := slices.Clone(sorted)
		late := rapid.IntRange(0, 20).Draw(t, "late percent")
		for i := range order { // an item swaps with one up to 50 places on
			if int(sorted[i].Digest[0])%100 < late {
				j := min(n-1, i+1+int(sorted[i].Digest[1])%50)
				order[i], order[j] = order[j], order[i]
			}
		}
		var x Index
		for _, it := range order {
			x.Insert(it)
		}
		checkIndex(t, &x, sorted)
	})
}
