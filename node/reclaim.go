package node

import (
	"context"
	"time"
)

// spaceReclaimer is a store that can give back the disk space of values it
// no longer uses (badgerstore: its value log files).
type spaceReclaimer interface {
	ReclaimSpace(ctx context.Context) (int, error)
}

// reclaimInterval is how often the node asks its store to reclaim space.
const reclaimInterval = 10 * time.Minute

// reclaimSpace asks the store to reclaim the space of values no longer in
// use: the derived entries written over since and the blobs swept. Any
// goroutine but the event loop.
func (n *Node) reclaimSpace(r spaceReclaimer) {
	files, err := r.ReclaimSpace(n.ctx)
	switch {
	case err != nil && n.ctx.Err() == nil:
		n.log.Warn("store: reclaiming the space of values no longer in use failed (the node goes on, and tries again later)", "err", err)
	case files > 0:
		n.log.Info("store: reclaimed the space of values no longer in use", "files_rewritten", files)
	}
}
