package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
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
// a rank cost O(log n). It only grows. The zero value is empty and ready.
type Index struct {
	root *inode
	n    int
}

type inode struct {
	items []Item   // leaf
	kids  []*inode // inner
	aggs  []Agg    // per kid
	mins  []Item   // per kid: its smallest item (key only)
}

func (nd *inode) leaf() bool { return nd.kids == nil }

func (nd *inode) agg() Agg {
	var a Agg
	if nd.leaf() {
		for i := range nd.items {
			a.addItem(&nd.items[i])
		}
		return a
	}
	for i := range nd.aggs {
		a.addAgg(&nd.aggs[i])
	}
	return a
}

func (nd *inode) min() Item {
	if nd.leaf() {
		return Item{Time: nd.items[0].Time, Digest: nd.items[0].Digest}
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

// load fills an empty index with items, sorted and distinct, building the
// tree bottom up: far cheaper than an Insert each.
func (x *Index) load(items []Item) {
	if len(items) == 0 {
		return
	}
	var level []*inode
	for i := 0; i < len(items); i += loadFill {
		level = append(level, &inode{items: slices.Clone(items[i:min(i+loadFill, len(items))])})
	}
	for len(level) > 1 {
		var up []*inode
		for i := 0; i < len(level); i += loadFill {
			kids := slices.Clone(level[i:min(i+loadFill, len(level))])
			nd := &inode{kids: kids}
			for _, k := range kids {
				nd.aggs = append(nd.aggs, k.agg())
				nd.mins = append(nd.mins, k.min())
			}
			up = append(up, nd)
		}
		level = up
	}
	x.root, x.n = level[0], len(items)
}

// Insert adds it; false if an item with its key is present already.
func (x *Index) Insert(it Item) bool {
	if x.root == nil {
		x.root = &inode{items: []Item{it}}
		x.n = 1
		return true
	}
	added, sib := x.root.insert(it)
	if added {
		x.n++
	}
	if sib != nil {
		old := x.root
		x.root = &inode{
			kids: []*inode{old, sib},
			aggs: []Agg{old.agg(), sib.agg()},
			mins: []Item{old.min(), sib.min()},
		}
	}
	return added
}

func (nd *inode) insert(it Item) (bool, *inode) {
	if nd.leaf() {
		i, found := nd.searchItems(&it)
		if found {
			return false, nil
		}
		nd.items = append(nd.items, Item{})
		copy(nd.items[i+1:], nd.items[i:])
		nd.items[i] = it
		if len(nd.items) <= nodeMax {
			return true, nil
		}
		h := len(nd.items) / 2
		sib := &inode{items: append(make([]Item, 0, nodeMax+1), nd.items[h:]...)}
		clear(nd.items[h:])
		nd.items = nd.items[:h]
		return true, sib
	}
	i := nd.childFor(&it)
	added, sib := nd.kids[i].insert(it)
	if !added {
		return false, nil
	}
	nd.aggs[i].addItem(&it)
	if it.less(&nd.mins[i]) {
		nd.mins[i] = Item{Time: it.Time, Digest: it.Digest}
	}
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
	right := &inode{
		kids: append(make([]*inode, 0, nodeMax+1), nd.kids[h:]...),
		aggs: append(make([]Agg, 0, nodeMax+1), nd.aggs[h:]...),
		mins: append(make([]Item, 0, nodeMax+1), nd.mins[h:]...),
	}
	clear(nd.kids[h:])
	nd.kids, nd.aggs, nd.mins = nd.kids[:h], nd.aggs[:h], nd.mins[:h]
	return true, right
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
func (nd *inode) searchItems(it *Item) (int, bool) {
	lo, hi := 0, len(nd.items)
	for lo < hi {
		m := (lo + hi) / 2
		if nd.items[m].less(it) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(nd.items) && !it.less(&nd.items[lo])
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
			for i := range nd.items {
				if !b.Below(nd.items[i].Time, &nd.items[i].Digest) {
					break
				}
				a.addItem(&nd.items[i])
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
			for i := range min(r, len(nd.items)) {
				a.addItem(&nd.items[i])
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

// At returns the item of rank r (0-based); r must be below Len.
func (x *Index) At(r int) *Item {
	nd := x.root
	for !nd.leaf() {
		i := 0
		for ; i < len(nd.kids)-1 && nd.aggs[i].Count <= r; i++ {
			r -= nd.aggs[i].Count
		}
		nd = nd.kids[i]
	}
	return &nd.items[r]
}

// Range calls fn with the items of ranks lo to hi-1, in order, until fn
// returns false.
func (x *Index) Range(lo, hi int, fn func(*Item) bool) {
	if x.root != nil && lo < hi {
		x.root.walk(lo, hi, fn)
	}
}

func (nd *inode) walk(lo, hi int, fn func(*Item) bool) bool {
	if nd.leaf() {
		for i := max(lo, 0); i < min(hi, len(nd.items)); i++ {
			if !fn(&nd.items[i]) {
				return false
			}
		}
		return true
	}
	base := 0
	for i, kid := range nd.kids {
		n := nd.aggs[i].Count
		if base+n > lo && base < hi {
			if !kid.walk(lo-base, hi-base, fn) {
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
