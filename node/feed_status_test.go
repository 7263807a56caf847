package node

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// reviewAs has n review contribution c with decision d.
func reviewAs(t *testing.T, n *Node, c, d string) {
	t.Helper()
	must[api.Published](t)(n.Review(t.Context(), api.ReviewParams{Target: c, Decision: d}))
}

// statusOf returns contribution c's status in commons id's state.
func statusOf(t *testing.T, n *Node, id cid.Cid, c string) crdt.Status {
	t.Helper()
	var st crdt.Status
	if err := n.do(t.Context(), func() { st, _ = n.commons[id].state.Status(must[cid.Cid](t)(cid.Decode(c))) }); err != nil {
		t.Fatal(err)
	}
	return st
}

// entryGetsFor returns how many of the state's entries were read from the
// store one by one while a feed page of commons id, from cursor since,
// was read.
func entryGetsFor(t *testing.T, n *Node, cs *countingStore, id cid.Cid, since uint64) int64 {
	t.Helper()
	before := cs.entryGets.Load()
	if _, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Since: since, Limit: 100}); err != nil {
		t.Fatal(err)
	}
	return cs.entryGets.Load() - before
}

// checkRowStatuses checks that the feed's rows give the status of each of
// commons id's contributions after StatusesFrom, as the state gives it:
// that a page needs not ask the state.
func checkRowStatuses(t *testing.T, n *Node, id cid.Cid) {
	t.Helper()
	from, _ := n.feeds.StatusesFrom(id)
	cursors, cons := feedContributions(t, n, id, from)
	if len(cons) == 0 {
		t.Fatal("no contribution to read the status of")
	}
	got, err := n.feeds.Statuses(t.Context(), id, cursors, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cons {
		if want := statusOf(t, n, id, c); got[i] != want {
			t.Errorf("the rows give contribution %s (cursor %d) status %q; the state, %q", c, cursors[i], got[i], want)
		}
	}
}

// TestFeedStatusesFromRows: a feed page gives each contribution's status
// now, as the state gives it, from the feed's rows: as reviews move the
// statuses of earlier contributions again and again, before and after a
// save, with saves failing (the statuses set since are in memory), and
// after a restart, when a page reads no entry of the state.
func TestFeedStatusesFromRows(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 6)
	reviewAs(t, n, cons[2], "accept")  // pending, accepted
	reviewAs(t, n, cons[0], "reject")  // accepted, rejected
	reviewAs(t, n, cons[1], "retract") // rejected, pending
	for c, want := range map[int]crdt.Status{0: crdt.StatusRejected, 1: crdt.StatusPending, 2: crdt.StatusAccepted} {
		if got := statusOf(t, n, id, cons[c]); got != want {
			t.Fatalf("contribution %d is %s, want %s: the test does not move statuses as it means to", c, got, want)
		}
	}
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)

	cs.failDerived.Store(true)
	reviewAs(t, n, cons[0], "accept")
	reviewAs(t, n, cons[2], "retract")
	more(t, n, id, 2)
	reviewAs(t, n, cons[0], "retract")
	if got := statusOf(t, n, id, cons[2]); got != crdt.StatusPending {
		t.Fatalf("contribution 2 is %s, want pending", got)
	}
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id) // the tail's statuses over the saved rows'
	cs.failDerived.Store(false)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)
	closeNode(t, n)

	n, cs = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if gets := entryGetsFor(t, n, cs, id, 0); gets != 0 {
		t.Errorf("a feed page read %d entries of the state; want its statuses read from the feed's rows", gets)
	}
	checkFeedPages(t, n, id)
}

// repoWithoutStatusRows makes a repo as a version that kept no status
// rows, and no cursor of a contribution in the state, left it: its
// commons, whose contributions' statuses its reviews moved, the
// contributions, and the cursor its state was saved through.
func repoWithoutStatusRows(t *testing.T, rounds int) (dir string, key crypto.PrivKey, id cid.Cid, cons []string, old uint64) {
	t.Helper()
	dir, key = t.TempDir(), testKey(t)
	keepPlaces = false
	t.Cleanup(func() { keepPlaces = true })
	n, cs := startRepo(t, dir, key, nil)
	id, cons = fill(t, n, rounds)
	waitSaved(t, cs, id)
	closeNode(t, n)
	keepPlaces = true
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, err := st.Applied(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		old = applied
		ws := []store.Write{{Key: statusesRowKey(), Delete: true}, {Key: versionKey, Value: []byte(derivedVersionSummaries())}}
		if err := st.ScanDerived(t.Context(), id, []byte{prefixFeed, 't'}, nil, func(k, _ []byte) error {
			ws = append(ws, store.Write{Key: append([]byte(nil), k...), Delete: true})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(ws) != 2 {
			t.Fatalf("the repo has %d status rows; without the contributions' cursors in the state, want none", len(ws)-2)
		}
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	})
	return dir, key, id, cons, old
}

// TestFeedStatusesOfARepoWithoutThem: a repo made by a version that kept
// no status rows, and no cursor of a contribution in the state, shows the
// same pages: the statuses of its contributions come from the state (its
// later changes have no cursor to write a row by), those of the
// contributions that came after from the rows, also after a restart. The
// row that says where they begin is trusted only if it was saved with the
// state as it stands.
func TestFeedStatusesOfARepoWithoutThem(t *testing.T) {
	dir, key, id, cons, old := repoWithoutStatusRows(t, 6)
	n, cs := startRepo(t, dir, key, nil)
	if from, ok := n.feeds.StatusesFrom(id); !ok || from != old {
		t.Fatalf("statuses from %d (%v) in a repo without them, of %d records; want from %d", from, ok, old, old)
	}
	if gets := entryGetsFor(t, n, cs, id, 0); gets == 0 {
		t.Errorf("a feed page of a repo without status rows read no entry of the state")
	}
	checkFeedPages(t, n, id)
	reviewAs(t, n, cons[0], "reject")
	more(t, n, id, 3)
	reviewAs(t, n, cons[5], "accept")
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	checkRowStatuses(t, n, id)
	closeNode(t, n)

	n, cs = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.StatusesFrom(id); from != old {
		t.Errorf("statuses from %d after a restart; want %d still", from, old)
	}
	if gets := entryGetsFor(t, n, cs, id, old); gets != 0 {
		t.Errorf("a feed page of the contributions added since read %d entries of the state; want their statuses from the rows", gets)
	}
	checkFeedPages(t, n, id)
	head := n.feeds.Head(id).Cursor
	closeNode(t, n)

	// A row saved with the state through an earlier cursor is not trusted.
	writeDerived(t, dir, id, head, store.Write{Key: statusesRowKey(), Value: append(make([]byte, 15), byte(old))})
	n, _ = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if from, _ := n.feeds.StatusesFrom(id); from != head {
		t.Errorf("statuses from %d after a row saved through %d, with the state through %d; want from %d", from, old, head, head)
	}
	checkFeedPages(t, n, id)
}

// checkStatusesFrom checks what the feed's rows give of the status of
// each of commons id's contributions: the state's for those after
// StatusesFrom, nothing (the state is asked) for the others.
func checkStatusesFrom(t *testing.T, n *Node, id cid.Cid) {
	t.Helper()
	from, _ := n.feeds.StatusesFrom(id)
	cursors, cons := feedContributions(t, n, id, 0)
	got, err := n.feeds.Statuses(t.Context(), id, cursors, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cons {
		want := statusOf(t, n, id, c)
		if cursors[i] <= from {
			want = ""
		}
		if got[i] != want {
			t.Errorf("statuses from %d: the rows give contribution %s (cursor %d) status %q; want %q", from, c, cursors[i], got[i], want)
		}
	}
}

// feedContributions returns the cursors and CIDs of commons id's
// contributions after cursor since, from a feed page.
func feedContributions(t *testing.T, n *Node, id cid.Cid, since uint64) ([]uint64, []string) {
	t.Helper()
	items, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Since: since, Limit: api.MaxFeedLimit})
	if err != nil {
		t.Fatal(err)
	}
	var cursors []uint64
	var cons []string
	for _, it := range items {
		if it.Type == "contribution" {
			cursors, cons = append(cursors, it.Cursor), append(cons, it.CID)
		}
	}
	return cursors, cons
}

// cursorOf returns the feed cursor of contribution c of commons id.
func cursorOf(t *testing.T, n *Node, id cid.Cid, c string) uint64 {
	t.Helper()
	cursors, cons := feedContributions(t, n, id, 0)
	if i := slices.Index(cons, c); i >= 0 {
		return cursors[i]
	}
	t.Fatalf("contribution %s is not in the feed", c)
	return 0
}

// moveStatus has n review contribution c so that its status changes.
func moveStatus(t *testing.T, n *Node, id cid.Cid, c string) crdt.Status {
	t.Helper()
	before := statusOf(t, n, id, c)
	d := "accept"
	if before == crdt.StatusAccepted {
		d = "reject"
	}
	reviewAs(t, n, c, d)
	after := statusOf(t, n, id, c)
	if after == before {
		t.Fatalf("a review %s of contribution %s left it %s", d, c, before)
	}
	return after
}

// TestPlacesForOlderContributions: the contributions of a repo made by a
// version that kept no status rows get their cursors in the state and
// their status rows, a few records a step, from the newest back. After
// each step the rows give the status of each contribution after the
// cursor the steps reached, and every page is what the records say. A
// contribution whose status a review moves after its step placed it, but
// before the step's save (which fails, and is tried again) is stored,
// keeps the review's status over the step's row. Once every step is done,
// a page reads no entry of the state, also after a restart, and a review
// of an older contribution writes its row as for any other.
func TestPlacesForOlderContributions(t *testing.T) {
	defer func(d time.Duration) { saveRetryDelay = d }(saveRetryDelay)
	saveRetryDelay = 20 * time.Millisecond
	dir, key, id, cons, old := repoWithoutStatusRows(t, 9)
	n, cs := startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if gets := entryGetsFor(t, n, cs, id, 0); gets == 0 {
		t.Fatal("a feed page of a repo without status rows read no entry of the state: nothing to place")
	}
	checkStatusesFrom(t, n, id)
	step := func(chunk int) bool {
		t.Helper()
		before, _ := n.feeds.StatusesFrom(id)
		more, err := n.placeStep(t.Context(), id, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if from, _ := n.feeds.StatusesFrom(id); from != before-min(before, uint64(chunk)) || more != (from > 0) {
			t.Fatalf("a step of %d from %d: from %d, more %v", chunk, before, from, more)
		}
		checkStatusesFrom(t, n, id)
		checkFeedPages(t, n, id)
		return more
	}
	step(4)
	step(4)

	// A step whose save fails, and a review of one of its contributions
	// before it is tried again.
	x := cons[3] // accepted: its step writes a row
	cx := cursorOf(t, n, id, x)
	from, _ := n.feeds.StatusesFrom(id)
	if cx >= from {
		t.Fatalf("contribution %s at %d, steps at %d: the test does not place it in the step it means to", x, cx, from)
	}
	cs.failDerived.Store(true)
	stepped := make(chan error, 1)
	go func() {
		_, err := n.placeStep(t.Context(), id, int(from-cx+1))
		stepped <- err
	}()
	for len(cs.saves) > 0 {
		<-cs.saves
	}
	if err := <-cs.saves; err == nil {
		t.Fatal("a save succeeded while saves fail")
	}
	placedAs := statusOf(t, n, id, x)
	if placedAs == crdt.StatusPending {
		t.Fatalf("contribution %s is pending, the status it arrived with: its step writes no row for the review to write over", x)
	}
	var rows []store.Write
	if err := n.do(t.Context(), func() { rows = slices.Clone(n.commons[id].unsaved.rows) }); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rows, func(w store.Write) bool {
		r := feed.NowRow(cx, placedAs)
		return bytes.Equal(w.Key, r.Key) && bytes.Equal(w.Value, r.Value)
	}) {
		t.Fatalf("the step's rows waiting for a save have no row of contribution %s (cursor %d) %s", x, cx, placedAs)
	}
	want := moveStatus(t, n, id, x)
	if now, _ := n.feeds.StatusesFrom(id); now != from {
		t.Fatalf("statuses from %d before the step's save is stored; want %d still", now, from)
	}
	checkStatusesFrom(t, n, id)
	checkFeedPages(t, n, id)
	cs.failDerived.Store(false)
	if err := <-stepped; err != nil {
		t.Fatal(err)
	}
	if now, _ := n.feeds.StatusesFrom(id); now != cx-1 {
		t.Fatalf("statuses from %d after the step's save; want %d", now, cx-1)
	}
	if got, err := n.feeds.Statuses(t.Context(), id, []uint64{cx}, nil); err != nil || got[0] != want {
		t.Fatalf("the rows give contribution %s status %q (%v) after the step and a review; want %q", x, got[0], err, want)
	}
	checkStatusesFrom(t, n, id)
	checkFeedPages(t, n, id)

	for step(3) {
	}
	if gets := entryGetsFor(t, n, cs, id, 0); gets != 0 {
		t.Errorf("a feed page read %d entries of the state once every contribution is placed; want none", gets)
	}
	// The store holds each place, stored with its step, before any later
	// save or a clean stop (a crash now loses none): a state opened from it
	// keeps the place it holds over a new one.
	stored, _, err := n.openState(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cons {
		if _, at, ok, err := stored.Place(must[cid.Cid](t)(cid.Decode(c)), 1<<40); err != nil || !ok || at != cursorOf(t, n, id, c) {
			t.Errorf("the stored state has contribution %s at %d (%v, %v); want its cursor %d", c, at, ok, err, cursorOf(t, n, id, c))
		}
	}
	closeNode(t, n)

	// The places were stored with the steps: after a restart, a review of
	// the oldest contribution writes its row.
	n, cs = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.StatusesFrom(id); from != 0 {
		t.Errorf("statuses from %d after a restart; want 0", from)
	}
	if gets := entryGetsFor(t, n, cs, id, 0); gets != 0 {
		t.Errorf("a feed page read %d entries of the state after a restart; want none", gets)
	}
	checkStatusesFrom(t, n, id)
	moveStatus(t, n, id, cons[0])
	waitSaved(t, cs, id)
	checkStatusesFrom(t, n, id)
	checkFeedPages(t, n, id)
	if old == 0 {
		t.Fatal("the repo had no records")
	}
}

// TestDaemonPlacesOlderContributions: a daemon places the contributions of
// a repo made by a version that kept no status rows in the background,
// after the summary rows, and says so.
func TestDaemonPlacesOlderContributions(t *testing.T) {
	dir, key, id, _, _ := repoWithoutStatusRows(t, 5)
	var log logBuffer
	n, cs := startRepoWith(t, dir, key, &log, func(c *Config) {
		c.Offline = false
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	})
	defer func() { closeNode(t, n) }()
	<-n.backfilled
	if from, _ := n.feeds.StatusesFrom(id); from != 0 {
		t.Errorf("statuses from %d once the daemon's backfill ended; want 0", from)
	}
	if gets := entryGetsFor(t, n, cs, id, 0); gets != 0 {
		t.Errorf("a feed page read %d entries of the state once the daemon's backfill ended; want none", gets)
	}
	checkStatusesFrom(t, n, id)
	if !strings.Contains(log.String(), "status rows written") {
		t.Errorf("the daemon's log does not say the rows were written:\n%s", log.String())
	}
}

// TestLeaveWhilePlacing: a commons left while the places of its older
// contributions wait for a save that fails (a full disk) is left once a
// save can be stored, as with any state not saved yet; the step then ends
// with no error, and a step after the leave finds the commons gone.
func TestLeaveWhilePlacing(t *testing.T) {
	defer func(d time.Duration) { saveRetryDelay = d }(saveRetryDelay)
	saveRetryDelay = 20 * time.Millisecond
	dir, key, id, _, _ := repoWithoutStatusRows(t, 4)
	n, cs := startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	cs.failDerived.Store(true)
	stepped := make(chan error, 1)
	go func() {
		_, err := n.placeStep(t.Context(), id, 3)
		stepped <- err
	}()
	for len(cs.saves) > 0 {
		<-cs.saves
	}
	if err := <-cs.saves; err == nil {
		t.Fatal("a save succeeded while saves fail")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := n.Leave(ctx, id.String(), false); err == nil {
		t.Fatal("a leave with the state not saved, and saves failing, ended at once")
	}
	var l *leave
	if err := n.do(t.Context(), func() { l = n.leaving[id] }); err != nil || l == nil {
		t.Fatalf("the leave is not under way: %v", err)
	}
	cs.failDerived.Store(false)
	// The step ends with the leave: as one to look at again, or as one
	// whose commons is gone.
	if err := <-stepped; err != nil && !errors.Is(err, errBackfillGone) {
		t.Fatalf("the step of a commons being left: %v", err)
	}
	<-l.out
	if _, err := n.placeStep(t.Context(), id, 3); !errors.Is(err, errBackfillGone) {
		t.Errorf("a step after the leave: %v; want %v", err, errBackfillGone)
	}
}

// A commons left before its rows were all written, and joined again while
// the daemon runs, gets them then, not at the next start.
func TestRejoinedCommonsGetsItsRows(t *testing.T) {
	dir, key, id, _, _ := repoWithoutStatusRows(t, 5)
	n, _ := startRepo(t, dir, key, nil)
	if from, ok := n.feeds.StatusesFrom(id); !ok || from == 0 {
		t.Fatalf("statuses from %d (%v); the test needs a commons whose contributions lack them", from, ok)
	}
	if _, err := n.Leave(t.Context(), id.String(), false); err != nil {
		t.Fatal(err)
	}
	closeNode(t, n)
	n, cs := startRepoWith(t, dir, key, nil, func(c *Config) {
		c.Offline = false
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	})
	defer func() { closeNode(t, n) }()
	<-n.backfilled
	if err := n.Join(t.Context(), id.String()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.backfillPassed:
	case <-time.After(time.Minute):
		t.Fatal("no backfill ran in the minute after the join")
	}
	if from, _ := n.feeds.StatusesFrom(id); from != 0 {
		t.Errorf("statuses from %d once the backfill after the join ended; want 0", from)
	}
	if gets := entryGetsFor(t, n, cs, id, 0); gets != 0 {
		t.Errorf("a feed page read %d entries of the state once the backfill after the join ended; want none", gets)
	}
	checkStatusesFrom(t, n, id)
}
