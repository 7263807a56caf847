package node

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// DropDisownedRecords drops the bytes of the records the commons replicated
// here disowned and that no rule will read again (crdt's State.Droppable:
// the reviews of banned keys, and their contributions that name no paid
// sponsor), keeping a tombstone in each one's place (store.DropRecordBytes).
// It is the operator's to ask for (commons repo compact --disowned), with
// the daemon stopped; the store gives the space back when it is written
// again (badgerstore.Compact). It returns how many records it dropped, and
// the bytes they held.
//
// The records stay in the commons' state, so the state root is unchanged,
// and syncs with peers that hold them find nothing to carry; the same
// records arriving again (gossip, a sync, an import) are ones the state
// holds, and are not stored again. A peer that lacks them cannot have them
// from this node. Only records the saved state reflects are dropped: those
// after the state's cursor are left for the next run. Should the state be
// derived again from the records (a start after a change of rules, or
// damage), the dropped records are left out of it, and the first peer that
// kept them sends them again, whole.
func (n *Node) DropDisownedRecords(ctx context.Context) (records int, size int64, err error) {
	for _, id := range n.commonsIDs() {
		if !n.bansIn(id) {
			continue
		}
		applied, err := n.st.Applied(ctx, id)
		if err != nil {
			return records, size, err
		}
		for after := uint64(0); after < applied; {
			page, next, err := n.feedPast(ctx, id, after, min(dropPage, int(applied-after)), func(unreadable, error) error {
				return nil // dropped already, or damaged: nothing to drop
			})
			if err != nil {
				return records, size, fmt.Errorf("node: read the records of commons %s: %w", id, err)
			}
			if next == after {
				break
			}
			after = next
			drop, err := n.droppable(ctx, id, page, applied)
			if err != nil {
				return records, size, err
			}
			k, sz, err := n.st.DropRecordBytes(ctx, drop)
			records, size = records+k, size+sz
			if err != nil {
				return records, size, fmt.Errorf("node: drop records of commons %s: %w", id, err)
			}
		}
	}
	if records > 0 {
		n.log.Info("dropped the bytes of records the commons disowned (banned keys' contributions and reviews)", "records", records, "bytes", size)
	}
	return records, size, nil
}

// dropPage is how many records DropDisownedRecords reads at once.
const dropPage = 1024

// droppable returns the records of page, a page of commons id's feed log,
// whose bytes State.Droppable lets this node drop, among those through
// cursor applied.
func (n *Node) droppable(ctx context.Context, id cid.Cid, page []store.Stored, applied uint64) ([]cid.Cid, error) {
	blocks := make([]*protocol.Block, 0, len(page))
	for _, s := range page {
		if s.Cursor > applied {
			break
		}
		b, err := protocol.ParseStored(s.CID, s.Raw)
		if err != nil {
			return nil, fmt.Errorf("node: stored record %s: %w", s.CID, err)
		}
		blocks = append(blocks, b)
	}
	var out []cid.Cid
	err := n.do(ctx, func() {
		rep := n.commons[id]
		if rep == nil {
			return
		}
		for _, b := range blocks {
			if rep.state.Has(b.CID) && rep.state.Droppable(b) {
				out = append(out, b.CID)
			}
		}
	})
	return out, err
}
