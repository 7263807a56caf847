package crdt

import (
	"testing"
	"time"

	"github.com/commons-p2p/commons/protocol"
)

// TestHostileTurnLeafReads: a peer's first turn of a few bytes (the salt
// and one empty ID list over the whole key space, which SPEC.md §11.6 lets
// a joining node send) makes the responder walk its whole index in one
// Receive, on the node's event loop: with the leaves in the KV, that is a
// read of every leaf (about n/100 store scans of up to leafMax keys each),
// where the index in memory cost a walk of memory. A session may do it
// again each pass and each turn, and 16 sessions may be served at once, so
// a hostile peer holds the loop for as long as it likes at the price of a
// few bytes a turn.
func TestHostileTurnLeafReads(t *testing.T) {
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
		t.Fatal(err)
	}
	x = &Index{}
	x.open(st, leaves)
	s := NewSession(x, SyncParams{})
	turn := Turn{Salt: testSalt, Ranges: []protocol.SyncRange{{Time: protocol.Inf.Time, Mode: protocol.ModeIDList}}}
	start := time.Now()
	_, push, err := s.Receive(turn)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one turn of %d range: %d leaf reads of %d leaves, %d records to push, %v (KV in memory)", len(turn.Ranges), st.reads, len(leaves), len(push), took)
	if st.reads > leafCache/8 {
		t.Errorf("one turn of one range read %d leaves from the store on the caller's goroutine; want the work of a turn bounded (a budget of leaf reads per Receive, or the walk done off the loop)", st.reads)
	}
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
