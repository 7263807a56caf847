package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// Blob exchange limits (SPEC.md §14).
const (
	// blobServePerPeer bounds the blob streams served to one peer at once.
	blobServePerPeer = 4
	// blobBadPeers bounds how many peers' bad answers are remembered (to
	// ask them last); beyond it, one with the fewest is forgotten.
	blobBadPeers = 1024
	// blobFetchPerPeer bounds the blob requests sent to one peer at once.
	blobFetchPerPeer = 2
	// blobWorkers is how many background fetches run at once.
	blobWorkers = 4
	// blobTimeout bounds one attempt to fetch a blob from one peer, but
	// for the blob's bytes, which must keep coming: no byte for blobStall
	// ends the attempt, and counts against the peer.
	blobTimeout = 2 * time.Minute
	blobStall   = 20 * time.Second
	// blobAnswerWait bounds the wait for a peer's answer to a request (a
	// size, "missing" or "busy": a lookup on its side, no transfer). A peer
	// that does not answer in time is asked last from then on.
	blobAnswerWait = 10 * time.Second
	// blobHedge: a fetch that has had no blob from the peers it asked for
	// this long asks the next peer as well, up to blobAsked peers at once;
	// the first whole blob wins and the other requests are reset.
	blobHedge = time.Second
	blobAsked = 8
	// blobMinRate is the slowest a blob may come on the whole: a peer
	// sending a byte every blobStall cannot hold a fetch for good.
	blobMinRate = 16 << 10 // bytes a second
	// blobRetry is how long a failed background fetch waits before it is
	// tried again the first time; each further failure doubles the wait,
	// up to blobRetryMax. A payload spreads as its record does, so the
	// first tries come soon: a peer that said "missing" may well have it
	// a second later.
	blobRetry    = time.Second
	blobRetryMax = time.Hour
	// blobSweepRetry is the same for sweeps of the stored references
	// (each reads them from the disk): after sweeps whose failures did not
	// fit the retry map, or that could not read them.
	blobSweepRetry = 30 * time.Second
	// blobLackMisses is how many blobs in a row a peer may answer
	// "missing" before the payloads of old records (those a sweep finds,
	// or whose records are older than blobFreshFor) are no longer asked of
	// it for a while: blobLackWait the first time, twice as long each time
	// after, up to blobRetryMax, until it serves a blob. A node that
	// replicates a commons whose payloads its peers lack would otherwise
	// ask them for each one at every sweep, thousands of requests a second
	// answered "missing", each reading the record that claims the blob.
	blobLackMisses = 32
	blobLackWait   = time.Minute
	// blobFreshFor: the payloads of a record dated less than this long
	// ago are spreading as it does, and are asked of every connected peer,
	// those that lacked others included. One left out of a full queue is
	// found again by a sweep, and is then an old one.
	blobFreshFor = 10 * time.Minute
)

// blobBackoff is the wait before the next attempt after failures failed
// attempts: first doubled for each failure after the first, at most
// blobRetryMax.
func blobBackoff(first time.Duration, failures int) time.Duration {
	d := first
	for i := 1; i < failures && d < blobRetryMax; i++ {
		d *= 2
	}
	return min(d, blobRetryMax)
}

// blobRetryState is a failed background fetch waiting to be tried again.
type blobRetryState struct {
	failures int
	next     time.Time
	fresh    bool               // queued as fresh (blobState.fresh)
	lacked   bool               // its last attempt asked no peer: all lacked payloads lately (errLacking)
	author   protocol.PublicKey // whose record claimed the blob (fairQueue)
}

// ErrBlobTooLarge: a blob is larger than the policy of the commons that
// references it allows (or a peer announced more bytes than the record
// says). Returned wrapped together with ErrBadRequest.
var ErrBlobTooLarge = errors.New("node: blob over the commons' size limit")

// blobRef is one record's reference to a blob (a row of blobrefs.go).
type blobRef struct {
	commons cid.Cid
	record  cid.Cid // the referencing record (Undef if its key does not decode)
	size    uint64
	known   bool // size is stated (a payload); a licence text's is not
}

// Bounds of the blob exchange's memory (blobBounds' defaults).
const (
	// blobQueueCap bounds the background fetches waiting to run.
	blobQueueCap = 1024
	// blobRetryCap bounds the failed fetches kept for a later retry.
	blobRetryCap = 4096
	// blobSweepChunk is how many blobs a sweep reads from the store at once.
	blobSweepChunk = 256
)

// blobBounds bounds what the blob exchange keeps in memory. Config holds
// them (zero: the defaults above) so that tests can make them small.
type blobBounds struct {
	queue int
	retry int
	chunk int
	// attempted, if set, is called before each background fetch (tests).
	attempted func(cid.Cid)
}

func (bb *blobBounds) fill() {
	if bb.queue <= 0 {
		bb.queue = blobQueueCap
	}
	if bb.retry <= 0 {
		bb.retry = blobRetryCap
	}
	if bb.chunk <= 0 {
		bb.chunk = blobSweepChunk
	}
}

// blobState is the node's blob exchange state. Its own mutex guards it, so
// the stream handlers need not go through the event loop. What blobs the
// records reference is not here but in the store (blobrefs.go); nothing
// here grows with the commons' history: the queue and the retry map have
// fixed caps, and what does not fit is found again by a sweep of the
// stored references (blobsweep.go).
type blobState struct {
	mu        sync.Mutex
	bounds    blobBounds
	queue     fairQueue                      // background fetches to run, at most bounds.queue
	queued    map[cid.Cid]protocol.PublicKey // in queue or running, with the author it was queued for
	again     map[cid.Cid]bool               // queued blobs a record not disowned claimed since, or a ban lifted since (fetched)
	retry     map[cid.Cid]*blobRetryState    // failed, to be queued again; at most bounds.retry
	sweep     bool                           // a blob was left out of the retry map (or a sweep failed): sweep at a retry tick
	sweepAt   time.Time                      // not before then (forgotten failures back off as a whole)
	joinSweep time.Time                      // when a peer's connecting last made the retries and the sweep due (peerJoined)
	joins     int                            // times it did since a background fetch last succeeded
	forgets   int                            // sweeps in a row after which failures were left out of the retry map
	readFails int                            // sweeps in a row that could not read some commons' references
	readRetry time.Time                      // when to sweep again for them, if readFails > 0
	inflight  map[cid.Cid]*blobCall          // fetches running, for deduplication
	damaged   map[cid.Cid]bool               // stored damaged: not served, fetched as if missing (at most maxDamagedBlobs)
	serving   map[peer.ID]int                // streams served per peer (no zeros)
	asking    map[peer.ID]int                // requests sent per peer (no zeros)
	bad       map[peer.ID]int                // bad answers per peer, at most blobBadPeers
	lacking   map[peer.ID]*lackState         // peers that answered "missing" lately, at most blobBadPeers
	fresh     map[cid.Cid]bool               // queued blobs a record dated within blobFreshFor claimed as it came (noteBlobs)
	wake      chan struct{}                  // the queue has work
	freed     chan struct{}                  // closed (and replaced) when a request to a peer ends
	joined    chan struct{}                  // closed (and replaced) when a peer connects
	room      chan struct{}                  // the queue has room (a sweep waits for it)
	sweepNow  chan struct{}                  // wakes the sweeper
}

type blobCall struct {
	done chan struct{}
	data []byte
	err  error
}

func (b *blobState) init(bounds blobBounds) {
	bounds.fill()
	b.bounds = bounds
	b.queued = map[cid.Cid]protocol.PublicKey{}
	b.again = map[cid.Cid]bool{}
	b.retry = map[cid.Cid]*blobRetryState{}
	b.inflight = map[cid.Cid]*blobCall{}
	b.damaged = map[cid.Cid]bool{}
	b.serving = map[peer.ID]int{}
	b.asking = map[peer.ID]int{}
	b.bad = map[peer.ID]int{}
	b.lacking = map[peer.ID]*lackState{}
	b.fresh = map[cid.Cid]bool{}
	b.wake = make(chan struct{}, 1)
	b.freed = make(chan struct{})
	b.joined = make(chan struct{})
	b.room = make(chan struct{}, 1)
	b.sweepNow = make(chan struct{}, 1)
}

// signal wakes whoever waits on ch, if no wake-up is pending already.
// maxDamagedBlobs bounds the blobs a node remembers as stored damaged. A
// blob found damaged beyond it is not served, but is fetched again only
// when it is read (GetBlob).
const maxDamagedBlobs = 1024

// blobDamaged notes that blob c is stored damaged (found so by a read, or
// while serving it): from then on it is not served, and it is queued to be
// fetched again from peers, as a missing blob is, until a whole copy is
// stored. A restart forgets it, until it is found again.
func (n *Node) blobDamaged(c cid.Cid, err error) {
	b := &n.blobs
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.damaged[c] {
		return
	}
	if len(b.damaged) >= maxDamagedBlobs {
		n.log.Debug("a stored blob is damaged: it is not served", "blob", c, "err", err)
		return
	}
	n.log.Warn("a stored blob is damaged: it is not served, and is fetched again from peers", "blob", c, "err", err)
	b.damaged[c] = true
	if !n.cfg.Offline {
		b.enqueue(c, protocol.PublicKey{}) // no room: a sweep queues it later
	}
}

// stored reports whether blob c is stored whole, as far as the node knows
// (HasBlob, less the blobs found damaged).
func (n *Node) storedBlob(ctx context.Context, c cid.Cid) (bool, error) {
	has, err := n.st.HasBlob(ctx, c)
	if err != nil || !has {
		return false, err
	}
	n.blobs.mu.Lock()
	defer n.blobs.mu.Unlock()
	return !n.blobs.damaged[c], nil
}

// putBlob stores a blob (uploaded, or fetched from a peer), in place of a
// damaged copy if there is one.
func (n *Node) putBlob(ctx context.Context, data []byte) error {
	c, err := n.st.PutBlob(ctx, data)
	if err != nil {
		return err
	}
	n.blobs.mu.Lock()
	if n.blobs.damaged[c] {
		delete(n.blobs.damaged, c)
		n.log.Info("a damaged blob was fetched again from a peer: the store holds it whole again", "blob", c)
	}
	n.blobs.mu.Unlock()
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// enqueue queues c, claimed by a record of author a, for a background
// fetch unless it is queued or running; ok is false if the queue is full
// and a holds about as many places in it as any other author (fairQueue).
// A blob that gave its place to c (evicted) is left to a sweep. b.mu held.
func (b *blobState) enqueue(c cid.Cid, a protocol.PublicKey) (ok, evicted bool) {
	if _, ok := b.queued[c]; ok {
		return true, false
	}
	if b.queue.len() >= b.bounds.queue {
		out, ok := b.queue.makeRoom(a)
		if !ok {
			return false, false
		}
		delete(b.queued, out)
		delete(b.again, out)
		delete(b.fresh, out)
		b.sweep, evicted = true, true
	}
	b.queued[c] = a
	b.queue.push(a, c)
	signal(b.wake)
	return true, evicted
}

// noteBlobs queues for a background fetch the blobs that newly applied
// blocks reference (the worker skips those stored). What does not fit in
// the queue is left to a sweep, once the blocks' references are saved
// (saved). Loop only.
func (n *Node) noteBlobs(blocks []*protocol.Block) {
	if n.cfg.Offline {
		return
	}
	claiming := make([]*protocol.Block, 0, len(blocks))
	for _, blk := range blocks {
		if rep := n.commons[blk.CommonsID()]; rep == nil || !rep.state.Disowned(blk.CID) {
			claiming = append(claiming, blk) // a disowned one's payloads are fetched if another record claims them
		}
	}
	b := &n.blobs
	b.mu.Lock()
	defer b.mu.Unlock()
	recent := n.nowMillis() - blobFreshFor.Milliseconds()
	for _, blk := range claiming {
		fresh := blk.Record.Time.Millis() >= recent
		eachBlob(blk, func(c cid.Cid, _ uint64, _ bool) {
			if _, queued := b.queued[c]; queued {
				b.again[c] = true // a fetch running may have found it disowned
			}
			ok, evicted := b.enqueue(c, blk.Record.Author)
			if !ok || evicted {
				n.sweepAfterSave = true // after the save, a sweep finds what was left out
			}
			if ok && fresh {
				b.fresh[c] = true
			}
		})
	}
}

// bansLifted fetches the payloads that a ban no longer in force disowned:
// a sweep now finds those whose references are stored, one after the next
// save those not saved yet, and a fetch running that found its blob
// disowned tries it again (fetched). Loop only.
func (n *Node) bansLifted() {
	n.sweepAfterSave = true
	b := &n.blobs
	b.mu.Lock()
	for c := range b.queued {
		b.again[c] = true
	}
	b.mu.Unlock()
	signal(b.sweepNow)
}

// startBlobs serves the blob protocol and starts the background fetchers
// and the sweeper, which sweeps once at start.
func (n *Node) startBlobs() {
	n.host.SetStreamHandler(protocol.BlobProtocol, n.serveBlob)
	for range blobWorkers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.blobWorker()
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.blobSweeper()
	}()
	n.goEvery(blobRetry, n.requeueBlobs)
}

// requeueBlobs queues again the failed background fetches whose wait is
// over, as the queue has room (the others wait for the next tick), and
// starts a sweep if one is needed and its wait is over.
func (n *Node) requeueBlobs() {
	b := &n.blobs
	b.mu.Lock()
	defer b.mu.Unlock()
	now := n.cfg.Now()
	for c, r := range b.retry {
		if now.Before(r.next) {
			continue
		}
		if ok, _ := b.enqueue(c, r.author); ok && r.fresh { // if it has no room, it waits for the next tick
			b.fresh[c] = true
		}
	}
	switch {
	case !b.sweep:
		b.forgets = 0 // nothing was left out since the last sweep began
	case !now.Before(b.sweepAt):
		signal(b.sweepNow)
	}
	if b.readFails > 0 && !now.Before(b.readRetry) {
		signal(b.sweepNow)
	}
}

// overflowed notes that blobs newly referenced did not fit in the queue
// and their references are now stored: a sweep is to find them. It starts
// at once unless forgotten failures are backing off (sweepAt); then at the
// first retry tick after sweepAt, so that records arriving faster than
// sweeps end do not sweep every missing blob again after each save.
func (b *blobState) overflowed(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweep = true
	if !now.Before(b.sweepAt) {
		signal(b.sweepNow)
	}
}

// nextQueued pops a queued blob, and the author it was queued for, or
// waits for one. ok is false once the node stops. The caller calls
// endQueued when done with it.
func (n *Node) nextQueued() (cid.Cid, protocol.PublicKey, bool) {
	b := &n.blobs
	for {
		b.mu.Lock()
		if c, a, ok := b.queue.pop(); ok {
			b.mu.Unlock()
			signal(b.room)
			return c, a, true
		}
		b.mu.Unlock()
		select {
		case <-b.wake:
		case <-n.ctx.Done():
			return cid.Undef, protocol.PublicKey{}, false
		}
	}
}

// endQueued ends a fetch of a blob of a's that nextQueued returned, done
// or put back in the queue (fairQueue counts the fetches running).
func (b *blobState) endQueued(a protocol.PublicKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue.done(a)
}

func (n *Node) blobWorker() {
	putBack := map[cid.Cid]bool{} // blobs this worker put back since it last waited for a slot
	for {
		c, a, ok := n.nextQueued()
		if !ok {
			return
		}
		// Pass the wake-up on: there may be more work than one worker.
		signal(n.blobs.wake)
		has, err := n.storedBlob(n.ctx, c)
		if err == nil && !has {
			err = n.fetchQueued(c, putBack)
		}
		n.blobs.endQueued(a)
		if errors.Is(err, errPutBack) {
			continue
		}
		n.fetched(c, err)
		if err != nil && n.ctx.Err() == nil {
			n.log.Debug("blob fetch failed", "cid", c, "err", err)
		}
	}
}

// fetchQueued fetches a queued blob. When every peer it could ask has our
// most requests running, it waits for one of them to end and tries again:
// that is no failure of the blob, and counting it one would let the first
// blobs a sweep queues take every request while the others only fail.
// Nor is having no peer at all: it waits for one to connect, as the
// sweeper does (blobSweeper). A node started alone on a commons with many
// payloads missing would otherwise read every record claiming one, at
// each sweep, to fail at once: at 1,000,000 records, hundreds of
// megabytes of the store's pages within seconds of a start.
//
// A fetch that runs past blobTurn is put back in the queue as well, if
// others are queued. Before it waits for a slot, it puts the blob back in the queue
// (errPutBack) and takes the next, if others are queued, up to
// blobPutBacks blobs between two waits (putBack lists those): the next
// may be another author's, asked of other peers. The queue serves an
// author with fewer fetches running first, so the blob put back is taken
// again at once, and waits for its slot, when its author has no other
// fetch running and the others' authors have: a blob whose only holder
// was answering our other requests for an instant does not wait behind
// the stalls of another author's flood. Otherwise one author's
// claims of payloads that peers announce and then stall on would hold
// every worker waiting for those peers, and another author's blob, which
// an honest peer holds, would wait behind them.
func (n *Node) fetchQueued(c cid.Cid, putBack map[cid.Cid]bool) error {
	tried := false
	for {
		n.blobs.mu.Lock()
		freed, joined := n.blobs.freed, n.blobs.joined
		n.blobs.mu.Unlock()
		if !n.anyConnected() {
			select {
			case <-joined:
				continue
			case <-n.ctx.Done():
				return n.ctx.Err()
			}
		}
		if f := n.blobs.bounds.attempted; f != nil && !tried {
			f(c)
		}
		tried = true
		n.blobs.mu.Lock()
		fresh := n.blobs.fresh[c]
		n.blobs.mu.Unlock()
		ctx, cancel := context.WithTimeout(n.ctx, blobTurn)
		_, err := n.fetchBlob(ctx, c, fresh)
		turnOver := ctx.Err() != nil && n.ctx.Err() == nil
		cancel()
		if turnOver && n.blobs.putBack(c) {
			return errPutBack // its requests run on, and store what they get
		}
		var wait chan struct{}
		switch {
		case errors.Is(err, errNoSlot):
			if !putBack[c] && len(putBack) < blobPutBacks && n.blobs.putBack(c) {
				putBack[c] = true
				return errPutBack
			}
			clear(putBack)
			wait = freed
		case errors.Is(err, errNoPeer):
			wait = joined // the peers left since
		default:
			return err
		}
		select {
		case <-wait:
		case <-n.ctx.Done():
			return err
		}
	}
}

// fetched records the outcome of a background fetch: a failure waits to
// be tried again (blobBackoff), in the retry map if it has room; if not,
// it is forgotten, and a later sweep finds the blob again. Forgotten
// failures back off together: the sweep for them waits blobBackoff of the
// number of sweeps in a row that were followed by one, so that a commons
// whose payloads are nowhere to be had is not swept at every retry tick.
func (n *Node) fetched(c cid.Cid, err error) {
	b := &n.blobs
	b.mu.Lock()
	defer b.mu.Unlock()
	author := b.queued[c]
	again, fresh := b.again[c], b.fresh[c]
	delete(b.queued, c)
	delete(b.again, c)
	delete(b.fresh, c)
	if err == nil {
		b.joins = 0
	}
	switch {
	case err == nil || errors.Is(err, errDisowned) && !again || errors.Is(err, ErrBlobTooLarge) && !errors.Is(err, errBadBlob):
		// Disowned, or over the limit by what the records state: final
		// (lifting a ban sweeps again), unless a record not disowned
		// claimed it after the fetch found it disowned. A peer that
		// announced a size no record states (errBadBlob) is that peer's
		// fault, not the blob's: it is tried again like any failure.
		delete(b.retry, c)
	case n.ctx.Err() == nil:
		// An attempt that left out peers set aside for lacking payloads
		// (errLacking) is no failure of the blob: it is tried again when
		// the first set aside may be asked again (lackEnds), or when a
		// peer not set aside connects (peerJoined), with no longer wait
		// for it.
		lacked := errors.Is(err, errLacking)
		r := b.retry[c]
		if r == nil {
			if len(b.retry) >= b.bounds.retry {
				if !b.sweep && !lacked {
					b.forgets++
					b.sweepAt = n.cfg.Now().Add(blobBackoff(blobSweepRetry, b.forgets))
				}
				b.sweep = true
				return
			}
			r = &blobRetryState{author: author}
			b.retry[c] = r
		}
		r.fresh = r.fresh || fresh
		r.lacked = lacked
		if lacked {
			r.next = b.lackEnds(n.cfg.Now())
			return
		}
		r.failures++
		r.next = n.cfg.Now().Add(blobBackoff(blobRetry, r.failures))
	}
}

// GetBlob returns a blob: the stored one, or else one fetched from a peer,
// if a record replicated here references it (SPEC.md §14). A blob stored
// damaged (its bytes no longer hash to its CID) is fetched again, and the
// store writes the peer's copy in its place.
func (n *Node) GetBlob(ctx context.Context, c string) ([]byte, error) {
	id, err := cid.Decode(c)
	if err != nil {
		return nil, badRequest("%q is not a CID", c)
	}
	data, err := n.st.GetBlob(ctx, id)
	if err == nil {
		return data, nil
	}
	damaged := errors.Is(err, store.ErrCorrupt)
	if !damaged && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("node: read blob: %w", err)
	}
	if damaged {
		n.blobDamaged(id, err)
		if n.host == nil || n.ctx == nil {
			return nil, fmt.Errorf("node: %w; the node is offline, and cannot fetch it again from a peer", err)
		}
		data, ferr := n.fetchBlob(ctx, id, true)
		if ferr != nil {
			return nil, fmt.Errorf("node: %w; fetching it again from peers failed: %v", err, ferr)
		}
		return data, nil
	}
	if protocol.CheckBlobCID(id) != nil {
		return nil, fmt.Errorf("%w: blob %s is not stored here (and is not a blob CID: CIDv1, raw, sha2-256)", api.ErrNotFound, c)
	}
	if n.host == nil || n.ctx == nil {
		return nil, fmt.Errorf("%w: blob %s is not stored here, and the node is offline", api.ErrNotFound, c)
	}
	return n.fetchBlob(ctx, id, true)
}

// fetchBlob fetches a referenced blob from peers, verifies and stores it;
// askAll asks the peers that lack payloads lately too (lacking), last.
// Concurrent fetches of one blob share one attempt, but one that asks
// every peer does not settle for the failure of one that left some out
// (errLacking).
func (n *Node) fetchBlob(ctx context.Context, c cid.Cid, askAll bool) ([]byte, error) {
	b := &n.blobs
	for {
		b.mu.Lock()
		call := b.inflight[c]
		if call == nil {
			break
		}
		b.mu.Unlock()
		select {
		case <-call.done:
			if askAll && errors.Is(call.err, errLacking) {
				continue
			}
			return call.data, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	call := &blobCall{done: make(chan struct{})}
	b.inflight[c] = call
	b.mu.Unlock()

	call.data, call.err = n.fetchFromPeers(ctx, c, askAll)
	b.mu.Lock()
	delete(b.inflight, c)
	b.mu.Unlock()
	close(call.done)
	return call.data, call.err
}

// blobPlan is what a fetch accepts and whom it asks.
type blobPlan struct {
	sizes []uint64 // sizes the referencing records state, within limit (the smallest, if there are many)
	limit uint64   // largest size accepted
	peers []peer.ID
	// stated, if the records state more sizes than sizes holds, reports
	// whether one states the given size.
	stated func(size uint64) bool
	// unknown: a referencing record states no size (a licence text), so
	// any size within limit is accepted: another record's wrong size must
	// not make the blob impossible to fetch.
	unknown bool
	// sending, if set, counts the peers sending the blob now (a size
	// announced, the bytes not all read).
	sending *atomic.Int32
	// askAll: the fetch asks peers set aside for lacking payloads too
	// (blobState.lacking); their "missing" answers are not counted.
	askAll bool
	// setAside are the connected peers left out because they lack
	// payloads lately (not askAll).
	setAside []peer.ID
}

// accepts reports whether a peer may announce size.
func (p *blobPlan) accepts(size uint64) bool {
	switch {
	case size > p.limit:
		return false
	case p.unknown || len(p.sizes) == 0 || slices.Contains(p.sizes, size):
		return true
	}
	return p.stated != nil && p.stated(size)
}

func (n *Node) fetchFromPeers(ctx context.Context, c cid.Cid, askAll bool) ([]byte, error) {
	sum, err := n.summarize(ctx, c)
	if err != nil {
		return nil, err
	}
	if len(sum.commons) == 0 {
		return nil, fmt.Errorf("%w: blob %s is not stored here, and no record replicated here references it", api.ErrNotFound, c)
	}
	if _, disowned, err := n.claim(ctx, c, 0); err != nil || disowned {
		if err == nil {
			err = fmt.Errorf("%w: blob %s is not stored here, and is not fetched: %w", api.ErrNotFound, c, errDisowned)
		}
		return nil, err
	}
	plan, err := n.planBlob(ctx, c, sum, askAll)
	if err != nil {
		return nil, err
	}
	switch {
	case len(plan.peers) == 0 && len(plan.setAside) > 0:
		return nil, fmt.Errorf("%w: blob %s is not stored here, and %w (%d connected)", api.ErrNotFound, c, errLacking, len(plan.setAside))
	case len(plan.peers) == 0:
		return nil, fmt.Errorf("%w: blob %s is not stored here, and %w", api.ErrNotFound, c, errNoPeer)
	}
	data, errs, full := n.askPeers(ctx, c, plan)
	asked := len(plan.peers)
	if data == nil && ctx.Err() == nil && len(plan.setAside) > 0 && full < asked && !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, errMissing) }) {
		// No peer asked said it lacks the blob, and some failed (busy,
		// silent, refused) other than by having our most requests running
		// already (that one is waited for: errNoSlot). Those set aside
		// are asked after all, as they were before they were set aside: a
		// peer that never answers "missing" must not keep the blob from
		// one that has it.
		plan.peers, plan.askAll = plan.setAside, true
		var more []error
		var busy int
		data, more, busy = n.askPeers(ctx, c, plan)
		errs, full = append(errs, more...), full+busy
		plan.setAside = nil
	}
	if data != nil {
		if err := n.putBlob(ctx, data); err != nil {
			return nil, fmt.Errorf("node: store blob: %w", err)
		}
		return data, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if full > 0 {
		errs = append(errs, errNoSlot) // that peer may have it: not a failure
	}
	if len(plan.setAside) > 0 {
		errs = append(errs, fmt.Errorf("%w (%d not asked)", errLacking, len(plan.setAside)))
	}
	return nil, fmt.Errorf("%w: blob %s: no connected peer served it: %w", api.ErrNotFound, c, errors.Join(errs...))
}

// askPeers asks plan's peers for blob c in order, one at a time while
// answers come, and, while none has answered with the blob's size for
// blobHedge, the next one as well (at most blobAsked at once): a peer that
// is sending the bytes is not doubled, a silent one costs a second. It
// returns the first verified blob (the other requests are then reset), or
// every peer's error and how many of them had our most requests running.
// Once every peer has been asked and the only ones left have said nothing
// for blobHedge, it gives up without them, so that a retry does not wait
// for them: their requests run on, whatever becomes of ctx, until they
// answer or time out (which puts a peer last from then on), and a blob
// one of them sends is stored all the same. Every request ends when the
// node closes. A retry that starts while such a request runs may ask the
// same peer again (at most blobFetchPerPeer at once), so a peer slower
// than the first retry can send a blob twice.
func (n *Node) askPeers(ctx context.Context, c cid.Cid, plan blobPlan) (data []byte, errs []error, full int) {
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopCaller := context.AfterFunc(ctx, cancel)
	stopNode := context.AfterFunc(n.ctx, cancel)
	done := func() {
		cancel()
		stopCaller()
		stopNode()
	}
	plan.sending = new(atomic.Int32)
	answers := make(chan blobAnswer, len(plan.peers)) // never blocks a request
	asked := map[peer.ID]time.Time{}                  // the requests running
	next := 0
	ask := func() bool {
		p := plan.peers[next]
		next++
		if !n.track() {
			errs = append(errs, fmt.Errorf("peer %s: %w", p, errNodeClosing))
			return false
		}
		asked[p] = time.Now()
		go func() {
			defer n.wg.Done()
			data, err := n.fetchFrom(reqCtx, p, c, plan)
			answers <- blobAnswer{p, data, err}
		}()
		return true
	}
	// silent reports whether every request running has been waiting for
	// an answer for blobHedge.
	silent := func() bool {
		if plan.sending.Load() > 0 {
			return false
		}
		for _, t := range asked {
			if time.Since(t) < blobHedge {
				return false
			}
		}
		return true
	}
	hedge := time.NewTimer(blobHedge)
	defer hedge.Stop()
	for next < len(plan.peers) && len(asked) == 0 {
		ask()
	}
	for len(asked) > 0 {
		select {
		case a := <-answers:
			delete(asked, a.p)
			if a.err == nil {
				done() // the others
				n.log.Debug("blob fetched", "cid", c, "peer", a.p, "bytes", len(a.data))
				return a.data, nil, 0
			}
			if errors.Is(a.err, errMaxAsking) {
				full++
			}
			errs = append(errs, fmt.Errorf("peer %s: %w", a.p, a.err))
			if next < len(plan.peers) && reqCtx.Err() == nil && ask() {
				hedge.Reset(blobHedge)
			}
		case <-hedge.C:
			switch {
			case next < len(plan.peers) && len(asked) < blobAsked && plan.sending.Load() == 0 && reqCtx.Err() == nil:
				ask()
			case next == len(plan.peers) && silent() && reqCtx.Err() == nil:
				for p := range asked {
					errs = append(errs, fmt.Errorf("peer %s: %w for %v (still asked)", p, errNoAnswer, blobHedge))
				}
				if !n.track() {
					done()
					return nil, errs, full
				}
				stopCaller() // the requests left outlive the caller
				go n.lateAnswers(c, len(asked), answers, done)
				return nil, errs, full
			}
			hedge.Reset(blobHedge)
		}
	}
	done()
	return nil, errs, full
}

// blobAnswer is how one peer's request of a fetch ended.
type blobAnswer struct {
	p    peer.ID
	data []byte
	err  error
}

// lateAnswers waits for the count requests a fetch gave up on, stores the
// first blob one of them brings and resets the others, then calls done.
// It runs on a goroutine the caller tracked.
func (n *Node) lateAnswers(c cid.Cid, count int, answers <-chan blobAnswer, done func()) {
	defer n.wg.Done()
	defer done()
	for range count {
		a := <-answers
		if a.err != nil {
			continue
		}
		done()
		// Even as the node closes: the store closes after this returns.
		if err := n.putBlob(context.WithoutCancel(n.ctx), a.data); err != nil {
			n.log.Warn("store a blob that came late", "cid", c, "peer", a.p, "err", err)
		} else {
			n.log.Debug("blob fetched late", "cid", c, "peer", a.p, "bytes", len(a.data))
		}
	}
}

// errNodeClosing: the node is closing, and starts nothing more.
var errNodeClosing = errors.New("the node is closing")

// planBlob works out the sizes and limit a fetch accepts (from the records
// and the commons' current manifests) and the peers to ask, in order:
// peers in the commons' topics, then other connected peers; peers that
// served bad data, or lack payloads lately, last. Unless askAll, those
// that lack payloads lately are left out.
func (n *Node) planBlob(ctx context.Context, c cid.Cid, sum blobSummary, askAll bool) (blobPlan, error) {
	plan := blobPlan{unknown: sum.unknown, askAll: askAll}
	var topicPeers []peer.ID
	err := n.do(ctx, func() {
		for _, id := range sum.commons {
			rep := n.commons[id]
			if rep == nil {
				continue
			}
			limit := uint64(protocol.DefaultBlobLimit)
			if _, head := rep.state.Head(); head != nil {
				limit = head.BlobLimit()
			}
			plan.limit = max(plan.limit, min(limit, api.MaxBlobSize))
			if rep.topic != nil {
				topicPeers = append(topicPeers, rep.topic.ListPeers()...)
			}
		}
	})
	if err != nil {
		return plan, err
	}
	// sum.sizes are the smallest sizes stated: if none is within the
	// limit, no size is.
	for _, s := range sum.sizes {
		if s <= plan.limit {
			plan.sizes = append(plan.sizes, s)
		}
	}
	if len(plan.sizes) == 0 && !sum.unknown {
		return plan, fmt.Errorf("%w: %w: blob %s is stated to be %d bytes or more; the commons allows %d", api.ErrBadRequest, ErrBlobTooLarge, c, sum.sizes[0], plan.limit)
	}
	if sum.more && len(plan.sizes) == len(sum.sizes) {
		// Sizes within the limit may be stated beyond those kept: ask the
		// records about any other size announced.
		// The node's context: requests a fetch gave up on outlive its
		// caller's, and their sizes are checked all the same.
		plan.stated = func(size uint64) bool { return n.statesSize(n.ctx, c, size) }
	} else if !sum.unknown {
		plan.limit = slices.Max(plan.sizes)
	}
	seen := map[peer.ID]bool{n.host.ID(): true}
	var first, rest []peer.ID
	for _, group := range [][]peer.ID{topicPeers, n.host.Network().Peers()} {
		for _, p := range group {
			if seen[p] || n.host.Network().Connectedness(p) != network.Connected {
				continue
			}
			seen[p] = true
			first = append(first, p)
		}
	}
	now := n.cfg.Now()
	n.blobs.mu.Lock()
	for _, p := range first {
		switch {
		case n.blobs.lacks(p, now) && !askAll:
			plan.setAside = append(plan.setAside, p)
		case n.blobs.bad[p] == 0 && !n.blobs.lacks(p, now):
			plan.peers = append(plan.peers, p)
		default:
			rest = append(rest, p)
		}
	}
	n.blobs.mu.Unlock()
	plan.peers = append(plan.peers, rest...)
	return plan, nil
}

// errBusy: the peer has too many of our requests (or we of its) running.
var errBusy = errors.New("peer busy")

// errMaxAsking: blobFetchPerPeer of our requests to the peer are running
// already; it was not asked.
var errMaxAsking = fmt.Errorf("%w: %d of our requests to it are running", errBusy, blobFetchPerPeer)

// errNoSlot: a peer a fetch could ask had blobFetchPerPeer of our requests
// running already, and was not asked. A background fetch waits for one to
// end (fetchQueued) rather than count it a failure: the others' answers
// ("missing", or busy) say nothing of what that peer has, and a peer that
// is always busy would otherwise make every fetch fail while the requests
// to one that serves are all running.
var errNoSlot = errors.New("no peer asked")

// errPutBack: a queued fetch that found no peer to ask was put back in the
// queue (fetchQueued).
var errPutBack = errors.New("put back in the queue")

// blobTurn is how long a background fetch keeps its worker while other
// blobs are queued: a stall and a hedge. A fetch whose first peer stalled
// and whose next is stalling too is put back in the queue (fetchQueued),
// its requests left to run: otherwise the peers that announce a flood's
// payloads and stall on each could hold a worker for a stall each, and
// another author's blob would wait behind as many.
const blobTurn = blobStall + blobHedge

// blobPutBacks is how many queued blobs a worker puts back, for want of a
// peer to ask, before it waits for one (fetchQueued).
const blobPutBacks = 8

// putBack queues c again, behind its author's other blobs, if another
// blob is queued; it reports whether it did. c is still listed in queued.
func (b *blobState) putBack(c cid.Cid) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	author, ok := b.queued[c]
	if !ok || b.queue.len() == 0 {
		return false
	}
	b.queue.push(author, c)
	signal(b.wake)
	return true
}

// errNoPeer is the failure of a fetch with no peer connected to ask.
var errNoPeer = errors.New("no peer is connected")

// errLacking is the failure of a background fetch of an old payload that
// left out peers set aside for lacking payloads lately (blobState.lacking).
var errLacking = errors.New("the other connected peers lacked the payloads asked of them lately")

// errMissing: the peer answered that it does not have the blob.
var errMissing = errors.New("peer does not have it")

// anyConnected reports whether a peer is connected that a fetch could ask
// (planBlob): a connection limited by a relay does not count.
func (n *Node) anyConnected() bool {
	nw := n.host.Network()
	for _, p := range nw.Peers() {
		if nw.Connectedness(p) == network.Connected {
			return true
		}
	}
	return false
}

// peerJoined wakes the background fetches waiting for a peer. When p is
// not set aside for lacking payloads, it may have those the others
// lacked: the failed fetches waiting to be tried again are due at the next
// retry tick, and a sweep for those left out of the retry map (backing off
// as a whole) is due at once. It does so at most every blobSweepRetry,
// and twice as seldom each time it did with no background fetch served
// since (up to blobRetryMax): peers that keep connecting do not undo the
// back-off of payloads nobody has.
func (b *blobState) peerJoined(p peer.ID, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.joined)
	b.joined = make(chan struct{})
	if b.lacks(p, now) || now.Before(b.joinSweep.Add(blobBackoff(blobSweepRetry, b.joins))) {
		return
	}
	b.joinSweep = now
	b.joins++
	for _, r := range b.retry {
		r.next = time.Time{}
	}
	if b.sweep && now.Before(b.sweepAt) {
		b.sweepAt = now
	}
}

// fetchFrom asks one peer for a blob and verifies what it sends.
func (n *Node) fetchFrom(ctx context.Context, p peer.ID, c cid.Cid, plan blobPlan) ([]byte, error) {
	b := &n.blobs
	b.mu.Lock()
	if b.asking[p] >= blobFetchPerPeer {
		b.mu.Unlock()
		return nil, errMaxAsking
	}
	b.asking[p]++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		dec(b.asking, p)
		close(b.freed)
		b.freed = make(chan struct{})
		b.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, blobTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, protocol.BlobProtocol)
	if err != nil {
		return nil, fmt.Errorf("open blob stream: %w", err)
	}
	defer s.Close()
	// A fetch that got the blob elsewhere resets this request.
	defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
	_ = s.SetDeadline(time.Now().Add(blobTimeout))
	_ = s.SetReadDeadline(time.Now().Add(blobAnswerWait))
	data, err := n.fetchOn(&stallStream{Stream: s}, c, plan)
	switch {
	case err == nil:
		b.mu.Lock()
		delete(b.lacking, p) // it has payloads after all
		b.mu.Unlock()
	case errors.Is(err, errMissing) && !plan.askAll:
		// Only old payloads count: a fresh one may well be on its way to
		// the peer, and a user's fetch is not the node's to learn from.
		b.mu.Lock()
		wait := b.missed(p, n.cfg.Now())
		b.mu.Unlock()
		if wait > 0 {
			n.metrics.BlobPeerFailed("lacking")
			n.log.Info("peer lacks the payloads asked of it: old ones are not asked of it for a while", "peer", p, "missing", blobLackMisses, "for", wait)
		}
	}
	if err != nil {
		_ = s.Reset()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		stalled := errors.Is(err, errNoAnswer)
		if stalled || errors.Is(err, errBadBlob) {
			b.mu.Lock()
			b.markBad(p)
			b.mu.Unlock()
		}
		switch {
		case stalled:
			n.metrics.BlobPeerFailed("silent")
			n.log.Info("peer did not answer a blob request", "peer", p, "cid", c, "wait", blobAnswerWait)
		case errors.Is(err, errBadBlob):
			n.metrics.BlobPeerFailed("bad")
			n.log.Warn("peer served a bad blob", "peer", p, "cid", c, "err", err)
		}
	}
	return data, err
}

// errNoAnswer: a peer did not answer a blob request within blobAnswerWait.
var errNoAnswer = errors.New("no answer")

// timedOut reports whether err is a read that hit its deadline.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// stallStream is a blob stream whose reads, once expect is called, must
// each bring bytes within blobStall, and all of them by a deadline that
// allows blobMinRate.
type stallStream struct {
	network.Stream
	end time.Time // zero until expect
}

// expect starts the blob's bytes: size of them.
func (s *stallStream) expect(size uint64) {
	s.end = time.Now().Add(blobTimeout + time.Duration(size/blobMinRate)*time.Second)
	s.progress()
}

func (s *stallStream) progress() {
	d := time.Now().Add(blobStall)
	if d.After(s.end) {
		d = s.end
	}
	_ = s.SetReadDeadline(d)
}

func (s *stallStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if n > 0 && !s.end.IsZero() {
		s.progress()
	}
	return n, err
}

// errBadBlob: a peer broke the protocol or sent bytes that do not match.
var errBadBlob = errors.New("bad blob answer")

func (n *Node) fetchOn(s io.ReadWriter, c cid.Cid, plan blobPlan) ([]byte, error) {
	req, err := protocol.EncodeBlobRequest(&protocol.BlobRequest{CID: protocol.Link{Cid: c}})
	if err != nil {
		return nil, err
	}
	if err := writeFrame(s, req); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	r := bufio.NewReader(s)
	msg, err := readFrame(r, protocol.MaxBlobMessage)
	switch {
	case err != nil && timedOut(err):
		return nil, fmt.Errorf("read answer: %w within %v: %w", errNoAnswer, blobAnswerWait, err)
	case err != nil:
		return nil, fmt.Errorf("read answer: %w", err)
	}
	resp, err := protocol.DecodeBlobResponse(msg)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errBadBlob, err)
	case resp.Missing:
		return nil, errMissing
	case resp.Busy:
		return nil, errBusy
	}
	size := *resp.Size
	if plan.sending != nil {
		plan.sending.Add(1) // from the announcement: the check may wait
		defer plan.sending.Add(-1)
	}
	if !plan.accepts(size) {
		return nil, fmt.Errorf("%w: %w: peer announced %d bytes; the records state %v (limit %d)", errBadBlob, ErrBlobTooLarge, size, plan.sizes, plan.limit)
	}
	if st, ok := s.(*stallStream); ok {
		st.expect(size) // from now on, bytes must keep coming
	}
	data, err := readBlob(r, size)
	if err != nil {
		// Announced, then not sent whole: a stall, or a peer that
		// claims blobs it does not have.
		return nil, fmt.Errorf("%w: read blob of %d bytes: %w", errBadBlob, size, err)
	}
	if got := protocol.BlobCID(data); !got.Equals(c) {
		return nil, fmt.Errorf("%w: bytes hash to %s, not %s", errBadBlob, got, c)
	}
	return data, nil
}

// serveBlob answers a peer's blob request: only blobs that a replicated
// record references, a bounded number of streams per peer.
func (n *Node) serveBlob(s network.Stream) {
	if !n.track() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(blobTimeout))
	// A node that closes ends the streams it serves rather than wait for
	// their peers to read.
	defer context.AfterFunc(n.ctx, func() { _ = s.Reset() })()
	p := s.Conn().RemotePeer()
	b := &n.blobs
	busy := !b.startServing(p)
	if !busy {
		defer b.stopServing(p)
	}
	if err := n.serveBlobOn(s, busy); err != nil {
		n.log.Debug("serve blob", "peer", p, "err", err)
		_ = s.Reset()
	}
}

// servable reports whether blob c is stored here and a record replicated
// here references it, other than only records the commons has disowned
// (claim; a blob more than servedClaims records reference is served). The store is asked first: a request for a blob not stored here
// costs no lookup of its references.
func (n *Node) servable(c cid.Cid) (bool, error) {
	has, err := n.storedBlob(n.ctx, c)
	if err != nil || !has {
		return false, err
	}
	referenced, disowned, err := n.claim(n.ctx, c, servedClaims)
	return referenced && !disowned, err
}

// blobServeChunk is how much of a blob a served stream reads from the
// store at a time.
const blobServeChunk = 256 << 10

// serveBlobOn answers one blob request on s. A blob is read from the store
// a chunk at a time as it is written: what serving costs in memory does
// not grow with the blobs' size, and the store is held for no longer than
// a chunk's copy, however slowly the peer reads. The chunks are hashed as
// they go, and the last is written only if the blob hashes to its CID: a
// blob stored damaged is answered missing if it fits one chunk, and ends
// in a reset otherwise; either way it is noted damaged (blobDamaged).
func (n *Node) serveBlobOn(s io.ReadWriter, busy bool) error {
	msg, err := readFrame(bufio.NewReader(s), protocol.MaxBlobMessage)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	req, err := protocol.DecodeBlobRequest(msg)
	if err != nil {
		return err
	}
	answer := func(resp protocol.BlobResponse) error {
		out, err := protocol.EncodeBlobResponse(&resp)
		if err != nil {
			return err
		}
		return writeFrame(s, out)
	}
	if busy {
		return answer(protocol.BlobResponse{Busy: true})
	}
	ok, err := n.servable(req.CID.Cid)
	if err != nil {
		return err
	}
	c := req.CID.Cid
	var buf []byte
	var k int
	var size int64
	h := sha256.New()
	// whole reports whether the blob hashes to c, once h holds all of it.
	whole := func() bool {
		if !bytes.Equal(h.Sum(nil), c.Hash()[len(c.Hash())-sha256.Size:]) {
			n.blobDamaged(c, fmt.Errorf("%w: blob %s: its bytes do not match its CID (found while serving it)", store.ErrCorrupt, c))
			return false
		}
		return true
	}
	if ok {
		buf = make([]byte, blobServeChunk)
		k, size, err = n.st.ReadBlob(n.ctx, c, 0, buf)
		if errors.Is(err, store.ErrNotFound) {
			ok = false
		} else if err != nil {
			return err
		}
		h.Write(buf[:k])
		if ok && int64(k) >= size && !whole() {
			ok = false // serve no damaged bytes
		}
	}
	if !ok {
		return answer(protocol.BlobResponse{Missing: true})
	}
	usize := uint64(size)
	if err := answer(protocol.BlobResponse{Size: &usize}); err != nil {
		return err
	}
	for off := int64(0); ; {
		if _, err := s.Write(buf[:k]); err != nil {
			return err
		}
		if off += int64(k); off >= size {
			return nil
		}
		var again int64
		if k, again, err = n.st.ReadBlob(n.ctx, c, off, buf); err != nil {
			return err
		}
		if again != size || k == 0 {
			return fmt.Errorf("blob %s changed size in the store while served (%d bytes, now %d)", c, size, again)
		}
		h.Write(buf[:k])
		if off+int64(k) >= size && !whole() {
			return fmt.Errorf("blob %s is stored damaged: the stream is reset before its last bytes", c)
		}
	}
}

// startServing takes a slot to serve peer p a blob, and reports whether
// there was one (within blobServePerPeer).
func (b *blobState) startServing(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.serving[p] >= blobServePerPeer {
		return false
	}
	b.serving[p]++
	return true
}

// stopServing gives back a slot startServing took.
func (b *blobState) stopServing(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dec(b.serving, p)
}

// markBad counts a bad answer from p. When blobBadPeers are remembered
// already, it forgets one with the fewest: new peer IDs, each with one bad
// answer, cannot wash out a peer that gave many. Caller holds b.mu.
func (b *blobState) markBad(p peer.ID) {
	if _, ok := b.bad[p]; !ok && len(b.bad) >= blobBadPeers {
		var least peer.ID
		fewest := -1
		for q, k := range b.bad {
			if fewest < 0 || k < fewest {
				least, fewest = q, k
			}
		}
		delete(b.bad, least)
	}
	b.bad[p]++
}

// lackState is what a node remembers of a peer's "missing" answers.
type lackState struct {
	misses int       // "missing" answers since it last served a blob, or was set aside
	times  int       // times it was set aside since it last served a blob
	until  time.Time // set aside until then
}

// lacks reports whether peer p is set aside at now for lacking payloads.
// Caller holds b.mu.
func (b *blobState) lacks(p peer.ID, now time.Time) bool {
	l := b.lacking[p]
	return l != nil && now.Before(l.until)
}

// missed counts a "missing" answer from p, and returns how long p is set
// aside from now, if that answer made blobLackMisses in a row (0 if not).
// When blobBadPeers are remembered already, it forgets the one set aside
// the least long. Caller holds b.mu.
func (b *blobState) missed(p peer.ID, now time.Time) time.Duration {
	l := b.lacking[p]
	if l == nil {
		if len(b.lacking) >= blobBadPeers {
			var least peer.ID
			var soonest *lackState
			for q, m := range b.lacking {
				if soonest == nil || m.until.Before(soonest.until) {
					least, soonest = q, m
				}
			}
			delete(b.lacking, least)
		}
		l = &lackState{}
		b.lacking[p] = l
	}
	if now.Before(l.until) {
		return 0 // asked all the same (a fresh payload, or by a user)
	}
	l.misses++
	if l.misses < blobLackMisses {
		return 0
	}
	l.misses = 0
	l.times++
	wait := blobBackoff(blobLackWait, l.times)
	l.until = now.Add(wait)
	return wait
}

// lackEnds returns when the first peer set aside for lacking payloads may
// be asked again, after now (at least blobRetry, at most blobRetryMax from
// now; blobLackWait if none is set aside). Caller holds b.mu.
func (b *blobState) lackEnds(now time.Time) time.Time {
	var first time.Time
	for _, l := range b.lacking {
		if now.Before(l.until) && (first.IsZero() || l.until.Before(first)) {
			first = l.until
		}
	}
	if first.IsZero() {
		return now.Add(blobLackWait)
	}
	return now.Add(min(max(first.Sub(now), blobRetry), blobRetryMax))
}

// askable reports whether a connected peer is not set aside for lacking
// payloads, and if not, when the first one set aside stops being so.
func (n *Node) askable() (bool, time.Time) {
	nw := n.host.Network()
	now := n.cfg.Now()
	var next time.Time
	b := &n.blobs
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range nw.Peers() {
		if nw.Connectedness(p) != network.Connected {
			continue
		}
		if !b.lacks(p, now) {
			return true, time.Time{}
		}
		if u := b.lacking[p].until; next.IsZero() || u.Before(next) {
			next = u
		}
	}
	return false, next
}

// dec decrements m[p], removing it at zero: a map of per-peer counts
// holds only the peers with something running.
func dec(m map[peer.ID]int, p peer.ID) {
	if m[p] <= 1 {
		delete(m, p)
		return
	}
	m[p]--
}

// readBlob reads exactly size bytes from r, allocating as they arrive (at
// most twice what arrived, never more than size): a peer that announces a
// large blob and sends little costs what it sent. The last growth holds
// the blob and half of it at once.
func readBlob(r io.Reader, size uint64) ([]byte, error) {
	data := make([]byte, 0, min(size, 64<<10))
	for uint64(len(data)) < size {
		if len(data) == cap(data) {
			data = slices.Grow(data, int(min(uint64(cap(data)), size-uint64(cap(data)))))
		}
		k, err := r.Read(data[len(data):min(uint64(cap(data)), size)])
		data = data[:len(data)+k]
		switch {
		case uint64(len(data)) == size:
			return data, nil
		case err == io.EOF:
			return nil, fmt.Errorf("%w after %d of the %d bytes announced", io.ErrUnexpectedEOF, len(data), size)
		case err != nil:
			return nil, err
		}
	}
	return data, nil
}
