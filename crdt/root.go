package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// rootPrefix begins the bytes the state root hashes.
const rootPrefix = "commons/crdt/root/v2\n"

// trieLeafMax is the most digests a trie leaf holds; one more splits it.
const trieLeafMax = 64

// Root is the state root: a hash of the set of record digests through a
// canonical hash trie (see the package doc for the exact bytes). Two states
// have equal roots exactly when they hold the same records.
type Root [sha256.Size]byte

// String returns the root in hex.
func (r Root) String() string { return hex.EncodeToString(r[:]) }

// trieNode is a node of the root trie: a leaf holding up to trieLeafMax
// sorted digests, or an inner node with 16 children, one per value of the
// digest's nibble at the node's depth. A node is inner exactly when more
// than trieLeafMax digests of the set share its prefix, so the shape, and
// with it every hash, depends on the set alone, not on the order of
// insertion. Hashes are cached and recomputed along dirty paths only.
type trieNode struct {
	digests  []protocol.Digest // leaf, ascending
	children *[16]*trieNode    // inner
	count    int
	hash     [sha256.Size]byte
	dirty    bool
}

func nibble(d *protocol.Digest, depth int) int {
	b := d[depth/2]
	if depth%2 == 0 {
		return int(b >> 4)
	}
	return int(b & 0x0f)
}

// insert adds a digest not yet in the trie.
func (t *trieNode) insert(d protocol.Digest, depth int) {
	t.count++
	t.dirty = true
	if t.children != nil {
		k := nibble(&d, depth)
		if t.children[k] == nil {
			t.children[k] = &trieNode{}
		}
		t.children[k].insert(d, depth+1)
		return
	}
	i, _ := slices.BinarySearchFunc(t.digests, d, compareDigest)
	t.digests = slices.Insert(t.digests, i, d)
	if len(t.digests) <= trieLeafMax || depth >= 2*protocol.DigestSize-1 {
		return
	}
	t.children = new([16]*trieNode)
	for _, x := range t.digests {
		k := nibble(&x, depth)
		if t.children[k] == nil {
			t.children[k] = &trieNode{}
		}
		t.children[k].insert(x, depth+1)
	}
	t.digests = nil
}

func compareDigest(a, b protocol.Digest) int { return slices.Compare(a[:], b[:]) }

// sum returns the node's hash: for a leaf, SHA-256 over 0x00, the count as
// a varint and the digests in order; for an inner node, SHA-256 over 0x01
// and, for each of the 16 children in nibble order, its hash or 32 zero
// bytes where there is none.
func (t *trieNode) sum() [sha256.Size]byte {
	if !t.dirty {
		return t.hash
	}
	h := sha256.New()
	if t.children == nil {
		buf := binary.AppendUvarint([]byte{0}, uint64(len(t.digests)))
		h.Write(buf)
		for i := range t.digests {
			h.Write(t.digests[i][:])
		}
	} else {
		var zero [sha256.Size]byte
		h.Write([]byte{1})
		for _, c := range t.children {
			if c == nil {
				h.Write(zero[:])
				continue
			}
			s := c.sum()
			h.Write(s[:])
		}
	}
	h.Sum(t.hash[:0])
	t.dirty = false
	return t.hash
}

// walk calls fn for every digest in ascending order.
func (t *trieNode) walk(fn func(d protocol.Digest)) {
	if t.children == nil {
		for _, d := range t.digests {
			fn(d)
		}
		return
	}
	for _, c := range t.children {
		if c != nil {
			c.walk(fn)
		}
	}
}

// rootCache is the trie of the set's record digests.
type rootCache struct {
	trie trieNode
}

func (rc *rootCache) add(c cid.Cid) {
	d, ok := protocol.RecordDigest(c)
	if !ok {
		// Unreachable: protocol.Parse accepts only dag-cbor sha2-256 CIDs.
		panic("crdt: record CID " + c.String() + " is not CIDv1/dag-cbor/sha2-256")
	}
	rc.trie.insert(d, 0)
}

func (rc *rootCache) get() Root {
	var r Root
	top := rc.trie.sum()
	buf := binary.AppendUvarint([]byte(rootPrefix), uint64(rc.trie.count))
	h := sha256.New()
	h.Write(buf)
	h.Write(top[:])
	h.Sum(r[:0])
	return r
}

// Root returns the state root. It costs time in proportion to the records
// added since the last call, not to the size of the set.
func (s *State) Root() Root { return s.root.get() }

// CIDs returns every record CID in the set, sorted by bytes.
func (s *State) CIDs() []cid.Cid {
	out := make([]cid.Cid, 0, s.root.trie.count)
	s.root.trie.walk(func(d protocol.Digest) { out = append(out, d.CID()) })
	return out
}

func compareCID(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) }
