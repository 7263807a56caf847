package feed

// Writing caught-up subscribers' streams from the notifier.
//
// Most subscribers are caught up: each publication is, for them, one
// segment to write, already joined for their filter. For a subscriber
// whose stream can be written without blocking (an SSE stream on its own
// connection, sse.go), the notifier writes the segment itself, right
// after publishing it, and leaves the subscriber waiting for the next one:
// no goroutine wakes, and a publication to a thousand subscribers is a
// thousand non-blocking writes on one goroutine rather than a thousand
// goroutines' wake-ups, reads and writes spread over every core. Anything
// else goes the usual way (turns.go): a subscriber that is not caught
// up, whose filter the segment has not joined, or whose reader is busy;
// and a write that would block, whose rest the reader writes itself.
//
// The subscriber's wmu orders the two writers: the reader holds it except
// while it waits in read, and the notifier takes it only by TryLock, while
// the subscriber is in its commons' waiter list, so it never waits for a
// reader.

import (
	"math"
	"runtime"
	"time"
)

// setDirect makes s a direct subscription: write writes the stream
// without blocking, returning how many bytes it wrote (an error only for
// a broken stream). The caller is s's reader.
func (s *Subscription) setDirect(write func([]byte) (int, error)) {
	s.direct = write
	s.wmu.Lock()
}

// acquire and release take and give back s's wmu on behalf of its reader,
// for a direct subscription.
func (s *Subscription) acquire() {
	if s.direct != nil {
		s.wmu.Lock()
	}
}

func (s *Subscription) release() {
	if s.direct != nil {
		s.wmu.Unlock()
	}
}

// sinceDirect returns the time since the notifier last wrote s's stream
// (a long time if never).
func (s *Subscription) sinceDirect() time.Duration {
	w := s.wrote.Load()
	if w == 0 {
		return math.MaxInt64
	}
	return time.Since(time.Unix(0, w))
}

// claim reports whether the notifier can write seg to s directly, taking
// s's wmu if so. Caller holds s's commons' f.mu and has taken s out of the
// waiter list.
func (s *Subscription) claim(seg *segment) bool {
	if s.direct == nil || !s.wmu.TryLock() {
		return false
	}
	if _, joined := seg.batches[s.s.filter]; joined && s.s.pos == seg.from && s.pending == nil {
		return true
	}
	s.wmu.Unlock()
	return false
}

// writeDirect writes seg to the subscribers wakeWaiters claimed for it.
// Those it wrote whole wait again for the next publication; the others
// (the write would block, or failed) are queued for a turn, and their
// readers write the rest or meet the error. Notifier only.
func (h *Hub) writeDirect(f *commonsFeed, seg *segment, direct []*Subscription) {
	if len(direct) == 0 {
		return
	}
	if !h.ownThread {
		// From its first direct write on, the notifier keeps an OS thread
		// of its own (run gives it back), so that the goroutines that
		// ingest records do not run on the thread that has just made a
		// thousand socket writes, and the scheduler tends to keep the two
		// on different cores. Side by side in BenchmarkFeedSubscribers
		// (2 cores, 1,000 subscribers) this raised the ingest ratio by
		// about 0.05 on average and lowered the node's CPU per record.
		runtime.LockOSThread()
		h.ownThread = true
	}
	var wake []*Subscription
	now := time.Now().UnixNano()
	done := direct[:0]
	for _, s := range direct {
		b := seg.batches[s.s.filter]
		n := 0
		if len(b) > 0 {
			n, _ = s.direct(b)
			s.wrote.Store(now)
		}
		switch {
		case n == len(b):
			s.s.pos, s.s.live = seg.to, true
			done = append(done, s)
			continue
		case n > 0:
			// The stream holds part of the segment: the reader writes the
			// rest before anything else.
			s.s.pos, s.s.live = seg.to, true
			s.pending = b[n:]
		}
		wake = append(wake, s)
		s.wmu.Unlock()
	}
	if len(done) > 0 {
		f.mu.Lock()
		for _, s := range done {
			s.waiting = true
		}
		f.waiters = append(f.waiters, done...)
		f.mu.Unlock()
		for _, s := range done {
			s.wmu.Unlock()
		}
	}
	if len(wake) > 0 {
		h.turns.enqueue(wake)
	}
}
