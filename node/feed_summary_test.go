package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// feedFromRecords is the page of commons id's feed that q asks for, built
// from the records' bytes (the store's feed log) and the statuses the
// state gives now: what a feed page shows, read the long way.
func feedFromRecords(t *testing.T, n *Node, id cid.Cid, q api.FeedQuery) []api.FeedItem {
	t.Helper()
	applied := n.feeds.Head(id).Cursor
	page, err := n.st.Feed(t.Context(), id, q.Since, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	items := []api.FeedItem{}
	for _, s := range page {
		if s.Cursor > applied || len(items) == q.Limit {
			break
		}
		if s.Dropped {
			continue
		}
		b, err := protocol.ParseStored(s.CID, s.Raw)
		if err != nil {
			t.Fatal(err)
		}
		e := feed.RecordEvent(id, s.Cursor, b)
		it := api.FeedItem{Cursor: e.Cursor, CID: e.CID, Type: e.Type, Author: e.Author, Commons: e.Commons, Time: e.Time,
			Title: e.Title, Target: e.Target, Decision: e.Decision}
		if b.Record.Type() == protocol.TypeContribution {
			if err := n.do(t.Context(), func() {
				if st, ok := n.commons[id].state.Status(b.CID); ok {
					it.Status = string(st)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		if q.Status == "" || it.Status == q.Status {
			items = append(items, it)
		}
	}
	return items
}

// checkFeedPages compares every page of commons id's feed, from each
// cursor, of a few sizes and with each status filter, with the page built
// from the records.
func checkFeedPages(t *testing.T, n *Node, id cid.Cid) {
	t.Helper()
	head := n.feeds.Head(id).Cursor
	for since := range head + 1 {
		for _, limit := range []int{1, 2, 5, 100} {
			for _, status := range []string{"", "pending", "accepted", "rejected"} {
				q := api.FeedQuery{Commons: id.String(), Since: since, Limit: limit, Status: status}
				got, err := n.Feed(t.Context(), q)
				if err != nil {
					t.Fatalf("feed %+v: %v", q, err)
				}
				if want := feedFromRecords(t, n, id, q); !slices.EqualFunc(got, want, sameItem) {
					t.Fatalf("feed page %+v:\n%s\nwant, from the records:\n%s", q, itemsText(got), itemsText(want))
				}
			}
		}
	}
}

func sameItem(a, b api.FeedItem) bool { return a.Time.Equal(b.Time) && itemText(a) == itemText(b) }

func itemText(it api.FeedItem) string {
	it.Time = it.Time.UTC()
	return fmt.Sprintf("%+v", it)
}

func itemsText(items []api.FeedItem) string {
	var s string
	for _, it := range items {
		s += "  " + itemText(it) + "\n"
	}
	return s
}

// feedReadsFor returns how many times the store's feed log was read while
// fn ran.
func feedReadsFor(cs *countingStore, fn func()) int64 {
	before := cs.feedReads.Load()
	fn()
	return cs.feedReads.Load() - before
}

// TestFeedPagesFromSummaries: a feed page shows what the records say, read
// from the feed's summary rows and not from the records: once saved, after
// a restart (when it reads no record), and with the rows of the records
// applied since still in memory (their save failed).
func TestFeedPagesFromSummaries(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 7)
	checkFeedPages(t, n, id)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	closeNode(t, n)

	n, cs = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if r := feedReadsFor(cs, func() {
		if _, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Limit: 100}); err != nil {
			t.Fatal(err)
		}
	}); r != 0 {
		t.Errorf("a feed page read the feed log %d times; want its summaries read instead", r)
	}
	checkFeedPages(t, n, id)
	// Saves failing, the rows of the records applied since stay in memory.
	cs.failDerived.Store(true)
	more(t, n, id, 4)
	if applied, _ := cs.Applied(t.Context(), id); applied == n.feeds.Head(id).Cursor {
		t.Fatalf("the derived state is saved through the head, %d: want records applied since", applied)
	}
	checkFeedPages(t, n, id)
	cs.failDerived.Store(false)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
}

// TestFeedPagesOfARepoWithoutSummaries: a repo made by a version that kept
// no summary rows shows the same pages: its records are read whole, and
// those that come after have rows. A version that kept none, run on the
// repo after, may change records without moving the state's cursor (drop
// a record's bytes): the next start reads every record up to there whole.
func TestFeedPagesOfARepoWithoutSummaries(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 6)
	waitSaved(t, cs, id)
	closeNode(t, n)
	var old uint64
	summariesKey := append([]byte{prefixFeed}, n.feeds.SummariesRow(id, 0).Key...)
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, err := st.Applied(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		old = applied
		ws := []store.Write{{Key: summariesKey, Delete: true}}
		prefix := append([]byte{prefixFeed}, feed.SummaryKey(0)[:1]...)
		if err := st.ScanDerived(t.Context(), id, prefix, nil, func(k, _ []byte) error {
			ws = append(ws, store.Write{Key: slices.Clone(k), Delete: true})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(ws) < int(applied) {
			t.Fatalf("%d summary rows of %d records", len(ws)-1, applied)
		}
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	})

	n, cs = startRepo(t, dir, key, nil)
	if from, ok := n.feeds.SummariesFrom(id); !ok || from != old {
		t.Fatalf("summaries from %d (%v) in a repo without them, of %d records; want from %d", from, ok, old, old)
	}
	checkFeedPages(t, n, id)
	more(t, n, id, 3)
	waitSaved(t, cs, id)
	checkFeedPages(t, n, id)
	if r := feedReadsFor(cs, func() {
		if _, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Since: old, Limit: 100}); err != nil {
			t.Fatal(err)
		}
	}); r != 0 {
		t.Errorf("a feed page of the records added since read the feed log %d times; want their summaries read", r)
	}
	closeNode(t, n)

	n, _ = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.SummariesFrom(id); from != old {
		t.Errorf("summaries from %d after a restart; want %d still", from, old)
	}
	checkFeedPages(t, n, id)
	head := n.feeds.Head(id).Cursor
	closeNode(t, n)

	// A version that kept no summaries runs on the repo: it saves its
	// state through head (its version string with it), and drops the
	// bytes of a record, which moves no cursor. The summaries row it
	// leaves says through head still: not to be trusted.
	onRepo(t, dir, func(st *badgerstore.Store) {
		page, err := st.Feed(t.Context(), id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var victim cid.Cid
		for _, s := range page {
			if b, err := protocol.ParseStored(s.CID, s.Raw); err == nil && b.Record.Type() == protocol.TypeContribution {
				victim = s.CID
			}
		}
		if _, _, err := st.DropRecordBytes(t.Context(), []cid.Cid{victim}); err != nil {
			t.Fatal(err)
		}
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: head, Writes: []store.Write{{Key: versionKey, Value: []byte(derivedVersionBefore())}}}}); err != nil {
			t.Fatal(err)
		}
	})
	n, _ = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.SummariesFrom(id); from != head {
		t.Errorf("summaries from %d after a version that kept none saved through %d; want from %d", from, head, head)
	}
	checkFeedPages(t, n, id)
	closeNode(t, n)

	// The summaries row of an older version's save through an earlier
	// cursor than the state's is not trusted either.
	writeDerived(t, dir, id, head, store.Write{Key: summariesKey, Value: append(make([]byte, 15), byte(old))})
	n, _ = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	if from, _ := n.feeds.SummariesFrom(id); from != head {
		t.Errorf("summaries from %d after an older version saved through %d; want from %d", from, head, head)
	}
	checkFeedPages(t, n, id)
}
