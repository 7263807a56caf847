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
	"github.com/commons-p2p/commons/store/badgerstore"
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
	ctx := context.Background()
	s, a, es := damagedStore(t, "repair")
	victim := es[123]
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

// A damaged record is named, with its cursor, by the feed page that holds
// it; PutRecords given its bytes writes them again (the entry keeps its
// cursor, and counts as stored already), and given bytes that are not its
// own, leaves it be.
func TestPutRecordsMendsDamaged(t *testing.T) {
	ctx := context.Background()
	s, a, es := damagedStore(t, "mend")
	victim := es[123]
	_, err := s.Feed(ctx, a, 100, 100)
	var dmg *store.DamagedRecordError
	if !errors.As(err, &dmg) || !dmg.CID.Equals(victim.CID) || dmg.Cursor != 124 || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("the feed page with the damaged record: %v; want it named, at cursor 124", err)
	}
	forged := victim
	forged.Raw = es[7].Raw
	if cursors, err := s.PutRecords(ctx, []store.Entry{forged}); err != nil || cursors[0] != 0 {
		t.Fatalf("PutRecords of other bytes under the damaged CID: %v, %v", cursors, err)
	}
	if _, err := s.GetRecord(ctx, victim.CID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("after other bytes were offered, the damaged record reads: %v", err)
	}
	fresh := storetest.Entry(a, "after the damage")
	cursors, err := s.PutRecords(ctx, []store.Entry{victim, fresh, es[7]})
	if err != nil || cursors[0] != 0 || cursors[1] != 501 || cursors[2] != 0 {
		t.Fatalf("PutRecords of the damaged record, a new one and a whole one: %v, %v; want 0, 501, 0", cursors, err)
	}
	if raw, err := s.GetRecord(ctx, victim.CID); err != nil || !bytes.Equal(raw, victim.Raw) {
		t.Fatalf("the mended record: %v", err)
	}
	if page, err := s.Feed(ctx, a, 0, 1000); err != nil || len(page) != 501 || !page[123].CID.Equals(victim.CID) {
		t.Fatalf("the feed after the mend: %d records, %v", len(page), err)
	}
}

// damagedStore returns a store holding 500 records of commons a, the
// 124th (es[123]) damaged in its table file. The test closes it.
func damagedStore(t *testing.T, name string) (s *badgerstore.Store, a cid.Cid, es []store.Entry) {
	t.Helper()
	dir := t.TempDir()
	s = open(t, dir)
	a = storetest.CommonsID("a")
	es = storetest.Entries(a, name, 500)
	if _, err := s.PutRecords(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	flipInTable(t, dir, es[123].Raw)
	s = open(t, dir)
	t.Cleanup(func() { s.Close() })
	return s, a, es
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

// Rebuild writes a store again: records, feed logs, heads, blobs,
// listings and metadata as they were, the derived state left out (to be
// computed again), a table that failed its checksum gone, and the old
// store kept whole aside.
func TestRebuild(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	s := open(t, dir)
	a := storetest.CommonsID("a")
	es := storetest.Entries(a, "rebuild", 300)
	if _, err := s.PutRecords(ctx, es); err != nil {
		t.Fatal(err)
	}
	blob, err := s.PutBlob(ctx, []byte("a payload"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddCommons(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(ctx, "rules", []byte("7")); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitDerived(ctx, []store.Derived{{Commons: a, Applied: 300, Writes: []store.Write{{Key: []byte("x"), Value: []byte("derived")}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	flipped := flipInTable(t, dir, es[42].Raw)

	aside, err := badgerstore.Rebuild(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(aside, flipped)); err != nil {
		t.Errorf("the old store is not kept whole at %s: %v", aside, err)
	}
	s = open(t, dir)
	defer s.Close()
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The damaged record is copied as it read: its own damage, no table's.
	if rep.DamagedAll != 2 || strings.Contains(strings.Join(rep.Damaged, "\n"), "checksum") || rep.Records != 299 {
		t.Errorf("Verify of the rebuilt store = %+v; want the damaged record alone", rep)
	}
	if head, err := s.FeedHead(ctx, a); err != nil || head != 300 {
		t.Errorf("head %d, %v; want 300", head, err)
	}
	if got, err := s.GetBlob(ctx, blob); err != nil || string(got) != "a payload" {
		t.Errorf("blob: %q, %v", got, err)
	}
	if ids, err := s.Commons(ctx); err != nil || len(ids) != 1 || !ids[0].Equals(a) {
		t.Errorf("commons listed: %v, %v", ids, err)
	}
	if v, err := s.GetMeta(ctx, "rules"); err != nil || string(v) != "7" {
		t.Errorf("meta: %q, %v", v, err)
	}
	if applied, err := s.Applied(ctx, a); err != nil || applied != 0 {
		t.Errorf("applied %d, %v; want 0: the derived state is computed again", applied, err)
	}
	if v, err := s.GetDerived(ctx, a, []byte("x")); err != nil || v != nil {
		t.Errorf("derived value %q, %v; want none", v, err)
	}
}
