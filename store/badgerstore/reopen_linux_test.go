package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// rssFile returns the process's resident pages of mapped files, in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "RssFile:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// writeLarge writes more than reopenAbove bytes of records into s, and
// returns the last record's CID.
func writeLarge(t *testing.T, s *Store) cid.Cid {
	t.Helper()
	commons := protocol.RecordCID([]byte("commons"))
	var last cid.Cid
	for b := range 100 {
		var es []store.Entry
		for i := range 256 {
			raw := []byte(fmt.Sprintf("%0800d", b*1000+i))
			es = append(es, store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw})
		}
		if _, err := s.PutRecords(context.Background(), es); err != nil {
			t.Fatal(err)
		}
		last = es[len(es)-1].CID
	}
	return last
}

// newestSize returns the size of the newest value log file in dir.
func newestSize(t *testing.T, dir string) int64 {
	t.Helper()
	newest, _, err := newestValueLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// After a clean close that left a large value log file (as a version
// before Close opened the store again did, or a crash), Open keeps none
// of its pages in the process: badger reads the newest file through its
// mapping, so Open opens the store a second time, on a new, empty file.
// The records are all there.
func TestOpenLeavesNoValueLogMapped(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := writeLarge(t, s)
	if err := s.close(false); err != nil {
		t.Fatal(err)
	}
	size := newestSize(t, dir)
	if size <= reopenAbove {
		t.Fatalf("the newest value log holds %d bytes; want more than %d", size, reopenAbove)
	}
	before := rssFile(t)
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if grew := rssFile(t) - before; grew > size/4 {
		t.Errorf("Open left %d bytes of mapped files resident, with a %d-byte value log file: its pages are kept", grew, size)
	}
	if raw, err := s.GetRecord(context.Background(), last); err != nil || !protocol.RecordCID(raw).Equals(last) {
		t.Fatalf("the last record after the second open: %v", err)
	}
}

// A store that wrote more than reopenAbove bytes since it was opened (an
// import) is opened again by its Close, on a new value log file, so that
// the next Open finds a small newest file, reads it through quickly and
// opens the store once. The records are all there after it.
func TestCloseLeavesASmallNewestValueLog(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := writeLarge(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if size := newestSize(t, dir); size > reopenAbove {
		t.Fatalf("after a Close, the newest value log holds %d bytes: want at most %d, for the next Open to open the store once", size, reopenAbove)
	}
	if cleanLog(dir) == "" {
		t.Fatal("the store opened again by Close was not left marked as closed cleanly")
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if raw, err := s.GetRecord(context.Background(), last); err != nil || !protocol.RecordCID(raw).Equals(last) {
		t.Fatalf("the last record after the store was opened again: %v", err)
	}
}

// A Close that opens the store again and finds the value log it wrote
// damaged says so, rather than succeed silently: the next Open refuses
// the store as well. The directory is released all the same.
func TestCloseReportsADamagedNewestValueLog(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeLarge(t, s)
	newest, _, err := newestValueLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(newest, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	const at = 1 << 20 // within what was written: the file is made larger, and cut at Close
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x04
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Close after the newest value log was damaged: %v; want an error wrapping store.ErrCorrupt", err)
	}
	if _, err := Open(dir, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open after that Close: %v; want the damage named again, not a held lock", err)
	}
}
