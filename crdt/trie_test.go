package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"

	"github.com/commons-p2p/commons/protocol"
)

// openTrie returns a State whose root trie is read from kv, which must
// hold total digests; the State holds no records, only digests added
// through addDigest.
func openTrie(t fataler, kv KV, total int) *State {
	s := newState(cid.Undef, kv, nil)
	if err := s.openRoot(total); err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// drawDigests returns n digests, each sharing a prefix of a drawn length
// (in nibbles, up to all but the last) with one of the bases: deep splits,
// leaves at the deepest level (63) and digests drawn twice.
func drawDigests(t *rapid.T, bases []protocol.Digest, n int) []protocol.Digest {
	rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
	lens := []int{0, 0, 1, 2, 3, 5, 12, 40, 61, 62, 63}
	base := bases[rapid.IntRange(0, len(bases)-1).Draw(t, "base")]
	shared := lens[rapid.IntRange(0, len(lens)-1).Draw(t, "shared")]
	out := make([]protocol.Digest, n)
	for i := range out {
		for j := 0; j < len(out[i]); j += 8 {
			binary.LittleEndian.PutUint64(out[i][j:], rng.Uint64())
		}
		for j := range shared {
			setNibble(&out[i], j, nibble(&base, j))
		}
	}
	return out
}

func digestCIDs(set map[protocol.Digest]bool) []cid.Cid {
	ds := slices.SortedFunc(maps.Keys(set), compareDigest)
	out := make([]cid.Cid, len(ds))
	for i, d := range ds {
		out[i] = d.CID()
	}
	return out
}

// TestTrieOnDisk checks the root trie whose leaves are in the KV against
// the in-memory trie it replaced (memTrie, which shares none of its code):
// digests are added in batches (many sharing long prefixes, so that leaves
// split deep and fill the deepest level); the writes of each batch are
// taken (Ready) and applied to the KV some steps later, in order; the root
// is asked for at random moments (which hashes leaves, and writes their
// hashes with the next Ready), or not; and the process may crash at any
// moment: the Readies not applied are lost, the trie is opened again from
// the KV, and the lost digests may be added again. Digests are removed
// too (doc.go, "Shrinking the set"), some of them added back later,
// so that inner nodes merge into leaves again at every depth. A clean stop
// may open the trie again from a start snapshot, which holds the hashes
// of the nodes hashed before it and not their leaves': the leaves' hashes
// it then reads from their stored summaries must never be those of a leaf
// changed since. After every step, the root (when asked) and the CIDs must
// be those of the set. A Ready writes the hashes Root computed a few at a
// time (trieSaveMax, drawn small): a clean stop takes Readies until none
// is left, and the leaves marked to save must be those Root hashed and
// nothing changed since, as many as the trie counts.
func TestTrieOnDisk(t *testing.T) {
	defer func(m, h int) { trieSaveMax, trieHashesMax = m, h }(trieSaveMax, trieHashesMax)
	rapid.Check(t, func(t *rapid.T) {
		trieSaveMax = rapid.SampledFrom([]int{1, 3, 16384}).Draw(t, "saveMax")
		trieHashesMax = rapid.SampledFrom([]int{0, 2, 4096}).Draw(t, "hashesMax")
		bases := drawDigests(t, []protocol.Digest{{}}, 3)
		kv := &MemKV{}
		s := openTrie(t, kv, 0)
		set := map[protocol.Digest]bool{}     // in s
		applied := map[protocol.Digest]bool{} // in kv
		type change struct {
			d     protocol.Digest
			added bool
		}
		type saved struct {
			r  *Ready
			cs []change
		}
		var flight []saved
		var unsaved []change
		var removed []protocol.Digest // once in the set, to add back
		add := func(ds []protocol.Digest) {
			for _, d := range ds {
				if !set[d] {
					set[d] = true
					s.addDigest(d)
					unsaved = append(unsaved, change{d, true})
				}
			}
		}
		remove := func(frac float64) {
			for _, d := range slices.SortedFunc(maps.Keys(set), compareDigest) {
				if rapid.Float64Range(0, 1).Draw(t, "r") < frac {
					delete(set, d)
					s.removeDigest(d)
					unsaved = append(unsaved, change{d, false})
					removed = append(removed, d)
				}
			}
		}
		check := func(when string) {
			ref := &memTrie{}
			for _, d := range slices.SortedFunc(maps.Keys(set), compareDigest) {
				ref.insert(d, 0)
			}
			if got, want := s.Root(), ref.root(); got != want {
				t.Fatalf("%s, %d digests: root %s, reference %s (err %v)", when, len(set), got, want, s.err)
			}
		}
		// drain takes Readies until the trie has nothing left to save,
		// each with at most trieSaveMax leaves that did not change.
		drain := func() []*Ready {
			var rs []*Ready
			for first := true; first || s.TrieUnsaved(); first = false {
				before := s.root.nUnsaved
				r, err := s.Ready()
				if err != nil {
					t.Fatalf("ready: %v", err)
				}
				if r == nil {
					if !first {
						t.Fatalf("no writes from a Ready, and %d leaves to save", s.root.nUnsaved)
					}
					continue
				}
				if !first {
					if k := countTag(r.Writes, tagTrieLeaf); k == 0 || k > trieSaveMax || k != before-s.root.nUnsaved {
						t.Fatalf("a Ready of hashes only: %d leaf summaries, %d marked before, %d after (at most %d a Ready)", k, before, s.root.nUnsaved, trieSaveMax)
					}
				}
				rs = append(rs, r)
			}
			return rs
		}
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 9: // a clean stop, and a start from a snapshot, hashed first or not
				if rapid.Bool().Draw(t, "hash") {
					_ = s.Root()
				}
				for i, r := range drain() {
					if i == 0 {
						flight = append(flight, saved{r, unsaved})
					} else {
						flight = append(flight, saved{r: r})
					}
				}
				for _, f := range flight {
					kv.Apply(f.r.Writes)
					s.Advance(f.r)
				}
				flight, unsaved = nil, nil
				applied = maps.Clone(set)
				s = trieFromSnapshot(t, kv, s)
			case 7: // some digests leave the set: a few, most or all
				remove([]float64{0.05, 0.5, 0.9, 1}[rapid.IntRange(0, 3).Draw(t, "frac")])
			case 8: // some that left come back
				if len(removed) > 0 {
					add(removed[:rapid.IntRange(0, len(removed)).Draw(t, "back")])
				}
			case 0, 1: // a batch
				add(drawDigests(t, bases, rapid.IntRange(1, 150).Draw(t, "n")))
			case 2: // the root
				check("live")
			case 3: // a save takes the writes
				r, err := s.Ready()
				if err != nil {
					t.Fatalf("ready: %v", err)
				}
				if r != nil {
					flight = append(flight, saved{r, unsaved})
					unsaved = nil
				}
			case 4: // some saves are applied, oldest first
				n := rapid.IntRange(0, len(flight)).Draw(t, "apply")
				for _, f := range flight[:n] {
					kv.Apply(f.r.Writes)
					for _, c := range f.cs {
						if c.added {
							applied[c.d] = true
						} else {
							delete(applied, c.d)
						}
					}
				}
				for _, f := range flight[:n] {
					s.Advance(f.r)
				}
				flight = flight[n:]
			case 5: // a crash
				var lost []protocol.Digest
				for _, f := range append(flight, saved{cs: unsaved}) {
					for _, c := range f.cs {
						if c.added {
							lost = append(lost, c.d)
						}
					}
				}
				flight, unsaved = nil, nil
				s = openTrie(t, kv, len(applied))
				set = maps.Clone(applied)
				if rapid.Bool().Draw(t, "replay") {
					add(lost)
				}
			case 6:
				if got, want := s.CIDs(), digestCIDs(set); !slices.Equal(got, want) {
					t.Fatalf("CIDs: %d, want %d", len(got), len(want))
				}
			}
			checkUnsaved(t, &s.root)
		}
		check("end")
		// A clean stop: everything applied, opened again.
		rs := drain()
		for _, f := range flight {
			kv.Apply(f.r.Writes)
		}
		for _, r := range rs {
			kv.Apply(r.Writes)
		}
		s = openTrie(t, kv, len(set))
		check("reopened")
		if got, want := s.CIDs(), digestCIDs(set); !slices.Equal(got, want) {
			t.Fatalf("CIDs after reopening: %d, want %d", len(got), len(want))
		}
	})
}

// trieKV returns a KV holding the derived state of a commons of n
// contributions and its genesis, all applied (with the leaves' hashes if
// hashed: the root was asked for before the writes were taken), and its
// records.
func trieKV(t *testing.T, n int, hashed bool) (cid.Cid, *MemKV, memRecords) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1}, 1, 1), 0)
	recs := memRecords{g.CID: g}
	kv := &MemKV{}
	s, err := Open(g.CID, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	bs := []*protocol.Block{g}
	for i := range n {
		r := &protocol.Record{Commons: g.CID, Time: protocol.HLC(1000 + i), Body: &protocol.Contribution{
			Title: fmt.Sprint("contribution ", i), Licence: protocol.Link{Cid: g.CID}, Provenance: protocol.ProvenanceVolunteer,
		}}
		r.Author = key(4).Public()
		blk, err := protocol.NewBlock(r)
		if err != nil {
			t.Fatal(err)
		}
		recs[blk.CID] = blk
		bs = append(bs, blk)
	}
	mustAdd(t, s, bs...)
	if hashed {
		_ = s.Root()
	}
	r, err := s.Ready()
	if err != nil {
		t.Fatal(err)
	}
	kv.Apply(r.Writes)
	return g.CID, kv, recs
}

// leafKeys returns the 'k' keys of kv and their values.
func leafKeys(kv *MemKV) (keys [][]byte, vals [][]byte) {
	_ = kv.Scan([]byte{tagTrieLeaf}, nil, func(k, v []byte) error {
		keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
		return nil
	})
	return keys, vals
}

// TestTrieDamaged: Open finds a root trie in the KV that is not as a State
// wrote it: the leaves' summaries must decode, hold what a leaf may hold,
// not overlap, make inner nodes that hold more than a leaf's worth, and
// add up to the records the counts say. A derived state written before
// the trie's leaves were kept (no 'r' or 'k' keys) is found so too.
func TestTrieDamaged(t *testing.T) {
	id, kv0, recs := trieKV(t, 300, true)
	if _, err := Open(id, kv0, recs); err != nil {
		t.Fatalf("open undamaged: %v", err)
	}
	keys, vals := leafKeys(kv0)
	if len(keys) < 2 || keys[0][1] != 1 {
		t.Fatalf("want leaves at depth 1, have %d leaves, the first %x", len(keys), keys[0])
	}
	count := func(v []byte) uint64 { n, _ := binary.Uvarint(v); return n }
	uv := func(n uint64, rest ...byte) []byte { return append(binary.AppendUvarint(nil, n), rest...) }
	var ws0 []Write // every 'k' key deleted
	for _, k := range keys {
		ws0 = append(ws0, Write{Key: k, Delete: true})
	}
	cases := []struct {
		name string
		ws   []Write
		why  string
	}{
		{"bad varint", []Write{{Key: keys[0], Value: []byte{0x80}}}, "does not decode"},
		{"trailing bytes", []Write{{Key: keys[0], Value: append(slices.Clone(vals[0]), 1)}}, "does not decode"},
		{"short hash", []Write{{Key: keys[0], Value: uv(count(vals[0]), 1, 2, 3)}}, "does not decode"},
		{"count 0", []Write{{Key: keys[0], Value: uv(0)}}, "holds 0"},
		{"count 65", []Write{{Key: keys[0], Value: uv(65)}}, "holds 65"},
		{"17 at depth 63", []Write{{Key: append([]byte{tagTrieLeaf, 63}, make([]byte, 32)...), Value: uv(17)}}, "holds 17"},
		{"depth 64", []Write{{Key: append([]byte{tagTrieLeaf, 64}, make([]byte, 32)...), Value: uv(1)}}, "not a key"},
		{"key length", []Write{{Key: []byte{tagTrieLeaf, 2, 0x10, 0}, Value: uv(1)}}, "not a key"},
		{"odd depth, low nibble", []Write{{Key: []byte{tagTrieLeaf, 3, 0x10, 0x01}, Value: uv(1)}}, "not a key"},
		{"no key", []Write{{Key: []byte{tagTrieLeaf}, Value: uv(1)}}, "not a key"},
		{"a top leaf too", []Write{{Key: []byte{tagTrieLeaf, 0}, Value: uv(1)}}, "overlaps"},
		{"under a leaf", []Write{{Key: []byte{tagTrieLeaf, 2, keys[0][2] | 0x03}, Value: uv(1)}}, "overlaps"},
		{"one more", []Write{{Key: keys[0], Value: uv(count(vals[0]) + 1)}}, "counts say"},
		{"one less", []Write{{Key: keys[0], Value: uv(count(vals[0]) - 1)}}, "counts say"},
		{"a leaf lost", []Write{{Key: keys[0], Delete: true}}, "counts say"},
		{"no trie", ws0, "counts say"},
		{"inner node of a leaf's worth", append(slices.Clone(ws0),
			Write{Key: []byte{tagTrieLeaf, 1, 0x00}, Value: uv(30)}, Write{Key: []byte{tagTrieLeaf, 1, 0x10}, Value: uv(30)}), "a leaf's worth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kv := &MemKV{}
			_ = kv0.Scan(nil, nil, func(k, v []byte) error {
				kv.Apply([]Write{{Key: k, Value: v}})
				return nil
			})
			kv.Apply(tc.ws)
			_, err := Open(id, kv, recs)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("open: %v; want ErrDamaged, %q", err, tc.why)
			}
		})
	}
	// A leaf whose hash is not known and whose records are not all there:
	// Open cannot tell, the root can (and the State is unusable then).
	t.Run("record lost", func(t *testing.T) {
		kv := &MemKV{}
		_ = kv0.Scan(nil, nil, func(k, v []byte) error {
			kv.Apply([]Write{{Key: k, Value: v}})
			return nil
		})
		kv.Apply([]Write{{Key: keys[0], Value: uv(count(vals[0]))}})
		var lost []byte
		_ = kv.Scan([]byte{tagRecord}, nil, func(k, _ []byte) error {
			if lost == nil && k[1]>>4 == keys[0][2]>>4 {
				lost = bytes.Clone(k)
			}
			return nil
		})
		kv.Apply([]Write{{Key: lost, Delete: true}})
		s, err := Open(id, kv, recs)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if r := s.Root(); r != (Root{}) {
			t.Fatalf("root %s, want the zero root", r)
		}
		if _, err := s.Ready(); !errors.Is(err, ErrDamaged) {
			t.Fatalf("ready: %v, want ErrDamaged", err)
		}
	})
}

// TestTrieReopenRoot: a State opened from its KV gives the root it gave
// before, whether the leaves' hashes were written (Root before Ready) or
// not, and Open reads no 'r' key.
func TestTrieReopenRoot(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		id, kv, recs := trieKV(t, 2000, hashed)
		counting := &countKV{KV: kv}
		s, err := Open(id, counting, recs)
		if err != nil {
			t.Fatal(err)
		}
		if counting.records != 0 {
			t.Fatalf("Open read %d 'r' keys", counting.records)
		}
		root := s.Root()
		if hashed && counting.records != 0 {
			t.Fatalf("Root read %d 'r' keys, with every leaf's hash in the KV", counting.records)
		}
		ref := &memTrie{}
		cs := s.CIDs()
		for _, c := range cs {
			d, _ := protocol.RecordDigest(c)
			ref.insert(d, 0)
		}
		if len(cs) != 2001 || root != ref.root() {
			t.Fatalf("hashed %v: %d CIDs, root %s, reference %s", hashed, len(cs), root, ref.root())
		}
	}
}

// countKV counts the 'r' keys scanned and the leaf summaries ('k' keys)
// read by Get.
type countKV struct {
	KV
	records, summaries int
}

func (c *countKV) Get(key []byte) ([]byte, error) {
	if len(key) > 0 && key[0] == tagTrieLeaf {
		c.summaries++
	}
	return c.KV.Get(key)
}

func (c *countKV) Scan(prefix, from []byte, fn func(k, v []byte) error) error {
	return c.KV.Scan(prefix, from, func(k, v []byte) error {
		if k[0] == tagRecord {
			c.records++
		}
		return fn(k, v)
	})
}

// countTag returns how many of ws have a key with tag.
func countTag(ws []Write, tag byte) int {
	n := 0
	for _, w := range ws {
		if w.Key[0] == tag {
			n++
		}
	}
	return n
}

// checkUnsaved fails t unless the leaves marked to save (trieInner.unsaved)
// are as many as rc counts, each with its hash known, none of them changed
// since the last Ready; and unless the nodes that hold room for their
// leaves' hashes know some, and are no more than rc counts.
func checkUnsaved(t fataler, rc *rootCache) {
	n, holding := 0, 0
	var walk func(x *trieInner, depth int, path protocol.Digest)
	walk = func(x *trieInner, depth int, path protocol.Digest) {
		if x.kids != nil && *x.kids == [16]*trieInner{} {
			t.Fatalf("an inner node holds room for inner children, and has none")
		}
		if (x.hashes == nil) != (x.known == 0) {
			t.Fatalf("an inner node knows leaf hashes %016b with room %v", x.known, x.hashes != nil)
		}
		if x.hashes != nil {
			holding++
		}
		for k := range 16 {
			setNibble(&path, depth, k)
			if x.kid(k) != nil {
				if x.unsaved&(1<<k) != 0 {
					t.Fatalf("an inner node marked as a leaf to save")
				}
				walk(x.kid(k), depth+1, path)
				continue
			}
			if x.unsaved&(1<<k) == 0 {
				continue
			}
			n++
			if x.known&(1<<k) == 0 || x.n[k] == 0 {
				t.Fatalf("a leaf marked to save without a hash, or empty")
			}
			if _, ok := rc.changed[leafKey(depth+1, &path)]; ok {
				t.Fatalf("a changed leaf marked to save")
			}
		}
	}
	if rc.top != nil {
		walk(rc.top, 0, protocol.Digest{})
	}
	if n != rc.nUnsaved {
		t.Fatalf("%d leaves marked to save, the trie counts %d", n, rc.nUnsaved)
	}
	if holding > rc.holding {
		t.Fatalf("%d inner nodes hold leaf hashes, the trie counts %d", holding, rc.holding)
	}
}

// TestTrieImportHoldsNoLeafHashes: a trie that grows with no root computed
// (an import) holds no room for its leaves' hashes in any inner node,
// however many splits it went through; a root computed then gives the
// nodes it hashed their leaves' hashes, the same root as the reference's;
// and a node gives them up once records came under all of its leaves.
func TestTrieImportHoldsNoLeafHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	digest := func() protocol.Digest { return randDigest(rng) }
	kv := &MemKV{}
	s := openTrie(t, kv, 0)
	ref := &memTrie{}
	add := func(n int) {
		for i := range n {
			d := digest()
			s.addDigest(d)
			ref.insert(d, 0)
			if i%1000 == 999 {
				r, err := s.Ready()
				if err != nil {
					t.Fatal(err)
				}
				kv.Apply(r.Writes)
				s.Advance(r)
			}
		}
	}
	// holding counts the inner nodes, and those that hold room for their
	// leaves' hashes.
	holding := func() (nodes, with int) {
		var walk func(x *trieInner)
		walk = func(x *trieInner) {
			nodes++
			if x.hashes != nil {
				with++
			}
			if (x.hashes == nil) != (x.known == 0) {
				t.Fatalf("an inner node knows leaf hashes %016b with room %v", x.known, x.hashes != nil)
			}
			for k := range 16 {
				if c := x.kid(k); c != nil {
					walk(c)
				}
			}
		}
		if s.root.top != nil {
			walk(s.root.top)
		}
		return nodes, with
	}
	add(30_000) // splits at the top, then at depth 1 and 2 (about 17,000 records)
	if nodes, with := holding(); nodes < 1+16+256 || with != 0 {
		t.Fatalf("after an import of 30,000: %d inner nodes, %d of them with room for leaf hashes; want at least 273, none", nodes, with)
	}
	if got, want := s.Root(), ref.root(); got != want {
		t.Fatalf("root %s, reference %s", got, want)
	}
	if nodes, with := holding(); with == 0 || with > nodes {
		t.Fatalf("after a root: %d of %d inner nodes with room for leaf hashes; want some", with, nodes)
	}
	add(30_000) // records under nearly every leaf, and more splits
	nodes, with := holding()
	if with*4 > nodes {
		t.Fatalf("after 30,000 more: %d of %d inner nodes still with room for leaf hashes", with, nodes)
	}
	if got, want := s.Root(), ref.root(); got != want {
		t.Fatalf("root %s, reference %s", got, want)
	}
}

// TestTrieDaemonHoldsFewLeafHashes: a daemon's trie holds the leaves'
// hashes of at most trieHashesMax inner nodes once its roots are computed
// and saved, however many nodes records came under since it started, and
// counts them exactly; its roots are the reference trie's all along. Four
// ways there: records coming one at a time, a root and a save after each,
// after an import and after a start from the leaves' summaries (which give
// every node its leaves' hashes); a save before the first root after such
// a start, which keeps the hashes of the nodes it has yet to hash (the
// root then reads the summaries of the records' leaves alone); and an import whose leaves' hashes go
// to the KV a few at a time.
func TestTrieDaemonHoldsFewLeafHashes(t *testing.T) {
	defer func(h, m int) { trieHashesMax, trieSaveMax = h, m }(trieHashesMax, trieSaveMax)
	trieHashesMax = 16
	rng := rand.New(rand.NewPCG(9, 10))
	digest := func() protocol.Digest { return randDigest(rng) }
	var (
		kv  *MemKV
		ref *memTrie
		s   *State
	)
	save := func() { settleAll(t, s, kv) }
	add := func(n int) {
		for range n {
			d := digest()
			s.addDigest(d)
			ref.insert(d, 0)
		}
	}
	checkRoot := func(when string) {
		t.Helper()
		if got, want := s.Root(), ref.root(); got != want {
			t.Fatalf("%s: root %s, reference %s", when, got, want)
		}
	}
	// holding returns how many inner nodes hold leaf hashes, and fails t
	// unless the trie counts as many.
	holding := func(when string) int {
		t.Helper()
		_, with := innerNodes(s.root.top)
		if with != s.root.holding {
			t.Fatalf("%s: %d inner nodes hold leaf hashes, the trie counts %d", when, with, s.root.holding)
		}
		return with
	}
	imported := func(saveMax int) {
		trieSaveMax = saveMax
		kv, ref = &MemKV{}, &memTrie{}
		s = openTrie(t, kv, 0)
		add(40_000)
		checkRoot("after the import")
		save()
		checkUnsaved(t, &s.root)
		if with := holding("after the import's saves"); with > trieHashesMax {
			t.Fatalf("after the import's saves (%d leaves a save): %d inner nodes hold leaf hashes, more than %d", saveMax, with, trieHashesMax)
		}
	}
	oneAtATime := func(start string) {
		touched := map[*trieInner]bool{}
		for i := range 3000 {
			d := digest()
			s.addDigest(d)
			ref.insert(d, 0)
			n := s.root.top
			for depth := 0; n.kid(nibble(&d, depth)) != nil; depth++ {
				n = n.kid(nibble(&d, depth))
			}
			touched[n] = true
			checkRoot(fmt.Sprintf("%s, record %d", start, i))
			save()
			checkUnsaved(t, &s.root)
			if with := holding(start); with > trieHashesMax {
				t.Fatalf("%s, record %d: %d inner nodes hold leaf hashes, more than %d", start, i, with, trieHashesMax)
			}
		}
		if len(touched) <= 4*trieHashesMax {
			t.Fatalf("%s: records came under %d inner nodes; want more than %d for the test to mean anything", start, len(touched), 4*trieHashesMax)
		}
	}
	reopen := func() {
		s = openTrie(t, kv, ref.count)
		if with := holding("opened"); with <= 4*trieHashesMax {
			t.Fatalf("opened from the leaves' summaries: %d inner nodes hold leaf hashes; want every node with leaves", with)
		}
	}

	imported(16384)
	oneAtATime("after the import")
	reopen()
	oneAtATime("opened from the leaves' summaries")

	reopen()
	add(100)
	save() // before the first root
	if with := holding("a save before the first root"); with <= 4*trieHashesMax {
		t.Fatalf("a save before the first root after a start: %d inner nodes hold leaf hashes; want those of every node it has yet to hash", with)
	}
	counting := &countKV{KV: kv}
	s.kv = counting
	checkRoot("the first root after a start and a save")
	if counting.summaries > 100 {
		t.Fatalf("the first root after a start and a save read %d leaf summaries; want at most those of the 100 records' leaves, the others' hashes held", counting.summaries)
	}
	s.kv = kv
	save()
	if with := holding("after the first root and a save"); with > trieHashesMax {
		t.Fatalf("after the first root and a save: %d inner nodes hold leaf hashes, more than %d", with, trieHashesMax)
	}

	imported(64)
	oneAtATime("after an import saved 64 leaves a save")
}

// innerNodes returns the number of inner nodes under n (n included), and
// of those that hold room for their leaves' hashes.
func innerNodes(n *trieInner) (nodes, withHashes int) {
	if n == nil {
		return 0, 0
	}
	nodes = 1
	if n.hashes != nil {
		withHashes = 1
	}
	for k := range 16 {
		a, b := innerNodes(n.kid(k))
		nodes, withHashes = nodes+a, withHashes+b
	}
	return nodes, withHashes
}

// randDigest returns a digest drawn from rng.
func randDigest(rng *rand.Rand) protocol.Digest {
	var d protocol.Digest
	for j := 0; j < len(d); j += 8 {
		binary.LittleEndian.PutUint64(d[j:], rng.Uint64())
	}
	return d
}
