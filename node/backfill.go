package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// back, backfillChunk records at a time, each chunk's rows stored by a
// save of the commons' derived state, with the row that says which
// records have rows: a feed page reads rows from the first chunk on, and
// a daemon stopped halfway goes on at its next start where it stopped.
//
// Likewise, a repo made by a version that kept no status rows looks the
// statuses of its older contributions up in the state (feed.Hub.Statuses
// leaves them to the caller), a point read each at a random place of the
// store. Once the summary rows are written, the daemon gives those
// contributions their cursors in the state and their status rows
// (placeStep), from the newest back, and says from where they have them
// in the same saves.

// backfillChunk is how many records a step of the backfill reads and
// gives rows to, in one save (fewer if their summaries are large).
const backfillChunk = 4096

// backfillPause is the longest the backfill rests between two steps: it
// rests as long as the last step took, so that it takes at most about half
// of the disk's time from what the daemon serves.
const backfillPause = time.Second

// backfill gives summary rows to the records of every commons that lacks
// them, and then places and status rows to the contributions that lack
// them (a repo made by a version that kept none), step by step, until
// none lacks them or the node stops; and again each time a commons left
// before they were all written is joined again. It logs what it does, and
// stops a kind at the first error (the records it did not reach are read
// whole still, or their statuses looked up in the state, until the next
// pass: the next start, or a pass woken by such a join).
func (n *Node) backfill() {
	passed := n.backfilled
	defer func() {
		if passed != nil {
			close(passed)
		}
	}()
	for n.backfillPass() {
		if passed != nil {
			close(passed)
			passed = nil
		} else {
			select {
			case n.backfillPassed <- struct{}{}:
			default:
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.rejoined:
		}
	}
}

// backfillPass runs the backfill once over the commons replicated, and
// reports whether to go on (false once the node stops).
func (n *Node) backfillPass() bool {
	kinds := []rowsBackfill{
		{"summary rows", "feed pages read those records whole", n.feeds.SummariesFrom, n.backfillStep},
		{"status rows", "feed pages look their contributions' statuses up in the state", n.feeds.StatusesFrom, n.placeStep},
	}
	for _, k := range kinds {
		for _, id := range n.commonsIDs() {
			if !n.backfillRows(id, k) {
				return false
			}
		}
	}
	return true
}

// wakeBackfill wakes the daemon's backfill for commons id, joined again,
// if some of its records lack their rows. Loop only.
func (n *Node) wakeBackfill(id cid.Cid) {
	if n.rejoined == nil {
		return
	}
	summaries, _ := n.feeds.SummariesFrom(id)
	statuses, _ := n.feeds.StatusesFrom(id)
	if summaries == 0 && statuses == 0 {
		return
	}
	select {
	case n.rejoined <- struct{}{}:
	default: // a pass is due already, and reaches id
	}
}

// rowsBackfill is a kind of rows the backfill writes: what they are, what
// feed pages do until they are written, the cursor through which commons
// lack them, and a step (backfillStep, placeStep).
type rowsBackfill struct {
	what, until string
	from        func(id cid.Cid) (uint64, bool)
	step        func(ctx context.Context, id cid.Cid, chunk int) (more bool, err error)
}

// backfillRows writes rows of kind k for commons id's records through the
// cursor k.from gives, newest first, and reports whether to go on (false
// once the node stops).
func (n *Node) backfillRows(id cid.Cid, k rowsBackfill) bool {
	from, ok := k.from(id)
	if !ok || from == 0 {
		return true
	}
	start := time.Now()
	n.log.Info("feed: writing the "+k.what+" an earlier version did not keep, in the background (until then, "+k.until+")", "commons", id, "records", from)
	// A line at each tenth of the way, for the operator.
	tenth := max(from/10, 1)
	next := from - min(from, tenth)
	chunk := backfillChunk
	for {
		step := time.Now()
		before, _ := k.from(id)
		more, err := k.step(n.ctx, id, chunk)
		if n.ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errBackfillGone) {
			return true
		}
		if err != nil {
			n.log.Warn("feed: writing the "+k.what+" of older records stopped ("+k.until+"); the next start goes on", "commons", id, "err", err)
			return true
		}
		if !more {
			n.log.Info("feed: "+k.what+" written", "commons", id, "records", from, "took", time.Since(start).Round(time.Millisecond))
			return true
		}
		left, _ := k.from(id)
		chunk = nextChunk(chunk, before-min(before, left))
		if left <= next && left > 0 {
			n.log.Info("feed: writing "+k.what, "commons", id, "records_left", left, "of", from)
			if next = left - left%tenth; next == left {
				next -= min(next, tenth)
			}
		}
		t := time.NewTimer(min(time.Since(step), backfillPause))
		select {
		case <-n.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// backfillStep gives summary rows to up to chunk of commons id's records
// that lack them, the newest of those, and reports whether any lack them
// still. It reads the records, hands their rows to the loop, and waits
// until a save stored them (the loop's next: a save checks the disk's
// margin, and one that fails leaves them for the one after). If the
// commons is left, or being left, it returns errBackfillGone.
func (n *Node) backfillStep(ctx context.Context, id cid.Cid, chunk int) (more bool, err error) {
	n.rowsMu.Lock()
	defer n.rowsMu.Unlock()
	from, ok := n.feeds.SummariesFrom(id)
	if !ok {
		return false, errBackfillGone
	}
	if from == 0 {
		return false, nil
	}
	lo := from - min(from, uint64(chunk))
	ss, lo, err := n.backfillSummaries(ctx, id, lo, from)
	if err != nil {
		return false, err
	}
	rows, err := n.feeds.BackfillRows(ctx, id, ss)
	if err != nil {
		return false, err
	}
	var stored chan struct{}
	gone := false
	if err := n.do(ctx, func() {
		rep := n.commons[id]
		if gone = rep == nil || n.leaving[id] != nil; gone || rep.unsaved.backfilled != nil {
			return
		}
		if now, ok := n.feeds.SummariesFrom(id); !ok || now != from {
			return
		}
		stored = make(chan struct{})
		rep.unsaved.backfill, rep.unsaved.backfillFrom, rep.unsaved.backfilled = rows, lo, stored
		n.save()
	}); err != nil {
		return false, err
	}
	if gone {
		return false, errBackfillGone
	}
	if stored == nil {
		return true, nil // changed meanwhile: the next step looks again
	}
	select {
	case <-stored:
		return lo > 0, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// placeStep gives their places (crdt.State.Place) to the contributions
// among up to chunk (at most placeChunk) of commons id's records that have
// none, the newest of those, with a status row for each whose status
// moved since it arrived, and reports whether any lack them still. It
// reads their contribution rows, places them on the loop, placeBatch at
// a time, and waits until a save stored them: a change of a
// contribution's status from its place on writes its row as it would for
// a contribution placed at its arrival, after the step's row. If the
// commons is left, or being left, it returns errBackfillGone.
func (n *Node) placeStep(ctx context.Context, id cid.Cid, chunk int) (more bool, err error) {
	from, ok := n.feeds.StatusesFrom(id)
	if !ok {
		return false, errBackfillGone
	}
	if from == 0 {
		return false, nil
	}
	lo := from - min(from, uint64(min(chunk, placeChunk)))
	older, err := n.feeds.OlderContributions(ctx, id, lo, from)
	if err != nil {
		return false, err
	}
	var stored chan struct{}
	for len(older) > 0 || stored == nil {
		batch := older[:min(len(older), placeBatch)]
		older = older[len(batch):]
		last := len(older) == 0
		gone, changed := false, false
		var placeErr error
		if err := n.do(ctx, func() {
			rep := n.commons[id]
			if gone = rep == nil || n.leaving[id] != nil; gone {
				return
			}
			if now, ok := n.feeds.StatusesFrom(id); !ok || now != from || rep.unsaved.placed != nil {
				changed = true
				return
			}
			u := &rep.unsaved
			if len(batch) > 0 {
				rep.kv.begin() // the entries below read through one view
				defer rep.kv.end()
			}
			var rows []store.Write
			for _, c := range batch {
				now, at, ok, err := rep.state.Place(c.CID, c.Cursor)
				if err != nil {
					// The state is unreadable (checkStates): no row goes
					// without its place.
					placeErr = fmt.Errorf("node: place contribution %s of commons %s: %w", c.CID, id, err)
					return
				}
				if ok && at == c.Cursor && now != c.Arrival {
					rows = append(rows, feed.NowRow(c.Cursor, now))
				}
			}
			// Before the rows of any change the loop applies after: a
			// change saved with them writes over them. The places go with
			// the same save (pending: the state's next Ready).
			u.rows = append(u.rows, rows...)
			u.pending = u.pending || len(batch) > 0
			if last {
				stored = make(chan struct{})
				u.placedFrom, u.placed = lo, stored
				n.save()
			}
		}); err != nil {
			return false, err
		}
		switch {
		case placeErr != nil:
			return false, placeErr
		case gone:
			return false, errBackfillGone
		case changed:
			// The next step looks again; the places given so far are kept,
			// and given again harmlessly.
			return true, nil
		}
	}
	select {
	case <-stored:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	switch now, ok := n.feeds.StatusesFrom(id); {
	case !ok:
		return false, errBackfillGone
	case now > lo:
		return true, nil // let go by a leave, not stored: the next step looks again
	}
	return lo > 0, nil
}

// placeChunk is the most records a step of placeStep covers, and
// placeBatch the most contributions it places at once on the event loop:
// each costs a read of its entry in the state, and the loop serves the
// API meanwhile.
const (
	placeChunk = 1024
	placeBatch = 64
)

// nextChunk returns how many records the step after one that asked for
// chunk and gave rows to covered should read: as many as the last could
// hold within backfillBytes, and twice as many after a step that held
// them all, up to backfillChunk; at least minChunk. A step whose records
// carry large summaries then reads few more than it keeps.
func nextChunk(chunk int, covered uint64) int {
	switch {
	case covered == 0:
		return chunk // nothing done (the feed changed meanwhile): as before
	case covered < uint64(chunk):
		return max(int(covered), minChunk)
	}
	return min(2*chunk, backfillChunk)
}

// minChunk is the fewest records a step of the backfill reads.
const minChunk = 16

// errBackfillGone stops the backfill of a commons left.
var errBackfillGone = errors.New("node: the commons is left")

// backfillBytes bounds what the summaries of one step of the backfill
// hold: a record's title, target and decision can take most of its 64
// KiB. A variable for tests.
var backfillBytes = 8 << 20

// backfillSummaries returns the summaries of commons id's records after
// cursor lo through cursor from, read whole, up to backfillBytes of them
// (the newest), and the cursor after which they are all there: lo, or a
// later one if some were left for the next step.
func (n *Node) backfillSummaries(ctx context.Context, id cid.Cid, lo, from uint64) ([]feed.Summary, uint64, error) {
	var ss []feed.Summary
	size := 0
	for after := lo; after < from; {
		page, err := n.readFeed(ctx, id, after, min(backfillPage, int(from-after)))
		if err != nil {
			return nil, lo, fmt.Errorf("node: read the records of commons %s: %w", id, err)
		}
		n.streamed.Add(int64(len(page)))
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			if s.Cursor > from {
				break
			}
			b, err := protocol.ParseStored(s.CID, s.Raw)
			if err != nil {
				return nil, lo, fmt.Errorf("node: stored record %s: %w", s.CID, err)
			}
			sum := feed.SummaryOf(s.Cursor, b)
			ss, size = append(ss, sum), size+summarySize(sum)
		}
		after = page[len(page)-1].Cursor
		// Past the budget, the oldest go to the next step.
		k := 0
		for ; size > backfillBytes && k < len(ss)-1; k++ {
			size, lo = size-summarySize(ss[k]), ss[k].Cursor
		}
		ss = slices.Delete(ss, 0, k)
	}
	return ss, lo, nil
}

// backfillPage is how many records backfillSummaries reads at once.
const backfillPage = 256

// summarySize is about what summary s holds.
func summarySize(s feed.Summary) int { return 128 + len(s.Title) + len(s.Target) + len(s.Decision) }
