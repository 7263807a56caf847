package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"

	"github.com/commons-p2p/commons/protocol"
)

// tagKV counts the keys of each tag that Scan and Get read.
type tagKV struct {
	KV
	read map[byte]int
}

func (c *tagKV) Get(key []byte) ([]byte, error) {
	c.read[key[0]]++
	return c.KV.Get(key)
}

func (c *tagKV) Scan(prefix, from []byte, fn func(k, v []byte) error) error {
	return c.KV.Scan(prefix, from, func(k, v []byte) error {
		c.read[k[0]]++
		return fn(k, v)
	})
}

// snapshotKeys returns the 'S' keys of kv.
func snapshotKeys(kv *MemKV) [][]byte {
	var out [][]byte
	_ = kv.Scan([]byte{tagSnapshot}, nil, func(k, _ []byte) error {
		out = append(out, bytes.Clone(k))
		return nil
	})
	return out
}

// writeSnapshot has s write a start snapshot into kv, and returns the pieces
// it handed over, in order; it fails the test if Snapshot fails.
func writeSnapshot(t fataler, s *State, kv *MemKV) (pieces [][]Write) {
	t.Helper()
	if _, err := s.Snapshot(func(ws []Write) error {
		kv.Apply(ws)
		pieces = append(pieces, ws)
		return nil
	}); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return pieces
}

// indexLeaves returns the bounds and summaries of an index's leaves.
func indexLeaves(x *Index) string {
	var b bytes.Buffer
	x.eachLeaf(func(l *inode) { fmt.Fprintf(&b, "%d/%x %d %x\n", l.lo.Time, l.lo.Digest, l.a.Count, l.a.Sum) })
	return b.String()
}

// checkAgainstScan checks that s, opened from a snapshot, holds what a
// State opened from the same KV without it holds: the same root (and the
// reference trie's), the same index leaves, items and sums.
func checkAgainstScan(t fataler, s *State, kv *MemKV, id cid.Cid, recs Records) {
	t.Helper()
	plain := &MemKV{}
	_ = kv.Scan(nil, nil, func(k, v []byte) error {
		if k[0] != tagSnapshot {
			plain.Apply([]Write{{Key: bytes.Clone(k), Value: bytes.Clone(v)}})
		}
		return nil
	})
	p, err := Open(id, plain, recs)
	if err != nil {
		t.Fatalf("open without the snapshot: %v", err)
	}
	if p.snapHeld {
		t.Fatalf("a State opened without a snapshot says it took one")
	}
	ref := &memTrie{}
	for _, c := range p.CIDs() {
		d, _ := protocol.RecordDigest(c)
		ref.insert(d, 0)
	}
	if s.Root() != p.Root() || s.Root() != ref.root() {
		t.Fatalf("roots: from the snapshot %s, from the leaves %s, reference %s", s.Root(), p.Root(), ref.root())
	}
	if a, b := indexLeaves(&s.idx), indexLeaves(&p.idx); a != b {
		t.Fatalf("index leaves differ:\nfrom the snapshot:\n%s\nfrom the KV:\n%s", a, b)
	}
	if s.idx.Len() != p.idx.Len() || s.idx.All() != p.idx.All() {
		t.Fatalf("index: %d items, %v; from the KV %d, %v", s.idx.Len(), s.idx.All(), p.idx.Len(), p.idx.All())
	}
	for r := 0; r < p.idx.Len(); r += 37 {
		if *s.idx.At(r) != *p.idx.At(r) || s.idx.Prefix(r) != p.idx.Prefix(r) {
			t.Fatalf("index rank %d: %v %v; from the KV %v %v", r, s.idx.At(r), s.idx.Prefix(r), p.idx.At(r), p.idx.Prefix(r))
		}
	}
}

// TestSnapshot: a State written out by Snapshot opens from it without
// reading a leaf of the root trie or of the index, and holds what a State
// opened from those leaves holds; the first writes after it delete it,
// and the State opened after them reads the leaves again and holds the
// same.
//
// A State whose root was computed before its snapshot opens with the
// hashes of its inner nodes, and no room for its leaves' hashes: its root
// then costs no read.
func TestSnapshot(t *testing.T) {
	for _, c := range []struct{ hashed, rooted bool }{{false, false}, {true, false}, {false, true}} {
		hashed := c.hashed
		t.Run(fmt.Sprintf("hashed %v rooted %v", hashed, c.rooted), func(t *testing.T) {
			id, kv, recs := trieKV(t, 3000, hashed)
			s, err := Open(id, kv, recs)
			if err != nil {
				t.Fatal(err)
			}
			if s.root.top == nil || s.idx.root.leaf() {
				t.Fatal("want inner nodes in the trie and the index")
			}
			var want Root
			if c.rooted {
				want = s.Root()
				if s.TrieUnsaved() {
					r, err := s.Ready()
					if err != nil {
						t.Fatal(err)
					}
					kv.Apply(r.Writes)
					s.Advance(r)
				}
			}
			if len(writeSnapshot(t, s, kv)) == 0 {
				t.Fatal("no snapshot written")
			}
			if wrote, err := s.Snapshot(func([]Write) error { t.Fatal("a write"); return nil }); wrote || err != nil {
				t.Fatalf("a second snapshot of the same state: %v, %v; want none", wrote, err)
			}

			counting := &tagKV{KV: kv, read: map[byte]int{}}
			s, err = Open(id, counting, recs)
			if err != nil {
				t.Fatal(err)
			}
			if !s.snapHeld || counting.read[tagTrieLeaf] != 0 || counting.read[tagIdxLeaf] != 0 {
				t.Fatalf("open: snapshot taken %v, %d trie leaves and %d index leaves read; want true, 0, 0", s.snapHeld, counting.read[tagTrieLeaf], counting.read[tagIdxLeaf])
			}
			if c.rooted {
				var walk func(n *trieInner)
				walk = func(n *trieInner) {
					if n.dirty || n.hashes != nil || n.known != 0 {
						t.Fatalf("an inner node opened dirty %v, with room for leaf hashes %v, known %x; want clean, none, 0", n.dirty, n.hashes != nil, n.known)
					}
					for k := range 16 {
						if c := n.kid(k); c != nil {
							walk(c)
						}
					}
				}
				walk(s.root.top)
				if got := s.Root(); got != want || counting.read[tagRecord] != 0 {
					t.Fatalf("root %s after reading %d digests; want %s after none", got, counting.read[tagRecord], want)
				}
			}
			checkAgainstScan(t, s, kv, id, recs)

			// More records: the writes delete the snapshot.
			var more []*protocol.Block
			for i := range 200 {
				r := &protocol.Record{Commons: id, Time: protocol.HLC(90000 + i), Body: &protocol.Contribution{
					Title: fmt.Sprint("more ", i), Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer,
				}}
				r.Author = key(4).Public()
				blk, err := protocol.NewBlock(r)
				if err != nil {
					t.Fatal(err)
				}
				recs[blk.CID] = blk
				more = append(more, blk)
			}
			mustAdd(t, s, more...)
			r, err := s.Ready()
			if err != nil {
				t.Fatal(err)
			}
			kv.Apply(r.Writes)
			s.Advance(r)
			if v, _ := kv.Get(snapshotKey(0)); v != nil {
				t.Fatal("the snapshot's head is left after the writes of new records")
			}
			root := s.Root()
			s, err = Open(id, kv, recs)
			if err != nil {
				t.Fatal(err)
			}
			if s.snapHeld || s.Root() != root || s.Len() != 3201 {
				t.Fatalf("reopened: snapshot %v, root %s (%d records); want none, %s (3201)", s.snapHeld, s.Root(), s.Len(), root)
			}
		})
	}
}

// TestSnapshotNotTaken: Open must not take a snapshot that is not of the
// state in the KV beside it (a version that knew nothing of snapshots
// added records after it was written), or that is damaged: a chunk
// missing, added or changed, or bytes whose checksum holds but which say
// what the KV does not. It reads the leaves instead, and the next writes
// delete the snapshot's keys.
func TestSnapshotNotTaken(t *testing.T) {
	id, kv0, recs := trieKV(t, 3000, true)
	s, err := Open(id, kv0, recs)
	if err != nil {
		t.Fatal(err)
	}
	var snapWrites []Write // head first, then the chunks in order
	for _, p := range writeSnapshot(t, s, &MemKV{}) {
		snapWrites = append(snapWrites, p...)
	}
	sortWrites(snapWrites)
	if len(snapWrites) < 3 {
		t.Fatalf("want a snapshot of several chunks (chunk size lowered?), have %d keys", len(snapWrites))
	}
	payload := func() []byte {
		var b []byte
		for _, w := range snapWrites[1:] {
			b = append(b, w.Value...)
		}
		return b
	}
	// rechunk returns a snapshot of payload b with a good checksum.
	rechunk := func(b []byte) []Write {
		head := binary.AppendUvarint(nil, 1)
		head = binary.BigEndian.AppendUint32(head, crc32.Checksum(b, crcTable))
		return []Write{{Key: snapshotKey(0), Value: head}, {Key: snapshotKey(1), Value: b}}
	}
	with := func(ws []Write, f func(w []Write) []Write) []Write {
		c := make([]Write, len(ws))
		for i, w := range ws {
			c[i] = Write{Key: bytes.Clone(w.Key), Value: bytes.Clone(w.Value)}
		}
		return f(c)
	}
	good := payload()
	countsAt := 1 + 1 // version, length of the counts
	if b := alter(t, good, func(*rootCache, []*inode) {}); !bytes.Equal(b, good) {
		t.Fatal("a snapshot decoded and encoded again is not the same bytes")
	}
	cases := map[string][]Write{
		"a chunk missing":  with(snapWrites, func(w []Write) []Write { return append(w[:1], w[2:]...) }),
		"a chunk too many": with(snapWrites, func(w []Write) []Write { return append(w, Write{Key: snapshotKey(uint32(len(w))), Value: []byte{1}}) }),
		"a flipped byte": with(snapWrites, func(w []Write) []Write {
			w[1].Value[len(w[1].Value)/2] ^= 0x10
			return w
		}),
		"no head":      with(snapWrites, func(w []Write) []Write { return w[1:] }),
		"a short head": with(snapWrites, func(w []Write) []Write { w[0].Value = w[0].Value[:2]; return w }),
		"a key far beyond": with(snapWrites, func(w []Write) []Write {
			return append(w, Write{Key: snapshotKey(1 << 31), Value: []byte{1}}, Write{Key: snapshotKey(math.MaxUint32), Value: []byte{1}})
		}),
		"a key of another length": with(snapWrites, func(w []Write) []Write {
			return append(w, Write{Key: []byte{tagSnapshot, 1, 2}, Value: []byte{1}})
		}),
		"no head, the chunks left": with(snapWrites, func(w []Write) []Write { return w[1:] }),
		"a head claiming more chunks": with(snapWrites, func(w []Write) []Write {
			w[0].Value = binary.BigEndian.AppendUint32(binary.AppendUvarint(nil, 1<<19), binary.BigEndian.Uint32(w[0].Value[len(w[0].Value)-4:]))
			return w
		}),
		"a head claiming more chunks than records, the last there": with(snapWrites, func(w []Write) []Write {
			w[0].Value = binary.BigEndian.AppendUint32(binary.AppendUvarint(nil, 1<<30), binary.BigEndian.Uint32(w[0].Value[len(w[0].Value)-4:]))
			return append(w, Write{Key: snapshotKey(1 << 30), Value: []byte{1}}) // 256 GiB, were it believed
		}),
		"other counts":    rechunk(func() []byte { b := bytes.Clone(good); b[countsAt]++; return b }()),
		"a later version": rechunk(func() []byte { b := bytes.Clone(good); b[0] = snapshotVersion + 1; return b }()),
		"version 1":       rechunk(func() []byte { b := bytes.Clone(good); b[0] = 1; return b }()),
		"truncated":       rechunk(good[:len(good)-5]),
		"a byte too many": rechunk(append(bytes.Clone(good), 0)),
		"a trie leaf's count": rechunk(alter(t, good, func(rc *rootCache, _ []*inode) {
			n := rc.top
			for n.kid(0) != nil {
				n = n.kid(0)
			}
			for k := range 16 {
				if n.n[k] > 1 {
					n.n[k]--
					n.known &^= 1 << k
					break
				}
			}
		})),
		"an index leaf out of order": rechunk(alter(t, good, func(_ *rootCache, ls []*inode) {
			ls[1].lo, ls[2].lo = ls[2].lo, ls[1].lo
		})),
		"an index leaf's count": rechunk(alter(t, good, func(_ *rootCache, ls []*inode) {
			ls[1].a.Count--
		})),
		"an index leaf's bound not zero": rechunk(alter(t, good, func(_ *rootCache, ls []*inode) {
			ls[0].lo.Time = 1
		})),
		"no index leaves": rechunk(alter(t, good, func(_ *rootCache, ls []*inode) {
			clear(ls)
		})),
	}
	// The case a version without snapshots leaves: the snapshot, then
	// the writes of more records, which do not delete it.
	stale := &MemKV{}
	kv0.Scan(nil, nil, func(k, v []byte) error {
		stale.Apply([]Write{{Key: bytes.Clone(k), Value: bytes.Clone(v)}})
		return nil
	})
	s2, err := Open(id, stale, recs)
	if err != nil {
		t.Fatal(err)
	}
	blk := contribution(t, id, id, 99999, 4, "after the snapshot")
	recs[blk.CID] = blk
	mustAdd(t, s2, blk)
	r2, err := s2.Ready()
	if err != nil {
		t.Fatal(err)
	}
	stale.Apply(r2.Writes)
	stale.Apply(snapWrites)

	for name, ws := range cases {
		t.Run(name, func(t *testing.T) {
			kv := &MemKV{}
			kv0.Scan(nil, nil, func(k, v []byte) error {
				kv.Apply([]Write{{Key: bytes.Clone(k), Value: bytes.Clone(v)}})
				return nil
			})
			kv.Apply(ws)
			check(t, kv, id, recs)
		})
	}
	t.Run("left by a version without snapshots", func(t *testing.T) { check(t, stale, id, recs) })
}

// alter decodes the snapshot bytes b, lets f change them, and encodes
// them again (the index leaves f sets to nil are left out).
func alter(t *testing.T, b []byte, f func(rc *rootCache, leaves []*inode)) []byte {
	t.Helper()
	var rc rootCache
	var leaves []*inode
	d := snapDecoder{b: b}
	d.byte()
	counts := d.bytes(int(d.uvarint()))
	if !decodeSnapshot(b, counts, &rc, &leaves) || rc.top == nil || len(leaves) < 3 {
		t.Fatalf("the snapshot does not decode, or has no inner trie node or fewer than 3 index leaves")
	}
	f(&rc, leaves)
	var kept []*inode
	for _, l := range leaves {
		if l != nil {
			kept = append(kept, l)
		}
	}
	return encodeSnapshot(counts, &rc, kept)
}

// check opens kv, whose snapshot must not be taken, and checks the State
// and that the next writes delete the snapshot's keys.
func check(t *testing.T, kv *MemKV, id cid.Cid, recs memRecords) {
	t.Helper()
	s, err := Open(id, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	if s.snapHeld {
		t.Fatal("the snapshot was taken")
	}
	checkAgainstScan(t, s, kv, id, recs)
	blk := contribution(t, id, id, 123456, 5, "after the open")
	recs[blk.CID] = blk
	mustAdd(t, s, blk)
	r, err := s.Ready()
	if err != nil {
		t.Fatal(err)
	}
	kv.Apply(r.Writes)
	s.Advance(r)
	if v, _ := kv.Get(snapshotKey(0)); v != nil {
		t.Fatal("the snapshot's head is left after the next writes")
	}
	// The next snapshot takes the place of every key the old one left.
	pieces := writeSnapshot(t, s, kv)
	if last := pieces[len(pieces)-1]; len(last) != 1 || !bytes.Equal(last[0].Key, snapshotKey(0)) || last[0].Delete {
		t.Fatalf("the last piece of the snapshot is %d writes, the first to %x; want the head alone", len(last), last[0].Key)
	}
	for _, p := range pieces {
		seen := map[string]bool{}
		for _, w := range p {
			if seen[string(w.Key)] {
				t.Fatalf("key %x twice in one piece", w.Key)
			}
			seen[string(w.Key)] = true
		}
	}
	ks := snapshotKeys(kv)
	for i, k := range ks {
		if !bytes.Equal(k, snapshotKey(uint32(i))) {
			t.Fatalf("after a new snapshot, snapshot key %d is %x", i, k)
		}
	}
	if s, err = Open(id, kv, recs); err != nil || !s.snapHeld {
		t.Fatalf("the new snapshot (%d keys) was not taken: %v", len(ks), err)
	}
}

// TestSnapshotTrie: the root trie, built by adding and removing digests
// that share long prefixes (inner nodes down to the deepest level, leaves
// hashed or not), comes back from its encoding node for node.
func TestSnapshotTrie(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bases := drawDigests(t, []protocol.Digest{{}}, 3)
		s := openTrie(t, &MemKV{}, 0)
		in := map[protocol.Digest]bool{}
		for range rapid.IntRange(1, 4).Draw(t, "batches") {
			for _, d := range drawDigests(t, bases, rapid.IntRange(1, 1000).Draw(t, "n")) {
				if !in[d] {
					in[d] = true
					s.addDigest(d)
				}
			}
		}
		frac := rapid.Float64Range(0, 1).Draw(t, "remove")
		for _, d := range slices.SortedFunc(maps.Keys(in), compareDigest) {
			if rapid.Float64Range(0, 1).Draw(t, "r") < frac {
				s.removeDigest(d)
			}
		}
		if rapid.Bool().Draw(t, "hash") {
			_ = s.Root()
		}
		if s.root.top == nil {
			return
		}
		b := appendInner(nil, s.root.top)
		d := snapDecoder{b: b}
		n := d.inner(0)
		if d.bad || len(d.b) != 0 {
			t.Fatalf("decoding: bad %v, %d bytes left", d.bad, len(d.b))
		}
		if err := countInner(n); err != nil {
			t.Fatal(err)
		}
		var same func(a, b *trieInner, depth int)
		same = func(a, b *trieInner, depth int) {
			// A node's own hash, when known, takes its leaves' hashes'
			// place: they are needed only to hash it.
			want := a.known
			if !a.dirty {
				want = 0
			}
			if a.count != b.count || a.n != b.n || b.known != want || a.dirty != b.dirty || !a.dirty && a.hash != b.hash {
				t.Fatalf("depth %d: count %d/%d, leaves %v/%v, known %x/%x (want %x), dirty %v/%v, hash %x/%x", depth, a.count, b.count, a.n, b.n, a.known, b.known, want, a.dirty, b.dirty, a.hash, b.hash)
			}
			if (b.known == 0) != (b.hashes == nil) {
				t.Fatalf("depth %d: room for leaf hashes %v, known %x", depth, b.hashes != nil, b.known)
			}
			for k := range 16 {
				if b.known&(1<<k) != 0 && a.hashes[k] != b.hashes[k] {
					t.Fatalf("depth %d nibble %d: hash %x/%x", depth, k, a.hashes[k], b.hashes[k])
				}
				if (a.kid(k) == nil) != (b.kid(k) == nil) {
					t.Fatalf("depth %d nibble %d: inner %v/%v", depth, k, a.kid(k) != nil, b.kid(k) != nil)
				}
				if a.kid(k) != nil {
					same(a.kid(k), b.kid(k), depth+1)
				}
			}
		}
		same(s.root.top, n, 0)
	})
}

// TestSnapshotCrash: records come in batches; each batch's writes are
// applied at once or later, or lost in a crash; the State may stop
// cleanly, writing a snapshot or not. After every start the State holds
// the root of the records whose writes were applied (memTrie, which shares
// no code with either path) and what a State opened from the leaves holds,
// and a start right after a snapshot takes it. Sets run to a few thousand
// records, so that the trie and the index have inner nodes.
func TestSnapshotCrash(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := genesisBlock(t, manifest([]int{0}, 1, []int{1}, 1, 1), 0)
		id := g.CID
		recs := memRecords{g.CID: g}
		kv := &MemKV{}
		s := open(t, id, kv, recs)
		mustAdd(t, s, g)
		type saved struct {
			r  *Ready
			cs []cid.Cid
		}
		var flight []saved
		var unsaved []cid.Cid
		applied := map[cid.Cid]bool{}
		next := 0
		save := func() {
			for _, f := range flight {
				kv.Apply(f.r.Writes)
				s.Advance(f.r)
				for _, c := range f.cs {
					applied[c] = true
				}
			}
			flight = nil
		}
		take := func() {
			r, err := s.Ready()
			if err != nil {
				t.Fatalf("ready: %v", err)
			}
			if r != nil {
				flight = append(flight, saved{r, unsaved})
				unsaved = nil
			}
		}
		unsaved = append(unsaved, g.CID)
		reopen := func(wantSnapshot bool) {
			s = open(t, id, kv, recs)
			if wantSnapshot && !s.FromSnapshot() {
				t.Fatalf("Open did not take the snapshot written just before")
			}
			ref := &memTrie{}
			for c := range applied {
				d, _ := protocol.RecordDigest(c)
				ref.insert(d, 0)
			}
			if s.Len() != len(applied) || s.Root() != ref.root() {
				t.Fatalf("reopened (snapshot %v): %d records, root %s; the applied records: %d, %s", s.FromSnapshot(), s.Len(), s.Root(), len(applied), ref.root())
			}
			checkAgainstScan(t, s, kv, id, recs)
		}
		for range rapid.IntRange(1, 8).Draw(t, "steps") {
			n := rapid.IntRange(1, 400).Draw(t, "batch")
			var bs []*protocol.Block
			for range n {
				r := &protocol.Record{Commons: id, Time: protocol.HLC(1000 + next), Body: &protocol.Contribution{
					Title: fmt.Sprint("c", next), Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer,
				}}
				next++
				r.Author = key(4).Public()
				blk, err := protocol.NewBlock(r)
				if err != nil {
					t.Fatalf("block: %v", err)
				}
				recs[blk.CID] = blk
				bs = append(bs, blk)
				unsaved = append(unsaved, blk.CID)
			}
			mustAdd(t, s, bs...)
			if rapid.Bool().Draw(t, "root") {
				_ = s.Root() // hashes leaves: their hashes go with the next writes
			}
			take()
			switch rapid.IntRange(0, 4).Draw(t, "then") {
			case 0: // a save
				save()
			case 1: // the writes stay in flight
			case 2: // a crash: what is in flight is lost
				flight, unsaved = nil, nil
				reopen(false)
			case 3: // a clean stop with a snapshot
				save()
				writeSnapshot(t, s, kv)
				reopen(true)
			case 4: // a clean stop without one
				save()
				reopen(false)
			}
		}
	})
}

// TestSnapshotInnerBytes: an inner node's bytes decode only in the forms
// Snapshot writes: a node's own hash or its leaves' hashes, never both.
func TestSnapshotInnerBytes(t *testing.T) {
	h := bytes.Repeat([]byte{7}, 32)
	node := func(head []byte, first ...byte) []byte {
		b := append(bytes.Clone(head), first...)
		return append(b, make([]byte, 15)...) // nibbles 1..15: nothing
	}
	clean := append([]byte{1}, h...)
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"clean, a leaf's count", node(clean, 2, 5), true},
		{"dirty, a leaf's count and hash", node([]byte{0}, append([]byte{3, 5}, h...)...), true},
		{"clean, a leaf's hash", node(clean, append([]byte{3, 5}, h...)...), false},
		{"a node's mark neither 0 nor 1", node([]byte{2}, 2, 5), false},
		{"a node's hash cut short", []byte{1, 7, 7}, false},
		{"a leaf's hash cut short", []byte{0, 3, 5, 7}, false},
	} {
		d := snapDecoder{b: c.b}
		n := d.inner(0)
		if ok := !d.bad && len(d.b) == 0; ok != c.ok {
			t.Errorf("%s: decoded %v, want %v", c.name, ok, c.ok)
			continue
		}
		if c.ok && (n.n[0] != 5 || n.dirty == (c.b[0] == 1) || (n.known != 0) != (n.hashes != nil)) {
			t.Errorf("%s: count %d, dirty %v, known %x, room for hashes %v", c.name, n.n[0], n.dirty, n.known, n.hashes != nil)
		}
	}
}

// trieFromSnapshot returns a State over kv whose root trie is s's, through
// the snapshot's encoding of it (the rest of a snapshot is tested above).
func trieFromSnapshot(t fataler, kv KV, s *State) *State {
	ns := newState(s.id, kv, nil)
	rc := &s.root
	if rc.top == nil {
		ns.root.topN, ns.root.topKnown, ns.root.topHash = rc.topN, rc.topKnown, rc.topHash
		return ns
	}
	d := snapDecoder{b: appendInner(nil, rc.top)}
	n := d.inner(0)
	if d.bad || len(d.b) != 0 {
		t.Fatalf("the trie's snapshot does not decode")
	}
	if err := countInner(n); err != nil {
		t.Fatalf("%v", err)
	}
	ns.root.top, ns.root.holding = n, d.holding
	return ns
}

// TestSnapshotTrieReads: a record under a node taken from a snapshot costs
// the next root about the reads it costs a trie opened from its leaves
// (each other leaf's hash is read from its summary, one key, not from its
// digests), and no more writes.
func TestSnapshotTrieReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	digest := func() (d protocol.Digest) {
		for j := 0; j < len(d); j += 8 {
			binary.LittleEndian.PutUint64(d[j:], rng.Uint64())
		}
		return d
	}
	base := &MemKV{}
	s := openTrie(t, base, 0)
	const n = 50_000
	for range n {
		s.addDigest(digest())
	}
	_ = s.Root()
	r, err := s.Ready()
	if err != nil {
		t.Fatal(err)
	}
	base.Apply(r.Writes)
	s.Advance(r)
	var more []protocol.Digest
	for range 200 {
		more = append(more, digest())
	}
	type cost struct{ digests, writes int }
	costs := map[bool]cost{}
	for _, snap := range []bool{false, true} {
		kv := &tagKV{KV: &MemKV{}, read: map[byte]int{}}
		_ = base.Scan(nil, nil, func(k, v []byte) error {
			kv.KV.(*MemKV).Apply([]Write{{Key: bytes.Clone(k), Value: bytes.Clone(v)}})
			return nil
		})
		var ns *State
		if snap {
			ns = trieFromSnapshot(t, kv, s)
		} else {
			ns = openTrie(t, kv, n)
		}
		if got := ns.RootLeaves(); snap && got != 0 {
			t.Fatalf("from a snapshot of a hashed trie: %d leaves to look up for a root; want 0", got)
		}
		clear(kv.read)
		for _, d := range more {
			ns.addDigest(d)
		}
		if got := ns.RootLeaves(); got == 0 {
			t.Fatalf("snapshot %v: records added, and no leaf to look up for a root", snap)
		}
		_ = ns.Root()
		if got := ns.RootLeaves(); got != 0 {
			t.Fatalf("snapshot %v: %d leaves to look up after a root; want 0", snap, got)
		}
		r, err := ns.Ready()
		if err != nil {
			t.Fatal(err)
		}
		costs[snap] = cost{kv.read[tagRecord], len(r.Writes)}
	}
	t.Logf("200 digests added to %d: from the leaves, %+v; from a snapshot, %+v", n, costs[false], costs[true])
	if a, b := costs[true], costs[false]; a.digests > b.digests*3/2 || a.writes > b.writes {
		t.Errorf("from a snapshot: %d digests read, %d writes; from the leaves %d and %d", a.digests, a.writes, b.digests, b.writes)
	}
}

// cloneKV returns a copy of kv.
func cloneKV(kv *MemKV) *MemKV {
	var ws []Write
	_ = kv.Scan(nil, nil, func(k, v []byte) error {
		ws = append(ws, Write{Key: bytes.Clone(k), Value: bytes.Clone(v)})
		return nil
	})
	c := &MemKV{}
	c.Apply(ws)
	return c
}

// settle applies s's pending writes to kv, and reports whether there were
// any.
func settle(t fataler, s *State, kv *MemKV) bool {
	t.Helper()
	r, err := s.Ready()
	if err != nil {
		t.Fatalf("ready: %v", err)
	}
	if r != nil {
		kv.Apply(r.Writes)
		s.Advance(r)
	}
	return r != nil
}

// settleAll settles s, then again while the trie has leaves' hashes to
// save (at most trieSaveMax a Ready).
func settleAll(t fataler, s *State, kv *MemKV) {
	t.Helper()
	settle(t, s, kv)
	for s.TrieUnsaved() {
		settle(t, s, kv)
	}
}

// TestSnapshotCutShort: a snapshot is handed over in pieces of bounded
// size, its head alone and last. One cut short at any piece (the commit
// failed, or the process stopped) is not taken by the next Open, which
// reads the leaves and holds the same state; and the next snapshot, by the
// same State or by one opened after, leaves exactly its own keys, and is
// taken. Both from a KV with no snapshot and from one holding a damaged
// one (whose head the first piece deletes) and a stray key far beyond.
func TestSnapshotCutShort(t *testing.T) {
	defer func(p int) { snapPiece = p }(snapPiece)
	snapPiece = 4 * snapChunk
	id, kv0, recs := trieKV(t, 3000, true)
	var more []*protocol.Block
	for i := range 300 {
		blk := contribution(t, id, id, protocol.HLC(200000+i), 6, fmt.Sprint("more ", i))
		recs[blk.CID] = blk
		more = append(more, blk)
	}
	// grown opens kv and adds more records, whose writes (with the hashes
	// of the trie leaves they change, under inner nodes not hashed) it
	// applies: a snapshot of it is longer than once its root is hashed.
	grown := func(t *testing.T, kv *MemKV) *State {
		t.Helper()
		s, err := Open(id, kv, recs)
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, s, more...)
		settle(t, s, kv)
		return s
	}
	// damaged holds kv0's state and a snapshot that Open does not take:
	// its head's checksum is wrong.
	damaged := cloneKV(kv0)
	damagedHead := binary.BigEndian.AppendUint32(binary.AppendUvarint(nil, 3), 12345)
	damaged.Apply([]Write{
		{Key: snapshotKey(0), Value: damagedHead},
		{Key: snapshotKey(1), Value: []byte{1}}, {Key: snapshotKey(2), Value: []byte{2}}, {Key: snapshotKey(3), Value: []byte{3}},
		{Key: snapshotKey(1 << 30), Value: []byte{4}}, // were the keys up to it deleted one by one...
	})
	stop := errors.New("disk full")
	for _, c := range []struct {
		name string
		open func(t *testing.T) (*State, *MemKV)
	}{
		{"no snapshot before", func(t *testing.T) (*State, *MemKV) { kv := cloneKV(kv0); return grown(t, kv), kv }},
		{"a damaged snapshot before", func(t *testing.T) (*State, *MemKV) {
			kv := cloneKV(damaged)
			s, err := Open(id, kv, recs)
			if err != nil || s.snapHeld || !s.snapHead {
				t.Fatalf("open: snapshot taken %v, head noted %v, %v; want false, true, nil", s.snapHeld, s.snapHead, err)
			}
			return s, kv
		}},
		{"a stray key alone", func(t *testing.T) (*State, *MemKV) {
			kv := cloneKV(kv0)
			kv.Apply([]Write{{Key: snapshotKey(1 << 22), Value: []byte{1}}})
			return grown(t, kv), kv
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, kv := c.open(t)
			pieces := writeSnapshot(t, s, kv)
			if len(pieces) < 4 {
				t.Fatalf("%d pieces; want at least 4 (piece size raised?)", len(pieces))
			}
			chunks := 0
			for i, p := range pieces {
				size := 0
				for _, w := range p {
					size += len(w.Value)
					if !w.Delete && len(w.Key) == 5 && binary.BigEndian.Uint32(w.Key[1:]) > 0 {
						chunks++
					}
				}
				if size >= snapPiece+snapChunk || len(p) > snapPiece/16+1 {
					t.Fatalf("piece %d: %d writes of %d bytes; want under %d bytes and at most %d writes", i, len(p), size, snapPiece+snapChunk, snapPiece/16+1)
				}
			}
			if all := len(slices.Concat(pieces...)); all > chunks+8 {
				t.Fatalf("%d writes for a snapshot of %d chunks and a few stray keys", all, chunks)
			}
			exactly(t, id, kv, recs)
			shorter := false // a second snapshot shorter than what the first wrote
			for cut := range pieces {
				t.Run(fmt.Sprint("cut at piece ", cut), func(t *testing.T) {
					s, kv := c.open(t)
					n, wrote := 0, uint32(0)
					ok, err := s.Snapshot(func(ws []Write) error {
						if n == cut {
							return stop
						}
						n++
						for _, w := range ws {
							if !w.Delete && len(w.Key) == 5 {
								wrote = max(wrote, binary.BigEndian.Uint32(w.Key[1:]))
							}
						}
						kv.Apply(ws)
						return nil
					})
					if ok || !errors.Is(err, stop) {
						t.Fatalf("Snapshot cut short: %v, %v; want false, %v", ok, err, stop)
					}
					if v, _ := kv.Get(snapshotKey(0)); v != nil && (cut > 0 || !bytes.Equal(v, damagedHead)) {
						t.Fatalf("a head %x after a snapshot cut at piece %d", v, cut)
					}
					again := cloneKV(kv)
					reopened, err := Open(id, again, recs)
					if err != nil {
						t.Fatal(err)
					}
					if reopened.snapHeld {
						t.Fatal("a snapshot cut short was taken")
					}
					checkAgainstScan(t, reopened, again, id, recs)

					// The State whose snapshot was cut short hashes its
					// trie (a snapshot of it is shorter: no leaf hashes),
					// and writes one.
					_ = s.Root()
					settle(t, s, kv)
					writeSnapshot(t, s, kv)
					if len(snapshotKeys(kv))-1 < int(wrote) {
						shorter = true
					}
					exactly(t, id, kv, recs)
					settle(t, reopened, again) // the hashes its check computed
					writeSnapshot(t, reopened, again)
					exactly(t, id, again, recs)
				})
			}
			if c.name == "no snapshot before" && !shorter && !t.Failed() {
				t.Error("no snapshot after one cut short was shorter than the part written: the test lost its point")
			}
		})
	}
}

// TestSnapshotHeadCommitFailed: a commit can fail after its writes
// lasted. If that was the head's, the State, used on, must delete it with
// its next writes, as after any snapshot.
func TestSnapshotHeadCommitFailed(t *testing.T) {
	id, kv, recs := trieKV(t, 3000, true)
	s, err := Open(id, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("disk full")
	ok, err := s.Snapshot(func(ws []Write) error {
		kv.Apply(ws)
		if len(ws) == 1 && bytes.Equal(ws[0].Key, snapshotKey(0)) {
			return stop
		}
		return nil
	})
	if ok || !errors.Is(err, stop) {
		t.Fatalf("Snapshot: %v, %v; want false, %v", ok, err, stop)
	}
	blk := contribution(t, id, id, 300000, 6, "after")
	recs[blk.CID] = blk
	mustAdd(t, s, blk)
	settle(t, s, kv)
	if v, _ := kv.Get(snapshotKey(0)); v != nil {
		t.Fatal("the head of a snapshot is left after the writes of a record added after it")
	}
}

// exactly checks that kv holds the keys of one snapshot, 'S' 0 to n, and
// that Open takes it.
func exactly(t *testing.T, id cid.Cid, kv *MemKV, recs memRecords) {
	t.Helper()
	ks := snapshotKeys(kv)
	for i, k := range ks {
		if !bytes.Equal(k, snapshotKey(uint32(i))) {
			t.Fatalf("snapshot key %d of %d is %x", i, len(ks), k)
		}
	}
	s, err := Open(id, kv, recs)
	if err != nil || !s.snapHeld {
		t.Fatalf("the snapshot (%d keys) was not taken: %v", len(ks), err)
	}
	checkAgainstScan(t, s, kv, id, recs)
}

// TestLeafHashesInPieces: after a root of a state opened without its
// leaves' hashes, the Readies write those hashes a bounded number at a
// time; a snapshot waits until all are written (it would otherwise leave
// them out of the KV, where the nodes it holds the hashes of read them
// once a record comes); and a state opened again finds every leaf's hash
// stored: its root reads no record key.
func TestLeafHashesInPieces(t *testing.T) {
	defer func(m int) { trieSaveMax = m }(trieSaveMax)
	trieSaveMax = 7
	id, kv, recs := trieKV(t, 3000, false)
	s, err := Open(id, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Root()
	leaves := s.root.nUnsaved
	if leaves <= 2*trieSaveMax {
		t.Fatalf("%d leaves hashed; want more than two Readies' worth", leaves)
	}
	readies := 0
	for s.TrieUnsaved() {
		if _, err := s.Snapshot(func([]Write) error { t.Fatal("a snapshot with leaf hashes to write"); return nil }); err == nil {
			t.Fatalf("a snapshot taken with %d leaf hashes not written", s.root.nUnsaved)
		}
		r, err := s.Ready()
		if err != nil || r == nil {
			t.Fatalf("ready: %v, %v, with %d leaf hashes to write", r, err, s.root.nUnsaved)
		}
		if k := countTag(r.Writes, tagTrieLeaf); k > trieSaveMax || k != len(r.Writes) {
			t.Fatalf("a Ready of %d writes, %d of them leaf summaries; want only those, at most %d", len(r.Writes), k, trieSaveMax)
		}
		kv.Apply(r.Writes)
		s.Advance(r)
		readies++
	}
	if wantN := (leaves + trieSaveMax - 1) / trieSaveMax; readies != wantN {
		t.Fatalf("%d Readies for %d leaves; want %d", readies, leaves, wantN)
	}
	if len(writeSnapshot(t, s, kv)) == 0 {
		t.Fatal("no snapshot written once the hashes were")
	}
	counting := &tagKV{KV: kv, read: map[byte]int{}}
	ns := openTrie(t, counting, s.Len())
	if got := ns.Root(); got != want {
		t.Fatalf("root opened again %s, want %s", got, want)
	}
	if n := counting.read[tagRecord]; n != 0 {
		t.Fatalf("the root opened again read %d record keys; want none: every leaf's hash stored", n)
	}
}
