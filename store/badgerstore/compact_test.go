package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/store/storetest"
)

// Compact gives back the space of a commons whose records were dropped
// (leave --purge), and keeps everything else as it was: the other
// commons' records, feed, head and derived state (so that no start has to
// derive it again), blobs, listings and metadata.
func TestCompact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	s := open(t, dir)
	a, b := storetest.CommonsID("a"), storetest.CommonsID("b")
	kept := storetest.Entries(a, "kept", 200)
	gone := storetest.Entries(b, "purged", 3000)
	for _, es := range [][]store.Entry{kept, gone} {
		if _, err := s.PutRecords(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	payload := bytes.Repeat([]byte("a payload "), 100)
	blob, err := s.PutBlob(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b"} {
		if err := s.AddCommons(ctx, storetest.CommonsID(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutMeta(ctx, "rules", []byte("7")); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitDerived(ctx, []store.Derived{{Commons: a, Applied: 200, Writes: []store.Write{{Key: []byte("x"), Value: []byte("derived")}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveCommons(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DropRecords(ctx, b); err != nil || n != len(gone) {
		t.Fatalf("dropped %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.MkdirAll(dir+".compact", 0o700); err != nil { // as a compaction cut short leaves it
		t.Fatal(err)
	}
	before, after, err := badgerstore.Compact(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after >= before {
		t.Errorf("%d bytes before, %d after: nothing given back", before, after)
	}
	t.Logf("%d bytes before, %d after", before, after)
	if left, _ := filepath.Glob(dir + ".*"); len(left) > 0 {
		t.Errorf("left beside the store: %v", left)
	}
	s = open(t, dir)
	defer s.Close()
	for i, e := range kept {
		if raw, err := s.GetRecord(ctx, e.CID); err != nil || !bytes.Equal(raw, e.Raw) {
			t.Fatalf("kept record %d: %v", i, err)
		}
	}
	if page, err := s.Feed(ctx, a, 0, 1000); err != nil || len(page) != len(kept) || !page[7].CID.Equals(kept[7].CID) {
		t.Errorf("feed of the kept commons: %d records, %v", len(page), err)
	}
	if has, err := s.HasRecord(ctx, gone[0].CID); err != nil || has {
		t.Errorf("a purged record: stored %v, %v", has, err)
	}
	if head, err := s.FeedHead(ctx, b); err != nil || head != 0 {
		t.Errorf("the purged commons' head %d, %v", head, err)
	}
	if got, err := s.GetBlob(ctx, blob); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("blob: %d bytes, %v", len(got), err)
	}
	if ids, err := s.Commons(ctx); err != nil || len(ids) != 1 || !ids[0].Equals(a) {
		t.Errorf("commons listed: %v, %v", ids, err)
	}
	if v, err := s.GetMeta(ctx, "rules"); err != nil || string(v) != "7" {
		t.Errorf("meta: %q, %v", v, err)
	}
	if applied, err := s.Applied(ctx, a); err != nil || applied != 200 {
		t.Errorf("applied %d, %v; want 200: the derived state is kept", applied, err)
	}
	if v, err := s.GetDerived(ctx, a, []byte("x")); err != nil || string(v) != "derived" {
		t.Errorf("derived value %q, %v", v, err)
	}
}

// A store that cannot be read through is left as it was, with nothing
// beside it.
func TestCompactDamaged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	s := open(t, dir)
	payload := bytes.Repeat([]byte("a payload in the value log "), 100)
	if _, err := s.PutBlob(ctx, payload); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	flipInValueLog(t, dir, payload)
	was := listDir(t, dir)
	if _, _, err := badgerstore.Compact(ctx, dir, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Compact of a damaged store: %v, want ErrCorrupt", err)
	}
	if now := listDir(t, dir); !maps.Equal(was, now) {
		t.Errorf("the store's files changed: %v, then %v", was, now)
	}
	if left, _ := filepath.Glob(dir + ".*"); len(left) > 0 {
		t.Errorf("left beside the store: %v", left)
	}
}

// Damage in an older value log file is copied as it reads, and still shows
// as such: a blob whose bytes no longer hash to its CID.
func TestCompactKeepsDamageVisible(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	s := open(t, dir)
	payload := bytes.Repeat([]byte("an older payload "), 100)
	blob, err := s.PutBlob(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := open(t, dir).Close(); err != nil { // a newer value log file
		t.Fatal(err)
	}
	flipInValueLog(t, dir, payload)
	if _, _, err := badgerstore.Compact(ctx, dir, nil); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if _, err := s.GetBlob(ctx, blob); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("the damaged blob after Compact: %v, want ErrCorrupt", err)
	}
}

// Blobs are copied a bounded batch at a time: the copy's value log files
// stay within their size, however much the blobs hold together (a single
// batch of 300 MiB of blobs made one value log file of that size).
func TestCompactManyBlobs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	s := open(t, dir)
	blob := make([]byte, 1<<20)
	for i := range 300 {
		blob[0], blob[1] = byte(i), byte(i>>8)
		if _, err := s.PutBlob(ctx, blob); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := badgerstore.Compact(ctx, dir, nil); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	for _, f := range logs {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 300<<20 {
			t.Errorf("value log file %s: %d bytes, %v", f, fi.Size(), err)
		}
	}
}

// Compact refuses, before it copies anything, a disk with less room than
// the copy may take, saying how much it needs; the store is as it was.
func TestCompactNeedsRoom(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	payload := bytes.Repeat([]byte("x"), 1<<20)
	blob, err := s.PutBlob(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	restore := badgerstore.SetFreeSpace(10 << 20)
	_, _, err = badgerstore.Compact(context.Background(), dir, nil)
	restore()
	if err == nil || !strings.Contains(err.Error(), "MiB free beside it") {
		t.Fatalf("Compact on a full disk: %v; want it refused, naming the room it needs", err)
	}
	if left, _ := filepath.Glob(dir + ".*"); len(left) > 0 {
		t.Errorf("left beside the store: %v", left)
	}
	s = open(t, dir)
	defer s.Close()
	if got, err := s.GetBlob(context.Background(), blob); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("the blob after a refused Compact: %d bytes, %v", len(got), err)
	}
}

// flipInValueLog flips a bit of payload's 11th byte in the value log file
// of dir that holds it.
func flipInValueLog(t *testing.T, dir string, payload []byte) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	for _, f := range logs {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(data, payload); i >= 0 {
			data[i+10] ^= 1
			if err := os.WriteFile(f, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("the payload is in no value log file")
}
