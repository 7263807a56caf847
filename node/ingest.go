package node

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

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

// ingest hands validated blocks to the event loop and waits until they are
// durably stored and merged.
func (n *Node) ingest(ctx context.Context, blocks []*protocol.Block, join bool) (ingestResult, error) {
	if n.ctx == nil {
		return ingestResult{}, ErrClosed
	}
	req := &ingestReq{blocks: blocks, join: join, done: make(chan ingestResult, 1)}
	select {
	case n.ingestCh <- req:
	case <-ctx.Done():
		return ingestResult{}, ctx.Err()
	case <-n.stopped:
		return ingestResult{}, ErrClosed
	}
	select {
	case res := <-req.done:
		return res, res.err
	case <-n.stopped:
		return ingestResult{}, ErrClosed
	}
}

// processIngest stores and merges one group of requests with a single group
// commit. Loop only.
func (n *Node) processIngest(reqs []*ingestReq) {
	results := make([]ingestResult, len(reqs))
	var entries []store.Entry
	var fresh []*protocol.Block
	inBatch := make(map[cid.Cid]bool)
	joined := map[cid.Cid]bool{}
	for i, req := range reqs {
		res := ingestResult{added: make([]bool, len(req.blocks)), skipped: make([]bool, len(req.blocks))}
		for j, b := range req.blocks {
			id := b.CommonsID()
			rep := n.commons[id]
			if rep == nil && req.join {
				var err error
				if rep, err = n.addReplica(id); err != nil {
					res.err = err
					break
				}
				joined[id] = true
			}
			if rep == nil {
				res.skipped[j] = true
				continue
			}
			if rep.state.Has(b.CID) || inBatch[b.CID] {
				continue
			}
			inBatch[b.CID] = true
			res.added[j] = true
			entries = append(entries, store.Entry{CID: b.CID, Commons: id, Raw: b.Raw})
			fresh = append(fresh, b)
		}
		results[i] = res
	}
	if len(entries) > 0 {
		cursors, err := n.st.PutRecords(n.ctx, entries)
		if err != nil {
			err = fmt.Errorf("node: store records: %w", err)
			n.log.Error("ingest failed", "records", len(entries), "err", err)
			for i := range results {
				results[i] = ingestResult{err: err}
			}
			n.reply(reqs, results)
			return
		}
		n.merge(fresh, cursors)
		n.noteBlobs(fresh)
	}
	n.reply(reqs, results)
	for id := range joined {
		n.afterJoin(id)
	}
}

func (n *Node) reply(reqs []*ingestReq, results []ingestResult) {
	for i, req := range reqs {
		if req.done != nil {
			req.done <- results[i]
		}
	}
}

// merge adds stored blocks to their commons' views. Loop only.
func (n *Node) merge(fresh []*protocol.Block, cursors []uint64) {
	byCommons := make(map[cid.Cid][]*protocol.Block)
	cursorsOf := make(map[cid.Cid][]uint64)
	limit := n.nowMillis() + protocol.MaxClockSkewMillis
	manifests := map[cid.Cid]bool{}
	for i, b := range fresh {
		id := b.CommonsID()
		byCommons[id] = append(byCommons[id], b)
		cursorsOf[id] = append(cursorsOf[id], cursors[i])
		if t := b.Record.Time; t > n.hlc && t.Millis() <= limit {
			n.hlc = t
		}
		if b.Record.Type() == protocol.TypeManifest {
			manifests[id] = true
		}
	}
	for id, bs := range byCommons {
		changes, err := n.mergeFeed(n.commons[id], bs, cursorsOf[id])
		if err != nil {
			// Unreachable: blocks were grouped by their commons.
			n.log.Error("merge", "commons", id, "err", err)
			continue
		}
		n.logChanges(id, changes)
	}
	close(n.changed)
	n.changed = make(chan struct{})
	for id := range manifests {
		n.dialManifestPeers(n.commons[id])
	}
}

func (n *Node) logChanges(id cid.Cid, changes []crdt.Change) {
	for _, ch := range changes {
		if ch.From == "" {
			n.log.Debug("contribution added", "commons", id, "cid", ch.Contribution, "status", ch.To)
		} else {
			n.log.Info("contribution status", "commons", id, "cid", ch.Contribution, "from", ch.From, "to", ch.To)
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
