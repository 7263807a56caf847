package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ipfs/go-cid"
)

// What the external tests of this package (package node_test, which may
// import testnet) read and set of a node's insides.

// BlobWorkers is how many background blob fetches run at once.
const BlobWorkers = blobWorkers

// SetAside returns how much longer n leaves peer p out of fetches of old
// payloads for lacking them (0: it does not).
func SetAside(n *Node, p peer.ID) time.Duration {
	n.blobs.mu.Lock()
	defer n.blobs.mu.Unlock()
	if l := n.blobs.lacking[p]; l != nil && n.cfg.Now().Before(l.until) {
		return l.until.Sub(n.cfg.Now())
	}
	return 0
}

// BlobLackMisses is how many blobs in a row a peer may lack before old
// payloads are not asked of it for a while.
const BlobLackMisses = blobLackMisses

// SetBlobBounds makes the blob exchange of a node built from cfg keep at
// most queue fetches waiting and retry failures waiting to be retried,
// sweep chunk blobs at a time, and call attempted before each background
// fetch.
func SetBlobBounds(cfg *Config, queue, retry, chunk int, attempted func(cid.Cid)) {
	cfg.blob = blobBounds{queue: queue, retry: retry, chunk: chunk, attempted: attempted}
}

// BlobMemory returns what n's blob exchange holds in memory: fetches
// waiting, blobs queued or being fetched, failures waiting to be retried,
// and blob references applied and not saved yet.
func BlobMemory(n *Node) (queue, queued, retry, unsaved int) {
	n.blobs.mu.Lock()
	queue, queued, retry = n.blobs.queue.len(), len(n.blobs.queued), len(n.blobs.retry)
	n.blobs.mu.Unlock()
	_ = n.do(context.Background(), func() {
		for _, rep := range n.commons {
			unsaved += len(rep.unsaved.blobs)
		}
	})
	return queue, queued, retry, unsaved
}
