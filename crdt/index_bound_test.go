package crdt

import (
	"testing"

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
	leaves, _, err := readLeaves(&st.kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d leaves, %d loaded, every write stored", len(leaves), x.loaded)
	if x.loaded > leafCache {
		t.Errorf("%d leaves' items in memory after every write was stored; want at most leafCache (%d)", x.loaded, leafCache)
	}
}
