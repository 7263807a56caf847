package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// ReleasePages hands back the pages of the value log and of the tables
// that reads left resident, once they pass the budget, at the first release
// the tables' indexes too but for their heads, which badger's list of its
// tables reads; the tables' pages stay in the page cache, and the records
// read back the same afterwards.
func TestReleasePages(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a repo with spaces")
	s, all := reopenedStore(t, dir, 100*256, 800)
	readAll := func() {
		t.Helper()
		readRecords(t, s, all)
	}
	readAll()
	// The tables, listed once: listing them reads their indexes' heads,
	// which would cache pages the checks below look at.
	type table struct {
		path        string
		data, index int64 // bytes before the index, and the index's
		size        int64
	}
	var tables []table
	for _, ti := range s.db.Tables() {
		p := filepath.Join(dir, fmt.Sprintf("%06d.sst", ti.ID))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n := tableDataLen(p, int64(ti.IndexSz))
		if n <= 0 || n+int64(ti.IndexSz)+8 > fi.Size() || fi.Size()-n-int64(ti.IndexSz) > 8+maxChecksumLen {
			t.Fatalf("%s: %d bytes before its index of %d, of %d", filepath.Base(p), n, ti.IndexSz, fi.Size())
		}
		if m := tableDataLen(p, int64(ti.IndexSz)+1); m != 0 {
			t.Errorf("%s, told a wrong index size: %d bytes before its index, want 0", filepath.Base(p), m)
		}
		tables = append(tables, table{p, n, int64(ti.IndexSz), fi.Size()})
	}
	if len(tables) == 0 {
		t.Fatal("no tables")
	}
	page := int64(os.Getpagesize())
	// The pages of the tables' data that the reads left in the page cache.
	tableData := func() (cached int) {
		for _, tb := range tables {
			cached += pagesCached(t, tb.path, 0, tb.data&^(page-1))
		}
		return cached
	}
	dataCached := tableData()
	if dataCached == 0 {
		t.Fatal("no page of the tables' data cached after reading every record")
	}
	const recordBytes = 100 * 256 * 800
	if _, _, released, err := s.ReleasePages(ctx, 1<<40); err != nil || released {
		t.Fatalf("with a budget no store reaches: released %v, %v", released, err)
	}
	before, after, released, err := s.ReleasePages(ctx, 0)
	if err != nil || !released {
		t.Fatalf("with no budget: released %v, %v", released, err)
	}
	if before-after < recordBytes/2 {
		t.Fatalf("released %d bytes of file pages (from %d to %d), having read %d bytes of records", before-after, before, after, recordBytes)
	}
	if now := rssFile(t); now > before-recordBytes/2 {
		t.Fatalf("the process holds %d bytes of file pages after the release, %d before", now, before)
	}
	// Nothing grew since the last release: nothing to do.
	if _, _, released, err := s.ReleasePages(ctx, 8<<20); err != nil || released {
		t.Fatalf("below the budget since the last release: released %v, %v", released, err)
	}
	// Nothing reads the tables meanwhile: the process holds of each table
	// only the head of its index, which the release's own listing mapped,
	// and which the next listing then finds mapped.
	held := tablePagesHeld(t, dir)
	for _, tb := range tables {
		name := filepath.Base(tb.path)
		if h := held[name]; h == 0 || h > 2*page {
			t.Errorf("%s: %d bytes held after a release, want the head of its index (a page or two)", name, h)
		}
	}
	// The tables' pages leave the process, not the page cache: the next
	// read of them is not one from the disk. Every table's index was read
	// as the store opened.
	for _, tb := range tables {
		want := int((tb.size - tb.data&^(page-1) + page - 1) / page)
		if n := pagesCached(t, tb.path, tb.data&^(page-1), tb.size); n < want*9/10 {
			t.Errorf("%s: %d of the %d pages of its index cached after a release: it was paged out", filepath.Base(tb.path), n, want)
		}
	}
	if n := tableData(); n < dataCached*9/10 {
		t.Errorf("%d of the %d pages of the tables' data cached before the release are cached after it: it evicted them", n, dataCached)
	}
	readAll()

	junk := filepath.Join(t.TempDir(), "junk.sst")
	if err := os.WriteFile(junk, []byte{0, 0, 0, 9, 1, 2, 3, 0xff, 0xff, 0xff, 0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := tableDataLen(junk, 9); n != 0 {
		t.Errorf("a file that is not a table: %d bytes before its index, want 0 (release none of it)", n)
	}
	// A table being written is mapped at its size, zeros, before its
	// footer is written.
	zeros := filepath.Join(t.TempDir(), "000099.sst")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := tableDataLen(zeros, -1); n != 0 {
		t.Errorf("a table not written yet: %d bytes before its index, want 0 (release none of it)", n)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.ReleasePages(ctx, 0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("after Close: %v, want store.ErrClosed", err)
	}
}

// A release keeps the tables' pages while what it leaves held has grown by
// less than tableBudget since they last went, and their indexes while it
// has grown by less than indexBudget since those last went, and then takes
// them too; the value log files two IDs or more below the newest leave the
// process and stay in the page cache; the newest is paged out; a value log
// file mapped privately and written keeps what was written.
func TestReleasePagesKeepsIndexes(t *testing.T) {
	defer func(i, t int64) { indexBudget, tableBudget = i, t }(indexBudget, tableBudget)
	ctx := context.Background()
	dir := t.TempDir()
	s, all := reopenedStore(t, dir, 100*256, 800)
	// Records written since the reopen go to the newest value log file.
	commons := protocol.RecordCID([]byte("commons"))
	var fresh []store.Entry
	for i := range 256 {
		raw := []byte(fmt.Sprintf("%0800d", 1_000_000+i))
		fresh = append(fresh, store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw})
	}
	if _, err := s.PutRecords(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	all = append(all, fresh...)
	readAll := func() {
		t.Helper()
		readRecords(t, s, all)
	}
	page := int64(os.Getpagesize())
	type table struct{ index, size int64 } // the first byte of its index, the file's size
	tables := map[string]table{}
	for _, ti := range s.db.Tables() {
		name := fmt.Sprintf("%06d.sst", ti.ID)
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		tables[name] = table{tableDataLen(p, int64(ti.IndexSz)), fi.Size()}
	}
	logs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil || len(logs) < 3 {
		t.Fatalf("value log files %v, %v: want three at least (each Open starts one, and so does each Close)", logs, err)
	}
	old, newest := logs[0], logs[len(logs)-1]
	oldID, _ := logID(filepath.Base(old))
	newestID, ok := logID(filepath.Base(newest))
	if !ok || oldID+1 >= newestID {
		t.Fatalf("value log files %v: want the newest two above the oldest at least", logs)
	}
	size := func(p string) int64 {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	oldSize := size(old)
	// Written privately, a page of a mapping of the old value log file is
	// the process's own memory, which no release may drop.
	f, err := os.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	private, err := unix.Mmap(int(f.Fd()), 0, int(oldSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(private)
	for i := range page {
		private[i] = ^private[i]
	}
	want := bytes.Clone(private[:page])

	readAll()
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("the first release: %v, %v", released, err)
	}
	if id := s.res.newestLog(); id != newestID {
		t.Fatalf("newest value log file %d, want %d (%s)", id, newestID, filepath.Base(newest))
	}
	readAll()
	// Within the table budget: the tables' pages stay, the value log
	// files' go.
	tableBudget = 1 << 40
	heldBefore := filePagesHeld(t, dir, ".sst")
	advisedKept := recordRanges(t)
	listedBefore := s.tableIndexes()
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("a release within the table budget: %v, %v", released, err)
	}
	// That release gave the tables listed meanwhile no advice (a table a
	// compaction is writing, not listed yet, may have had some).
	listedAfter := s.tableIndexes()
	for name, m := range sharedMappings(t, dir, ".sst") {
		if _, ok := listedBefore[name]; !ok {
			continue
		}
		if _, ok := listedAfter[name]; !ok {
			continue
		}
		for _, a := range advisedKept() {
			if a.start < m[1] && a.start+a.length > m[0] {
				t.Errorf("%s: advice %d given for its pages by a release within the table budget", name, a.advice)
			}
		}
	}
	if len(advisedKept()) == 0 {
		t.Error("a release within the table budget gave no advice: the value log files' pages stayed")
	}
	data := false // a table held more than its index
	listed := s.tableIndexes()
	for name, tb := range tables {
		if _, ok := listed[name]; !ok {
			continue // compacted away meanwhile
		}
		index := (tb.size - tb.index&^(page-1) + page - 1) &^ (page - 1)
		data = data || heldBefore[name] > index
		if h := filePagesHeld(t, dir, ".sst")[name]; h < heldBefore[name] {
			t.Errorf("%s: %d bytes held after a release within the table budget, %d before", name, h, heldBefore[name])
		}
	}
	if !data {
		t.Fatal("no table held more than its index after every record was read")
	}
	// The old value log file's pages are dropped from the process
	// (MADV_DONTNEED), which always takes them.
	if h := filePagesHeld(t, dir, ".vlog")[filepath.Base(old)]; h != 0 {
		t.Errorf("%s: %d bytes held after a release within the table budget, want none", filepath.Base(old), h)
	}
	tableBudget = -1 << 40 // past it, whatever the pages held: the tables' data goes
	readAll()
	if h := filePagesHeld(t, dir, ".vlog")[filepath.Base(old)]; h < oldSize/2 {
		t.Fatalf("%s: %d of its %d bytes held after reading every record", filepath.Base(old), h, oldSize)
	}
	oldCached := pagesCached(t, old, 0, oldSize)
	newestCached := pagesCached(t, newest, 0, size(newest))
	if newestCached == 0 {
		t.Fatalf("%s: no page cached after reading the records written to it", filepath.Base(newest))
	}
	// Below the budget: the indexes stay, the data goes.
	logsBefore := filePagesHeld(t, dir, ".vlog")
	pins := s.res.pins
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("a release within the index budget: %v, %v", released, err)
	}
	if s.res.pins != pins+1 {
		t.Errorf("a release past the table budget pinned the tables %d times, want once", s.res.pins-pins)
	}
	held := filePagesHeld(t, dir, ".sst")
	kept := int64(0)
	for name, tb := range tables {
		index := (tb.size - tb.index&^(page-1) + page - 1) &^ (page - 1)
		if h := held[name]; h > index {
			t.Errorf("%s: %d bytes held after a release within the index budget, more than its index's %d", name, h, index)
		}
		kept += held[name]
	}
	if kept <= 2*page*int64(len(tables)) {
		t.Errorf("%d bytes of the %d tables held after a release within the index budget: their indexes were dropped", kept, len(tables))
	}
	// The old value log file's pages are dropped (MADV_DONTNEED), which
	// takes them all; the newest's paged out, which the kernel may refuse
	// for some of them (as its reclaim would).
	for name, h := range filePagesHeld(t, dir, ".vlog") {
		if name == filepath.Base(old) && h != 0 || h > 0 && h >= logsBefore[name] {
			t.Errorf("%s: %d bytes held after a release, %d before", name, h, logsBefore[name])
		}
	}
	if n := pagesCached(t, old, 0, oldSize); n < oldCached*9/10 {
		t.Errorf("%s: %d of its %d pages cached before a release are cached after it: it was paged out", filepath.Base(old), n, oldCached)
	}
	if n := pagesCached(t, newest, 0, size(newest)); n >= newestCached {
		t.Errorf("%s, the newest value log file: %d of its pages cached after a release, %d before: it was not paged out", filepath.Base(newest), n, newestCached)
	}
	if !bytes.Equal(private[:page], want) {
		t.Fatal("a private mapping of a value log file, written, changed by a release")
	}

	// Past the budget: the indexes go too, but for the head of each. What
	// the process holds of them afterwards cannot show it: the release's
	// own listing of the tables reads each head, and the kernel maps what
	// lies around that read in the page cache (fault-around, 64 KiB by
	// default), a small index whole. The advice given shows it.
	indexBudget = -1 << 40
	readAll()
	advised := recordRanges(t)
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("a release past the index budget: %v, %v", released, err)
	}
	mapped := sharedMappings(t, dir, ".sst")
	listed = s.tableIndexes()
	for name, tb := range tables {
		m, ok := mapped[name]
		if _, still := listed[name]; !still {
			continue // compacted away meanwhile
		}
		if !ok {
			t.Fatalf("%s: listed, not mapped", name)
		}
		from := m[0] + uintptr((tb.index+indexHead+page-1)&^(page-1))
		if from >= m[1] {
			continue // an index no larger than its head
		}
		if !slices.ContainsFunc(advised(), func(a advice) bool {
			return a.advice == unix.MADV_DONTNEED && a.start <= from && a.start+a.length >= m[1]
		}) {
			t.Errorf("%s: its index past its head (%#x to %#x) not dropped by a release past the index budget", name, from, m[1])
		}
	}
	if !bytes.Equal(private[:page], want) {
		t.Fatal("a private mapping of a value log file, written, changed by a release")
	}
	readAll()
}

// The page release drops the pages of the value log files but the newest
// two (MADV_DONTNEED), which is safe only while badger neither unmaps nor
// deletes them: it does both in its value log garbage collection and in
// DropAll, which the store must therefore never call.
func TestNoValueLogGC(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("the package's files: %v, %v", files, err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{".RunValueLogGC(", ".DropAll("} {
			if bytes.Contains(b, []byte(call)) {
				t.Errorf("%s calls %s): the page release (resident_linux.go) would drop pages of value log files badger may unmap", f, call)
			}
		}
	}
}

// tablePagesHeld returns the bytes of each table file in dir (by name)
// that the process holds mapped (/proc/self/smaps).
func tablePagesHeld(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	return filePagesHeld(t, dir, ".sst")
}

// filePagesHeld returns the bytes of each file in dir whose name ends in
// ext (by name) that the process holds through its shared mappings
// (/proc/self/smaps).
func filePagesHeld(t *testing.T, dir, ext string) map[string]int64 {
	t.Helper()
	dir, smaps := procSelf(t, dir, "smaps")
	held := map[string]int64{}
	table := ""
	for _, l := range strings.Split(smaps, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			table = ""
			if strings.Contains(l, " "+dir+"/") && strings.HasSuffix(l, ext) && strings.HasSuffix(f[1], "s") {
				table = filepath.Base(l)
			}
		case table != "" && len(f) == 3 && f[0] == "Rss:":
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			held[table] += kb << 10
		}
	}
	return held
}

// A line of /proc/self/maps gives its path whole, spaces and all.
func TestMapsLine(t *testing.T) {
	for _, c := range []struct{ line, path string }{
		{"7f12a4000000-7f12a4400000 rw-s 00000000 fd:01 1234                       /home/a b/repo/store/000001.vlog", "/home/a b/repo/store/000001.vlog"},
		{"7f12a4000000-7f12a4400000 r--s 00000000 fd:01 99 /srv/store/000007.sst (deleted)", "/srv/store/000007.sst (deleted)"},
		{"7ffd1c5e1000-7ffd1c602000 rw-p 00000000 00:00 0                          [stack]", "[stack]"},
		{"7f12a4000000-7f12a4400000 rw-p 00000000 00:00 0 ", ""},
		{"7f12a4000000-7f12a4400000 rw-p 00000000 00:00 0", ""},
	} {
		f, path, ok := mapsLine(c.line)
		if path != c.path || ok != (c.path != "") {
			t.Errorf("%q: path %q (%v), want %q", c.line, path, ok, c.path)
		}
		if ok && (f[0] != "7f12a4000000-7f12a4400000" && f[0] != "7ffd1c5e1000-7ffd1c602000" || f[2] != "00000000") {
			t.Errorf("%q: fields %q", c.line, f)
		}
	}
}

// reopenedStore opens a store in dir, puts n records of size bytes in
// it, in batches of 256, and opens it again, closing it at the end of the
// test: its keys are then in tables, its records in a value log file no
// write has touched in this process.
func reopenedStore(t *testing.T, dir string, n, size int) (*Store, []store.Entry) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	commons := protocol.RecordCID([]byte("commons"))
	var all []store.Entry
	for len(all) < n {
		var es []store.Entry
		for i := 0; i < 256 && len(all)+len(es) < n; i++ {
			raw := []byte(fmt.Sprintf("%0*d", size, len(all)+len(es)))
			es = append(es, store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw})
		}
		if _, err := s.PutRecords(ctx, es); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, all
}

// storeWithTables is reopenedStore with 10,240 records of 800 bytes,
// and the tables badger lists in it, of which there must be some.
func storeWithTables(t *testing.T, dir string) (*Store, []badger.TableInfo) {
	t.Helper()
	s, _ := reopenedStore(t, dir, 40*256, 800)
	tables := s.db.Tables()
	if len(tables) == 0 {
		t.Fatal("no tables")
	}
	return s, tables
}

// Verify, reading every record once, does not keep the pages it read. (A
// read of a page released maps more than that page: the kernel reads
// around it, here up to 8 MiB. The records come to 100 MiB.)
func TestVerifyReleasesPages(t *testing.T) {
	defer func(b int64) { verifyPageBudget = b }(verifyPageBudget)
	verifyPageBudget = 1 << 20
	ctx := context.Background()
	const records, size = 100 * 256, 4000
	s, _ := reopenedStore(t, t.TempDir(), records, size)
	before := rssFile(t)
	rep, err := s.Verify(ctx)
	if err != nil || len(rep.Damaged) != 0 || rep.Records != records {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	const read = records * size
	if grew := rssFile(t) - before; grew > read/2 {
		t.Fatalf("verify read %d bytes of records and kept %d bytes of file pages", read, grew)
	}
}

// pagesCached returns how many pages of the file at path, from byte from
// to byte to, are in the page cache (mincore over a mapping of its own,
// which touches none of them).
func pagesCached(t *testing.T, path string, from, to int64) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, int(to), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	page := int64(os.Getpagesize())
	from &^= page - 1
	vec := make([]byte, (to-from+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[from])), uintptr(to-from), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// A compaction maps each table it writes, and badger lists them only once
// it has written them all: past unlistedBudget, ReleasePages pages out such
// a table's data once its footer is written, keeping its index, and leaves
// one whose footer is still zeros alone; within it, the newest tables
// first, it leaves them mapped and cached.
func TestReleasePagesOfTablesNotListed(t *testing.T) {
	defer func(b int64) { unlistedBudget = b }(unlistedBudget)
	unlistedBudget = 0
	ctx := context.Background()
	dir := t.TempDir()
	s, tables := storeWithTables(t, dir)
	var src string
	var index, size int64
	for _, ti := range tables {
		p := filepath.Join(dir, fmt.Sprintf("%06d.sst", ti.ID))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > size {
			src, index, size = p, int64(ti.IndexSz), fi.Size()
		}
	}
	data := tableDataLen(src, index)
	if data <= 0 {
		t.Fatalf("%s: %d bytes before its index", src, data)
	}
	if n := tableDataLen(src, -1); n != data {
		t.Fatalf("%s read as a table not listed: %d bytes before its index, want %d", src, n, data)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// Copies badger does not list: one written whole, one whose footer is
	// not written yet, and one whose checksum's length is absurd.
	whole := filepath.Join(dir, "999990.sst")
	unwritten := filepath.Join(dir, "999991.sst")
	absurd := filepath.Join(dir, "999992.sst")
	bad := bytes.Clone(raw)
	binary.BigEndian.PutUint32(bad[len(bad)-4:], 1000)
	var wholeMap []byte
	for p, b := range map[string][]byte{whole: raw, unwritten: append(bytes.Clone(raw[:len(raw)-8]), make([]byte, 8)...), absurd: bad} {
		m := writeAsBadger(t, p, b)
		if p == whole {
			wholeMap = m
		}
		t.Cleanup(func() { _ = unix.Munmap(m); _ = os.Remove(p) })
		sum := 0 // touch every page, as badger's reads would
		for i := 0; i < len(m); i += os.Getpagesize() {
			sum += int(m[i])
		}
		_ = sum
	}
	page := int64(os.Getpagesize())
	pages := int((data + page - 1) / page)
	for _, p := range []string{whole, unwritten, absurd} {
		if n := pagesCached(t, p, 0, data); n < pages*9/10 {
			t.Fatalf("%s: %d of its %d data pages cached after reading it all", filepath.Base(p), n, pages)
		}
	}
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("released %v, %v", released, err)
	}
	if n := pagesCached(t, whole, 0, data&^(page-1)); n > pages/10 {
		t.Errorf("a table written whole and not listed yet: %d of its %d data pages still cached after a release", n, pages)
	}
	if n := pagesCached(t, whole, data, size); n == 0 {
		t.Error("a table written whole and not listed yet: its index was released too")
	}
	for _, p := range []string{unwritten, absurd} {
		if n := pagesCached(t, p, 0, data); n < pages*9/10 {
			t.Errorf("%s, whose footer is not a table's: %d of its %d data pages left cached after a release, want them all", filepath.Base(p), n, pages)
		}
	}

	// Within the budget, which takes one table's data: the newest table
	// not listed stays mapped and cached, the older ones are paged out.
	unlistedBudget = data &^ (page - 1)
	older := filepath.Join(dir, "999993.sst")
	newer := filepath.Join(dir, "999994.sst")
	for _, p := range []string{whole, older, newer} {
		m := wholeMap
		if p != whole {
			m = writeAsBadger(t, p, raw)
			t.Cleanup(func() { _ = unix.Munmap(m); _ = os.Remove(p) })
		}
		sum := 0
		for i := 0; i < len(m); i += os.Getpagesize() {
			sum += int(m[i])
		}
		_ = sum
	}
	heldBefore := filePagesHeld(t, dir, ".sst")
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("released %v, %v", released, err)
	}
	held := filePagesHeld(t, dir, ".sst")
	if n := pagesCached(t, newer, 0, data&^(page-1)); n < pages*9/10 {
		t.Errorf("the newest table not listed, within the budget: %d of its %d data pages cached after a release", n, pages)
	}
	if h := held[filepath.Base(newer)]; h < heldBefore[filepath.Base(newer)]*9/10 {
		t.Errorf("the newest table not listed, within the budget: %d bytes held after a release, %d before", h, heldBefore[filepath.Base(newer)])
	}
	for _, p := range []string{whole, older} {
		if n := pagesCached(t, p, 0, data&^(page-1)); n > pages/10 {
			t.Errorf("%s, a table not listed past the budget: %d of its %d data pages still cached after a release", filepath.Base(p), n, pages)
		}
	}
}

// writeAsBadger writes b to a new file at path as badger writes a table:
// through a shared mapping of the file at its size, synced; it returns the
// mapping.
func writeAsBadger(t *testing.T, path string, b []byte) []byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(b))); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, len(b), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, b)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	return m
}

// ReleasePages drops the pages of the tables badger lists while an
// iterator pins them: run over and over while writes flush memtables and
// compactions replace and delete tables (small memtables and a first
// level of two tables, so that they do with little data), it must neither
// fail nor disturb what is read back; tables are deleted while it runs.
func TestReleasePagesDuringCompactions(t *testing.T) {
	defer func(f func(badger.Options) badger.Options) { testOptions = f }(testOptions)
	testOptions = func(o badger.Options) badger.Options {
		return o.WithMemTableSize(1 << 20).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4).WithBaseLevelSize(2 << 20).WithBaseTableSize(256 << 10)
	}
	ctx := context.Background()
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	commons := protocol.RecordCID([]byte("commons"))
	stop := make(chan struct{})
	type result struct {
		releases, gone int // releases, and tables deleted between two of them
		err            error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		tick := time.NewTicker(2 * time.Millisecond) // a node checks every 50 ms
		defer tick.Stop()
		listed := map[uint64]bool{}
		for {
			select {
			case <-stop:
				done <- r
				return
			case <-tick.C:
			}
			now := map[uint64]bool{}
			for _, ti := range s.db.Tables() {
				now[ti.ID] = true
			}
			for id := range listed {
				if !now[id] {
					r.gone++
				}
			}
			listed = now
			if _, _, released, err := s.ReleasePages(ctx, 0); err != nil {
				r.err = err
				done <- r
				return
			} else if released {
				r.releases++
			}
		}
	}()
	const keys, rounds = 4000, 6
	value := func(round, i int) []byte { return []byte(fmt.Sprintf("%d %d %0250d", round, i, round*i)) }
	for round := range rounds {
		for from := 0; from < keys; from += 1000 {
			d := store.Derived{Commons: commons, Applied: uint64(round)}
			for i := from; i < from+1000; i++ {
				d.Writes = append(d.Writes, store.Write{Key: []byte(fmt.Sprintf("k%06d", i)), Value: value(round, i)})
			}
			if err := s.CommitDerived(ctx, []store.Derived{d}); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	r := <-done
	if r.err != nil {
		t.Fatalf("release pages: %v", r.err)
	}
	t.Logf("%d releases; %d tables deleted while they ran", r.releases, r.gone)
	if r.gone == 0 || r.releases == 0 {
		t.Fatalf("%d tables deleted, %d releases: the test did not run releases beside compactions", r.gone, r.releases)
	}
	for i := range keys {
		v, err := s.GetDerived(ctx, commons, []byte(fmt.Sprintf("k%06d", i)))
		if err != nil || !bytes.Equal(v, value(rounds-1, i)) {
			t.Fatalf("key %d: %q, %v; want %q", i, v, err, value(rounds-1, i))
		}
	}
}

// Before badger opens the tables, Open has the kernel read the end of
// each (its last block, index and footer), which badger's Open reads
// through its mappings, and no more of it: a fault there would read
// around it as much as the device reads ahead.
func TestOpenReadsTableEnds(t *testing.T) {
	dir := t.TempDir()
	s, all := reopenedStore(t, dir, 40*256, 800)
	var tables []string
	for _, ti := range s.db.Tables() {
		tables = append(tables, filepath.Join(dir, fmt.Sprintf("%06d.sst", ti.ID)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	page := int64(os.Getpagesize())
	type span struct{ from, end, size int64 }
	spans := map[string]span{}
	for _, p := range tables {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		data, _, ok := tableFooter(f, fi.Size())
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if !ok {
			t.Fatalf("%s: no footer", p)
		}
		if data-tableEndSlack > 4*page {
			spans[p] = span{(data - tableEndSlack) &^ (page - 1), data, fi.Size()}
		}
		if n := pagesCached(t, p, 0, fi.Size()); n > 0 {
			t.Fatalf("%s: %d pages cached after asking the kernel to drop them (a file system that keeps every page, such as tmpfs?)", p, n)
		}
	}
	if len(spans) == 0 {
		t.Fatalf("no table of the %d longer than the end read (want tables larger than %d bytes)", len(tables), tableEndSlack)
	}
	// And the first page of each value log file, which badger's Open
	// reads, and no more of it.
	logs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no value log file: %v", err)
	}
	logSizes := map[string]int64{}
	for _, p := range logs {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < 64*page {
			continue
		}
		logSizes[p] = min(fi.Size(), 1024*page)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n := pagesCached(t, p, 0, logSizes[p]); n > 0 {
			t.Fatalf("%s: %d pages cached after asking the kernel to drop them", p, n)
		}
	}
	if len(logSizes) == 0 {
		t.Fatalf("no value log file of %d pages or more", 64)
	}
	readTableEnds(dir)
	for p, size := range logSizes {
		for i := 0; pagesCached(t, p, 0, page) < 1 && i < 1000; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if pagesCached(t, p, 0, page) != 1 {
			t.Errorf("%s: its first page not cached", filepath.Base(p))
		}
		if n := pagesCached(t, p, page, size); n > 0 {
			t.Errorf("%s: %d pages after its first cached: read, where only its head was asked for", filepath.Base(p), n)
		}
	}
	for p, sp := range spans {
		// The reads are the kernel's, on their way: awaited, up to a
		// bound, by asking which pages are there.
		want := int((sp.size - sp.end) / page)
		for i := 0; pagesCached(t, p, sp.end, sp.size) < want && i < 1000; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if n := pagesCached(t, p, sp.end, sp.size); n < want {
			t.Errorf("%s: %d of the %d pages of its index cached", filepath.Base(p), n, want)
		}
		if n := pagesCached(t, p, 0, sp.from); n > 0 {
			t.Errorf("%s: %d of the %d pages before its last block cached: read, where only its end was asked for", filepath.Base(p), n, sp.from/page)
		}
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, e := range all[:100] {
		if raw, err := s.GetRecord(context.Background(), e.CID); err != nil || !bytes.Equal(raw, e.Raw) {
			t.Fatalf("record %s after the open: %v", e.CID, err)
		}
	}
}

// Only a shared mapping's pages are the file's: a private mapping of a
// listed table, written to, keeps what was written across a release (its
// dropped pages would be read again from the file). And a release touches
// only the store's own files: not one of the same name in a directory
// below the store's.
func TestReleasePagesKeepsPrivateMappings(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, tables := storeWithTables(t, dir)
	name := fmt.Sprintf("%06d.sst", tables[0].ID)
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	mapFile := func(p string, flags int) []byte {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		prot := unix.PROT_READ
		if flags == unix.MAP_PRIVATE {
			prot |= unix.PROT_WRITE
		}
		m, err := unix.Mmap(int(f.Fd()), 0, len(raw), prot, flags)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Munmap(m) })
		return m
	}
	private := mapFile(filepath.Join(dir, name), unix.MAP_PRIVATE)
	for i := range private[:len(private)/2] {
		private[i] = ^raw[i]
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, name), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	shared := mapFile(filepath.Join(sub, name), unix.MAP_SHARED)
	if !bytes.Equal(shared, raw) {
		t.Fatal("the copy reads back otherwise")
	}
	held := tablePagesHeld(t, sub)[name]
	if held < int64(len(raw))/2 {
		t.Fatalf("%d bytes of the copy's %d held after reading it whole", held, len(raw))
	}
	if _, _, released, err := s.ReleasePages(ctx, -1<<40); err != nil || !released {
		t.Fatalf("released %v, %v", released, err)
	}
	for i := range private[:len(private)/2] {
		if private[i] != ^raw[i] {
			t.Fatalf("a listed table mapped privately and written: byte %d is %#x after a release, want %#x (what was written)", i, private[i], ^raw[i])
		}
	}
	if now := tablePagesHeld(t, sub)[name]; now != held {
		t.Errorf("a file named as a listed table, in a directory below the store's: %d bytes held after a release, %d before", now, held)
	}
}

// PageOut, on a store that has been closed, pages out the pages of the
// value log files of its directory that the process holds, as another
// Store opened on it mapped them (Close opens the store again, and that
// Open reads the newest value log file through), only past its budget,
// and with no other advice than MADV_PAGEOUT; it leaves the tables; and
// the records read back the same.
func TestPageOutWhileClosing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a repo")
	s, all := reopenedStore(t, dir, 100*256, 800)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	readAll := func() {
		t.Helper()
		readRecords(t, again, all)
	}
	readAll()
	advice := recordAdvice(t)
	sum := func(m map[string]int64) (n int64) {
		for _, b := range m {
			n += b
		}
		return n
	}
	logs, tables := sum(filePagesHeld(t, dir, ".vlog")), sum(tablePagesHeld(t, dir))
	if logs < 10<<20 || tables == 0 {
		t.Fatalf("before: %d bytes of value log files held, %d of tables: want the 20 MB of records read, and some", logs, tables)
	}
	if _, _, released, err := s.PageOut(1 << 40); err != nil || released {
		t.Fatalf("within its budget: released %v, %v", released, err)
	}
	if now := sum(filePagesHeld(t, dir, ".vlog")); now < logs*9/10 {
		t.Fatalf("within its budget: %d bytes of value log files held, %d before", now, logs)
	}
	// s has released nothing yet: anything held is past a budget of 0.
	before, after, released, err := s.PageOut(0)
	if err != nil || !released || after >= before {
		t.Fatalf("PageOut(0): released %v, %v; file pages %d, then %d", released, err, before, after)
	}
	if now := sum(filePagesHeld(t, dir, ".vlog")); now > 1<<20 {
		t.Errorf("after: %d bytes of value log files held, %d before", now, logs)
	}
	if now := sum(tablePagesHeld(t, dir)); now < tables*9/10 {
		t.Errorf("after: %d bytes of tables held, %d before: PageOut leaves them", now, tables)
	}
	if got := advice(); len(got) == 0 || slices.ContainsFunc(got, func(a int) bool { return a != unix.MADV_PAGEOUT }) {
		t.Errorf("advice given %v, want MADV_PAGEOUT (%d) alone, at least once", got, unix.MADV_PAGEOUT)
	}
	readAll()
}

// PageOut, called over and over while Close runs and opens the store
// again (the value log file written since it opened being larger than
// reopenAbove), loses nothing: opened again, the store reads every record
// back.
func TestPageOutDuringClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, all := reopenedStore(t, dir, 40*256, 800)
	commons := protocol.RecordCID([]byte("commons"))
	for len(all) < 40*256+(reopenAbove/800+2*256) {
		var es []store.Entry
		for range 256 {
			raw := []byte(fmt.Sprintf("%0800d", 1_000_000+len(all)+len(es)))
			es = append(es, store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw})
		}
		if _, err := s.PutRecords(ctx, es); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	if !newestAbove(dir, reopenAbove) {
		t.Fatalf("the newest value log file is not above %d bytes: Close would not open the store again", reopenAbove)
	}
	advice := recordAdvice(t)
	done := make(chan struct{})
	paged := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				paged <- n
				return
			default:
			}
			if _, _, released, err := s.PageOut(0); err != nil {
				t.Error(err)
			} else if released {
				n++
			}
		}
	}()
	err := s.Close()
	close(done)
	n := <-paged
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("PageOut released nothing while the store closed")
	}
	if got := advice(); slices.ContainsFunc(got, func(a int) bool { return a != unix.MADV_PAGEOUT }) {
		t.Errorf("advice given %v, want MADV_PAGEOUT (%d) alone", got, unix.MADV_PAGEOUT)
	}
	again, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for _, e := range all {
		if raw, err := again.GetRecord(ctx, e.CID); err != nil || !bytes.Equal(raw, e.Raw) {
			t.Fatalf("record %s: %v", e.CID, err)
		}
	}
}

// recordRanges has madvise record the advice it gives, until the end of the
// test, and returns what it has recorded so far.
func recordRanges(t *testing.T) func() []advice {
	t.Helper()
	var mu sync.Mutex
	var got []advice
	madvise = func(rs []advice) error {
		mu.Lock()
		got = append(got, rs...)
		mu.Unlock()
		return sysMadvise(rs)
	}
	t.Cleanup(func() { madvise = sysMadvise })
	return func() []advice {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// sharedMappings returns where the process maps each file in dir whose
// name ends in ext (by name), shared: its first and its last address + 1.
func sharedMappings(t *testing.T, dir, ext string) map[string][2]uintptr {
	t.Helper()
	dir, maps := procSelf(t, dir, "maps")
	m := map[string][2]uintptr{}
	for line := range strings.Lines(maps) {
		fields, path, ok := mapsLine(strings.TrimSuffix(line, "\n"))
		if !ok || filepath.Dir(path) != dir || !strings.HasSuffix(path, ext) || !strings.HasSuffix(fields[1], "s") {
			continue
		}
		start, end, ok := mapRange(fields[0])
		if !ok {
			t.Fatalf("/proc/self/maps: %q", line)
		}
		m[filepath.Base(path)] = [2]uintptr{uintptr(start), uintptr(end)}
	}
	return m
}

// procSelf returns dir with its symbolic links resolved, as /proc names
// it, and the text of /proc/self/name.
func procSelf(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return dir, string(b)
}

// recordAdvice has madvise record the advice it gives, until the end of
// the test, and returns what it has recorded so far.
func recordAdvice(t *testing.T) func() []int {
	t.Helper()
	calls := recordRanges(t)
	return func() []int {
		var got []int
		for _, a := range calls() {
			got = append(got, a.advice)
		}
		return got
	}
}

// The budgets of a release, on a model of the file pages a process holds:
// base (the binary, the memtables: what a release of everything leaves),
// the value log files', the listed tables' data and their indexes. A
// release always takes the value log's; the tables' data too once the
// pages left have grown by tableBudget since the data last went (indexes
// and data both count); and the indexes too once they have grown by
// indexBudget since those last went. The first takes everything. Whatever
// grows between releases, a release leaves at most base + indexBudget +
// tableBudget, and never more than it found.
func TestReleaseBudgets(t *testing.T) {
	const mib = 1 << 20
	const base = 40 * mib
	var r resident
	var logs, data, index int64
	held := func() int64 { return base + logs + data + index }
	release := func() tablePart {
		r.lower(held())
		part := r.first()
		for {
			logs = 0
			if part >= tablesData {
				data = 0
			}
			if part == tablesWhole {
				index = 0
			}
			if r.enough(part, held()) {
				break
			}
			part++
		}
		r.released(part, held())
		return part
	}
	for i, step := range []struct {
		logs, data, index int64 // MiB grown since the release before
		want              tablePart
	}{
		{100, 50, 20, tablesWhole}, // the first release
		{20, 10, 5, tablesKept},    // tables 15 MiB past what the first left
		{20, 50, 0, tablesData},    // 65: the data goes, the indexes (5) stay
		{20, 0, 62, tablesKept},    // 67, 62 past what the data's release left
		{20, 0, 10, tablesWhole},   // 77: past both budgets
		{300, 30, 30, tablesKept},  // 60: the value log's growth does not count
	} {
		logs, data, index = logs+step.logs*mib, data+step.data*mib, index+step.index*mib
		if got := release(); got != step.want {
			t.Fatalf("release %d: took part %d of the tables, want %d (data %d MiB, indexes %d MiB left)", i, got, step.want, data/mib, index/mib)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 10_000 {
		logs += rng.Int64N(32 * mib)
		data += rng.Int64N(24 * mib)
		index += rng.Int64N(8 * mib)
		before := held()
		release()
		if now := held(); now > base+indexBudget+tableBudget || now > before || logs != 0 {
			t.Fatalf("release %d: %d MiB held after it, %d before (%d of the value log); base %d MiB", i, now/mib, before/mib, logs/mib, base/mib)
		}
	}
}

// TestTableFooter checks the footer reader that releases and the start's
// read of the tables' ends rely on, against footers built by hand: it
// reads a good one, through a file or a bare descriptor, and refuses each
// way a footer can be wrong, without reading outside what it read of the
// file's tail (a damaged table must not stop a start).
func TestTableFooter(t *testing.T) {
	footer := func(data, index int, sum []byte) []byte {
		b := make([]byte, data+index)
		for i := range b {
			b[i] = byte(i)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(index))
		b = append(b, sum...)
		return binary.BigEndian.AppendUint32(b, uint32(len(sum)))
	}
	sum13 := bytes.Repeat([]byte{7}, 13)
	cases := []struct {
		name         string
		file         []byte
		data, sumLen int64 // 0: refused
	}{
		{"good", footer(5000, 300, sum13), 5000, 13},
		{"a checksum of the longest length", footer(100, 20, bytes.Repeat([]byte{1}, maxChecksumLen)), 100, maxChecksumLen},
		{"a checksum longer than a checksum can be", footer(100, 20, bytes.Repeat([]byte{1}, maxChecksumLen+1)), 0, 0},
		{"no checksum", footer(100, 20, nil), 0, 0},
		{"no index", footer(100, 0, sum13), 0, 0},
		{"an index longer than the file", append(binary.BigEndian.AppendUint32(make([]byte, 10), 1000), append(sum13, 0, 0, 0, 13)...), 0, 0},
		{"shorter than a footer", []byte{0, 0, 0, 1, 0, 0, 1}, 0, 0},
		{"empty", nil, 0, 0},
		{"three bytes", []byte{0, 0, 1}, 0, 0},
		{"a checksum longer than the file", []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 13}, 0, 0},
		{"an index up to the file's start", footer(0, 20, sum13), 0, 0},
		{"zeros (a table not written yet)", make([]byte, 4096), 0, 0},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "000001.sst")
		if err := os.WriteFile(p, c.file, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		data, sumLen, ok := tableFooter(f, int64(len(c.file)))
		fdData, _, fdOK := tableFooter(fdReader(f.Fd()), int64(len(c.file)))
		f.Close()
		if ok != (c.data > 0) || data != c.data || sumLen != c.sumLen {
			t.Errorf("%s: %d bytes before the index, checksum of %d, ok %v; want %d, %d", c.name, data, sumLen, ok, c.data, c.sumLen)
		}
		if fdOK != ok || fdData != data {
			t.Errorf("%s: through a descriptor %d, %v; through a file %d, %v", c.name, fdData, fdOK, data, ok)
		}
	}
}

// sysMadvise gives each range its advice, however many there are, and
// skips those the kernel refuses (a range not mapped, one not aligned to
// a page) without stopping: of 1,500 one-page private mappings, given
// with 300 ranges not mapped among them, every seventh given from its
// second byte, every other one is unmapped from the process by
// MADV_DONTNEED (a private page then reads as zeros), and the
// advice given to the pages of a file shared mapping leaves the file as
// it was. So for both ways of giving it: process_madvise, adviceBatch
// ranges a call, where the kernel takes it (vectorAdvice), and one
// madvise a range, where it refuses the pidfd.
func TestMadviseRanges(t *testing.T) {
	page := os.Getpagesize()
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := bytes.Repeat([]byte{7}, page)
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	pidfd := vectorAdvice() // its probe maps a page of its own: before the holes
	t.Logf("process_madvise for the process itself: %v", pidfd >= 0)
	const n = 1500 // more than one process_madvise takes
	check := func(name string, give func(rs []advice) error) {
		t.Helper()
		shared, err := unix.Mmap(int(f.Fd()), 0, page, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(shared)
		_ = shared[0]
		maps := make([][]byte, n)
		var rs []advice
		for i := range maps {
			b, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
			if err != nil {
				t.Fatal(err)
			}
			b[0], b[page-1] = 1, 2
			maps[i] = b
			start := uintptr(unsafe.Pointer(&b[0]))
			if i%5 == 3 {
				// The first page, which nothing can map (mmap_min_addr
				// is a page at least): no memory is there to be lost.
				rs = append(rs, advice{0, uintptr(page), unix.MADV_DONTNEED})
			}
			if i%7 == 6 {
				rs = append(rs, advice{start + 1, uintptr(page - 1), unix.MADV_DONTNEED})
				continue
			}
			rs = append(rs, advice{start, uintptr(page), unix.MADV_DONTNEED}, advice{start, 0, unix.MADV_DONTNEED})
		}
		defer func() {
			for _, b := range maps {
				unix.Munmap(b)
			}
		}()
		rs = append(rs, advice{uintptr(unsafe.Pointer(&shared[0])), uintptr(page), unix.MADV_PAGEOUT})
		if err := give(rs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, b := range maps {
			switch {
			case i%7 == 6:
				if b[0] != 1 || b[page-1] != 2 {
					t.Fatalf("%s: mapping %d of %d, advised from its second byte: changed (reads %d, %d)", name, i, n, b[0], b[page-1])
				}
			case b[0] != 0 || b[page-1] != 0:
				t.Fatalf("%s: mapping %d of %d: not unmapped from the process (reads %d, %d)", name, i, n, b[0], b[page-1])
			}
		}
		if !bytes.Equal(shared, want) {
			t.Fatalf("%s: a shared mapping of a file reads otherwise once paged out", name)
		}
	}
	check("sysMadvise", sysMadvise)
	byAdvice := func(pidfd int) func(rs []advice) error {
		return func(rs []advice) error {
			for _, a := range []int{unix.MADV_DONTNEED, unix.MADV_PAGEOUT} {
				if err := madviseRanges(pidfd, slices.DeleteFunc(slices.Clone(rs), func(r advice) bool { return r.advice != a }), a); err != nil {
					return err
				}
			}
			return nil
		}
	}
	check("one madvise a range, the pidfd refused", byAdvice(-1))
	if pidfd >= 0 {
		check("process_madvise", byAdvice(pidfd))
	}
	b, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	if err := sysMadvise([]advice{{uintptr(unsafe.Pointer(&b[0])), uintptr(page), unix.MADV_FREE}}); err == nil {
		t.Fatal("advice other than MADV_DONTNEED and MADV_PAGEOUT given")
	}
}

// A release that would drop the tables' pages (any part but tablesKept)
// with the tables not pinned is refused: badger may unmap a table that is
// not, and memory mapped there since would be lost. Pinned, it is done.
func TestReleaseRefusedUnpinned(t *testing.T) {
	defer func(i, t int64) { indexBudget, tableBudget = i, t }(indexBudget, tableBudget)
	ctx := context.Background()
	s, all := reopenedStore(t, t.TempDir(), 100*256, 800)
	readAll := func() {
		t.Helper()
		readRecords(t, s, all)
	}
	readAll()
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released {
		t.Fatalf("the first release: %v, %v", released, err)
	}
	advised := recordRanges(t)
	for _, part := range []tablePart{tablesData, tablesWhole} {
		if err := s.res.release(s.tableIndexes(), s.res.newestLog(), part, false); err == nil {
			t.Errorf("a release of part %d, the tables not pinned, done", part)
		}
	}
	if a := advised(); len(a) != 0 {
		t.Errorf("releases refused gave advice: %v", a)
	}
	if err := s.res.release(s.tableIndexes(), s.res.newestLog(), tablesKept, false); err != nil {
		t.Errorf("a release keeping the tables, not pinned: %v", err)
	}
	tableBudget, indexBudget = -1<<40, -1<<40
	readAll()
	pins := s.res.pins
	if _, _, released, err := s.ReleasePages(ctx, 0); err != nil || !released || s.res.pins != pins+1 {
		t.Fatalf("a release past the budgets: %v, %v, pinned %d times", released, err, s.res.pins-pins)
	}
}

// readRecords reads every record of all from s, and fails the test if
// one cannot be read or reads otherwise.
func readRecords(t *testing.T, s *Store, all []store.Entry) {
	t.Helper()
	ctx := context.Background()
	for _, e := range all {
		raw, err := s.GetRecord(ctx, e.CID)
		if err != nil || !bytes.Equal(raw, e.Raw) {
			t.Fatalf("record %s: %v (%d bytes, want %d)", e.CID, err, len(raw), len(e.Raw))
		}
	}
}
