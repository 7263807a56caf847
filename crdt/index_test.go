package crdt

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"pgregory.net/rapid"
)

// testLeaves is a leafStore over a MemKV whose batches of writes are
// handed out and stored later, in order, as a node stores a State's
// Readies.
type testLeaves struct {
	kv     MemKV
	pend   []Write   // the batch being gathered
	flight [][]Write // batches handed out, oldest first
	handed uint64    // batches handed out
	err    error
}

func (l *testLeaves) items(lo Item, hi *Item, fn func(Item)) error {
	return indexStore{&State{kv: &l.kv}}.items(lo, hi, fn)
}

func (l *testLeaves) putItem(it Item) {
	l.pend = append(l.pend, Write{Key: itemKey(tagItem, &it), Value: []byte{}})
}

func (l *testLeaves) delItem(it Item) {
	l.pend = append(l.pend, Write{Key: itemKey(tagItem, &it), Delete: true})
}

func (l *testLeaves) putLeaf(lo Item, a Agg) {
	l.pend = append(l.pend, Write{Key: itemKey(tagIdxLeaf, &lo), Value: a.put(nil)})
}

func (l *testLeaves) seqs() (gathering, unstored uint64) {
	return l.handed + 1, l.handed + 1 - uint64(len(l.flight))
}

func (l *testLeaves) fail(err error) { l.err = err }

// ready hands out the batch gathered; store stores the oldest handed out.
func (l *testLeaves) ready() {
	if len(l.pend) > 0 {
		l.flight = append(l.flight, l.pend)
		l.pend = nil
		l.handed++
	}
}

func (l *testLeaves) store() {
	if len(l.flight) > 0 {
		l.kv.Apply(l.flight[0])
		l.flight = l.flight[1:]
	}
}

// TestStoredIndex: an index that keeps its leaves in a KV, with a cache
// of one to three leaves (so that most reads go to the KV), its writes
// stored later and in batches, and reopened from the KV whenever all are
// stored, answers every rank, prefix, bound and range as the items say.
// A leaf read back with an item missing is reported damaged.
func TestStoredIndex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		n := rapid.IntRange(0, 2000).Draw(t, "n")
		spread := rapid.SampledFrom([]uint64{1, 5, 1 << 40}).Draw(t, "spread")
		st := &testLeaves{}
		x := &Index{st: st, cap: rapid.IntRange(1, 3).Draw(t, "cache")}
		var items []Item
		for i := range n {
			it := synthItem(seed, i, spread)
			if !x.Insert(it) {
				t.Fatalf("item %d not new", i)
			}
			items = append(items, it)
			if i > 0 && x.Insert(items[rapid.IntRange(0, i).Draw(t, "dup")]) {
				t.Fatalf("a duplicate inserted")
			}
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2:
				st.ready()
			case 3, 4:
				st.store()
			case 5:
				st.ready()
				for len(st.flight) > 0 {
					st.store()
				}
				leaves, m, err := readLeaves(&st.kv)
				if err != nil || m != len(items) {
					t.Fatalf("reopen: %d items, %v; want %d", m, err, len(items))
				}
				x = &Index{cap: x.cap}
				x.open(st, leaves)
			}
			if st.err != nil {
				t.Fatalf("after %d items: %v", i+1, st.err)
			}
		}
		sorted := slices.Clone(items)
		slices.SortFunc(sorted, func(a, b Item) int { return a.compare(&b) })
		checkIndex(t, x, sorted)
		if st.err != nil {
			t.Fatal(st.err)
		}
	})
}

// TestStoredIndexRemove: an index whose items are added and removed
// (whole runs of them, as when a ban takes a key's records out of the set,
// and some put back, as when it is lifted), its writes stored later and
// in batches and reopened from the KV when all are stored, answers every
// rank, prefix, bound and range as the items left say, with its leaves
// emptied and filled again. Removing an absent item changes nothing.
func TestStoredIndexRemove(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		spread := rapid.SampledFrom([]uint64{1, 5, 1 << 40}).Draw(t, "spread")
		st := &testLeaves{}
		x := &Index{st: st, cap: rapid.IntRange(1, 3).Draw(t, "cache")}
		in := map[Item]bool{}
		next := 0
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 5).Draw(t, "op") {
			case 0, 1: // a run of new items
				for range rapid.IntRange(1, 400).Draw(t, "add") {
					it := synthItem(seed, next, spread)
					next++
					if !x.Insert(it) {
						t.Fatalf("item %d not new", next-1)
					}
					in[it] = true
				}
			case 2: // some leave: a few, most or all
				frac := rapid.SampledFrom([]float64{0.05, 0.5, 0.95, 1}).Draw(t, "frac")
				for i := range next {
					it := synthItem(seed, i, spread)
					if rapid.Float64Range(0, 1).Draw(t, "r") >= frac {
						continue
					}
					if got := x.Remove(it); got != in[it] {
						t.Fatalf("Remove of item %d: %v, want %v", i, got, in[it])
					}
					delete(in, it)
				}
			case 3: // some that left come back
				for i := range next {
					it := synthItem(seed, i, spread)
					if !in[it] && rapid.Bool().Draw(t, "back") {
						if !x.Insert(it) {
							t.Fatalf("item %d, removed, not inserted again", i)
						}
						in[it] = true
					}
				}
			case 4:
				st.ready()
				if rapid.Bool().Draw(t, "store") {
					st.store()
				}
			case 5: // everything stored, and the index opened again
				st.ready()
				for len(st.flight) > 0 {
					st.store()
				}
				leaves, m, err := readLeaves(&st.kv)
				if err != nil || m != len(in) {
					t.Fatalf("reopen: %d items, %v; want %d", m, err, len(in))
				}
				x = &Index{cap: x.cap}
				x.open(st, leaves)
			}
			if st.err != nil {
				t.Fatal(st.err)
			}
			items := slices.SortedFunc(maps.Keys(in), func(a, b Item) int { return a.compare(&b) })
			checkIndex(t, x, items)
			var all Agg
			for i := range items {
				all.addItem(&items[i])
			}
			if x.All() != all {
				t.Fatalf("All %v, want %v", x.All(), all)
			}
			if st.err != nil {
				t.Fatal(st.err)
			}
		}
	})
}

// TestStoredIndexDamaged: a leaf whose items in the KV do not match its
// count fails the read, with ErrDamaged.
func TestStoredIndexDamaged(t *testing.T) {
	st := &testLeaves{}
	x := &Index{st: st, cap: 1}
	for i := range 3 * leafMax {
		x.Insert(synthItem(1, i, 1<<40))
	}
	st.ready()
	st.store()
	leaves, _, err := readLeaves(&st.kv)
	if err != nil || len(leaves) < 3 {
		t.Fatalf("%d leaves, %v", len(leaves), err)
	}
	// Drop the second leaf's first item.
	st.kv.Apply([]Write{{Key: itemKey(tagItem, &leaves[1].lo), Delete: true}})
	x = &Index{cap: 1}
	x.open(st, leaves)
	x.Range(0, x.Len(), func(*Item) bool { return true })
	if !errors.Is(st.err, ErrDamaged) {
		t.Fatalf("reading a leaf missing an item: %v; want ErrDamaged", st.err)
	}
}

// countingLeaves counts the leaves read from the KV.
type countingLeaves struct {
	*testLeaves
	reads int
}

func (l *countingLeaves) items(lo Item, hi *Item, fn func(Item)) error {
	l.reads++
	return l.testLeaves.items(lo, hi, fn)
}

// BenchmarkSessionStoredIndex runs a session between two sets of 200,000
// records that differ by 100 recent records on each side, over indexes in
// memory and over indexes that keep their leaves in a KV (in memory here:
// the figure to watch is the leaf reads, each a KV scan of up to leafMax
// keys, which the store serves in tens of microseconds).
//
//	go test -run '^$' -bench SessionStoredIndex -benchtime 5x ./crdt
func BenchmarkSessionStoredIndex(b *testing.B) {
	const n, diff = 200_000, 100
	common := make([]Item, n-diff)
	for i := range common {
		common[i] = synthItem(7, i, 1<<40)
	}
	var only [2][]Item
	for side := range 2 {
		for i := range diff {
			it := synthItem(uint64(8+side), i, 1<<20)
			it.Time += 1 << 40 // recent: after the common ones
			only[side] = append(only[side], it)
		}
	}
	times := map[[32]byte]uint64{}
	for _, o := range only {
		for _, it := range o {
			times[it.Digest] = it.Time
		}
	}
	build := func(stored bool, side int) (*Index, *countingLeaves) {
		items := append(slices.Clone(common), only[side]...)
		slices.SortFunc(items, func(a, b Item) int { return a.compare(&b) })
		if !stored {
			var x Index
			x.load(items)
			return &x, nil
		}
		st := &countingLeaves{testLeaves: &testLeaves{}}
		x := &Index{st: st}
		for _, it := range items {
			x.Insert(it)
		}
		st.ready()
		st.store()
		leaves, _, err := readLeaves(&st.kv)
		if err != nil {
			b.Fatal(err)
		}
		x = &Index{}
		x.open(st, leaves)
		return x, st
	}
	for _, stored := range []bool{false, true} {
		name := "memory"
		if stored {
			name = "stored"
		}
		b.Run(name, func(b *testing.B) {
			reads := 0
			for range b.N {
				b.StopTimer()
				x0, st0 := build(stored, 0)
				x1, st1 := build(stored, 1)
				b.StartTimer()
				xs := [2]*Index{x0, x1}
				sides := [2]*Session{NewSession(x0, SyncParams{}), NewSession(x1, SyncParams{})}
				turn, push := sides[0].Begin(testSalt), []protocol.Digest(nil)
				from := 0
				for turns := 0; ; turns++ {
					to := 1 - from
					for _, d := range push {
						if err := sides[to].Accept(times[d], d); err != nil {
							b.Fatal(err)
						}
						xs[to].Insert(Item{Time: times[d], Digest: d})
					}
					if turn.Empty() || turns > 1000 {
						break
					}
					var err error
					if turn, push, err = sides[to].Receive(turn); err != nil {
						b.Fatal(err)
					}
					from = to
				}
				if x0.Len() != n+diff || x1.Len() != n+diff {
					b.Fatalf("after the session: %d and %d records; want %d each", x0.Len(), x1.Len(), n+diff)
				}
				if stored {
					reads += st0.reads + st1.reads
				}
			}
			b.ReportMetric(float64(reads)/float64(b.N), "leaf-reads/session")
		})
	}
}

// failingLeaves is a leaf store whose reads fail.
type failingLeaves struct{ *testLeaves }

func (l failingLeaves) items(Item, *Item, func(Item)) error {
	return errors.New("disk on fire")
}

// TestIndexFailedLeafRead: an index whose store fails to read a leaf not
// in memory (one holding items, and one left empty) reports the failure
// and answers without a panic: Insert and Remove add and take nothing, and
// no leaf comes into memory.
func TestIndexFailedLeafRead(t *testing.T) {
	var items []Item
	for i := range 3 * leafMax {
		items = append(items, synthItem(3, i, 1<<30))
	}
	slices.SortFunc(items, func(a, b Item) int { return a.compare(&b) })
	st := &testLeaves{}
	x := &Index{st: st}
	for _, it := range items {
		x.Insert(it)
	}
	// Empty the first leaf: it keeps its place.
	var first *inode
	x.eachLeaf(func(l *inode) {
		if first == nil {
			first = l
		}
	})
	for x.items(first) != nil && first.a.Count > 0 {
		x.Remove(first.items[0])
	}
	st.ready()
	st.store()
	for name, probe := range map[string]Item{
		"a leaf holding items": items[len(items)-1],
		"an empty leaf":        {}, // below every item: the first leaf's
	} {
		leaves, _, err := readLeaves(&st.kv)
		if err != nil {
			t.Fatal(err)
		}
		if leaves[0].a.Count != 0 || len(leaves) < 3 {
			t.Fatalf("%d leaves, the first holding %d items; want 3 or more, the first empty", len(leaves), leaves[0].a.Count)
		}
		fail := failingLeaves{&testLeaves{kv: st.kv}}
		y := &Index{}
		y.open(fail, leaves)
		n := y.Len()
		if y.Insert(probe) || fail.err == nil {
			t.Errorf("%s: Insert added an item to a leaf it could not read, or did not report the failure (%v)", name, fail.err)
		}
		fail.err = nil
		if y.Remove(items[len(items)-1]) || fail.err == nil {
			t.Errorf("%s: Remove took an item from a leaf it could not read, or did not report the failure (%v)", name, fail.err)
		}
		fail.err = nil
		_ = y.At(n - 1)
		_ = y.Below(protocol.Bound{Time: 1 << 62})
		y.Range(0, n, func(*Item) bool { return true })
		if fail.err == nil {
			t.Errorf("%s: the failed reads of At, Below and Range were not reported", name)
		}
		if y.Len() != n || y.loaded != 0 {
			t.Errorf("%s: %d items and %d leaves in memory; want %d and none", name, y.Len(), y.loaded, n)
		}
		y.eachLeaf(func(l *inode) {
			if l.loaded != nil {
				t.Errorf("%s: a leaf in memory after failed reads", name)
			}
		})
	}
}
