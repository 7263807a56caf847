package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// Blob references on disk.
//
// Which blobs the records of a commons reference is derived state like the
// rest (derived.go): when records are applied, derive notes one row per
// reference, which the next save commits with the state and the feed's
// rows, under prefixBlob:
//
//	'b' blob CID, record CID → 0 (a licence text: no size stated)
//	                           1, uvarint size (a payload: its stated size)
//
// CIDs are self-delimiting, so a scan of 'b' and a blob's CID lists the
// records that reference it, and a scan of 'b' lists the referenced
// blobs in CID order, the references of each together. Until a save
// commits them, a replica keeps its rows in unsaved.blobs; lookups
// (eachBlobRef) read those and then the store, so memory holds no more
// than what is not saved yet.

// blobRows returns the rows of the blobs blk references (keys without
// prefixBlob).
func blobRows(blk *protocol.Block) []store.Write {
	var out []store.Write
	eachBlob(blk, func(c cid.Cid, size uint64, known bool) {
		v := []byte{0}
		if known {
			v = binary.AppendUvarint([]byte{1}, size)
		}
		out = append(out, store.Write{Key: append(c.Bytes(), blk.CID.Bytes()...), Value: v})
	})
	return out
}

// eachBlob calls fn with every blob blk references: the payloads of a
// contribution (with their stated sizes), the licence text of a manifest
// (no size stated).
func eachBlob(blk *protocol.Block, fn func(c cid.Cid, size uint64, known bool)) {
	switch {
	case blk.Record.Contribution() != nil:
		for _, p := range blk.Record.Contribution().Payload {
			fn(p.CID.Cid, p.Size, true)
		}
	case blk.Record.Manifest() != nil && blk.Record.Manifest().LicenceText != nil:
		fn(blk.Record.Manifest().LicenceText.Cid, 0, false)
	}
}

// decodeBlobRef decodes the value of a blob row of commons id.
func decodeBlobRef(id cid.Cid, v []byte) (blobRef, error) {
	r := blobRef{commons: id}
	switch {
	case len(v) == 1 && v[0] == 0:
		return r, nil
	case len(v) > 1 && v[0] == 1:
		size, k := binary.Uvarint(v[1:])
		if k == len(v)-1 {
			r.size, r.known = size, true
			return r, nil
		}
	}
	return r, fmt.Errorf("%w: commons %s: blob reference value %x", errDamagedRow, id, v)
}

// errDamagedRow: a stored blob row does not decode.
var errDamagedRow = errors.New("node: damaged derived state")

// damagedBlobKey returns the error of a blob row of commons id whose key does
// not decode.
func damagedBlobKey(id cid.Cid, k []byte) error {
	return fmt.Errorf("%w: commons %s: blob reference key %x", errDamagedRow, id, k)
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// refChunk is the most references eachBlobRefs reads from the store
// before it hands them on.
const refChunk = 256

// eachBlobRefs calls fn with every reference to blob c of the records of
// the commons replicated here, a chunk at a time, until fn returns false:
// those applied and not saved yet, then the stored ones, commons by
// commons. The first stored chunk of each commons holds one reference, so
// that a caller that decides on the first reads no more; later ones up to
// refChunk. A reference may come twice (saved between the two reads). fn
// runs outside any read of the store, so it may call the store or the
// loop. A row that does not decode is skipped, and its commons marked
// damaged.
func (n *Node) eachBlobRefs(ctx context.Context, c cid.Cid, fn func([]blobRef) bool) error {
	key := c.Bytes()
	var ids []cid.Cid
	var mem []blobRef
	if err := n.do(ctx, func() {
		ids = slices.Clone(n.order)
		for _, id := range ids {
			for _, w := range n.commons[id].unsaved.blobs {
				if bytes.HasPrefix(w.Key, key) {
					if r, err := decodeBlobRef(id, w.Value); err == nil {
						r.record = refRecord(w.Key[len(key):])
						mem = append(mem, r)
					}
				}
			}
		}
	}); err != nil {
		return err
	}
	for len(mem) > 0 {
		k := min(len(mem), refChunk)
		if !fn(mem[:k]) {
			return nil
		}
		mem = mem[k:]
	}
	prefix := append([]byte{prefixBlob}, key...)
	for _, id := range ids {
		size := 1
		for from := prefix; from != nil; size = refChunk {
			var chunk []blobRef
			var next []byte
			var bad error
			err := n.st.ScanDerived(ctx, id, prefix, from, func(k, v []byte) error {
				if len(chunk) == size {
					next = slices.Clone(k)
					return errStop
				}
				r, err := decodeBlobRef(id, v)
				if err != nil {
					bad = err
					return nil
				}
				r.record = refRecord(k[len(prefix):])
				chunk = append(chunk, r)
				return nil
			})
			if bad != nil {
				n.damaged(id, bad)
			}
			if err != nil && !errors.Is(err, errStop) {
				return fmt.Errorf("node: read the references to blob %s of commons %s: %w", c, id, err)
			}
			if len(chunk) > 0 && !fn(chunk) {
				return nil
			}
			from = next
		}
	}
	return nil
}

// eachBlobRef calls fn with every reference to blob c, as eachBlobRefs
// reads them, until fn returns false.
func (n *Node) eachBlobRef(ctx context.Context, c cid.Cid, fn func(blobRef) bool) error {
	return n.eachBlobRefs(ctx, c, func(rs []blobRef) bool {
		for _, r := range rs {
			if !fn(r) {
				return false
			}
		}
		return true
	})
}

// refRecord decodes the record CID that ends a blob row's key; Undef if
// it does not decode.
func refRecord(k []byte) cid.Cid {
	l, c, err := cid.CidFromBytes(k)
	if err != nil || l != len(k) {
		return cid.Undef
	}
	return c
}

// Payloads the commons has disowned.
//
// A banned key's records are disowned (crdt.State.Disowned): its
// contributions and reviews are inert, and its manifests carry no
// authority. A blob that only disowned records reference is not fetched
// (in the background or on demand) nor served, so a flood's payloads cost
// a node nothing once the association bans the flooder, whatever its
// records still claim. A blob that any other record references (an honest
// contribution whose payload a flooder claims too) is fetched and served
// as before. Lifting a ban sweeps again (bansLifted), which fetches them. A
// disowned blob stored already stays stored until the operator asks
// (DropDisowned: commons repo compact --disowned).

// servedClaims bounds the references a request for a blob reads: a blob
// that more records reference is served without reading the rest, so
// that a peer's request costs a bounded read however many claims a
// banned key made. A fetch reads them all (claim's limit 0), so such a
// blob is not fetched.
const servedClaims = refChunk

// errDisowned: every record that references a blob is by a banned key.
var errDisowned = errors.New("every record here that references it is by a banned key, so the commons has disowned it")

// claim reports whether a record replicated here references blob c, and
// whether every one that does is disowned by its commons. In a commons
// that bans no key, the first reference decides; otherwise the state is
// asked about each, a chunk of references at a time. With limit > 0, a
// blob that more than limit records reference is taken to be owned.
// Without a limit (a fetch, a sweep) it reads, for a blob that only a
// banned key claims, every one of its claims, and asks the state about each
// on the loop, a chunk at a time: a cost linear in the claims that key
// made (about 2 µs each, measured with the store in the page cache), which
// it paid for, each record signed and stored.
func (n *Node) claim(ctx context.Context, c cid.Cid, limit int) (referenced, disowned bool, err error) {
	owned, seen := false, 0
	var doErr error
	err = n.eachBlobRefs(ctx, c, func(rs []blobRef) bool {
		referenced = true
		seen += len(rs)
		if limit > 0 && seen > limit || slices.ContainsFunc(rs, func(r blobRef) bool { return !n.bansIn(r.commons) }) {
			owned = true
			return false
		}
		doErr = n.do(ctx, func() {
			owned = slices.ContainsFunc(rs, func(r blobRef) bool {
				rep := n.commons[r.commons]
				return rep == nil || !rep.state.Disowned(r.record)
			})
		})
		return doErr == nil && !owned
	})
	if err == nil {
		err = doErr
	}
	if err != nil {
		return referenced, false, err
	}
	return referenced, referenced && !owned, nil
}

// maxStatedSizes bounds the distinct sizes a blobSummary keeps.
const maxStatedSizes = 16

// blobSummary is what the records replicated here say of a blob, in
// memory bounded whatever their number: the commons they belong to, the
// smallest sizes they state, and whether one states none.
type blobSummary struct {
	commons []cid.Cid
	sizes   []uint64 // ascending, distinct, at most maxStatedSizes
	more    bool     // more distinct sizes are stated than sizes holds (all larger)
	unknown bool     // a reference states no size (a licence text)
}

func (s *blobSummary) add(r blobRef) {
	if !slices.ContainsFunc(s.commons, r.commons.Equals) {
		s.commons = append(s.commons, r.commons)
	}
	if !r.known {
		s.unknown = true
		return
	}
	i, found := slices.BinarySearch(s.sizes, r.size)
	if found {
		return
	}
	if len(s.sizes) == maxStatedSizes {
		s.more = true
		if i == len(s.sizes) {
			return
		}
		s.sizes = s.sizes[:len(s.sizes)-1]
	}
	s.sizes = slices.Insert(s.sizes, i, r.size)
}

// summarize returns what the records replicated here say of blob c.
func (n *Node) summarize(ctx context.Context, c cid.Cid) (blobSummary, error) {
	var s blobSummary
	err := n.eachBlobRef(ctx, c, func(r blobRef) bool {
		s.add(r)
		return true
	})
	return s, err
}

// statesSize reports whether a record replicated here states size for
// blob c.
func (n *Node) statesSize(ctx context.Context, c cid.Cid, size uint64) bool {
	found := false
	err := n.eachBlobRef(ctx, c, func(r blobRef) bool {
		found = r.known && r.size == size
		return !found
	})
	return err == nil && found
}

// DropDisowned deletes the stored blobs that only disowned records
// reference (claim): the payloads of banned keys, in the commons that ban
// keys. It is the operator's to ask for (commons repo compact --disowned):
// a ban can be lifted, and a payload deleted everywhere then comes back
// only from its author. The store gives the space back later
// (badgerstore.Compact). It returns how many blobs it deleted, and their
// bytes.
//
// It deletes nothing while the store holds records of a commons it does
// not replicate (left without purge): their references are not read, and
// one of them may be the only honest claim on a blob.
func (n *Node) DropDisowned(ctx context.Context) (blobs int, size int64, err error) {
	ids := n.commonsIDs()
	stored, err := n.st.StoredCommons(ctx)
	if err != nil {
		return 0, 0, err
	}
	var left []string
	for _, c := range stored {
		if !slices.ContainsFunc(ids, c.Equals) {
			left = append(left, c.String())
		}
	}
	if len(left) > 0 {
		slices.Sort(left)
		return 0, 0, fmt.Errorf("the store holds records of commons this node left without deleting them (%s): the payloads they reference are not known, so nothing was deleted; join them again, or leave --purge them, and try again", strings.Join(left, ", "))
	}
	for _, id := range ids {
		if !n.bansIn(id) {
			continue
		}
		var from []byte
		for {
			chunk, next, err := n.blobChunk(id, from)
			if err != nil {
				return blobs, size, err
			}
			for _, ref := range chunk {
				if has, err := n.st.HasBlob(ctx, ref.blob); err != nil || !has {
					if err != nil {
						return blobs, size, err
					}
					continue
				}
				_, disowned, err := n.claim(ctx, ref.blob, 0)
				if err != nil {
					return blobs, size, err
				}
				if !disowned {
					continue
				}
				_, sz, err := n.st.ReadBlob(ctx, ref.blob, 0, nil)
				if err != nil {
					return blobs, size, err
				}
				if err := n.st.DeleteBlob(ctx, ref.blob); err != nil {
					return blobs, size, err
				}
				blobs, size = blobs+1, size+sz
			}
			if next == nil {
				break
			}
			from = next
		}
	}
	if blobs > 0 {
		n.log.Info("deleted the payloads that only banned keys' records reference", "blobs", blobs, "bytes", size)
	}
	return blobs, size, nil
}
