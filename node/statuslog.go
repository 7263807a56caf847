package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/feed"
)

// statusLogEvery is the least time between two Info lines of a commons'
// contribution status changes.
const statusLogEvery = 5 * time.Second

// statusLog writes contributions' status changes to the log: each at
// Debug, and at Info a line per change while they are rare (a review
// arrives), or one line with counts per statusLogEvery while many come
// at once (a join or an import of thousands of reviewed contributions,
// which would otherwise write a line per review). Changes that wait for
// their summary are written by flushDue, or by flush when the node stops.
// Safe for concurrent use.
type statusLog struct {
	mu      sync.Mutex
	last    time.Time // when the last Info line was written
	waiting []cid.Cid // commons with counts not written yet, in order
	counts  map[cid.Cid]*statusCounts
}

// statusCounts are a commons' status changes not written at Info yet.
type statusCounts struct {
	since time.Time // the first of them
	n     int       // changes
	to    map[crdt.Status]int
	one   crdt.Change // the change, while n is 1
}

// add logs the status changes that records of commons id made, at now.
func (s *statusLog) add(log *slog.Logger, id cid.Cid, done []feed.Applied, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range done {
		for _, ch := range a.Changes {
			if ch.From == "" {
				log.Debug("contribution added", "commons", id, "cid", ch.Contribution, "status", ch.To)
				continue
			}
			log.Debug("contribution status", "commons", id, "cid", ch.Contribution, "from", ch.From, "to", ch.To)
			s.count(id, ch.Change, now)
		}
	}
	s.writeDue(log, now)
}

func (s *statusLog) count(id cid.Cid, ch crdt.Change, now time.Time) {
	c := s.counts[id]
	if c == nil {
		if s.counts == nil {
			s.counts = map[cid.Cid]*statusCounts{}
		}
		c = &statusCounts{since: now, to: map[crdt.Status]int{}}
		s.counts[id] = c
		s.waiting = append(s.waiting, id)
	}
	c.n++
	c.to[ch.To]++
	c.one = ch
}

// flushDue writes the changes that waited statusLogEvery since the last
// Info line. The node calls it every second.
func (s *statusLog) flushDue(log *slog.Logger, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeDue(log, now)
}

// flush writes every change not written yet.
func (s *statusLog) flush(log *slog.Logger, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write(log, now)
}

func (s *statusLog) writeDue(log *slog.Logger, now time.Time) {
	if len(s.waiting) > 0 && now.Sub(s.last) >= statusLogEvery {
		s.write(log, now)
	}
}

func (s *statusLog) write(log *slog.Logger, now time.Time) {
	for _, id := range s.waiting {
		c := s.counts[id]
		if c.n == 1 {
			log.Info("contribution status", "commons", id, "cid", c.one.Contribution, "from", c.one.From, "to", c.one.To)
			continue
		}
		log.Info("contribution statuses changed", "commons", id, "changes", c.n,
			"accepted", c.to[crdt.StatusAccepted], "rejected", c.to[crdt.StatusRejected], "pending", c.to[crdt.StatusPending],
			"over", now.Sub(c.since).Round(time.Millisecond))
	}
	if len(s.waiting) > 0 {
		s.last = now
	}
	s.waiting = s.waiting[:0]
	clear(s.counts)
}
