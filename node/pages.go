package node

import (
	"context"
	"time"
)

// pageReleaser is a store that can hand back the pages of its files that
// the process holds mapped (badgerstore.Store.ReleasePages).
type pageReleaser interface {
	ReleasePages(ctx context.Context, budget int64) (before, after int64, released bool, err error)
}

// readAdviser is a store that can have the kernel read its files a page
// at a time, or around each page read (badgerstore.Store.ReadRandomly).
type readAdviser interface {
	ReadRandomly(ctx context.Context, random bool) error
}

// pageOuter is a store that can page out the pages of its files while it
// closes (badgerstore.Store.PageOut).
type pageOuter interface {
	PageOut(budget int64) (before, after int64, released bool, err error)
}

// The store's mapped file pages are checked every pageCheck while they
// grow, and released once they have grown by pageBudget since they last
// were: the process holds up to pageBudget more than what a release
// leaves (the binary, the memtables, and the tables' pages and indexes
// that badgerstore keeps up to its own budgets), and what an import or a
// scan touches in a pageCheck and while a release runs (a 1,000,000-record import
// beside other work on two cores: releases of 46 ms at the median, 224 at
// the 90th percentile, 757 at the 99th; the debug log gives each one's).
// While they change by less than pageBudget/16 from one check to the
// next, the checks space out, each twice as long after the one before, up
// to pageIdle apart: an idle daemon wakes once a second for them, not
// twenty times. Pages that shrink count as pages that grow: badger unmaps
// the tables a compaction replaced while it goes on writing the next ones,
// so that during an import the pages held may fall from one check to the
// next and then grow fast. The tables' pages stay in the page cache
// (badgerstore's ReleasePages), so a small budget costs a read of them
// again little: importing 1,000,000 records, with 16
// MiB, took 134 and 143 s with peaks of 464 and 501 MB resident; with 48
// MiB, 146 and 145 s, with peaks of 521 and 527 MB.
// A release at 10,000,000 records takes tens of milliseconds, and more
// beside an import (importing 1,000,000 records into such a store: 761
// releases, 69 ms at the median, 459 at the 90th percentile, 135 s in
// all of the import's 267). Checking after a release only once four
// times its length had passed (up to pageIdle) made them 332 releases and
// 78 s, but the import no faster (264 s), and a daemon serving feed pages from
// that store then held up to 522 and 575 MB resident, against 323 MB with
// a check every pageCheck.
const (
	pageCheck  = 50 * time.Millisecond
	pageIdle   = time.Second
	pageBudget = 16 << 20
)

// startReleasingPages checks the store's mapped pages (every pageCheck to
// pageIdle), if the store can release them, from Start to the end of
// Close (which may hash the whole root trie), until stop is called; stop
// waits for the goroutine to end. Opening the store maps the tables'
// indexes, about 200 MB of them at 10,000,000 records, and the first
// check, while Start opens the states, releases them. With a madvise a
// range (each flushing the other core's mappings too), that took 0.7 s
// of the start's two cores, and the release began only once Start had
// ended, the process holding 280 to 290 MB when the API first answered.
// Given a hundred and more ranges a call (badgerstore's sysMadvise), it
// takes about 0.1 s: on that repo, three starts of each, alternately, the
// API answered in 843 to 853 ms holding 94 MB, against 752 to 918 ms
// holding 292 MB with the release after the start. On a kernel that
// takes one range a call (before Linux 6.13), the start takes about 0.4
// s longer at 10,000,000 records.
//
// At 10,000,000 records a release takes 10 to 36 ms, and on two cores a
// lookup that met one waited for it: a daemon's releases after its first
// check run at the lowest priority (releasePriority), and 600 random
// lookups of contributions there, the store in the page cache, took 1.55
// to 2.97 ms at p99 against 2.35 to 9.28 (three rounds of two runs,
// alternately), holding as much memory after them. A release so lowered
// holds, while it runs, badger's locks of its levels as it lists the
// tables, and the kernel's lock of the process's mappings in each
// madvise call; under load the kernel may leave it waiting while it holds
// them. With three busy loops at nice 0 beside the daemon on two cores,
// three runs of each: p99 5.3, 4.5 and 11.3 ms against 10.5, 9.1 and
// 14.3, status as fast, the stop as long (0.24 s), no stall seen. An
// import's releases keep their priority: at the lowest, importing
// 1,000,000 records peaked at 450 and 458 MB against 416 and 447, in as
// long. So do a daemon's while it stores records at busyRate or faster (a
// join, a sync that catches up): at the lowest priority, beside the work
// of those writes on every core, each release waited for the CPU while
// badger's compactions mapped more, and a daemon joining 10,000,000
// records held up to 681 MB of file pages, against 405 MB for the import
// of the same records. A daemon's releases at the lowest priority run on
// a thread of their own (lowReleases), the others where the checks run.
func (n *Node) startReleasingPages() (stop func()) {
	r, ok := n.st.(pageReleaser)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// After the first check (which, in a start, releases the
		// indexes the store's Open mapped), a daemon's releases run at
		// the lowest priority: they run beside its API (above). An
		// offline node (a command's, such as an import) keeps its
		// priority: there, releases keep pace with its writes; and so
		// does a daemon while it stores records fast.
		var low chan<- func()
		if !n.cfg.Offline {
			reqs := make(chan func())
			defer close(reqs)
			go n.lowReleases(reqs)
			low = reqs
		}
		// A daemon has its store's files read a page at a time once it
		// has loaded the commons' states, while it stores and reads
		// records slowly (badgerstore's ReadRandomly): its lookups then
		// read what they need, not the device's read-ahead around it.
		// While it loads them, while it stores or reads records at
		// busyRate or faster, and for readQuiet after, they are read
		// around: the states loaded, the records a sync sends or an
		// export writes, are read in order. An offline node's are read
		// around throughout: an import, an export.
		adv, _ := n.st.(readAdviser)
		if n.cfg.Offline {
			adv = nil
		}
		var busyAt time.Time // the last check that found the node busy
		advFailed := false
		first := true
		stored, at := n.stored.Load()+n.streamed.Load(), time.Now()
		wait := pageCheck
		t := time.NewTimer(wait)
		defer t.Stop()
		failed := false
		var last int64 // the file pages held after the last check
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			now := n.stored.Load() + n.streamed.Load()
			busy := float64(now-stored) >= busyRate*start.Sub(at).Seconds()
			stored, at = now, start
			if busy {
				busyAt = start
			}
			if adv != nil {
				random := n.loaded.Load() && !busy && (busyAt.IsZero() || start.Sub(busyAt) >= readQuiet)
				if err := adv.ReadRandomly(ctx, random); err != nil && ctx.Err() == nil && !advFailed {
					advFailed = true // once, as for the releases
					n.log.Warn("store: cannot advise the kernel how to read its files", "err", err)
				}
			}
			var (
				before, after int64
				released      bool
				err           error
			)
			release := func() { before, after, released, err = r.ReleasePages(ctx, pageBudget) }
			if low == nil || first || busy {
				release()
			} else {
				ran := make(chan struct{})
				low <- func() { release(); close(ran) }
				<-ran
			}
			first = false
			switch {
			case err != nil && ctx.Err() == nil && !failed:
				failed = true // once: it would say the same every time
				n.log.Warn("store: cannot release the pages of its files held in memory", "err", err)
			case released:
				n.log.Debug("store: released the pages of its files held in memory", "held_mib", before>>20, "now_mib", after>>20, "took", time.Since(start).Round(time.Millisecond))
			}
			if err == nil && (released || abs(before-last) >= pageBudget/16) {
				wait = pageCheck
			} else {
				wait = min(2*wait, pageIdle)
			}
			if err == nil {
				last = after
			}
			t.Reset(wait)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// busyRate is the rate of records stored or read in bulk (a second) from
// which a daemon's releases keep their priority, and its store's files
// are read around each page read; readQuiet is how long after that a
// daemon's files are read a page at a time again.
const (
	busyRate  = 500
	readQuiet = time.Second
)

// lowReleases runs the releases it is handed, at the lowest priority
// (releasePriority, set on its thread before the first), until reqs is
// closed.
func (n *Node) lowReleases(reqs <-chan func()) {
	lowered := false
	for release := range reqs {
		if !lowered {
			lowered = true
			if err := releasePriority(); err != nil {
				n.log.Debug("store: cannot lower the priority of the pages' release", "err", err)
			}
		}
		release()
	}
}

// releasePriority lowers the priority of a daemon's releases
// (lowestPriority), on the calling goroutine's thread; a variable for
// tests.
var releasePriority = lowestPriority

// abs returns the magnitude of n.
func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// closeStore closes the store, and meanwhile, if it can, checks the
// pages of its files every pageCheck and pages them out once they have
// grown by pageBudget: closing, the store may open itself again, which
// reads the value log file an import or a join wrote through its mapping
// (badgerstore's PageOut), once startReleasingPages has stopped.
func (n *Node) closeStore() error {
	p, ok := n.st.(pageOuter)
	if !ok {
		return n.st.Close()
	}
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(pageCheck)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			select {
			case <-done: // closed at the same tick
				return
			default:
			}
			if _, _, _, err := p.PageOut(pageBudget); err != nil {
				n.log.Debug("store: cannot page out the pages of its files while it closes", "err", err)
				return
			}
		}
	}()
	defer func() {
		close(done)
		<-ended
	}()
	return n.st.Close()
}
