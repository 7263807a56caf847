package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/commons-p2p/commons/protocol"
)

// nodeMax is the most items a leaf, or children an inner node, of the
// index holds before it splits in two.
const nodeMax = 64

// Sum is a sum of record digests modulo 2^256, as four little-endian
// 64-bit limbs (the digest's bytes read as a little-endian integer).
type Sum [4]uint64

func (s *Sum) add(d *protocol.Digest) {
	var c uint64
	for i := range 4 {
		s[i], c = bits.Add64(s[i], binary.LittleEndian.Uint64(d[8*i:]), c)
	}
}

func (s *Sum) sub(d *protocol.Digest) {
	var b uint64
	for i := range 4 {
		s[i], b = bits.Sub64(s[i], binary.LittleEndian.Uint64(d[8*i:]), b)
	}
}

func (s *Sum) addSum(o *Sum) {
	var c uint64
	for i := range 4 {
		s[i], c = bits.Add64(s[i], o[i], c)
	}
}

func (s *Sum) subSum(o *Sum) {
	var b uint64
	for i := range 4 {
		s[i], b = bits.Sub64(s[i], o[i], b)
	}
}

// Agg is the count and digest sum of a set of records.
type Agg struct {
	Count int
	Sum   Sum
}

func (a *Agg) addAgg(o *Agg)    { a.Count += o.Count; a.Sum.addSum(&o.Sum) }
func (a *Agg) subAgg(o *Agg)    { a.Count -= o.Count; a.Sum.subSum(&o.Sum) }
func (a *Agg) addItem(it *Item) { a.Count++; a.Sum.add(&it.Digest) }
func (a *Agg) subItem(it *Item) { a.Count--; a.Sum.sub(&it.Digest) }

// Fingerprint returns the set's check (SPEC.md §11.3): the first
// protocol.CheckSize bytes of sha256(sum as 32 little-endian bytes || count
// as an unsigned LEB128 varint).
func (a *Agg) Fingerprint() [protocol.CheckSize]byte {
	var buf [32 + binary.MaxVarintLen64]byte
	n := a.put(buf[:0])
	h := sha256.Sum256(n)
	var fp [protocol.CheckSize]byte
	copy(fp[:], h[:])
	return fp
}

// RangeFingerprint returns the set's range fingerprint in a session with
// salt, in pass pass (SPEC.md §11.3): the first protocol.FingerprintSize
// bytes of sha256("commons/sync/fp" || salt || varint(pass) || sum ||
// varint(count)).
func (a *Agg) RangeFingerprint(salt []byte, pass int) [protocol.FingerprintSize]byte {
	var buf [64 + protocol.SaltSize + 2*binary.MaxVarintLen64]byte
	b := append(buf[:0], fpDomain...)
	b = append(b, salt...)
	b = binary.AppendUvarint(b, uint64(pass))
	h := sha256.Sum256(a.put(b))
	var fp [protocol.FingerprintSize]byte
	copy(fp[:], h[:])
	return fp
}

const (
	fpDomain  = "commons/sync/fp"
	sidDomain = "commons/sync/id"
)

// parseAgg parses what put wrote.
func parseAgg(b []byte) (Agg, bool) {
	if len(b) < 33 {
		return Agg{}, false
	}
	var a Agg
	for i := range 4 {
		a.Sum[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	n, w := binary.Uvarint(b[32:])
	if w <= 0 || 32+w != len(b) || n > math.MaxInt32 {
		return Agg{}, false
	}
	a.Count = int(n)
	return a, true
}

// put appends the sum as 32 little-endian bytes and the count as a varint.
func (a *Agg) put(b []byte) []byte {
	for i := range 4 {
		b = binary.LittleEndian.AppendUint64(b, a.Sum[i])
	}
	return binary.AppendUvarint(b, uint64(a.Count))
}

// ShortID returns a record's short ID in a session with salt, in pass
// pass (SPEC.md §11.3): the first width bytes (at most 8) of
// sha256("commons/sync/id" || salt || varint(pass) || digest), as a
// big-endian integer.
func ShortID(d *protocol.Digest, salt []byte, pass, width int) uint64 {
	var buf [64 + protocol.SaltSize + binary.MaxVarintLen64]byte
	b := append(buf[:0], sidDomain...)
	b = append(b, salt...)
	b = binary.AppendUvarint(b, uint64(pass))
	b = append(b, d[:]...)
	h := sha256.Sum256(b)
	return binary.BigEndian.Uint64(h[:]) >> (64 - 8*width)
}

// Item is one record in the index: its time and its digest (the sha2-256
// in its CID). The index holds no record's bytes or decoded form; the
// caller keeps those (Digest.CID names the record).
type Item struct {
	Time   uint64
	Digest protocol.Digest
}

func (it *Item) compare(o *Item) int {
	if it.Time != o.Time {
		if it.Time < o.Time {
			return -1
		}
		return 1
	}
	return bytes.Compare(it.Digest[:], o.Digest[:])
}

func (it *Item) less(o *Item) bool {
	if it.Time != o.Time {
		return it.Time < o.Time
	}
	return bytes.Compare(it.Digest[:], o.Digest[:]) < 0
}

// Index is the set of a commons' records ordered by (time, digest), a
// B+tree whose inner nodes cache each child's count and digest sum, so
// that the count and sum of any range, the rank of a bound and the item at
// a rank cost O(log n). Items are added, and can be removed (Remove,
// which the State does not call: see "Shrinking the set" in doc.go): a
// leaf left empty keeps its place and its range for the items to come.
// The zero value is empty and ready, and keeps every item in memory.
//
// An Index made with a store (a State's: keys 'i' and 'j', persist.go)
// keeps its leaves' items there: memory holds the inner nodes and each
// leaf's bounds, count and sum (about 250 bytes per leaf of up to leafMax
// items, 2.3 bytes per item with leaves filled in time order:
// BenchmarkStoredIndexMemory), and the items of at most leafCache leaves
// read or changed lately. A leaf changed since its writes were last stored stays in
// memory until they are, so a leaf read from the store is never missing a
// write.
type Index struct {
	root *inode
	n    int

	st     leafStore // nil: every leaf keeps its items
	loaded int       // leaves whose items are in memory (with a store)
	lru    inode     // sentinel of the loaded leaves, least recently used first
	cap    int       // leaves kept loaded; leafCache if 0
}

// leafMax is the most items a leaf holds before it splits in two.
const leafMax = 128

// leafCache is how many leaves an Index with a store keeps loaded: their
// items take about leafCache*leafMax*40 bytes (5 MB).
const leafCache = 1024

// A node that splits as an item is added after every other keeps
// leafMax-edgeSlack items (nodeMax-edgeSlack kids) and gives the rest to
// its new right sibling, rather than half: records arrive mostly in time
// order (an import, a join, gossip of what was just made), so most splits
// happen at the right edge, where a half split would leave every leaf
// half full for good. The slack takes records that arrive a little late.
const (
	leafEdgeSlack = leafMax / 8
	nodeEdgeSlack = nodeMax / 8
)

// leafStore keeps an Index's items and leaves (a State's KV).
type leafStore interface {
	// items calls fn with the stored items not below lo and below hi (hi
	// nil: to the end), in order.
	items(lo Item, hi *Item, fn func(Item)) error
	// putItem, delItem and putLeaf note the writes of an item added or
	// removed and of a leaf's bound, count and sum, to be stored with the
	// next batch.
	putItem(it Item)
	delItem(it Item)
	putLeaf(lo Item, a Agg)
	// seqs returns the number of the batch of writes being gathered, and
	// the oldest that is not stored yet (the first if all are).
	seqs() (gathering, unstored uint64)
	// fail makes the store's owner unusable after a failed read.
	fail(err error)
}

// An inode is a leaf or an inner node of an Index. A leaf whose items are
// not in memory (most of them, with a store) holds its bounds, count and
// sum, and two nil pointers where the rest would be: 104 bytes, against
// 216 when it held room for all of it.
type inode struct {
	// leaf
	lo      Item   // every item of the leaf is not below lo; the first leaf's is the zero Item
	a       Agg    // the leaf's count and sum
	next    *inode // the next leaf in order
	*loaded        // a leaf's items, while in memory (always without a store); else nil

	*inner // an inner node's children; nil for a leaf
}

// loaded is a leaf's items in memory.
type loaded struct {
	items []Item
	touch uint64 // the batch of writes that carries the leaf's latest change
	older *inode // the loaded leaves' list (Index.lru)
	newer *inode
}

// inner is an inner node's children.
type inner struct {
	kids []*inode
	aggs []Agg  // per kid
	mins []Item // per kid: its lower bound
}

func (nd *inode) leaf() bool { return nd.inner == nil }

func (nd *inode) agg() Agg {
	if nd.leaf() {
		return nd.a
	}
	var a Agg
	for i := range nd.aggs {
		a.addAgg(&nd.aggs[i])
	}
	return a
}

func (nd *inode) min() Item {
	if nd.leaf() {
		return nd.lo
	}
	return nd.mins[0]
}

// Len returns the number of items.
func (x *Index) Len() int { return x.n }

// All returns the count and sum of every item.
func (x *Index) All() Agg {
	if x.root == nil {
		return Agg{}
	}
	return x.root.agg()
}

// loadFill is how full load makes each node, leaving room for inserts.
const loadFill = nodeMax * 3 / 4

// load fills an empty index without a store with items, sorted and
// distinct, building the tree bottom up: far cheaper than an Insert each.
func (x *Index) load(items []Item) {
	var leaves []*inode
	for i := 0; i < len(items); i += loadFill {
		nd := &inode{loaded: &loaded{items: slices.Clone(items[i:min(i+loadFill, len(items))])}, lo: items[i]}
		for k := range nd.items {
			nd.a.addItem(&nd.items[k])
		}
		leaves = append(leaves, nd)
	}
	x.build(leaves)
}

// build makes the tree over leaves, in order, of an empty index.
func (x *Index) build(leaves []*inode) {
	if len(leaves) == 0 {
		return
	}
	leaves[0].lo = Item{}
	x.n = 0
	for i, l := range leaves {
		if i+1 < len(leaves) {
			l.next = leaves[i+1]
		}
		x.n += l.a.Count
	}
	level := leaves
	for len(level) > 1 {
		var up []*inode
		for i := 0; i < len(level); i += loadFill {
			kids := slices.Clone(level[i:min(i+loadFill, len(level))])
			nd := &inode{inner: &inner{kids: kids, aggs: make([]Agg, 0, len(kids)), mins: make([]Item, 0, len(kids))}}
			for _, k := range kids {
				nd.aggs = append(nd.aggs, k.agg())
				nd.mins = append(nd.mins, k.min())
			}
			up = append(up, nd)
		}
		level = up
	}
	x.root = level[0]
}

// eachLeaf calls fn with every leaf, in order.
func (x *Index) eachLeaf(fn func(*inode)) {
	l := x.root
	for l != nil && !l.leaf() {
		l = l.kids[0]
	}
	for ; l != nil; l = l.next {
		fn(l)
	}
}

// open fills an empty index from its store's leaves (lo and count and
// sum each, in order), whose items stay in the store until read.
func (x *Index) open(st leafStore, leaves []*inode) {
	x.st = st
	x.build(leaves)
}

// items returns leaf's items, reading them from the store if they are not
// in memory; nil if the read fails (the store's owner is then unusable).
func (x *Index) items(leaf *inode) []Item {
	if leaf.loaded != nil {
		x.use(leaf)
		return leaf.items
	}
	var hi *Item
	if leaf.next != nil {
		hi = &leaf.next.lo
	}
	items := make([]Item, 0, leaf.a.Count+1)
	err := x.st.items(leaf.lo, hi, func(it Item) { items = append(items, it) })
	if err == nil && len(items) != leaf.a.Count {
		err = fmt.Errorf("%w: the reconciliation index's leaf at %d/%x holds %d items; its summary says %d", ErrDamaged, leaf.lo.Time, leaf.lo.Digest, len(items), leaf.a.Count)
	}
	if err != nil {
		x.st.fail(err)
		return nil
	}
	leaf.loaded = &loaded{items: items}
	x.loaded++
	x.use(leaf)
	x.evict()
	return leaf.items
}

// use moves a loaded leaf to the newest end of the list (with a store).
func (x *Index) use(leaf *inode) {
	if x.st == nil {
		return
	}
	if x.lru.loaded == nil {
		x.lru.loaded = &loaded{}
		x.lru.newer, x.lru.older = &x.lru, &x.lru
	}
	if leaf.newer != nil { // unlink
		leaf.newer.older, leaf.older.newer = leaf.older, leaf.newer
	}
	leaf.older, leaf.newer = x.lru.older, &x.lru
	x.lru.older.newer = leaf
	x.lru.older = leaf
}

// evict drops the items of the least recently used leaves beyond the
// cache's size whose changes are all stored.
func (x *Index) evict() {
	limit := x.cap
	if limit == 0 {
		limit = leafCache
	}
	_, unstored := x.st.seqs()
	// The newest, just used, stays.
	for l := x.lru.newer; x.loaded > limit && l != &x.lru && l != x.lru.older; {
		next := l.newer
		if l.touch < unstored {
			l.newer.older, l.older.newer = l.older, l.newer
			l.loaded = nil
			x.loaded--
		}
		l = next
	}
}

// Insert adds it; false if an item with its key is present already.
func (x *Index) Insert(it Item) bool {
	if x.root == nil {
		x.root = &inode{loaded: &loaded{items: []Item{it}}}
		x.root.a.addItem(&it)
		x.n = 1
		x.changed(x.root)
		if x.st != nil {
			x.st.putItem(it)
			x.loaded++
			x.use(x.root)
		}
		return true
	}
	added, sib := x.insert(x.root, it, true)
	if added {
		x.n++
	}
	if sib != nil {
		old := x.root
		x.root = &inode{inner: &inner{
			kids: []*inode{old, sib},
			aggs: []Agg{old.agg(), sib.agg()},
			mins: []Item{old.min(), sib.min()},
		}}
	}
	return added
}

// changed notes that leaf changed: its summary is written, and it stays
// loaded until that is stored.
func (x *Index) changed(leaf *inode) {
	if x.st == nil {
		return
	}
	leaf.touch, _ = x.st.seqs()
	x.st.putLeaf(leaf.lo, leaf.a)
}

// insert adds it under nd, the last node of its level if edge; it returns
// whether it was added, and nd's new right sibling if nd split.
func (x *Index) insert(nd *inode, it Item, edge bool) (bool, *inode) {
	if nd.leaf() {
		items := x.items(nd)
		if nd.loaded == nil {
			return false, nil // the read failed
		}
		i, found := searchItems(items, &it)
		if found {
			return false, nil
		}
		last := edge && i == len(nd.items)
		nd.items = insertAt(nd.items, i, it)
		nd.a.addItem(&it)
		if x.st != nil {
			x.st.putItem(it)
		}
		if len(nd.items) <= leafMax {
			x.changed(nd)
			return true, nil
		}
		h := len(nd.items) / 2
		if last {
			h = leafMax - leafEdgeSlack
		}
		sib := &inode{loaded: &loaded{items: append(make([]Item, 0, leafMax+1), nd.items[h:]...)}, lo: nd.items[h], next: nd.next}
		for k := range sib.items {
			sib.a.addItem(&sib.items[k])
		}
		clear(nd.items[h:])
		nd.items = nd.items[:h]
		nd.a.subAgg(&sib.a)
		nd.next = sib
		x.changed(nd)
		x.changed(sib)
		if x.st != nil {
			x.loaded++
			x.use(sib)
			x.evict() // the leaves made by splits count toward the cache too
		}
		return true, sib
	}
	i := nd.childFor(&it)
	edge = edge && i == len(nd.kids)-1
	added, sib := x.insert(nd.kids[i], it, edge)
	if !added {
		return false, nil
	}
	nd.aggs[i].addItem(&it)
	if sib == nil {
		return true, nil
	}
	nd.aggs[i] = nd.kids[i].agg()
	nd.kids = insertAt(nd.kids, i+1, sib)
	nd.aggs = insertAt(nd.aggs, i+1, sib.agg())
	nd.mins = insertAt(nd.mins, i+1, sib.min())
	if len(nd.kids) <= nodeMax {
		return true, nil
	}
	h := len(nd.kids) / 2
	if edge {
		h = nodeMax - nodeEdgeSlack
	}
	right := &inode{inner: &inner{
		kids: append(make([]*inode, 0, nodeMax+1), nd.kids[h:]...),
		aggs: append(make([]Agg, 0, nodeMax+1), nd.aggs[h:]...),
		mins: append(make([]Item, 0, nodeMax+1), nd.mins[h:]...),
	}}
	clear(nd.kids[h:])
	nd.kids, nd.aggs, nd.mins = nd.kids[:h], nd.aggs[:h], nd.mins[:h]
	return true, right
}

// Remove takes out the item with it's key; false if there is none.
func (x *Index) Remove(it Item) bool {
	if x.root == nil || !x.remove(x.root, &it) {
		return false
	}
	x.n--
	return true
}

func (x *Index) remove(nd *inode, it *Item) bool {
	if nd.leaf() {
		items := x.items(nd)
		i, found := searchItems(items, it)
		if !found {
			return false // absent, or the read failed
		}
		nd.items = slices.Delete(nd.items, i, i+1)
		nd.a.subItem(it)
		if x.st != nil {
			x.st.delItem(*it)
		}
		x.changed(nd)
		return true
	}
	i := nd.childFor(it)
	if !x.remove(nd.kids[i], it) {
		return false
	}
	nd.aggs[i].subItem(it)
	return true
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// searchItems returns the position of the first item not below it, and
// whether that item has it's key.
func searchItems(items []Item, it *Item) (int, bool) {
	lo, hi := 0, len(items)
	for lo < hi {
		m := (lo + hi) / 2
		if items[m].less(it) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(items) && !it.less(&items[lo])
}

// childFor returns the kid whose key range holds it: the last kid whose
// minimum is not above it, or the first.
func (nd *inode) childFor(it *Item) int {
	lo, hi := 1, len(nd.kids)
	for lo < hi {
		m := (lo + hi) / 2
		if it.less(&nd.mins[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo - 1
}

// Below returns the count and sum of the items below bound b.
func (x *Index) Below(b protocol.Bound) Agg {
	var a Agg
	for nd := x.root; nd != nil; {
		if nd.leaf() {
			items := x.items(nd)
			for i := range items {
				if !b.Below(items[i].Time, &items[i].Digest) {
					break
				}
				a.addItem(&items[i])
			}
			return a
		}
		// The last kid whose minimum is below b; kids before it are
		// wholly below b.
		lo, hi := 0, len(nd.kids)
		for lo < hi {
			m := (lo + hi) / 2
			if b.Below(nd.mins[m].Time, &nd.mins[m].Digest) {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo == 0 {
			return a
		}
		for i := range lo - 1 {
			a.addAgg(&nd.aggs[i])
		}
		nd = nd.kids[lo-1]
	}
	return a
}

// Prefix returns the count and sum of the first r items.
func (x *Index) Prefix(r int) Agg {
	var a Agg
	for nd := x.root; nd != nil && r > 0; {
		if nd.leaf() {
			items := x.items(nd)
			for i := range min(r, len(items)) {
				a.addItem(&items[i])
			}
			return a
		}
		i := 0
		for ; i < len(nd.kids)-1 && nd.aggs[i].Count <= r; i++ {
			a.addAgg(&nd.aggs[i])
			r -= nd.aggs[i].Count
		}
		nd = nd.kids[i]
	}
	return a
}

// At returns the item of rank r (0-based); r must be below Len. It
// returns the zero Item if the store's read fails.
func (x *Index) At(r int) *Item {
	nd := x.root
	for !nd.leaf() {
		i := 0
		for ; i < len(nd.kids)-1 && nd.aggs[i].Count <= r; i++ {
			r -= nd.aggs[i].Count
		}
		nd = nd.kids[i]
	}
	items := x.items(nd)
	if r >= len(items) {
		return &Item{}
	}
	return &items[r]
}

// Range calls fn with the items of ranks lo to hi-1, in order, until fn
// returns false.
func (x *Index) Range(lo, hi int, fn func(*Item) bool) {
	if x.root != nil && lo < hi {
		x.walk(x.root, lo, hi, fn)
	}
}

func (x *Index) walk(nd *inode, lo, hi int, fn func(*Item) bool) bool {
	if nd.leaf() {
		items := x.items(nd)
		for i := max(lo, 0); i < min(hi, len(items)); i++ {
			if !fn(&items[i]) {
				return false
			}
		}
		return true
	}
	base := 0
	for i, kid := range nd.kids {
		n := nd.aggs[i].Count
		if base+n > lo && base < hi {
			if !x.walk(kid, lo-base, hi-base, fn) {
				return false
			}
		}
		base += n
		if base >= hi {
			break
		}
	}
	return true
}
