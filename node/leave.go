package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// leave is a Leave in progress. The loop takes the replica out of its maps
// once no batch carries records of it and its derived state is saved
// (tryLeave), and closes out; the rest (its topic, the store's list, a
// purge) runs off the loop, in the goroutine Leave starts.
type leave struct {
	rep *replica // nil: the commons was not replicated
	out chan struct{}
}

// Leave stops replicating a commons: it leaves the commons' topic, takes
// it off the store's list (a restart does not replicate it again) and, with
// purge, deletes its records, its feed log and its derived state. Without
// purge they stay stored, and joining it again takes up where it was. Its
// payload blobs stay (other commons may reference them). Records of the
// commons that arrive meanwhile are not stored, and it cannot be joined
// again until Leave is done. A purge cut short by a crash leaves the
// commons unlisted, with a prefix of its records: Leave with purge
// finishes it.
func (n *Node) Leave(ctx context.Context, commons string, purge bool) (api.LeaveReport, error) {
	c, err := commonsID(commons)
	if err != nil {
		return api.LeaveReport{}, err
	}
	var l *leave
	var lerr error
	if err := n.do(ctx, func() {
		if n.leaving[c] != nil {
			lerr = badRequest("commons %s is being left already", c)
			return
		}
		if n.joining[c] > 0 {
			lerr = badRequest("commons %s is being joined: leave it once join is done", c)
			return
		}
		l = &leave{rep: n.commons[c], out: make(chan struct{})}
		if l.rep == nil {
			close(l.out)
		}
		n.leaving[c] = l
		if l.rep != nil {
			n.tryLeave(l)
		}
	}); err != nil {
		return api.LeaveReport{}, err
	}
	if lerr != nil {
		return api.LeaveReport{}, lerr
	}
	// The work goes on if ctx ends: the commons is out of the loop's maps
	// by then, or will be.
	res := make(chan leaveResult, 1)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		rep, err := n.finishLeave(c, l, purge)
		res <- leaveResult{rep, err}
	}()
	select {
	case r := <-res:
		return r.report, r.err
	case <-ctx.Done():
		return api.LeaveReport{}, fmt.Errorf("node: leave %s: %w (it goes on in the node)", c, ctx.Err())
	}
}

type leaveResult struct {
	report api.LeaveReport
	err    error
}

// finishLeave waits for the loop to let go of the commons, then does what
// is left of a Leave, and ends it.
func (n *Node) finishLeave(c cid.Cid, l *leave, purge bool) (api.LeaveReport, error) {
	ctx := n.ctx
	defer func() {
		_ = n.do(context.Background(), func() { delete(n.leaving, c) })
	}()
	select {
	case <-l.out:
	case <-ctx.Done():
		return api.LeaveReport{}, api.ErrClosed
	}
	report := api.LeaveReport{Commons: c.String()}
	head, err := n.st.FeedHead(ctx, c)
	if err != nil {
		return report, fmt.Errorf("node: leave %s: %w", c, err)
	}
	report.Records = int(head)
	if l.rep == nil {
		// Not replicated: listed still (a join that failed), or with
		// records stored (a leave without purge, a purge cut short).
		applied, err := n.st.Applied(ctx, c)
		if err != nil {
			return report, fmt.Errorf("node: leave %s: %w", c, err)
		}
		listed, err := n.listed(ctx, c)
		if err != nil {
			return report, fmt.Errorf("node: leave %s: %w", c, err)
		}
		switch {
		case head == 0 && applied == 0 && !listed:
			return report, fmt.Errorf("%w: %s is not replicated here, and nothing of it is stored", api.ErrUnknownCommons, c)
		case !purge && !listed:
			return report, fmt.Errorf("%w: %s is not replicated here; %d of its records are still stored (leave --purge deletes them)", api.ErrUnknownCommons, c, head)
		}
	} else {
		n.leaveTopic(l.rep)
	}
	if err := n.st.RemoveCommons(ctx, c); err != nil {
		return report, fmt.Errorf("node: leave %s: it is not replicated until the node restarts, which replicates it again: %w", c, err)
	}
	if l.rep != nil {
		n.log.Info("left commons", "commons", c, "records", head, "purge", purge)
	}
	if !purge {
		return report, nil
	}
	// The derived state first: records without it are derived again if
	// the commons is joined after a crash; it without its records is not.
	if err := n.dropDerived(ctx, c); err != nil {
		return report, fmt.Errorf("node: leave %s: %w (leave --purge again to finish)", c, err)
	}
	dropped, err := n.st.DropRecords(ctx, c)
	n.geneses.Delete(c) // its genesis is gone: records wait for it again
	n.banKeys.Delete(c)
	if err != nil {
		return report, fmt.Errorf("node: leave %s: deleted %d of its records: %w (leave --purge again to finish)", c, dropped, err)
	}
	report.Purged = true
	n.log.Info("deleted the records of a commons left", "commons", c, "records", dropped)
	return report, nil
}

// tryLeave takes a leaving commons' replica out of the loop's maps, if no
// batch carries its records and its derived state is saved; else it starts
// a save, and committedBatch calls it again. Loop only.
func (n *Node) tryLeave(l *leave) {
	rep := l.rep
	if rep.batches > 0 || n.savingNow {
		return
	}
	if u := &rep.unsaved; u.backfilled != nil {
		// The summary rows of older records (backfill.go) of a commons
		// going away: not to be saved, lest a full disk hold the leave.
		close(u.backfilled)
		u.backfill, u.backfilled = nil, nil
	}
	if u := &rep.unsaved; u.placed != nil {
		// Places of older contributions: saved with the state if it is
		// kept, not said to be.
		close(u.placed)
		u.placed = nil
	}
	if !rep.unsaved.empty() {
		n.save() // unless a failed save waits for saveRetry: the retry calls back
		return
	}
	delete(n.commons, rep.id)
	delete(n.toHash, rep)
	n.order = slices.DeleteFunc(n.order, func(c cid.Cid) bool { return c.Equals(rep.id) })
	n.feeds.Unload(rep.id)
	close(l.out)
}

// tryLeaves calls tryLeave for each Leave waiting for the loop. Loop only.
func (n *Node) tryLeaves() {
	for _, l := range n.leaving {
		select {
		case <-l.out:
		default:
			n.tryLeave(l)
		}
	}
}

// leaveTopic leaves a replica's gossip topic: its goroutines stop, and the
// topic can be joined again. Not on the loop: closing a topic waits for
// gossipsub to drop the subscription, which it does on its own goroutine.
func (n *Node) leaveTopic(rep *replica) {
	if rep.topic == nil {
		return
	}
	rep.stopTopic()
	rep.sub.Cancel()
	select {
	case <-rep.topicWatched: // its event handler is cancelled
	case <-n.ctx.Done():
		return
	}
	var err error
	for range 500 {
		if err = rep.topic.Close(); err == nil {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-n.ctx.Done():
			return
		}
	}
	if err != nil {
		n.log.Warn("a gossip topic left could not be closed: joining it again fails until a restart", "commons", rep.id, "err", err)
		return
	}
	if err := n.ps.UnregisterTopicValidator(protocol.Topic(rep.id)); err != nil {
		n.log.Warn("the validator of a gossip topic left could not be removed: joining it again fails until a restart", "commons", rep.id, "err", err)
	}
}

// listed reports whether the store lists commons c as replicated.
func (n *Node) listed(ctx context.Context, c cid.Cid) (bool, error) {
	ids, err := n.st.Commons(ctx)
	return slices.ContainsFunc(ids, c.Equals), err
}

// dropTopic leaves the topic of a replica dropped on the loop, off the
// loop; the commons counts as being left until then, so that it is not
// joined again before its topic can be. Loop only.
func (n *Node) dropTopic(rep *replica) {
	if rep.topic == nil {
		return
	}
	l := &leave{rep: rep, out: make(chan struct{})}
	close(l.out)
	n.leaving[rep.id] = l
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.leaveTopic(rep)
		_ = n.do(context.Background(), func() {
			if n.leaving[rep.id] == l {
				delete(n.leaving, rep.id)
			}
		})
	}()
}

// commonsID parses a commons ID: a genesis manifest's CID.
func commonsID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, badRequest("commons ID %q is not a CID", s)
	}
	if c.Version() != 1 || c.Type() != protocol.CodecDagCBOR {
		return cid.Undef, badRequest("commons ID %s is not a dag-cbor CIDv1 (a genesis manifest's CID)", s)
	}
	return c, nil
}

// errBeingLeft is the error of a Join, or of records to store, of a commons
// a Leave is taking away.
func errBeingLeft(c cid.Cid) error {
	return badRequest("commons %s is being left: join it again once leave is done", c)
}
