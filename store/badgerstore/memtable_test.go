package badgerstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/storetest"
)

// A store that a crash left with the log of a memtable larger than this
// version's (an earlier one ran 16 MiB memtables) opens, with every write
// in that log, and leaves no such log behind. Badger alone replays the log
// into a memtable of the configured size, and exits the process when it
// does not fit.
func TestOpenAfterACrashWithLargerMemtables(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The store as an earlier version ran it: 16 MiB memtables, about 12
	// MiB written since it opened, all of it in the memtable's log.
	log := slog.New(slog.DiscardHandler)
	db, err := badger.Open(options(dir, log).WithMemTableSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := &Store{log: log, db: db, unlock: func() error { return nil }, dir: dir}
	if _, err := old.checkFormat(); err != nil {
		t.Fatal(err)
	}
	if err := old.loadIDs(); err != nil {
		t.Fatal(err)
	}
	c := storetest.CommonsID("a")
	value := make([]byte, 200)
	const writes = 50_000
	for i := 0; i < writes; i += 5000 {
		d := store.Derived{Commons: c, Applied: uint64(i)}
		for k := i; k < i+5000; k++ {
			d.Writes = append(d.Writes, store.Write{Key: fmt.Appendf(nil, "k%06d", k), Value: value})
		}
		if err := old.CommitDerived(ctx, []store.Derived{d}); err != nil {
			t.Fatal(err)
		}
	}
	// The crash: the files as they are now, the memtable unflushed.
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, dir, crashed)
	if size := walMemTableSize(crashed); size <= memTableSize {
		t.Fatalf("the copy holds no memtable log larger than this version's (%d bytes of memtable needed); the test needs one", size)
	}

	s, err = Open(crashed, nil)
	if err != nil {
		t.Fatalf("open after a crash with 16 MiB memtables: %v", err)
	}
	defer s.Close()
	got := 0
	if err := s.ScanDerived(ctx, c, []byte("k"), nil, func(_, _ []byte) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != writes {
		t.Errorf("%d of the %d writes in the crashed memtable read back", got, writes)
	}
	if size := walMemTableSize(crashed); size != 0 {
		t.Errorf("after Open, a memtable log still needs %d bytes of memtable", size)
	}
}

// copyDir copies the regular files of directory from into a new directory to.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
