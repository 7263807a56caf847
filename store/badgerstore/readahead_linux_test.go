package badgerstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// ReadRandomly advises every table and value log file the store maps,
// those mapped since too once the directory has changed, and takes the
// advice back.
func TestReadRandomly(t *testing.T) {
	defer func(f func(badger.Options) badger.Options) { testOptions = f }(testOptions)
	// No compactions: no table is made but by the flushes the test asks.
	testOptions = func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithNumCompactors(0) }
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := reopenedStore(t, dir, 40*256, 800)
	readRandomly := func(random bool) {
		t.Helper()
		if err := s.ReadRandomly(ctx, random); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, random bool) map[string]bool {
		t.Helper()
		m := randomReads(t, dir)
		var sst, vlog int
		for name, rr := range m {
			if rr != random {
				t.Errorf("%s: %s read randomly %v, want %v", when, name, rr, random)
			}
			switch fileExt(name) {
			case ".sst":
				sst++
			case ".vlog":
				vlog++
			}
		}
		if sst == 0 || vlog == 0 {
			t.Fatalf("%s: %d tables and %d value log files mapped; the test needs both", when, sst, vlog)
		}
		return m
	}
	check("opened", false)
	readRandomly(false) // nothing to take back
	check("not advised", false)
	readRandomly(true)
	before := check("advised", true)
	readRandomly(true) // nothing new: the same
	check("advised again", true)

	// Small records, in the tables: memtables of 1 MiB are flushed into
	// new ones.
	commons := protocol.RecordCID([]byte("commons"))
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("no new table after 51,200 records")
		}
		var es []store.Entry
		for j := range 256 {
			raw := []byte(fmt.Sprintf("small %d %d %0100d", i, j, i*j))
			es = append(es, store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw})
		}
		if _, err := s.PutRecords(ctx, es); err != nil {
			t.Fatal(err)
		}
		if newTable(before, randomReads(t, dir)) {
			break
		}
	}
	readRandomly(true)
	check("a table made since", true)
	readRandomly(false)
	check("taken back", false)
}

// newTable reports whether now maps a table that was not in before.
func newTable(before, now map[string]bool) bool {
	for name := range now {
		if _, ok := before[name]; !ok && fileExt(name) == ".sst" {
			return true
		}
	}
	return false
}

// fileExt returns the extension of the file a key of randomReads names.
func fileExt(key string) string {
	name, _, _ := strings.Cut(key, "@")
	return filepath.Ext(name)
}

// randomReads returns, for each mapping of a table or value log file in
// dir that the process maps shared (by the file's name, "@" and its
// range), whether the mapping is read a page at a
// time (/proc/self/smaps: "rr" among its VmFlags).
func randomReads(t *testing.T, dir string) map[string]bool {
	t.Helper()
	dir, smaps := procSelf(t, dir, "smaps")
	m := map[string]bool{}
	name := ""
	for l := range strings.Lines(smaps) {
		l = strings.TrimSuffix(l, "\n")
		if fields, path, ok := mapsLine(l); ok && strings.Contains(fields[0], "-") {
			name = ""
			ext := filepath.Ext(path)
			if filepath.Dir(path) == dir && (ext == ".sst" || ext == ".vlog") && strings.HasSuffix(fields[1], "s") {
				name = filepath.Base(path) + "@" + fields[0]
			}
			continue
		}
		if flags, ok := strings.CutPrefix(l, "VmFlags:"); ok && name != "" {
			m[name] = strings.Contains(" "+flags+" ", " rr ")
			name = ""
		}
	}
	return m
}
