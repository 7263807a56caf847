package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// testCommons is a commons fed straight to a hub, as a node's event loop
// feeds it: records signed by one key (the only association key and
// maintainer, quorum 1), applied to a crdt.State one at a time, their
// events added live, and kept in a feed log for replays.
type testCommons struct {
	t     *testing.T
	h     *Hub
	id    cid.Cid
	key   protocol.PrivateKey
	state *crdt.State
	log   *memLog
	now   int64 // milliseconds of the next record's time
	// lag is how many records' rows stay unsaved, in the hub's tail,
	// before they are saved to log (as the node saves after applying).
	lag     int
	unsaved []Applied
}

// memLog is a feed log and the feed's stored rows, in memory.
type memLog struct {
	mu   sync.Mutex
	recs []store.Stored
	rows map[string][]byte // saved rows, with RowPrefix
	// onScan, if set, is called at the start of each ScanDerived.
	onScan func(prefix []byte)
}

func (l *memLog) ScanDerived(_ context.Context, _ cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error {
	if l.onScan != nil {
		l.onScan(prefix)
	}
	l.mu.Lock()
	var keys []string
	for k := range l.rows {
		if strings.HasPrefix(k, string(prefix)) && k >= string(from) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = l.rows[k]
	}
	l.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLog) Feed(_ context.Context, _ cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after >= uint64(len(l.recs)) {
		return nil, nil
	}
	end := min(uint64(len(l.recs)), after+uint64(limit))
	return append([]store.Stored(nil), l.recs[after:end]...), nil
}

func (l *memLog) GetRecord(_ context.Context, c cid.Cid) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.CID == c {
			return r.Raw, nil
		}
	}
	return nil, store.ErrNotFound
}

// newTestCommons starts a hub keeping ringCap events per commons, and
// founds a commons on it (event 1).
func newTestCommons(t *testing.T, ringCap int) *testCommons {
	t.Helper()
	c := &testCommons{t: t, key: protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{7}, 32)), log: &memLog{}, now: 1_700_000_000_000}
	c.h = New(ringCap, c.log, Counters{
		Events:      prometheus.NewCounter(prometheus.CounterOpts{Name: "events"}),
		Overflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "overflows"}),
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "subscribers"}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.h.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	self := c.key.Public()
	c.id = c.mustCID(c.add(&protocol.Record{Body: &protocol.Manifest{Name: "Feed", Licence: "MIT",
		Association: []protocol.PublicKey{self}, Threshold: 1, Maintainers: []protocol.PublicKey{self}, Quorum: 1, RejectQuorum: 1}}))
	return c
}

func (c *testCommons) mustCID(s string) cid.Cid {
	c.t.Helper()
	id, err := cid.Decode(s)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// add signs rec, applies it and adds its events live; it returns its CID.
func (c *testCommons) add(rec *protocol.Record) string {
	c.t.Helper()
	if !rec.IsGenesis() {
		rec.Commons = c.id
	}
	rec.Time = protocol.HLCFromMillis(c.now, 0)
	c.now += 1000
	if err := protocol.Sign(rec, c.key); err != nil {
		c.t.Fatal(err)
	}
	b, err := protocol.NewBlock(rec)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.state == nil {
		c.state = crdt.New(b.CID)
	}
	c.log.mu.Lock()
	cursor := uint64(len(c.log.recs) + 1)
	c.log.recs = append(c.log.recs, store.Stored{Cursor: cursor, CID: b.CID, Commons: b.CommonsID(), Raw: b.Raw})
	c.log.mu.Unlock()
	changes, err := c.state.AddAt(b, cursor)
	if err != nil {
		c.t.Fatal(err)
	}
	a := Applied{Cursor: cursor, Block: b}
	for _, ch := range changes {
		fc := Change{Change: ch}
		if ch.From != "" {
			var err error
			if fc.Subject, err = c.state.Record(ch.Contribution); err != nil {
				c.t.Fatal(err)
			}
		}
		a.Changes = append(a.Changes, fc)
	}
	c.h.Added(b.CommonsID(), []Applied{a}, true)
	c.unsaved = append(c.unsaved, a)
	c.save(len(c.unsaved) - c.lag)
	return b.CID.String()
}

// save stores the rows of the first n records applied since the last
// save, as the node does, and tells the hub.
func (c *testCommons) save(n int) {
	if n <= 0 {
		return
	}
	done := c.unsaved[:n]
	id := done[0].Block.CommonsID()
	// As the node: the save is gathered (Mark), then stored, then Saved.
	mark := c.h.Mark(id)
	if n < len(c.unsaved) {
		mark = 0 // the tail's summaries stay unless every record is saved
	}
	ws := append(Rows(done), c.h.CountsRow(id), c.h.StatusesRow(id, done[n-1].Cursor))
	c.log.mu.Lock()
	if c.log.rows == nil {
		c.log.rows = map[string][]byte{}
	}
	for _, w := range ws {
		c.log.rows[string(append([]byte{RowPrefix}, w.Key...))] = w.Value
	}
	c.log.mu.Unlock()
	c.h.Saved(id, done[n-1].Cursor, mark)
	c.unsaved = slices.Delete(c.unsaved, 0, n)
}

// storeGathered stores the rows of every record applied since the last
// save, as a save gathered with Mark (mark) does, and tells the hub.
func (c *testCommons) storeGathered(mark uint64) {
	c.log.mu.Lock()
	for _, w := range append(Rows(c.unsaved), c.h.StatusesRow(c.id, uint64(len(c.log.recs)))) {
		c.log.rows[string(append([]byte{RowPrefix}, w.Key...))] = w.Value
	}
	c.log.mu.Unlock()
	c.h.Saved(c.id, uint64(len(c.log.recs)), mark)
	c.unsaved = nil
}

func (c *testCommons) contribute(title, kind string) string {
	return c.add(&protocol.Record{Body: &protocol.Contribution{Title: title, Kind: kind,
		Licence: protocol.Link{Cid: c.id}, Provenance: protocol.ProvenanceVolunteer}})
}

func (c *testCommons) review(target, decision string) string {
	return c.add(&protocol.Record{Body: &protocol.Review{Target: protocol.Link{Cid: c.mustCID(target)},
		Decision: decision, Under: protocol.Link{Cid: c.id}}})
}

// subscribe opens a subscription from position from.
func (c *testCommons) subscribe(from string, f EventFilter) *Subscription {
	c.t.Helper()
	p, err := ParsePos(from)
	if err != nil {
		c.t.Fatal(err)
	}
	if f, err = f.Validate(); err != nil {
		c.t.Fatal(err)
	}
	return c.h.Subscribe(c.id, p, f)
}

// drain reads every event of the subscription up to its commons' head
// when called, awaiting their publication.
func drain(t *testing.T, s *Subscription) []Event {
	t.Helper()
	var out []Event
	head := s.Head()
	for !s.CaughtUp(head) {
		// Next returns once matching events are published; those that
		// follow, filtered out, move the position on without returning.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		frames, err := s.Next(ctx, 7)
		cancel()
		for _, f := range frames {
			out = append(out, parseFrame(t, f))
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next: %v", err)
		}
	}
	return out
}

func parseFrame(t *testing.T, f []byte) Event {
	t.Helper()
	_, data, ok := strings.Cut(string(f), "\ndata: ")
	if !ok {
		t.Fatalf("frame %q has no data", f)
	}
	var ev Event
	if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
		t.Fatalf("frame %q: %v", f, err)
	}
	return ev
}

func ids(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}
