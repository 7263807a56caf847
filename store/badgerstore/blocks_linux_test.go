package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"golang.org/x/sys/unix"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// blockStore returns a store whose derived state holds keys under the
// tags 'p' and 'q', each 'p' or 'q' and 24 random bytes, in tables of
// three levels or more (none in a memtable), and the keys. The seed is
// logged.
func blockStore(t testing.TB) (*Store, [][]byte) {
	t.Helper()
	defer func(f func(badger.Options) badger.Options) { testOptions = f }(testOptions)
	testOptions = func(o badger.Options) badger.Options {
		return o.WithMemTableSize(1 << 20).WithBaseTableSize(128 << 10).WithBaseLevelSize(512 << 10).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(8)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	commons := protocol.RecordCID([]byte("commons"))
	var keys [][]byte
	for range 40 {
		var ws []store.Write
		for range 2000 {
			k := make([]byte, 25)
			k[0] = "pq"[rng.IntN(2)]
			for i := 1; i < len(k); i++ {
				k[i] = byte(rng.Uint32())
			}
			keys = append(keys, k)
			ws = append(ws, store.Write{Key: k, Value: []byte("value")})
		}
		if err := s.CommitDerived(ctx, []store.Derived{{Commons: commons, Writes: ws}}); err != nil {
			t.Fatal(err)
		}
	}
	// Until at least three levels hold tables.
	for i := 0; ; i++ {
		levels := map[int]bool{}
		for _, ti := range s.db.Tables() {
			levels[ti.Level] = true
		}
		if len(levels) >= 3 {
			break
		}
		if i == 200 {
			t.Fatalf("tables at %d levels after 20 s", len(levels))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Opened again without compactions, every key in a table: none is
	// replaced while the test reads them.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	testOptions = func(o badger.Options) badger.Options { return o.WithNumCompactors(0) }
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, keys
}

// randomBlockStore is blockStore, reading its files a page at a time.
func randomBlockStore(tb testing.TB) (*Store, [][]byte) {
	tb.Helper()
	s, keys := blockStore(tb)
	if err := s.ReadRandomly(context.Background(), true); err != nil {
		tb.Fatal(err)
	}
	return s, keys
}

// fbIndex reads table id's index through badger's own flatbuffer code.
func fbIndex(t *testing.T, dir string, id uint64) *fb.TableIndex {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, table.IDToFilename(id)))
	if err != nil {
		t.Fatal(err)
	}
	n := len(b)
	sumLen := int(binary.BigEndian.Uint32(b[n-4:]))
	idxLen := int(binary.BigEndian.Uint32(b[n-8-sumLen:]))
	start := n - 8 - sumLen - idxLen
	return fb.GetRootAsTableIndex(b[start:start+idxLen], 0)
}

// A table's block for a key, found by reading its index a page at a time,
// is the last whose first key is not above the key (the first if none),
// as a walk through badger's own reading of the index finds it; and a
// Get's is there only if badger's bloom filter does not rule the key out.
func TestIndexReaderBlock(t *testing.T) {
	s, keys := blockStore(t)
	base := s.derivedPrefix(protocol.RecordCID([]byte("commons")))
	rng := rand.New(rand.NewPCG(uint64(len(keys)), 1))
	var b blocks
	tables := s.db.Tables()
	checked, ruledOut := 0, 0
	for _, ti := range tables {
		idx := fbIndex(t, s.dir, ti.ID)
		var ko fb.BlockOffset
		first := func(j int) []byte {
			idx.Offsets(&ko, j)
			return ko.KeyBytes()
		}
		// want walks the blocks: the last whose first key is not above
		// k, and after it up to four that begin with k's key; the first
		// alone if none is.
		want := func(k []byte, seek bool) (off, n int64) {
			i, below := 0, false
			for j := range idx.OffsetsLength() {
				if y.CompareKeys(first(j), k) <= 0 {
					i, below = j, true
				}
			}
			last := i
			for j := i + 1; below && j < idx.OffsetsLength() && j <= i+4; j++ {
				if !bytes.Equal(y.ParseKey(first(j)), y.ParseKey(k)) {
					break
				}
				last = j
			}
			idx.Offsets(&ko, i)
			off = int64(ko.Offset())
			idx.Offsets(&ko, last)
			return off, int64(ko.Offset()+ko.Len()) - off
		}
		// Every block's first key, and one just after it, beside keys
		// drawn at random.
		var users [][]byte
		for j := range idx.OffsetsLength() {
			u := bytes.Clone(y.ParseKey(first(j)))
			users = append(users, u, append(bytes.Clone(u), 0))
		}
		fd, err := unix.Open(filepath.Join(s.dir, table.IDToFilename(ti.ID)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for c := range 200 + len(users) {
			var user []byte
			switch {
			case c < len(users):
				user = users[c]
			case c%3 == 0: // a key the store holds
				user = append(bytes.Clone(base), keys[rng.IntN(len(keys))]...)
			case c%3 == 1: // one it does not
				user = append(bytes.Clone(base), keys[rng.IntN(len(keys))]...)
				user[len(user)-1] ^= 0x55
			default: // before or after every key
				user = []byte{byte(rng.IntN(256))}
			}
			k := y.KeyWithTs(user, math.MaxUint64)
			r := &indexReader{b: &b, fd: fd, id: ti.ID, bloom: int64(ti.BloomFilterSize)} // not closed: fd is the test's
			if !b.locate(r) {
				t.Fatalf("table %d: index not found", ti.ID)
			}
			off, n, ok := r.block(k, y.Hash(user), true)
			wo, wn := want(k, true)
			if !ok || off != wo || n != wn {
				t.Fatalf("table %d, key %x: seek's block %d+%d (%v), want %d+%d", ti.ID, user, off, n, ok, wo, wn)
			}
			off, n, ok = r.block(k, y.Hash(user), false)
			may := y.Filter(idx.BloomFilterBytes()).MayContain(y.Hash(user))
			wo, wn = want(k, false)
			if ok != may || ok && (off != wo || n != wn) {
				t.Fatalf("table %d, key %x: get's block %d+%d (%v), want %d+%d (bloom filter: %v)", ti.ID, user, off, n, ok, wo, wn, may)
			}
			checked++
			if !may {
				ruledOut++
			}
		}
		unix.Close(fd)
	}
	if checked == 0 || ruledOut == 0 || ruledOut == checked {
		t.Fatalf("%d keys checked in %d tables, %d ruled out by bloom filters: the test needs both kinds", checked, len(tables), ruledOut)
	}
}

// asks records the blocks askBlocks asks for while it runs.
func asks(t *testing.T) *[][3]int64 {
	var got [][3]int64
	defer func(f func(uint64, int, int64, int64)) { t.Cleanup(func() { adviseBlock = f }) }(adviseBlock)
	adviseBlock = func(id uint64, fd int, off, n int64) { got = append(got, [3]int64{int64(id), off, n}) }
	return &got
}

// holds reports whether one of the blocks asked for holds the key, whose
// last 16 bytes are random: a block stores each key but for what it
// shares with the block's first key, which is not all of those.
func holds(t *testing.T, dir string, asked [][3]int64, key []byte) bool {
	t.Helper()
	for _, a := range asked {
		b, err := os.ReadFile(filepath.Join(dir, table.IDToFilename(uint64(a[0]))))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b[a[1]:a[1]+a[2]], key[len(key)-16:]) {
			return true
		}
	}
	return false
}

// While the store reads randomly and the process reads pages from the
// disk, a read of a key asks for the block that holds it, and a scan for
// the one that holds its first key; otherwise nothing is asked for.
func TestAskBlocks(t *testing.T) {
	s, keys := blockStore(t)
	ctx := context.Background()
	commons := protocol.RecordCID([]byte("commons"))
	got := asks(t)
	cold := func() { // as if every recent read had waited on the disk
		s.blocks.slow.Store(65536)
	}
	get := func(k []byte) {
		t.Helper()
		*got = nil
		v, err := s.GetDerived(ctx, commons, k)
		if err != nil || string(v) != "value" {
			t.Fatalf("GetDerived(%x) = %q, %v", k, v, err)
		}
	}
	cold()
	get(keys[0])
	if len(*got) != 0 {
		t.Fatalf("reading around: asked for %v", *got)
	}
	if err := s.ReadRandomly(ctx, true); err != nil {
		t.Fatal(err)
	}
	s.blocks.slow.Store(0)
	get(keys[0]) // from the page cache
	if len(*got) != 0 {
		t.Fatalf("no read waited on the disk: asked for %v", *got)
	}
	if s.blocks.slow.Load() != 0 {
		t.Fatal("a read from the page cache counted as one that waited on the disk")
	}
	// One slow read in twenty: nothing asked for.
	for i := range 200 {
		start := time.Now()
		if i%20 == 0 {
			start = start.Add(-slowRead)
		}
		s.readDone(start)
		if s.blocks.slow.Load() >= slowShare {
			t.Fatalf("one slow read in twenty: the share of slow reads is %d/65536 after %d", s.blocks.slow.Load(), i+1)
		}
	}
	// Slow reads in a row: asked for from the second.
	s.readDone(time.Now().Add(-slowRead))
	s.readDone(time.Now().Add(-slowRead))
	get(keys[0])
	if len(*got) == 0 {
		t.Fatal("two slow reads in a row: nothing asked for after them")
	}
	// Reads from the page cache again: nothing asked for after a few.
	s.blocks.slow.Store(2 * 65536 / 16)
	for range 4 {
		s.readDone(time.Now())
	}
	get(keys[0])
	if len(*got) != 0 {
		t.Fatalf("four fast reads after two slow ones: asked for %v", *got)
	}
	found, many := 0, 0
	for i := range 300 {
		k := keys[i*len(keys)/300]
		cold()
		get(k)
		if holds(t, s.dir, *got, k) {
			found++
		}
		if len(*got) > 1 {
			many++
		}
	}
	if found != 300 {
		t.Errorf("%d of 300 reads asked for the block holding their key", found)
	}
	if many > 10 {
		t.Errorf("%d of 300 reads asked for more than one block (bloom filters rule out 999 in 1,000 tables without the key)", many)
	}
	sorted := slices.SortedFunc(slices.Values(keys), bytes.Compare)
	found = 0
	for i := range 100 {
		from := sorted[i*len(sorted)/100]
		cold()
		*got = nil
		var first []byte
		err := s.ScanDerived(ctx, commons, from[:1], from, func(k, v []byte) error {
			if first == nil {
				first = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, from) {
			t.Fatalf("scan from %x began at %x", from, first)
		}
		if holds(t, s.dir, *got, from) {
			found++
		}
	}
	if found != 100 {
		t.Errorf("%d of 100 scans asked for the block holding their first key", found)
	}
}

// A table whose index is damaged (bytes changed at random in it, the
// footer whole) never makes a search panic, and has nothing asked for
// outside its data, nor more than maxBlock at once.
func TestAskBlocksDamagedIndex(t *testing.T) {
	s, keys := blockStore(t)
	base := s.derivedPrefix(protocol.RecordCID([]byte("commons")))
	got := asks(t)
	rng := rand.New(rand.NewPCG(uint64(len(keys)), 2))
	tables := s.db.Tables()
	dir := t.TempDir()
	var b blocks
	asked := 0
	for trial := range 3000 {
		ti := tables[rng.IntN(len(tables))]
		raw, err := os.ReadFile(filepath.Join(s.dir, table.IDToFilename(ti.ID)))
		if err != nil {
			t.Fatal(err)
		}
		n := int64(len(raw))
		sumLen := int64(binary.BigEndian.Uint32(raw[n-4:]))
		start := n - 8 - sumLen - int64(ti.IndexSz)
		for range 1 + rng.IntN(8) {
			at := start + rng.Int64N(int64(ti.IndexSz))
			switch rng.IntN(3) {
			case 0:
				raw[at] ^= byte(1 + rng.IntN(255))
			case 1:
				raw[at] = 0xff
			default:
				raw[at] = 0
			}
		}
		// A table of its own each trial: the pages kept are by ID.
		ti.ID = uint64(1_000_000 + trial)
		if err := os.WriteFile(filepath.Join(dir, table.IDToFilename(ti.ID)), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		user := append(bytes.Clone(base), keys[rng.IntN(len(keys))]...)
		*got = nil
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("trial %d: a damaged index of table %d panics: %v", trial, ti.ID, p)
				}
			}()
			b.ask(dir, ti, y.KeyWithTs(user, math.MaxUint64), y.Hash(user), rng.IntN(2) == 0)
		}()
		for _, a := range *got {
			asked++
			if a[1] < 0 || a[2] <= 0 || a[2] > maxBlock || a[1]+a[2] > start {
				t.Fatalf("trial %d: asked for %d bytes at %d of a table whose data ends at %d", trial, a[2], a[1], start)
			}
		}
		_ = os.Remove(filepath.Join(dir, table.IDToFilename(ti.ID)))
	}
	if asked == 0 {
		t.Fatal("nothing asked for in any trial: the test needs damage that leaves the search going")
	}
}

// A bloom filter whose length, as a count of bits, overflows 32 bits is
// not searched (badger's own search of it divides by zero).
func TestBloomFilterTooLong(t *testing.T) {
	const n = 1<<29 + 1
	f, err := os.Create(filepath.Join(t.TempDir(), "index"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := binary.LittleEndian.AppendUint32(nil, 4) // the filter's vector, 4 bytes on
	head = binary.LittleEndian.AppendUint32(head, n)
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{7}, 8+n-1); err != nil { // 7 probes (sparse before)
		t.Fatal(err)
	}
	r := &indexReader{b: &blocks{}, fd: int(f.Fd()), id: 1, bloom: n, n: 8 + n} // not closed: f is the test's
	if !r.mayContain(0, 12345) || !r.bad {
		t.Fatal("a filter too long to search was searched")
	}
	r = &indexReader{b: &blocks{}, fd: int(f.Fd()), id: 2, bloom: n - 1, n: 8 + n}
	if !r.mayContain(0, 12345) || !r.bad {
		t.Fatal("a filter of another length than badger read was searched")
	}
}

// Reads side by side ask for their blocks side by side (go test -race),
// each the block that holds its key.
func TestAskBlocksConcurrently(t *testing.T) {
	s, keys := randomBlockStore(t)
	ctx := context.Background()
	commons := protocol.RecordCID([]byte("commons"))
	var mu sync.Mutex
	var got [][3]int64
	defer func(f func(uint64, int, int64, int64)) { adviseBlock = f }(adviseBlock)
	adviseBlock = func(id uint64, fd int, off, n int64) {
		mu.Lock()
		got = append(got, [3]int64{int64(id), off, n})
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				s.blocks.slow.Store(65536)
				k := keys[(g*50+i)*len(keys)/400]
				if v, err := s.GetDerived(ctx, commons, k); err != nil || string(v) != "value" {
					t.Errorf("GetDerived(%x) = %q, %v", k, v, err)
				}
			}
		})
	}
	wg.Wait()
	found := 0
	for g := range 8 {
		for i := range 50 {
			if holds(t, s.dir, got, keys[(g*50+i)*len(keys)/400]) {
				found++
			}
		}
	}
	if found != 400 {
		t.Errorf("%d of 400 keys read side by side had their block asked for", found)
	}
}

// The cost of a read of a key from the page cache while blocks are asked
// for (as if the recent reads had waited on the disk), against that of one
// while they are not.
func BenchmarkGetDerivedAsking(b *testing.B) {
	s, keys := randomBlockStore(b)
	ctx := context.Background()
	commons := protocol.RecordCID([]byte("commons"))
	for _, ask := range []bool{false, true} {
		name := "without"
		if ask {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if ask {
					s.blocks.slow.Store(65536)
				} else {
					s.blocks.slow.Store(0)
				}
				if _, err := s.GetDerived(ctx, commons, keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
	}
}
