package feed

// Publishing the live feed to subscribers.
//
// The event loop appends events to a commons' ring and queues the commons
// with the notifier (Hub.Run); that is all it does for subscribers. The
// notifier wakes at most once per feedCoalesce and publishes, for each
// queued commons, one segment: the events since the last segment, encoded
// once, and joined once per filter that subscribers use into the bytes of
// one write. It then writes the segment to that commons' caught-up SSE
// streams itself (direct.go) and wakes its other subscribers (and no
// others'). A
// subscriber whose position is a segment's start sends the segment's bytes
// for its filter as they are, so the work per subscriber and wake-up is a
// lookup and one write, whatever the number of events; a subscriber
// anywhere else (resuming, or a filter subscribed after the segment was
// made) reads the ring event by event as before, up to the last published
// position, and so lines up with the next segment.
//
// Subscribers see events only once published: the ring is ahead of them by
// at most one coalescing interval.

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"sort"
	"time"
)

// feedCoalesce is the shortest time between two wake-ups of subscribers:
// events arriving closer together are delivered together.
const feedCoalesce = 25 * time.Millisecond

// maxSegments bounds the segments a commons keeps; segments whose events
// have all left the ring are dropped sooner.
const maxSegments = 64

// maxJoined bounds the filters a segment joins its events for: those with
// the most subscribers. Other subscribers read the segment's events one by
// one. So a segment's memory is at most maxJoined+1 times its events'
// bytes, whatever the subscribers' filters.
const maxJoined = 8

// segment is the events of one publication: those after from, up to and
// including to, oldest first.
type segment struct {
	from, to Pos
	evs      []*feedEvent
	// batches holds, per filter of subscribers when the segment was made
	// (at most maxJoined), the SSE frames of the events it matches,
	// joined (nil when none match). Read-only once published.
	batches map[EventFilter][]byte
}

// Run is the notifier: when kicked it publishes the queued commons' new
// events and wakes their subscribers, at most once per feedCoalesce, until
// ctx ends; then every subscription's Next returns ErrClosed.
func (h *Hub) Run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTimer(0)
	defer t.Stop()
	defer func() {
		if h.ownThread {
			runtime.UnlockOSThread()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		}
		h.publish()
		t.Reset(feedCoalesce)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// queue marks f as having events to publish and kicks the notifier. Loop
// only.
func (h *Hub) queue(f *commonsFeed) {
	h.qmu.Lock()
	if !f.queued {
		f.queued = true
		h.queued = append(h.queued, f)
	}
	h.qmu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// publish publishes every queued commons. Notifier only.
func (h *Hub) publish() {
	h.qmu.Lock()
	fs := h.queued
	h.queued = nil
	for _, f := range fs {
		f.queued = false
	}
	h.qmu.Unlock()
	for _, f := range fs {
		h.publishFeed(f)
	}
}

// publishFeed makes the events after f.pub into a segment, publishes it
// and wakes f's waiting subscribers. Notifier only.
func (h *Hub) publishFeed(f *commonsFeed) {
	f.mu.RLock()
	seg := &segment{from: f.pub, to: f.head}
	if !seg.from.less(seg.to) {
		f.mu.RUnlock()
		return
	}
	win := f.ringWindow()
	i := sort.Search(len(win), func(i int) bool { return seg.from.less(win[i].pos) })
	seg.evs = slices.Clone(win[i:])
	if i == 0 && len(win) > 0 {
		// Events after f.pub left the ring before they were published:
		// the segment starts at the ring, and subscribers further back
		// overflow or replay.
		seg.from = win[0].prev
	}
	filters := f.joinedFilters()
	f.mu.RUnlock()

	seg.batches = make(map[EventFilter][]byte, len(filters))
	for _, fl := range filters {
		seg.batches[fl] = seg.join(fl)
	}

	f.mu.Lock()
	f.segs = append(f.segs, seg)
	f.pruneSegments()
	f.pub = seg.to
	h.published.Add(1)
	direct := h.wakeWaiters(f, seg)
	f.mu.Unlock()
	h.writeDirect(f, seg, direct)
}

// joinedFilters returns the subscribers' filters, the maxJoined with the
// most subscribers if there are more. Caller holds f.mu.
func (f *commonsFeed) joinedFilters() []EventFilter {
	fs := make([]EventFilter, 0, len(f.filter))
	for fl := range f.filter {
		fs = append(fs, fl)
	}
	if len(fs) > maxJoined {
		// The same ones from one segment to the next while the counts
		// hold: ties go by the filters' fields.
		slices.SortFunc(fs, func(a, b EventFilter) int {
			return cmp.Or(f.filter[b]-f.filter[a], cmp.Compare(a.Type, b.Type), cmp.Compare(a.Status, b.Status),
				cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Author, b.Author))
		})
		fs = fs[:maxJoined]
	}
	return fs
}

// join returns the SSE frames of the segment's events that fl matches,
// joined, or nil if none does.
func (s *segment) join(fl EventFilter) []byte {
	n := 0
	for _, e := range s.evs {
		if fl.match(&e.ev) {
			n += len(e.sse())
		}
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, 0, n)
	for _, e := range s.evs {
		if fl.match(&e.ev) {
			b = append(b, e.sse()...)
		}
	}
	return b
}

// pruneSegments drops the segments whose events have all left the ring, and
// the oldest beyond maxSegments. Caller holds f.mu for writing.
func (f *commonsFeed) pruneSegments() {
	win := f.ringWindow()
	drop := 0
	for drop < len(f.segs) && (len(f.segs)-drop > maxSegments || len(win) > 0 && f.segs[drop].to.less(win[0].pos)) {
		drop++
	}
	if drop > 0 {
		f.segs = slices.Clone(f.segs[drop:])
	}
}

// fromSegments appends the published segments that follow s.pos without a
// gap (at least one, then while they keep the total under max events),
// advancing s.pos. It reports false if no segment starts at s.pos. Caller
// holds s.f.mu.
func (s *subscription) fromSegments(max int, out [][]byte) ([][]byte, bool) {
	segs := s.f.segs
	j := sort.Search(len(segs), func(j int) bool { return !segs[j].from.less(s.pos) })
	if j == len(segs) || segs[j].from != s.pos {
		return out, false
	}
	n := 0
	for ; j < len(segs) && segs[j].from == s.pos && (n == 0 || n+len(segs[j].evs) <= max); j++ {
		seg := segs[j]
		if b, ok := seg.batches[s.filter]; ok {
			if len(b) > 0 {
				out = append(out, b)
			}
		} else {
			for _, e := range seg.evs {
				if s.filter.match(&e.ev) {
					out = append(out, e.sse())
				}
			}
		}
		n += len(seg.evs)
		s.pos = seg.to
	}
	return out, true
}
