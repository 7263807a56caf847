package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
	"github.com/commons-p2p/commons/testnet/gen"
)

// startOn starts an offline node on st; the caller closes it.
func startOn(t *testing.T, st store.Store) *Node {
	t.Helper()
	n, err := New(Config{Offline: true, Store: st, Key: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

// foundTestCommons founds a commons named x under the MIT licence on n,
// with the maintainers given, and returns its ID.
func foundTestCommons(t *testing.T, n *Node, maintainers ...protocol.PublicKey) cid.Cid {
	t.Helper()
	s, err := n.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT"), Maintainers: maintainers})
	if err != nil {
		t.Fatal(err)
	}
	id, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// slowDisk is a store whose group commits wait until the test lets them
// through, as a slow fsync would.
type slowDisk struct {
	store.Store
	entered chan int      // a commit of so many entries started
	release chan struct{} // lets one commit through
	fail    error         // if set, what a commit returns
}

func (d *slowDisk) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	d.entered <- len(es)
	select {
	case <-d.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.fail != nil {
		return nil, d.fail
	}
	return d.Store.PutRecords(ctx, es)
}

// The event loop does not wait for the disk: while a group commit is
// stuck, the node still answers reads, and the records being committed are
// acknowledged only once the commit is done, then visible at once. Records
// that arrive meanwhile form the next batch.
func TestCommitOffTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		disk := &slowDisk{Store: memstore.New(), entered: make(chan int, 4), release: make(chan struct{})}
		n := startOn(t, disk)
		defer n.Close()
		ctx := t.Context()

		created := make(chan error, 1)
		go func() {
			_, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("Slow disk"), Licence: ptr("MIT")})
			created <- err
		}()
		if k := <-disk.entered; k != 1 {
			t.Fatalf("first commit of %d records, want 1", k)
		}
		synctest.Wait()
		select {
		case err := <-created:
			t.Fatalf("manifest acknowledged before its commit finished (err %v)", err)
		default:
		}
		// The loop answers while the commit waits.
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatalf("status during a commit: %v", err)
		}
		if len(st.Commons) != 1 || st.Commons[0].Records != 0 {
			t.Fatalf("status during the commit: %+v; want the commons joined, its genesis not yet applied", st.Commons)
		}
		disk.release <- struct{}{}
		if err := <-created; err != nil {
			t.Fatal(err)
		}
		st, err = n.Status(ctx)
		if err != nil || len(st.Commons) != 1 || st.Commons[0].Records != 1 {
			t.Fatalf("after the commit: %+v, %v; want the genesis applied", st, err)
		}
		if got := n.stored.Load(); got != 1 {
			t.Fatalf("the node counts %d records stored; want 1 (a daemon's releases read it)", got)
		}

		// A failed commit is an error for its requests, and nothing of it
		// is applied.
		disk.fail = errors.New("disk full")
		go func() { disk.release <- struct{}{} }()
		_, err = n.Contribute(ctx, api.ContributeParams{Commons: st.Commons[0].ID, Title: "lost"})
		<-disk.entered
		if !errors.Is(err, disk.fail) {
			t.Fatalf("contribute on a failing disk: %v, want the disk's error", err)
		}
		st, err = n.Status(ctx)
		if err != nil || st.Commons[0].Records != 1 {
			t.Fatalf("after a failed commit: %+v, %v; want only the genesis", st, err)
		}
		if got := n.stored.Load(); got != 1 {
			t.Fatalf("after a failed commit, the node counts %d records stored; want 1", got)
		}
	})
}

// keepOpen is a store whose Close does nothing, so a second node can
// reopen it (a restart).
type keepOpen struct{ store.Store }

func (keepOpen) Close() error { return nil }

// contribBlock signs a contribution to commons id on n's loop, without
// storing it.
func contribBlock(t *testing.T, n *Node, id cid.Cid, title string) *protocol.Block {
	t.Helper()
	blk, err := n.sign(t.Context(), func() (*protocol.Record, error) {
		rep := n.commons[id]
		headCID, _ := rep.state.Head()
		return &protocol.Record{Commons: id, Body: &protocol.Contribution{
			Title: title, Kind: "code", Licence: protocol.Link{Cid: headCID}, Provenance: protocol.ProvenanceVolunteer,
		}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return blk
}

// A record left out of a batch because an earlier batch carries it is not
// reported stored when that earlier batch fails: the second request fails
// too, not Publish's success for a record neither stored nor applied.
func TestFailedCommitFailsCarriedRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		disk := &slowDisk{Store: memstore.New(), entered: make(chan int, 4), release: make(chan struct{})}
		n := startOn(t, disk)
		defer n.Close()
		ctx := t.Context()
		go func() { disk.release <- struct{}{} }()
		idStr, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT")})
		<-disk.entered
		if err != nil {
			t.Fatal(err)
		}
		id, _ := cid.Decode(idStr)
		blk := contribBlock(t, n, id, "c")

		first := make(chan error, 1)
		go func() { first <- n.commit(ctx, blk, false) }()
		<-disk.entered // batch 1 with the committer
		second := make(chan error, 1)
		var pub api.Published
		go func() {
			var err error
			pub, err = n.Publish(ctx, blk.Raw, false)
			second <- err
		}()
		synctest.Wait() // batch 2 prepared: blk is in flight, so left out
		disk.fail = errors.New("disk full")
		disk.release <- struct{}{}
		if err := <-first; err == nil {
			t.Fatal("first request: want the disk's error")
		}
		err2 := <-second
		has, _ := disk.Store.HasRecord(ctx, blk.CID)
		var inState bool
		_ = n.do(ctx, func() { inState = n.commons[id].state.Has(blk.CID) })
		if has || inState {
			t.Fatalf("the failed commit stored %s (stored %v, applied %v)", blk.CID, has, inState)
		}
		if err2 == nil {
			t.Errorf("Publish acknowledged %s (%+v), but it is not stored", blk.CID, pub)
		}
	})
}

// prefixDisk stores only the first entry of its next commit, then fails
// (a multi-transaction group commit that fails after its first
// transaction, which store.Store's PutRecords allows).
type prefixDisk struct {
	store.Store
	failOnce bool
}

func (d *prefixDisk) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	if d.failOnce && len(es) > 1 {
		d.failOnce = false
		if _, err := d.Store.PutRecords(ctx, es[:1]); err != nil {
			return nil, err
		}
		return nil, errors.New("disk full after the first transaction")
	}
	return d.Store.PutRecords(ctx, es)
}

// A commit that fails after storing a prefix (which store.Store allows)
// has that prefix applied at once, at its cursors: when the records come
// again, the rest is added, and the live feed, the contributions index and
// a restart all agree.
func TestPartialCommitApplied(t *testing.T) {
	mem := memstore.New()
	disk := &prefixDisk{Store: keepOpen{mem}}
	n := startOn(t, disk)
	ctx := t.Context()
	id := foundTestCommons(t, n)
	c1, c2 := contribBlock(t, n, id, "one"), contribBlock(t, n, id, "two")

	sub := n.feeds.Subscribe(id, feed.Pos{Cursor: 1}, feed.EventFilter{})
	defer sub.Close()

	disk.failOnce = true
	if _, err := n.ingest(ctx, []*protocol.Block{c1, c2}, false); err == nil {
		t.Fatal("want the partial commit's error")
	}
	has1, _ := mem.HasRecord(ctx, c1.CID)
	var applied1 bool
	_ = n.do(ctx, func() { applied1 = n.commons[id].state.Has(c1.CID) })
	if !has1 || !applied1 {
		t.Fatalf("after the failed commit: the stored prefix is stored %v, applied %v; want both", has1, applied1)
	}

	// The same records come again (a peer's sync, a retry).
	res, err := n.ingest(ctx, []*protocol.Block{c1, c2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.added[0] || !res.added[1] {
		t.Errorf("retry: added %v, want only the second record", res.added)
	}

	titles := func(n *Node) []string {
		var out []string
		cs, err := n.feeds.Contributions(ctx, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			out = append(out, c.CID.String())
		}
		return out
	}
	var records int
	_ = n.do(ctx, func() { records = n.commons[id].state.Len() })
	live := titles(n)
	if records != 3 || len(live) != 2 {
		t.Errorf("live: state holds %d records, contributions index %v; want 3 and both", records, live)
	}

	var frames int
	for !sub.CaughtUp(sub.Head()) {
		fr, err := sub.Next(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		frames += len(fr)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	m, err := New(Config{Offline: true, Store: keepOpen{mem}, Key: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	restarted := titles(m)
	if !slices.Equal(live, restarted) {
		t.Errorf("contributions live %v, after restart %v", live, restarted)
	}
	if frames != 2 {
		t.Errorf("live subscriber got %d events after the genesis, want 2 (one per contribution)", frames)
	}
}

// addReplicaFails fails AddCommons for every commons but the first.
type addReplicaFails struct {
	store.Store
	added int
}

func (d *addReplicaFails) AddCommons(ctx context.Context, id cid.Cid) error {
	d.added++
	if d.added > 1 {
		return errors.New("disk full")
	}
	return d.Store.AddCommons(ctx, id)
}

// A request whose commons cannot be replicated fails whole: the blocks
// before the one that failed are not stored either.
func TestJoinFailureStoresNothingOfTheRequest(t *testing.T) {
	disk := &addReplicaFails{Store: memstore.New()}
	n := startOn(t, disk)
	defer n.Close()
	ctx := t.Context()
	id := foundTestCommons(t, n)
	c := contribBlock(t, n, id, "kept")
	// Another genesis, of a commons not joined yet.
	other, err := n.sign(ctx, func() (*protocol.Record, error) {
		m, err := n.genesis(api.ManifestParams{Name: ptr("y"), Licence: ptr("MIT")})
		return &protocol.Record{Body: m}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.ingest(ctx, []*protocol.Block{c, other}, true)
	var applied bool
	_ = n.do(ctx, func() { applied = n.commons[id].state.Has(c.CID) })
	t.Logf("ingest err=%v; first block applied=%v", err, applied)
	if err != nil && applied {
		t.Errorf("request failed (%v) but its first block was stored and applied", err)
	}
}

// storedThenSlow stores a commit's records, then waits for the test before
// returning (the fsync still running, or the batch waiting in committed).
type storedThenSlow struct {
	store.Store
	hold    bool
	entered chan struct{}
	release chan struct{}
}

func (d *storedThenSlow) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	cur, err := d.Store.PutRecords(ctx, es)
	if d.hold {
		d.entered <- struct{}{}
		<-d.release
	}
	return cur, err
}

// A feed page lists only applied records: a batch the store holds but the
// loop has not applied yet is not on it (Show would not find it).
func TestFeedPageStopsAtApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		disk := &storedThenSlow{Store: memstore.New(), entered: make(chan struct{}), release: make(chan struct{})}
		n := startOn(t, disk)
		defer n.Close()
		ctx := t.Context()
		idStr, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT")})
		if err != nil {
			t.Fatal(err)
		}
		disk.hold = true
		done := make(chan error, 1)
		go func() {
			_, err := n.Contribute(ctx, api.ContributeParams{Commons: idStr, Title: "early"})
			done <- err
		}()
		<-disk.entered
		items, err := n.Feed(ctx, api.FeedQuery{Commons: idStr})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 {
			t.Errorf("feed page during the commit: %d items, want the genesis alone", len(items))
		}
		for _, it := range items {
			if _, serr := n.Show(ctx, it.CID); serr != nil {
				t.Errorf("feed lists %s, Show says %v", it.CID, serr)
			}
		}
		disk.hold = false
		disk.release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if items, err := n.Feed(ctx, api.FeedQuery{Commons: idStr}); err != nil || len(items) != 2 {
			t.Errorf("feed page after the commit: %d items, %v; want 2", len(items), err)
		}
	})
}

// Close while a batch is with the committer and another waits: Close
// waits for the commit, and each request hears its real outcome (success
// for what was stored), not "closed" for a record that is stored.
func TestCloseAnswersCommitsTruly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memstore.New()
		disk := &storedThenSlow{Store: keepOpen{mem}, entered: make(chan struct{}), release: make(chan struct{})}
		n := startOn(t, disk)
		ctx := t.Context()
		idStr, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT")})
		if err != nil {
			t.Fatal(err)
		}
		disk.hold = true
		errs := make(chan error, 3)
		for i := range 3 {
			go func() {
				_, err := n.Contribute(ctx, api.ContributeParams{Commons: idStr, Title: fmt.Sprint("c", i)})
				errs <- err
			}()
		}
		<-disk.entered
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- n.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned while the committer was inside PutRecords: %v", err)
		default:
		}
		disk.hold = false
		disk.release <- struct{}{}
		if err := <-closed; err != nil {
			t.Errorf("close: %v", err)
		}
		ok := 0
		for range 3 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case !errors.Is(err, api.ErrClosed):
				t.Errorf("contribute: %v, want success or api.ErrClosed", err)
			}
		}
		id, _ := cid.Decode(idStr)
		head, _ := mem.FeedHead(context.Background(), id)
		if int(head) != 1+ok {
			t.Errorf("%d records stored after Close, but %d contributions acknowledged (plus the genesis)", head, ok)
		}
		if ok == 0 {
			t.Error("no contribution acknowledged, though the committer held one when Close began")
		}
	})
}

// A genesis whose commit fails leaves no commons joined, in memory or in
// the store.
func TestFailedGenesisJoinsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := memstore.New()
		disk := &slowDisk{Store: keepOpen{mem}, entered: make(chan int, 4), release: make(chan struct{}), fail: errors.New("disk full")}
		n := startOn(t, disk)
		defer n.Close()
		go func() { <-disk.entered; disk.release <- struct{}{} }()
		_, err := n.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT")})
		if !errors.Is(err, disk.fail) {
			t.Fatalf("create on a failing disk: %v, want the disk's error", err)
		}
		st, _ := n.Status(t.Context())
		ids, _ := mem.Commons(t.Context())
		if len(ids) > 0 || len(st.Commons) > 0 {
			t.Errorf("failed genesis left commons joined: stored %v, status %+v", ids, st.Commons)
		}
	})
}

// failAfter is a store whose group commits fail after the first ok ones.
type failAfter struct {
	store.Store
	ok int
}

func (d *failAfter) PutRecords(ctx context.Context, es []store.Entry) ([]uint64, error) {
	if d.ok == 0 {
		return nil, errors.New("disk full")
	}
	d.ok--
	return d.Store.PutRecords(ctx, es)
}

// An import streams: a CAR larger than a batch is verified and stored in
// batches, in order, and a store that fails part way ends the import with
// its error, keeping the batches stored before, without hanging.
func TestImportStreamsAndStopsOnError(t *testing.T) {
	g, err := gen.Generate(gen.Options{Records: 12 * importBatch, Authors: 20, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	car, err := g.CAR()
	if err != nil {
		t.Fatal(err)
	}
	n := startOn(t, memstore.New())
	defer n.Close()
	rep, err := n.Import(t.Context(), bytes.NewReader(car), true)
	if err != nil || rep.Imported != len(g.Records) || len(rep.Rejected) != 0 {
		t.Fatalf("import: %+v, %v; want every record", rep, err)
	}
	st, err := n.Status(t.Context())
	if err != nil || st.Commons[0].Records != len(g.Records) {
		t.Fatalf("status after import: %+v, %v", st, err)
	}

	// An import has several batches with the committer at once, which
	// commits those waiting together: the second commit fails.
	disk := &failAfter{Store: memstore.New(), ok: 1}
	m := startOn(t, disk)
	defer m.Close()
	rep, err = m.Import(t.Context(), bytes.NewReader(car), true)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("import on a failing disk: %v, want its error", err)
	}
	st, serr := m.Status(t.Context())
	if serr != nil || len(st.Commons) != 1 || st.Commons[0].Records != rep.Imported || rep.Imported == 0 || rep.Imported >= len(g.Records) {
		t.Fatalf("after the failure: %+v, report %+v; want what the report counts stored, some but not all", st.Commons, rep)
	}
}

// A store records its format: a new one gets this version's; one written
// by a newer version is refused at start with a clear error, and nothing
// in it is touched; a damaged format value is named.
func TestStoreFormat(t *testing.T) {
	mem := memstore.New()
	n := startOn(t, keepOpen{mem})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := mem.GetMeta(t.Context(), formatKey); err != nil || string(v) != strconv.Itoa(StoreFormat) {
		t.Fatalf("format recorded %q, %v; want %d", v, err, StoreFormat)
	}
	for _, tc := range []struct {
		value string
		is    error
		says  string
	}{
		{strconv.Itoa(StoreFormat + 1), ErrStoreFormat, "run a newer commons"},
		{"two", nil, "not a version number"},
	} {
		if err := mem.PutMeta(t.Context(), formatKey, []byte(tc.value)); err != nil {
			t.Fatal(err)
		}
		m, err := New(Config{Offline: true, Store: keepOpen{mem}, Key: testKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		err = m.Start(t.Context())
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("start on format %q: %v; want an error saying %q", tc.value, err, tc.says)
		}
		_ = m.Close()
		if v, _ := mem.GetMeta(t.Context(), formatKey); string(v) != tc.value {
			t.Errorf("the refused store's format became %q", v)
		}
	}
}
