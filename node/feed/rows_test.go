package feed

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
)

// TestSummariesKeepATakenBackRecordUntilSaved: a record taken back at its
// place in the log (left out as damaged, then whole again) after a save
// gathered the rows of those around it is not in that save: once it is
// done, the record's summary is still read, from the tail, and in cursor
// order, until a save that carries it.
func TestSummariesKeepATakenBackRecordUntilSaved(t *testing.T) {
	c := newTestCommons(t, 100)
	for i := range 4 {
		c.contribute(fmt.Sprintf("c%d", i), "code")
	}
	var applied []Applied
	for _, s := range c.log.recs {
		b, err := protocol.ParseStored(s.CID, s.Raw)
		if err != nil {
			t.Fatal(err)
		}
		applied = append(applied, Applied{Cursor: s.Cursor, Block: b})
	}
	log := &memLog{recs: c.log.recs}
	h := New(100, log, Counters{
		Events:      prometheus.NewCounter(prometheus.CounterOpts{Name: "events"}),
		Overflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "overflows"}),
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "subscribers"}),
	})
	taken := applied[2] // cursor 3, left out at first
	rest := slices.Delete(slices.Clone(applied), 2, 3)
	h.Added(c.id, rest, false)
	mark := h.Mark(c.id) // a save gathers the rows of rest
	h.Added(c.id, []Applied{taken}, false)
	log.rows = map[string][]byte{}
	for _, w := range Rows(rest) {
		log.rows[string(append([]byte{RowPrefix}, w.Key...))] = w.Value
	}
	h.Saved(c.id, 5, mark)
	cursors := func() []uint64 {
		ss, err := h.Summaries(context.Background(), c.id, 0, 5, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, s := range ss {
			out = append(out, s.Cursor)
		}
		return out
	}
	if got := cursors(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("summaries after a save without the record taken back: cursors %v; want 1 to 5", got)
	}
	for _, w := range Rows([]Applied{taken}) {
		log.rows[string(append([]byte{RowPrefix}, w.Key...))] = w.Value
	}
	if got := cursors(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("summaries with the record's row stored, before Saved: cursors %v; want 1 to 5, once each", got)
	}
	h.Saved(c.id, 5, h.Mark(c.id))
	if got := cursors(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("summaries once the record's row is saved: cursors %v; want 1 to 5", got)
	}

	// A contribution's summary row without its contribution row, which
	// holds the rest of its summary, is damage.
	delete(log.rows, string(contribKey(4)))
	if _, err := h.Summaries(context.Background(), c.id, 0, 5, 10, nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "without its contribution row") {
		t.Errorf("summaries with a contribution row missing: %v; want ErrDamaged, saying so", err)
	}
}

// TestSummaryRows: a summary's row gives it back whole (a contribution's
// with its contribution row), a title at its longest and in any script; a
// row cut short, with bytes after its last field, or of an unknown form
// is refused.
func TestSummaryRows(t *testing.T) {
	c := newTestCommons(t, 100)
	long := strings.Repeat("ü漢", 60) // a title at its longest, 300 bytes
	con := c.contribute(long, "code")
	c.review(con, "accept")
	for _, s := range c.log.recs {
		b, err := protocol.ParseStored(s.CID, s.Raw)
		if err != nil {
			t.Fatal(err)
		}
		want := SummaryOf(s.Cursor, b)
		e := RecordEvent(c.id, s.Cursor, b)
		if want.Title != e.Title || want.Target != e.Target || want.Decision != e.Decision || string(want.Type) != e.Type || want.CID.String() != e.CID {
			t.Errorf("summary %+v of record %d says other than its event %+v", want, s.Cursor, e)
		}
		k, v := append([]byte{RowPrefix}, SummaryKey(s.Cursor)...), encodeSummary(want)
		got, isContrib, ok := decodeSummary(k, v)
		if isContrib != (b.Record.Type() == protocol.TypeContribution) {
			t.Errorf("record %d, a %s: its summary row says contribution %v", s.Cursor, b.Record.Type(), isContrib)
		}
		if isContrib {
			// The rest is in its contribution row.
			d, _ := protocol.RecordDigest(b.CID)
			got = withContrib(got, contrib{cursor: s.Cursor, con: d, author: b.Record.Author, time: b.Record.Time})
		}
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("record %d: summary row decodes to %+v, %v; want %+v", s.Cursor, got, ok, want)
		}
		for _, bad := range [][]byte{v[:len(v)-1], append(slices.Clone(v), 0), v[:1], append([]byte{9}, v[1:]...)} {
			if _, _, ok := decodeSummary(k, bad); ok {
				t.Errorf("record %d: a summary row of %d bytes (form %d), of %d, decodes", s.Cursor, len(bad), bad[0], len(v))
			}
		}
	}
}

// TestStatusesWithASaveMeanwhile: Statuses reads the tail of statuses not
// saved yet, then the stored rows. A save that gathers rows in between,
// carrying a status set after the tail was read, stores a status newer
// than the tail's: the tail's older status must not win over it.
func TestStatusesWithASaveMeanwhile(t *testing.T) {
	c := newTestCommons(t, 100)
	a := c.contribute("a", "code")
	c.review(a, protocol.DecisionReject) // saved: a 't' row, rejected
	c.lag = 10
	c.review(a, protocol.DecisionAccept) // in the tail: accepted
	at := uint64(2)
	once := false
	c.log.onScan = func(prefix []byte) {
		if string(prefix) != string([]byte{RowPrefix, rowNow}) || once {
			return
		}
		once = true
		c.lag = 0
		c.review(a, protocol.DecisionRetract) // set and saved meanwhile: pending
	}
	got, err := c.h.Statuses(context.Background(), c.id, []uint64{at}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !once {
		t.Fatal("Statuses read no status row")
	}
	want, _ := c.state.Status(c.mustCID(a))
	if want != crdt.StatusPending || !slices.Equal(got, []crdt.Status{want}) {
		t.Errorf("statuses %v with a save meanwhile; want [%s], as the state says (%s)", got, crdt.StatusPending, want)
	}
}

// TestStatusesWithTheFeedLoadedAgain: a commons left and joined again
// while Statuses reads has a new feed, whose saves the old one does not
// count: the read must not take the old feed's tail over the rows the new
// one saved.
func TestStatusesWithTheFeedLoadedAgain(t *testing.T) {
	c := newTestCommons(t, 100)
	a := c.contribute("a", "code")
	c.review(a, protocol.DecisionReject) // saved: rejected
	c.lag = 10
	c.review(a, protocol.DecisionAccept) // in the tail: accepted
	mark := c.h.Mark(c.id)               // a save gathered before the read
	once := false
	c.log.onScan = func(prefix []byte) {
		if string(prefix) != string([]byte{RowPrefix, rowNow}) || once {
			return
		}
		once = true
		// That save is stored, the commons left (its feed unloaded) and
		// joined again (loaded from its rows), and a review saved.
		c.storeGathered(mark)
		c.h.Unload(c.id)
		if err := c.h.Load(context.Background(), c.id, uint64(len(c.log.recs))); err != nil {
			t.Fatal(err)
		}
		c.lag = 0
		c.review(a, protocol.DecisionRetract) // pending
	}
	got, err := c.h.Statuses(context.Background(), c.id, []uint64{2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !once {
		t.Fatal("Statuses read no status row")
	}
	if want, _ := c.state.Status(c.mustCID(a)); want != crdt.StatusPending || !slices.Equal(got, []crdt.Status{want}) {
		t.Errorf("statuses %v with the feed loaded again meanwhile; want [%s], as the state says (%s)", got, crdt.StatusPending, want)
	}
}

// TestStatusesWithSavesAllTheTime: when a save gathers rows during each of
// Statuses' reads, it leaves the statuses to the caller ("") rather than
// give one it cannot vouch for.
func TestStatusesWithSavesAllTheTime(t *testing.T) {
	c := newTestCommons(t, 100)
	a := c.contribute("a", "code")
	c.review(a, protocol.DecisionAccept)
	scans := 0
	c.log.onScan = func(prefix []byte) {
		if string(prefix) == string([]byte{RowPrefix, rowNow}) {
			scans++
			c.h.Mark(c.id) // a save gathered meanwhile
		}
	}
	got, err := c.h.Statuses(context.Background(), c.id, []uint64{2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []crdt.Status{""}) || scans != statusReads {
		t.Errorf("statuses %v after %d reads, each with a save; want [\"\"] after %d", got, scans, statusReads)
	}
	c.log.onScan = nil
	if got, _ := c.h.Statuses(context.Background(), c.id, []uint64{2}, nil); !slices.Equal(got, []crdt.Status{crdt.StatusAccepted}) {
		t.Errorf("statuses %v with no save meanwhile; want [accepted]", got)
	}
}
