package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// Sync session limits (SPEC.md §11.5).
const (
	// syncIdle is the longest wait for the peer's next frame, or for a
	// frame to be written.
	syncIdle = 30 * time.Second
	// syncMax bounds one whole session.
	syncMax = 30 * time.Minute
	// A session must move bytes. It starts with syncGrace of credit;
	// waiting on the peer (blocked reading from it or writing to it)
	// spends credit, and each syncMinRate bytes sent or received earns a
	// second of it, up to syncGrace: a peer that drips frames, each
	// within syncIdle, or reads what it asked for a trickle at a time,
	// cannot hold a slot for syncMax, nor bank credit by a fast start and
	// then drip. Time this node spends on its own work (its event loop,
	// its disk) costs no credit. A session of nodes in step takes a few
	// round trips of a few KiB; one that moves records moves far faster.
	syncGrace   = time.Minute
	syncMinRate = 16 << 10 // bytes per second
	// syncBatch is how many received records are verified and stored
	// together, or fewer, up to syncBatchBytes. Each batch is verified on
	// a goroutine of its own, and up to two per core are in flight (being
	// verified, or waiting to be stored) while the next is read: with one
	// per core, of 128 records, a join of 300,000 records from one peer
	// took a third longer. Against 256 records, 1,024 joined 300,000 in
	// 34 to 43 s instead of 37 to 46 s (four runs each, alternately;
	// fewer, larger verifications and commits).
	syncBatch      = 1024
	syncBatchBytes = 1 << 20
	// maxServedSyncs caps the sessions a node serves at once, and
	// maxServedPerPeer those it serves one peer: one peer cannot take every
	// slot. An honest peer runs one session per commons at a time.
	maxServedSyncs   = 16
	maxServedPerPeer = 4
	// disconnectAfterRefused is how many sessions over its share a peer may
	// ask for within refusedWindow before the node closes its connections.
	disconnectAfterRefused = 16
	refusedWindow          = time.Minute
)

// Sync reconciles every replicated commons (or those listed) with a
// connected peer, given by peer ID, or with every connected peer when
// peer is "". It waits for the sessions to end.
func (n *Node) Sync(ctx context.Context, peerID string, commons ...string) (api.SyncReport, error) {
	if n.host == nil {
		return api.SyncReport{}, badRequest("the node is offline: sync needs a running daemon (commons daemon)")
	}
	var ids []cid.Cid
	if len(commons) == 0 {
		ids = n.commonsIDs()
	}
	for _, c := range commons {
		var rp *replica
		var rerr error
		if err := n.do(ctx, func() { rp, rerr = n.replicaFor(c) }); err != nil {
			return api.SyncReport{}, err
		}
		if rerr != nil {
			return api.SyncReport{}, rerr
		}
		ids = append(ids, rp.id)
	}
	peers := n.host.Network().Peers()
	if peerID != "" {
		p, err := peer.Decode(peerID)
		if err != nil {
			return api.SyncReport{}, badRequest("peer %q is not a peer ID: %w", peerID, err)
		}
		if n.host.Network().Connectedness(p) != network.Connected {
			return api.SyncReport{}, fmt.Errorf("%w: peer %s is not connected", api.ErrNotFound, p)
		}
		peers = []peer.ID{p}
	}
	var rep api.SyncReport
	for _, p := range peers {
		for _, id := range ids {
			s, err := n.syncNow(ctx, p, id)
			if err != nil {
				s.Error = err.Error()
			}
			rep.Sessions = append(rep.Sessions, s)
			rep.Received += s.Received
			rep.Sent += s.Sent
		}
	}
	return rep, nil
}

// onConnected starts a sync of every replicated commons with a new peer.
// Of the two ends of a connection only the one with the lower peer ID
// starts: a session carries records both ways.
func (n *Node) onConnected(p peer.ID) {
	select {
	case <-n.ctx.Done():
		return
	default:
	}
	if n.host.ID() > p {
		return
	}
	// The notifiee must not block; ask the loop for the commons list from a
	// goroutine of our own.
	if !n.track() {
		return
	}
	go func() {
		defer n.wg.Done()
		for _, id := range n.commonsIDs() {
			n.startSync(p, id, true)
		}
	}()
}

// periodicSync syncs every replicated commons with one random peer.
func (n *Node) periodicSync() {
	peers := n.host.Network().Peers()
	if len(peers) == 0 {
		return
	}
	var p peer.ID
	_ = n.do(n.ctx, func() { p = peers[n.rng.IntN(len(peers))] })
	for _, id := range n.commonsIDs() {
		n.goSync(p, id)
	}
}

// goSync syncs a commons with a peer in the background, unless such a
// session is already running.
func (n *Node) goSync(p peer.ID, id cid.Cid) { n.startSync(p, id, false) }

// syncRun is a sync session this node started, as initiator.
type syncRun struct {
	peer    peer.ID
	cancel  context.CancelFunc
	asked   bool       // run for Sync (syncNow)
	crossed *servedRun // the session of the peer's that crossed it, which ended it (serving; guarded by exMu)
}

// servedRun is a session this node serves.
type servedRun struct {
	ended bool // guarded by exMu
}

// syncKey names the sessions with p over commons id.
func syncKey(p peer.ID, id cid.Cid) string { return p.String() + "/" + id.String() }

// startSync runs a session with p over commons id in the background, unless
// one is already running; with replace, a running one is cancelled and
// started afresh (a new connection: the old one may be dead without either
// side knowing yet, and its session would hold the slot until it times out).
func (n *Node) startSync(p peer.ID, id cid.Cid, replace bool) {
	if n.banned(p) {
		return
	}
	key := syncKey(p, id)
	ctx, cancel := context.WithCancel(n.ctx)
	run := &syncRun{peer: p, cancel: cancel}
	n.exMu.Lock()
	if old := n.exInFlight[key]; old != nil || len(n.served[key]) > 0 {
		// A session with p over this commons runs already, started by
		// either side: one carries records both ways. The running
		// session may have started before what prompted this one
		// (records that came since): run another once it ends. With
		// replace, a session this node started in the background is
		// cancelled instead, but Sync's is not cut short.
		if !replace || old != nil && old.asked {
			if n.syncAgain == nil {
				n.syncAgain = map[string]bool{}
			}
			n.syncAgain[key] = true
			n.exMu.Unlock()
			cancel()
			return
		}
		if old != nil {
			old.cancel()
		}
	}
	if !n.track() {
		n.exMu.Unlock()
		cancel()
		return
	}
	n.exInFlight[key] = run
	n.exMu.Unlock()
	go func() {
		defer n.wg.Done()
		_, _ = n.runSession(ctx, key, run, p, id)
	}()
}

// syncNow runs a session with p over commons id for Sync, once the
// sessions over them that run already have ended: two at once, one in the
// background beside one asked for, would carry the same records twice (a
// join from the command line did, and took twice as long). It waits for
// every session this node started, and for those it serves that began
// before the call: a peer that keeps opening sessions cannot hold it. Its
// own is listed while it runs, so that none starts in the background
// beside it; when the peer's session crosses it (serving), it waits for
// that one instead. The report adds up the sessions over p and id that
// ended while it waited or ran.
func (n *Node) syncNow(ctx context.Context, p peer.ID, id cid.Cid) (api.SyncSession, error) {
	key := syncKey(p, id)
	got := &api.SyncSession{Peer: p.String(), Commons: id.String()}
	n.exMu.Lock()
	if n.syncWaiting == nil {
		n.syncWaiting = map[string][]*api.SyncSession{}
	}
	n.syncWaiting[key] = append(n.syncWaiting[key], got)
	before := slices.Clone(n.served[key])
	n.exMu.Unlock()
	report := func(err error) (api.SyncSession, error) {
		n.exMu.Lock()
		defer n.exMu.Unlock()
		w := n.syncWaiting[key]
		if i := slices.Index(w, got); i >= 0 {
			w = slices.Delete(w, i, i+1)
		}
		if len(w) == 0 {
			delete(n.syncWaiting, key)
		} else {
			n.syncWaiting[key] = w
		}
		return *got, err
	}
	// wait waits until done, checked under exMu, reports true.
	wait := func(done func() bool) error {
		for {
			n.exMu.Lock()
			ok, ended := done(), n.syncEnded
			n.exMu.Unlock()
			if ok {
				return nil
			}
			select {
			case <-ended:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	run := &syncRun{peer: p, cancel: cancel, asked: true}
	err := wait(func() bool {
		if n.exInFlight[key] != nil || slices.ContainsFunc(before, func(r *servedRun) bool { return !r.ended }) {
			return false
		}
		n.exInFlight[key] = run
		return true
	})
	if err != nil {
		cancel()
		return report(err)
	}
	_, err = n.runSession(rctx, key, run, p, id)
	n.exMu.Lock()
	crossed := run.crossed
	n.exMu.Unlock()
	if crossed != nil {
		// Ended for the peer's, which does the work.
		err = wait(func() bool { return crossed.ended })
	}
	return report(err)
}

// runSession runs run, listed in exInFlight under key, as initiator with
// p over commons id, and ends it: it takes run off the list, counts it for
// those waiting (syncNow), wakes them, and runs one more if another was
// asked for meanwhile.
func (n *Node) runSession(ctx context.Context, key string, run *syncRun, p peer.ID, id cid.Cid) (s api.SyncSession, err error) {
	defer func() {
		run.cancel()
		n.exMu.Lock()
		if n.exInFlight[key] == run {
			delete(n.exInFlight, key)
		}
		again := n.takeAgain(key)
		n.endedSession(key, s)
		n.exMu.Unlock()
		if again {
			n.goSync(p, id)
		}
	}()
	s, err = n.syncWith(ctx, p, id)
	switch {
	case err != nil && ctx.Err() == nil:
		n.log.Debug("sync failed", "peer", p, "commons", id, "err", err)
	case s.Received > 0 || s.Sent > 0:
		n.log.Info("sync", "peer", p, "commons", id, "received", s.Received, "sent", s.Sent, "round_trips", s.RoundTrips)
	}
	if s.Received > 0 {
		n.spread(p, id)
	}
	return s, err
}

// endedSession counts a session over key that ended (s) for those waiting
// for sessions over it (syncNow), and wakes every waiter. exMu held.
func (n *Node) endedSession(key string, s api.SyncSession) {
	for _, w := range n.syncWaiting[key] {
		w.Received += s.Received
		w.Sent += s.Sent
		w.Turns += s.Turns
		w.RoundTrips += s.RoundTrips
		w.BytesSent += s.BytesSent
		w.BytesReceived += s.BytesReceived
	}
	close(n.syncEnded)
	n.syncEnded = make(chan struct{})
}

// spread syncs a commons with every other peer of its topic after a
// session brought records new to this node. Records that arrive by sync
// are not gossiped again, so without it the rest of a healed partition, or
// the neighbours of a node that was offline, would wait for their periodic
// sync. Peers that lack nothing cost one round trip; a node that receives
// nothing new spreads no further.
func (n *Node) spread(from peer.ID, id cid.Cid) {
	var t *pubsub.Topic
	_ = n.do(n.ctx, func() {
		if rep := n.commons[id]; rep != nil {
			t = rep.topic
		}
	})
	if t == nil {
		return
	}
	for _, p := range t.ListPeers() {
		if p != from {
			n.goSync(p, id)
		}
	}
}

// serving records that a session from p over commons id is being served,
// so that this node starts none of its own with p meanwhile; the result
// ends the record, once rep tells what the session did.
//
// Both ends may start a session at once (each on noticing the other in
// the commons' topic, or one as it joins the commons), and two would carry
// every record twice: of two that cross, the one the lower peer ID started
// goes on, and the other is cancelled by its initiator, here, as it serves
// the other.
func (n *Node) serving(p peer.ID, id cid.Cid, rep *api.SyncSession) func() {
	key := syncKey(p, id)
	sr := &servedRun{}
	n.exMu.Lock()
	n.served[key] = append(n.served[key], sr)
	if run := n.exInFlight[key]; run != nil && p < n.host.ID() {
		run.crossed = sr
		run.cancel()
	}
	n.exMu.Unlock()
	return func() {
		n.exMu.Lock()
		sr.ended = true
		again := false
		if rest := slices.DeleteFunc(n.served[key], func(r *servedRun) bool { return r == sr }); len(rest) == 0 {
			delete(n.served, key)
			again = n.takeAgain(key)
		} else {
			n.served[key] = rest
		}
		n.endedSession(key, *rep)
		n.exMu.Unlock()
		if again {
			n.goSync(p, id)
		}
	}
}

// takeAgain reports and clears a session asked for while key's ran; only
// when no session over key runs any more. exMu held.
func (n *Node) takeAgain(key string) bool {
	if !n.syncAgain[key] || n.exInFlight[key] != nil || len(n.served[key]) > 0 {
		return false
	}
	delete(n.syncAgain, key)
	return true
}

// syncWith runs a session with p over commons id, as initiator.
func (n *Node) syncWith(ctx context.Context, p peer.ID, id cid.Cid) (api.SyncSession, error) {
	rep := api.SyncSession{Peer: p.String(), Commons: id.String()}
	if n.banned(p) {
		return rep, fmt.Errorf("peer %s is banned for misbehaving", p)
	}
	ctx, cancel := context.WithTimeout(ctx, syncMax)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, protocol.SyncProtocol)
	if err != nil {
		return rep, fmt.Errorf("open sync stream: %w", err)
	}
	err = n.runSync(ctx, s, id, &rep)
	if err != nil {
		n.strike(p, err)
	}
	return rep, err
}

// serveSync answers a peer's session.
func (n *Node) serveSync(s network.Stream) {
	if !n.track() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	p := s.Conn().RemotePeer()
	if n.banned(p) || !n.takePeerSlot(p) {
		_ = s.Reset()
		return
	}
	defer n.givePeerSlot(p)
	select {
	case n.syncSlots() <- struct{}{}:
		defer func() { <-n.syncSlots() }()
	default:
		n.log.Debug("sync: too many sessions", "peer", s.Conn().RemotePeer())
		_ = s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, syncMax)
	defer cancel()
	rep := api.SyncSession{Peer: s.Conn().RemotePeer().String()}
	if err := n.runSync(ctx, s, cid.Undef, &rep); err != nil && n.ctx.Err() == nil {
		n.log.Debug("serve sync", "peer", rep.Peer, "commons", rep.Commons, "err", err)
		n.strike(p, err)
	} else if rep.Received > 0 || rep.Sent > 0 {
		n.log.Info("sync served", "peer", rep.Peer, "commons", rep.Commons, "received", rep.Received, "sent", rep.Sent)
	}
	if id, err := cid.Decode(rep.Commons); err == nil && rep.Received > 0 {
		n.spread(s.Conn().RemotePeer(), id)
	}
}

// takePeerSlot counts a session served to p, unless p has its share
// already: then it logs so (the first time in refusedWindow) and, past
// disconnectAfterRefused such refusals in the window, closes the
// connections to p.
func (n *Node) takePeerSlot(p peer.ID) bool {
	n.exMu.Lock()
	if n.servedBy == nil {
		n.servedBy, n.overShare = map[peer.ID]int{}, map[peer.ID]*overShare{}
	}
	if n.servedBy[p] < maxServedPerPeer {
		n.servedBy[p]++
		n.exMu.Unlock()
		return true
	}
	now := time.Now()
	o := n.overShare[p]
	if o == nil || now.Sub(o.since) > refusedWindow {
		if len(n.overShare) >= maxOverShare {
			clear(n.overShare) // bounded: forget every peer's count
		}
		o = &overShare{since: now}
		n.overShare[p] = o
	}
	o.count++
	count := o.count
	n.exMu.Unlock()
	switch count {
	case 1:
		n.log.Warn("sync: a peer asks for more sessions at once than its share: refused", "peer", p, "share", maxServedPerPeer)
	case disconnectAfterRefused:
		n.log.Warn("sync: a peer keeps asking for more sessions than its share: disconnecting it", "peer", p, "refused", count, "within", refusedWindow)
		go func() { _ = n.host.Network().ClosePeer(p) }()
	}
	return false
}

// givePeerSlot ends a session served to p.
func (n *Node) givePeerSlot(p peer.ID) {
	n.exMu.Lock()
	defer n.exMu.Unlock()
	if n.servedBy[p]--; n.servedBy[p] <= 0 {
		delete(n.servedBy, p)
	}
}

// overShare counts a peer's sessions refused over its share since a time.
type overShare struct {
	since time.Time
	count int
}

// maxOverShare bounds the peers whose refusals are counted.
const maxOverShare = 1024

// syncSlots returns the semaphore of served sessions.
func (n *Node) syncSlots() chan struct{} {
	n.exMu.Lock()
	defer n.exMu.Unlock()
	if n.syncSem == nil {
		n.syncSem = make(chan struct{}, maxServedSyncs)
	}
	return n.syncSem
}

// runSync runs one session on s: as initiator over commons id, or, with id
// undefined, as responder over the commons the peer's first frame names.
// The stream is closed, or reset on error.
func (n *Node) runSync(ctx context.Context, s network.Stream, id cid.Cid, rep *api.SyncSession) (err error) {
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	sc := n.openSync(s, rep)
	served := func() {}
	defer func() {
		err = sc.close(ctx, err)
		served() // after close, which completes rep
	}()
	var first *protocol.SyncMsg // the peer's opening frame, when responding
	if !id.Defined() {
		if first, err = sc.readOpening(); err != nil {
			return err
		}
		id = first.Commons.Cid
		served = n.serving(s.Conn().RemotePeer(), id, rep)
	}
	turn, known, err := sc.begin(ctx, id, first == nil)
	if err != nil {
		return err
	}
	if !known {
		if first == nil {
			return fmt.Errorf("%w: %s", api.ErrUnknownCommons, id)
		}
		// Not replicated here: an empty turn ends the session.
		return sc.writeTurn(ctx, nil, crdt.Turn{}, nil)
	}
	if first == nil {
		if err := sc.writeTurn(ctx, &protocol.Link{Cid: id}, turn, nil); err != nil {
			return err
		}
	}
	return sc.exchange(ctx, first)
}

// syncConn is this node's side of one sync session.
type syncConn struct {
	n     *Node
	s     network.Stream
	c     *countingStream
	r     *bufio.Reader
	w     *bufio.Writer
	id    cid.Cid
	sess  *crdt.Session // set by begin
	rep   *api.SyncSession
	start time.Time

	credit  time.Duration // what the peer may still make us wait
	counted int64         // the bytes credited so far
	charged time.Duration // the waits charged so far
}

// errSyncStalled ends a session that moved too few bytes for the time it
// made this node wait.
var errSyncStalled = errors.New("the sync session made too little progress")

// balance brings the session's credit up to date and returns it.
func (sc *syncConn) balance() time.Duration {
	moved := sc.c.sent + sc.c.received
	sc.credit += time.Duration(float64(moved-sc.counted) * float64(time.Second) / syncMinRate)
	sc.credit -= sc.c.waited - sc.charged
	sc.counted, sc.charged = moved, sc.c.waited
	sc.credit = min(sc.credit, syncGrace)
	return sc.credit
}

// deadline sets the deadline of the next read (write false) or write on
// the stream: syncIdle from now, or sooner if the session's credit ends
// sooner; errSyncStalled if it has ended.
func (sc *syncConn) deadline(write bool) error {
	b := sc.balance()
	if b <= 0 {
		return sc.stalled()
	}
	until := time.Now().Add(min(syncIdle, b))
	if write {
		_ = sc.s.SetWriteDeadline(until)
	} else {
		_ = sc.s.SetReadDeadline(until)
	}
	return nil
}

// ioErr is the error of a failed read or write, what it was: naming
// errSyncStalled too if the session's credit is spent, which is why it
// was cut.
func (sc *syncConn) ioErr(what string, err error) error {
	if sc.balance() <= 0 {
		return fmt.Errorf("%s: %w (%w)", what, sc.stalled(), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (sc *syncConn) stalled() error {
	return fmt.Errorf("%w: %d bytes sent and received in %v, of which %v waiting on the peer (at least %d KiB a second of waiting is wanted, past the first %v)",
		errSyncStalled, sc.c.sent+sc.c.received, time.Since(sc.start).Round(time.Second), sc.c.waited.Round(time.Second), syncMinRate>>10, syncGrace)
}

// openSync wraps a session's stream, counting its bytes, and counts the
// session.
func (n *Node) openSync(s network.Stream, rep *api.SyncSession) *syncConn {
	c := &countingStream{Stream: s, m: n.metrics}
	n.metrics.SyncSession()
	return &syncConn{n: n, s: s, c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10), rep: rep, start: time.Now(), credit: syncGrace}
}

// close ends the session with the outcome err, which it returns (naming
// the context's cause if it ended the session): it fills the report, counts
// the round trips, and closes the stream, or resets it on error.
func (sc *syncConn) close(ctx context.Context, err error) error {
	sc.rep.BytesSent, sc.rep.BytesReceived = sc.c.sent, sc.c.received
	sc.rep.RoundTrips = (sc.rep.Turns + 1) / 2
	sc.n.metrics.SyncRounds(sc.rep.RoundTrips)
	if err == nil {
		_ = sc.s.Close()
		return nil
	}
	_ = sc.s.Reset()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	return err
}

// readOpening reads a responder's first frame, which must name the commons.
func (sc *syncConn) readOpening() (*protocol.SyncMsg, error) {
	if err := sc.deadline(false); err != nil {
		return nil, err
	}
	first, err := readControl(sc.r)
	if err != nil {
		return nil, sc.ioErr("read first frame", err)
	}
	if first.Commons == nil {
		return nil, fmt.Errorf("%w: first frame names no commons", crdt.ErrSyncViolation)
	}
	sc.rep.Commons = first.Commons.Cid.String()
	return first, nil
}

// begin starts the reconciliation engine over commons id, on the event
// loop. The initiator also gets its opening turn. known is false when the
// commons is not replicated here.
func (sc *syncConn) begin(ctx context.Context, id cid.Cid, initiator bool) (turn crdt.Turn, known bool, err error) {
	sc.id = id
	// The salt keys the session's fingerprints and short IDs; it comes
	// from crypto/rand, not the node's seeded source, so that no third
	// party can predict it and mint records that collide under it.
	salt := make([]byte, protocol.SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return turn, false, fmt.Errorf("sync salt: %w", err)
	}
	err = sc.n.do(ctx, func() {
		rp := sc.n.commons[id]
		if rp == nil {
			return
		}
		known = true
		sc.sess = crdt.NewSession(rp.state.Index(), syncParams)
		if initiator {
			turn = sc.sess.Begin(salt)
		}
	})
	return turn, known, err
}

// exchange answers the peer's turns until one side's turn is empty. first,
// if set, is the peer's first turn's opening frame, read already.
func (sc *syncConn) exchange(ctx context.Context, first *protocol.SyncMsg) error {
	for {
		in, err := sc.readTurn(ctx, first)
		first = nil
		if err != nil {
			return err
		}
		if in.Empty() {
			return nil
		}
		var turn crdt.Turn
		var push []protocol.Digest
		var rerr error
		if err := sc.n.do(ctx, func() { turn, push, rerr = sc.sess.Receive(in) }); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		// The records to push are read from the store here, off the loop.
		if err := sc.writeTurn(ctx, nil, turn, push); err != nil {
			return err
		}
		if turn.Empty() {
			if sc.sess.Stats.GaveUp {
				sc.n.log.Debug("sync: sets still differ after the last pass", "peer", sc.rep.Peer, "commons", sc.rep.Commons, "passes", sc.sess.Stats.Passes+1)
			}
			return nil
		}
	}
}

// sendChunk is how many records writeTurn reads from the store at once.
const sendChunk = 256

// writeTurn sends the records the peer lacks (push, by digest: their
// bytes are read from the store sendChunk at a time), then the
// turn's control frames, the first naming commons when set. Every record
// the session pushes is in the store (records are stored before they
// reach the state), so one missing there is an internal error.
func (sc *syncConn) writeTurn(ctx context.Context, commons *protocol.Link, turn crdt.Turn, push []protocol.Digest) error {
	sc.rep.Turns++
	if err := sc.deadline(true); err != nil {
		return err
	}
	// In the session's order, which is time order: the peer then merges
	// most reviews after their contribution and most contributions after
	// their manifest, and few records wait in its derived state (in digest
	// order, the store's key order, the reads here cost less but a fresh
	// peer's merge costs more than twice as much).
	for len(push) > 0 {
		// Read a chunk at a time: one snapshot each, bounded memory.
		chunk := push[:min(len(push), sendChunk)]
		push = push[len(chunk):]
		cs := make([]cid.Cid, len(chunk))
		for i, d := range chunk {
			cs[i] = d.CID()
		}
		raws, err := sc.n.st.GetRecords(ctx, cs)
		if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrDropped) {
			raws, err = sc.n.wholeRecords(ctx, cs) // the damaged and dropped ones left out
		}
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("node: sync: a record to send is in the state but not in the store: %w", err)
		}
		if err != nil {
			return fmt.Errorf("read records to send: %w", err)
		}
		sc.n.streamed.Add(int64(len(raws)))
		if err := sc.deadline(true); err != nil {
			return err
		}
		for i, raw := range raws {
			if raw == nil {
				continue
			}
			if got := sha256.Sum256(raw); got != chunk[i] {
				// Sent, it would cost this node the peer's trust, and spread.
				sc.n.recordDamaged(cs[i], fmt.Errorf("%w: record %s: its bytes do not match its CID", store.ErrCorrupt, cs[i]))
				continue
			}
			if err := writeKindFrame(sc.w, protocol.SyncFrameRecord, raw); err != nil {
				return sc.ioErr("send record", err)
			}
			sc.rep.Sent++
		}
	}
	msg := turn.Msg()
	msg.Commons = commons
	for _, m := range protocol.SyncFrames(msg) {
		b, err := protocol.EncodeSync(m)
		if err != nil {
			return err
		}
		if err := sc.deadline(true); err != nil {
			return err
		}
		if err := writeKindFrame(sc.w, protocol.SyncFrameControl, b); err != nil {
			return sc.ioErr("send control frame", err)
		}
	}
	if err := sc.w.Flush(); err != nil {
		return sc.ioErr("send turn", err)
	}
	return nil
}

// syncParams are the parameters of this node's sync sessions: the
// engine's defaults.
var syncParams = crdt.SyncParams{}

// readTurn reads the peer's turn: records, checked against the session and
// admitted and stored in batches as they come (syncBatches), then control
// frames up to the one marked End. first, if set, is the turn's first
// control frame, read already. Records are in before the turn is answered,
// so that the answer reflects them.
func (sc *syncConn) readTurn(ctx context.Context, first *protocol.SyncMsg) (crdt.Turn, error) {
	sc.rep.Turns++
	in := crdt.NewTurnReader(syncParams)
	batches := &syncBatches{sc: sc, ctx: ctx}
	m := first
	for m == nil || !m.End {
		if m != nil {
			if err := in.Add(m); err != nil {
				return in.Turn, errors.Join(err, batches.finish())
			}
		}
		var err error
		if m, err = sc.readFrame(batches); err != nil {
			return in.Turn, errors.Join(err, batches.finish())
		}
	}
	if err := in.Add(m); err != nil {
		return in.Turn, errors.Join(err, batches.finish())
	}
	return in.Turn, batches.finish()
}

// readFrame reads one frame of a turn: a record goes to batches (m is
// nil), a control frame is returned.
func (sc *syncConn) readFrame(batches *syncBatches) (m *protocol.SyncMsg, err error) {
	if sc.r.Buffered() == 0 { // else the frame, or its start, is here
		if err := sc.deadline(false); err != nil {
			return nil, err
		}
	}
	kind, body, err := readKindFrame(sc.r)
	if err != nil {
		return nil, sc.ioErr("read frame", err)
	}
	if kind == protocol.SyncFrameControl {
		if m, err = protocol.DecodeSync(body); err != nil {
			return nil, err
		}
		if m.Commons != nil {
			return nil, errors.New("commons named after the first frame")
		}
		return m, nil
	}
	b, err := sc.n.parse(body, cid.Undef)
	if err != nil {
		sc.n.log.Warn("sync: invalid record from peer", "peer", sc.rep.Peer, "err", err)
		return nil, fmt.Errorf("%w: %w", errInvalidRecord, err)
	}
	d, _ := protocol.RecordDigest(b.CID)
	if err := sc.sess.Accept(uint64(b.Record.Time), d); err != nil {
		return nil, err
	}
	return nil, batches.add(b)
}

// syncBatches admits and stores a turn's records in batches of syncBatch,
// in the background while the next are read and parsed: batches are
// verified side by side, on every core, and stored one after another in
// the order they came; finish waits for every one.
//
// A batch is handed to the event loop once the one before it is stored
// and applied, not as soon as that one is handed over, as an import's
// are (importInFlight): the batches handed over together are committed
// together, the derived state saved after them covers them all, and in
// a profile such saves, too large for one badger transaction, went
// through the store's journal. A fresh daemon joining 1,000,000 records over loopback (2
// cores) took 125 and 130 s this way, and 148 to 163 s handing batches
// over early (batches of 1,024 or 256 records, four or eight
// outstanding), the journal taking 3% of its CPU time rather than 0.2%.
type syncBatches struct {
	sc      *syncConn
	ctx     context.Context
	batch   []*protocol.Block
	bytes   int                    // of batch's records
	pending []chan syncBatchResult // oldest first
	stored  chan struct{}          // closed once the newest batch is stored (or failed)
}

type syncBatchResult struct {
	added int
	err   error
}

// add queues a record, and hands a full batch to the background.
func (sb *syncBatches) add(b *protocol.Block) error {
	sb.batch = append(sb.batch, b)
	sb.bytes += len(b.Raw)
	if len(sb.batch) < syncBatch && sb.bytes < syncBatchBytes {
		return nil
	}
	return sb.flush()
}

// waitOldest waits for the oldest outstanding batch, counting what it
// added.
func (sb *syncBatches) waitOldest() error {
	r := <-sb.pending[0]
	sb.pending = sb.pending[1:]
	sb.sc.rep.Received += r.added
	return r.err
}

// flush starts the queued batch, once fewer than two per core are
// outstanding.
func (sb *syncBatches) flush() error {
	for len(sb.pending) >= 2*runtime.GOMAXPROCS(0) {
		if err := sb.waitOldest(); err != nil {
			return err
		}
	}
	if len(sb.batch) == 0 {
		return nil
	}
	full := sb.batch
	sb.batch, sb.bytes = make([]*protocol.Block, 0, syncBatch), 0
	ch := make(chan syncBatchResult, 1)
	sb.pending = append(sb.pending, ch)
	prev, stored := sb.stored, make(chan struct{})
	sb.stored = stored
	go func() {
		added, err := sb.sc.n.ingestSynced(sb.ctx, full, sb.sc.id, prev)
		if prev != nil {
			<-prev // batches count as stored in order, also when one fails early
		}
		close(stored)
		ch <- syncBatchResult{added, err}
	}()
	return nil
}

// finish stores what is queued and waits for every batch.
func (sb *syncBatches) finish() error {
	errs := []error{sb.flush()}
	for len(sb.pending) > 0 {
		errs = append(errs, sb.waitOldest())
	}
	return errors.Join(errs...)
}

// ingestSynced validates records received by sync exactly as gossip
// would, in one batch (batch signature verification), and stores the good
// ones with one group commit, once after is closed (the batch before is
// stored; nil: at once). Any invalid record is an error: the session ends.
// Records from the future are skipped, to be fetched again later.
func (n *Node) ingestSynced(ctx context.Context, batch []*protocol.Block, id cid.Cid, after <-chan struct{}) (int, error) {
	// Skip what we have (gossip may have been faster) before verifying.
	var fresh []*protocol.Block
	if err := n.do(ctx, func() {
		rp := n.commons[id]
		for _, b := range batch {
			if rp == nil || !rp.state.Has(b.CID) {
				fresh = append(fresh, b)
			}
		}
	}); err != nil {
		return 0, err
	}
	var bad error
	var later []*protocol.Block // delayed for a genesis the batch before may bring
	refused := func(b *protocol.Block, err error) {
		if !protocol.Permanent(err) {
			if after != nil && errors.Is(err, protocol.ErrNoGenesis) {
				later = append(later, b)
				return
			}
			n.log.Debug("sync: record delayed", "cid", b.CID, "err", err)
			return
		}
		n.log.Warn("sync: invalid record from peer", "cid", b.CID, "err", err)
		if bad == nil {
			bad = fmt.Errorf("%w %s: %w", errInvalidRecord, b.CID, err)
		}
	}
	good := n.admit(fresh, id, refused)
	if bad != nil {
		return 0, bad
	}
	if len(good) == 0 && len(later) == 0 {
		return 0, nil
	}
	if after != nil {
		<-after // stored in the order received
	}
	if len(later) > 0 {
		again := later
		later, after = nil, nil
		good = append(good, n.admit(again, id, refused)...)
		if bad != nil {
			return 0, bad
		}
		if len(good) == 0 {
			return 0, nil
		}
	}
	res, err := n.ingest(ctx, good, false)
	if err != nil {
		return 0, err
	}
	added := 0
	for _, a := range res.added {
		if a {
			added++
		}
	}
	return added, nil
}

// readControl reads one frame that must be a control frame.
func readControl(r *bufio.Reader) (*protocol.SyncMsg, error) {
	kind, body, err := readKindFrame(r)
	if err != nil {
		return nil, err
	}
	if kind != protocol.SyncFrameControl {
		return nil, errors.New("first frame is not a control frame")
	}
	return protocol.DecodeSync(body)
}

// writeKindFrame writes a sync frame: varint length, kind byte, body.
func writeKindFrame(w io.Writer, kind byte, body []byte) error {
	var hdr [binary.MaxVarintLen64 + 1]byte
	k := binary.PutUvarint(hdr[:], uint64(len(body)+1))
	hdr[k] = kind
	if _, err := w.Write(hdr[:k+1]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// readKindFrame reads a sync frame within the limit of its kind.
func readKindFrame(r *bufio.Reader) (byte, []byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if size == 0 || size > max(protocol.MaxRecordSize, protocol.MaxSyncMessage)+1 {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes", crdt.ErrSyncViolation, size)
	}
	kind, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	switch {
	case kind == protocol.SyncFrameControl && size-1 <= protocol.MaxSyncMessage:
	case kind == protocol.SyncFrameRecord && size-1 <= protocol.MaxRecordSize:
	default:
		return 0, nil, fmt.Errorf("%w: frame of kind %d and %d bytes", crdt.ErrSyncViolation, kind, size)
	}
	b := make([]byte, size-1)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return kind, b, nil
}

// writeFrame writes a varint-length-prefixed frame.
func writeFrame(w io.Writer, b []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(len(b)))
	if _, err := w.Write(hdr[:k]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// readFrame reads a varint-length-prefixed frame of at most limit bytes.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if size > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d", size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// countingStream counts the bytes of a stream, for the session's report
// and in the node's metrics as they move.
type countingStream struct {
	network.Stream
	m              *Metrics
	sent, received int64
	waited         time.Duration // blocked in Read and Write
}

func (c *countingStream) Read(p []byte) (int, error) {
	start := time.Now()
	k, err := c.Stream.Read(p)
	c.waited += time.Since(start)
	c.received += int64(k)
	c.m.SyncBytes(true, k)
	return k, err
}

func (c *countingStream) Write(p []byte) (int, error) {
	start := time.Now()
	k, err := c.Stream.Write(p)
	c.waited += time.Since(start)
	c.sent += int64(k)
	c.m.SyncBytes(false, k)
	return k, err
}
