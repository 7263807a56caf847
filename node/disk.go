package node

import (
	"fmt"
	"sync"

	"github.com/commons-p2p/commons/node/api"
)

// diskGuard says whether the store's disk has room for a write: at least
// Config.DiskMargin bytes free. It logs when the disk goes below the
// margin and when it comes back, and no more than that.
type diskGuard struct {
	mu  sync.Mutex
	low bool
}

// diskOK returns nil if the disk has room, else an error wrapping
// api.ErrDiskFull that says how much is free. Any goroutine.
func (n *Node) diskOK() error {
	if n.cfg.FreeSpace == nil {
		return nil
	}
	free, err := n.cfg.FreeSpace()
	if err != nil {
		return nil // cannot tell: the write says whether it could
	}
	low := free < n.cfg.DiskMargin
	n.disk.mu.Lock()
	changed := low != n.disk.low
	n.disk.low = low
	n.disk.mu.Unlock()
	if changed && low {
		n.log.Error("the disk holding the repo is nearly full: storing nothing until space is freed (reads go on)",
			"free_mib", free>>20, "margin_mib", n.cfg.DiskMargin>>20)
	} else if changed {
		n.log.Warn("the disk holding the repo has room again: storing again", "free_mib", free>>20)
	}
	if low {
		return fmt.Errorf("%w: %d MiB free on the disk holding the repo, below the %d MiB this node keeps free (disk_margin): free some space; writes resume by themselves",
			api.ErrDiskFull, free>>20, n.cfg.DiskMargin>>20)
	}
	return nil
}
