package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// rootPrefix begins the bytes the state root hashes.
const rootPrefix = "commons/crdt/root/v2\n"

// trieLeafMax is the most digests a trie leaf holds; one more splits it.
const trieLeafMax = 64

// trieMaxDepth is the depth (in nibbles) of the deepest trie nodes, which
// are leaves whatever they hold (at most 16 digests: one nibble is left).
const trieMaxDepth = 2*protocol.DigestSize - 1

// Root is the state root: a hash of the set of record digests through a
// canonical hash trie (see the package doc for the exact bytes). Two states
// have equal roots exactly when they hold the same records.
type Root [sha256.Size]byte

// String returns the root in hex.
func (r Root) String() string { return hex.EncodeToString(r[:]) }

// The root trie (package doc, "State root") is a 16-ary trie over the
// record digests: a node at depth d holds the digests that share its first
// d nibbles; it is a leaf if it holds at most trieLeafMax of them (or d is
// trieMaxDepth), else an inner node with one child per value of nibble d.
// The shape depends on the set alone, not on the order of insertion.
//
// Memory holds the inner nodes only, each with a summary of its leaf
// children: their counts and, when known, their hashes. The digests are in
// the KV, one 'r' key each, and each leaf's summary under its 'k' key
// (persist.go), from which Open rebuilds the inner nodes without reading
// the digests. A leaf's digests are read (one scan of its 'r' keys, with
// what is pending or in flight) only when its hash is needed and unknown,
// or when it splits (the leaves a split makes are read again when their
// hash is needed: see build). A node opened from a start snapshot with its own hash
// knows none of its leaves' hashes, and holds no room for them, until a
// digest under it makes it dirty: at 10,000,000 records, that is most of
// the trie's memory after a start.
type trieInner struct {
	count   int                    // digests under the node
	hash    [sha256.Size]byte      // its hash, unless dirty
	dirty   bool                   // a digest was added under it since hash
	known   uint16                 // the leaf children whose hash is in hashes, one bit each
	unsaved uint16                 // of those, the ones Root hashed whose summary in the KV lacks it
	n       [16]uint8              // the leaf children's counts (0: an inner child, or none)
	kids    *[16]*trieInner        // the inner children; nil while there are none
	hashes  *[16][sha256.Size]byte // nil while known is 0
}

// kid returns n's inner child k, or nil.
func (n *trieInner) kid(k int) *trieInner {
	if n.kids == nil {
		return nil
	}
	return n.kids[k]
}

// setKid makes c n's inner child k (nil: none), and gives up n's room for
// inner children once it has none.
func (n *trieInner) setKid(k int, c *trieInner) {
	if n.kids == nil {
		if c == nil {
			return
		}
		n.kids = new([16]*trieInner)
	}
	n.kids[k] = c
	if c == nil && *n.kids == [16]*trieInner{} {
		n.kids = nil
	}
}

// setLeaf notes h as the hash of the leaf child k; grew reports that n
// took room for its leaves' hashes.
func (n *trieInner) setLeaf(k int, h *[sha256.Size]byte) (grew bool) {
	if n.hashes == nil {
		n.hashes = new([16][sha256.Size]byte)
		grew = true
	}
	n.hashes[k] = *h
	n.known |= 1 << k
	return grew
}

// setLeaf is trieInner.setLeaf, counting the nodes that hold leaf hashes.
func (rc *rootCache) setLeaf(n *trieInner, k int, h *[sha256.Size]byte) {
	if n.setLeaf(k, h) {
		rc.holding++
		rc.freed++
	}
}

// unknown forgets the hash of n's child k, which changed (or is an inner
// node now, or none), and that it was to be saved; and n's room for its
// leaves' hashes once it knows none of them.
func (rc *rootCache) unknown(n *trieInner, k int) {
	n.known &^= 1 << k
	rc.saved(n, k)
	if n.known == 0 && n.hashes != nil {
		n.hashes = nil
		rc.holding--
	}
}

// saved notes that the summary of n's leaf child k need not be written
// for its hash (it is, or it changed and goes with changed).
func (rc *rootCache) saved(n *trieInner, k int) {
	if n.unsaved&(1<<k) != 0 {
		n.unsaved &^= 1 << k
		rc.nUnsaved--
	}
}

// trieSaveMax is the most leaf summaries a Ready writes for the hashes
// Root computed (beyond those of the leaves that changed, which go with
// the records that changed them): after a large import, Root hashes
// every leaf, a million at 10,000,000 records, and the node stores their
// hashes over as many saves as it takes, each bounded so.
var trieSaveMax = 16384

// trieHashesMax is how many inner nodes may hold their leaves' hashes
// (512 bytes each) before a Ready takes them from those that need them no
// more: nodes whose own hash is known, and whose leaves' summaries in the
// KV (or in flight) hold those hashes. Such a node's leaves' hashes are
// read again, one key each, once a record comes under it. Without this, a
// daemon kept them for every node a record came under since its start:
// most of the trie (65,536 nodes, 32 MiB, at 10,000,000 records).
var trieHashesMax = 4096

// rootCache is the root trie: its inner nodes, or its top leaf's summary
// while the set holds at most trieLeafMax digests, and what changed since
// the last Ready.
type rootCache struct {
	top      *trieInner // nil while the top is a leaf
	topN     int        // the top leaf's count
	topKnown bool       // topHash is the top leaf's hash
	topHash  [sha256.Size]byte

	// Per leaf key ('k' key), the digests added (true) or removed (false)
	// under it since the last Ready: they are pending in the overlay too,
	// but a leaf's reads find them here without filtering every pending
	// digest.
	pend map[string]map[protocol.Digest]bool
	// The leaf keys whose summary changed since the last Ready: a leaf
	// that grew or shrank, was made by a split or a merge, or split or
	// merged into another (its key is deleted then), and the top leaf
	// once hashed. Ready writes their summaries from the trie. The leaves
	// under inner nodes that Root hashed are not here: they are marked in
	// their parents (trieInner.unsaved), nUnsaved of them, and Ready
	// writes at most trieSaveMax of them at a time.
	changed  map[string]struct{}
	nUnsaved int

	// holding counts the inner nodes that hold room for their leaves'
	// hashes (trieInner.hashes), or more: a node merged into a leaf is
	// counted until the next drop, which counts them again. kept is how
	// many the last drop left (dirty, or with a leaf to save), and freed
	// counts what may have let go of some since: rooms taken, nodes
	// hashed, leaves' summaries saved. A Ready drops the hashes no longer
	// needed while holding passes trieHashesMax, once freed is half of
	// kept: each walk of the trie follows work of about its size.
	holding, kept, freed int
}

func nibble(d *protocol.Digest, depth int) int {
	b := d[depth/2]
	if depth%2 == 0 {
		return int(b >> 4)
	}
	return int(b & 0x0f)
}

// setNibble sets nibble depth of d to v.
func setNibble(d *protocol.Digest, depth, v int) {
	i := depth / 2
	if depth%2 == 0 {
		d[i] = d[i]&0x0f | byte(v)<<4
	} else {
		d[i] = d[i]&0xf0 | byte(v)
	}
}

func compareDigest(a, b protocol.Digest) int { return slices.Compare(a[:], b[:]) }

// leafKey returns the 'k' key of the trie node at depth whose prefix is
// the first depth nibbles of d: the tag, the depth, and the nibbles packed
// two a byte, high first (the low nibble of an odd depth's last byte 0).
func leafKey(depth int, d *protocol.Digest) string {
	n := (depth + 1) / 2
	k := make([]byte, 2+n)
	k[0], k[1] = tagTrieLeaf, byte(depth)
	copy(k[2:], d[:n])
	if depth%2 == 1 {
		k[len(k)-1] &= 0xf0
	}
	return string(k)
}

// recordKey is the 'r' key of a digest.
func recordKey(d *protocol.Digest) []byte { return append([]byte{tagRecord}, d[:]...) }

// leafHash is the hash of a leaf holding ds, ascending.
func leafHash(ds []protocol.Digest) [sha256.Size]byte {
	h := sha256.New()
	h.Write(binary.AppendUvarint([]byte{0}, uint64(len(ds))))
	for i := range ds {
		h.Write(ds[i][:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func (rc *rootCache) count() int {
	if rc.top != nil {
		return rc.top.count
	}
	return rc.topN
}

func (rc *rootCache) note(key string) {
	if rc.changed == nil {
		rc.changed = map[string]struct{}{}
	}
	rc.changed[key] = struct{}{}
}

// indexRoot adds a record to the root trie: its 'r' key, and the counts
// and summary of the leaf it falls in, which splits if it now holds too
// many digests.
func (s *State) indexRoot(c cid.Cid) {
	d, ok := protocol.RecordDigest(c)
	if !ok {
		// Unreachable: protocol.Parse accepts only dag-cbor sha2-256 CIDs.
		panic("crdt: record CID " + c.String() + " is not CIDv1/dag-cbor/sha2-256")
	}
	s.addDigest(d)
}

// addDigest adds a digest not yet in the set to the root trie.
func (s *State) addDigest(d protocol.Digest) {
	rc := &s.root
	s.ov.set([]byte{tagRecord}, recordKey(&d), op{v: []byte{}})
	var p *trieInner // the leaf's parent; nil: the leaf is the top
	depth := 0
	for n := rc.top; n != nil; {
		n.count++
		n.dirty = true
		p, n = n, n.kid(nibble(&d, depth))
		depth++
	}
	key := leafKey(depth, &d)
	rc.pending(key, d, true)
	rc.note(key)
	var count int
	if p == nil {
		rc.topN++
		rc.topKnown = false
		count = rc.topN
	} else {
		i := nibble(&d, depth-1)
		p.n[i]++
		rc.unknown(p, i)
		count = int(p.n[i])
	}
	if count > trieLeafMax && depth < trieMaxDepth {
		s.split(p, depth, &d, key, count)
	}
}

// split turns the leaf at depth on d's path (a child of p, or the top)
// into an inner node: it reads its count digests and makes its children,
// splitting those that hold too many in turn.
func (s *State) split(p *trieInner, depth int, d *protocol.Digest, key string, count int) {
	rc := &s.root
	ds := s.leafDigests(depth, d, key)
	if s.err != nil {
		return
	}
	if len(ds) != count {
		s.fail(fmt.Errorf("%w: the trie leaf %x holds %d records, its summary says %d", ErrDamaged, key, len(ds), count))
		return
	}
	n := rc.build(ds, depth)
	if p == nil {
		rc.top, rc.topN, rc.topKnown = n, 0, false
	} else {
		i := nibble(d, depth-1)
		p.setKid(i, n)
		p.n[i] = 0
		rc.unknown(p, i)
	}
	pend := rc.pend[key]
	delete(rc.pend, key)
	for x, in := range pend { // still pending: under the leaves they are in now
		rc.pending(rc.leafOf(&x), x, in)
	}
}

// pending notes that d was added to (in) or removed from the leaf whose
// key is key since the last Ready.
func (rc *rootCache) pending(key string, d protocol.Digest, in bool) {
	if rc.pend == nil {
		rc.pend = map[string]map[protocol.Digest]bool{}
	}
	m := rc.pend[key]
	if m == nil {
		m = map[protocol.Digest]bool{}
		rc.pend[key] = m
	}
	m[d] = in
}

// removeDigest takes a digest in the set out of the root trie (doc.go,
// "Shrinking the set"): its 'r' key, and its count from the nodes on its
// path. An inner node left with
// trieLeafMax digests or fewer becomes a leaf again, holding every digest
// under it: the highest such node on the path, as the shape depends on the
// set alone.
func (s *State) removeDigest(d protocol.Digest) {
	rc := &s.root
	s.ov.set([]byte{tagRecord}, recordKey(&d), op{del: true})
	var p *trieInner // the leaf's parent; nil: the leaf is the top
	var m, mp *trieInner
	mdepth, depth := 0, 0
	for n := rc.top; n != nil; {
		n.count--
		n.dirty = true
		if m == nil && n.count <= trieLeafMax {
			m, mp, mdepth = n, p, depth
		}
		p, n = n, n.kid(nibble(&d, depth))
		depth++
	}
	key := leafKey(depth, &d)
	rc.pending(key, d, false)
	rc.note(key)
	if p == nil {
		rc.topN--
		rc.topKnown = false
	} else {
		i := nibble(&d, depth-1)
		p.n[i]--
		rc.unknown(p, i)
	}
	if m != nil {
		rc.merge(mp, m, mdepth, &d)
	}
}

// merge turns the inner node m at depth on d's path (a child of p, or the
// top), which holds trieLeafMax digests or fewer, into a leaf: the
// summaries of the leaves under it are deleted with the next Ready, and
// what is pending under them is pending under it.
func (rc *rootCache) merge(p, m *trieInner, depth int, d *protocol.Digest) {
	key := leafKey(depth, d)
	rc.absorb(m, depth, *d, key)
	if p == nil {
		rc.top, rc.topN, rc.topKnown = nil, m.count, false
	} else {
		i := nibble(d, depth-1)
		p.setKid(i, nil)
		p.n[i] = uint8(m.count)
		rc.unknown(p, i)
	}
	rc.note(key)
}

// absorb notes the leaves under n, the inner node at depth whose prefix
// is path's, as gone, and moves what is pending under them to the leaf
// whose key is into.
func (rc *rootCache) absorb(n *trieInner, depth int, path protocol.Digest, into string) {
	for k := range 16 {
		setNibble(&path, depth, k)
		if n.kid(k) != nil {
			rc.absorb(n.kid(k), depth+1, path, into)
			continue
		}
		key := leafKey(depth+1, &path)
		if n.n[k] > 0 {
			rc.note(key)
			rc.saved(n, k)
		}
		if pend, ok := rc.pend[key]; ok {
			delete(rc.pend, key)
			for x, in := range pend {
				rc.pending(into, x, in)
			}
		}
	}
}

// build returns the inner node at depth holding ds (ascending, more than
// trieLeafMax, depth < trieMaxDepth), with its leaves' summaries noted.
// It does not hash the leaves: in a set that grows, records come under
// nearly all of them before the next Root that reaches them (an import
// computes none until it ends), and each inner node knowing a leaf's hash
// holds 512 bytes for them. Hashed at the split, they were most of the
// trie's memory during an import: 65,536 such nodes from about 4,200,000
// records, 34 MB (BenchmarkTrieMemory's trie-import-B/digest: 1.8 bytes a
// digest at 500,000, against 6.3).
func (rc *rootCache) build(ds []protocol.Digest, depth int) *trieInner {
	n := &trieInner{count: len(ds), dirty: true}
	for i := 0; i < len(ds); {
		k := nibble(&ds[i], depth)
		j := i + 1
		for j < len(ds) && nibble(&ds[j], depth) == k {
			j++
		}
		g := ds[i:j]
		if len(g) > trieLeafMax && depth+1 < trieMaxDepth {
			n.setKid(k, rc.build(g, depth+1))
		} else {
			n.n[k] = uint8(len(g))
			rc.note(leafKey(depth+1, &g[0]))
		}
		i = j
	}
	return n
}

// leafOf returns the key of the leaf d falls in.
func (rc *rootCache) leafOf(d *protocol.Digest) string {
	depth := 0
	for n := rc.top; n != nil; n = n.kid(nibble(d, depth-1)) {
		depth++
	}
	return leafKey(depth, d)
}

var errStop = errors.New("stop")

// leafDigests returns the digests of the leaf at depth on d's path, whose
// key is key, ascending: those in the KV, in flight and pending.
func (s *State) leafDigests(depth int, d *protocol.Digest, key string) []protocol.Digest {
	nb := depth / 2
	prefix := append([]byte{tagRecord}, d[:nb]...)
	from := prefix
	odd := depth%2 == 1
	var hi byte // the leaf's last nibble, high, when depth is odd
	if odd {
		hi = d[nb] & 0xf0
		from = append(slices.Clip(prefix), hi)
	}
	var out []protocol.Digest
	var bad []byte
	in := func(k []byte) bool { return !odd || k[1+nb]&0xf0 == hi }
	// Removals are rare (a ban's): the KV's digests are changed by what
	// is in flight and pending through a set only when some are removed.
	var set map[protocol.Digest]bool
	err := s.kv.Scan(prefix, from, func(k, _ []byte) error {
		if len(k) != 1+protocol.DigestSize {
			bad = bytes.Clone(k)
			return errStop
		}
		if !in(k) {
			return errStop
		}
		out = append(out, protocol.Digest(k[1:]))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		s.fail(err)
		return nil
	}
	if bad != nil {
		s.fail(fmt.Errorf("%w: key %x", ErrDamaged, bad))
		return nil
	}
	change := func(d protocol.Digest, added bool) {
		if set == nil && !added {
			set = make(map[protocol.Digest]bool, len(out))
			for _, x := range out {
				set[x] = true
			}
		}
		if set != nil {
			set[d] = added
		} else {
			out = append(out, d)
		}
	}
	for _, r := range s.flight {
		ws := r.Writes
		i := sort.Search(len(ws), func(i int) bool { return bytes.Compare(ws[i].Key, from) >= 0 })
		for ; i < len(ws) && bytes.HasPrefix(ws[i].Key, prefix) && len(ws[i].Key) == 1+protocol.DigestSize && in(ws[i].Key); i++ {
			change(protocol.Digest(ws[i].Key[1:]), !ws[i].Delete)
		}
	}
	for d, added := range s.root.pend[key] {
		change(d, added)
	}
	if set != nil {
		out = out[:0]
		for d, in := range set {
			if in {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, compareDigest)
	return slices.Compact(out)
}

// TrieUnsaved reports whether the next Ready would write summaries of the
// root trie's leaves: ones that grew or split, or whose hash Root computed
// since. A caller that stores them after Root keeps the next Open from
// hashing those leaves again.
func (s *State) TrieUnsaved() bool { return len(s.root.changed) > 0 || s.root.nUnsaved > 0 }

// Root returns the state root. It costs time in proportion to the records
// added since the last call, not to the size of the set: it hashes the
// inner nodes on their paths, and reads the digests of the leaves whose
// hash is not known (grown since, or never hashed since Open). A failed
// read makes the State unusable (Ready returns the error), and Root
// returns the zero Root then.
func (s *State) Root() Root {
	if s.err != nil {
		return Root{}
	}
	rc := &s.root
	var top [sha256.Size]byte // the empty set's: 32 zero bytes
	var path protocol.Digest
	switch {
	case rc.top != nil:
		top = s.sumInner(rc.top, 0, path)
	case rc.topN > 0:
		if !rc.topKnown {
			key := leafKey(0, &path)
			ds := s.leafDigests(0, &path, key)
			if s.err == nil && len(ds) != rc.topN {
				s.fail(fmt.Errorf("%w: the trie leaf %x holds %d records, its summary says %d", ErrDamaged, key, len(ds), rc.topN))
			}
			if s.err != nil {
				return Root{}
			}
			rc.topHash, rc.topKnown = leafHash(ds), true
			rc.note(key)
		}
		top = rc.topHash
	}
	if s.err != nil {
		return Root{}
	}
	var r Root
	h := sha256.New()
	h.Write(binary.AppendUvarint([]byte(rootPrefix), uint64(rc.count())))
	h.Write(top[:])
	h.Sum(r[:0])
	return r
}

// sumInner returns the hash of the inner node n at depth, whose prefix is
// the first depth nibbles of path.
func (s *State) sumInner(n *trieInner, depth int, path protocol.Digest) [sha256.Size]byte {
	if !n.dirty {
		return n.hash
	}
	var zero [sha256.Size]byte
	h := sha256.New()
	h.Write([]byte{1})
	for k := range 16 {
		setNibble(&path, depth, k)
		switch {
		case n.kid(k) != nil:
			x := s.sumInner(n.kid(k), depth+1, path)
			h.Write(x[:])
		case n.n[k] > 0:
			if n.known&(1<<k) == 0 {
				key := leafKey(depth+1, &path)
				if stored := s.storedLeafHash(key, int(n.n[k])); stored != nil {
					s.root.setLeaf(n, k, stored)
					h.Write(stored[:])
					continue
				}
				ds := s.leafDigests(depth+1, &path, key)
				if s.err == nil && len(ds) != int(n.n[k]) {
					s.fail(fmt.Errorf("%w: the trie leaf %x holds %d records, its summary says %d", ErrDamaged, key, len(ds), n.n[k]))
				}
				if s.err != nil {
					return zero
				}
				h := leafHash(ds)
				s.root.setLeaf(n, k, &h)
				if _, changed := s.root.changed[key]; !changed && n.unsaved&(1<<k) == 0 {
					n.unsaved |= 1 << k
					s.root.nUnsaved++
				}
			}
			h.Write(n.hashes[k][:])
		default:
			h.Write(zero[:])
		}
	}
	h.Sum(n.hash[:0])
	n.dirty = false
	s.root.freed++
	return n.hash
}

// RootLeaves returns the number of leaves whose hash the next Root looks
// up (in their stored summaries, or their records): those it has not
// hashed since they changed, or since Open, under a node whose own hash
// is not known. A State opened from a start snapshot that holds its
// nodes' hashes looks up none until records come.
func (s *State) RootLeaves() int {
	rc := &s.root
	if rc.top == nil {
		if rc.topN > 0 && !rc.topKnown {
			return 1
		}
		return 0
	}
	var count func(n *trieInner) int
	count = func(n *trieInner) int {
		if !n.dirty {
			return 0
		}
		c := 0
		for k := range 16 {
			switch {
			case n.kid(k) != nil:
				c += count(n.kid(k))
			case n.n[k] > 0 && n.known&(1<<k) == 0:
				c++
			}
		}
		return c
	}
	return count(rc.top)
}

// storedLeafHash returns the hash the summary of the leaf whose key is
// key holds, in flight or in the KV, if the leaf has not changed since it
// was written (it is not in changed) and the summary counts count digests;
// nil if not, or if the summary holds no hash. A node opened from a start
// snapshot with its own hash knows none of its leaves' hashes: when a
// record under it comes, its other leaves' hashes are read so, one key
// each, rather than their digests.
func (s *State) storedLeafHash(key string, count int) *[sha256.Size]byte {
	if _, changed := s.root.changed[key]; changed {
		return nil
	}
	v := s.getKey([]byte(key))
	c, w := binary.Uvarint(v)
	if w <= 0 || c != uint64(count) || len(v) != w+sha256.Size {
		return nil // the digests are read, and checked against the count
	}
	return (*[sha256.Size]byte)(v[w:])
}

// rootWrites appends to ws the summaries of the leaves that changed since
// the last Ready, deleting the keys of those that split, and of at most
// trieSaveMax leaves whose hash Root computed since; it forgets the
// pending digests, which are in flight with ws.
func (rc *rootCache) rootWrites(ws []Write) []Write {
	for key := range rc.changed {
		count, hash, ok := rc.summary(key)
		if !ok {
			ws = append(ws, Write{Key: []byte(key), Delete: true})
			continue
		}
		ws = append(ws, Write{Key: []byte(key), Value: leafSummary(count, hash)})
	}
	rc.changed, rc.pend = nil, nil
	if rc.nUnsaved > 0 && rc.top != nil {
		budget := trieSaveMax
		var path protocol.Digest
		ws = rc.unsavedWrites(ws, rc.top, 0, &path, &budget)
		if budget > 0 {
			rc.nUnsaved = 0 // the walk met every marked leaf
		}
	}
	if rc.top == nil {
		rc.nUnsaved = 0 // no inner node to mark a leaf in
	}
	if rc.holding > trieHashesMax && 2*rc.freed >= rc.kept {
		rc.dropHashes()
	}
	return ws
}

// dropHashes takes the leaves' hashes from the inner nodes whose own hash
// is known and whose leaves' summaries hold them (none is unsaved), and
// counts the nodes that keep theirs.
func (rc *rootCache) dropHashes() {
	rc.holding = 0
	var walk func(n *trieInner)
	walk = func(n *trieInner) {
		if n.hashes != nil {
			if !n.dirty && n.unsaved == 0 {
				n.hashes, n.known = nil, 0
			} else {
				rc.holding++
			}
		}
		if n.kids != nil {
			for _, c := range n.kids {
				if c != nil {
					walk(c)
				}
			}
		}
	}
	if rc.top != nil {
		walk(rc.top)
	}
	rc.kept, rc.freed = rc.holding, 0
}

// unsavedWrites appends the summaries of the leaves under n (the inner
// node at depth on path) whose hash is not saved, while budget lasts.
func (rc *rootCache) unsavedWrites(ws []Write, n *trieInner, depth int, path *protocol.Digest, budget *int) []Write {
	for k := 0; k < 16 && *budget > 0 && rc.nUnsaved > 0; k++ {
		switch {
		case n.kid(k) != nil:
			setNibble(path, depth, k)
			ws = rc.unsavedWrites(ws, n.kid(k), depth+1, path, budget)
		case n.unsaved&(1<<k) != 0:
			setNibble(path, depth, k)
			ws = append(ws, Write{Key: []byte(leafKey(depth+1, path)), Value: leafSummary(int(n.n[k]), &n.hashes[k])})
			rc.saved(n, k)
			rc.freed++
			*budget--
		}
	}
	return ws
}

// leafSummary returns the value of a leaf's 'k' key: its count, and its
// hash if known.
func leafSummary(count int, hash *[sha256.Size]byte) []byte {
	v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+sha256.Size), uint64(count))
	if hash != nil {
		v = append(v, hash[:]...)
	}
	return v
}

// summary returns the count of the leaf whose key is key, and its hash if
// known; false if no leaf has that key (it split).
func (rc *rootCache) summary(key string) (int, *[sha256.Size]byte, bool) {
	depth := int(key[1])
	prefix := key[2:]
	nib := func(j int) int {
		if j%2 == 0 {
			return int(prefix[j/2] >> 4)
		}
		return int(prefix[j/2] & 0x0f)
	}
	if rc.top == nil {
		switch {
		case depth != 0 || rc.topN == 0:
			return 0, nil, false
		case rc.topKnown:
			return rc.topN, &rc.topHash, true
		}
		return rc.topN, nil, true
	}
	n := rc.top
	for j := 0; j < depth-1; j++ {
		if n = n.kid(nib(j)); n == nil {
			return 0, nil, false
		}
	}
	if depth == 0 {
		return 0, nil, false
	}
	k := nib(depth - 1)
	if n.n[k] == 0 {
		return 0, nil, false
	}
	if n.known&(1<<k) != 0 {
		return int(n.n[k]), &n.hashes[k], true
	}
	return int(n.n[k]), nil, true
}

// openRoot rebuilds the inner nodes of the root trie from the leaves'
// summaries in the KV (its 'k' keys), which must account for total
// digests.
func (s *State) openRoot(total int) error {
	rc := &s.root
	damaged := func(k []byte, why string) error {
		return fmt.Errorf("%w: the trie leaf %x: %s", ErrDamaged, k, why)
	}
	err := s.kv.Scan([]byte{tagTrieLeaf}, nil, func(k, v []byte) error {
		if len(k) < 2 || int(k[1]) > trieMaxDepth || len(k) != 2+(int(k[1])+1)/2 {
			return damaged(k, "not a key of a trie node")
		}
		depth := int(k[1])
		if depth%2 == 1 && k[len(k)-1]&0x0f != 0 {
			return damaged(k, "not a key of a trie node")
		}
		count, w := binary.Uvarint(v)
		if w <= 0 || len(v) != w && len(v) != w+sha256.Size {
			return damaged(k, "its summary does not decode")
		}
		most := uint64(trieLeafMax)
		if depth == trieMaxDepth {
			most = 16 // one nibble left
		}
		if count == 0 || count > most {
			return damaged(k, fmt.Sprintf("it holds %d records", count))
		}
		hash := v[w:]
		if depth == 0 {
			if rc.top != nil || rc.topN > 0 {
				return damaged(k, "it overlaps another")
			}
			rc.topN = int(count)
			if rc.topKnown = len(hash) != 0; rc.topKnown {
				copy(rc.topHash[:], hash)
			}
			return nil
		}
		if rc.topN > 0 {
			return damaged(k, "it overlaps another")
		}
		var path protocol.Digest
		copy(path[:], k[2:])
		if rc.top == nil {
			rc.top = &trieInner{dirty: true}
		}
		n := rc.top
		for j := 0; j < depth-1; j++ {
			i := nibble(&path, j)
			if n.n[i] > 0 {
				return damaged(k, "it overlaps another")
			}
			if n.kid(i) == nil {
				n.setKid(i, &trieInner{dirty: true})
			}
			n = n.kid(i)
		}
		i := nibble(&path, depth-1)
		if n.kid(i) != nil || n.n[i] > 0 {
			return damaged(k, "it overlaps another")
		}
		n.n[i] = uint8(count)
		if len(hash) != 0 {
			rc.setLeaf(n, i, (*[sha256.Size]byte)(hash))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return err
		}
		return fmt.Errorf("crdt: reading the root trie: %w", err)
	}
	if rc.top != nil {
		if err := countInner(rc.top); err != nil {
			return err
		}
	}
	if n := rc.count(); n != total {
		return fmt.Errorf("%w: the root trie holds %d records, the counts say %d", ErrDamaged, n, total)
	}
	return nil
}

// countInner sets the counts of n and the inner nodes under it, each of
// which must hold more than trieLeafMax digests.
func countInner(n *trieInner) error {
	n.count = 0
	for k := range 16 {
		if c := n.kid(k); c != nil {
			if err := countInner(c); err != nil {
				return err
			}
			n.count += c.count
		} else {
			n.count += int(n.n[k])
		}
	}
	if n.count <= trieLeafMax {
		return fmt.Errorf("%w: an inner node of the root trie holds %d records, a leaf's worth", ErrDamaged, n.count)
	}
	return nil
}

// CIDs returns every record CID in the set, sorted by bytes. It reads them
// from the KV (with what is pending or in flight); a failed read makes the
// State unusable (Ready returns the error), and CIDs returns nil then.
func (s *State) CIDs() []cid.Cid {
	if s.err != nil {
		return nil
	}
	out := make([]cid.Cid, 0, s.root.count())
	s.walk([]byte{tagRecord}, func(k []byte) bool {
		if len(k) != 1+protocol.DigestSize {
			s.fail(fmt.Errorf("%w: key %x", ErrDamaged, k))
			return false
		}
		out = append(out, protocol.Digest(k[1:]).CID())
		return true
	})
	if s.err != nil {
		return nil
	}
	return out
}

func compareCID(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) }
