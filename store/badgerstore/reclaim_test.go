package badgerstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/storetest"
)

// valueLogBytes is the size of the value log files of dir.
func valueLogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// Derived values large enough for the value log, written over and over:
// once compactions have dropped the old versions, ReclaimSpace rewrites
// the files they filled, the value log shrinks, and every value reads as
// last written.
func TestReclaimSpace(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	a := storetest.CommonsID("a")
	const keys, rounds = 200, 600 // 200 values of 1 KiB, each written 600 times: 120 MiB
	value := func(k, r int) []byte {
		return append(fmt.Appendf(nil, "%d %d ", k, r), bytes.Repeat([]byte{'v'}, 1024)...)
	}
	for r := range rounds {
		ws := make([]store.Write, keys)
		for k := range ws {
			ws[k] = store.Write{Key: fmt.Appendf(nil, "key-%03d", k), Value: value(k, r)}
		}
		if err := s.CommitDerived(ctx, []store.Derived{{Commons: a, Applied: uint64(r + 1), Writes: ws}}); err != nil {
			t.Fatal(err)
		}
		if r%50 == 49 {
			// A close flushes the memtables into a table of level 0.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Twelve tables in level 0: a compaction is due, and drops the old
	// versions, counting the value log space they held.
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	before := valueLogBytes(t, dir)
	n, err := s.ReclaimSpace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := valueLogBytes(t, dir)
	if n == 0 || after >= before/2 {
		t.Errorf("ReclaimSpace rewrote %d files: the value log went from %d to %d bytes; want it well under half", n, before, after)
	}
	for k := range keys {
		v, err := s.GetDerived(ctx, a, fmt.Appendf(nil, "key-%03d", k))
		if err != nil || !bytes.Equal(v, value(k, rounds-1)) {
			t.Fatalf("key %d after ReclaimSpace: %.20q, %v", k, v, err)
		}
	}
	if n, err := s.ReclaimSpace(ctx); n != 0 || err != nil {
		t.Errorf("ReclaimSpace again: %d, %v; want nothing to do", n, err)
	}
}
