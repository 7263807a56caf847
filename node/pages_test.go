package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
)

// releasingStore is a memstore that records the calls of ReleasePages,
// and holds grow more bytes of file pages at each, released past the
// budget.
type releasingStore struct {
	*memstore.Store
	mu      sync.Mutex
	budgets []int64
	at      []time.Time
	held    int64
	grow    int64
	fail    bool
	// PageOut's calls, by their budgets and times; Close takes closeTakes,
	// and ends at closedAt.
	pageOuts   []int64
	pageOutAt  []time.Time
	closeTakes time.Duration
	closedAt   time.Time
	// keep: Close leaves the memstore open, for the next node to start
	// on; readTakes is how long each read of a commons' applied cursor and
	// of a feed-log page takes, and each commit of derived state.
	keep      bool
	readTakes time.Duration
	// failDerived fails CommitDerived.
	failDerived bool
	// advised lists the calls of ReadRandomly.
	advised []advised
}

func (s *releasingStore) CommitDerived(ctx context.Context, ds []store.Derived) error {
	time.Sleep(s.readTakes)
	if s.failDerived {
		return errors.New("disk full (test)")
	}
	return s.Store.CommitDerived(ctx, ds)
}

func (s *releasingStore) Applied(ctx context.Context, c cid.Cid) (uint64, error) {
	time.Sleep(s.readTakes)
	return s.Store.Applied(ctx, c)
}

func (s *releasingStore) Feed(ctx context.Context, c cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	time.Sleep(s.readTakes)
	return s.Store.Feed(ctx, c, after, limit)
}

func (s *releasingStore) PageOut(budget int64) (int64, int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageOuts = append(s.pageOuts, budget)
	s.pageOutAt = append(s.pageOutAt, time.Now())
	return 0, 0, false, nil
}

func (s *releasingStore) Close() error {
	time.Sleep(s.closeTakes)
	s.mu.Lock()
	s.closedAt = time.Now()
	keep := s.keep
	s.mu.Unlock()
	if keep {
		return nil
	}
	return s.Store.Close()
}

func (s *releasingStore) ReleasePages(ctx context.Context, budget int64) (int64, int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budgets = append(s.budgets, budget)
	s.at = append(s.at, time.Now())
	if s.fail {
		return 0, 0, false, errors.New("no /proc here")
	}
	s.held += s.grow
	if s.held > budget {
		before := s.held
		s.held = 0
		return before, 0, true, nil
	}
	return s.held, s.held, false, nil
}

func (s *releasingStore) ReadRandomly(ctx context.Context, random bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advised = append(s.advised, advised{time.Now(), random})
	return nil
}

// advisedSince returns the calls of ReadRandomly that came at or after t.
func (s *releasingStore) advisedSince(t time.Time) []advised {
	s.mu.Lock()
	defer s.mu.Unlock()
	var got []advised
	for _, a := range s.advised {
		if !a.at.Before(t) {
			got = append(got, a)
		}
	}
	return got
}

// advised is a call of ReadRandomly.
type advised struct {
	at     time.Time
	random bool
}

func (s *releasingStore) setGrow(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grow = n
}

func (s *releasingStore) calls() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.budgets...)
}

// gapsSince returns the time between each two calls that came at or after
// t.
func (s *releasingStore) gapsSince(t time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(s.at); i++ {
		if !s.at[i-1].Before(t) {
			gaps = append(gaps, s.at[i].Sub(s.at[i-1]))
		}
	}
	return gaps
}

// callsSince returns how many calls came at or after t.
func (s *releasingStore) callsSince(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.at {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// A running node asks a store that can release the pages of its files to
// do so every pageCheck with pageBudget while its pages grow, an offline
// one (an import) as well, and stops asking once it stops; a store that
// cannot is still asked, and the node keeps running.
func TestNodeReleasesStorePages(t *testing.T) {
	for _, fail := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			st := &releasingStore{Store: memstore.New(), fail: fail, grow: pageBudget / 4}
			n, err := New(Config{Offline: true, Store: st, Key: testKey(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10*pageCheck + pageCheck/2)
			got := st.calls()
			if !fail && len(got) != 10 {
				t.Errorf("%d calls in %v, want 10 (one every %v while the pages grow)", len(got), 10*pageCheck+pageCheck/2, pageCheck)
			}
			if fail && len(got) < 3 { // at 50, 100 and 200 ms, spacing out
				t.Errorf("failing: %d calls in %v, want 3", len(got), 10*pageCheck+pageCheck/2)
			}
			for _, b := range got {
				if b != pageBudget {
					t.Fatalf("fail=%v: budget %d, want %d", fail, b, pageBudget)
				}
			}
			time.Sleep(20 * pageIdle)
			if c := len(st.calls()); c < 20 {
				t.Errorf("fail=%v: %d calls in %v, want one at least every %v", fail, c, 20*pageIdle, pageIdle)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			got = st.calls()
			time.Sleep(10 * pageIdle)
			if after := st.calls(); len(after) != len(got) {
				t.Errorf("fail=%v: %d calls after Close", fail, len(after)-len(got))
			}
		})
	}
}

// While the pages do not grow, the checks space out to one every
// pageIdle, and come every pageCheck again once the pages grow, or shrink
// (badger unmapping the tables a compaction replaced, while it maps more).
func TestNodeChecksPagesLessWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &releasingStore{Store: memstore.New()}
		n, err := New(Config{Offline: true, Store: st, Key: testKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		time.Sleep(5 * pageIdle) // spaced out by now
		idle := time.Now()
		time.Sleep(10 * pageIdle)
		if c := st.callsSince(idle); c < 9 || c > 11 {
			t.Errorf("idle: %d checks in %v, want one every %v", c, 10*pageIdle, pageIdle)
		}
		st.setGrow(pageBudget / 8)
		time.Sleep(pageIdle) // the next check sees the growth
		busy := time.Now()
		time.Sleep(20*pageCheck + pageCheck/2)
		if gaps := st.gapsSince(busy); len(gaps) < 19 || slices.ContainsFunc(gaps, func(d time.Duration) bool { return d != pageCheck }) {
			t.Errorf("growing again: checks %v apart in %v, want 20, one every %v", gaps, 20*pageCheck+pageCheck/2, pageCheck)
		}
		st.setGrow(-pageBudget / 8) // shrinking as much: as busy
		time.Sleep(pageIdle)
		shrinking := time.Now()
		time.Sleep(20*pageCheck + pageCheck/2)
		if gaps := st.gapsSince(shrinking); len(gaps) < 19 || slices.ContainsFunc(gaps, func(d time.Duration) bool { return d != pageCheck }) {
			t.Errorf("shrinking: checks %v apart in %v, want 20, one every %v", gaps, 20*pageCheck+pageCheck/2, pageCheck)
		}
		st.setGrow(pageBudget / 64) // below a sixteenth: idle again
		time.Sleep(5 * pageIdle)
		slow := time.Now()
		time.Sleep(10 * pageIdle)
		if c := st.callsSince(slow); c < 9 || c > 11 {
			t.Errorf("growing slowly: %d checks in %v, want one every %v", c, 10*pageIdle, pageIdle)
		}
	})
}

// While the store closes (which may open it again, and read the value log
// file an import wrote), its pages are paged out every pageCheck, with
// pageBudget: not before Close, since the releases do that, nor after.
func TestNodePagesOutWhileStoreCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &releasingStore{Store: memstore.New(), closeTakes: 10*pageCheck + pageCheck/2}
		n, err := New(Config{Offline: true, Store: st, Key: testKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * pageIdle)
		st.mu.Lock()
		early := len(st.pageOuts)
		st.mu.Unlock()
		if early != 0 {
			t.Errorf("%d page-outs before Close", early)
		}
		closing := time.Now()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * pageIdle)
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.pageOuts) != 10 {
			t.Errorf("%d page-outs while the store took %v to close, want 10 (one every %v)", len(st.pageOuts), st.closeTakes, pageCheck)
		}
		for i, at := range st.pageOutAt {
			if st.pageOuts[i] != pageBudget || at.Before(closing) || !at.Before(st.closedAt) {
				t.Errorf("page-out %d: budget %d at %v after Close began, the store closed at %v", i, st.pageOuts[i], at.Sub(closing), st.closedAt.Sub(closing))
			}
		}
	})
}

// Start releases the store's pages from its beginning: while it opens the
// stored states of the commons (opening the store mapped the tables'
// indexes), while it applies records again (a migration may read the
// whole history), reads the records left out as damaged (a repair may
// have mended many), or drops a state to derive it again; and after it.
func TestStartReleasesPagesFromItsBeginning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := testKey(t)
		st := &releasingStore{Store: memstore.New(), grow: 2 * pageBudget, keep: true}
		start := func() (n *Node, during, after int) {
			t.Helper()
			n, err := New(Config{Offline: true, Store: st, Key: key})
			if err != nil {
				t.Fatal(err)
			}
			calls, began := len(st.calls()), time.Now()
			if err := n.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); took < st.readTakes {
				t.Fatalf("Start took %v, want %v at least (the store's reads)", took, st.readTakes)
			}
			started := len(st.calls())
			time.Sleep(2 * pageCheck)
			return n, started - calls, len(st.calls()) - started
		}
		n, _, _ := start()
		id, cons := fill(t, n, 6)
		closeNode(t, n)

		// Each read of the applied cursor and of a feed-log page takes
		// four checks' time: Start takes that long at least.
		st.readTakes = 4 * pageCheck
		n, during, after := start()
		if during == 0 {
			t.Error("no release while Start opened the stored state")
		}
		if after == 0 {
			t.Errorf("no release within %v of Start's end", 2*pageCheck)
		}
		// Records whose derived state was not stored (the disk filled):
		// the next start applies them again, and releases meanwhile.
		st.failDerived = true
		more(t, n, id, 3)
		if err := n.Close(); err == nil {
			t.Fatal("Close stored the derived state on a full disk")
		}
		st.failDerived = false
		n, during, _ = start()
		if during == 0 {
			t.Error("no release while Start applied the records stored after the derived state")
		}
		closeNode(t, n)
		// A record marked as left out as damaged: the start reads it
		// again (here the state holds it, and the mark goes), and
		// releases meanwhile.
		applied, err := st.Store.Applied(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		c := cid.MustParse(cons[0])
		mark := store.Write{Key: leftOutKey(c), Value: binary.BigEndian.AppendUint64(nil, 1)}
		if err := st.Store.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: []store.Write{mark}}}); err != nil {
			t.Fatal(err)
		}
		n, during, _ = start()
		if during == 0 {
			t.Error("no release while Start read the records left out as damaged")
		}
		closeNode(t, n)
		// The derived state dropped: the start derives it again from the
		// records, and releases meanwhile.
		if err := (&Node{st: st.Store}).dropDerived(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		n, during, _ = start()
		defer closeNode(t, n)
		if during == 0 {
			t.Error("no release while Start derived the state again")
		}
	})
}

// A daemon's releases run at the lowest priority from after its first
// check; an offline node's (an import's) keep theirs.
func TestDaemonReleasesAtLowestPriority(t *testing.T) {
	defer func(f func() error) { releasePriority = f }(releasePriority)
	for _, offline := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			st := &releasingStore{Store: memstore.New(), grow: pageBudget / 4}
			var lowered []int // the checks made before each lowering
			releasePriority = func() error {
				lowered = append(lowered, len(st.calls()))
				return nil
			}
			n := &Node{cfg: Config{Offline: offline}, st: st, log: slog.New(slog.DiscardHandler)}
			stop := n.startReleasingPages()
			time.Sleep(5*pageCheck + pageCheck/2)
			stop()
			if checks := len(st.calls()); checks < 5 {
				t.Fatalf("offline=%v: %d checks; the test needs several", offline, checks)
			}
			want := []int{1}
			if offline {
				want = nil
			}
			if !slices.Equal(lowered, want) {
				t.Errorf("offline=%v: lowered after checks %v; want %v", offline, lowered, want)
			}
		})
	}
}

// A daemon that stores records fast (a join, a sync that catches up)
// keeps its releases at its own priority, as an offline node does; once
// it stops storing them, its releases go to the lowest priority.
func TestDaemonReleasesAtItsPriorityWhileStoring(t *testing.T) {
	defer func(f func() error) { releasePriority = f }(releasePriority)
	synctest.Test(t, func(t *testing.T) {
		st := &releasingStore{Store: memstore.New(), grow: pageBudget / 4}
		var mu sync.Mutex // the releases' thread writes lowered, the test reads it meanwhile
		var lowered []int // the checks made before each lowering
		releasePriority = func() error {
			mu.Lock()
			defer mu.Unlock()
			lowered = append(lowered, len(st.calls()))
			return nil
		}
		loweredSoFar := func() []int {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(lowered)
		}
		n := &Node{st: st, log: slog.New(slog.DiscardHandler)}
		stop := n.startReleasingPages()
		defer stop()
		// 100 records every 10 ms: 10,000 a second, past busyRate.
		for range 30 {
			n.stored.Add(100)
			time.Sleep(10 * time.Millisecond)
		}
		busy := len(st.calls())
		if busy < 5 {
			t.Fatalf("%d checks while storing; the test needs several", busy)
		}
		if l := loweredSoFar(); len(l) != 0 {
			t.Fatalf("releases lowered after %v checks, while the node stored %d records a second", l, 10_000)
		}
		time.Sleep(5*pageCheck + pageCheck/2)
		stop()
		if l := loweredSoFar(); len(l) != 1 || l[0] < busy {
			t.Errorf("lowered after checks %v; want once, after the %d made while storing", l, busy)
		}
	})
}

// A daemon's store reads its files a page at a time once the daemon has
// loaded the states, while it stores and reads records slowly; around each page read while it stores
// them fast or reads them in bulk (a sync's sends, an export), and for
// readQuiet after. An offline node's store reads around throughout.
func TestReadRandomlyWhileQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &releasingStore{Store: memstore.New(), grow: pageBudget / 4}
		n := &Node{st: st, log: slog.New(slog.DiscardHandler)}
		stop := n.startReleasingPages()
		defer stop()
		time.Sleep(3*pageCheck + pageCheck/2) // between two checks
		loading := st.advisedSince(time.Time{})
		if len(loading) == 0 {
			t.Fatal("no check while the states load")
		}
		for _, a := range loading {
			if a.random {
				t.Fatalf("advised random at %v, while the states load", a.at)
			}
		}
		n.loaded.Store(true)
		begun := time.Now()
		time.Sleep(3 * pageCheck)
		if a := st.advisedSince(begun); len(a) == 0 || !a[0].random || !a[len(a)-1].random {
			t.Fatalf("a daemon at rest advised %v; want random from the first check after the states loaded", a)
		}
		for _, c := range []struct {
			what  string
			count *atomic.Int64
		}{{"storing", &n.stored}, {"sending", &n.streamed}} {
			// 100 records every 10 ms: 10,000 a second, past busyRate.
			from := time.Now()
			for range 30 {
				c.count.Add(100)
				time.Sleep(10 * time.Millisecond)
			}
			busy := st.advisedSince(from.Add(2 * pageCheck))
			if len(busy) < 3 {
				t.Fatalf("%s: %d checks; the test needs several", c.what, len(busy))
			}
			for _, a := range busy {
				if a.random {
					t.Errorf("%s 10,000 records a second: advised random at %v", c.what, a.at.Sub(from))
				}
			}
			end := time.Now()
			time.Sleep(readQuiet - 2*pageCheck)
			for _, a := range st.advisedSince(end) {
				if a.random {
					t.Errorf("%s ended %v before: advised random, within readQuiet", c.what, a.at.Sub(end))
				}
			}
			time.Sleep(4 * pageCheck)
			if a := st.advisedSince(end); len(a) == 0 || !a[len(a)-1].random {
				t.Errorf("%s ended %v before: advised %v; want random again", c.what, time.Since(end), a)
			}
			// Slowly, 50 records a second, far below busyRate even in a
			// check's 50 ms: random throughout.
			from = time.Now()
			for range 10 {
				c.count.Add(5)
				time.Sleep(100 * time.Millisecond)
			}
			for _, a := range st.advisedSince(from) {
				if !a.random {
					t.Errorf("%s 50 records a second: advised reading around at %v", c.what, a.at.Sub(from))
				}
			}
		}
		stop()

		off := &releasingStore{Store: memstore.New(), grow: pageBudget / 4}
		n = &Node{cfg: Config{Offline: true}, st: off, log: slog.New(slog.DiscardHandler)}
		n.loaded.Store(true)
		stop = n.startReleasingPages()
		time.Sleep(2 * time.Second)
		stop()
		if len(off.calls()) == 0 {
			t.Fatal("an offline node made no check")
		}
		if a := off.advisedSince(time.Time{}); len(a) != 0 {
			t.Errorf("an offline node advised %v; want none (read around)", a)
		}
	})
}

// An export counts the records it reads as read in bulk (streamed), which
// has a daemon's store read its files around each page read meanwhile.
func TestExportCountsAsBulk(t *testing.T) {
	ctx := context.Background()
	n := startOffline(t)
	if !n.loaded.Load() {
		t.Fatal("Start returned with the states not counted as loaded: a daemon would never read a page at a time")
	}
	id, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := n.Contribute(ctx, api.ContributeParams{Commons: id, Title: fmt.Sprintf("c%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	before := n.streamed.Load()
	if err := n.Export(ctx, id, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := n.streamed.Load() - before; got != 6 {
		t.Errorf("an export of 6 records (the genesis and 5 contributions) counted %d read in bulk", got)
	}
}
