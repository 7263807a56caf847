package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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

// eachBlobRef calls fn with every reference to blob c of the records of
// the commons replicated here: those applied and not saved yet, then the
// stored ones, commons by commons, until fn returns false. A reference may
// come twice (saved between the two reads). fn must not call the store. A
// row that does not decode is skipped, and its commons marked damaged.
func (n *Node) eachBlobRef(ctx context.Context, c cid.Cid, fn func(blobRef) bool) error {
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
	for _, r := range mem {
		if !fn(r) {
			return nil
		}
	}
	prefix := append([]byte{prefixBlob}, key...)
	for _, id := range ids {
		var bad error
		err := n.st.ScanDerived(ctx, id, prefix, nil, func(k, v []byte) error {
			r, err := decodeBlobRef(id, v)
			if err != nil {
				bad = err
				return nil
			}
			r.record = refRecord(k[len(prefix):])
			if !fn(r) {
				return errStop
			}
			return nil
		})
		if bad != nil {
			n.damaged(id, bad)
		}
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("node: read the references to blob %s of commons %s: %w", c, id, err)
		}
	}
	return nil
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
// A contribution by a banned key is inert for good, unless the ban is
// lifted (crdt.State.Disowned). A blob that only such records claim is
// not fetched (in the background or on demand) nor served: a flood's
// payloads cost a node nothing once the association bans the flooder,
// whatever the flooder's records still claim. A blob that any other
// record claims (an honest contribution whose payload a flooder claims
// too, a manifest's licence text) is fetched and served as before. Lifting
// the ban sweeps the commons again (sweepAfterLift), which fetches them.
// A disowned blob stored already stays stored: the store reclaims no space
// from its value log (store/badgerstore, package doc).

// maxDisownedRefs bounds the references to one blob that claim reads to
// find it disowned: a blob that more records claim than that is taken to
// be owned, and so fetched and served as before, rather than have a read
// of its references grow with a flood of claims.
const maxDisownedRefs = 256

// errDisowned: every record that claims a blob is by a banned key.
var errDisowned = errors.New("every record here that claims it is by a banned key, so the commons has disowned it")

// claim reports whether a record replicated here references blob c, and
// whether every one that does is disowned by its commons (a payload of a
// banned key's contribution). Only a commons that bans keys costs more
// than a read of the first reference.
func (n *Node) claim(ctx context.Context, c cid.Cid) (referenced, disowned bool, err error) {
	var check []blobRef
	owned := false
	err = n.eachBlobRef(ctx, c, func(r blobRef) bool {
		referenced = true
		if !r.known || !r.record.Defined() || !n.bansIn(r.commons) || len(check) == maxDisownedRefs {
			owned = true
			return false
		}
		check = append(check, r)
		return true
	})
	if err != nil || owned || !referenced {
		return referenced, false, err
	}
	err = n.do(ctx, func() {
		for _, r := range check {
			if rep := n.commons[r.commons]; rep == nil || !rep.state.Disowned(r.record) {
				owned = true
				return
			}
		}
	})
	return true, err == nil && !owned, err
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
