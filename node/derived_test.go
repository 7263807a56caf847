package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
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

// countingStore counts the feed-log pages read, and fails CommitDerived
// while failDerived is set.
type countingStore struct {
	store.Store
	feedReads   atomic.Int64
	trieScans   atomic.Int64 // scans of the root trie's record keys
	failDerived atomic.Bool
	entryGets   atomic.Int64 // reads, one by one, of the state's entries
	saves       chan error   // the saves' outcomes, for a test to wait on
}

func (s *countingStore) Feed(ctx context.Context, c cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	s.feedReads.Add(1)
	return s.Store.Feed(ctx, c, after, limit)
}

func (s *countingStore) ScanDerived(ctx context.Context, c cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error {
	if bytes.HasPrefix(prefix, []byte{prefixCRDT, 'r'}) {
		s.trieScans.Add(1)
	}
	return s.Store.ScanDerived(ctx, c, prefix, from, fn)
}

func (s *countingStore) GetDerived(ctx context.Context, c cid.Cid, key []byte) ([]byte, error) {
	if bytes.HasPrefix(key, []byte{prefixCRDT, 'e'}) {
		s.entryGets.Add(1)
	}
	return s.Store.GetDerived(ctx, c, key)
}

func (s *countingStore) CommitDerived(ctx context.Context, ds []store.Derived) error {
	if s.failDerived.Load() {
		return errors.New("disk full (test)")
	}
	return s.Store.CommitDerived(ctx, ds)
}

// logBuffer is a logger whose lines a test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startRepo starts a node with key on the badger repo in dir, through a
// countingStore, logging to log if it is not nil.
func startRepo(t *testing.T, dir string, key crypto.PrivKey, log *logBuffer) (*Node, *countingStore) {
	t.Helper()
	return startRepoWith(t, dir, key, log, nil)
}

// startRepoWith is startRepo, with the config changed by set (if not nil).
func startRepoWith(t *testing.T, dir string, key crypto.PrivKey, log *logBuffer, set func(*Config)) (*Node, *countingStore) {
	t.Helper()
	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st, saves: make(chan error, 64)}
	cfg := Config{Offline: true, Store: cs, Key: key}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	if set != nil {
		set(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.savedHook = func(err error) {
		select {
		case cs.saves <- err:
		default: // full: a waiter finds it so and looks again
		}
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n, cs
}

// commonsView is what a user sees of a commons: its status (records,
// root, counts), every feed event, and each contribution's status.
func commonsView(t *testing.T, n *Node, id cid.Cid, cons []string) string {
	t.Helper()
	ctx := t.Context()
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := n.Subscribe(ctx, id.String(), "", feed.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	evs := drain(t, sub)
	sub.Close()
	var shows []api.RecordInfo
	for _, c := range cons {
		r, err := n.Show(ctx, c)
		if err != nil {
			t.Fatalf("show %s: %v", c, err)
		}
		shows = append(shows, r)
	}
	b, err := json.Marshal([]any{st.Commons, evs, shows})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// viewDiff shows where two commons views first differ, with some context.
func viewDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(i-300, 0)
	return fmt.Sprintf("views differ at byte %d of %d/%d:\n got …%s\nwant …%s",
		i, len(got), len(want), got[from:min(i+300, len(got))], want[from:min(i+300, len(want))])
}

// fill founds a commons on n and adds contributions and reviews.
func fill(t *testing.T, n *Node, rounds int) (cid.Cid, []string) {
	t.Helper()
	id := foundTestCommons(t, n, n.Self())
	return id, more(t, n, id, rounds)
}

func more(t *testing.T, n *Node, id cid.Cid, rounds int) []string {
	t.Helper()
	ctx := t.Context()
	var cons []string
	for i := range rounds {
		c := must[string](t)(n.Contribute(ctx, api.ContributeParams{Commons: id.String(), Title: "c" + string(rune('a'+i%26))}))
		cons = append(cons, c)
		if i%3 != 2 {
			d := "accept"
			if i%3 == 1 {
				d = "reject"
			}
			must[api.Published](t)(n.Review(ctx, api.ReviewParams{Target: c, Decision: d}))
		}
	}
	return cons
}

// onRepo opens the badger repo in dir (no node on it), runs fn on its
// store, and closes it.
func onRepo(t *testing.T, dir string, fn func(st *badgerstore.Store)) {
	t.Helper()
	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fn(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeDerived commits ws to the derived state of commons id in the
// badger repo in dir (no node on it), as reflecting its records through
// cursor applied.
func writeDerived(t *testing.T, dir string, id cid.Cid, applied uint64, ws ...store.Write) {
	t.Helper()
	onRepo(t, dir, func(st *badgerstore.Store) {
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	})
}

// closeNode closes n, failing t on an error.
func closeNode(t *testing.T, n *Node) {
	t.Helper()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStartReadsDerivedState: a restart reads the derived state and the
// feed from the store and merges no record again (no feed-log page read),
// and shows the commons exactly as before.
func TestStartReadsDerivedState(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 30)
	before := commonsView(t, n, id, cons)
	closeNode(t, n)

	var log logBuffer
	n, cs := startRepo(t, dir, key, &log)
	if r := cs.feedReads.Load(); r != 0 {
		t.Errorf("start read %d feed-log pages; want none: the derived state is stored", r)
	}
	if strings.Contains(log.String(), "applying the records") || strings.Contains(log.String(), "deriving the state") {
		t.Errorf("start derived records again:\n%s", log.String())
	}
	if after := commonsView(t, n, id, cons); after != before {
		t.Fatalf("after restart: %s", viewDiff(after, before))
	}
	// And it goes on from there as if it had never stopped.
	cons = append(cons, more(t, n, id, 5)...)
	want := commonsView(t, n, id, cons)
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("after a second restart: %s", viewDiff(got, want))
	}
}

// unsavedRepo fills a repo in dir with records of a commons whose derived
// state is stored for the first of them only, as when the disk filled or
// the process died between a batch's two commits, and returns the
// commons, its contributions and what a user saw of it before it closed.
func unsavedRepo(t *testing.T, dir string, key crypto.PrivKey) (cid.Cid, []string, string) {
	t.Helper()
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 12)
	waitSaved(t, cs, id)
	cs.failDerived.Store(true)
	cons = append(cons, more(t, n, id, 12)...)
	want := commonsView(t, n, id, cons)
	if err := n.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("close with the derived state unsaved: %v; want the save's error", err)
	}
	return id, cons, want
}

// TestStartAppliesRecordsAfterDerivedState: records stored whose derived
// state was not (the disk filled, or the process died, between the two
// commits) are applied at the next start, and the commons is as if the
// derived state had been stored all along.
func TestStartAppliesRecordsAfterDerivedState(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	id, cons, want := unsavedRepo(t, dir, key)
	var applied, head uint64
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, _ = st.Applied(t.Context(), id)
		head, _ = st.FeedHead(t.Context(), id)
	})
	if applied == 0 || applied >= head {
		t.Fatalf("derived state at %d of %d records: want part of them", applied, head)
	}

	var log logBuffer
	n, _ := startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if !strings.Contains(log.String(), "applying the records stored after the derived state") {
		t.Errorf("start did not say it applied the records after the derived state:\n%s", log.String())
	}
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("after restart: %s", viewDiff(got, want))
	}
}

// TestStartOnAFullDiskAppliesRecordsAfterDerivedState: when the disk
// filled between a batch's records and its derived state, a start on the
// still full disk applies those records, holding what they imply in memory,
// and answers reads (a command run on the repo); once the disk has room it
// saves it. A full derivation on a full disk is refused instead: it would
// hold the whole commons in memory.
func TestStartOnAFullDiskAppliesRecordsAfterDerivedState(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	id, cons, want := unsavedRepo(t, dir, key)
	var free atomic.Uint64
	free.Store(1 << 20)
	full := func(c *Config) {
		c.FreeSpace = func() (uint64, error) { return free.Load(), nil }
		c.DiskMargin = 64 << 20
	}
	n, cs := startRepoWith(t, dir, key, nil, full)
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("started on a full disk: %s", viewDiff(got, want))
	}
	var applied, head uint64
	applied, _ = cs.Applied(t.Context(), id)
	head, _ = cs.FeedHead(t.Context(), id)
	if applied >= head {
		t.Fatalf("derived state stored through %d of %d records on a full disk: the test checks nothing", applied, head)
	}
	free.Store(1 << 30)
	if err := n.Close(); err != nil {
		t.Fatalf("close once the disk has room: %v", err)
	}
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, _ = st.Applied(t.Context(), id)
	})
	if applied != head {
		t.Fatalf("after the disk had room: derived state through %d of %d records", applied, head)
	}

	// A derived state of an earlier version, derived again on a full
	// disk: held in memory while it stays under the bound, refused,
	// saying why, above it.
	onRepo(t, dir, func(st *badgerstore.Store) {
		if err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: head, Writes: []store.Write{{Key: versionKey, Value: []byte("layout 1, rules 1")}}}}); err != nil {
			t.Fatal(err)
		}
	})
	free.Store(1 << 20)
	n, _ = startRepoWith(t, dir, key, nil, full)
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("derived again on a full disk: %s", viewDiff(got, want))
	}
	if err := n.Close(); !errors.Is(err, api.ErrDiskFull) {
		t.Fatalf("close on a full disk, the state derived again unsaved: %v; want ErrDiskFull", err)
	}
	defer func(was uint64) { replayUnsavedMax = was }(replayUnsavedMax)
	replayUnsavedMax = head / 2
	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Offline: true, Store: st, Key: key}
	full(&cfg)
	if n, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); !errors.Is(err, api.ErrDiskFull) {
		t.Fatalf("a derivation of %d records on a full disk, holding at most %d: %v; want ErrDiskFull", head, replayUnsavedMax, err)
	}
	_ = n.Close()
}

// TestStartDerivesRepoWithoutDerivedState: a repo written before the
// derived state was stored (records and feed log only) is derived once,
// saying so, and then starts from its derived state.
func TestStartDerivesRepoWithoutDerivedState(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 20)
	want := commonsView(t, n, id, cons)
	closeNode(t, n)
	onRepo(t, dir, func(st *badgerstore.Store) {
		if err := (&Node{st: st}).dropDerived(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	})

	var log logBuffer
	n, cs = startRepo(t, dir, key, &log)
	if !strings.Contains(log.String(), "deriving the state of a commons from its records") {
		t.Errorf("start did not say it derives the state:\n%s", log.String())
	}
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("derived: %s", viewDiff(got, want))
	}
	closeNode(t, n)
	n, cs = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if r := cs.feedReads.Load(); r != 0 {
		t.Errorf("the next start read %d feed-log pages; want none", r)
	}
}

// TestStartRederivesOtherVersion: a derived state written under another
// layout or other authority rules is dropped and derived again.
func TestStartRederivesOtherVersion(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 9)
	want := commonsView(t, n, id, cons)
	closeNode(t, n)
	// A stale layout, and a status that layout got wrong.
	writeDerived(t, dir, id, 100,
		store.Write{Key: versionKey, Value: []byte("layout 0, rules 1")},
		store.Write{Key: []byte{prefixCRDT, 's'}, Value: []byte{1, 1, 1, 1, 1, 1, 1}})
	var log logBuffer
	n, cs = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if !strings.Contains(log.String(), "written by an earlier version") {
		t.Errorf("start did not say the derived state is stale:\n%s", log.String())
	}
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("re-derived: %s", viewDiff(got, want))
	}
	_ = cs
}

// TestDamagedDerivedStateDerivedAgain: an entry of the derived state, or
// a row of the stored feed, is read only when something needs it (a start
// reads neither): a read that finds it damaged fails naming it, the node
// marks the commons' state damaged and stops, and the next start says so
// and derives the state again from the records, rather than answer
// without it.
func TestDamagedDerivedStateDerivedAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(c cid.Cid) []byte // the damaged key, for the first contribution c
		says func(c cid.Cid) string // what the error and the log name
		read func(n *Node, id, c cid.Cid) error
	}{
		{"state entry", func(c cid.Cid) []byte { return append([]byte{prefixCRDT, 'e'}, c.Bytes()...) }, cid.Cid.String,
			func(n *Node, _, c cid.Cid) error {
				_, err := n.Show(t.Context(), c.String())
				return err
			}},
		{"feed row", func(cid.Cid) []byte { return binary.BigEndian.AppendUint64([]byte{prefixFeed, 'c'}, 2) },
			func(cid.Cid) string { return "contribution row 630000000000000002" },
			func(n *Node, id, _ cid.Cid) error {
				sub, err := n.Subscribe(t.Context(), id.String(), "", feed.EventFilter{})
				if err != nil {
					return err
				}
				defer sub.Close()
				_, err = sub.Next(t.Context(), 100)
				return err
			}},
		{"feed summary row", func(cid.Cid) []byte { return append([]byte{prefixFeed}, feed.SummaryKey(2)...) },
			func(cid.Cid) string { return "summary row 650000000000000002" },
			func(n *Node, id, _ cid.Cid) error {
				_, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Limit: 10})
				return err
			}},
		{"contribution row of a feed page", func(cid.Cid) []byte { return binary.BigEndian.AppendUint64([]byte{prefixFeed, 'c'}, 2) },
			func(cid.Cid) string { return "contribution row 630000000000000002" },
			func(n *Node, id, _ cid.Cid) error {
				_, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Limit: 10})
				return err
			}},
		{"status row of a feed page", func(cid.Cid) []byte { return binary.BigEndian.AppendUint64([]byte{prefixFeed, 't'}, 2) },
			func(cid.Cid) string { return "status row 740000000000000002" },
			func(n *Node, id, _ cid.Cid) error {
				_, err := n.Feed(t.Context(), api.FeedQuery{Commons: id.String(), Limit: 10})
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, key := t.TempDir(), testKey(t)
			n, _ := startRepo(t, dir, key, nil)
			id, cons := fill(t, n, 3)
			want := commonsView(t, n, id, cons)
			closeNode(t, n)
			c, _ := cid.Decode(cons[0])
			onRepo(t, dir, func(st *badgerstore.Store) {
				applied, _ := st.Applied(t.Context(), id)
				err := st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: []store.Write{
					{Key: tc.key(c), Value: []byte{1, 9, 9}},
				}}})
				if err != nil {
					t.Fatal(err)
				}
			})
			var log logBuffer
			n, _ = startRepo(t, dir, key, &log)
			err := tc.read(n, id, c)
			if !errors.Is(err, crdt.ErrDamaged) && !errors.Is(err, feed.ErrDamaged) || !strings.Contains(err.Error(), tc.says(c)) {
				t.Fatalf("a read of the damaged state: %v; want ErrDamaged naming %s", err, tc.says(c))
			}
			if l := log.String(); !strings.Contains(l, "is damaged: the next start derives it again") {
				t.Errorf("the node did not say the damaged state is derived again at the next start:\n%s", l)
			}
			_ = n.Close() // it may have stopped: the read failed
			log = logBuffer{}
			n, _ = startRepo(t, dir, key, &log)
			defer closeNode(t, n)
			if l := log.String(); !strings.Contains(l, "was found damaged: deriving it again") || !strings.Contains(l, tc.says(c)) {
				t.Errorf("start did not say what is damaged (%s):\n%s", tc.says(c), l)
			}
			if got := commonsView(t, n, id, cons); got != want {
				t.Fatalf("derived again: %s", viewDiff(got, want))
			}
		})
	}
}

// TestNewerDerivedStateRefused: a derived state written by a newer
// version is not dropped: the start fails, saying to run a newer commons.
func TestNewerDerivedStateRefused(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 1)
	closeNode(t, n)
	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	applied, _ := st.Applied(t.Context(), id)
	newer := fmt.Sprintf("layout %d, rules %d", derivedLayout+1, crdt.RulesVersion)
	err = st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: []store.Write{{Key: versionKey, Value: []byte(newer)}}}})
	if err != nil {
		t.Fatal(err)
	}
	n, err = New(Config{Offline: true, Store: st, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(t.Context())
	_ = n.Close()
	if !errors.Is(err, ErrStoreFormat) || !strings.Contains(err.Error(), "run a newer commons") {
		t.Fatalf("start on a derived state of %q: %v; want ErrStoreFormat, saying to run a newer commons", newer, err)
	}
	st, err = badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, _ := st.GetDerived(t.Context(), id, versionKey); string(v) != newer {
		t.Fatalf("the refused derived state's version became %q", v)
	}
}

// waitSaved waits until the derived state of commons id reflects every
// record stored: the saves run on the committer, after the requests that
// stored the records were answered.
func waitSaved(t *testing.T, cs *countingStore, id cid.Cid) {
	t.Helper()
	for {
		applied, err := cs.Applied(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		head, err := cs.FeedHead(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if applied == head {
			return
		}
		waitSave(t, cs)
	}
}

// waitSave waits for the node's next save and returns its error.
func waitSave(t *testing.T, cs *countingStore) error {
	t.Helper()
	select {
	case err := <-cs.saves:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no save within 10 s")
		return nil
	}
}

// TestFailedSaveRetried: saves that fail keep what they carried, and the
// next one that succeeds stores it with what came after, in order; a
// restart then reads a derived state equal to the live one, and replays
// nothing.
func TestFailedSaveRetried(t *testing.T) {
	defer func(d time.Duration) { saveRetryDelay = d }(saveRetryDelay)
	saveRetryDelay = 20 * time.Millisecond
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, cons := fill(t, n, 6)
	waitSaved(t, cs, id)
	cs.failDerived.Store(true)
	cons = append(cons, more(t, n, id, 9)...)
	for waitSave(t, cs) == nil {
	}
	cons = append(cons, more(t, n, id, 3)...)
	cs.failDerived.Store(false)
	cons = append(cons, more(t, n, id, 4)...)
	waitSaved(t, cs, id)
	want := commonsView(t, n, id, cons)
	closeNode(t, n)

	var log logBuffer
	n, cs = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if r := cs.feedReads.Load(); r != 0 {
		t.Errorf("start read %d feed-log pages; want none", r)
	}
	if got := commonsView(t, n, id, cons); got != want {
		t.Fatalf("after restart: %s", viewDiff(got, want))
	}
}

// flakyStore stores records and then says it failed (failPut), and fails
// to read the feed log (failFeed): a commit that failed halfway, whose
// stored records the node cannot find.
type flakyStore struct {
	store.Store
	failPut, failFeed atomic.Bool
}

func (s *flakyStore) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	cs, err := s.Store.PutRecords(ctx, es)
	if err == nil && s.failPut.Load() {
		return nil, errors.New("i/o error after the write (test)")
	}
	return cs, err
}

func (s *flakyStore) Feed(ctx context.Context, c cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	if s.failFeed.Load() {
		return nil, errors.New("i/o error (test)")
	}
	return s.Store.Feed(ctx, c, after, limit)
}

// TestStoredUnappliedRecordAfterRestart: a record that a failed commit
// stored all the same, and that the node could not find in its feed log,
// is not applied; a save after it would say it is. The node stops, saying
// why, and the restart applies it: the commons then holds every record of
// its feed log.
func TestStoredUnappliedRecordAfterRestart(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	var log logBuffer
	start := func() (*Node, *flakyStore) {
		st, err := badgerstore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		fs := &flakyStore{Store: st}
		n, err := New(Config{Offline: true, Store: fs, Key: key, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return n, fs
	}
	n, fs := start()
	id, _ := fill(t, n, 2)
	fs.failPut.Store(true)
	fs.failFeed.Store(true)
	if _, err := n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: "lost"}); err == nil {
		t.Fatal("contribute: the commit did not fail")
	}
	<-n.stopped
	if !strings.Contains(log.String(), "restart it to apply them") {
		t.Errorf("the node did not say why it stopped:\n%s", log.String())
	}
	fs.failPut.Store(false)
	fs.failFeed.Store(false)
	closeNode(t, n)

	n, fs = start()
	defer closeNode(t, n)
	head, err := fs.FeedHead(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Commons {
		if c.ID == id.String() && uint64(c.Records) != head {
			t.Fatalf("after restart the commons holds %d records; its feed log %d", c.Records, head)
		}
	}
	more(t, n, id, 2) // and it goes on
}

// TestBusyNodeDefersHashing: while batches keep coming, the node does not
// hash the trie leaves they change after each save (an import would read
// every changed leaf again after each batch); it waits for a pause.
func TestBusyNodeDefersHashing(t *testing.T) {
	defer func(d time.Duration) { idleHashDelay = d }(idleHashDelay)
	idleHashDelay = time.Hour
	n, cs := startRepo(t, t.TempDir(), testKey(t), nil)
	defer closeNode(t, n)
	id, _ := fill(t, n, 40)
	waitSaved(t, cs, id)
	var pending int
	if err := n.do(t.Context(), func() { pending = len(n.toHash) }); err != nil {
		t.Fatal(err)
	}
	if s := cs.trieScans.Load(); s != 0 {
		t.Errorf("a busy node read %d trie leaves' records to hash them; want none before a pause", s)
	}
	if pending != 1 {
		t.Errorf("%d commons wait to be hashed; want 1", pending)
	}
}

// TestCloseStoresTrieHashes: a node closed before it paused (a short
// import) hashes the trie leaves that changed as it closes, so that the
// first status after a restart reads no leaf's records.
func TestCloseStoresTrieHashes(t *testing.T) {
	defer func(d time.Duration) { idleHashDelay = d }(idleHashDelay)
	idleHashDelay = time.Hour
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 40)
	closeNode(t, n)
	n, cs := startRepo(t, dir, key, nil)
	got, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s := cs.trieScans.Load(); s != 0 {
		t.Errorf("the first status after a restart read %d trie leaves' records; want none: their hashes were stored at close", s)
	}
	closeNode(t, n)
	// The root the records give, derived again from them.
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, err := st.Applied(t.Context(), id)
		if err == nil {
			err = st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied,
				Writes: []store.Write{{Key: versionKey, Value: fmt.Appendf(nil, "layout 1, rules %d", crdt.RulesVersion)}}}})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	want, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Commons[0].StateRoot != want.Commons[0].StateRoot {
		t.Fatalf("root from the hashes stored at close %s, derived again from the records %s", got.Commons[0].StateRoot, want.Commons[0].StateRoot)
	}
}

// TestCloseStoresStartSnapshot: a node closed cleanly stores a start
// snapshot of each state, which the next start reads instead of the
// leaves of the trie and the index; the first records saved after it
// delete it (a crash then leaves none to mislead the next start), and the
// next clean close stores a new one. Each start gives the root the
// records give.
func TestCloseStoresStartSnapshot(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 40)
	closeNode(t, n)
	check := func(n *Node, wantSnapshot bool) string {
		t.Helper()
		var from bool
		var root string
		if err := n.do(t.Context(), func() {
			rep := n.commons[id]
			from, root = rep.state.FromSnapshot(), rep.state.Root().String()
		}); err != nil {
			t.Fatal(err)
		}
		if from != wantSnapshot {
			t.Fatalf("started from a snapshot: %v; want %v", from, wantSnapshot)
		}
		return root
	}
	snapshotHead := append([]byte{prefixCRDT, 'S'}, 0, 0, 0, 0)
	held := func(cs *countingStore) bool {
		v, err := cs.GetDerived(t.Context(), id, snapshotHead)
		if err != nil {
			t.Fatal(err)
		}
		return v != nil
	}
	n, cs := startRepo(t, dir, key, nil)
	root := check(n, true)
	if !held(cs) {
		t.Fatal("no snapshot in the store after a clean close")
	}
	more(t, n, id, 3)
	waitSaved(t, cs, id)
	if held(cs) {
		t.Fatal("the snapshot is still in the store after new records were saved")
	}
	var root2 string
	if err := n.do(t.Context(), func() { root2 = n.commons[id].state.Root().String() }); err != nil {
		t.Fatal(err)
	}
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)
	if got := check(n, true); got != root2 || got == root {
		t.Fatalf("root from the second snapshot %s; before the close %s (and before the new records %s)", got, root2, root)
	}
	closeNode(t, n)
	// The root the records give, derived again from them.
	onRepo(t, dir, func(st *badgerstore.Store) {
		applied, err := st.Applied(t.Context(), id)
		if err == nil {
			err = st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied,
				Writes: []store.Write{{Key: versionKey, Value: fmt.Appendf(nil, "layout 1, rules %d", crdt.RulesVersion)}}}})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if got := check(n, false); got != root2 {
		t.Fatalf("root derived again from the records %s; from the snapshot %s", got, root2)
	}
}

// TestCloseAfterStatusStoresStartSnapshot: after a crash the trie leaves
// saved since the last pause have no hash stored, and there is no start
// snapshot. A start, a status (which hashes those leaves) and a clean
// stop with no new record store both.
func TestCloseAfterStatusStoresStartSnapshot(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 40)
	closeNode(t, n)
	snapshotHead := append([]byte{prefixCRDT, 'S'}, 0, 0, 0, 0)
	crashed(t, dir, id)
	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	if _, err := n.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	closeNode(t, n)
	n, cs := startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	var from bool
	if err := n.do(t.Context(), func() { from = n.commons[id].state.FromSnapshot() }); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !from || cs.trieScans.Load() != 0 || strings.Contains(log.String(), "no start snapshot") {
		t.Fatalf("after a status and a clean stop: started from a snapshot %v, %d trie leaves read for the root; want true and 0\n%s", from, cs.trieScans.Load(), log.String())
	}
	if v, err := cs.GetDerived(t.Context(), id, snapshotHead); err != nil || v == nil {
		t.Fatalf("no snapshot head in the store: %v", err)
	}
}

// crashed leaves the repo in dir as a crash can: the trie leaves of
// commons id with no hash stored, and no start snapshot.
func crashed(t *testing.T, dir string, id cid.Cid) {
	t.Helper()
	onRepo(t, dir, func(st *badgerstore.Store) {
		var ws []store.Write
		err := st.ScanDerived(t.Context(), id, []byte{prefixCRDT}, nil, func(k, v []byte) error {
			switch k[1] {
			case 'k':
				count, _ := binary.Uvarint(v)
				ws = append(ws, store.Write{Key: bytes.Clone(k), Value: binary.AppendUvarint(nil, count)})
			case 'S':
				ws = append(ws, store.Write{Key: bytes.Clone(k), Delete: true})
			}
			return nil
		})
		applied, err2 := st.Applied(t.Context(), id)
		if err == nil {
			err = err2
		}
		if err == nil {
			err = st.CommitDerived(t.Context(), []store.Derived{{Commons: id, Applied: applied, Writes: ws}})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestCloseHashesTrieWithinBound: a clean stop with no status since a
// crash hashes the trie for the snapshot when that reads at most
// closeHashLeaves leaves (the next start's status then reads none), and
// leaves it be when it would read more (a stop is not made to read the
// leaves of millions of records; the next status reads them).
func TestCloseHashesTrieWithinBound(t *testing.T) {
	defer func(n int) { closeHashLeaves = n }(closeHashLeaves)
	for _, bound := range []int{4096, 0} {
		t.Run(fmt.Sprint("bound ", bound), func(t *testing.T) {
			closeHashLeaves = bound
			dir, key := t.TempDir(), testKey(t)
			n, _ := startRepo(t, dir, key, nil)
			id, _ := fill(t, n, 40)
			closeNode(t, n)
			crashed(t, dir, id)
			n, cs := startRepo(t, dir, key, nil)
			closeNode(t, n)
			atClose := cs.trieScans.Load()
			n, cs = startRepo(t, dir, key, nil)
			defer closeNode(t, n)
			if _, err := n.Status(t.Context()); err != nil {
				t.Fatal(err)
			}
			afterStart := cs.trieScans.Load()
			if hashed := bound > 0; hashed != (atClose > 0) || hashed != (afterStart == 0) {
				t.Fatalf("bound %d: %d trie leaves read at the stop, %d by the next start's status; want the stop to read them: %v", bound, atClose, afterStart, hashed)
			}
		})
	}
}

// TestIdleNodeStoresTrieHashes: once the node is idle it hashes the root
// trie's leaves that changed and stores their hashes, so that the first
// status after a restart reads no leaf's records.
func TestIdleNodeStoresTrieHashes(t *testing.T) {
	defer func(d time.Duration) { idleHashDelay = d }(idleHashDelay)
	idleHashDelay = 20 * time.Millisecond
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 40)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var idle bool
		if err := n.do(t.Context(), func() {
			rep := n.commons[id]
			idle = len(n.toHash) == 0 && rep.unsaved.empty() && !n.savingNow && !rep.state.TrieUnsaved()
		}); err != nil {
			t.Fatal(err)
		}
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node did not hash and store its trie within 10 s of idling")
		}
		select { // a save, or the pause before the hashing
		case <-cs.saves:
		case <-time.After(idleHashDelay):
		}
	}
	want, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closeNode(t, n)
	n, cs = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	got, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Commons[0].StateRoot != want.Commons[0].StateRoot {
		t.Fatalf("root after restart %s, want %s", got.Commons[0].StateRoot, want.Commons[0].StateRoot)
	}
	if s := cs.trieScans.Load(); s != 0 {
		t.Errorf("the first status after a restart read %d trie leaves' records; want none: their hashes were stored", s)
	}
}
