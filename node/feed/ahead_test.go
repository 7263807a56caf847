package feed

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
)

// scanCounter counts the scans of each kind of row the log serves.
type scanCounter struct {
	mu sync.Mutex
	n  map[byte]int
}

func (s *scanCounter) count(prefix []byte) {
	if len(prefix) == 2 && prefix[0] == RowPrefix {
		s.mu.Lock()
		s.n[prefix[1]]++
		s.mu.Unlock()
	}
}

func (s *scanCounter) take() map[byte]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n = map[byte]int{}
	return n
}

// page reads a page of up to size summaries after cursor after, and the
// statuses of its contributions, as a node does: with rows read ahead
// (ReadAhead) or without.
func (c *testCommons) page(after uint64, size int, ahead bool) ([]Summary, []crdt.Status, error) {
	ctx := context.Background()
	last := uint64(len(c.log.recs))
	var a *Ahead
	if ahead {
		a = c.h.ReadAhead(ctx, c.id, after, min(after+uint64(size), last))
		defer a.Close()
	}
	ss, err := c.h.Summaries(ctx, c.id, after, last, size, a)
	if err != nil {
		return nil, nil, err
	}
	var cursors []uint64
	for _, s := range ss {
		if s.Type == protocol.TypeContribution {
			cursors = append(cursors, s.Cursor)
		}
	}
	if len(cursors) == 0 {
		return ss, nil, nil
	}
	now, err := c.h.Statuses(ctx, c.id, cursors, a)
	return ss, now, err
}

// TestAheadPages: pages read with rows read ahead give every record
// after their cursor in order, each contribution with the status the
// state gives it, and the same as pages read without; and a page whose
// rows were all read ahead scans the contribution rows and 't' rows once
// each (without, it scans the contribution rows twice).
func TestAheadPages(t *testing.T) {
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("COMMONS_AHEAD_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (COMMONS_AHEAD_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	c := newTestCommons(t, 100)
	var contribs []string
	for range 120 {
		c.lag = rng.IntN(6)
		if len(contribs) == 0 || rng.IntN(3) == 0 {
			contribs = append(contribs, c.contribute("c", "code"))
			continue
		}
		decisions := []string{protocol.DecisionAccept, protocol.DecisionReject, protocol.DecisionRetract}
		c.review(contribs[rng.IntN(len(contribs))], decisions[rng.IntN(len(decisions))])
	}
	scans := &scanCounter{n: map[byte]int{}}
	c.log.onScan = scans.count
	last := uint64(len(c.log.recs))
	wholly := 0 // pages whose rows were all read ahead
	for range 200 {
		after, size := rng.Uint64N(last), 1+rng.IntN(40)
		ss, now, err := c.page(after, size, true)
		if err != nil {
			t.Fatalf("page after %d of %d: %v", after, size, err)
		}
		n := scans.take()
		if want := int(min(uint64(size), last-after)); len(ss) != want {
			t.Fatalf("page after %d of %d: %d summaries, want %d", after, size, len(ss), want)
		}
		k := 0
		for i, s := range ss {
			rec := c.log.recs[after+uint64(i)]
			if s.Cursor != rec.Cursor || s.CID != rec.CID {
				t.Fatalf("page after %d: summary %d is %d %s, want %d %s", after, i, s.Cursor, s.CID, rec.Cursor, rec.CID)
			}
			if s.Type != protocol.TypeContribution {
				continue
			}
			if want, _ := c.state.Status(s.CID); now[k] != want {
				t.Fatalf("page after %d: contribution at %d has status %q, the state says %q", after, s.Cursor, now[k], want)
			}
			k++
		}
		if n[rowContrib] > 1 || n[rowNow] > 1 {
			t.Fatalf("page after %d of %d read ahead scanned the contribution rows %d times and the 't' rows %d", after, size, n[rowContrib], n[rowNow])
		}
		if n[rowContrib] == 1 && n[rowNow] == 1 {
			wholly++
		}
		ss2, now2, err := c.page(after, size, false)
		if err != nil {
			t.Fatal(err)
		}
		scans.take()
		if !slices.Equal(ss, ss2) || !slices.Equal(now, now2) {
			t.Fatalf("page after %d of %d: %v %v read ahead, %v %v without", after, size, ss, now, ss2, now2)
		}
	}
	if wholly < 50 {
		t.Errorf("%d pages of 200 had all of their rows read ahead, want 50 or more", wholly)
	}

	// The rows read ahead of any part of their range are those a scan of
	// that part gives.
	c.log.onScan = nil
	ctx := context.Background()
	f := c.h.lookup(c.id)
	for range 100 {
		after := rng.Uint64N(last)
		a := c.h.ReadAhead(ctx, c.id, after, min(after+1+rng.Uint64N(40), last))
		first := a.after + 1 + rng.Uint64N(a.last-a.after)
		end := first + rng.Uint64N(a.last-first+1)
		f.mu.RLock()
		epoch, saved := f.epoch, f.saved
		f.mu.RUnlock()
		if upto := min(end, saved); first <= upto {
			got, ok := a.contribRows(ctx, f, epoch, first-1, upto, 1000)
			want, err := c.h.scanContribs(ctx, f, first-1, upto, 1000)
			if !ok || err != nil || !slices.Equal(got, want) {
				t.Fatalf("contribution rows %d to %d of those read ahead from %d to %d: %v (%v), a scan gives %v (%v)", first, upto, a.after+1, a.last, got, ok, want, err)
			}
		}
		got, ok := a.nowRows(ctx, f, epoch, first, end)
		want, err := c.h.scanNow(ctx, f, first, end)
		if !ok || err != nil || !slices.Equal(got, want) {
			t.Fatalf("'t' rows %d to %d of those read ahead from %d to %d: %v (%v), a scan gives %v (%v)", first, end, a.after+1, a.last, got, ok, want, err)
		}
		a.Close()
	}
}

// TestAheadThenASaveStored: a save gathered before the rows were read
// ahead, and stored after (the tail then lets go of what it carried),
// is in neither the rows read ahead nor the tail that Statuses takes: the
// rows read ahead must not be taken then, or the status the save carried
// is lost.
func TestAheadThenASaveStored(t *testing.T) {
	c := newTestCommons(t, 100)
	a := c.contribute("a", "code")       // cursor 2
	c.review(a, protocol.DecisionReject) // saved: a 't' row, rejected
	c.lag = 10
	c.review(a, protocol.DecisionAccept) // in the tail: accepted
	mark := c.h.Mark(c.id)               // a save gathered, not stored yet
	ctx := context.Background()
	ahead := c.h.ReadAhead(ctx, c.id, 0, 4)
	defer ahead.Close()
	<-ahead.cdone
	<-ahead.ndone
	if len(ahead.now) != 1 || statuses[ahead.now[0].code] != crdt.StatusRejected {
		t.Fatalf("rows read ahead %v, want the stored rejection", ahead.now)
	}
	// The save is stored, and the tail lets go of what it carried.
	c.storeGathered(mark)
	got, err := c.h.Statuses(ctx, c.id, []uint64{2}, ahead)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := c.state.Status(c.mustCID(a)); want != crdt.StatusAccepted || !slices.Equal(got, []crdt.Status{want}) {
		t.Errorf("statuses %v with a save stored after the rows were read ahead; want [%s], as the state says (%s)", got, crdt.StatusAccepted, want)
	}
}

// TestAheadSideBySide: the contribution rows and the 't' rows are read
// while the summaries are: each of the three scans waits until the other
// two are under way, and a page read them one after another would time
// out.
func TestAheadSideBySide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCommons(t, 100)
		for range 5 {
			a := c.contribute("a", "code")
			c.review(a, protocol.DecisionAccept)
		}
		var mu sync.Mutex
		begun := map[byte]bool{}
		all := make(chan struct{})
		timedOut := false
		c.log.onScan = func(prefix []byte) {
			if len(prefix) != 2 || !strings.ContainsRune("cte", rune(prefix[1])) {
				return
			}
			mu.Lock()
			if !begun[prefix[1]] {
				if begun[prefix[1]] = true; len(begun) == 3 {
					close(all)
				}
			}
			mu.Unlock()
			select {
			case <-all:
			case <-time.After(time.Minute):
				mu.Lock()
				timedOut = true
				mu.Unlock()
			}
		}
		ss, now, err := c.page(0, 100, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 11 || len(now) != 5 {
			t.Fatalf("%d summaries and %d statuses, want 11 and 5", len(ss), len(now))
		}
		if timedOut {
			t.Errorf("the summaries, the contribution rows and the 't' rows were not read side by side (scans begun: %v)", begun)
		}
	})
}

// TestAheadFailedRead: a read ahead that fails leaves the rows to be
// scanned as without it, and that scan reports what is wrong.
func TestAheadFailedRead(t *testing.T) {
	c := newTestCommons(t, 100)
	a := c.contribute("a", "code")       // cursor 2
	c.review(a, protocol.DecisionReject) // a 't' row
	k := string(nowKey(2))
	c.log.mu.Lock()
	if _, ok := c.log.rows[k]; !ok {
		c.log.mu.Unlock()
		t.Fatal("no 't' row for the contribution")
	}
	c.log.rows[k] = []byte{0xff} // no status
	c.log.mu.Unlock()
	damaged := c.damagedRows()
	ctx := context.Background()
	ahead := c.h.ReadAhead(ctx, c.id, 0, 3)
	defer ahead.Close()
	<-ahead.ndone
	if !errors.Is(ahead.nerr, ErrDamaged) {
		t.Fatalf("read ahead: %v, want a damaged row", ahead.nerr)
	}
	_, err := c.h.Statuses(ctx, c.id, []uint64{2}, ahead)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "read the statuses") {
		t.Errorf("Statuses after a failed read ahead: %v, want the damaged row named", err)
	}
	if len(*damaged) != 1 {
		t.Errorf("%d damaged rows reported, want 1", len(*damaged))
	}
}

// TestAheadThenATakenBackRecordStored: a record taken back at its place
// in the log (before the saved cursor) has its rows stored by a save
// that is not Saved yet. Stored after the contribution rows were read
// ahead, and before the summaries are scanned, its summary row is found
// and its contribution row is not among those read ahead: the page must
// scan the contribution rows again, not call the row damaged.
func TestAheadThenATakenBackRecordStored(t *testing.T) {
	c := newTestCommons(t, 100)
	for range 3 {
		c.contribute("a", "code") // cursors 2 to 4, saved
	}
	const at = 3
	rows := map[string][]byte{}
	c.log.mu.Lock()
	for _, k := range []string{string(append([]byte{RowPrefix}, SummaryKey(at)...)), string(contribKey(at))} {
		if rows[k] = c.log.rows[k]; rows[k] == nil {
			c.log.mu.Unlock()
			t.Fatalf("no row %x", k)
		}
		delete(c.log.rows, k) // not stored yet
	}
	c.log.mu.Unlock()
	damaged := c.damagedRows()
	ctx := context.Background()
	ahead := c.h.ReadAhead(ctx, c.id, 1, 4)
	defer ahead.Close()
	<-ahead.cdone
	if len(ahead.contribs) != 2 {
		t.Fatalf("%d contribution rows read ahead, want 2", len(ahead.contribs))
	}
	c.log.mu.Lock()
	maps.Copy(c.log.rows, rows) // stored now, not Saved
	c.log.mu.Unlock()
	ss, err := c.h.Summaries(ctx, c.id, 1, 4, 3, ahead)
	if err != nil {
		t.Fatalf("summaries with a record stored after its rows were read ahead: %v", err)
	}
	if len(ss) != 3 || ss[1].Cursor != at || ss[1].CID != c.log.recs[at-1].CID {
		t.Errorf("summaries %v, want the three contributions, the record at %d with its CID", ss, at)
	}
	if len(*damaged) != 0 {
		t.Errorf("damaged rows reported: %v", *damaged)
	}
}

// TestAheadReadPanics: a read ahead whose store read panics (badger does
// on some damaged pages) fails, rather than stopping the process, and the
// rows are scanned on the caller's goroutine.
func TestAheadReadPanics(t *testing.T) {
	c := newTestCommons(t, 100)
	a := c.contribute("a", "code")       // cursor 2
	c.review(a, protocol.DecisionReject) // a 't' row
	var once sync.Once
	c.log.onScan = func(prefix []byte) {
		if len(prefix) == 2 && prefix[1] == rowNow {
			once.Do(func() { panic("a damaged page") })
		}
	}
	ctx := context.Background()
	ahead := c.h.ReadAhead(ctx, c.id, 0, 3)
	defer ahead.Close()
	<-ahead.ndone
	if ahead.nerr == nil || !strings.Contains(ahead.nerr.Error(), "a damaged page") {
		t.Fatalf("read ahead: %v, want the panic as its error", ahead.nerr)
	}
	got, err := c.h.Statuses(ctx, c.id, []uint64{2}, ahead)
	if err != nil || !slices.Equal(got, []crdt.Status{crdt.StatusRejected}) {
		t.Errorf("statuses %v (%v) after a read ahead that panicked, want [rejected]", got, err)
	}
}

// damagedRows returns the errors of the damaged rows the hub reports from
// now on (OnDamaged), as they come.
func (c *testCommons) damagedRows() *[]error {
	var damaged []error
	c.h.OnDamaged(func(_ cid.Cid, err error) { damaged = append(damaged, err) })
	return &damaged
}
