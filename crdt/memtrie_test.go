package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/commons-p2p/commons/protocol"
)

// memTrie is the root trie as it was kept before its leaves moved to the
// KV: every digest in memory. It is kept here, unchanged in what it
// computes, as an independent reference for the trie the State keeps
// (root.go), which shares none of its code.
type memTrie struct {
	digests  []protocol.Digest // leaf, ascending
	children *[16]*memTrie     // inner
	count    int
	hash     [sha256.Size]byte
	dirty    bool
}

func memNibble(d *protocol.Digest, depth int) int {
	b := d[depth/2]
	if depth%2 == 0 {
		return int(b >> 4)
	}
	return int(b & 0x0f)
}

// insert adds a digest not yet in the trie.
func (t *memTrie) insert(d protocol.Digest, depth int) {
	t.count++
	t.dirty = true
	if t.children != nil {
		k := memNibble(&d, depth)
		if t.children[k] == nil {
			t.children[k] = &memTrie{}
		}
		t.children[k].insert(d, depth+1)
		return
	}
	i, _ := slices.BinarySearchFunc(t.digests, d, compareDigest)
	t.digests = slices.Insert(t.digests, i, d)
	if len(t.digests) <= trieLeafMax || depth >= 2*protocol.DigestSize-1 {
		return
	}
	t.children = new([16]*memTrie)
	for _, x := range t.digests {
		k := memNibble(&x, depth)
		if t.children[k] == nil {
			t.children[k] = &memTrie{}
		}
		t.children[k].insert(x, depth+1)
	}
	t.digests = nil
}

// sum returns the node's hash.
func (t *memTrie) sum() [sha256.Size]byte {
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

// root returns the state root of the digests in the trie.
func (t *memTrie) root() Root {
	var r Root
	top := t.sum()
	buf := binary.AppendUvarint([]byte(rootPrefix), uint64(t.count))
	h := sha256.New()
	h.Write(buf)
	h.Write(top[:])
	h.Sum(r[:0])
	return r
}
