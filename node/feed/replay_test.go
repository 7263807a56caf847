package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// addAs is testCommons.add signed by key.
func (c *testCommons) addAs(rec *protocol.Record, key protocol.PrivateKey) string {
	saved := c.key
	c.key = key
	defer func() { c.key = saved }()
	return c.add(rec)
}

// drainMax reads s up to its commons' head when called, max events a
// call.
func drainMax(t *testing.T, s *Subscription, max int) [][]byte {
	t.Helper()
	var out [][]byte
	head := s.Head()
	for !s.CaughtUp(head) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		frames, err := s.Next(ctx, max)
		cancel()
		out = append(out, frames...)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next: %v", err)
		}
	}
	return out
}

// TestReplayEqualsLive reads every event live with a subscriber that keeps
// up, on a ring of 4 (so that most later reads replay from the store);
// resuming from every position, with several read sizes and filters, must
// give the same frames byte for byte, including a manifest update that
// changes several statuses at one cursor.
func TestReplayEqualsLive(t *testing.T) {
	// lag: the rows of the last records applied are still in the hub's
	// tail, not in the store, as between a node's apply and its save.
	for _, lag := range []int{0, 4, 12} {
		t.Run(fmt.Sprint("lag ", lag), func(t *testing.T) { testReplayEqualsLive(t, lag) })
	}
}

func testReplayEqualsLive(t *testing.T, lag int) {
	c := newTestCommons(t, 4)
	c.lag = lag
	// The genesis lists a second maintainer m2; m2 accepts three
	// contributions; an update revokes m2: three status changes at one
	// cursor.
	live := c.subscribe("", EventFilter{})
	defer live.Close()
	var got [][]byte
	got = append(got, drainMax(t, live, 1000)...)
	m2 := protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	self := c.key.Public()
	var cons []string
	for i := range 3 {
		cons = append(cons, c.contribute(fmt.Sprint("t", i), fmt.Sprint("k", i%2)))
		got = append(got, drainMax(t, live, 1000)...)
	}
	for _, x := range cons {
		c.review(x, protocol.DecisionAccept)
		got = append(got, drainMax(t, live, 1000)...)
	}
	// v2 adds m2 as a maintainer; m2 accepts the two retracted ones under
	// v2; v3 revokes m2: two status changes at one cursor.
	v2 := c.add(&protocol.Record{Commons: c.id, Body: &protocol.Manifest{Name: "Feed", Licence: "MIT",
		Association: []protocol.PublicKey{self}, Threshold: 1, Maintainers: []protocol.PublicKey{self, m2.Public()}, Quorum: 1, RejectQuorum: 1,
		Prev: []protocol.Link{{Cid: c.id}}, Version: 2}})
	got = append(got, drainMax(t, live, 1000)...)
	for _, x := range cons[:2] {
		c.review(x, protocol.DecisionRetract)
		got = append(got, drainMax(t, live, 1000)...)
		c.addAs(&protocol.Record{Body: &protocol.Review{Target: protocol.Link{Cid: c.mustCID(x)}, Decision: protocol.DecisionAccept, Under: protocol.Link{Cid: c.mustCID(v2)}}}, m2)
		got = append(got, drainMax(t, live, 1000)...)
	}
	c.add(&protocol.Record{Commons: c.id, Body: &protocol.Manifest{Name: "Feed", Licence: "MIT",
		Association: []protocol.PublicKey{self}, Threshold: 1, Maintainers: []protocol.PublicKey{self}, Quorum: 1, RejectQuorum: 1,
		Revoked: []protocol.PublicKey{m2.Public()}, Prev: []protocol.Link{{Cid: c.mustCID(v2)}}, Version: 3}})
	got = append(got, drainMax(t, live, 1000)...)
	for i := range 5 {
		c.contribute(fmt.Sprint("tail", i), "k1")
		got = append(got, drainMax(t, live, 1000)...)
	}
	multi := 0
	for _, fr := range got {
		if parseFrame(t, fr).Seq == 2 {
			multi++
		}
	}
	if multi == 0 {
		t.Fatal("no record changed two statuses: the scenario misses what it is for")
	}
	for _, max := range []int{1, 2, 3, 7, 1000} {
		for _, f := range []EventFilter{{}, {Type: EventStatus}, {Kind: "k1"}, {Status: "pending"}} {
			var want [][]byte
			for _, fr := range got {
				ev := parseFrame(t, fr)
				if f.match(&ev) {
					want = append(want, fr)
				}
			}
			for i := -1; i < len(got); i++ {
				from := ""
				if i >= 0 {
					from = parseFrame(t, got[i]).ID
				}
				s := c.subscribe(from, f)
				rep := drainMax(t, s, max)
				s.Close()
				var w [][]byte
				for _, fr := range want {
					ev := parseFrame(t, fr)
					p, _ := ParsePos(ev.ID)
					q, _ := ParsePos(from)
					if q.less(p) {
						w = append(w, fr)
					}
				}
				if len(rep) != len(w) {
					t.Fatalf("max %d filter %+v from %q: %d frames, want %d", max, f, from, len(rep), len(w))
				}
				for k := range w {
					if !bytes.Equal(rep[k], w[k]) {
						t.Fatalf("max %d filter %+v from %q frame %d:\n got %s\nwant %s", max, f, from, k, rep[k], w[k])
					}
				}
			}
		}
	}
}

// countingLog counts GetRecord calls.
type countingLog struct {
	*memLog
	gets int
}

func (l *countingLog) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	l.gets++
	return l.memLog.GetRecord(ctx, c)
}

// TestReplaySkipsReadsForFilteredOut checks that a replay reads no
// contribution record for status events its filter drops by type.
func TestReplaySkipsReadsForFilteredOut(t *testing.T) {
	c := newTestCommons(t, 4)
	for i := range 50 {
		x := c.contribute(fmt.Sprint("t", i), "k")
		c.review(x, protocol.DecisionAccept)
	}
	cl := &countingLog{memLog: c.log}
	c.h.log = cl
	s := c.subscribe("", EventFilter{Type: string(protocol.TypeManifest)})
	frames := drainMax(t, s, 1000)
	s.Close()
	if cl.gets > 0 {
		t.Errorf("a replay for manifests only (%d frames) read %d contribution records for status events it drops", len(frames), cl.gets)
	}
}

// failingLog fails about a third of its reads, at random, as reads cut
// short by their context do.
type failingLog struct {
	*memLog
	rnd *rand.Rand
}

var errReadCut = errors.New("read cut short (test)")

func (l *failingLog) fail() bool { return l.rnd.IntN(3) == 0 }

func (l *failingLog) Feed(ctx context.Context, c cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	if l.fail() {
		return nil, errReadCut
	}
	return l.memLog.Feed(ctx, c, after, limit)
}

func (l *failingLog) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	if l.fail() {
		return nil, errReadCut
	}
	return l.memLog.GetRecord(ctx, c)
}

// TestReplayFailedReadLosesNothing: a replay whose read fails returns the
// events before it, and the next Next goes on from there: no event is
// skipped (the position moves only past events passed to the reader).
func TestReplayFailedReadLosesNothing(t *testing.T) {
	c := newTestCommons(t, 4)
	for i := range 30 {
		x := c.contribute(fmt.Sprint("t", i), "k")
		if i%3 != 2 {
			c.review(x, protocol.DecisionAccept)
		}
	}
	s := c.subscribe("", EventFilter{})
	want := ids(drain(t, s))
	s.Close()

	for _, max := range []int{1, 2, 5, 64} {
		seed := time.Now().UnixNano()
		c.h.log = &failingLog{memLog: c.log, rnd: rand.New(rand.NewPCG(uint64(seed), 0))}
		s := c.subscribe("", EventFilter{})
		var got []string
		failed := 0
		for head := s.Head(); !s.CaughtUp(head); {
			frames, err := s.Next(t.Context(), max)
			for _, f := range frames {
				got = append(got, parseFrame(t, f).ID)
			}
			if err != nil {
				if !errors.Is(err, errReadCut) {
					t.Fatalf("Next: %v", err)
				}
				failed++
			}
		}
		s.Close()
		if failed == 0 {
			t.Fatalf("max %d, seed %d: no read failed; the test tests nothing", max, seed)
		}
		if !slices.Equal(got, want) {
			t.Errorf("max %d, seed %d, %d reads failed: got events\n%v\nwant\n%v", max, seed, failed, got, want)
		}
	}
	c.h.log = c.log
}
