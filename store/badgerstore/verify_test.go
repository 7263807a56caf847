package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/storetest"
	"github.com/ipfs/go-cid"
)

// A byte flipped inside a record in a table file: reading the record fails
// saying the store is damaged (it gave the wrong bytes before), the feed
// page that holds it too, and Verify names the record and the table file,
// block and offset, while the other records read as before.
func TestDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	a := storetest.CommonsID("a")
	es := storetest.Entries(a, "damage", 2000)
	if _, err := s.PutRecords(ctx, es); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Verify(ctx); err != nil || rep.DamagedAll != 0 || rep.Records != 2000 || rep.FeedEntries != 2000 {
		t.Fatalf("Verify of a whole store = %+v, %v", rep, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	victim := es[1234]
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	flipped := ""
	for _, f := range tables {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(raw, victim.Raw); i >= 0 {
			raw[i+len(victim.Raw)-1] ^= 1
			if err := os.WriteFile(f, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			flipped = filepath.Base(f)
			break
		}
	}
	if flipped == "" {
		t.Fatal("the record is in no table file")
	}

	s = open(t, dir)
	defer s.Close()
	if _, err := s.GetRecord(ctx, victim.CID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("GetRecord of the damaged record: %v; want ErrCorrupt", err)
	}
	if _, err := s.GetRecords(ctx, []cid.Cid{victim.CID}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("GetRecords with the damaged record: %v; want ErrCorrupt", err)
	}
	if _, err := s.Feed(ctx, a, 1200, 100); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a feed page with the damaged record: %v; want ErrCorrupt", err)
	}
	if raw, err := s.GetRecord(ctx, es[7].CID); err != nil || !bytes.Equal(raw, es[7].Raw) {
		t.Fatalf("another record: %v", err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Damaged, "\n")
	if rep.DamagedAll < 2 || !strings.Contains(all, victim.CID.String()) || !strings.Contains(all, flipped) || !strings.Contains(all, "checksum") {
		t.Fatalf("Verify of the damaged store = %+v; want the record and the table %s named", rep, flipped)
	}
}
