package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"math"
	"slices"

	"github.com/commons-p2p/commons/protocol"
)

// The start snapshot.
//
// Open rebuilds what memory holds of the root trie and the reconciliation
// index from their leaves' summaries: one 'k' key per 40 or so records,
// one 'j' key per 100 or so. At 10,000,000 records that is 350,000 keys
// and most of a second. A State about to be closed can instead write what
// memory holds of both (Snapshot), which the next Open reads in their
// place: a head and chunks of snapChunk bytes, several times fewer keys
// than the leaves', read as one run. The snapshot is only ever of the state
// in the KV beside it: the first Ready with writes after it deletes its
// head, in the same writes, so that a State that goes on adding records
// and then crashes leaves no snapshot to take (its chunks stay until the
// next Snapshot writes over them or deletes them). Open takes a snapshot
// only if its head is there and decodes, every chunk it counts is there
// and no other, its checksum holds, it decodes whole, and it names the
// counts ('s') in the KV, which change with every record added: a
// snapshot left by a version that wrote the counts without deleting the
// head is not taken either. A snapshot not taken is deleted like a used
// one.
//
// Keys: 'S' and a 4-byte big-endian index. 'S' 0, the head, holds the
// number of chunks after it and the CRC-32C of their concatenation; the
// chunks hold:
//
//	version (1)
//	uvarint len, the counts' value ('s') the snapshot is of
//	the root trie: 0, uvarint count, 0 or 1 and the hash (the top is a leaf)
//	            or 1, the top inner node
//	  an inner node: 0 (its hash is not known) or 1 and its hash; then per
//	  nibble 0..15, 0 (nothing under it), 1 and an inner node, 2 and a
//	  count byte (a leaf, not hashed), 3, a count byte and the hash (a
//	  leaf: only under a node whose hash is not known, as the leaves'
//	  hashes are needed only to hash it)
//	uvarint leaves, then per leaf of the index in order: uvarint time, the
//	  32-byte digest of its bound, and its summary as the 'j' key holds it
const (
	tagSnapshot     = 'S'
	snapshotVersion = 2
)

// snapChunk is the most bytes of a snapshot's chunk: small, like the rest
// of the derived state's values, so that a store that keeps large values
// apart from its keys (badger's value log, from 320 bytes, which is not
// compacted) keeps these with the keys it rewrites and compacts, and the
// space of a snapshot written over comes back.
const snapChunk = 256

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func snapshotKey(i uint32) []byte { return binary.BigEndian.AppendUint32([]byte{tagSnapshot}, i) }

// snapPiece is about the most bytes of chunks Snapshot hands its commit
// at once: what memory holds of a snapshot while it is written, whatever
// the commons' size. A variable for tests.
var snapPiece = 1 << 20

// Snapshot writes a start snapshot of the State (see above) through
// commit, for the next Open to read instead of the trie's and the index's
// leaves, and reports whether it wrote one: not if the KV already holds
// one of this state, or the set is empty. Call it when the State is about
// to be closed, after Ready has taken everything added and its writes are
// in the KV: it fails if anything is pending.
//
// The snapshot is encoded as it is written, and handed to commit in
// pieces of at most snapPiece bytes, each of which must be in the KV when
// commit returns nil: first the deletion of an earlier snapshot's head,
// if there is one, with the first chunks; then the rest of the chunks,
// and the deletion of an earlier snapshot's keys beyond them; the head
// last. A snapshot cut short (commit failed, or the process stopped) has
// no head, and is not taken: the next Open reads the leaves, and the next
// Snapshot writes over its chunks or deletes them. Snapshot returns
// commit's error.
func (s *State) Snapshot(commit func([]Write) error) (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	if len(s.ov.ops) > 0 || len(s.ents) > 0 || s.TrieUnsaved() || string(s.encodeCounts()) != string(s.countsRaw) || len(s.flight) > 0 {
		return false, errors.New("crdt: a snapshot with writes pending: call Ready, and apply its writes, first")
	}
	if s.snapHeld || s.Len() == 0 {
		return false, nil
	}
	w := &snapWriter{commit: commit, crc: crc32.New(crcTable)}
	if s.snapHead {
		w.ws = append(w.ws, Write{Key: snapshotKey(0), Delete: true})
	}
	e := snapEncoder{w: w}
	nl := 0
	s.idx.eachLeaf(func(*inode) { nl++ })
	e.encode(s.countsRaw, &s.root, nl, s.idx.eachLeaf)
	w.chunk(e.b, true)
	n := w.next - 1
	for i := n + 1; i < s.snapEnd; i++ { // an earlier snapshot's, beyond this one's
		w.add(Write{Key: snapshotKey(i), Delete: true})
	}
	for _, k := range s.snapOdd {
		if len(k) == 5 && (binary.BigEndian.Uint32(k[1:]) <= n || binary.BigEndian.Uint32(k[1:]) < s.snapEnd) {
			continue // written over, or deleted, above
		}
		w.add(Write{Key: k, Delete: true})
	}
	w.flush()
	if w.err == nil {
		head := binary.AppendUvarint(nil, uint64(n))
		head = binary.BigEndian.AppendUint32(head, w.crc.Sum32())
		w.add(Write{Key: snapshotKey(0), Value: head})
		w.flush()
	}
	if w.err != nil {
		// What commit wrote is left for the next Snapshot to write over
		// or delete. A head is taken to be there: if the last commit
		// failed after its writes lasted, the next writes delete it.
		s.snapEnd, s.snapHead = max(s.snapEnd, w.next), true
		return false, w.err
	}
	s.snapEnd, s.snapOdd, s.snapHead, s.snapHeld = n+1, nil, true, true
	return true, nil
}

// snapWriter cuts a snapshot's bytes into chunks under keys 1, 2..., and
// hands them to commit a piece at a time.
type snapWriter struct {
	commit func([]Write) error
	ws     []Write // not yet handed to commit
	size   int     // about the bytes of ws
	next   uint32  // the key of the next chunk
	crc    hash.Hash32
	err    error // commit's: nothing more is handed to it
}

// chunk takes the whole chunks at the front of b, and the rest too if
// last, and returns what is left.
func (w *snapWriter) chunk(b []byte, last bool) []byte {
	if w.next == 0 {
		w.next = 1
	}
	for len(b) >= snapChunk || last && len(b) > 0 {
		c := bytes.Clone(b[:min(len(b), snapChunk)])
		w.crc.Write(c)
		w.add(Write{Key: snapshotKey(w.next), Value: c})
		w.next++
		b = b[len(c):]
	}
	return b
}

// add queues a write, and hands the queue to commit once it is a piece
// (a deletion counts as its key and a little more).
func (w *snapWriter) add(x Write) {
	w.ws = append(w.ws, x)
	w.size += len(x.Key) + len(x.Value) + 16
	if w.size >= snapPiece {
		w.flush()
	}
}

// flush hands the queued writes to commit.
func (w *snapWriter) flush() {
	if len(w.ws) > 0 && w.err == nil {
		w.err = w.commit(w.ws)
	}
	w.ws, w.size = nil, 0
}

// FromSnapshot reports whether Open read the root trie and the index
// from a start snapshot, rather than from their leaves.
func (s *State) FromSnapshot() bool { return s.snapTaken }

// snapEncoder appends a snapshot's bytes to b, and hands the whole chunks
// in it to w as it grows past snapSpill (all of them at the end, if w is
// nil).
type snapEncoder struct {
	b []byte
	w *snapWriter
}

const snapSpill = 64 << 10

func (e *snapEncoder) spill() {
	if e.w == nil || len(e.b) < snapSpill {
		return
	}
	rest := e.w.chunk(e.b, false)
	e.b = append(e.b[:0], rest...)
}

// encodeSnapshot returns the bytes of a snapshot of the counts counts,
// the root trie rc and the index leaves leaves.
func encodeSnapshot(counts []byte, rc *rootCache, leaves []*inode) []byte {
	var e snapEncoder
	e.encode(counts, rc, len(leaves), func(fn func(*inode)) {
		for _, l := range leaves {
			fn(l)
		}
	})
	return e.b
}

// encode appends a snapshot of the counts counts, the root trie rc and
// the index's nl leaves, which each calls fn with in order.
func (e *snapEncoder) encode(counts []byte, rc *rootCache, nl int, each func(fn func(*inode))) {
	e.b = append(e.b, snapshotVersion)
	e.b = binary.AppendUvarint(e.b, uint64(len(counts)))
	e.b = append(e.b, counts...)
	if rc.top == nil {
		e.b = append(e.b, 0)
		e.b = binary.AppendUvarint(e.b, uint64(rc.topN))
		if rc.topKnown {
			e.b = append(e.b, 1)
			e.b = append(e.b, rc.topHash[:]...)
		} else {
			e.b = append(e.b, 0)
		}
	} else {
		e.b = append(e.b, 1)
		e.inner(rc.top)
	}
	e.b = binary.AppendUvarint(e.b, uint64(nl))
	each(func(l *inode) {
		e.b = binary.AppendUvarint(e.b, l.lo.Time)
		e.b = append(e.b, l.lo.Digest[:]...)
		e.b = l.a.put(e.b)
		e.spill()
	})
}

// appendInner appends the encoding of the inner node n to b.
func appendInner(b []byte, n *trieInner) []byte {
	e := snapEncoder{b: b}
	e.inner(n)
	return e.b
}

// inner appends the encoding of the inner node n.
func (e *snapEncoder) inner(n *trieInner) {
	if n.dirty {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		e.b = append(e.b, n.hash[:]...)
	}
	for k := range 16 {
		switch {
		case n.kid(k) != nil:
			e.b = append(e.b, 1)
			e.inner(n.kid(k))
		case n.n[k] == 0:
			e.b = append(e.b, 0)
		case n.dirty && n.known&(1<<k) != 0:
			e.b = append(e.b, 3, n.n[k])
			e.b = append(e.b, n.hashes[k][:]...)
		default:
			e.b = append(e.b, 2, n.n[k])
		}
	}
	e.spill()
}

// snapMaxChunks is the most chunks a snapshot of n records takes: a record
// adds at most a trie leaf (34 bytes), an index leaf (76) and a share of
// an inner node's (its 49 bytes for more than 64 records), under 128
// bytes; and a few chunks for the version and the counts.
func snapMaxChunks(n int) uint64 { return uint64(n)/2 + 16 }

// openSnapshot reads a start snapshot into the root trie and the index,
// and reports whether it did; it notes where the snapshot's keys are, for
// the next writes to delete its head and the next Snapshot the rest,
// taken or not.
func (s *State) openSnapshot() (bool, error) {
	// The buffer for the chunks is made whole before the scan, so that
	// joining them copies each byte once: growing it chunk by chunk copied
	// tens of megabytes over and over at 10,000,000 records, most of a
	// second. A head is believed only as far as its last chunk is there,
	// and only as far as a snapshot of the records counted can take
	// (snapMaxChunks): a damaged one claiming more allocates nothing.
	var b []byte // the chunks after the head, joined
	if v, err := s.kv.Get(snapshotKey(0)); err != nil {
		return false, fmt.Errorf("crdt: reading the start snapshot: %w", err)
	} else if n, w := binary.Uvarint(v); w > 0 && n > 0 && n <= snapMaxChunks(s.Len()) {
		last, err := s.kv.Get(snapshotKey(uint32(n)))
		if err != nil {
			return false, fmt.Errorf("crdt: reading the start snapshot: %w", err)
		}
		if last != nil {
			b = make([]byte, 0, n*snapChunk)
		}
	}
	whole := true // the keys are 'S' 0, 1, 2... and the head decodes
	var chunks uint64
	var sum uint32
	i := uint32(0) // keys in the run from the first
	err := s.kv.Scan([]byte{tagSnapshot}, nil, func(k, v []byte) error {
		var at uint32
		if len(k) == 5 {
			at = binary.BigEndian.Uint32(k[1:])
		}
		if len(k) != 5 || at == math.MaxUint32 || i > 0 && at != s.snapEnd || i == 0 && at > 1 {
			// Not in the run, which starts at the head or, if a snapshot
			// was cut short before its head, at its first chunk: damage,
			// noted one by one (so that the keys the next Snapshot
			// deletes are at most those there).
			s.snapOdd = append(s.snapOdd, bytes.Clone(k))
			whole = false
			return nil
		}
		s.snapEnd = at + 1
		s.snapHead = s.snapHead || at == 0
		switch {
		case !whole:
		case at != i:
			whole = false // no head
		case i == 0:
			var w int
			chunks, w = binary.Uvarint(v)
			if whole = w > 0 && len(v) == w+4 && chunks < math.MaxUint32; whole {
				sum = binary.BigEndian.Uint32(v[w:])
			}
		case b != nil: // else the head's last chunk is missing: not whole
			b = append(b, v...)
		}
		i++
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("crdt: reading the start snapshot: %w", err)
	}
	if i == 0 || !whole || uint64(i) != chunks+1 || chunks > snapMaxChunks(s.Len()) || crc32.Checksum(b, crcTable) != sum {
		return false, nil
	}
	var root rootCache
	var leaves []*inode
	if !decodeSnapshot(b, s.countsRaw, &root, &leaves) {
		return false, nil
	}
	if root.top == nil && root.topN > trieLeafMax || root.top != nil && countInner(root.top) != nil || root.count() != s.Len() {
		return false, nil
	}
	n := 0
	for i, l := range leaves {
		if l.a.Count < 0 || l.a.Count > leafMax || i == 0 && l.lo != (Item{}) || i > 0 && !leaves[i-1].lo.less(&l.lo) {
			return false, nil
		}
		n += l.a.Count
	}
	if n != s.Len() || len(leaves) == 0 {
		return false, nil
	}
	s.root.top, s.root.topN, s.root.topKnown, s.root.topHash = root.top, root.topN, root.topKnown, root.topHash
	s.root.holding = root.holding
	s.idx.open(indexStore{s}, leaves)
	s.snapHeld, s.snapTaken = true, true
	return true, nil
}

// decodeSnapshot decodes a snapshot's bytes, which must be of the counts
// counts, into rc and leaves.
func decodeSnapshot(b, counts []byte, rc *rootCache, leaves *[]*inode) bool {
	d := snapDecoder{b: b}
	if d.byte() != snapshotVersion {
		return false
	}
	if c := d.bytes(int(d.uvarint())); d.bad || string(c) != string(counts) {
		return false
	}
	switch d.byte() {
	case 0:
		rc.topN = int(d.uvarint())
		if d.byte() == 1 {
			rc.topKnown = true
			copy(rc.topHash[:], d.bytes(sha256.Size))
		}
	case 1:
		rc.top = d.inner(0)
		rc.holding = d.holding
	default:
		return false
	}
	nl := d.uvarint()
	if nl > uint64(len(d.b))/(2+protocol.DigestSize+32) { // a leaf's bytes at the least
		return false
	}
	// The leaves are made in one allocation, and their summaries read in
	// place: at 10,000,000 records a start read the snapshot in 217 to 250
	// ms rather than 282 to 312 (2 cores, five starts of each build).
	*leaves = slices.Grow(*leaves, int(nl))
	slab := make([]inode, nl)
	for i := range slab {
		l := &slab[i]
		l.lo.Time = d.uvarint()
		copy(l.lo.Digest[:], d.bytes(protocol.DigestSize))
		sum := d.bytes(32)
		cnt := d.uvarint()
		if d.bad || cnt > math.MaxInt32 {
			return false
		}
		for j := range l.a.Sum {
			l.a.Sum[j] = binary.LittleEndian.Uint64(sum[8*j:])
		}
		l.a.Count = int(cnt)
		*leaves = append(*leaves, l)
	}
	return !d.bad && len(d.b) == 0
}

type snapDecoder struct {
	b       []byte
	bad     bool
	holding int // inner nodes decoded with their leaves' hashes
}

func (d *snapDecoder) byte() byte {
	if len(d.b) < 1 {
		d.bad = true
		return 0xff
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *snapDecoder) bytes(n int) []byte {
	if n < 0 || len(d.b) < n {
		d.bad = true
		return nil
	}
	c := d.b[:n]
	d.b = d.b[n:]
	return c
}

func (d *snapDecoder) uvarint() uint64 {
	v, w := binary.Uvarint(d.b)
	if w <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[w:]
	return v
}

// inner decodes an inner node at depth.
func (d *snapDecoder) inner(depth int) *trieInner {
	n := &trieInner{dirty: true}
	switch d.byte() {
	case 0:
	case 1:
		copy(n.hash[:], d.bytes(sha256.Size))
		n.dirty = false
	default:
		d.bad = true
		return n
	}
	for k := range 16 {
		if d.bad {
			return n
		}
		switch tag := d.byte(); tag {
		case 0:
		case 1:
			if depth+1 >= trieMaxDepth {
				d.bad = true
				return n
			}
			n.setKid(k, d.inner(depth+1))
		case 2, 3:
			cnt := d.byte()
			most := byte(trieLeafMax)
			if depth+1 == trieMaxDepth {
				most = 16
			}
			if cnt == 0 || cnt > most {
				d.bad = true
				return n
			}
			n.n[k] = cnt
			if tag == 3 {
				if !n.dirty {
					d.bad = true // not written: a hash the node's makes useless
					return n
				}
				h := d.bytes(sha256.Size)
				if d.bad {
					return n
				}
				if n.setLeaf(k, (*[sha256.Size]byte)(h)) {
					d.holding++
				}
			}
		default:
			d.bad = true
			return n
		}
	}
	return n
}
