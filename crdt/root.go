package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
)

// rootPrefix begins the bytes the state root hashes.
const rootPrefix = "commons/crdt/root/v1\n"

// Root is the state root: SHA-256 over the sorted record CIDs (see the
// package doc for the exact bytes). Two states have equal roots exactly when
// they hold the same records.
type Root [sha256.Size]byte

// String returns the root in hex.
func (r Root) String() string { return hex.EncodeToString(r[:]) }

// rootCache keeps the record CIDs sorted lazily and the root cached.
type rootCache struct {
	sorted []cid.Cid // sorted by bytes
	fresh  []cid.Cid // added since the last flush, unsorted
	root   Root
	ok     bool
}

func (rc *rootCache) add(c cid.Cid) {
	rc.fresh = append(rc.fresh, c)
	rc.ok = false
}

func compareCID(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) }

// flush merges the fresh CIDs into the sorted list, in place from the back.
func (rc *rootCache) flush() {
	if len(rc.fresh) == 0 {
		return
	}
	slices.SortFunc(rc.fresh, compareCID)
	i, j := len(rc.sorted)-1, len(rc.fresh)-1
	rc.sorted = slices.Grow(rc.sorted, len(rc.fresh))[:len(rc.sorted)+len(rc.fresh)]
	for k := len(rc.sorted) - 1; j >= 0; k-- {
		if i >= 0 && compareCID(rc.sorted[i], rc.fresh[j]) > 0 {
			rc.sorted[k] = rc.sorted[i]
			i--
		} else {
			rc.sorted[k] = rc.fresh[j]
			j--
		}
	}
	rc.fresh = rc.fresh[:0]
}

func (rc *rootCache) get() Root {
	if rc.ok {
		return rc.root
	}
	rc.flush()
	h := sha256.New()
	buf := make([]byte, 0, 8<<10)
	buf = append(buf, rootPrefix...)
	for _, c := range rc.sorted {
		k := c.KeyString()
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		if len(buf) > 7<<10 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	h.Sum(rc.root[:0])
	rc.ok = true
	return rc.root
}

// Root returns the state root, recomputing it only if the set changed since
// the last call.
func (s *State) Root() Root { return s.root.get() }

// CIDs returns every record CID in the set, sorted by bytes.
func (s *State) CIDs() []cid.Cid {
	s.root.flush()
	return slices.Clone(s.root.sorted)
}
