package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/store/storetest"
)

var bg = context.Background()

func open(t testing.TB, dir string) *badgerstore.Store {
	t.Helper()
	s, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir()) })
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	a, b := storetest.CommonsID("a"), storetest.CommonsID("b")
	ea, eb := storetest.Entries(a, "reopen", 5), storetest.Entries(b, "reopen", 3)

	s := open(t, dir)
	if _, err := s.PutRecords(bg, append(ea[:3:3], eb...)); err != nil {
		t.Fatal(err)
	}
	blob, err := s.PutBlob(bg, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddCommons(bg, b); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCommons(bg, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	cursors, err := s.PutRecords(bg, ea)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{0, 0, 0, 4, 5}; !equal(cursors, want) {
		t.Fatalf("cursors after reopen = %v, want %v", cursors, want)
	}
	if h, _ := s.FeedHead(bg, a); h != 5 {
		t.Fatalf("FeedHead(a) = %d, want 5", h)
	}
	if h, _ := s.FeedHead(bg, b); h != 3 {
		t.Fatalf("FeedHead(b) = %d, want 3", h)
	}
	feed, err := s.Feed(bg, b, 0, 10)
	if err != nil || len(feed) != 3 || !feed[2].CID.Equals(eb[2].CID) {
		t.Fatalf("Feed(b) after reopen = %v, %v", feed, err)
	}
	if data, err := s.GetBlob(bg, blob); err != nil || string(data) != "payload" {
		t.Fatalf("GetBlob after reopen = %q, %v", data, err)
	}
	// The commons sequence continues after reopening.
	c := storetest.CommonsID("c")
	if err := s.AddCommons(bg, c); err != nil {
		t.Fatal(err)
	}
	list, err := s.Commons(bg)
	if err != nil || len(list) != 3 || !list[0].Equals(b) || !list[1].Equals(a) || !list[2].Equals(c) {
		t.Fatalf("Commons after reopen = %v, %v; want [b a c]", list, err)
	}
}

// TestLargeBatch writes calls too big for one badger transaction, with
// records of two commons interleaved, and checks that the cursors and feeds
// come out as if it had been one.
func TestLargeBatch(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	a, b := storetest.CommonsID("a"), storetest.CommonsID("b")
	for _, size := range []int{1 << 10, 60 << 10} {
		n := 8 << 20 / size // about 8 MiB: several transactions
		var es []store.Entry
		for i := range n {
			c := a
			if i%3 == 0 {
				c = b
			}
			raw := make([]byte, size)
			copy(raw, fmt.Sprintf("large %d %d", size, i))
			es = append(es, store.Entry{CID: protocol.RecordCID(raw), Commons: c, Raw: raw})
		}
		headA, _ := s.FeedHead(bg, a)
		headB, _ := s.FeedHead(bg, b)
		cursors, err := s.PutRecords(bg, es)
		if err != nil {
			t.Fatalf("PutRecords(%d × %d bytes): %v", n, size, err)
		}
		for i, e := range es {
			want := &headA
			if e.Commons.Equals(b) {
				want = &headB
			}
			*want++
			if cursors[i] != *want {
				t.Fatalf("size %d: cursor[%d] = %d, want %d", size, i, cursors[i], *want)
			}
		}
		for c, head := range map[cid.Cid]uint64{a: headA, b: headB} {
			if h, _ := s.FeedHead(bg, c); h != head {
				t.Fatalf("FeedHead = %d, want %d", h, head)
			}
			feed, err := s.Feed(bg, c, 0, 1<<30)
			if err != nil || uint64(len(feed)) != head {
				t.Fatalf("Feed has %d records, %v; want %d", len(feed), err, head)
			}
			for i, st := range feed {
				if st.Cursor != uint64(i+1) {
					t.Fatalf("feed[%d].Cursor = %d", i, st.Cursor)
				}
			}
		}
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	_, err := badgerstore.Open(dir, nil)
	if !errors.Is(err, badgerstore.ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	t.Logf("second Open: %v", err)
}

func TestOpenDamaged(t *testing.T) {
	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := badgerstore.Open(file, nil); err == nil {
			t.Fatal("Open(file) succeeded")
		} else {
			t.Logf("Open(file): %v", err)
		}
	})
	t.Run("garbage manifest", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		if _, err := s.PutRecords(bg, storetest.Entries(storetest.CommonsID("a"), "x", 3)); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		garbage := []byte("this is not a badger manifest")
		manifest := filepath.Join(dir, "MANIFEST")
		if err := os.WriteFile(manifest, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		before := listDir(t, dir)
		if _, err := badgerstore.Open(dir, nil); err == nil {
			t.Fatal("Open(damaged) succeeded")
		} else {
			t.Logf("Open(damaged): %v", err)
		}
		if got, _ := os.ReadFile(manifest); string(got) != string(garbage) {
			t.Fatal("Open changed the damaged manifest")
		}
		for name := range before {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Fatalf("Open removed %s", name)
			}
		}
	})
}

func listDir(t *testing.T, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	return names
}

func BenchmarkPutRecords(b *testing.B) {
	storetest.BenchmarkPutRecords(b, func(b *testing.B) store.Store { return open(b, b.TempDir()) })
}

func openQuiet(dir string) (*badgerstore.Store, error) { return badgerstore.Open(dir, nil) }

// BenchmarkFeed reads a 10,000-record feed in pages of 256 and reports
// ns/record.
func BenchmarkFeed(b *testing.B) {
	s := open(b, b.TempDir())
	defer s.Close()
	c := storetest.CommonsID("bench")
	const n = 10000
	putBenchRecords(b, s, c, n)
	b.ResetTimer()
	for range b.N {
		var after uint64
		for {
			page, err := s.Feed(bg, c, after, 256)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].Cursor
		}
		if after != n {
			b.Fatalf("read to %d, want %d", after, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// TestOpenAfterEmptyMemtable: a process killed just after it created a
// memtable file leaves it empty; the store opens anyway, with what it
// held (dgraph-io/badger#2207: badger's own Open fails on such a file).
func TestOpenAfterEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	a := storetest.CommonsID("a")
	s := open(t, dir)
	if _, err := s.PutRecords(bg, storetest.Entries(a, "memtable", 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	next := 1
	for _, m := range mems {
		var fid int
		if _, err := fmt.Sscanf(filepath.Base(m), "%05d.mem", &fid); err == nil && fid >= next {
			next = fid + 1
		}
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.mem", next)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatalf("open after an empty memtable file: %v", err)
	}
	defer s.Close()
	if n, err := s.FeedHead(bg, a); err != nil || n != 3 {
		t.Fatalf("after reopening: feed head %d, %v; want the 3 records", n, err)
	}
}

// BenchmarkGetRecords reads 256 records at a time out of 100,000 and
// reports ns/record: spread over the store (a sync turn in time order),
// and every record of a key range (one in digest order).
func BenchmarkGetRecords(b *testing.B) {
	s := open(b, b.TempDir())
	defer s.Close()
	const n = 100_000
	all := putBenchRecords(b, s, storetest.CommonsID("bench"), n)
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(x, y cid.Cid) int { return bytes.Compare(x.Bytes(), y.Bytes()) })
	for _, shape := range []struct {
		name  string
		chunk func(i int) []cid.Cid
	}{
		{"spread", func(i int) []cid.Cid { return all[(i*256)%(n-256):][:256] }}, // insertion order: random digests
		{"range", func(i int) []cid.Cid { return sorted[(i*256)%(n-256):][:256] }},
	} {
		b.Run(shape.name, func(b *testing.B) {
			for i := range b.N {
				got, err := s.GetRecords(bg, shape.chunk(i))
				if err != nil || len(got) != 256 {
					b.Fatalf("%d records, %v", len(got), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/record")
		})
	}
}

// putBenchRecords stores n records of storetest.BenchRecordSize bytes in
// commons c, 1,000 per call, and returns their CIDs in the order stored.
func putBenchRecords(b *testing.B, s *badgerstore.Store, c cid.Cid, n int) []cid.Cid {
	var all []cid.Cid
	for i := 0; i < n; i += 1000 {
		es := make([]store.Entry, min(1000, n-i))
		for k := range es {
			raw := make([]byte, storetest.BenchRecordSize)
			copy(raw, fmt.Sprint("bench record ", i+k))
			es[k] = store.Entry{CID: protocol.RecordCID(raw), Commons: c, Raw: raw}
			all = append(all, es[k].CID)
		}
		if _, err := s.PutRecords(bg, es); err != nil {
			b.Fatal(err)
		}
	}
	return all
}
