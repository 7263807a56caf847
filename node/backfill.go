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

// The feed of a repo made by a version that kept no summary rows reads
// its older records whole (feed.Hub.Summaries): a feed page then costs a
// lookup of each record's key and value, which grows with the store. The
// daemon writes their rows in the background, from the newest record
// back, backfillChunk records at a time, each chunk committed as a save
// is: a feed page reads rows from the first chunk on, and a daemon
// stopped halfway goes on at its next start where it stopped.

// backfillChunk is how many records a step of the backfill reads and
// gives rows to, in one commit.
const backfillChunk = 4096

// backfillPause is the longest the backfill rests between two steps: it
// rests as long as the last step took, so that it takes at most about half
// of the disk's time from what the daemon serves.
const backfillPause = time.Second

// backfill gives summary rows to the records of every commons that lacks
// them (a repo made by a version that kept none), step by step, until
// none lacks them or the node stops. It logs what it does, and stops at
// the first error (the records it did not reach are read whole still, and
// the next start goes on).
func (n *Node) backfill() {
	defer close(n.backfilled)
	for _, id := range n.commonsIDs() {
		from, ok := n.feeds.SummariesFrom(id)
		if !ok || from == 0 {
			continue
		}
		start := time.Now()
		n.log.Info("feed: writing the summary rows an earlier version did not keep, in the background (until then, feed pages read those records whole)", "commons", id, "records", from)
		// A line at each tenth of the way, for the operator.
		tenth := max(from/10, 1)
		next := from - min(from, tenth)
		for {
			step := time.Now()
			more, err := n.backfillStep(n.ctx, id, backfillChunk)
			if n.ctx.Err() != nil {
				return
			}
			if err != nil {
				n.log.Warn("feed: writing the summary rows of older records stopped: feed pages read them whole; the next start goes on", "commons", id, "err", err)
				break
			}
			if !more {
				n.log.Info("feed: summary rows written", "commons", id, "records", from, "took", time.Since(start).Round(time.Millisecond))
				break
			}
			if left, _ := n.feeds.SummariesFrom(id); left <= next && left > 0 {
				n.log.Info("feed: writing summary rows", "commons", id, "records_left", left, "of", from)
				if next = left - left%tenth; next == left {
					next -= min(next, tenth)
				}
			}
			t := time.NewTimer(min(time.Since(step), backfillPause))
			select {
			case <-n.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// backfillStep gives summary rows to up to chunk of commons id's records
// that lack them, the newest of those, and reports whether any lack them
// still. It reads the records and commits their rows on the loop, between
// saves, keeping the state's cursor; if the feed changed meanwhile (the
// state was derived again, the commons left), it does nothing.
func (n *Node) backfillStep(ctx context.Context, id cid.Cid, chunk int) (more bool, err error) {
	n.rowsMu.Lock()
	defer n.rowsMu.Unlock()
	from, ok := n.feeds.SummariesFrom(id)
	if !ok || from == 0 {
		return false, nil
	}
	lo := from - min(from, uint64(chunk))
	// At most from-lo records lie in (lo, from]: a page that long holds
	// them all, and may reach past from where some are left out.
	page, err := n.readFeed(ctx, id, lo, int(from-lo))
	if err != nil {
		return false, fmt.Errorf("node: read the records of commons %s: %w", id, err)
	}
	done := make([]feed.Applied, 0, len(page))
	for _, s := range page {
		if s.Cursor > from {
			break
		}
		b, err := protocol.ParseStored(s.CID, s.Raw)
		if err != nil {
			return false, fmt.Errorf("node: stored record %s: %w", s.CID, err)
		}
		done = append(done, feed.Applied{Cursor: s.Cursor, Block: b})
	}
	rows, err := n.feeds.BackfillRows(ctx, id, done)
	if err != nil {
		return false, err
	}
	ws := make([]store.Write, 0, len(rows)+2)
	for _, w := range rows {
		ws = append(ws, store.Write{Key: append([]byte{prefixFeed}, w.Key...), Value: w.Value})
	}
	// The state was read as this version's (derivedCurrent): with this
	// version's string, the next start trusts the summaries row.
	ws = append(ws, store.Write{Key: versionKey, Value: []byte(derivedVersion())})
	for {
		saving := false
		if derr := n.do(ctx, func() {
			if n.savingNow {
				saving = true
				return
			}
			if now, ok := n.feeds.SummariesFrom(id); !ok || now != from {
				return // changed meanwhile: the next step reads it again
			}
			var applied uint64
			if applied, err = n.st.Applied(ctx, id); err != nil {
				return
			}
			if applied < from {
				err = fmt.Errorf("the state's cursor, %d, is before the records' without summary rows, %d", applied, from)
				return
			}
			b := feed.BackfilledRow(lo, applied)
			ws := append(ws, store.Write{Key: append([]byte{prefixFeed}, b.Key...), Value: b.Value})
			if err = n.st.CommitDerived(ctx, []store.Derived{{Commons: id, Writes: ws, Applied: applied}}); err == nil {
				n.feeds.Backfilled(id, lo)
			}
		}); derr != nil {
			return false, derr
		}
		if err != nil {
			return false, fmt.Errorf("node: write the feed's summary rows of commons %s: %w", id, err)
		}
		if !saving {
			return true, nil
		}
		t := time.NewTimer(10 * time.Millisecond) // for the save to end
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}
