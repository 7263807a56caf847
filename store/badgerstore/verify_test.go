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
	flipped := flipInTable(t, dir, victim.Raw)

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

// RepairRecord writes a damaged record's bytes again, and nothing else:
// not a record that reads whole, not one the store does not hold, not
// bytes that are not the record's.
func TestRepairRecord(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	a := storetest.CommonsID("a")
	es := storetest.Entries(a, "repair", 500)
	if _, err := s.PutRecords(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	victim := es[123]
	flipInTable(t, dir, victim.Raw)
	s = open(t, dir)
	defer s.Close()
	if _, err := s.GetRecord(ctx, victim.CID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("the damaged record reads: %v", err)
	}
	if _, err := s.RepairRecord(ctx, victim.CID, es[7].Raw); err == nil {
		t.Error("RepairRecord took another record's bytes")
	}
	absent := storetest.Entry(a, "never stored")
	if ok, err := s.RepairRecord(ctx, absent.CID, absent.Raw); ok || err != nil {
		t.Errorf("RepairRecord of a record not held: %v, %v; want nothing done", ok, err)
	}
	if has, _ := s.HasRecord(ctx, absent.CID); has {
		t.Error("RepairRecord added a record")
	}
	if ok, err := s.RepairRecord(ctx, es[7].CID, es[7].Raw); ok || err != nil {
		t.Errorf("RepairRecord of a whole record: %v, %v; want nothing done", ok, err)
	}
	if ok, err := s.RepairRecord(ctx, victim.CID, victim.Raw); !ok || err != nil {
		t.Fatalf("RepairRecord of the damaged record: %v, %v", ok, err)
	}
	if raw, err := s.GetRecord(ctx, victim.CID); err != nil || !bytes.Equal(raw, victim.Raw) {
		t.Fatalf("the repaired record: %v", err)
	}
	if ok, err := s.RepairRecord(ctx, victim.CID, victim.Raw); ok || err != nil {
		t.Errorf("RepairRecord again: %v, %v; want nothing done", ok, err)
	}
	if page, err := s.Feed(ctx, a, 0, 500); err != nil || len(page) != 500 {
		t.Errorf("the feed after the repair: %d records, %v", len(page), err)
	}
}

// flipInTable flips a bit of the last byte of raw in the table file of
// dir that holds it, and returns the file's name.
func flipInTable(t *testing.T, dir string, raw []byte) string {
	t.Helper()
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, f := range tables {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, raw); i >= 0 {
			b[i+len(raw)-1] ^= 1
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Base(f)
		}
	}
	t.Fatal("the record is in no table file")
	return ""
}
