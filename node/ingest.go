package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// From admission to the commons' state.
//
// Admitted blocks (admit.go) reach the event loop as ingest requests. The
// loop groups the waiting requests into a batch, leaves out what its
// commons already holds or an earlier batch carries, and hands the batch to
// the committer, a goroutine of its own that writes it to the store with
// one group commit (the fsync happens there, never on the loop). The batch
// comes back to the loop, which applies it (apply: the commons' states, the
// clock, the live feed) and only then answers the requests. Batches are
// committed and applied one after another, in the order they were made, so
// every request is answered in order, after what it carried is durable and
// visible.

// ingestReq asks the event loop to store and merge validated blocks.
type ingestReq struct {
	blocks []*protocol.Block
	// join makes the node replicate the commons of any block it does not
	// replicate yet (local creation, import). Otherwise such blocks are
	// skipped.
	join bool
	done chan ingestResult // nil: fire and forget
}

type ingestResult struct {
	added   []bool // per block: newly stored
	skipped []bool // per block: commons not replicated
	err     error
}

// batch is a group of requests on its way through the committer.
type batch struct {
	reqs    []*ingestReq
	results []ingestResult
	entries []store.Entry     // to store
	fresh   []*protocol.Block // the entries' blocks
	list    []cid.Cid         // commons to list durably as replicated (new here, or listing failed before)
	cursors []uint64          // per entry: its feed cursor, 0 if not stored by this batch
	err     error             // the commit's error
	// listedOK are the commons of list that the committer listed.
	listedOK []cid.Cid
	touched  []cid.Cid // every commons the batch stores or lists for

	// save: the batch stores derived state only (derived.go).
	save  bool
	saves []saving
	// sweep: a blob sweep is to start once the save is stored
	// (sweepAfterSave).
	sweep bool
	// unlocated: the commit failed and may have stored records that the
	// feed log could not be read to find; they are not applied.
	unlocated bool
}

// maxInFlight is how many batches may be with the committer at once; it
// writes those waiting together, in one group commit. Beyond that, requests
// wait in ingestCh.
const maxInFlight = 4

// ingest hands validated blocks to the event loop and waits until they are
// durably stored and applied.
func (n *Node) ingest(ctx context.Context, blocks []*protocol.Block, join bool) (ingestResult, error) {
	req, err := n.submit(ctx, blocks, join)
	if err != nil {
		return ingestResult{}, err
	}
	return n.await(req)
}

// submit hands validated blocks to the event loop and returns at once;
// await waits for them to be stored and applied. A caller may submit
// several before awaiting the first: they are answered in order, and
// those waiting together are committed together.
func (n *Node) submit(ctx context.Context, blocks []*protocol.Block, join bool) (*ingestReq, error) {
	if n.ctx == nil {
		return nil, api.ErrClosed
	}
	req := &ingestReq{blocks: blocks, join: join, done: make(chan ingestResult, 1)}
	select {
	case n.ingestCh <- req:
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.stopped:
		return nil, api.ErrClosed
	}
}

// await waits for a submitted request's result.
func (n *Node) await(req *ingestReq) (ingestResult, error) {
	select {
	case res := <-req.done:
		return res, res.err
	case <-n.stopped:
		return ingestResult{}, api.ErrClosed
	}
}

// takeRequests drains the waiting requests that follow first, up to
// MaxBatch blocks in all. Loop only.
func (n *Node) takeRequests(first *ingestReq) []*ingestReq {
	reqs, total := []*ingestReq{first}, len(first.blocks)
	for total < n.cfg.MaxBatch {
		select {
		case r := <-n.ingestCh:
			reqs = append(reqs, r)
			total += len(r.blocks)
		default:
			return reqs
		}
	}
	return reqs
}

// prepare makes a batch of requests: the blocks not held yet, nor carried
// by a batch in flight, and the commons to replicate. A request whose
// commons cannot be replicated fails whole: none of its blocks is stored.
// Loop only.
func (n *Node) prepare(reqs []*ingestReq) *batch {
	b := &batch{reqs: reqs, results: make([]ingestResult, len(reqs))}
	touched := map[cid.Cid]bool{}
	defer func() {
		for _, id := range b.touched {
			if rep := n.commons[id]; rep != nil {
				rep.kv.end()
			}
		}
	}()
	for i, req := range reqs {
		res := ingestResult{added: make([]bool, len(req.blocks)), skipped: make([]bool, len(req.blocks))}
		start := len(b.entries)
		for j, blk := range req.blocks {
			id := blk.CommonsID()
			if n.leaving[id] != nil {
				if req.join {
					res = ingestResult{err: errBeingLeft(id)}
					n.unprepare(b, start)
					break
				}
				res.skipped[j] = true
				continue
			}
			rep := n.commons[id]
			if rep == nil && req.join {
				var err error
				if rep, err = n.addReplica(id); err != nil {
					res = ingestResult{err: err}
					n.unprepare(b, start)
					break
				}
			}
			if rep == nil {
				res.skipped[j] = true
				continue
			}
			if !touched[id] {
				touched[id] = true
				b.touched = append(b.touched, id)
				rep.kv.begin() // the Has below read through one view
				rep.batches++
				if !rep.listed {
					b.list = append(b.list, id)
				}
			}
			if rep.state.Has(blk.CID) || n.inFlight[blk.CID] {
				continue
			}
			n.inFlight[blk.CID] = true
			res.added[j] = true
			b.entries = append(b.entries, store.Entry{CID: blk.CID, Commons: id, Raw: blk.Raw})
			b.fresh = append(b.fresh, blk)
		}
		b.results[i] = res
	}
	return b
}

// unprepare takes the entries from start on back out of b. Loop only.
func (n *Node) unprepare(b *batch, start int) {
	for _, blk := range b.fresh[start:] {
		delete(n.inFlight, blk.CID)
	}
	b.entries, b.fresh = b.entries[:start], b.fresh[:start]
}

// committer writes batches to the store, in order, and hands them back to
// the loop, until the loop closes toCommit. The batches waiting when it
// starts a commit go into that one commit.
func (n *Node) committer() {
	for b := range n.toCommit {
		group := []*batch{b}
	gather:
		for {
			select {
			case more, ok := <-n.toCommit:
				if !ok {
					break gather
				}
				group = append(group, more)
			default:
				break gather
			}
		}
		var recs []*batch
		for _, b := range group {
			if !b.save {
				recs = append(recs, b)
			}
		}
		if len(recs) > 0 {
			n.commitGroup(recs)
		}
		for _, b := range group {
			if b.save {
				n.commitSave(b)
			}
		}
		for _, b := range group {
			n.committed <- b // never blocks: room for every batch in flight
		}
	}
}

// commitGroup commits batches together (commitBatch on their union) and
// gives each its part of the outcome.
func (n *Node) commitGroup(group []*batch) {
	if len(group) == 1 {
		n.commitBatch(group[0])
		return
	}
	all := &batch{}
	listing := map[cid.Cid]bool{}
	for _, b := range group {
		all.entries = append(all.entries, b.entries...)
		for _, id := range b.list {
			if !listing[id] {
				listing[id] = true
				all.list = append(all.list, id)
			}
		}
	}
	n.commitBatch(all)
	off := 0
	for _, b := range group {
		b.cursors = all.cursors[off : off+len(b.entries)]
		off += len(b.entries)
		b.err = all.err
		for _, id := range all.listedOK {
			if slices.ContainsFunc(b.list, id.Equals) {
				b.listedOK = append(b.listedOK, id)
			}
		}
	}
}

// commitBatch lists the commons the batch replicates anew, then stores its
// records. A commit is not cut short when the node stops (Close waits for
// it). When it fails, the records it stored all the same (a failed group
// commit may keep a prefix) get their cursors, found in the feed log, so
// that the loop applies exactly what the store holds; a commons listed for
// it of which nothing was stored is unlisted again.
func (n *Node) commitBatch(b *batch) {
	ctx := context.Background()
	b.cursors = make([]uint64, len(b.entries))
	if err := n.diskOK(); err != nil && len(b.entries) > 0 {
		b.err = err
		return
	}
	var listed []cid.Cid
	for _, id := range b.list {
		if err := n.st.AddCommons(ctx, id); err != nil {
			b.err = fmt.Errorf("node: list commons %s: %w", id, err)
			n.unlist(ctx, listed)
			return
		}
		listed = append(listed, id)
	}
	if len(b.entries) > 0 {
		heads := n.feedHeads(ctx, b.entries)
		cursors, err := n.st.PutRecords(ctx, b.entries)
		if err == nil {
			b.cursors = cursors
			n.stored.Add(int64(len(b.entries)))
		} else {
			b.err = fmt.Errorf("node: store records: %w", err)
			n.storedAnyway(ctx, b, heads)
			stored := listed[:0:0]
			for _, id := range listed {
				if n.storesFor(b, id) {
					stored = append(stored, id)
				} else {
					n.unlist(ctx, []cid.Cid{id})
				}
			}
			listed = stored
		}
	}
	b.listedOK = listed
}

// unlist takes commons a failed commit listed back off the store's list
// (committer only).
func (n *Node) unlist(ctx context.Context, ids []cid.Cid) {
	for _, id := range ids {
		if err := n.st.RemoveCommons(ctx, id); err != nil {
			n.log.Error("a commons listed for a failed commit stays listed, with no record", "commons", id, "err", err)
		}
	}
}

// feedHeads returns the feed head of every commons the entries belong to,
// before they are stored (committer only).
func (n *Node) feedHeads(ctx context.Context, entries []store.Entry) map[cid.Cid]uint64 {
	heads := map[cid.Cid]uint64{}
	for _, e := range entries {
		if _, ok := heads[e.Commons]; ok {
			continue
		}
		h, err := n.st.FeedHead(ctx, e.Commons)
		if err != nil {
			h = ^uint64(0) // unknown: find nothing stored anyway
		}
		heads[e.Commons] = h
	}
	return heads
}

// storedAnyway fills b.cursors for the entries that a failed commit stored
// all the same: the feed log's records after each commons' head (committer
// only).
func (n *Node) storedAnyway(ctx context.Context, b *batch, heads map[cid.Cid]uint64) {
	index := make(map[cid.Cid]int, len(b.entries))
	for i, e := range b.entries {
		index[e.CID] = i
	}
	for id, head := range heads {
		if head == ^uint64(0) {
			continue
		}
		page, err := n.st.Feed(ctx, id, head, len(b.entries))
		if err != nil {
			n.log.Error("after a failed commit, the feed log cannot be read to find the records it stored", "commons", id, "err", err)
			b.unlocated = true
			continue
		}
		for _, s := range page {
			if i, ok := index[s.CID]; ok {
				b.cursors[i] = s.Cursor
			}
		}
	}
}

// storesFor reports whether b stored a record of commons id.
func (n *Node) storesFor(b *batch, id cid.Cid) bool {
	for i, e := range b.entries {
		if b.cursors[i] > 0 && e.Commons.Equals(id) {
			return true
		}
	}
	return false
}

// finish applies what a committed batch stored and answers its requests.
// Loop only.
func (n *Node) finish(b *batch) {
	for _, blk := range b.fresh {
		delete(n.inFlight, blk.CID)
	}
	for _, id := range b.touched {
		n.commons[id].batches--
	}
	for _, id := range b.listedOK {
		n.commons[id].listed = true
	}
	var stored []*protocol.Block
	unlocated := b.unlocated // records stored that the state may not hold
	var cursors []uint64
	for i, blk := range b.fresh {
		switch {
		case b.cursors[i] > 0:
			stored = append(stored, blk)
			cursors = append(cursors, b.cursors[i])
		case b.err == nil:
			// Stored before, yet not in the state: a record left out as
			// damaged, whose bytes the store has just written again from
			// this copy (leftout.go), or one a failed commit stored but
			// could not locate.
			cursor := uint64(0)
			if rep := n.commons[blk.CommonsID()]; rep != nil {
				cursor = n.takenBack(rep, blk.CID)
			}
			if cursor == 0 {
				n.log.Error("record stored earlier but not applied; it is applied now without its feed event (a restart restores it)", "cid", blk.CID)
				unlocated = true
			}
			stored = append(stored, blk)
			cursors = append(cursors, cursor)
		}
	}
	if len(stored) > 0 {
		n.applyLive(stored, cursors)
		n.noteBlobs(stored)
	}
	if b.err != nil && !errors.Is(b.err, api.ErrDiskFull) { // a full disk is logged as it fills (diskOK)
		n.log.Error("ingest failed", "records", len(b.entries), "stored anyway", len(stored), "err", b.err)
	}
	if b.err != nil {
		for i := range b.results {
			b.results[i] = ingestResult{err: b.err}
		}
		n.dropEmpty(b)
	}
	n.checkCarried(b)
	for i, req := range b.reqs {
		if req.done != nil {
			req.done <- b.results[i]
		}
	}
	if unlocated {
		// Records may be stored that the state does not hold, before
		// records it does: a save now would say they are applied. Stop;
		// the restart applies every record after the last save.
		n.log.Error("records are stored that this node could not apply: stopping; restart it to apply them (nothing is lost)")
		n.cancel()
		return
	}
	if n.ctx.Err() == nil {
		for _, id := range b.listedOK {
			n.afterJoin(id)
		}
	}
}

// checkCarried fails the requests whose blocks were left out of b because
// an earlier batch carried them, if that batch did not store them: its
// requests were told, and so must these be. Batches finish in order, so
// the state says. Loop only.
func (n *Node) checkCarried(b *batch) {
	for i, req := range b.reqs {
		res := &b.results[i]
		if res.err != nil {
			continue
		}
		for j, blk := range req.blocks {
			if res.added[j] || res.skipped[j] {
				continue
			}
			if rep := n.commons[blk.CommonsID()]; rep == nil || !rep.state.Has(blk.CID) {
				res.err = fmt.Errorf("node: record %s was not stored: the commit that carried it failed", blk.CID)
				break
			}
		}
	}
}

// dropEmpty stops replicating the commons a failed batch would have added
// and that hold nothing, unless a batch still in flight may list them:
// they are not listed durably. Loop only.
func (n *Node) dropEmpty(b *batch) {
	for _, id := range b.list {
		rep := n.commons[id]
		if rep == nil || rep.listed || rep.state.Len() > 0 || rep.batches > 0 {
			continue // or a later batch may still list it
		}
		n.dropTopic(rep)
		delete(n.commons, id)
		n.order = slices.DeleteFunc(n.order, func(c cid.Cid) bool { return c.Equals(id) })
		n.log.Info("not replicating commons: nothing of it could be stored", "commons", id)
	}
}

// apply adds stored records of one commons to its state, one at a time in
// cursor order, so that each status change is attributed to the record
// that caused it, the same way live and at start. It also moves the clock
// past every record dated at most maxClockStep ahead of the wall clock. live reads the record of
// each contribution whose status changed, for its live event (a replay
// reads it when it needs it). Loop only (or before the loop starts).
func (n *Node) apply(rep *replica, blocks []*protocol.Block, cursors []uint64, live bool) ([]feed.Applied, error) {
	out := make([]feed.Applied, 0, len(blocks))
	limit := n.nowMillis() + maxClockStep
	rep.kv.begin()
	defer rep.kv.end()
	for i, b := range blocks {
		place := cursors[i]
		if !keepPlaces {
			place = 0
		}
		changes, err := rep.state.AddAt(b, place)
		if err != nil {
			return out, err
		}
		a := feed.Applied{Cursor: cursors[i], Block: b, Changes: make([]feed.Change, len(changes))}
		for j, ch := range changes {
			a.Changes[j].Change = ch
			if live && ch.From != "" {
				// The record is only for the event's title, kind and author:
				// a failed read leaves them out and applies the rest.
				if a.Changes[j].Subject, err = rep.state.Record(ch.Contribution); err != nil && !errors.Is(err, crdt.ErrDropped) {
					n.log.Warn("status event without its contribution's title", "contribution", ch.Contribution, "err", err)
				}
			}
		}
		out = append(out, a)
		if t := b.Record.Time; t > n.hlc && t.Millis() <= limit {
			n.hlc = t
		}
	}
	n.derive(rep, out)
	return out, nil
}

// keepPlaces is whether apply gives the state each record's cursor, which
// it keeps with a contribution (crdt.State.AddAt) for the feed's status
// rows. Tests turn it off to make a repo as a version before them did.
var keepPlaces = true

// maxClockStep is how far ahead of the wall clock a received record may
// move the node's clock. A record dated further ahead (the protocol
// accepts up to MaxClockSkewMillis, for clocks that drift) does not: a
// peer could otherwise push every node's clock minutes ahead, and a review
// stamped by the pushed clock would outrank its author's later ones.
const maxClockStep = 1000

// applyLive applies freshly stored blocks, by commons, and publishes what
// changed: the live feed, the log, and the manifests' bootstrap peers.
// Loop only.
func (n *Node) applyLive(fresh []*protocol.Block, cursors []uint64) {
	var order []cid.Cid
	byCommons := make(map[cid.Cid][]*protocol.Block)
	cursorsOf := make(map[cid.Cid][]uint64)
	for i, b := range fresh {
		id := b.CommonsID()
		if byCommons[id] == nil {
			order = append(order, id)
		}
		byCommons[id] = append(byCommons[id], b)
		cursorsOf[id] = append(cursorsOf[id], cursors[i])
	}
	for _, id := range order {
		rep := n.commons[id]
		var was authorityView
		manifests := slices.ContainsFunc(byCommons[id], func(b *protocol.Block) bool { return b.Record.Type() == protocol.TypeManifest })
		if manifests {
			was = viewAuthority(rep.state)
		}
		done, err := n.apply(rep, byCommons[id], cursorsOf[id], true)
		if err != nil {
			// The derived state could not be read: what the state would
			// derive now may rest on a read that failed. Stop, so that a
			// restart derives it again from the stored records.
			n.unreadable(id, err)
			return
		}
		n.feeds.Added(id, done, true)
		n.metrics.Ingested(len(done))
		n.logChanges(id, done)
		if manifests {
			now := viewAuthority(rep.state)
			n.logAuthority(id, was, now)
			n.noteBans(id, now.banned)
			if len(newKeys(now.banned, was.banned)) > 0 {
				n.bansLifted()
			}
		}
		if manifestIn(done) && n.ctx.Err() == nil {
			n.dialManifestPeers(rep)
		}
	}
}

func manifestIn(done []feed.Applied) bool {
	for _, a := range done {
		if a.Block.Record.Type() == protocol.TypeManifest {
			return true
		}
	}
	return false
}

// logChanges logs contributions' status changes: each at Debug, and at
// Info one by one while they are rare, or summed up every few seconds
// while many arrive (statusLog).
func (n *Node) logChanges(id cid.Cid, done []feed.Applied) {
	n.statusLog.add(n.log, id, done, n.cfg.Now())
}

// addReplica starts replicating a commons in memory: its view (empty, or
// what is stored of a commons left earlier) and (online) its gossip topic.
// The commons is listed in the store with the first records stored for it
// (commitBatch), or by Join. Loop only.
func (n *Node) addReplica(id cid.Cid) (*replica, error) {
	if rep := n.commons[id]; rep != nil {
		return rep, nil
	}
	applied, err := n.rejoinable(id)
	if err != nil {
		return nil, err
	}
	open := n.openState
	if applied > 0 {
		open = func(id cid.Cid) (*crdt.State, *storeKV, error) { return n.openDerived(id, applied) }
	}
	st, kv, err := open(id)
	if err != nil {
		return nil, err
	}
	rep := &replica{id: id, state: st, kv: kv, dials: map[string]bool{}}
	n.noteBans(id, st.Banned())
	rep.unsaved.applied = applied
	if n.ps != nil {
		if err := n.joinTopic(rep); err != nil {
			return nil, err
		}
	}
	n.commons[id] = rep
	n.order = append(n.order, id)
	n.log.Info("replicating commons", "commons", id)
	if applied > 0 {
		n.wakeBackfill(id)
	}
	select {
	case n.joined <- struct{}{}:
	default:
	}
	return rep, nil
}

// rejoinable returns the cursor through which the stored derived state of
// a commons not replicated reflects its records (0 if none are stored: a
// commons never replicated, or left and purged), or an error if that state
// cannot be taken up as it is: the records of a commons left earlier whose
// derived state is not theirs (a purge cut short, a layout of an earlier
// version), which a start derives again. Loop only.
func (n *Node) rejoinable(id cid.Cid) (uint64, error) {
	ctx := context.Background()
	head, err := n.st.FeedHead(ctx, id)
	if err != nil || head == 0 {
		return 0, err
	}
	applied, err := n.st.Applied(ctx, id)
	if err != nil {
		return 0, err
	}
	current, err := n.derivedCurrent(ctx, id)
	if err != nil {
		return 0, err
	}
	mark, err := n.st.GetDerived(ctx, id, damagedKey)
	if err != nil {
		return 0, err
	}
	if applied != head || !current || mark != nil {
		return 0, fmt.Errorf("the %d records of commons %s stored earlier need their state derived again, which the node does as it starts: join it, then restart the node (or leave --purge deletes them)", head, id)
	}
	return applied, nil
}

// afterJoin syncs a newly joined commons with every connected peer. Loop
// only.
func (n *Node) afterJoin(id cid.Cid) {
	if n.host == nil {
		return
	}
	for _, p := range n.host.Network().Peers() {
		n.goSync(p, id)
	}
}
