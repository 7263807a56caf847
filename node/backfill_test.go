package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// summaryRows returns commons id's stored summary rows, by key.
func summaryRows(t *testing.T, st store.Store, id cid.Cid) map[string][]byte {
	t.Helper()
	rows := map[string][]byte{}
	prefix := append([]byte{prefixFeed}, feed.SummaryKey(0)[:1]...)
	if err := st.ScanDerived(t.Context(), id, prefix, nil, func(k, v []byte) error {
		rows[string(k)] = slices.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// forgetSummaries deletes the summary rows of commons id in the badger
// repo in dir, and the row that says which records have them, and writes
// the version string of a version that kept none, as that version made
// the repo: it returns the rows, and the state's cursor.
func forgetSummaries(t *testing.T, dir string, id cid.Cid) (rows map[string][]byte, applied uint64) {
	t.Helper()
	onRepo(t, dir, func(st *badgerstore.Store) {
		var err error
		if applied, err = st.Applied(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		rows = summaryRows(t, st, id)
		if len(rows) < int(applied) {
			t.Fatalf("%d summary rows of %d records", len(rows), applied)
		}
		ws := []store.Write{{Key: summariesRowKey(), Delete: true}, {Key: versionKey, Value: []byte(derivedVersionBefore())}}
		for k := range rows {
			ws = append(ws, store.Write{Key: []byte(k), Delete: true})
		}
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	})
	return rows, applied
}

// savedRepo makes a badger repo, fills a commons in it with rounds of
// contributions and reviews, and closes it once its derived state is
// saved.
func savedRepo(t *testing.T, rounds int) (dir string, key crypto.PrivKey, id cid.Cid) {
	t.Helper()
	dir, key = t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, _ = fill(t, n, rounds)
	waitSaved(t, cs, id)
	closeNode(t, n)
	return dir, key, id
}

// TestBackfillSummaries: the summary rows of a repo made by a version that
// kept none are written, a few records at a time, from the newest back.
// After each step every page is what the records say, and a page of the
// records that have rows reads none whole; the rows written are those a
// save writes; records that come meanwhile, and a save failing, change
// nothing of that; the next start trusts them; a contribution whose
// contribution row is missing gets a whole row; a record whose bytes were
// dropped gets none.
func TestBackfillSummaries(t *testing.T) {
	defer func(d time.Duration) { saveRetryDelay = d }(saveRetryDelay)
	saveRetryDelay = 20 * time.Millisecond
	dir, key, id := savedRepo(t, 8)
	want, old := forgetSummaries(t, dir, id)

	n, cs := startRepo(t, dir, key, nil)
	if from, _ := n.feeds.SummariesFrom(id); from != old {
		t.Fatalf("summaries from %d in a repo without them; want %d", from, old)
	}
	steps := 0
	for {
		from, _ := n.feeds.SummariesFrom(id)
		left, err := n.backfillStep(t.Context(), id, 3)
		if err != nil {
			t.Fatalf("step %d: %v", steps, err)
		}
		now, _ := n.feeds.SummariesFrom(id)
		if steps++; now != from-min(from, 3) {
			t.Fatalf("step %d: summaries from %d after %d; want %d", steps, now, from, from-min(from, 3))
		}
		if left != (now > 0) {
			t.Fatalf("step %d: records without summaries left: %v, with summaries from %d", steps, left, now)
		}
		if !left {
			break
		}
		checkFeedPages(t, n, id)
		if r := feedReadsFor(cs, func() {
			if _, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Since: now, Limit: 100}); err != nil {
				t.Fatal(err)
			}
		}); r != 0 {
			t.Fatalf("step %d: a page of the records after %d read the feed log %d times; want their summaries read", steps, now, r)
		}
		switch steps {
		case 2:
			more(t, n, id, 2) // records come meanwhile, and are saved
			waitSaved(t, cs, id)
		case 3:
			// Saves failing (a full disk), a step waits for one that
			// stores its rows; feed pages read the records whole
			// meanwhile.
			for len(cs.saves) > 0 {
				<-cs.saves // the outcomes of the saves before
			}
			cs.failDerived.Store(true)
			stepped := make(chan error, 1)
			go func() {
				_, err := n.backfillStep(t.Context(), id, 3)
				stepped <- err
			}()
			for range 2 {
				if err := <-cs.saves; err == nil {
					t.Fatal("a save succeeded while saves fail")
				}
			}
			if again, _ := n.feeds.SummariesFrom(id); again != now {
				t.Fatalf("a step whose save failed moved the summaries to %d from %d", again, now)
			}
			checkFeedPages(t, n, id)
			cs.failDerived.Store(false)
			if err := <-stepped; err != nil {
				t.Fatalf("the step once saves succeed: %v", err)
			}
			if again, _ := n.feeds.SummariesFrom(id); again != now-min(now, 3) {
				t.Fatalf("summaries from %d once saves succeed; want %d", again, now-min(now, 3))
			}
			steps++
		}
	}
	if want := (old + 2) / 3; uint64(steps) != want {
		t.Errorf("%d steps of 3 for %d records; want %d", steps, old, want)
	}
	checkFeedPages(t, n, id)
	if r := feedReadsFor(cs, func() {
		if _, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Limit: 100}); err != nil {
			t.Fatal(err)
		}
	}); r != 0 {
		t.Errorf("a feed page read the feed log %d times after the backfill; want none", r)
	}
	got := summaryRows(t, cs, id)
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("summary row %x: backfilled %x; a save wrote %x", k, got[k], v)
		}
	}
	closeNode(t, n)

	n, _ = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.SummariesFrom(id); from != 0 {
		t.Errorf("summaries from %d after a restart; want 0", from)
	}
	checkFeedPages(t, n, id)
	closeNode(t, n)

	// A contribution without its contribution row gets a whole row, and
	// a record whose bytes were dropped none.
	rows, applied := forgetSummaries(t, dir, id)
	var contrib, dropped store.Stored
	onRepo(t, dir, func(st *badgerstore.Store) {
		page, err := st.Feed(t.Context(), id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			b, err := protocol.ParseStored(s.CID, s.Raw)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case b.Record.Type() != protocol.TypeContribution:
			case contrib.Cursor == 0:
				contrib = s
			case dropped.Cursor == 0:
				dropped = s
			}
		}
		ck := append([]byte{prefixFeed}, binary.BigEndian.AppendUint64([]byte{'c'}, contrib.Cursor)...)
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: []store.Write{{Key: ck, Delete: true}}}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.DropRecordBytes(t.Context(), []cid.Cid{dropped.CID}); err != nil {
			t.Fatal(err)
		}
	})
	// Steps of 1,000 records, whose summaries hold more than a step may:
	// the oldest go to the next step.
	defer func(b int) { backfillBytes = b }(backfillBytes)
	backfillBytes = 4 * 140
	n, cs = startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	for steps := 0; ; steps++ {
		left, err := n.backfillStep(t.Context(), id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if from, _ := n.feeds.SummariesFrom(id); steps == 0 && (from == 0 || from > applied-3) {
			t.Fatalf("summaries from %d after a step of 1,000 of %d records, with room for the summaries of 4; want a few of them written, not all", from, applied)
		}
		if !left {
			break
		}
	}
	got = summaryRows(t, cs, id)
	ck := string(append([]byte{prefixFeed}, feed.SummaryKey(contrib.Cursor)...))
	dk := string(append([]byte{prefixFeed}, feed.SummaryKey(dropped.Cursor)...))
	if v := got[ck]; len(v) == 0 || v[0] != 0 || bytes.Equal(v, rows[ck]) {
		t.Errorf("the row of a contribution without its contribution row is %x; want a whole row", v)
	}
	if v, ok := got[dk]; ok {
		t.Errorf("a record whose bytes were dropped has a summary row, %x", v)
	}
	delete(rows, ck)
	delete(rows, dk)
	delete(got, ck)
	if !maps.EqualFunc(got, rows, bytes.Equal) {
		t.Errorf("the backfilled rows differ from those a save wrote:\n%x\nwant\n%x", got, rows)
	}
	// Pages read the whole row of the contribution; its status comes from
	// the state.
	q := api.FeedQuery{Commons: id.String(), Since: contrib.Cursor - 1, Limit: 1}
	page, err := n.Feed(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if wantPage := feedFromRecords(t, n, id, q); !slices.EqualFunc(page, wantPage, sameItem) {
		t.Errorf("page %+v:\n%s\nwant\n%s", q, itemsText(page), itemsText(wantPage))
	}
}

// TestBackfillStopsAtDamage: a record damaged on disk, not left out,
// stops the backfill with an error that names it; nothing is committed,
// and the records after it keep their rows.
func TestBackfillStopsAtDamage(t *testing.T) {
	dir, key, id := savedRepo(t, 6)
	_, old := forgetSummaries(t, dir, id)
	var page []store.Stored
	onRepo(t, dir, func(st *badgerstore.Store) {
		var err error
		if page, err = st.Feed(t.Context(), id, 0, 100); err != nil {
			t.Fatal(err)
		}
	})
	onRepo(t, dir, func(*badgerstore.Store) {}) // the records' value log is not the newest
	victim := page[2]
	flipRecord(t, dir, victim.Raw)

	n, _ := startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	var stepErr error
	for steps := 0; stepErr == nil; steps++ {
		if steps > int(old) {
			t.Fatalf("%d steps of 2 records, of %d records", steps, old)
		}
		var left bool
		if left, stepErr = n.backfillStep(t.Context(), id, 2); !left && stepErr == nil {
			t.Fatal("the backfill went past a damaged record")
		}
	}
	var dmg *store.DamagedRecordError
	if !errors.As(stepErr, &dmg) || !strings.Contains(stepErr.Error(), victim.CID.String()) {
		t.Errorf("the backfill stopped with %v; want the damaged record %s named", stepErr, victim.CID)
	}
	from, _ := n.feeds.SummariesFrom(id)
	if from >= old || from < victim.Cursor {
		t.Errorf("summaries from %d, of %d records, the damaged at %d: want the rows after it, not before", from, old, victim.Cursor)
	}
}

// TestDaemonBackfills: a daemon writes the summary rows in the
// background, and says so.
func TestDaemonBackfills(t *testing.T) {
	dir, key, id := savedRepo(t, 5)
	want, _ := forgetSummaries(t, dir, id)

	var log logBuffer
	n, cs := startRepoWith(t, dir, key, &log, func(c *Config) {
		c.Offline = false
		c.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	})
	defer func() { closeNode(t, n) }()
	<-n.backfilled
	if from, _ := n.feeds.SummariesFrom(id); from != 0 {
		t.Errorf("summaries from %d once the daemon's backfill ended; want 0", from)
	}
	if got := summaryRows(t, cs, id); !maps.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("the daemon wrote %d summary rows; want the %d a save wrote", len(got), len(want))
	}
	if !strings.Contains(log.String(), "summary rows written") {
		t.Errorf("the daemon's log does not say the rows were written:\n%s", log.String())
	}
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)
	if from, _ := n.feeds.SummariesFrom(id); from != 0 {
		t.Errorf("summaries from %d after a restart; want 0", from)
	}
}

// TestLeaveDuringBackfill: a commons left while the summary rows of its
// older records wait for a save that fails (a full disk) is left all the
// same, and the backfill of it ends with no error.
func TestLeaveDuringBackfill(t *testing.T) {
	defer func(d time.Duration) { saveRetryDelay = d }(saveRetryDelay)
	saveRetryDelay = 20 * time.Millisecond
	dir, key, id := savedRepo(t, 4)
	forgetSummaries(t, dir, id)

	n, cs := startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	cs.failDerived.Store(true)
	stepped := make(chan error, 1)
	go func() {
		_, err := n.backfillStep(t.Context(), id, 3)
		stepped <- err
	}()
	for len(cs.saves) > 0 {
		<-cs.saves
	}
	if err := <-cs.saves; err == nil {
		t.Fatal("a save succeeded while saves fail")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a bound, should the leave wait for the disk
	defer cancel()
	if _, err := n.Leave(ctx, id.String(), false); err != nil {
		t.Fatalf("leave, with the backfill's rows waiting for a save: %v", err)
	}
	if err := <-stepped; err != nil {
		t.Fatalf("the step of a commons left: %v", err)
	}
	if _, err := n.backfillStep(t.Context(), id, 3); !errors.Is(err, errBackfillGone) {
		t.Errorf("a step after the leave: %v; want %v", err, errBackfillGone)
	}
}

// TestNextChunk: a step whose summaries overran their bound makes the next
// read about what it kept; steps that keep all they read grow back.
func TestNextChunk(t *testing.T) {
	for _, c := range []struct {
		chunk   int
		covered uint64
		want    int
	}{
		{backfillChunk, backfillChunk, backfillChunk},
		{backfillChunk, 128, 128},
		{backfillChunk, 3, minChunk},
		{128, 128, 256},
		{2048, 2048, backfillChunk},
		{3000, 3000, backfillChunk},
		{128, 0, 128},
	} {
		if got := nextChunk(c.chunk, c.covered); got != c.want {
			t.Errorf("nextChunk(%d, %d) = %d; want %d", c.chunk, c.covered, got, c.want)
		}
	}
}

// TestBackfillHashesNoRoot: a save that carries the backfill's rows alone
// changes no state root, and leaves none to hash.
func TestBackfillHashesNoRoot(t *testing.T) {
	defer func(d, m time.Duration) { idleHashDelay, hashDeferMax = d, m }(idleHashDelay, hashDeferMax)
	idleHashDelay, hashDeferMax = time.Hour, time.Hour // no hashing meanwhile
	dir, key, id := savedRepo(t, 4)
	forgetSummaries(t, dir, id)
	n, _ := startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	toHash := func() int {
		var k int
		if err := n.do(t.Context(), func() { k = len(n.toHash) }); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := toHash(); k != 0 {
		t.Fatalf("%d commons to hash after the start; want none", k)
	}
	before, _ := n.feeds.SummariesFrom(id)
	if _, err := n.backfillStep(t.Context(), id, 3); err != nil {
		t.Fatal(err)
	}
	if after, _ := n.feeds.SummariesFrom(id); after >= before {
		t.Fatalf("summaries from %d after a step, from %d before: the step saved no rows", after, before)
	}
	if k := toHash(); k != 0 {
		t.Errorf("%d commons to hash after a save of the backfill's rows alone; want none", k)
	}
	more(t, n, id, 1)
	deadline := time.Now().Add(10 * time.Second)
	for toHash() == 0 && time.Now().Before(deadline) {
		if err := n.do(t.Context(), func() {}); err != nil { // a turn of the loop: the save commits
			t.Fatal(err)
		}
	}
	if k := toHash(); k != 1 {
		t.Errorf("%d commons to hash after records were saved; want 1", k)
	}
}
