package node

import (
	"errors"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// Sweeps.
//
// The background fetch queue and the retry map have fixed caps, so a
// missing blob may be in neither: its record arrived while the queue was
// full, its fetch failed while the retry map was full, or it was
// referenced before the node last started. A sweep finds such blobs
// again: it walks the stored references (prefixBlob) of each replicated
// commons, a chunk of blobs at a time, and queues those not stored here,
// not queued and not waiting to be retried, waiting for room in the queue
// as the workers take from it. The sweeper sweeps once at start, after
// the save that stores references left out of a full queue, at a retry
// tick after a failure was left out of the retry map (those back off as a
// whole: fetched), and when a ban is lifted (the blobs only the banned
// key's records claimed were not fetched: claim); those of a node with no
// peer wait for one.

// blobSweeper sweeps at start, and again whenever woken (sweepNow); but
// only with a peer connected to fetch from: a sweep reads the record of
// each blob it queues (its author, for the fair queue), and a node alone
// would read a queue's worth of them for nothing.
func (n *Node) blobSweeper() {
	for {
		n.blobs.mu.Lock()
		joined := n.blobs.joined
		n.blobs.mu.Unlock()
		if !n.anyConnected() {
			select {
			case <-joined:
				// The sweep comes now: wake-ups while alone are spent.
				select {
				case <-n.blobs.sweepNow:
				default:
				}
				continue
			case <-n.ctx.Done():
				return
			}
		}
		n.blobs.mu.Lock()
		n.blobs.sweep = false
		n.blobs.mu.Unlock()
		n.sweepBlobs()
		select {
		case <-n.blobs.sweepNow:
		case <-n.ctx.Done():
			return
		}
	}
}

// sweepBlobs sweeps every replicated commons. When a commons' references
// cannot be read, the others are swept all the same, and all are swept
// again later, with a back-off of its own (a disk that keeps failing is
// not read, nor logged, at every retry tick; nor does it delay the sweeps
// that find blobs a full queue left out).
func (n *Node) sweepBlobs() {
	failed := false
	for _, id := range n.commonsIDs() {
		if err := n.sweepCommons(id); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			failed = true
			n.log.Warn("the blobs a commons references could not be read to fetch the missing ones; trying again later", "commons", id, "err", err)
		}
	}
	b := &n.blobs
	b.mu.Lock()
	defer b.mu.Unlock()
	if !failed {
		b.readFails = 0
		return
	}
	b.readFails++
	b.readRetry = n.cfg.Now().Add(blobBackoff(blobSweepRetry, b.readFails))
}

// sweepCommons queues the missing blobs that commons id's stored records
// reference.
func (n *Node) sweepCommons(id cid.Cid) error {
	var from []byte
	for {
		chunk, next, err := n.blobChunk(id, from)
		if err != nil {
			return err
		}
		n.streamed.Add(int64(len(chunk))) // references read in bulk
		for _, ref := range chunk {
			if err := n.sweepBlob(ref.blob, ref.record); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		from = next
	}
}

// sweptRef is a blob a sweep found, and the first stored record that
// references it.
type sweptRef struct{ blob, record cid.Cid }

// blobChunk returns up to bounds.chunk blobs of commons id's stored
// references, from key from on (nil: the first), and the key to go on
// from (nil: none is left).
func (n *Node) blobChunk(id cid.Cid, from []byte) (chunk []sweptRef, next []byte, err error) {
	size := n.blobs.bounds.chunk
	var bad []byte
	err = n.st.ScanDerived(n.ctx, id, []byte{prefixBlob}, from, func(k, _ []byte) error {
		l, c, err := cid.CidFromBytes(k[1:])
		if err != nil {
			bad = slices.Clone(k)
			return nil
		}
		if len(chunk) > 0 && chunk[len(chunk)-1].blob.Equals(c) {
			return nil // another reference to the same blob
		}
		if len(chunk) == size {
			next = slices.Clone(k)
			return errStop
		}
		_, rec, err := cid.CidFromBytes(k[1+l:])
		if err != nil {
			bad = slices.Clone(k)
			return nil
		}
		chunk = append(chunk, sweptRef{c, rec})
		return nil
	})
	if bad != nil {
		n.damaged(id, damagedBlobKey(id, bad))
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	return chunk, next, err
}

// sweepBlob queues blob c, which record rec references, for a background
// fetch if it is missing, not queued and not waiting to be retried,
// waiting for room in the queue. It fails only if the node stops.
func (n *Node) sweepBlob(c, rec cid.Cid) error {
	b := &n.blobs
	b.mu.Lock()
	r := b.retry[c]
	_, queued := b.queued[c]
	skip := queued || r != nil && n.cfg.Now().Before(r.next)
	b.mu.Unlock()
	if skip {
		return nil
	}
	if err := n.awaitAskable(); err != nil {
		return err
	}
	has, err := n.storedBlob(n.ctx, c)
	if err != nil || has {
		return err
	}
	if _, disowned, err := n.claim(n.ctx, c, 0); err != nil || disowned {
		return err // disowned: not fetched (claim)
	}
	author := n.authorOf(rec)
	for {
		b.mu.Lock()
		ok, _ := b.enqueue(c, author)
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-b.room:
		case <-n.ctx.Done():
			return n.ctx.Err()
		}
	}
}

// awaitAskable waits until a connected peer is not set aside for lacking
// payloads (blobState.lacking): a sweep queues old payloads only, which
// such a peer is not asked for, and each blob queued costs a read of the
// record that claims it. It fails only if the node stops.
func (n *Node) awaitAskable() error {
	for {
		n.blobs.mu.Lock()
		joined := n.blobs.joined
		n.blobs.mu.Unlock()
		ok, next := n.askable()
		if ok {
			return nil
		}
		wait := blobLackWait // no peer at all: until one connects, looking again now and then
		if !next.IsZero() {
			wait = min(max(next.Sub(n.cfg.Now()), blobRetry), blobLackWait)
		}
		t := time.NewTimer(wait)
		select {
		case <-joined:
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			return n.ctx.Err()
		}
		t.Stop()
	}
}

// authorOf returns the author of stored record c, for the fair queue; a
// record that cannot be read (damage is reported where records are read)
// queues its blobs under the zero key.
func (n *Node) authorOf(c cid.Cid) protocol.PublicKey {
	raw, err := n.st.GetRecord(n.ctx, c)
	if err != nil {
		return protocol.PublicKey{}
	}
	b, err := protocol.Parse(raw)
	if err != nil {
		return protocol.PublicKey{}
	}
	return b.Record.Author
}
