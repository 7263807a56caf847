package badgerstore

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
)

// TestTablesKeepTheirSizeAtEveryLevel: a compaction builds each table in
// memory, in an allocation twice the table's size, several at once; the
// tables of every level are the base size, so that this memory does not
// grow as the store deepens (with badger's default, each level's tables
// are twice the size of the level above's: at 3,000,000 records the
// builders held 264 MB of heap, against 88 MB at 1,000,000). Run with the
// daemon's options, their sizes scaled down, until the store is three
// levels deep.
func TestTablesKeepTheirSizeAtEveryLevel(t *testing.T) {
	const base = 64 << 10
	dir := t.TempDir()
	opts := options(dir, slog.New(slog.DiscardHandler)).
		WithBaseTableSize(base).
		WithBaseLevelSize(256 << 10).
		WithMemTableSize(1 << 20).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	value := make([]byte, 100) // below the value log's threshold: in the tables
	// deep reports whether a level below the one level 0 compacts into
	// holds tables: the store is deep enough for badger to size the
	// tables of its levels differently.
	deep := func() bool {
		base := -1
		for _, l := range db.Levels() {
			if l.IsBaseLevel {
				base = l.Level
			}
			if base >= 0 && l.Level > base && l.NumTables > 0 {
				return true
			}
		}
		return false
	}
	for round := 0; !deep(); round++ {
		if round == 100 {
			t.Fatalf("after %d rounds of writes no level below the base level holds tables:\n%s", round, db.LevelsToString())
		}
		wb := db.NewWriteBatch()
		for i := range 20000 {
			if err := wb.Set(fmt.Appendf(nil, "key %08d %08d", i*7919%20000, round), value); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range db.Levels() {
		if l.Level > 0 && l.TargetFileSize != base {
			t.Errorf("the tables of level %d are built to %d bytes: want the base size, %d, at every level\n%s", l.Level, l.TargetFileSize, base, db.LevelsToString())
		}
	}
}

// TestBloomFilterBits: the tables' bloom filters hold 10 bits a key, and
// of the keys a table lacks, at most 2% pass a filter of that size built
// by badger's code (against about 4% with badger's default rate, whose
// filters hold 7 bits a key).
func TestBloomFilterBits(t *testing.T) {
	dir := t.TempDir()
	opts := options(dir, slog.New(slog.DiscardHandler)).WithMemTableSize(1 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Keys shaped like the derived state's: a short prefix, then a digest.
	key := func(i int) []byte {
		h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		return append([]byte("D\x01ce"), h[:]...)
	}
	const n = 40000
	wb := db.NewWriteBatch()
	for i := range n {
		if err := wb.Set(key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // flushes the memtables to tables
		t.Fatal(err)
	}
	if db, err = badger.Open(opts); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, checked := 0, 0
	for _, ti := range db.Tables() {
		keys += int(ti.KeyCount)
		if ti.KeyCount >= 1000 {
			checked++
		}
		if bits := float64(ti.BloomFilterSize*8) / float64(ti.KeyCount); ti.KeyCount >= 1000 && bits < 10 {
			t.Errorf("table %d: a bloom filter of %d bytes for %d keys, %.1f bits a key: want at least 10", ti.ID, ti.BloomFilterSize, ti.KeyCount, bits)
		}
	}
	if keys < n || checked == 0 {
		t.Fatalf("the tables hold %d keys, %d tables of 1,000 keys or more: want at least %d keys, and such a table", keys, checked, n)
	}

	// The rate of false positives of a filter of such a table's size.
	passed := func(rate float64) float64 {
		var hashes []uint32
		for i := range n {
			hashes = append(hashes, y.Hash(key(i)))
		}
		f := y.NewFilter(hashes, y.BloomBitsPerKey(n, rate))
		fp := 0
		const probes = 100000
		for i := range probes {
			if f.MayContain(y.Hash(key(n + i))) {
				fp++
			}
		}
		return float64(fp) / probes
	}
	if got := passed(bloomFalsePositive); got > 0.02 {
		t.Errorf("%.2f%% of absent keys pass a filter of %d keys at the rate asked for (%g), want at most 2%%", got*100, n, bloomFalsePositive)
	}
	if got := passed(badger.DefaultOptions("").BloomFalsePositive); got < 0.03 {
		t.Errorf("badger's default rate now lets %.2f%% of absent keys pass, not about 4%%: bloomFalsePositive's doc no longer holds", got*100)
	}
}
