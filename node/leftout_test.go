package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// damagedRepo fills a commons on n (a badger repo in dir), closes it,
// damages on disk the records of its feed log that pick chooses (by index:
// 0 is the genesis), and marks its derived state of an earlier rules
// version, so that the next start derives the state again from the
// records. It returns the commons, the damaged records, the commons'
// status before the damage, and an export taken then (a peer's copy).
func damagedRepo(t *testing.T, dir string, n *Node, pick func(feed []store.Stored) []int) (id cid.Cid, victims []cid.Cid, want api.CommonsStatus, peer []byte) {
	t.Helper()
	id, _ = fill(t, n, 9)
	feed, err := n.st.Feed(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	if err := n.Export(t.Context(), id.String(), &car); err != nil {
		t.Fatal(err)
	}
	want = settledStatus(t, n, id)
	closeNode(t, n)
	// An open and close, so that the value log file holding the records
	// is not the newest (Open refuses a damaged newest file outright).
	onRepo(t, dir, func(*badgerstore.Store) {})
	for _, i := range pick(feed) {
		flipRecord(t, dir, feed[i].Raw)
		victims = append(victims, feed[i].CID)
	}
	writeDerived(t, dir, id, uint64(want.Records), store.Write{Key: versionKey, Value: []byte("layout 3, rules 3")})
	return id, victims, want, car.Bytes()
}

// firstContribution picks the first contribution of a fill: it has a
// review.
func firstContribution([]store.Stored) []int { return []int{1} }

// flipRecord flips a bit in the middle of raw in the store file of dir
// that holds it.
func flipRecord(t *testing.T, dir string, raw []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, f := range append(files, tables...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, raw); i >= 0 {
			b[i+len(raw)/2] ^= 0x04
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("the record is in no store file")
}

// settledStatus is commonsStatus once its state root is of every record
// (status may give the root of the records held a moment before).
func settledStatus(t *testing.T, n *Node, id cid.Cid) api.CommonsStatus {
	t.Helper()
	err := n.do(t.Context(), func() {
		if rep := n.commons[id]; rep != nil {
			rep.hashRoot()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return commonsStatus(t, n, id)
}

func commonsStatus(t *testing.T, n *Node, id cid.Cid) api.CommonsStatus {
	t.Helper()
	st, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Commons {
		if c.ID == id.String() {
			c.Peers = 0
			return c
		}
	}
	t.Fatalf("commons %s not in the status", id)
	return api.CommonsStatus{}
}

// checkViews checks what n shows of commons id while the records left
// out are missing (whole false) or after they came back (whole true): the
// API's feed and an export answer, without the records left out or with
// them; a contribution among them is listed or not; the counts by type add
// up to the records.
func checkViews(t *testing.T, n *Node, id cid.Cid, victims []cid.Cid, whole bool, when string) {
	t.Helper()
	ctx := t.Context()
	items, err := n.Feed(ctx, api.FeedQuery{Commons: id.String(), Limit: 1000})
	if err != nil {
		t.Fatalf("%s: the feed: %v", when, err)
	}
	var paged []api.FeedItem // a page of one at a time
	for {
		since := uint64(0)
		if len(paged) > 0 {
			since = paged[len(paged)-1].Cursor
		}
		page, err := n.Feed(ctx, api.FeedQuery{Commons: id.String(), Since: since, Limit: 1})
		if err != nil {
			t.Fatalf("%s: the feed, since %d: %v", when, since, err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
	}
	if len(paged) != len(items) {
		t.Errorf("%s: the feed a record at a time has %d records; all at once, %d", when, len(paged), len(items))
	}
	var car bytes.Buffer
	if err := n.Export(ctx, id.String(), &car); err != nil {
		t.Fatalf("%s: export: %v", when, err)
	}
	page, err := n.Contributions(ctx, api.ContributionQuery{Commons: id.String(), Limit: 1000})
	if err != nil {
		t.Fatalf("%s: contributions: %v", when, err)
	}
	for _, v := range victims {
		inFeed := slices.ContainsFunc(items, func(it api.FeedItem) bool { return it.CID == v.String() })
		inCAR := slices.ContainsFunc(carCIDs(t, car.Bytes()), v.Equals)
		if inFeed != whole || inCAR != whole {
			t.Errorf("%s: record %s in the feed %v, in an export %v; want %v", when, v, inFeed, inCAR, whole)
		}
		info, err := n.Show(ctx, v.String())
		if whole && err != nil {
			t.Errorf("%s: show %s: %v", when, v, err)
		}
		if whole && info.Type == string(protocol.TypeContribution) && !slices.ContainsFunc(page.Contributions, func(c api.ContributionItem) bool { return c.CID == v.String() }) {
			t.Errorf("%s: contribution %s is not listed", when, v)
		}
	}
	var total uint64
	n.feeds.Counts(func(c cid.Cid, m map[protocol.Type]uint64) {
		if c.Equals(id) {
			for _, k := range m {
				total += k
			}
		}
	})
	if st := commonsStatus(t, n, id); int(total) != st.Records || len(items) != st.Records {
		t.Errorf("%s: %d records by type, %d in the feed; the commons holds %d", when, total, len(items), st.Records)
	}
}

// carCIDs returns the CIDs of the blocks of a CAR file.
func carCIDs(t *testing.T, car []byte) []cid.Cid {
	t.Helper()
	br, err := carv2.NewBlockReader(bytes.NewReader(car))
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, blk.Cid())
	}
}

// awaitRows waits until the rows of the records taken back are stored:
// the feed lists contributions from the stored rows, which the save after
// the records' commit writes.
func awaitRows(t *testing.T, n *Node, cs *countingStore, id cid.Cid, victims []cid.Cid) {
	t.Helper()
	for {
		page, err := n.Contributions(t.Context(), api.ContributionQuery{Commons: id.String(), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		missing := false
		for _, v := range victims {
			info, err := n.Show(t.Context(), v.String())
			if err == nil && info.Type == string(protocol.TypeContribution) &&
				!slices.ContainsFunc(page.Contributions, func(c api.ContributionItem) bool { return c.CID == v.String() }) {
				missing = true
			}
		}
		if !missing {
			return
		}
		waitSave(t, cs)
	}
}

// TestDamagedRecordLeftOutThenMended: a record damaged in the store no
// longer stops a start that derives the state again: it is left out, and
// named in the log at that start and the next, and the feed, an export and
// the contributions answer without it. When a whole copy of it comes
// (here a peer's export, imported; sync brings it the same way, the
// record being missing), the store writes it in place of the damaged
// bytes and the node applies it: the commons is as it was, in every view,
// and a restart says nothing more of it.
func TestDamagedRecordLeftOutThenMended(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, victims, want, peer := damagedRepo(t, dir, n, firstContribution)
	victim := victims[0]

	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	if !strings.Contains(log.String(), "a stored record is damaged: it is left out") || !strings.Contains(log.String(), victim.String()) {
		t.Errorf("the start did not name the record left out:\n%s", log.String())
	}
	got := settledStatus(t, n, id)
	if got.Records != want.Records-1 || got.Waiting != want.Waiting+1 || got.StateRoot == want.StateRoot || got.LeftOut != 1 {
		t.Errorf("with the record left out: %+v; want one record fewer, its review waiting (before: %+v)", got, want)
	}
	checkViews(t, n, id, victims, false, "left out")
	closeNode(t, n)

	log = logBuffer{}
	n, cs := startRepo(t, dir, key, &log)
	if !strings.Contains(log.String(), "stored records are damaged or dropped, and left out") || !strings.Contains(log.String(), victim.String()) {
		t.Errorf("the next start did not name the record still left out:\n%s", log.String())
	}
	rep, err := n.Import(t.Context(), bytes.NewReader(peer), false)
	if err != nil || rep.Imported != 1 {
		t.Fatalf("import of the peer's copy: %+v, %v; want the damaged record taken in", rep, err)
	}
	if !strings.Contains(log.String(), "came again, whole") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("taking the record back was not logged, or an error was:\n%s", log.String())
	}
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after the peer's copy: %+v; want %+v", got, want)
	}
	if raw, err := n.st.GetRecord(t.Context(), victim); err != nil || !bytes.Contains(peer, raw) {
		t.Errorf("the record is not whole in the store again: %v", err)
	}
	awaitRows(t, n, cs, id, victims)
	checkViews(t, n, id, victims, true, "taken back")
	closeNode(t, n)

	log = logBuffer{}
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if strings.Contains(log.String(), "left out") {
		t.Errorf("a start after the mend still speaks of a record left out:\n%s", log.String())
	}
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after a restart: %+v; want %+v", got, want)
	}
	checkViews(t, n, id, victims, true, "after a restart")
}

// TestDamagedRecordsWherever: damaged records side by side, the last of
// the feed, the genesis, and all together, are left out and taken back
// alike, and every view answers meanwhile and after.
func TestDamagedRecordsWherever(t *testing.T) {
	for _, tc := range []struct {
		name string
		pick func(feed []store.Stored) []int
	}{
		{"side by side", func([]store.Stored) []int { return []int{3, 4} }},
		{"last", func(f []store.Stored) []int { return []int{len(f) - 1} }},
		{"genesis", func([]store.Stored) []int { return []int{0} }},
		{"all of these", func(f []store.Stored) []int { return []int{0, 1, 2, len(f) - 1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, key := t.TempDir(), testKey(t)
			n, _ := startRepo(t, dir, key, nil)
			id, victims, want, peer := damagedRepo(t, dir, n, tc.pick)
			var log logBuffer
			n, cs := startRepo(t, dir, key, &log)
			defer func() { closeNode(t, n) }()
			if got := commonsStatus(t, n, id); got.Records != want.Records-len(victims) || got.LeftOut != len(victims) {
				t.Errorf("left out: %d records, %d left out; want %d, %d", got.Records, got.LeftOut, want.Records-len(victims), len(victims))
			}
			for _, v := range victims {
				if !strings.Contains(log.String(), v.String()) {
					t.Errorf("record %s left out is not named in the log:\n%s", v, log.String())
				}
			}
			if !slices.Contains(victims, id) { // without its genesis, the commons shows no view
				checkViews(t, n, id, victims, false, "left out")
			}
			// Saves failing, the taken back records' rows stay in memory
			// for a while: the feed pages show them all the same.
			cs.failDerived.Store(true)
			if _, err := n.Import(t.Context(), bytes.NewReader(peer), false); err != nil {
				t.Fatal(err)
			}
			checkFeedPages(t, n, id)
			cs.failDerived.Store(false)
			if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
				t.Errorf("taken back: %+v; want %+v", got, want)
			}
			awaitRows(t, n, cs, id, victims)
			checkViews(t, n, id, victims, true, "taken back")
			checkFeedPages(t, n, id)
			closeNode(t, n)
			log = logBuffer{}
			n, _ = startRepo(t, dir, key, &log)
			if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) || strings.Contains(log.String(), "level=WARN") {
				t.Errorf("after a restart: %+v; want %+v; log:\n%s", got, want, log.String())
			}
		})
	}
}

// TestTakenBackWhileClosing: a record taken back while the node closes
// (the loop finishes the commits in flight after the node's context is
// cancelled) is applied as at any other time, without an error.
func TestTakenBackWhileClosing(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _, want, peer := damagedRepo(t, dir, n, firstContribution)
	n, _ = startRepo(t, dir, key, nil)
	closeNode(t, n) // left out, its mark saved
	st, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateStore{Store: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
	var log logBuffer
	n, err = New(Config{Offline: true, Store: g, Key: key, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = n.Import(context.Background(), bytes.NewReader(peer), false) }()
	<-g.entered // the committer stores the peer's copy
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	<-n.ctx.Done()
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("taking a record back while closing logged an error:\n%s", log.String())
	}
	log = logBuffer{}
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) || strings.Contains(log.String(), "left out") {
		t.Errorf("after a restart: %+v; want %+v; log:\n%s", got, want, log.String())
	}
}

// gateStore holds its first PutRecords call until released.
type gateStore struct {
	store.Store
	entered, release chan struct{}
	once             sync.Once
}

func (g *gateStore) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	g.once.Do(func() {
		g.entered <- struct{}{}
		<-g.release
	})
	return g.Store.PutRecords(ctx, es)
}

// TestDamagedRecordRepairedWhileStopped: a record left out as damaged,
// then written again while the node was stopped (commons repo repair
// --from), is applied at the next start.
func TestDamagedRecordRepairedWhileStopped(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, victims, want, peer := damagedRepo(t, dir, n, firstContribution)
	n, _ = startRepo(t, dir, key, nil)
	closeNode(t, n)
	onRepo(t, dir, func(st *badgerstore.Store) {
		rep, err := repo.Repair(t.Context(), st, bytes.NewReader(peer))
		if err != nil || rep.RepairedTotal != 1 || rep.Repaired[0] != victims[0].String() {
			t.Fatalf("repair from the peer's copy: %+v, %v", rep, err)
		}
	})
	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if !strings.Contains(log.String(), "whole again in the store: applied") {
		t.Errorf("the start did not say it applied the repaired record:\n%s", log.String())
	}
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after the repair: %+v; want %+v", got, want)
	}
	checkViews(t, n, id, victims, true, "repaired while stopped")
}

// TestDamagedRecordsAfterACrash: the derived state was last saved before
// the last records (a crash), and three of those are damaged: the start
// that applies them again leaves those out and starts; their copies come,
// and the save after them fails (the disk, or a crash again), so the marks
// stay; the next start applies the records the store now holds whole, and
// the commons is whole.
func TestDamagedRecordsAfterACrash(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 9)
	waitSaved(t, cs, id)
	applied, err := cs.Applied(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	cs.failDerived.Store(true)
	more(t, n, id, 6)
	feed, err := n.st.Feed(t.Context(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := settledStatus(t, n, id)
	var car bytes.Buffer
	if err := n.Export(t.Context(), id.String(), &car); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err == nil {
		t.Fatal("the derived state was saved at close; want the last records unsaved")
	}
	onRepo(t, dir, func(*badgerstore.Store) {})
	victims := []store.Stored{feed[applied], feed[applied+1], feed[len(feed)-1]} // after the save: the first two, and the last
	for _, v := range victims {
		flipRecord(t, dir, v.Raw)
	}

	n, cs = startRepo(t, dir, key, nil)
	if got := commonsStatus(t, n, id); got.Records != want.Records-len(victims) {
		t.Errorf("after the crash: %d records; want %d, the damaged ones left out", got.Records, want.Records-len(victims))
	}
	cs.failDerived.Store(true)
	if _, err := n.Import(t.Context(), bytes.NewReader(car.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	_ = n.Close() // the save fails

	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after the failed save and a start: %+v; want %+v\n%s", got, want, log.String())
	}
	var cids []cid.Cid
	for _, v := range victims {
		cids = append(cids, v.CID)
	}
	checkViews(t, n, id, cids, true, "after the failed save and a start")
}

// TestLeftOutMarkDamaged: a mark of a record left out that does not
// decode is damage of the derived state, like any other: the start
// derives the state again from the records.
func TestLeftOutMarkDamaged(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, _ := fill(t, n, 3)
	want := settledStatus(t, n, id)
	closeNode(t, n)
	writeDerived(t, dir, id, uint64(want.Records), store.Write{Key: leftOutKey(id), Value: []byte{1, 2, 3}})
	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	defer closeNode(t, n)
	if !strings.Contains(log.String(), "deriving it again") {
		t.Errorf("the start did not derive the state again:\n%s", log.String())
	}
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("derived again: %+v; want %+v", got, want)
	}
}

// TestManyRepairedRecordsAppliedInChunks: a start reads the marks of the
// records left out, and applies those mended, a chunk at a time
// (leftOutChunk), saving each before it reads the next: with chunks of
// two, four records repaired while the node was stopped are applied, the
// commons is whole, and no mark is left.
func TestManyRepairedRecordsAppliedInChunks(t *testing.T) {
	defer func(was int) { leftOutChunk = was }(leftOutChunk)
	leftOutChunk = 2
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	pick := func(f []store.Stored) []int { return []int{1, 2, 3, len(f) - 1} }
	id, victims, want, peer := damagedRepo(t, dir, n, pick)
	n, _ = startRepo(t, dir, key, nil)
	if got := commonsStatus(t, n, id); got.LeftOut != len(victims) {
		t.Fatalf("%d records left out, want %d", got.LeftOut, len(victims))
	}
	closeNode(t, n)
	onRepo(t, dir, func(st *badgerstore.Store) {
		rep, err := repo.Repair(t.Context(), st, bytes.NewReader(peer))
		if err != nil || rep.RepairedTotal != len(victims) {
			t.Fatalf("repair from the peer's copy: %+v, %v", rep, err)
		}
	})
	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	if !strings.Contains(log.String(), fmt.Sprintf("whole again in the store: applied\" component=node commons=%s records=%d", id, len(victims))) {
		t.Errorf("the start did not say it applied the %d repaired records:\n%s", len(victims), log.String())
	}
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("after the repair: %+v; want %+v", got, want)
	}
	checkViews(t, n, id, victims, true, "repaired while stopped")
	closeNode(t, n)
	onRepo(t, dir, func(st *badgerstore.Store) {
		marks := 0
		if err := st.ScanDerived(t.Context(), id, []byte{prefixLeftOut}, nil, func(k, v []byte) error { marks++; return nil }); err != nil {
			t.Fatal(err)
		}
		if marks != 0 {
			t.Errorf("%d marks left after the records were applied", marks)
		}
	})
}
