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
func blockStore(t *testing.T) (*Store, [][]byte) {
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
		want := func(k []byte) (off, n int64) {
			i := 0
			for j := range idx.OffsetsLength() {
				idx.Offsets(&ko, j)
				if y.CompareKeys(ko.KeyBytes(), k) <= 0 {
					i = j
				}
			}
			idx.Offsets(&ko, i)
			off, n = int64(ko.Offset()), int64(ko.Len())
			if i+1 < idx.OffsetsLength() {
				// The next block beginning with k's key is read too.
				idx.Offsets(&ko, i+1)
				if bytes.Equal(y.ParseKey(ko.KeyBytes()), y.ParseKey(k)) {
					n = int64(ko.Offset()+ko.Len()) - off
				}
			}
			return off, n
		}
		fd, err := unix.Open(filepath.Join(s.dir, table.IDToFilename(ti.ID)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			var user []byte
			switch rng.IntN(3) {
			case 0: // a key the store holds
				user = append(bytes.Clone(base), keys[rng.IntN(len(keys))]...)
			case 1: // one it does not
				user = append(bytes.Clone(base), keys[rng.IntN(len(keys))]...)
				user[len(user)-1] ^= 0x55
			default: // before or after every key
				user = []byte{byte(rng.IntN(256))}
			}
			k := y.KeyWithTs(user, math.MaxUint64)
			r := &indexReader{b: &b, fd: fd, id: ti.ID}
			if !b.locate(r) {
				t.Fatalf("table %d: index not found", ti.ID)
			}
			off, n, ok := r.block(k, y.Hash(user), true)
			wo, wn := want(k)
			if !ok || off != wo || n != wn {
				t.Fatalf("table %d, key %x: seek's block %d+%d (%v), want %d+%d", ti.ID, user, off, n, ok, wo, wn)
			}
			off, n, ok = r.block(k, y.Hash(user), false)
			may := y.Filter(idx.BloomFilterBytes()).MayContain(y.Hash(user))
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
	cold := func() { // as if a page had just been read from the disk
		s.blocks.mu.Lock()
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		s.blocks.faults, s.blocks.faultAt = ru.Majflt, time.Now()
		s.blocks.mu.Unlock()
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
	s.blocks.mu.Lock()
	s.blocks.faultAt = time.Time{}
	s.blocks.mu.Unlock()
	get(keys[0])
	if len(*got) != 0 {
		t.Fatalf("no page read from the disk: asked for %v", *got)
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
