package badgerstore

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	boptions "github.com/dgraph-io/badger/v4/options"

	"github.com/commons-p2p/commons/store/storetest"
)

// TestReadsCompressedTables: a store whose tables an earlier version wrote
// with snappy compression opens under today's options (no compression)
// and reads back every record, before and after its tables are compacted
// into uncompressed ones.
func TestReadsCompressedTables(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	db, err := badger.Open(options(dir, log).WithCompression(boptions.Snappy).WithBlockCacheSize(1 << 20))
	if err != nil {
		t.Fatal(err)
	}
	old := &Store{log: log, db: db, dir: dir, unlock: func() error { return nil }}
	if _, err := old.checkFormat(); err != nil {
		t.Fatal(err)
	}
	if err := old.upgrade(false); err != nil {
		t.Fatal(err)
	}
	id := storetest.CommonsID("snappy")
	entries := storetest.Entries(id, "a record that compresses, as its keys do", 3000)
	if _, err := old.PutRecords(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil { // flushes the memtable to a table
		t.Fatal(err)
	}

	s, err := Open(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	compressed := false
	for _, ti := range s.db.Tables() {
		compressed = compressed || ti.OnDiskSize < ti.UncompressedSize
	}
	if !compressed {
		t.Fatal("no table was written compressed: the test checks nothing")
	}
	check := func(when string) {
		t.Helper()
		for _, e := range entries {
			raw, err := s.GetRecord(ctx, e.CID)
			if err != nil || !bytes.Equal(raw, e.Raw) {
				t.Fatalf("%s: GetRecord(%s) = %q, %v", when, e.CID, raw, err)
			}
		}
	}
	check("as written")
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	check("after a compaction")
}
