package badgerstore

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"golang.org/x/sys/unix"
)

// blocks asks the kernel, before a read of a key or a seek, for the block
// of each table that badger will read, all at once. A block of 16 KiB is
// four pages, and badger's search in it reads three or four of them, one
// after another; while the store's files are read a page at a time
// (ReadRandomly), a page not in memory is read alone when it is touched.
// A block the disk holds took three or four reads in turn, and a seek
// (which reads a block of every level) a dozen and more. Asked for first,
// each block is one read, and the blocks of a seek's levels are read side
// by side.
//
// It asks only while the store reads randomly and a tenth or more of its
// recent reads took slowRead or longer (a read the page cache serves takes
// a few microseconds; one that waits on the disk, a hundred and more): on
// a store the page cache holds, a read costs two looks at the clock, not a
// search of the tables' indexes. On one that the page cache held but for
// one read in seventy (a fresh import of 100,000 records, 2 cores),
// asking for a second after every read that waited made lookups of
// contributions slower (p50 0.41 and 0.47 ms against 0.30 and 0.31). On
// 10,000,000 records with nothing cached, the lookups' page faults that
// read the disk went from 11 to 12 a lookup to 2.1 to 2.2, and their p50
// from 1.32 to 1.41 ms to 1.05 to 1.20 (the README gives the runs).
//
// It finds a block as badger does, in the table's index (its bloom
// filter, then its blocks' first keys), which it reads from the table's
// file a page at a time as the search needs them (the page cache holds
// them: Open reads them, and so does every lookup), keeping up to
// indexBytes of them. It asks with
// posix_fadvise(POSIX_FADV_WILLNEED), which starts the reads and returns.
// It changes only when pages are read, never what a read returns: a table
// that a compaction replaced since the list was read is asked for in
// vain, and an index that does not parse, or that is not the one badger
// read (its length), or that names a block outside the table's data, has
// nothing asked for. A read of the tables' indexes holds no lock.
type blocks struct {
	// slow is the share of the recent reads that took slowRead or longer,
	// in 65,536ths: each read moves it a sixteenth of the way to all or
	// none.
	slow atomic.Uint32

	mu     sync.Mutex
	listed time.Time // when levels was read
	levels [][]badger.TableInfo
	tables map[uint64]tableIndex // by ID: where each index lies
	pages  map[indexPage]*list.Element
	used   list.List // of *cachedPage, most recently used first; a page's bytes never change
}

// tableIndex says where a table's index lies in its file.
type tableIndex struct {
	start, n int64 // the index's first byte in the file, and its length
}

// indexPage names a page of a table's file.
type indexPage struct {
	id   uint64
	page int64
}

type cachedPage struct {
	at   indexPage
	data []byte
}

const (
	// slowRead is how long a read takes that waited on the disk.
	slowRead = 200 * time.Microsecond
	// slowShare is the share of slow reads from which blocks are asked
	// for, in 65,536ths.
	slowShare = 65536 / 10
	// listAge is how old the list of tables may be.
	listAge = time.Second
	// indexBytes bounds the pages of the tables' indexes kept.
	indexBytes = 4 << 20
	// maxBlock bounds the bytes asked for at once: a few blocks.
	maxBlock = 1 << 20
	// sameKeyBlocks bounds the blocks after the one a seek lands in that
	// are asked for because they begin with the key sought (its older
	// versions).
	sameKeyBlocks = 4
	// keptTables bounds the tables whose index's place is kept.
	keptTables = 1 << 14
)

// askBlocks asks for the blocks that a read of key (a Get) or a seek to it
// (seek, through an iterator of prefix) reads. It returns when the read
// begins, for readDone (the zero time while the store reads around).
func (s *Store) askBlocks(key, prefix []byte, seek bool) (start time.Time) {
	if !s.res.randomNow.Load() {
		return time.Time{}
	}
	b := &s.blocks
	now := time.Now()
	if b.slow.Load() < slowShare {
		return now
	}
	k := y.KeyWithTs(key, math.MaxUint64)
	b.mu.Lock()
	if b.levels == nil || now.Sub(b.listed) > listAge {
		b.list(s.db)
		b.listed = now
	}
	var tables []badger.TableInfo
	for _, lv := range b.levels {
		tables = append(tables, candidates(lv, k, prefix, seek)...)
	}
	b.mu.Unlock()
	defer func() {
		// Only a hint: a table that makes the search fail in a way not
		// foreseen has nothing asked for, and the read goes on.
		_ = recover()
	}()
	hash := y.Hash(key)
	for _, t := range tables {
		b.ask(s.dir, t, k, hash, seek)
	}
	return time.Now()
}

// readDone notes a read that began at start (askBlocks) and has ended.
func (s *Store) readDone(start time.Time) {
	if start.IsZero() {
		return
	}
	slow := time.Since(start) >= slowRead
	for {
		old := s.blocks.slow.Load()
		share := old - old/16
		if slow {
			share += 65536 / 16
		}
		if s.blocks.slow.CompareAndSwap(old, share) {
			return
		}
	}
}

// list reads badger's tables, by level, those of each level below the
// first by their keys.
func (b *blocks) list(db *badger.DB) {
	b.levels = b.levels[:0]
	for _, t := range db.Tables() {
		for len(b.levels) <= t.Level {
			b.levels = append(b.levels, nil)
		}
		b.levels[t.Level] = append(b.levels[t.Level], t)
	}
	for l := 1; l < len(b.levels); l++ {
		slices.SortFunc(b.levels[l], func(a, c badger.TableInfo) int { return y.CompareKeys(a.Right, c.Right) })
	}
}

// candidates returns the tables of a level that badger reads for k: for
// a Get, each of level 0 whose range holds k, and below it the one whose
// range holds k; for a seek through an iterator of prefix, each of level 0
// whose range meets prefix's, and below it the first whose largest key is
// not below k, if its range meets prefix's.
func candidates(lv []badger.TableInfo, k, prefix []byte, seek bool) []badger.TableInfo {
	if len(lv) == 0 {
		return nil
	}
	// Keys are compared without their versions: k's is the lowest, and a
	// table whose smallest key is k's key, at any version, holds it.
	user := y.ParseKey(k)
	meets := func(t badger.TableInfo) bool {
		if seek {
			return prefixCmp(t.Left, prefix) <= 0 && prefixCmp(t.Right, prefix) >= 0
		}
		return bytes.Compare(y.ParseKey(t.Left), user) <= 0 && bytes.Compare(y.ParseKey(t.Right), user) >= 0
	}
	if lv[0].Level == 0 {
		var out []badger.TableInfo
		for _, t := range lv {
			if meets(t) {
				out = append(out, t)
			}
		}
		return out
	}
	i, _ := slices.BinarySearchFunc(lv, k, func(t badger.TableInfo, k []byte) int { return y.CompareKeys(t.Right, k) })
	if i == len(lv) || !meets(lv[i]) {
		return nil
	}
	return lv[i : i+1]
}

// prefixCmp compares a table's key, without its version, cut to prefix's
// length, with prefix, as badger's iterators do to pick tables.
func prefixCmp(key, prefix []byte) int {
	key = y.ParseKey(key)
	if len(key) > len(prefix) {
		key = key[:len(prefix)]
	}
	return bytes.Compare(key, prefix)
}

// ask asks for the block of table t in dir that badger reads for k (for a
// Get, only if the table's bloom filter does not rule out the key whose
// hash is hash).
func (b *blocks) ask(dir string, t badger.TableInfo, k []byte, hash uint32, seek bool) {
	r := &indexReader{b: b, path: dir + "/" + table.IDToFilename(t.ID), fd: -1, id: t.ID, bloom: int64(t.BloomFilterSize)}
	defer r.close()
	if !b.locate(r) || r.n != int64(t.IndexSz) {
		return // not the index badger read
	}
	off, n, ok := r.block(k, hash, seek)
	if !ok || off < 0 || n <= 0 || n > maxBlock || off+n > r.start {
		return
	}
	if fd := r.file(); fd >= 0 {
		adviseBlock(t.ID, fd, off, n)
	}
}

// adviseBlock asks the kernel to read n bytes at off of table id, open as
// fd; a variable for tests.
var adviseBlock = func(id uint64, fd int, off, n int64) {
	_ = unix.Fadvise(fd, off, n, unix.FADV_WILLNEED)
}

// locate sets where r's table's index lies, from its footer, reporting
// whether it could tell.
func (b *blocks) locate(r *indexReader) bool {
	b.mu.Lock()
	t, ok := b.tables[r.id]
	b.mu.Unlock()
	if ok {
		r.start, r.n = t.start, t.n
		return true
	}
	fd := r.file()
	var st unix.Stat_t
	if fd < 0 || unix.Fstat(fd, &st) != nil {
		return false
	}
	data, sumLen, ok := tableFooter(fdReader(fd), st.Size)
	if !ok {
		return false
	}
	r.start, r.n = data, st.Size-8-sumLen-data
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tables == nil || len(b.tables) >= keptTables {
		b.tables = make(map[uint64]tableIndex)
	}
	b.tables[r.id] = tableIndex{start: r.start, n: r.n}
	return true
}

// indexReader reads a table's index (a flatbuffer: badger's fb.TableIndex)
// from its file a page at a time, through the pages blocks keeps. A read
// outside the index, or that the file cannot give, sets bad.
type indexReader struct {
	b        *blocks
	path     string // the table's file
	fd       int    // the file, open (once a read needs it), or -1
	id       uint64
	bloom    int64 // the bloom filter's length, as badger read it
	start, n int64
	bad      bool
	// The pages read last, most of the reads of a search landing in
	// one of them.
	last     [2]indexPage
	lastData [2][]byte
}

// file returns the table's file, opened if it is not yet, or -1 if it
// cannot be.
func (r *indexReader) file() int {
	if r.fd < 0 && !r.bad {
		fd, err := unix.Open(r.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err != nil {
			r.bad = true
			return -1
		}
		r.fd = fd
	}
	return r.fd
}

// close closes the table's file if it was opened.
func (r *indexReader) close() {
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
		r.fd = -1
	}
}

// bytes returns n bytes at off in the index, within one page of the
// file, or nil (setting bad).
func (r *indexReader) bytes(off, n int64) []byte {
	if r.bad || off < 0 || n < 0 || off+n > r.n {
		r.bad = true
		return nil
	}
	size := int64(os.Getpagesize())
	at := r.start + off
	page := at / size
	if (at+n-1)/size != page && n > 0 {
		// Straddles two pages: read it whole.
		buf := make([]byte, n)
		fd := r.file()
		if fd < 0 {
			return nil
		}
		if _, err := fdReader(fd).ReadAt(buf, at); err != nil {
			r.bad = true
			return nil
		}
		return buf
	}
	at2 := indexPage{r.id, page}
	var data []byte
	switch {
	case r.lastData[0] != nil && at2 == r.last[0]:
		data = r.lastData[0]
	case r.lastData[1] != nil && at2 == r.last[1]:
		data = r.lastData[1]
		r.last[0], r.last[1] = r.last[1], r.last[0]
		r.lastData[0], r.lastData[1] = r.lastData[1], r.lastData[0]
	default:
		data = r.b.page(r, at2, size)
		if data != nil {
			r.last[1], r.lastData[1] = r.last[0], r.lastData[0]
			r.last[0], r.lastData[0] = at2, data
		}
	}
	if data == nil || at-page*size+n > int64(len(data)) {
		r.bad = true
		return nil
	}
	return data[at-page*size : at-page*size+n]
}

func (r *indexReader) u32(off int64) int64 {
	b := r.bytes(off, 4)
	if b == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint32(b))
}

func (r *indexReader) u16(off int64) int64 {
	b := r.bytes(off, 2)
	if b == nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint16(b))
}

// field returns the position of a flatbuffer table's field at slot (4
// for the first, 6 for the second, ...), or 0 if the table lacks it.
func (r *indexReader) field(tab, slot int64) int64 {
	vt := tab - int64(int32(uint32(r.u32(tab))))
	if slot+2 > r.u16(vt) {
		return 0
	}
	o := r.u16(vt + slot)
	if o == 0 {
		return 0
	}
	return tab + o
}

// vector returns the first element's position and the length of the
// vector that the field at pos refers to.
func (r *indexReader) vector(pos int64) (at, n int64) {
	v := pos + r.u32(pos)
	return v + 4, r.u32(v)
}

// block returns the offset and length of the block of the table that
// badger reads for k, the key whose hash is hash: for a seek, the last
// whose first key is not above k (the first if none); for a Get, the
// same, unless the table's bloom filter rules the key out (ok false).
func (r *indexReader) block(k []byte, hash uint32, seek bool) (off, n int64, ok bool) {
	root := r.u32(0)
	offs, blooms := r.field(root, 4), r.field(root, 6)
	if offs == 0 || r.bad {
		return 0, 0, false
	}
	if !seek && blooms != 0 && !r.mayContain(blooms, hash) {
		return 0, 0, false
	}
	first, count := r.vector(offs)
	if count == 0 || r.bad {
		return 0, 0, false
	}
	// The block to read is the one before the first whose first key is
	// above k (badger's table iterator's seek).
	lo, hi := int64(0), count
	for lo < hi && !r.bad {
		m := int64(uint64(lo+hi) >> 1)
		key := r.blockKey(first, m)
		if r.bad {
			break
		}
		if y.CompareKeys(key, k) > 0 {
			hi = m
		} else {
			lo = m + 1
		}
	}
	i := max(lo-1, 0)
	off, n = r.blockAt(first, i)
	// Badger's seek goes on to the next block when this one holds no key
	// at or after k: when the next begins with k's key (its older
	// versions; and the one after, if that does too), and for a key the
	// table lacks that is above this block's last, which a seek for a
	// prefix meets about once in as many seeks as a block has keys. The
	// next block asked for with every seek, lookups of contributions on
	// 10,000,000 records were slower at p99 (2 cores, a virtual disk
	// that serves reads side by side little faster than one after
	// another): more bytes read, for the one seek in a hundred or so
	// that reads them.
	for j := lo; j < count && j < lo+sameKeyBlocks && !r.bad; j++ {
		if !bytes.Equal(y.ParseKey(r.blockKey(first, j)), y.ParseKey(k)) {
			break
		}
		o, l := r.blockAt(first, j)
		n = o + l - off
	}
	return off, n, !r.bad && n > 0
}

// blockAt returns the offset and length of block i, whose entry in the
// offsets vector starting at first refers to its BlockOffset table.
func (r *indexReader) blockAt(first, i int64) (off, n int64) {
	tab := first + 4*i
	tab += r.u32(tab)
	// A field at its default, 0, is left out of the buffer: the first
	// block's offset.
	if o := r.field(tab, 6); o != 0 {
		off = r.u32(o)
	}
	if l := r.field(tab, 8); l != 0 {
		n = r.u32(l)
	}
	return off, n
}

// blockKey returns the first key of block i, whose entry in the offsets
// vector starting at first refers to its BlockOffset table; a key that
// cannot be read compares as the largest.
func (r *indexReader) blockKey(first, i int64) []byte {
	tab := first + 4*i
	tab += r.u32(tab)
	f := r.field(tab, 4)
	if f == 0 {
		r.bad = true
		return nil
	}
	at, n := r.vector(f)
	if n < 8 || n > 1<<16 {
		r.bad = true
		return nil
	}
	key := make([]byte, 0, n)
	for n > 0 && !r.bad {
		// A key may straddle pages: read it a page at a time.
		size := int64(os.Getpagesize())
		in := min(n, size-(r.start+at)%size)
		key = append(key, r.bytes(at, in)...)
		at, n = at+in, n-in
	}
	return key
}

// mayContain reports whether the bloom filter that the field at pos
// refers to may hold the key whose hash is h (badger's y.Filter).
func (r *indexReader) mayContain(pos int64, h uint32) bool {
	at, n := r.vector(pos)
	if r.bad || n != r.bloom || n-1 > math.MaxUint32/8 {
		r.bad = true // not the filter badger read
		return true
	}
	if n < 2 {
		return false // as badger has it
	}
	k := r.bytes(at+n-1, 1)
	if k == nil || k[0] > 30 {
		return true
	}
	bits := uint32(8 * (n - 1))
	delta := h>>17 | h<<15
	for range k[0] {
		pos := h % bits
		c := r.bytes(at+int64(pos/8), 1)
		if c == nil {
			return true
		}
		if c[0]&(1<<(pos%8)) == 0 {
			return false
		}
		h += delta
	}
	return true
}

// page returns page at of r's table's file, read (without the lock held)
// if not kept; nil if it cannot be read.
func (b *blocks) page(r *indexReader, at indexPage, size int64) []byte {
	b.mu.Lock()
	if e, ok := b.pages[at]; ok {
		b.used.MoveToFront(e)
		b.mu.Unlock()
		return e.Value.(*cachedPage).data
	}
	b.mu.Unlock()
	fd := r.file()
	if fd < 0 {
		return nil
	}
	buf := make([]byte, size)
	n, err := unix.Pread(fd, buf, at.page*size)
	if err != nil || n <= 0 {
		return nil
	}
	buf = buf[:n]
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.pages[at]; ok {
		return buf // read meanwhile by another call
	}
	if b.pages == nil {
		b.pages = make(map[indexPage]*list.Element)
	}
	for b.used.Len() > 0 && int64(b.used.Len()+1)*size > indexBytes {
		e := b.used.Back()
		b.used.Remove(e)
		delete(b.pages, e.Value.(*cachedPage).at)
	}
	b.pages[at] = b.used.PushFront(&cachedPage{at: at, data: buf})
	return buf
}
