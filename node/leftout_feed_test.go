package node

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// The last record of the log is left out as damaged; after a second start
// (the feed loaded from its rows, its head at the applied cursor, which is
// the left-out record's), a subscriber from the start must catch up and
// then wait idle for new events.
func TestSubscriberPastLeftOutLast(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _, _, _ := damagedRepo(t, dir, n, func(f []store.Stored) []int { return []int{len(f) - 1} })
	n, _ = startRepo(t, dir, key, nil) // leaves the last record out
	closeNode(t, n)
	n, cs := startRepo(t, dir, key, nil) // loads the feed from its rows
	defer closeNode(t, n)

	sub, err := n.Subscribe(t.Context(), id.String(), "", feed.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got int
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		before := cs.feedReads.Load()
		evs, err := sub.Next(ctx, 100)
		reads := cs.feedReads.Load() - before
		cancel()
		got += len(evs)
		if len(evs) == 0 {
			t.Logf("events %d; pos %v; head %v; caught up %v; feed log reads in the 300ms idle wait: %d (err %v)",
				got, sub.Pos(), sub.Head(), sub.CaughtUp(sub.Head()), reads, err)
			if reads > 10 {
				t.Errorf("an idle subscriber read the store's feed log %d times in 300ms: it spins", reads)
			}
			if !sub.CaughtUp(sub.Head()) {
				t.Errorf("the subscriber never catches up: pos %v, head %v", sub.Pos(), sub.Head())
			}
			return
		}
	}
}

// The last record of the log (a contribution) is left out at a start and
// taken back while that node runs: the contribution list must hold it
// once.
func TestTakenBackListedOnce(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, victims, _, peer := damagedRepo(t, dir, n, func(f []store.Stored) []int { return []int{len(f) - 1} })
	n, cs := startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if _, err := n.Import(t.Context(), bytes.NewReader(peer), false); err != nil {
		t.Fatal(err)
	}
	for { // the save that takes the record back: its mark is gone with it
		v, err := cs.GetDerived(t.Context(), id, leftOutKey(victims[0]))
		if err != nil {
			t.Fatal(err)
		}
		if v == nil {
			break
		}
		waitSave(t, cs)
	}
	page, err := n.Contributions(t.Context(), api.ContributionQuery{Commons: id.String(), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for _, c := range page.Contributions {
		if c.CID == victims[0].String() {
			seen++
		}
	}
	t.Logf("%d contributions listed; the one taken back %d times", len(page.Contributions), seen)
	if seen != 1 {
		t.Errorf("the contribution taken back is listed %d times", seen)
	}
	cp, err := n.feeds.Contributions(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub contributions: %d", len(cp))
}

// As above, the last record a review that changes a contribution's status:
// a subscriber replaying from the start gets each event once.
func TestTakenBackEventsOnce(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 8) // the last record: a review rejecting the last contribution
	feedLog, err := n.st.Feed(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	if err := n.Export(t.Context(), id.String(), &car); err != nil {
		t.Fatal(err)
	}
	closeNode(t, n)
	onRepo(t, dir, func(*badgerstore.Store) {})
	last := feedLog[len(feedLog)-1]
	flipRecord(t, dir, last.Raw)
	writeDerived(t, dir, id, uint64(len(feedLog)), store.Write{Key: versionKey, Value: []byte("layout 3, rules 3")})
	n, cs := startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if _, err := n.Import(t.Context(), bytes.NewReader(car.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	for {
		v, err := cs.GetDerived(t.Context(), id, leftOutKey(last.CID))
		if err != nil {
			t.Fatal(err)
		}
		if v == nil {
			break
		}
		waitSave(t, cs)
	}
	sub, err := n.Subscribe(t.Context(), id.String(), "", feed.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ids := map[string]int{}
	for !sub.CaughtUp(sub.Head()) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		evs, err := sub.Next(ctx, 100)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			line, _, _ := bytes.Cut(e, []byte("\n"))
			ids[string(line)]++
		}
	}
	for k, c := range ids {
		if c != 1 {
			t.Errorf("event %q delivered %d times", k, c)
		}
	}
	t.Logf("%d distinct events; head %v", len(ids), sub.Head())
}

// A record left out in the middle of the log, and a record stored but not
// yet applied (the moment between the committer's commit and the loop's
// apply, made here by storing it directly): a feed page stops at the
// feed's head (views.go: "Records past the feed's head are stored but not
// applied yet").
func TestFeedPageStopsAtHead(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _, _, peer := damagedRepo(t, dir, n, func([]store.Stored) []int { return []int{3} })
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)

	other := startOffline(t)
	if _, err := other.Import(t.Context(), bytes.NewReader(peer), true); err != nil {
		t.Fatal(err)
	}
	c := must[string](t)(other.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: "stored, not applied"}))
	cc, _ := cid.Decode(c)
	raw, err := other.st.GetRecord(t.Context(), cc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.st.PutRecords(t.Context(), []store.Entry{{CID: cc, Commons: id, Raw: raw}}); err != nil {
		t.Fatal(err)
	}
	items, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	head := n.feeds.Head(id).Cursor
	for _, it := range items {
		if it.Cursor > head {
			t.Errorf("the feed page holds record %s at cursor %d, past the feed's head %d (status %q)", it.CID, it.Cursor, head, it.Status)
		}
	}
}

// Records left out side by side in the middle of the log: a subscriber
// from the start catches up.
func TestSubscriberPastLeftOutMiddle(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _, _, _ := damagedRepo(t, dir, n, func(f []store.Stored) []int { return []int{3, 4} })
	n, _ = startRepo(t, dir, key, nil)
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	sub, err := n.Subscribe(t.Context(), id.String(), "", feed.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for !sub.CaughtUp(sub.Head()) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := sub.Next(ctx, 100)
		cancel()
		if err != nil {
			t.Fatalf("pos %v head %v: %v", sub.Pos(), sub.Head(), err)
		}
	}
}
