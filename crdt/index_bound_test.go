package crdt

import (
	"testing"

	"github.com/commons-p2p/commons/protocol"
)

// BenchmarkHostileTurnLeafReads measures what a peer's first turn of a
// few bytes (the salt and one empty ID list over the whole key space,
// which SPEC.md §11.6 lets a joining node send) costs the responder: it
// walks its whole index in one Receive, on the node's event loop, reading
// the leaves it does not hold from the KV, and lists every record to push. The in-memory index walked memory
// instead; both build the whole push list. Bounding a turn's pushes is
// for the sync protocol's limits.
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

// TestIndexLoadedLeavesBounded: the doc says memory holds "the items of
// the 1,024 leaves read or changed last", a leaf changed since its writes
// were stored staying until they are. But evict runs only when a leaf is
// read from the store: leaves made by splits are loaded and never
// evicted. A State that derives its records (a start after a layout
// change or an 'x' mark, a fresh node syncing a commons) inserts into
// leaves it made itself, reads none, and so keeps every leaf's items in
// memory however often its writes are stored, until something first
// reads a leaf from the store.
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
