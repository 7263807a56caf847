// Package feed is a node's live feed: the events of each replicated
// commons (records as they are applied, contributions' status changes),
// their positions, and the subscribers that stream them (SSE, sse.go).
//
// # Event positions
//
// Every event of a commons' feed has a position (cursor, seq), written as its
// SSE id: "C" for the record the store's feed log holds at cursor C, and "C.k"
// for the k-th status change that record caused (k from 1). Positions are
// totally ordered (by cursor, then seq) and a stream delivers events in that
// order. A subscriber that sends Last-Event-ID "C.k" gets every event after
// it, once.
//
// Status changes get their positions without any change to the store: a
// commons' state is a pure function of its record set (package crdt), so the
// status changes that record C causes are the difference between the states
// of the feed log's prefixes 1..C-1 and 1..C. The node merges records one at a
// time in cursor order, live and when it applies stored records at start, so
// it attributes each change to the same record every time. The status
// changes (position, contribution, old and new status; new contributions
// are not changes, their record event carries the status they arrived
// with, kept in the contribution's row) are rows in the store (rows.go),
// which the node commits with the derived state they come from. Memory
// holds only the rows of records applied since the node's last save (the
// tail; Saved drops them once they are stored), so that neither memory
// nor a start grows with the commons: a restart gives the same positions
// without merging the records again, and a replay reads the rows and
// builds the events again from the records in the store.
//
// # Delivery
//
// The event loop appends each merged record's events to a bounded ring per
// commons and queues the commons with a notifier that publishes them to
// subscribers in segments, at most one per feedCoalesce (publish.go);
// the loop never waits for a subscriber and its cost does not grow with
// their number. Each subscriber reads from its own position: whole
// segments, encoded once per filter, while it keeps up; the ring event by
// event while its position is in the ring; and the store's feed log plus
// the feed's rows when it is behind (a resume). The streams of
// caught-up SSE subscribers are written by the notifier itself, without
// waking their goroutines (direct.go). A subscriber that is live and
// falls further behind than the ring holds (the ring capacity given to New: the node's Config.FeedBuffer) has
// overflowed: its stream ends with an "overflow" event naming the position
// to resume from.
package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// Event types besides the record types (manifest, contribution, review).
const (
	// EventStatus is a contribution's status change.
	EventStatus = "status"
)

// Pos is a position in a commons' event stream: a feed cursor and the
// index of a status change that record caused (0 for the record itself).
type Pos struct {
	Cursor uint64
	Seq    int
}

// String formats p as an SSE event id: "C" or "C.k".
func (p Pos) String() string {
	if p.Seq == 0 {
		return strconv.FormatUint(p.Cursor, 10)
	}
	return strconv.FormatUint(p.Cursor, 10) + "." + strconv.Itoa(p.Seq)
}

// ParsePos parses an event id ("C" or "C.k"); "" is the start.
func ParsePos(s string) (Pos, error) {
	if s == "" {
		return Pos{}, nil
	}
	c, k, dot := strings.Cut(s, ".")
	var p Pos
	var err error
	if p.Cursor, err = strconv.ParseUint(c, 10, 64); err != nil {
		return Pos{}, fmt.Errorf("event id %q: want CURSOR or CURSOR.SEQ", s)
	}
	if dot {
		if p.Seq, err = strconv.Atoi(k); err != nil || p.Seq < 1 {
			return Pos{}, fmt.Errorf("event id %q: want CURSOR or CURSOR.SEQ with SEQ ≥ 1", s)
		}
	}
	return p, nil
}

func (p Pos) less(q Pos) bool {
	return p.Cursor < q.Cursor || p.Cursor == q.Cursor && p.Seq < q.Seq
}

// Event is one entry of a commons' live feed: a record's arrival, or a
// contribution's status change.
type Event struct {
	ID      string             `json:"id"` // Pos as "C" or "C.k"
	Cursor  uint64             `json:"cursor"`
	Seq     int                `json:"seq,omitempty"`
	Type    string             `json:"type"` // a record's type (manifest, contribution, review, profile, sponsorship, pledge, acknowledgement) or status
	CID     string             `json:"cid"`  // the record; for status, the contribution
	Commons string             `json:"commons"`
	Author  protocol.PublicKey `json:"author"` // for status, the contribution's author
	Time    time.Time          `json:"time"`   // record time (for status, the causing record's)
	Title   string             `json:"title,omitempty"`
	Kind    string             `json:"kind,omitempty"`
	// Status is a contribution's status when it arrived (the status
	// events that follow it in the stream say each later change), or for a
	// status event the new status. A feed page (the node's FeedItem) gives
	// the status now instead.
	Status   string `json:"status,omitempty"`
	From     string `json:"from,omitempty"`  // status events: the old status
	Cause    string `json:"cause,omitempty"` // status events: the record that caused it
	Target   string `json:"target,omitempty"`
	Decision string `json:"decision,omitempty"`
}

// EventFilter selects events; empty fields match everything.
type EventFilter struct {
	Type   string // a record type, or status
	Status string // pending, accepted, rejected
	Kind   string
	Author string // peer ID or hex key
}

// Validate checks f's fields and returns it in canonical form (an author
// as a hex key).
func (f EventFilter) Validate() (EventFilter, error) {
	switch f.Type {
	case "", string(protocol.TypeManifest), string(protocol.TypeContribution), string(protocol.TypeReview), EventStatus,
		string(protocol.TypeProfile), string(protocol.TypeSponsorship), string(protocol.TypePledge), string(protocol.TypeAcknowledgement),
		string(protocol.TypeDispute), string(protocol.TypeStatement), string(protocol.TypeResolution), string(protocol.TypeCertificate), string(protocol.TypeRotation):
	default:
		return f, fmt.Errorf("type %q: want manifest, contribution, review, status, profile, sponsorship, pledge, acknowledgement, dispute, statement, resolution, certificate or rotation", f.Type)
	}
	if err := CheckStatus(f.Status); err != nil {
		return f, err
	}
	if f.Author != "" {
		k, err := protocol.ParsePublicKey(f.Author)
		if err != nil {
			return f, fmt.Errorf("author %q is not a peer ID or hex ed25519 key", f.Author)
		}
		f.Author = k.Hex()
	}
	return f, nil
}

func (f EventFilter) match(e *Event) bool {
	return (f.Type == "" || f.Type == e.Type) && (f.Status == "" || f.Status == e.Status) &&
		(f.Kind == "" || f.Kind == e.Kind) && (f.Author == "" || f.Author == e.Author.Hex())
}

// withoutSubject is f without the conditions on what a status event takes
// from its contribution's record (kind and author).
func (f EventFilter) withoutSubject() EventFilter {
	f.Kind, f.Author = "", ""
	return f
}

// feedEvent is an event in the ring, encoded once on first use.
type feedEvent struct {
	pos  Pos
	prev Pos // the position of the event before it in the stream
	ev   Event
	once sync.Once
	data []byte // "id: …\ndata: {…}\n\n"
}

func (fe *feedEvent) sse() []byte {
	fe.once.Do(func() {
		b, _ := json.Marshal(&fe.ev)
		fe.data = make([]byte, 0, len(b)+32)
		fe.data = append(fe.data, "id: "...)
		fe.data = append(fe.data, fe.ev.ID...)
		fe.data = append(fe.data, "\ndata: "...)
		fe.data = append(fe.data, b...)
		fe.data = append(fe.data, "\n\n"...)
	})
	return fe.data
}

// Contribution is one entry of a commons' contributions in arrival order.
// Its title is not held in memory: read the record for it.
type Contribution struct {
	Cursor uint64
	CID    cid.Cid
	Author protocol.PublicKey
	Time   protocol.HLC
	Kind   string
}

// contrib is a contribution as the hub keeps it: what the contribution
// list filters on, and the status it arrived with (for replays).
type contrib struct {
	cursor  uint64
	con     protocol.Digest
	author  protocol.PublicKey
	time    protocol.HLC
	kind    string
	arrival uint8 // statusCode
}

// statusChange is a status change kept for replays: its event is built
// again, from the store, when a subscriber that is behind reads it.
type statusChange struct {
	pos      Pos
	con      protocol.Digest
	from, to uint8 // statusCode
}

// nowChange is a status a change set (Statuses), in the tail until a save
// carries it: of the contribution at cursor at, the nth record added to
// the tail (tailSummary.n) caused it.
type nowChange struct {
	at uint64
	to uint8 // statusCode
	n  uint64
}

// statuses are the status codes kept in the feed log: append only.
var statuses = [...]crdt.Status{"", crdt.StatusPending, crdt.StatusAccepted, crdt.StatusRejected, crdt.StatusWithdrawn}

// CheckStatus accepts a contribution status to filter by, or "" for any.
func CheckStatus(s string) error {
	switch crdt.Status(s) {
	case "", crdt.StatusPending, crdt.StatusAccepted, crdt.StatusRejected, crdt.StatusWithdrawn:
		return nil
	}
	return fmt.Errorf("status %q: want pending, accepted, rejected or withdrawn", s)
}

func statusCode(st crdt.Status) uint8 {
	for i, x := range statuses {
		if x == st {
			return uint8(i)
		}
	}
	panic("feed: unknown status " + string(st))
}

// commonsFeed is the event state of one commons. The event loop writes it;
// subscribers and list queries read it under mu.
type commonsFeed struct {
	id   cid.Cid
	mu   sync.RWMutex
	head Pos // last event appended
	// saved is the cursor through which the commons' rows are in the
	// store (Saved); the tail holds the status changes, contributions and
	// summaries of the records after it, in position order, and the
	// summaries of records taken back at their place before it until a
	// save carries them (Mark).
	saved         uint64
	tailStatus    []statusChange
	tailContribs  []contrib
	tailSummaries []tailSummary
	added         uint64 // summaries added to the tail so far (tailSummary.n)
	// summariesFrom is the cursor after which the commons' records have
	// summary rows (Summaries).
	summariesFrom uint64
	// statusesFrom is the cursor after which the commons' contributions
	// have their status in the rows (Statuses); tailNow holds the statuses
	// changes set that no save carried yet, in the order they were set;
	// gathered counts the saves that gathered rows (Mark).
	statusesFrom uint64
	tailNow      []nowChange
	gathered     uint64
	// epoch counts the saves Saved (and the backfills' lower): rows
	// read ahead (Ahead) are taken only while it stays what it was when
	// their reads began.
	epoch   uint64
	ring    []*feedEvent // the latest events, oldest first, at most cap
	ringCap int
	counts  map[protocol.Type]uint64 // records by type

	// Written by the notifier (publish.go) under mu.
	pub  Pos        // last event published to subscribers
	segs []*segment // recent publications, oldest first
	// waiters are the caught-up subscriptions, woken (queued for a turn,
	// turns.go) at the next publication.
	waiters []*Subscription
	queued  bool                // in Hub.queued (guarded by Hub.qmu)
	filter  map[EventFilter]int // subscribers' filters, with their counts
	// gone is closed when the feed is unloaded (Hub.Unload): its
	// subscriptions end with ErrGone.
	gone chan struct{}
}

// Hub holds every commons' feed and wakes subscribers.
type Hub struct {
	mu      sync.RWMutex
	commons map[cid.Cid]*commonsFeed
	ringCap int

	cmu     sync.Mutex
	changed chan struct{} // closed and replaced when records are added live

	qmu    sync.Mutex
	queued []*commonsFeed // with events to publish
	kick   chan struct{}
	turns  turns
	subs   atomic.Int64
	// published counts the segments published, all commons together.
	published atomic.Int64
	log       Log
	damaged   func(id cid.Cid, err error)
	counters  Counters
	done      chan struct{} // closed when Run returns
	ownThread bool          // the notifier holds its OS thread (direct.go); notifier only
}

// Log is the store's feed log, from which subscribers that are behind
// replay, and the commons' derived state, which holds the feed's rows
// under RowPrefix (store.Store implements it).
type Log interface {
	Feed(ctx context.Context, commons cid.Cid, after uint64, limit int) ([]store.Stored, error)
	GetRecord(ctx context.Context, c cid.Cid) ([]byte, error)
	ScanDerived(ctx context.Context, commons cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error
}

// Counters are the hub's metrics. Every field must be set.
type Counters struct {
	Events      prometheus.Counter // events published
	Overflows   prometheus.Counter // streams ended by overflow
	Subscribers prometheus.Gauge   // open subscriptions
}

// New returns a hub that keeps the latest ringCap events of each commons
// in memory and replays older ones from log. Run publishes its events.
func New(ringCap int, log Log, c Counters) *Hub {
	return &Hub{commons: map[cid.Cid]*commonsFeed{}, changed: make(chan struct{}), ringCap: ringCap, kick: make(chan struct{}, 1),
		log: log, counters: c, done: make(chan struct{}), turns: turns{free: feedTurns}}
}

// feed returns a commons' feed, creating it. Loop only (creation).
func (h *Hub) feed(id cid.Cid) *commonsFeed {
	h.mu.RLock()
	f := h.commons[id]
	h.mu.RUnlock()
	if f != nil {
		return f
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f = h.commons[id]; f == nil {
		f = &commonsFeed{id: id, ringCap: h.ringCap, counts: map[protocol.Type]uint64{},
			filter: map[EventFilter]int{}, gone: make(chan struct{})}
		h.commons[id] = f
	}
	return f
}

func (h *Hub) lookup(id cid.Cid) *commonsFeed {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.commons[id]
}

// Applied is a record applied to a commons' state, at its cursor in the
// store's feed log, with the status changes applying it caused, in order.
type Applied struct {
	Cursor  uint64
	Block   *protocol.Block
	Changes []Change
}

// Change is a contribution's status change (crdt.Change) and, for a change
// added live (unless the contribution is new), the contribution's block.
type Change struct {
	crdt.Change
	Subject *protocol.Block
}

// Added records the events of records applied to commons id, in cursor
// order. live appends them to the ring and publishes them; at start (live
// false) it only counts them and holds their rows until Saved, and the
// events count as published. One writer at a time (the node's event loop).
func (h *Hub) Added(id cid.Cid, done []Applied, live bool) {
	f := h.feed(id)
	for _, a := range done {
		h.add(f, a, live)
	}
	if live {
		h.cmu.Lock()
		close(h.changed)
		h.changed = make(chan struct{})
		h.cmu.Unlock()
	}
}

// Contributions returns up to limit of commons id's contributions after
// cursor after, in arrival order, read from the store (and the tail).
func (h *Hub) Contributions(ctx context.Context, id cid.Cid, after uint64, limit int) ([]Contribution, error) {
	f := h.lookup(id)
	if f == nil {
		return nil, nil
	}
	cs, err := h.contribs(ctx, f, after, math.MaxUint64, limit, nil)
	out := make([]Contribution, len(cs))
	for i, c := range cs {
		out[i] = Contribution{Cursor: c.cursor, CID: c.con.CID(), Author: c.author, Time: c.time, Kind: c.kind}
	}
	return out, err
}

// Counts calls fn with each commons' number of records of each type.
func (h *Hub) Counts(fn func(id cid.Cid, counts map[protocol.Type]uint64)) {
	h.mu.RLock()
	feeds := make([]*commonsFeed, 0, len(h.commons))
	for _, f := range h.commons {
		feeds = append(feeds, f)
	}
	h.mu.RUnlock()
	for _, f := range feeds {
		f.mu.RLock()
		counts := maps.Clone(f.counts)
		f.mu.RUnlock()
		fn(f.id, counts)
	}
}

// Head returns the position of the last event added to commons id: its
// records up to Head().Cursor are applied.
func (h *Hub) Head(id cid.Cid) Pos {
	f := h.lookup(id)
	if f == nil {
		return Pos{}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.head
}

// Stats are a hub's counts at one moment.
type Stats struct {
	Subscribers int64 // open subscriptions
	Published   int64 // segments published, all commons together
	Turns       int   // subscribers that may read at once
	FreeTurns   int   // turns not handed out
}

// Stats returns the hub's counts now.
func (h *Hub) Stats() Stats {
	h.turns.mu.Lock()
	free := h.turns.free
	h.turns.mu.Unlock()
	return Stats{Subscribers: h.subs.Load(), Published: h.published.Load(), Turns: feedTurns, FreeTurns: free}
}

// Changed returns a channel closed when records are next added live.
func (h *Hub) Changed() <-chan struct{} {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	return h.changed
}

// add records the events of a record merged at cursor with the status
// changes it caused. live appends to the ring and queues the commons for
// publication; at start (live false) it only counts the record and holds
// its rows until Saved, and the events count as published.
func (h *Hub) add(f *commonsFeed, a Applied, live bool) {
	cursor, b := a.Cursor, a.Block
	if cursor == 0 {
		return
	}
	f.mu.Lock()
	// The statuses its changes set: kept with its summary, until a save
	// carries them (Mark), whether or not it is taken back at its place.
	for _, ch := range a.Changes {
		if nowRow(a, ch) {
			f.tailNow = append(f.tailNow, nowChange{at: ch.Pos, to: statusCode(ch.To), n: f.added + 1})
		}
	}
	if cursor <= f.head.Cursor {
		// A record taken back at its place in the log, which the feed has
		// passed (node/leftout.go): counted, its rows stored (Rows), no
		// event; its summary is in the tail meanwhile, in cursor order.
		f.counts[b.Record.Type()]++
		i := sort.Search(len(f.tailSummaries), func(i int) bool { return f.tailSummaries[i].Cursor >= cursor })
		f.added++
		f.tailSummaries = slices.Insert(f.tailSummaries, i, tailSummary{SummaryOf(cursor, b), f.added})
		f.mu.Unlock()
		return
	}
	rec := RecordEvent(f.id, cursor, b)
	var evs []*feedEvent
	if live {
		evs = append(evs, &feedEvent{pos: Pos{Cursor: cursor}, prev: f.head, ev: rec})
	}
	f.counts[b.Record.Type()]++
	k := 0
	var arrival crdt.Status
	for _, ch := range a.Changes {
		if ch.From == "" {
			if ch.Contribution == b.CID {
				arrival = ch.To
				if live {
					evs[0].ev.Status = string(ch.To)
				}
			}
			continue
		}
		k++
		d, _ := protocol.RecordDigest(ch.Contribution)
		f.tailStatus = append(f.tailStatus, statusChange{pos: Pos{Cursor: cursor, Seq: k}, con: d, from: statusCode(ch.From), to: statusCode(ch.To)})
		if live {
			evs = append(evs, &feedEvent{pos: Pos{Cursor: cursor, Seq: k}, prev: Pos{Cursor: cursor, Seq: k - 1},
				ev: statusEvent(f.id, Pos{cursor, k}, b, ch.Change, ch.Subject)})
		}
	}
	if c := b.Record.Contribution(); c != nil {
		d, _ := protocol.RecordDigest(b.CID)
		f.tailContribs = append(f.tailContribs, contrib{cursor: cursor, con: d, author: b.Record.Author, time: b.Record.Time,
			kind: c.Kind, arrival: statusCode(arrival)})
	}
	f.added++
	f.tailSummaries = append(f.tailSummaries, tailSummary{SummaryOf(cursor, b), f.added})
	f.head = Pos{Cursor: cursor, Seq: k}
	if live {
		f.ring = append(f.ring, evs...)
		if over := len(f.ring) - f.ringCap; over > 0 {
			// Drop the oldest; copy down now and then rather than every time.
			if over > f.ringCap/4 || cap(f.ring) > 2*f.ringCap {
				f.ring = append(make([]*feedEvent, 0, f.ringCap+f.ringCap/2), f.ring[over:]...)
			}
		}
	} else {
		f.pub = f.head
	}
	f.mu.Unlock()
	if live {
		h.counters.Events.Add(float64(len(evs)))
		h.queue(f)
	}
}

// ringWindow returns the ring's events that are still within capacity.
// Caller holds f.mu.
func (f *commonsFeed) ringWindow() []*feedEvent {
	if n := len(f.ring); n > f.ringCap {
		return f.ring[n-f.ringCap:]
	}
	return f.ring
}

// RecordEvent is the event of record b at cursor in commons' feed log: the
// one summary of a record that the feed, its pages and its streams share.
// Its Status is left for the caller.
func RecordEvent(commons cid.Cid, cursor uint64, b *protocol.Block) Event {
	r := b.Record
	e := Event{ID: strconv.FormatUint(cursor, 10), Cursor: cursor, Type: string(r.Type()), CID: b.CID.String(), Commons: commons.String(), Author: r.Author, Time: r.Time.Time()}
	e.Title, e.Kind, e.Target, e.Decision = describe(r)
	return e
}

// describe returns what an event says of record r besides its type,
// author and time: its title (cut at maxEventTitle), kind, target and
// decision, each empty where the record has none.
func describe(r *protocol.Record) (title, kind, target, decision string) {
	switch body := r.Body.(type) {
	case *protocol.Contribution:
		title, kind = body.Title, body.Kind
	case *protocol.Review:
		target, decision = body.Target.String(), body.Decision
	case *protocol.Manifest:
		title = body.Name
	case *protocol.Profile:
		title = body.Name
	case *protocol.Sponsorship:
		target = body.Target.String()
	case *protocol.Pledge:
		title, kind = PledgeSummary(body), body.Kind
	case *protocol.Acknowledgement:
		target = body.Pledge.String()
	case *protocol.Dispute:
		title = body.Reason
		if body.Subject != nil {
			target = body.Subject.String()
		} else {
			target = body.Participant.String()
		}
	case *protocol.Statement:
		target, title = body.Dispute.String(), body.Text
	case *protocol.Resolution:
		target, decision, kind, title = body.Dispute.String(), body.Outcome, body.Effect, body.Reason
	case *protocol.Certificate:
		if body.Release != nil {
			title = "release " + body.Release.Name
		} else {
			title, target = body.Role, body.Participant.String()
		}
	case *protocol.Rotation:
		target = body.Successor.String()
	}
	if len(title) > maxEventTitle {
		title = title[:maxEventTitle] + "…"
	}
	return title, kind, target, decision
}

// maxEventTitle bounds an event's title: a dispute's reason or a
// statement's text is cut there.
const maxEventTitle = 300

// PledgeSummary says what a pledge gives, in a few words: "40 hours",
// "50000 EUR (smallest unit)", "infrastructure: node 12D3KooW…".
func PledgeSummary(p *protocol.Pledge) string {
	switch p.Kind {
	case protocol.PledgeMoney:
		return fmt.Sprintf("%d %s (smallest unit)", p.Amount, p.Currency)
	case protocol.PledgeHours:
		return fmt.Sprintf("%d hours", p.Amount)
	}
	return "infrastructure: node " + p.Peer
}

// statusEvent is the event of status change ch at p, caused by record
// cause; subject is the contribution's record, if known. A cause whose
// bytes were dropped (its Record nil) gives the event no time.
func statusEvent(commons cid.Cid, p Pos, cause *protocol.Block, ch crdt.Change, subject *protocol.Block) Event {
	e := Event{ID: p.String(), Cursor: p.Cursor, Seq: p.Seq, Type: EventStatus, CID: ch.Contribution.String(), Commons: commons.String(),
		Status: string(ch.To), From: string(ch.From), Cause: cause.CID.String()}
	if cause.Record != nil {
		e.Time = cause.Record.Time.Time()
	}
	if cb := subject; cb != nil {
		e.Author = cb.Record.Author
		if c := cb.Record.Contribution(); c != nil {
			e.Title, e.Kind = c.Title, c.Kind
		}
	}
	return e
}

// subscription reads one commons' events from a position.
type subscription struct {
	h      *Hub
	f      *commonsFeed
	filter EventFilter
	pos    Pos // last event passed (delivered or filtered out)
	// live is set once s reads from the ring or reaches the head (not
	// merely the last published event: events not yet published are ahead
	// of it, and if they leave the ring before they are published it
	// replays them from the store).
	live bool
}

// next appends the SSE bytes of the published events after s.pos (about
// max events: whole segments, fewer when caught up), each element one or
// more whole frames, advancing s.pos. It returns ErrOverflow if s was live
// and the ring moved past it.
func (s *subscription) next(ctx context.Context, max int, out [][]byte) ([][]byte, error) {
	f := s.f
	f.mu.RLock()
	if !s.pos.less(f.pub) {
		if !s.pos.less(f.head) {
			s.live = true
		}
		f.mu.RUnlock()
		return out, nil
	}
	win := f.ringWindow()
	if len(win) == 0 || s.pos.less(win[0].prev) {
		// The next event is older than the ring.
		f.mu.RUnlock()
		if s.live {
			return out, ErrOverflow
		}
		return s.replay(ctx, max, out)
	}
	out, ok := s.fromSegments(max, out)
	if !ok {
		i := sort.Search(len(win), func(i int) bool { return s.pos.less(win[i].pos) })
		for n := 0; i < len(win) && n < max && !f.pub.less(win[i].pos); i, n = i+1, n+1 {
			s.pos = win[i].pos
			if s.filter.match(&win[i].ev) {
				out = append(out, win[i].sse())
			}
		}
	}
	f.mu.RUnlock()
	s.live = true
	return out, nil
}

// replay reads events after s.pos from the store's feed log and the status
// list, up to the ring's start (or the last published event). It holds
// f.mu only to copy what it needs, not while it reads the store.
func (s *subscription) replay(ctx context.Context, max int, out [][]byte) ([][]byte, error) {
	f := s.f
	page, err := s.h.log.Feed(ctx, f.id, s.pos.Cursor, min(max, 512))
	if err != nil {
		return out, fmt.Errorf("feed: read the feed log: %w", err)
	}
	f.mu.RLock()
	pub := f.pub.Cursor
	for len(page) > 0 && page[len(page)-1].Cursor > pub {
		page = page[:len(page)-1] // stored but not merged or published yet
	}
	f.mu.RUnlock()
	if len(page) == 0 && s.pos.Cursor < pub {
		// Nothing stored is left up to the last event published: the
		// records there were left out as damaged (node/leftout.go), and
		// have no events.
		s.pos = Pos{Cursor: pub}
		return out, nil
	}
	last := s.pos.Cursor
	if len(page) > 0 {
		last = page[len(page)-1].Cursor
	}
	changes, err := s.h.statusChanges(ctx, f, s.pos, last)
	if err != nil {
		return out, err
	}
	arrival := make([]uint8, len(page))
	if len(page) > 0 {
		cs, err := s.h.contribs(ctx, f, page[0].Cursor-1, last, len(page), nil)
		if err != nil {
			return out, err
		}
		for k, st := range page {
			if len(cs) > 0 && cs[0].cursor == st.Cursor {
				arrival[k], cs = cs[0].arrival, cs[1:]
			}
		}
	}

	// Status changes of the record at s.pos.Cursor not passed yet.
	if len(changes) > 0 && changes[0].pos.Cursor == s.pos.Cursor {
		at, err := s.h.log.Feed(ctx, f.id, s.pos.Cursor-1, 1)
		if err != nil {
			return out, fmt.Errorf("feed: read the feed log: %w", err)
		}
		if len(at) != 1 || at[0].Cursor != s.pos.Cursor {
			return out, fmt.Errorf("feed: the feed log has no record at cursor %d", s.pos.Cursor)
		}
		cause, err := storedCause(at[0])
		if err != nil {
			return out, err
		}
		if out, changes, err = s.replayStatus(ctx, cause, s.pos.Cursor, changes, out); err != nil {
			return out, err
		}
	}
	for k, st := range page {
		b, err := storedCause(st)
		if err != nil {
			return out, err
		}
		if st.Dropped {
			// Its bytes were dropped here (the commons disowned it): no
			// event of its own, but those of the changes it caused.
			s.pos = Pos{Cursor: st.Cursor}
			if out, changes, err = s.replayStatus(ctx, b, st.Cursor, changes, out); err != nil {
				return out, err
			}
			continue
		}
		ev := RecordEvent(f.id, st.Cursor, b)
		if b.Record.Type() == protocol.TypeContribution {
			ev.Status = string(statuses[arrival[k]])
		}
		s.pos = Pos{Cursor: st.Cursor}
		if s.filter.match(&ev) {
			fe := &feedEvent{pos: s.pos, ev: ev}
			out = append(out, fe.sse())
		}
		if out, changes, err = s.replayStatus(ctx, b, st.Cursor, changes, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// storedCause returns the record st of the feed log, parsed; of a record
// whose bytes were dropped, a block with its CID alone, for the events of
// the changes it caused.
func storedCause(st store.Stored) (*protocol.Block, error) {
	if st.Dropped {
		return &protocol.Block{CID: st.CID}, nil
	}
	b, err := protocol.ParseStored(st.CID, st.Raw)
	if err != nil {
		return nil, fmt.Errorf("feed: stored record %s: %w", st.CID, err)
	}
	return b, nil
}

// replayStatus appends the events of the status changes at the head of
// changes that cause (the record at cursor) caused, reading each
// contribution's record from the store, and returns the changes left.
func (s *subscription) replayStatus(ctx context.Context, cause *protocol.Block, cursor uint64, changes []statusChange, out [][]byte) ([][]byte, []statusChange, error) {
	for len(changes) > 0 && changes[0].pos.Cursor == cursor {
		// s.pos moves past the change only once it is passed on (or
		// filtered out): a failed read leaves it for the next call.
		sc := changes[0]
		c := sc.con.CID()
		ch := crdt.Change{Contribution: c, From: statuses[sc.from], To: statuses[sc.to]}
		if ev := statusEvent(s.f.id, sc.pos, cause, ch, nil); !s.filter.withoutSubject().match(&ev) {
			changes, s.pos = changes[1:], sc.pos
			continue // filtered out whatever the contribution: not read
		}
		var subject *protocol.Block
		raw, err := s.h.log.GetRecord(ctx, c)
		switch {
		case errors.Is(err, store.ErrDropped):
			// Its bytes were dropped here (the commons disowned it): the
			// event goes without its title, kind and author.
		case err != nil:
			return out, changes, fmt.Errorf("feed: read contribution %s: %w", c, err)
		default:
			if subject, err = protocol.ParseStored(c, raw); err != nil {
				return out, changes, fmt.Errorf("feed: stored record %s: %w", c, err)
			}
		}
		changes, s.pos = changes[1:], sc.pos
		ev := statusEvent(s.f.id, sc.pos, cause, ch, subject)
		if s.filter.match(&ev) {
			fe := &feedEvent{pos: sc.pos, ev: ev}
			out = append(out, fe.sse())
		}
	}
	return out, changes, nil
}

// Subscribe opens commons id's event stream after position from, keeping
// the events filter (validated: EventFilter.Validate) matches. The
// stream's reader calls Next.
func (h *Hub) Subscribe(id cid.Cid, from Pos, filter EventFilter) *Subscription {
	f := h.feed(id)
	f.mu.Lock()
	f.filter[filter]++
	f.mu.Unlock()
	h.subs.Add(1)
	h.counters.Subscribers.Inc()
	return &Subscription{s: subscription{h: h, f: f, filter: filter, pos: from}, turn: make(chan struct{}, 1)}
}

// Subscription is an open event stream of one commons. It is not safe for
// concurrent use.
type Subscription struct {
	s      subscription
	closed bool

	turn    chan struct{} // a turn to read, from Hub.turns
	holding bool          // received a turn not given back yet
	waiting bool          // in s.f.waiters (guarded by s.f.mu)
	queued  bool          // in the hub's turn queue (guarded by turns.mu)
	granted bool          // handed a turn (guarded by turns.mu)

	// A direct subscription's stream is written by the notifier while its
	// reader waits (direct.go).
	direct  func([]byte) (int, error) // the stream's non-blocking write, or nil
	wmu     sync.Mutex                // held by the reader except while it waits in read
	pending []byte                    // the rest of a direct write, for the reader to write
	wrote   atomic.Int64              // when the notifier last wrote, in Unix nanoseconds
}

// ErrClosed is returned by Subscription.Next once the hub has stopped.
var ErrClosed = errors.New("feed: closed")

// ErrGone is returned by Subscription.Next once its commons' feed is
// unloaded: the node no longer replicates the commons.
var ErrGone = errors.New("feed: the commons is no longer replicated here")

// ErrOverflow ends a subscription whose reader fell further behind than
// the hub buffers; resume from Subscription.Pos.
var ErrOverflow = errors.New("feed: subscriber fell behind")

// Next waits until events follow the subscription's position and returns
// them as SSE frames, one event each (about max: the events one wake-up
// published come together), or returns ctx's error, ErrClosed when the node
// stops, or ErrOverflow.
func (s *Subscription) Next(ctx context.Context, max int) ([][]byte, error) {
	chunks, err := s.read(ctx, max, nil, nil)
	var frames [][]byte
	for _, c := range chunks {
		for len(c) > 0 {
			i := bytes.Index(c, []byte("\n\n")) + 2
			frames = append(frames, c[:i:i])
			c = c[i:]
		}
	}
	return frames, err
}

// read waits until events follow the subscription's position and appends
// their SSE bytes to out, each element one or more whole frames (about max
// events). It returns out unchanged and no error if idle fires first.
func (s *Subscription) read(ctx context.Context, max int, idle <-chan time.Time, out [][]byte) ([][]byte, error) {
	n := len(out)
	for {
		if s.pending != nil {
			out = append(out, s.pending)
			s.pending = nil
		}
		before := s.s.pos
		var err error
		out, err = s.s.next(ctx, max, out)
		if err != nil || len(out) > n {
			s.endTurn()
			if errors.Is(err, ErrOverflow) {
				s.s.h.counters.Overflows.Inc()
			}
			return out, err
		}
		if s.s.pos != before || s.wait() {
			continue // a page of filtered-out events, or a publication: read on
		}
		s.endTurn()
		s.release()
		select {
		case <-s.turn:
			s.acquire()
			s.holding = true
		case <-idle:
			s.acquire()
			s.leave()
			return out, nil
		case <-ctx.Done():
			s.acquire()
			s.leave()
			return out, ctx.Err()
		case <-s.s.h.done:
			s.acquire()
			s.leave()
			return out, ErrClosed
		case <-s.s.f.gone:
			s.acquire()
			s.leave()
			return out, ErrGone
		}
	}
}

// Pos returns the position of the last event passed to the reader (or
// filtered out): the Last-Event-ID to resume from.
func (s *Subscription) Pos() Pos { return s.s.pos }

// Head returns the position of the last event added to the subscription's
// commons, published or not: once Pos reaches it, the reader has seen every
// event there was when Head was called.
func (s *Subscription) Head() Pos {
	s.s.f.mu.RLock()
	defer s.s.f.mu.RUnlock()
	return s.s.f.head
}

// CaughtUp reports whether the reader has passed position p (Head, say).
func (s *Subscription) CaughtUp(p Pos) bool { return !s.s.pos.less(p) }

// Close releases the subscription.
func (s *Subscription) Close() {
	if !s.closed {
		s.closed = true
		s.leave()
		f := s.s.f
		f.mu.Lock()
		if f.filter[s.s.filter]--; f.filter[s.s.filter] == 0 {
			delete(f.filter, s.s.filter)
		}
		f.mu.Unlock()
		s.s.h.subs.Add(-1)
		s.s.h.counters.Subscribers.Dec()
		s.release()
	}
}
