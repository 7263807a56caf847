package feed

// Waking subscribers a few at a time.
//
// A caught-up subscriber waits in its commons' waiter list. A publication
// moves the list to the hub's queue, and the hub hands out turns from the
// queue's front, at most feedTurns at once: a subscriber woken with a turn
// reads its events and gives the turn back before it writes them, which
// wakes the next one. So a publication to a thousand subscribers makes a
// few goroutines runnable at a time rather than a thousand, and the event
// loop and ingestion, which share the cores, wait behind a few
// subscribers' reads rather than behind all of them. A subscriber holds a
// turn only inside Subscription.read, never while it writes, so a slow
// connection cannot hold one up.

import (
	"runtime"
	"slices"
	"sync"
)

// feedTurns is how many subscribers may read at once after a publication.
var feedTurns = max(2, runtime.GOMAXPROCS(0))

// turns hands out turns to queued subscriptions in order.
type turns struct {
	mu    sync.Mutex
	queue []*Subscription // waiting from queue[head]
	head  int
	free  int
}

// enqueue queues ss for a turn each and hands out the free turns.
func (t *turns) enqueue(ss []*Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range ss {
		s.queued = true
	}
	t.queue = append(t.queue, ss...)
	t.dispatch()
}

// dispatch hands free turns to the queue's front. Caller holds t.mu.
func (t *turns) dispatch() {
	for ; t.free > 0 && t.head < len(t.queue); t.head++ {
		s := t.queue[t.head]
		t.queue[t.head] = nil
		s.queued, s.granted = false, true
		t.free--
		s.turn <- struct{}{} // never blocks: one turn at a time
	}
	if t.head == len(t.queue) || t.head >= 1024 && t.head >= len(t.queue)/2 {
		n := copy(t.queue, t.queue[t.head:])
		clear(t.queue[n:])
		t.queue, t.head = t.queue[:n], 0
	}
}

// done gives back s's turn, received or not, and hands it on.
func (t *turns) done(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.queued {
		s.queued = false
		if i := slices.Index(t.queue[t.head:], s); i >= 0 {
			t.queue = slices.Delete(t.queue, t.head+i, t.head+i+1)
		}
	}
	if s.granted {
		select {
		case <-s.turn:
		default:
		}
		s.granted, s.holding = false, false
		t.free++
		t.dispatch()
	}
}

// wait registers s as a waiter of its commons unless events were published
// after its position meanwhile, which it reports.
func (s *Subscription) wait() (published bool) {
	f := s.s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.s.pos.less(f.pub) {
		return true
	}
	if !s.waiting {
		s.waiting = true
		f.waiters = append(f.waiters, s)
	}
	return false
}

// endTurn gives back the turn s holds, if any.
func (s *Subscription) endTurn() {
	if s.holding {
		s.s.h.turns.done(s)
	}
}

// leave takes s out of its commons' waiters and the hub's queue, and gives
// back any turn it was handed.
func (s *Subscription) leave() {
	f := s.s.f
	f.mu.Lock()
	if s.waiting {
		s.waiting = false
		if i := slices.Index(f.waiters, s); i >= 0 {
			f.waiters = slices.Delete(f.waiters, i, i+1)
		}
	}
	f.mu.Unlock()
	s.s.h.turns.done(s)
}

// wakeWaiters takes f's waiters out of its list after a publication of
// seg: it returns those the notifier can write seg to directly, their wmu
// held (direct.go), and moves the others to the hub's queue. Caller
// holds f.mu for writing; h.turns.mu is taken inside.
func (h *Hub) wakeWaiters(f *commonsFeed, seg *segment) []*Subscription {
	if len(f.waiters) == 0 {
		return nil
	}
	var direct []*Subscription
	wake := f.waiters[:0]
	for _, s := range f.waiters {
		s.waiting = false
		if s.claim(seg) {
			direct = append(direct, s)
		} else {
			wake = append(wake, s)
		}
	}
	if len(wake) > 0 {
		h.turns.enqueue(wake)
	}
	clear(f.waiters)
	f.waiters = f.waiters[:0]
	return direct
}
