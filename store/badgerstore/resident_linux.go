package badgerstore

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// resident is what ReleasePages keeps between calls.
type resident struct {
	mu     sync.Mutex
	dir    string           // the store's directory, as /proc/self/maps names it
	data   map[string]int64 // a listed table file's bytes before its index
	floor  int64            // file pages held right after the last release
	tables int64            // file pages held right after the last release of the tables' data too, or since, if fewer
	whole  int64            // file pages held right after the last release of indexes too, or since, if fewer
	off    bool             // the kernel refused MADV_PAGEOUT
	pins   int              // releases that pinned and listed the tables
	// pinning is set while releasePinned holds the tables pinned, from
	// when it has listed them.
	pinning bool
	// random says that the store's mappings are read a page at a time
	// (ReadRandomly), those made before the directory last changed at
	// randomAt (zero: look again), the ranges in advised.
	random   bool
	randomAt time.Time
	// randomNow is random, read without mu (askBlocks).
	randomNow atomic.Bool
	advised   map[mapping]bool
}

// ReleasePages hands back to the kernel the pages of the store's value log
// and tables that the process holds mapped, once the file pages it holds
// (all of them: the binary's and the memtables' too) have grown by more
// than budget bytes since it last did (package doc, Resources). It returns
// the file pages the process held before and after, in bytes; released is
// false when it released nothing. On a kernel that does not reclaim pages
// on request it says so once, with an error, and then does nothing.
//
// Badger reads and writes its files through memory mappings, and every
// page the process touches stays counted in its resident memory until the
// kernel needs the memory back: an import held as much of them as it
// wrote. ReleasePages takes those pages out of the process now. From the
// tables badger lists, pinned meanwhile, it drops them all but their
// indexes once the pages held after a release have grown by tableBudget
// since those last went, and the indexes too but the head of each, which
// badger's list of its tables reads, once they have grown by indexBudget
// since the indexes last went (madvise MADV_DONTNEED: the mapping stays);
// it drops all of the value log files but the newest two
// (newestLog): their pages stay in the page cache, for the kernel to keep
// or reclaim as it keeps or reclaims any file's, and a read of them again
// maps them without reading the disk. The newest two value log files and
// the tables not listed yet, which badger may unmap
// meanwhile, it asks the kernel to reclaim (MADV_PAGEOUT): clean pages
// leave the process and the page cache, and are read from the file if read
// again; dirty ones leave the process and stay in the page cache until the
// kernel writes them, as it would have; of those tables, it leaves the
// indexes and bloom filters (paged out, they would leave the page cache
// too, and every read needs them once the tables are listed), and tables
// not yet written whole. It leaves badger's memtables, which are bounded.
// Nothing is lost: the pages are the files'. Any goroutine.
func (s *Store) ReleasePages(ctx context.Context, budget int64) (before, after int64, released bool, err error) {
	if err := s.begin(ctx); err != nil {
		return 0, 0, false, err
	}
	defer s.end()
	return s.releasePages(budget)
}

// releasePages is ReleasePages for a caller that holds closeMu.
func (s *Store) releasePages(budget int64) (before, after int64, released bool, err error) {
	r := &s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off {
		return 0, 0, false, nil
	}
	before, err = r.held()
	if err != nil {
		return 0, 0, false, err
	}
	if before <= r.floor+budget {
		return before, before, false, nil
	}
	if err := r.prepare(s.dir); err != nil {
		return before, before, false, err
	}
	part, after, released, err := s.releasePinned(r.first(), r.enough)
	if err != nil {
		if after > 0 { // a pass released, the next failed
			return before, after, true, err
		}
		return before, before, released, err
	}
	r.released(part, after)
	return before, after, true, nil
}

// The listed tables' pages stay while what is held after a release has
// grown by less than tableBudget since they last went, and their indexes
// while it has grown by less than indexBudget since those last went; the
// first release takes everything. A release takes the least (first), and
// more while what it leaves is past those budgets (enough); released
// notes what it left. r.mu is held for each.

// first returns how much of the tables a release takes at first.
func (r *resident) first() tablePart {
	if r.whole == 0 {
		return tablesWhole
	}
	return tablesKept
}

// enough reports whether a release that took part of the tables, leaving
// after bytes of file pages held, may stop there.
func (r *resident) enough(part tablePart, after int64) bool {
	switch part {
	case tablesKept:
		return after <= r.tables+tableBudget
	case tablesData:
		return after <= r.whole+indexBudget
	}
	return true
}

// released notes that a release took part of the tables, leaving after
// bytes of file pages held.
func (r *resident) released(part tablePart, after int64) {
	if part >= tablesData {
		r.tables = after
	}
	if part == tablesWhole {
		r.whole = after
	}
	r.floor = after
}

// tablePart is how much of the pages of the tables badger lists a release
// takes.
type tablePart int

const (
	tablesKept  tablePart = iota // none
	tablesData                   // all but their indexes
	tablesWhole                  // all but the head of each index (indexHead)
)

// PageOut is ReleasePages for a store that Close may be closing, or has
// closed, and for its value log files alone: it takes no lock of the
// store's and reads nothing of badger's. Close opens the store again once
// an import or a join has written a value log file larger than
// reopenAbove (close), and that Open reads the file through, by its
// mapping, to find where its writes end: up to valueLogFileSize of pages,
// with no release to take them back, at the end of every large import.
// Once the file pages the process holds have grown by more than budget
// since the last release, PageOut pages out (MADV_PAGEOUT) those of every
// value log file mapped from the store's directory, whichever Store mapped
// them: they leave the process and the page cache, and nothing is lost,
// whatever has been mapped there since (release). It leaves the tables,
// of which that Open reads little (their indexes, and the last block of
// each): the other releases drop their pages from the process and keep
// them in the page cache, which needs the tables pinned. Any goroutine.
// An Open that opens the store twice (after a crash, see Open) reads the
// file through before anything can call PageOut.
func (s *Store) PageOut(budget int64) (before, after int64, released bool, err error) {
	r := &s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off {
		return 0, 0, false, nil
	}
	before, err = r.held()
	if err != nil {
		return 0, 0, false, err
	}
	if before <= r.floor+budget {
		return before, before, false, nil
	}
	if err := r.prepare(s.dir); err != nil {
		return before, before, false, err
	}
	if err := r.release(nil, 0, tablesKept, true); err != nil {
		return before, before, false, err
	}
	if after, err = fileResident(); err != nil {
		return before, before, true, err
	}
	r.floor = after
	return before, after, true, nil
}

// held returns the file pages the process holds (fileResident), and
// lowers r.floor, r.tables and r.whole to them if they are fewer (lower).
// r.mu is held.
func (r *resident) held() (int64, error) {
	n, err := fileResident()
	if err != nil {
		return 0, err
	}
	r.lower(n)
	return n, nil
}

// lower notes that the process holds n bytes of file pages. r.mu is held.
func (r *resident) lower(n int64) {
	r.floor, r.tables, r.whole = min(r.floor, n), min(r.tables, n), min(r.whole, n)
}

// prepare readies r for its first release, of the pages of the files in
// the store's directory dir; it turns r off, and says why, if the kernel
// does not reclaim pages on request. r.mu is held.
func (r *resident) prepare(dir string) error {
	if r.dir != "" {
		return nil
	}
	if err := pageoutWorks(); err != nil {
		r.off = true
		return err
	}
	d, err := filepath.Abs(dir)
	if err == nil {
		d, err = filepath.EvalSymlinks(d)
	}
	if err != nil {
		return fmt.Errorf("badgerstore: release pages: %w", err)
	}
	r.dir = d + string(filepath.Separator)
	r.data = map[string]int64{}
	return nil
}

// releasePinned is release, with the tables pinned meanwhile: it takes
// part of the listed tables' pages, then each next part while enough
// says that what the last pass left is too much. It returns the part it
// took last, the file pages held after the last pass that measured them
// (0 if none did), and whether a pass released. The tables stay pinned
// from the first pass to the last, and are listed twice a release rather
// than twice a pass: listing them reads every table's index
// (tableIndexes), at 10,000,000 records more than a quarter of a
// release's CPU. A release that kept the tables' pages without pinning
// or listing them again (while badger's levels kept their tables and
// bytes) took 6 to 8 ms at 10,000,000 records rather than 20 to 49, and
// the releases of a daemon serving feed pages 22 ms at the mean rather
// than 23.3; but releases then came more often, and importing 1,000,000
// records into that store took 282 and 292 s against 254 and 263.
func (s *Store) releasePinned(part tablePart, enough func(part tablePart, after int64) bool) (last tablePart, after int64, released bool, err error) {
	r := &s.res
	newest := r.newestLog()
	// Every table in badger's levels is pinned while its pages are
	// released: an iterator holds a reference to each table listed when it
	// is made, and badger unmaps a table only once no reference is left,
	// or as the database closes, which closeMu (held by the caller) keeps
	// out. Tables listed both before and after it was made were listed
	// when it was (a table leaves the levels once, and its ID is never
	// given again: the store never calls badger's DropAll, which starts the
	// IDs over), so none of them is unmapped, nor its range mapped to
	// anything else, until the iterator is closed. Making it waits for the
	// commits in flight to be applied, and for a DropPrefix to end: a
	// release comes that much later. Closing it deletes the tables
	// compacted away meanwhile, as the last reader of a table does.
	r.pins++
	listed := s.tableIndexes()
	txn := s.db.NewTransaction(false)
	it := txn.NewIterator(badger.IteratorOptions{})
	defer func() {
		it.Close()
		txn.Discard()
	}()
	r.pinning = true
	defer func() { r.pinning = false }()
	pinned := s.tableIndexes()
	maps.DeleteFunc(pinned, func(name string, _ int64) bool { _, ok := listed[name]; return !ok })
	for {
		if err := r.release(pinned, newest, part, false); err != nil {
			return part, after, released, err
		}
		released = true
		n, err := fileResident()
		if err != nil {
			return part, after, true, err
		}
		if after = n; enough(part, after) {
			return part, after, true, nil
		}
		part++
	}
}

// newestLog returns the ID of the newest value log file in the store's
// directory, 0 if it lists none. Badger writes one value log file at a
// time, the one of the highest ID it made. It creates the next on disk
// before it maps it, and goes on writing the last one if that fails, each
// write then mapping it again, larger, elsewhere; so only the files two
// IDs or more below the newest listed are done with: written whole, their
// mappings cut to their size (badger does that before it creates the next
// file), before the directory was read. Badger unmaps them only to delete
// them, in its garbage collection or DropAll, which the store never calls
// (TestNoValueLogGC), or as it closes, which closeMu keeps out.
func (r *resident) newestLog() uint32 {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return 0
	}
	var newest uint32
	for _, e := range ents {
		if id, ok := logID(e.Name()); ok {
			newest = max(newest, id)
		}
	}
	return newest
}

// logID returns the ID of the value log file name, ok false if it is not
// one ("000042.vlog").
func logID(name string) (uint32, bool) {
	base, ok := strings.CutSuffix(name, ".vlog")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(base, 10, 32)
	return uint32(id), err == nil
}

// tableIndexes returns the size of the index of each table in badger's
// levels, by its file's name. Badger lists a table only once it has
// written it whole: a table being written is mapped before its footer is.
// Listing them reads a field at the head of each table's index, through
// its mapping (indexHead).
func (s *Store) tableIndexes() map[string]int64 {
	ts := s.db.Tables()
	m := make(map[string]int64, len(ts))
	for _, t := range ts {
		m[fmt.Sprintf("%06d.sst", t.ID)] = int64(t.IndexSz)
	}
	return m
}

// indexHead is how much of the head of a listed table's index release
// keeps mapped: badger's list of its tables (tableIndexes) reads a field
// of each index's root, which the index's encoding puts at its start.
// Dropped too, they were mapped again by the next release's listing, a
// fault or more for each table: at 10,000,000 records (2,213 tables, 2
// cores), each release took 224 to 236 ms, and 0.5 to 1.2 s with an
// import running beside it, against 14 to 22 ms keeping them (12 to 20 ms
// keeping the whole indexes). Kept, they cost a page or two a table: 9 MB
// of the 2,213 tables' 125 MB of indexes.
const indexHead = 256

// indexBudget is how much the pages held right after a release may grow,
// from what was held after the last release of the tables' indexes, before
// a release takes the indexes (bloom filters included) too. A read of a
// key reads a table's bloom filter at each level, and its index where the
// filter lets it through: dropped at every release, they were mapped again
// by the next reads, thousands of faults a release, and the node releases
// its pages every 16 MiB they grow. At 1,000,000 records the tables'
// indexes come to 13 MB (filters of 10 bits a key), at 10,000,000 to 106
// MB with filters of 7 bits (2,118 tables), about 140 MB with 10: up to
// that budget of them stays.
var indexBudget int64 = 64 << 20 // a variable for tests

// tableBudget is how much the pages held right after a release may grow,
// from what was held after the last release of the listed tables' pages,
// before a release takes those too: until then it takes the value log
// files' pages and those of the tables a compaction is writing. A value
// log file's pages are mostly read or written once (a sync session reads
// the records it sends in the order they were stored, an import writes
// them), where a table's blocks are read again by every lookup that lands
// in them: dropped at each release (every 16 MiB that the pages held
// grow, most of them the value log's), they were mapped again, a fault a
// block, and the daemon serving a join of 1,000,000 records spent half of
// its time on those faults and releases. A budget of 8 MiB for a
// command's import alone, whose reads of the tables are mostly the
// compactions' (each block once), did not pay: importing 1,000,000
// records (2 cores, four runs each) peaked at 378 to 452 MB against 415
// to 476, in 119 to 129 s against 111 to 126; importing 10,000,000 (one
// run each) at 647 MB against 657, in 2,101 s against 1,989. What an
// import holds at its peak is mostly whole tables that its compactions
// read and write (at 10,000,000 records, 77 tables held 269 MB), which
// that budget does not take.
var tableBudget int64 = 64 << 20 // a variable for tests

// release hands back the pages of the store's mapped value log files and
// tables: of the tables in pinned (a table's index size by its file's
// name), which badger does not unmap meanwhile, all of them but the index
// (none of them with tablesKept; all of them but the head of the index
// with tablesWhole), and of the value
// log files two IDs or more older than newestLog, all of them, by
// dropping them from the process (MADV_DONTNEED: the mapping stays), which
// leaves them in the page cache; of the other tables, up to their indexes,
// and of the other value log files, by paging them out (see sysMadvise).
// With logsOnly, it pages out the pages of every value log file, and
// leaves the tables: whatever has been mapped where it read a file's
// range, that advice loses nothing (see the call of madvise, after the loop), and it needs
// no table pinned; it gives no other. Any part but tablesKept needs the
// tables in pinned pinned (r.pinning), and is refused without.
func (r *resident) release(pinned map[string]int64, newestLog uint32, part tablePart, logsOnly bool) error {
	if part != tablesKept && !r.pinning {
		return fmt.Errorf("badgerstore: release pages: the tables' pages dropped (part %d) with the tables not pinned", part)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("badgerstore: release pages: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	page := uint64(os.Getpagesize())
	var advised []advice
	advise := func(start, length uintptr, a int) {
		advised = append(advised, advice{start, length, a})
	}
	var unlisted []unlistedTable
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields, path, ok := mapsLine(sc.Text())
		if !ok || filepath.Dir(path)+string(filepath.Separator) != r.dir || strings.HasSuffix(path, " (deleted)") {
			continue
		}
		if fields[2] != "00000000" {
			continue // badger maps its files whole, from their start
		}
		start, end, ok := mapRange(fields[0])
		if !ok {
			continue
		}
		length := end - start
		advice := unix.MADV_PAGEOUT
		switch filepath.Ext(path) {
		case ".vlog":
			if id, ok := logID(filepath.Base(path)); ok && !logsOnly && id+1 < newestLog && strings.HasSuffix(fields[1], "s") {
				// A value log file written whole before the directory was
				// read (newestLog), which badger neither maps again nor
				// unmaps while the store is open: its pages are dropped
				// from the process and stay in the page cache.
				advice = unix.MADV_DONTNEED
			}
		case ".sst":
			if logsOnly {
				continue
			}
			idx, listed := pinned[filepath.Base(path)]
			if listed && strings.HasSuffix(fields[1], "s") && part == tablesKept {
				seen[path] = true
				continue
			}
			if listed && strings.HasSuffix(fields[1], "s") {
				// All of the table, its index and bloom filter too, but
				// the index's head: they stay in the page cache, and the
				// next read that needs them maps them again without
				// reading the disk. (Only a shared mapping's pages are
				// the file's, and badger maps its tables shared.)
				advice = unix.MADV_DONTNEED
				seen[path] = true
				n, ok := r.data[path]
				if !ok {
					n = tableDataLen(path, idx)
					r.data[path] = n
				}
				if n <= 0 {
					break // the whole table: its footer is not what badger says
				}
				head := uint64(n) &^ (page - 1)
				advise(uintptr(start), uintptr(head), advice)
				if part != tablesWhole {
					continue // its index stays (indexBudget)
				}
				rest := min((uint64(n)+indexHead+page-1)&^(page-1), length)
				start, length = start+rest, length-rest
				break
			}
			// A table a compaction wrote, which badger lists once the
			// compaction has written all of its tables (one can write
			// hundreds of megabytes of them), or one being written: its
			// data, once its footer is written, read again at each release
			// until it is listed. Its index, which paging out would take
			// out of the page cache too, stays. Whether it is paged out is
			// decided once every such table is known (unlistedBudget).
			if id, ok := tableID(filepath.Base(path)); ok {
				if n := min(length, uint64(tableDataLen(path, -1))) &^ (page - 1); n > 0 {
					unlisted = append(unlisted, unlistedTable{id, start, n})
				}
				continue
			}
			length = min(length, uint64(tableDataLen(path, -1))) &^ (page - 1)
		default:
			continue
		}
		if length == 0 {
			continue
		}
		if logsOnly && advice != unix.MADV_PAGEOUT {
			return fmt.Errorf("badgerstore: release pages of %s: advice %d, where only paging out is safe", filepath.Base(path), advice)
		}
		advise(uintptr(start), uintptr(length), advice)
	}
	for p := range r.data {
		if !seen[p] && !logsOnly {
			delete(r.data, p)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("badgerstore: release pages: read /proc/self/maps: %w", err)
	}
	// The tables not listed yet, the newest first, stay mapped up to
	// unlistedBudget of their data; the rest is paged out.
	slices.SortFunc(unlisted, func(a, b unlistedTable) int { return cmp.Compare(b.id, a.id) })
	kept := uint64(0)
	for _, u := range unlisted {
		if kept+u.length <= uint64(unlistedBudget) {
			kept += u.length
			continue
		}
		advise(uintptr(u.start), uintptr(u.length), unix.MADV_PAGEOUT)
	}
	// The ranges were read from the maps a moment ago, and the tables
	// in pinned are pinned still. A pinned table's range is its table's
	// still, so unmapping its pages loses nothing (a shared mapping's
	// pages are the file's). Any other may have been unmapped since
	// (ENOMEM) and memory mapped there, which paging out only sends where
	// the kernel's reclaim would (anonymous memory to swap, or nowhere
	// without it), never lost, whatever it holds, where MADV_DONTNEED
	// would discard it; memory locked there gives EINVAL.
	if err := madvise(advised); err != nil {
		return fmt.Errorf("badgerstore: release pages: %w", err)
	}
	return nil
}

// unlistedTable is the mapping of a table badger does not list yet: its
// file's ID, the mapping's start, and the bytes of its data.
type unlistedTable struct {
	id            uint64
	start, length uint64
}

// unlistedBudget is how much of the data of the tables that badger does not
// list yet (a compaction lists the tables it writes once it has written
// them all) a release leaves mapped, the newest tables first. Paged out,
// their pages leave the page cache too (the kernel's reclaim frees a
// clean page it unmaps), and a table a compaction wrote is read again,
// from the disk, by the next compaction, or by a lookup once it is
// listed. Importing 1,000,000 records (2 cores, a store of 1.4 GB,
// `commons testnet bench scale --no-join`, two runs each, alternately)
// read 1.8 GB from the disk with this budget against 4.3 and 4.4 with
// every such table paged out (the file of records, 0.5 GB, included), at
// 12,028 and 10,388 records a second against 10,702 and 10,491, with
// peaks of 459 and 422 MB resident against 402 and 397; a daemon started
// on the store then read nothing from the disk for a feed page, against
// 1.8 and 1.3 page faults that read it a page, and 0.32 and 1.0 for a
// contribution's lookup against 1.5 and 0.95 (a lookup reads the record
// from the value log, whose newest files a release pages out). With no
// budget at all: 1.3 GB read, peaks of 427 MB. Once listed, a release
// drops their pages and keeps them in the page cache, as it does every
// listed table's. A variable for tests.
var unlistedBudget int64 = 64 << 20

// tableID returns the ID of the table file name, ok false if it is not one
// ("000042.sst").
func tableID(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, ".sst")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(base, 10, 64)
	return id, err == nil
}

// advice is the advice given for a range of the process's memory: the
// range from start, for length bytes, and unix.MADV_PAGEOUT or
// unix.MADV_DONTNEED.
type advice struct {
	start, length uintptr
	advice        int
}

// madvise is sysMadvise, or what a test puts in its place to see the
// advice given.
var madvise = sysMadvise

// sysMadvise gives the kernel each advice of rs: MADV_PAGEOUT, reclaim
// the range's pages; MADV_DONTNEED, unmap them (only for a range that
// cannot have been mapped to anything else since it was read). A range
// unmapped meanwhile (ENOMEM), or locked (EINVAL), is skipped.
//
// Where the kernel takes them (vectorAdvice), the ranges of each advice
// go to it adviceBatch at a time (process_madvise, for the process
// itself), which flushes the TLBs of every core the process runs on once
// a call rather than once a range (Linux 6.16 and later). At
// 10,000,000 records (2 cores, 2,122 tables, Linux 6.18), the release
// that takes the tables' indexes once the daemon has started, about 4,000
// ranges, took 547 to 792 ms with a madvise a range, and 128 to 143 ms
// so (in batches of 1,024); the releases of a daemon serving feed pages,
// 35 to 41 ms at the mean against 23 to 28.
func sysMadvise(rs []advice) error {
	for _, r := range rs {
		if r.advice != unix.MADV_DONTNEED && r.advice != unix.MADV_PAGEOUT {
			return fmt.Errorf("advice %d for %#x: neither MADV_DONTNEED nor MADV_PAGEOUT", r.advice, r.start)
		}
	}
	pidfd := vectorAdvice()
	for _, a := range []int{unix.MADV_DONTNEED, unix.MADV_PAGEOUT} {
		var same []advice
		for _, r := range rs {
			if r.advice == a {
				same = append(same, r)
			}
		}
		if pidfd < 0 {
			for _, r := range same {
				if err := madviseRange(r); err != nil {
					return err
				}
			}
			continue
		}
		if err := madviseRanges(pidfd, same, a); err != nil {
			return err
		}
	}
	return nil
}

// madviseRange gives r's advice to the kernel, with one madvise.
func madviseRange(r advice) error {
	if r.length == 0 {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.length, uintptr(r.advice))
	switch errno {
	case 0, unix.ENOMEM, unix.EINVAL:
		return nil
	}
	return fmt.Errorf("madvise %#x (%d bytes): %w", r.start, r.length, errno)
}

// adviceBatch is how many ranges sysMadvise gives in one process_madvise
// (the kernel takes up to 1,024): the kernel holds the process's memory
// map for reading meanwhile, and whatever maps or unmaps memory (badger
// mapping a table, the Go runtime growing its heap) waits for it. At
// 10,000,000 records, the release after the start (about 4,000 ranges)
// took 103 to 123 ms in batches of 128, and 99 to 118 ms in batches of
// 1,024 (three starts of each, alternately): batches of 128 keep each
// wait to a few milliseconds, for 32 TLB flushes rather than 4.
const adviceBatch = 128

// madviseRanges gives advice a to the ranges rs of the process whose
// pidfd is pidfd (the process itself), adviceBatch ranges a call. The
// kernel gives the advice range by range, and stops at one it refuses,
// returning the bytes of the ranges before it: the next call starts at
// that range, and the kernel's refusal of it alone says why. A refusal
// that is not about a range (ENOMEM or EINVAL are) has the ranges left
// given one madvise each.
func madviseRanges(pidfd int, rs []advice, a int) error {
	rs = slices.DeleteFunc(slices.Clone(rs), func(r advice) bool { return r.length == 0 })
	iov := make([]uintptr, 0, 2*min(len(rs), adviceBatch)) // struct iovec: a base and a length
	for len(rs) > 0 {
		k := min(len(rs), adviceBatch)
		iov = iov[:0]
		for _, r := range rs[:k] {
			iov = append(iov, r.start, r.length)
		}
		n, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k), uintptr(a), 0, 0)
		switch errno {
		case 0:
		case unix.ENOMEM, unix.EINVAL: // the first range: skipped
			rs = rs[1:]
			continue
		default: // not about a range (the pidfd, a filter of system calls): one at a time
			for _, r := range rs {
				if err := madviseRange(r); err != nil {
					return err
				}
			}
			return nil
		}
		done := 0
		for done < k && n >= rs[done].length {
			n -= rs[done].length
			done++
		}
		if done == 0 { // nothing given and no refusal: one at a time
			if err := madviseRange(rs[0]); err != nil {
				return err
			}
			done = 1
		}
		rs = rs[done:]
	}
	return nil
}

// vectorAdvice returns a pidfd of the process, if the kernel takes
// MADV_DONTNEED for the process's own ranges in process_madvise (Linux
// 6.13 and later), trying it on a page of its own; -1 if not. The pidfd
// stays open for the life of the process.
var vectorAdvice = sync.OnceValue(func() int {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return -1
	}
	size := os.Getpagesize()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		unix.Close(fd)
		return -1
	}
	defer unix.Munmap(b)
	b[0] = 1
	iov := []uintptr{uintptr(unsafe.Pointer(&b[0])), uintptr(size)}
	n, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 1, unix.MADV_DONTNEED, 0, 0)
	if errno != 0 || n != uintptr(size) || b[0] != 0 { // an unmapped private page reads as zeros
		unix.Close(fd)
		return -1
	}
	return fd
})

// pageoutWorks returns nil if the kernel takes MADV_PAGEOUT (Linux 5.4
// and later), trying it on a page of its own.
func pageoutWorks() error {
	b, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return fmt.Errorf("badgerstore: release pages: %w", err)
	}
	defer unix.Munmap(b)
	b[0] = 1
	if err := unix.Madvise(b, unix.MADV_PAGEOUT); err != nil {
		return fmt.Errorf("badgerstore: the kernel does not reclaim pages on request (madvise MADV_PAGEOUT, Linux 5.4 and later): %w; the pages of the store's files stay in the process until the kernel needs the memory", err)
	}
	return nil
}

// mapsLine splits a line of /proc/self/maps into its first five fields
// (range, permissions, offset, device, inode) and the path after them,
// which may hold spaces; ok is false if the line has no path.
func mapsLine(line string) (fields [5]string, path string, ok bool) {
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		f, after, found := strings.Cut(rest, " ")
		if !found {
			return fields, "", false
		}
		fields[i], rest = f, after
	}
	path = strings.TrimLeft(rest, " ")
	return fields, path, path != ""
}

// mapRange returns the first address of the range a line of
// /proc/self/maps gives in its first field ("start-end", in hexadecimal),
// and the last + 1; ok is false if the field is not such a range.
func mapRange(field string) (start, end uint64, ok bool) {
	lo, hi, ok := strings.Cut(field, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	return start, end, err1 == nil && err2 == nil && end > start
}

// tableDataLen returns the bytes of the table file at path before its
// index, which badger's table format gives at its end: the index, its
// length (4 bytes), its checksum and the checksum's length (4 bytes). It
// returns 0 if it cannot tell (tableFooter), or if the index's length
// there is not index, the length badger gives. An index below 0 is a table
// badger does not list yet, whose footer is taken when it looks whole:
// badger maps a new table at its size, zeros, and writes it in order,
// footer last; a footer whose last bytes are not zero was written whole,
// and one that is not is not taken (its checksum's length would be 0).
func tableDataLen(path string, index int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	size := fi.Size()
	data, sumLen, ok := tableFooter(f, size)
	if !ok || index >= 0 && size-8-sumLen-data != index {
		return 0
	}
	return data
}

// tableFooter returns the bytes before the index of the table r, of size
// bytes, as its footer gives them (the index, its length in 4 bytes, its
// checksum, and the checksum's length in 4 bytes), and the checksum's
// length. It reads the footer in one read of its last footerTail bytes;
// ok is false if the footer does not say, or gives a checksum longer than
// a checksum can be.
func tableFooter(r io.ReaderAt, size int64) (data, sumLen int64, ok bool) {
	var buf [footerTail]byte
	n := min(size, footerTail)
	if n < 8 {
		return 0, 0, false
	}
	b := buf[:n]
	if _, err := r.ReadAt(b, size-n); err != nil {
		return 0, 0, false
	}
	sumLen = int64(binary.BigEndian.Uint32(b[n-4:]))
	if sumLen <= 0 || sumLen > maxChecksumLen || 8+sumLen > n {
		return 0, 0, false
	}
	idxLen := int64(binary.BigEndian.Uint32(b[n-8-sumLen:]))
	data = size - 8 - sumLen - idxLen
	if idxLen <= 0 || data <= 0 {
		return 0, 0, false
	}
	return data, sumLen, true
}

// footerTail is how much of a table's end tableFooter reads: the index's
// length, the longest checksum, and the checksum's length.
const footerTail = 8 + maxChecksumLen

// maxChecksumLen bounds the length of a table's checksum in its footer
// (a protobuf of an algorithm and a 64-bit sum: 13 bytes at most).
const maxChecksumLen = 64

// fileResident returns the bytes of file pages the process holds mapped
// (RssFile in /proc/self/status).
func fileResident() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("badgerstore: release pages: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("RssFile:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, errors.New("badgerstore: release pages: /proc/self/status gives no RssFile")
}
