package node

import (
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// fairQueue is the queue of background blob fetches: one queue per author
// of the records that claim the blobs, served in turn. However many
// payloads one key claims (a flood of validly signed records naming blobs
// nobody has), another author's blob is not served after all of the
// flood's: of the authors with blobs queued, the next served is one with
// the fewest fetches running, in turn among those with as few: a blob is
// served before those of any author with more fetches running, after at
// most one of each author with as many, and after those of an author with
// fewer only until that author has as many running. A worker freed
// while the others are held by one author's fetches (peers that stall on
// a flood's payloads) takes another author's blob, one it put back
// included, before the flood's next. When the queue is full, a blob of an
// author holding fewer places than another takes the last
// place of the author holding most (the one it takes is left to a sweep),
// so that the places are shared out evenly among the authors that want
// them. The author is who signed the record naming the blob (for a sweep,
// the first such record stored); a blob claimed by several is queued once.
type fairQueue struct {
	byAuthor map[protocol.PublicKey][]cid.Cid
	turn     []protocol.PublicKey       // the authors with blobs queued, next served first
	running  map[protocol.PublicKey]int // fetches popped and not yet done, per author (no zeros)
	n        int
}

func (q *fairQueue) len() int { return q.n }

// push queues c for author a.
func (q *fairQueue) push(a protocol.PublicKey, c cid.Cid) {
	if q.byAuthor == nil {
		q.byAuthor = map[protocol.PublicKey][]cid.Cid{}
	}
	cs, ok := q.byAuthor[a]
	if !ok {
		q.turn = append(q.turn, a)
	}
	q.byAuthor[a] = append(cs, c)
	q.n++
}

// pop takes the first blob of the first author in turn of those with the
// fewest fetches running, and moves that author to the back of the turn.
// The fetch counts as running until done is called for its author.
func (q *fairQueue) pop() (cid.Cid, protocol.PublicKey, bool) {
	if q.n == 0 {
		return cid.Undef, protocol.PublicKey{}, false
	}
	i := 0
	for j, k := range q.turn {
		if q.running[k] < q.running[q.turn[i]] {
			i = j
		}
	}
	a := q.turn[i]
	q.turn = slices.Delete(q.turn, i, i+1)
	cs := q.byAuthor[a]
	c := cs[0]
	if len(cs) == 1 {
		delete(q.byAuthor, a)
	} else {
		cs[0] = cid.Undef
		q.byAuthor[a] = cs[1:]
		q.turn = append(q.turn, a)
	}
	q.n--
	if q.n == 0 {
		q.turn = nil // let the arrays go
	}
	if q.running == nil {
		q.running = map[protocol.PublicKey]int{}
	}
	q.running[a]++
	return c, a, true
}

// done ends a fetch of a blob of a's that pop returned.
func (q *fairQueue) done(a protocol.PublicKey) {
	if q.running[a] <= 1 {
		delete(q.running, a)
		return
	}
	q.running[a]--
}

// makeRoom takes the last place of the author holding most, if that is
// more than a would hold with one place more, and returns the blob it
// held; ok is false if a holds as many places as any other author, or
// nearly.
func (q *fairQueue) makeRoom(a protocol.PublicKey) (cid.Cid, bool) {
	var most protocol.PublicKey
	top := -1
	for _, k := range q.turn {
		if n := len(q.byAuthor[k]); n > top {
			most, top = k, n
		}
	}
	if top <= len(q.byAuthor[a])+1 {
		return cid.Undef, false
	}
	cs := q.byAuthor[most]
	c := cs[len(cs)-1]
	cs[len(cs)-1] = cid.Undef
	q.byAuthor[most] = cs[:len(cs)-1]
	q.n--
	return c, true
}
