package badgerstore

import (
	"fmt"
	"log/slog"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
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
