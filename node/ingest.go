package node

import (
	"context"
	"fmt"

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
	joined  map[cid.Cid]bool  // commons first replicated by this batch
	cursors []uint64          // the entries' feed cursors, once committed
	err     error             // the commit's error
}

// maxInFlight is how many batches may be with the committer at once: one
// being written, one waiting. Requests wait in ingestCh meanwhile, and form
// the next batch, all the larger, when one comes back.
const maxInFlight = 2

// ingest hands validated blocks to the event loop and waits until they are
// durably stored and applied.
func (n *Node) ingest(ctx context.Context, blocks []*protocol.Block, join bool) (ingestResult, error) {
	if n.ctx == nil {
		return ingestResult{}, api.ErrClosed
	}
	req := &ingestReq{blocks: blocks, join: join, done: make(chan ingestResult, 1)}
	select {
	case n.ingestCh <- req:
	case <-ctx.Done():
		return ingestResult{}, ctx.Err()
	case <-n.stopped:
		return ingestResult{}, api.ErrClosed
	}
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
// by a batch in flight, and the commons to replicate. Loop only.
func (n *Node) prepare(reqs []*ingestReq) *batch {
	b := &batch{reqs: reqs, results: make([]ingestResult, len(reqs)), joined: map[cid.Cid]bool{}}
	for i, req := range reqs {
		res := ingestResult{added: make([]bool, len(req.blocks)), skipped: make([]bool, len(req.blocks))}
		for j, blk := range req.blocks {
			id := blk.CommonsID()
			rep := n.commons[id]
			if rep == nil && req.join {
				var err error
				if rep, err = n.addReplica(id); err != nil {
					res.err = err
					break
				}
				b.joined[id] = true
			}
			if rep == nil {
				res.skipped[j] = true
				continue
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

// committer writes batches to the store, one group commit each, in order,
// and hands them back to the loop.
func (n *Node) committer() {
	for {
		select {
		case b := <-n.toCommit:
			if len(b.entries) > 0 {
				b.cursors, b.err = n.st.PutRecords(n.ctx, b.entries)
			}
			select {
			case n.committed <- b:
			case <-n.ctx.Done():
				return
			}
		case <-n.ctx.Done():
			return
		}
	}
}

// finish applies a committed batch and answers its requests. Loop only.
func (n *Node) finish(b *batch) {
	for _, blk := range b.fresh {
		delete(n.inFlight, blk.CID)
	}
	if b.err != nil {
		err := fmt.Errorf("node: store records: %w", b.err)
		n.log.Error("ingest failed", "records", len(b.entries), "err", err)
		for i := range b.results {
			b.results[i] = ingestResult{err: err}
		}
	} else if len(b.fresh) > 0 {
		n.applyLive(b.fresh, b.cursors)
		n.noteBlobs(b.fresh)
	}
	for i, req := range b.reqs {
		if req.done != nil {
			req.done <- b.results[i]
		}
	}
	for id := range b.joined {
		n.afterJoin(id)
	}
}

// apply adds stored records of one commons to its state, one at a time in
// cursor order, so that each status change is attributed to the record
// that caused it, the same way live and at start. It also moves the clock
// past every record that is not from the future. Loop only (or before the
// loop starts).
func (n *Node) apply(rep *replica, blocks []*protocol.Block, cursors []uint64) ([]feed.Applied, error) {
	out := make([]feed.Applied, 0, len(blocks))
	limit := n.nowMillis() + protocol.MaxClockSkewMillis
	for i, b := range blocks {
		changes, err := rep.state.Add(b)
		if err != nil {
			return out, err
		}
		a := feed.Applied{Cursor: cursors[i], Block: b, Changes: make([]feed.Change, len(changes))}
		for j, ch := range changes {
			a.Changes[j].Change = ch
			if ch.From != "" {
				a.Changes[j].Subject = rep.state.Block(ch.Contribution)
			}
		}
		out = append(out, a)
		if t := b.Record.Time; t > n.hlc && t.Millis() <= limit {
			n.hlc = t
		}
	}
	return out, nil
}

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
		done, err := n.apply(rep, byCommons[id], cursorsOf[id])
		if err != nil {
			// Unreachable: blocks were grouped by their commons.
			n.log.Error("apply", "commons", id, "err", err)
		}
		n.feeds.Added(id, done, true)
		n.metrics.Ingested(len(done))
		n.logChanges(id, done)
		if manifestIn(done) {
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

func (n *Node) logChanges(id cid.Cid, done []feed.Applied) {
	for _, a := range done {
		for _, ch := range a.Changes {
			if ch.From == "" {
				n.log.Debug("contribution added", "commons", id, "cid", ch.Contribution, "status", ch.To)
			} else {
				n.log.Info("contribution status", "commons", id, "cid", ch.Contribution, "from", ch.From, "to", ch.To)
			}
		}
	}
}

// addReplica starts replicating a commons: durably listed in the store,
// an empty view, and (online) its gossip topic. Loop only.
func (n *Node) addReplica(id cid.Cid) (*replica, error) {
	if rep := n.commons[id]; rep != nil {
		return rep, nil
	}
	if err := n.st.AddCommons(n.ctx, id); err != nil {
		return nil, fmt.Errorf("node: join %s: %w", id, err)
	}
	rep := &replica{id: id, state: crdt.New(id), dials: map[string]bool{}}
	if n.ps != nil {
		if err := n.joinTopic(rep); err != nil {
			return nil, err
		}
	}
	n.commons[id] = rep
	n.order = append(n.order, id)
	n.log.Info("replicating commons", "commons", id)
	select {
	case n.joined <- struct{}{}:
	default:
	}
	return rep, nil
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
