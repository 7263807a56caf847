package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/storetest"
)

// snapshot is what a store holds of some commons, read through its API.
type snapshot struct {
	feeds   map[cid.Cid][]store.Stored
	derived map[cid.Cid][]string // key=value, in order
	applied map[cid.Cid]uint64
}

func readSnapshot(t *testing.T, s *Store, commons []cid.Cid) snapshot {
	t.Helper()
	ctx := context.Background()
	sn := snapshot{feeds: map[cid.Cid][]store.Stored{}, derived: map[cid.Cid][]string{}, applied: map[cid.Cid]uint64{}}
	for _, c := range commons {
		feed, err := s.Feed(ctx, c, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		sn.feeds[c] = feed
		if err := s.ScanDerived(ctx, c, nil, nil, func(k, v []byte) error {
			sn.derived[c] = append(sn.derived[c], string(k)+"="+string(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if sn.applied[c], err = s.Applied(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return sn
}

func (sn snapshot) equal(o snapshot) error {
	if fmt.Sprint(sn.applied) != fmt.Sprint(o.applied) {
		return fmt.Errorf("applied %v, want %v", o.applied, sn.applied)
	}
	for c, want := range sn.feeds {
		got := o.feeds[c]
		if len(got) != len(want) {
			return fmt.Errorf("feed of %s: %d entries, want %d", c, len(got), len(want))
		}
		for i := range want {
			if got[i].Cursor != want[i].Cursor || !got[i].CID.Equals(want[i].CID) || !bytes.Equal(got[i].Raw, want[i].Raw) {
				return fmt.Errorf("feed of %s, entry %d: %d %s, want %d %s", c, i, got[i].Cursor, got[i].CID, want[i].Cursor, want[i].CID)
			}
		}
	}
	for c, want := range sn.derived {
		if got := o.derived[c]; strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("derived state of %s: %d keys, want %d (or other values)", c, len(got), len(want))
		}
	}
	return nil
}

// fillTwoCommons writes records and derived state of two commons (a value
// large enough for the value log among them) and returns them with what
// the store holds of them.
func fillTwoCommons(t *testing.T, s *Store) ([]cid.Cid, snapshot) {
	t.Helper()
	ctx := context.Background()
	commons := []cid.Cid{storetest.CommonsID("first"), storetest.CommonsID("second")}
	for i, c := range commons {
		if _, err := s.PutRecords(ctx, storetest.Entries(c, "r", 3000+i*500)); err != nil {
			t.Fatal(err)
		}
		d := store.Derived{Commons: c, Applied: uint64(3000 + i*500)}
		for k := range 2000 {
			d.Writes = append(d.Writes, store.Write{Key: fmt.Appendf(nil, "k%05d", k), Value: fmt.Appendf(nil, "v%d-%d", i, k)})
		}
		d.Writes = append(d.Writes, store.Write{Key: []byte("large"), Value: bytes.Repeat([]byte{byte(i)}, 2*valueThreshold)})
		if err := s.CommitDerived(ctx, []store.Derived{d}); err != nil {
			t.Fatal(err)
		}
	}
	sn := readSnapshot(t, s, commons)
	if len(sn.feeds[commons[1]]) != 3500 || len(sn.derived[commons[1]]) != 2001 {
		t.Fatalf("the store holds %d records and %d derived keys of the second commons: the test checks nothing", len(sn.feeds[commons[1]]), len(sn.derived[commons[1]]))
	}
	return commons, sn
}

// What toFormat1 leaves of format 2.
type leftOf2 int

const (
	noCopies    leftOf2 = iota // nothing
	sameCopies                 // its keys and IDs, as a migration cut short leaves them
	staleCopies                // those, with the first two commons' IDs swapped and a derived key more under each, as if an earlier version had changed the store since
)

// filledStore returns the directory of a closed store that fillTwoCommons
// filled, with what it returned.
func filledStore(t *testing.T) (string, []cid.Cid, snapshot) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	commons, want := fillTwoCommons(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, commons, want
}

// toFormat1 rewrites a closed store of this format as format 1 wrote it:
// every feed and derived key under its commons' CID, no IDs, version 1,
// with what left says of format 2's keys beside them.
func toFormat1(t *testing.T, dir string, left leftOf2) {
	t.Helper()
	db, err := badger.Open(options(dir, discard))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	byID := map[uint64]cid.Cid{}
	var writes, dels [][]byte
	var values [][]byte
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			switch k[0] {
			case tagID:
				v, _ := it.Item().ValueCopy(nil)
				id, err := decodeUint(v)
				if err != nil {
					return err
				}
				c, err := cid.Cast(k[1:])
				if err != nil {
					return err
				}
				byID[id] = c
				dels = append(dels, k)
			case tagFeed, tagDerived:
				v, _ := it.Item().ValueCopy(nil)
				writes, values = append(writes, k), append(values, v)
				dels = append(dels, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	for i, k := range writes {
		id, n := uvarint(k[1:])
		c, ok := byID[id]
		if !ok {
			t.Fatalf("key %x: no commons has ID %d", k, id)
		}
		tag := byte(tagFeed1)
		if k[0] == tagDerived {
			tag = tagDerived1
		}
		old := append([]byte{tag, byte(len(c.Bytes()))}, c.Bytes()...)
		if err := wb.Set(append(old, k[1+n:]...), values[i]); err != nil {
			t.Fatal(err)
		}
	}
	switch left {
	case noCopies:
		for _, k := range dels {
			if err := wb.Delete(k); err != nil {
				t.Fatal(err)
			}
		}
	case staleCopies:
		var first []uint64
		for id := range byID {
			first = append(first, id)
		}
		slices.Sort(first)
		a, b := first[0], first[1]
		for _, w := range []struct {
			c  cid.Cid
			id uint64
		}{{byID[a], b}, {byID[b], a}} {
			if err := wb.Set(idKey(w.c), encodeUint(w.id)); err != nil {
				t.Fatal(err)
			}
			if err := wb.Set(append(commonsPrefix(tagDerived, w.id), "stale"...), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wb.Set(versionKey(), []byte(formatVersion1)); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(writes) == 0 {
		t.Fatal("no feed or derived key to rewrite: the test checks nothing")
	}
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i, c := range b {
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, i + 1
		}
	}
	return 0, 0
}

// countTags counts the store's keys by their first byte.
func countTags(t *testing.T, s *Store) map[byte]int {
	t.Helper()
	n := map[byte]int{}
	if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n[it.Item().Key()[0]]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOpenMovesAFormat1Store: a store of format 1 opens with every feed
// entry, derived key and applied cursor it held, in format 2, with no
// format 1 key left, and takes records and derived state after it: the
// same, whether the migration ran whole or after one that a crash cut
// short (its copies and IDs left beside the format 1 keys).
func TestOpenMovesAFormat1Store(t *testing.T) {
	for _, tc := range []struct {
		partial bool
		others  int // commons given IDs before the two: from 128 on, an ID takes two bytes
	}{{false, 0}, {true, 0}, {false, 130}, {true, 130}} {
		partial := tc.partial
		t.Run(fmt.Sprintf("partial=%v,others=%d", tc.partial, tc.others), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.others {
				if _, err := s.giveID(storetest.CommonsID(fmt.Sprint("other ", i))); err != nil {
					t.Fatal(err)
				}
			}
			commons, want := fillTwoCommons(t, s)
			if tc.others > 0 {
				if id := s.id(commons[1]); id < 128 {
					t.Fatalf("the second commons' ID is %d: the test checks no two-byte ID", id)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			left := noCopies
			if partial {
				left = staleCopies
			}
			toFormat1(t, dir, left)

			if s, err = Open(dir, nil); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := want.equal(readSnapshot(t, s, commons)); err != nil {
				t.Fatal(err)
			}
			tags := countTags(t, s)
			wantIDs := 2
			if partial {
				wantIDs += tc.others
			}
			if tags[tagFeed1] != 0 || tags[tagDerived1] != 0 || tags[tagFeed] != 6500 || tags[tagDerived] != 2*2001 || tags[tagID] != wantIDs {
				t.Fatalf("after the migration: %d and %d keys of format 1, %d feed keys, %d derived keys and %d IDs; want 0, 0, 6500, %d and %d", tags[tagFeed1], tags[tagDerived1], tags[tagFeed], tags[tagDerived], tags[tagID], 2*2001, wantIDs)
			}
			if v, err := s.getValue(ctx, versionKey()); err != nil || string(v) != formatVersion {
				t.Fatalf("format version %q, %v; want %q", v, err, formatVersion)
			}
			// Records and derived state written after it go on.
			cursors, err := s.PutRecords(ctx, storetest.Entries(commons[0], "after", 10))
			if err != nil || cursors[0] != 3001 || cursors[9] != 3010 {
				t.Fatalf("PutRecords after the migration: cursors %v, %v; want 3001 to 3010", cursors, err)
			}
			third := storetest.CommonsID("third")
			if _, err := s.PutRecords(ctx, storetest.Entries(third, "r", 5)); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Feed(ctx, third, 0, 100); err != nil || len(got) != 5 {
				t.Fatalf("a commons new after the migration: %d records, %v; want 5", len(got), err)
			}
			if got, err := s.Feed(ctx, commons[1], 3499, 100); err != nil || len(got) != 1 || got[0].Cursor != 3500 {
				t.Fatalf("the second commons' feed after the third's records: %v, %v", got, err)
			}
		})
	}
}

// TestOpenDropsFormat1KeysLeft: a migration that a crash cut short after
// it recorded the format version left format 1 keys; Open drops them, and
// what the store holds stays whole.
func TestOpenDropsFormat1KeysLeft(t *testing.T) {
	dir, commons, want := filledStore(t)
	var s *Store
	var err error
	toFormat1(t, dir, sameCopies)
	setVersion(t, dir, formatVersion)
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := want.equal(readSnapshot(t, s, commons)); err != nil {
		t.Fatal(err)
	}
	if tags := countTags(t, s); tags[tagFeed1] != 0 || tags[tagDerived1] != 0 {
		t.Fatalf("%d and %d keys of format 1 left after Open; want none", tags[tagFeed1], tags[tagDerived1])
	}
}

// TestOpenRefusesANewerFormat: a store whose format this version does not
// know is refused, naming its version, and left as it was.
func TestOpenRefusesANewerFormat(t *testing.T) {
	dir, commons, want := filledStore(t)
	var s *Store
	var err error
	setVersion(t, dir, "commons-store/3")
	if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), `"commons-store/3"`) || !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("Open of a newer format: %v; want an error naming it", err)
	}
	setVersion(t, dir, formatVersion)
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := want.equal(readSnapshot(t, s, commons)); err != nil {
		t.Fatal(err)
	}
}

// TestCommonsKeysAreShort: a commons' feed and derived keys carry its
// short ID, not its CID: a feed key is the tag, one byte of ID and the
// cursor.
func TestCommonsKeysAreShort(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillTwoCommons(t, s)
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagFeed}})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) != 1+1+8 {
				return fmt.Errorf("feed key %x: %d bytes, want 10", k, len(k))
			}
			n++
		}
		if n != 6500 {
			return fmt.Errorf("%d feed keys, want 6500", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var discard = slog.New(slog.DiscardHandler)

// TestOpenAppliesAFormat1JournalBeforeMoving: a crash left a complete
// journal of format 1 keys; Open applies it, then moves its keys with the
// rest.
func TestOpenAppliesAFormat1JournalBeforeMoving(t *testing.T) {
	ctx := context.Background()
	dir, commons, _ := filledStore(t)
	var s *Store
	var err error
	toFormat1(t, dir, noCopies)
	db, err := badger.Open(options(dir, discard))
	if err != nil {
		t.Fatal(err)
	}
	c := commons[1]
	old := append([]byte{tagDerived1, byte(len(c.Bytes()))}, c.Bytes()...)
	ws := []kv{
		{key: append(bytes.Clone(old), "journaled"...), value: []byte("yes")},
		{key: append(bytes.Clone(old), "k00001"...), del: true},
		{key: appliedKey(c), value: encodeUint(7777)},
	}
	wb := db.NewWriteBatch()
	for i, w := range ws {
		if err := wb.Set(journalKey(uint64(i)), encodeJournal(w)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range [][]byte{journalOpenKey(), journalDoneKey()} {
		if err := wb.Set(k, []byte{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.GetDerived(ctx, c, []byte("journaled"))
	if err != nil || string(v) != "yes" {
		t.Fatalf("a key the journal set: %q, %v; want yes", v, err)
	}
	if v, err := s.GetDerived(ctx, c, []byte("k00001")); err != nil || v != nil {
		t.Fatalf("a key the journal deleted: %q, %v; want none", v, err)
	}
	if v, err := s.GetDerived(ctx, c, []byte("k00002")); err != nil || string(v) != "v1-2" {
		t.Fatalf("a key the journal left: %q, %v; want v1-2", v, err)
	}
	if a, err := s.Applied(ctx, c); err != nil || a != 7777 {
		t.Fatalf("applied %d, %v; want 7777", a, err)
	}
	if tags := countTags(t, s); tags[tagJournal] != 0 || tags[tagDerived1] != 0 {
		t.Fatalf("%d journal entries and %d format 1 keys left; want none", tags[tagJournal], tags[tagDerived1])
	}
}

// TestOpenRefusesToMoveAFeedWithAGap: a format 1 feed log with an entry
// missing (damage) is not moved: Open says so, and the store stays as it
// was, in format 1.
func TestOpenRefusesToMoveAFeedWithAGap(t *testing.T) {
	dir, _, _ := filledStore(t)
	var s *Store
	var err error
	toFormat1(t, dir, noCopies)
	db, err := badger.Open(options(dir, discard))
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.CommonsID("second")
	gap := binary.BigEndian.AppendUint64(append([]byte{tagFeed1, byte(len(c.Bytes()))}, c.Bytes()...), 1234)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(gap) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "3499 entries copied, and its head is 3500") || !strings.Contains(err.Error(), formatVersion1) {
		t.Fatalf("Open of a format 1 store with a gap in a feed: %v; want an error naming it", err)
	}
	db, err = badger.Open(options(dir, discard))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s = &Store{db: db, log: discard}
	if v, err := s.getValue(context.Background(), versionKey()); err != nil || string(v) != formatVersion1 {
		t.Fatalf("format version after the refusal: %q, %v; want %q", v, err, formatVersion1)
	}
	if tags := countTags(t, s); tags[tagFeed1] != 6499 || tags[tagDerived1] != 2*2001 {
		t.Fatalf("after the refusal: %d feed and %d derived keys of format 1; want 6499 and %d", tags[tagFeed1], tags[tagDerived1], 2*2001)
	}
}

const migrateCrashEnv = "COMMONS_BADGERSTORE_MIGRATE_DIR"

// TestKillDuringMigration: a process moving a format 1 store to format 2
// is killed (SIGKILL) at random moments; each time, the store then opens
// with every feed entry, derived key and applied cursor it held. The
// moments are drawn between the start and the time a whole migration took.
func TestKillDuringMigration(t *testing.T) {
	if dir := os.Getenv(migrateCrashEnv); dir != "" {
		s, err := Open(dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child open:", err)
			os.Exit(2)
		}
		_ = s.Close()
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	src := t.TempDir()
	s, err := Open(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	commons, want := fillTwoCommons(t, s)
	ctx := context.Background()
	for i, c := range commons { // more of each, so that a migration takes a while
		d := store.Derived{Commons: c, Applied: want.applied[c]}
		for k := range 60000 {
			d.Writes = append(d.Writes, store.Write{Key: fmt.Appendf(nil, "m%06d", k), Value: fmt.Appendf(nil, "w%d-%d", i, k)})
		}
		if err := s.CommitDerived(ctx, []store.Derived{d}); err != nil {
			t.Fatal(err)
		}
	}
	want = readSnapshot(t, s, commons)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	toFormat1(t, src, noCopies)

	run := func(dir string, kill time.Duration) (killed bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringMigration$", "-test.count=1")
		cmd.Env = append(os.Environ(), migrateCrashEnv+"="+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("migration: %v", err)
			}
			return false
		case <-time.After(kill):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			return true
		}
	}
	copyDir := func() string {
		dir := filepath.Join(t.TempDir(), "store")
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	began := time.Now()
	run(copyDir(), time.Hour)
	whole := time.Since(began)
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("COMMONS_MIGRATE_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("a whole migration took %v; seed %d (COMMONS_MIGRATE_CRASH_SEED replays it)", whole, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	killed := 0
	for round := range 6 {
		dir := copyDir()
		at := time.Duration(rng.Int64N(int64(whole)))
		if run(dir, at) {
			killed++
		}
		s, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("round %d, killed after %v (seed %d): %v", round, at, seed, err)
		}
		err = want.equal(readSnapshot(t, s, commons))
		_ = s.Close()
		if err != nil {
			t.Fatalf("round %d, killed after %v (seed %d): %v", round, at, seed, err)
		}
	}
	if killed == 0 {
		t.Fatalf("no migration was killed before it ended (seed %d): the test checked nothing", seed)
	}
}

// setVersion writes v as the format version of the closed store in dir.
func setVersion(t *testing.T, dir, v string) {
	t.Helper()
	db, err := badger.Open(options(dir, discard))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(versionKey(), []byte(v)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
