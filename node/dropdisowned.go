package node

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/feed"
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
			k, sz, err := n.dropBytes(ctx, id, page, drop)
			records, size = records+k, size+sz
			if err != nil {
				return records, size, err
			}
		}
	}
	if records > 0 {
		n.log.Info("dropped the bytes of records the commons disowned (banned keys' contributions and reviews)", "records", records, "bytes", size)
	}
	return records, size, nil
}

// dropBytes drops the bytes of records drop, among page, and their
// summary rows first (dropSummaries); the backfill of summary rows
// (backfill.go) waits meanwhile, lest it give them rows again.
func (n *Node) dropBytes(ctx context.Context, id cid.Cid, page []store.Stored, drop []cid.Cid) (int, int64, error) {
	n.rowsMu.Lock()
	defer n.rowsMu.Unlock()
	if err := n.dropSummaries(ctx, id, page, drop); err != nil {
		return 0, 0, err
	}
	k, sz, err := n.st.DropRecordBytes(ctx, drop)
	if err != nil {
		return k, sz, fmt.Errorf("node: drop records of commons %s: %w", id, err)
	}
	return k, sz, nil
}

// dropSummaries deletes the feed's summary rows of records drop, among
// page, before their bytes go: a feed page leaves a dropped record out,
// as it does reading the records whole. A run stopped between the two
// leaves records whole with no summary, which the next run drops (should
// their keys be unbanned meanwhile, they stay out of the feed pages until
// the state is derived again). It
// commits on the loop, between saves, keeping the state's cursor as it
// stands: a save in flight could store another.
func (n *Node) dropSummaries(ctx context.Context, id cid.Cid, page []store.Stored, drop []cid.Cid) error {
	if len(drop) == 0 {
		return nil
	}
	cursors := make(map[cid.Cid]uint64, len(page))
	for _, s := range page {
		cursors[s.CID] = s.Cursor
	}
	ws := make([]store.Write, 0, len(drop))
	for _, c := range drop {
		ws = append(ws, store.Write{Key: append([]byte{prefixFeed}, feed.SummaryKey(cursors[c])...), Delete: true})
	}
	for {
		done := false
		var err error
		if derr := n.do(ctx, func() {
			if n.savingNow {
				return
			}
			done = true
			var applied uint64
			if applied, err = n.st.Applied(ctx, id); err == nil {
				err = n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Writes: ws, Applied: applied}})
			}
		}); derr != nil {
			return derr
		}
		if err != nil {
			return fmt.Errorf("node: drop the feed summaries of records of commons %s: %w", id, err)
		}
		if done {
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond) // for the save to end
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
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
