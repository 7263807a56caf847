package badgerstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/store/storetest"
)

// bigEntries returns n entries of commons a large enough to be written to
// badger's value log, as real records are.
func bigEntries(tag string, n int) []store.Entry {
	a := storetest.CommonsID("a")
	out := make([]store.Entry, n)
	for i := range out {
		raw := fmt.Appendf(nil, "fake record %s %d %s", tag, i, strings.Repeat("x", 400))
		out[i] = store.Entry{CID: protocol.RecordCID(raw), Commons: a, Raw: raw}
	}
	return out
}

// putBig stores es in a fresh store at dir, in batches of 100 (one
// transaction each), and closes it.
func putBig(t *testing.T, dir string, es []store.Entry) {
	t.Helper()
	s := open(t, dir)
	for i := 0; i < len(es); i += 100 {
		if _, err := s.PutRecords(context.Background(), es[i:min(i+100, len(es))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// inValueLog returns the value log file of dir that holds raw, its bytes
// and raw's offset there.
func inValueLog(t *testing.T, dir string, raw []byte) (string, []byte, int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, raw); i >= 0 {
			return f, b, i
		}
	}
	t.Fatalf("the record is in no value log file of %s", dir)
	return "", nil, 0
}

// A record in the value log, one byte of it flipped: badger's Open would
// cut the file there and lose every later record. Open refuses instead,
// naming the file, and touches nothing; Rebuild mends the entry, keeping
// the file as it was beside it, after which the damaged record shows as
// such, every other record reads, and RepairRecord writes it again.
func TestValueLogDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	ctx := context.Background()
	es := bigEntries("damage", 2000)
	putBig(t, dir, es)
	victim := es[700]
	f, b, i := inValueLog(t, dir, victim.Raw)
	b[i+len(victim.Raw)/2] ^= 0x10
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := badgerstore.Open(dir, nil)
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(f)) || !strings.Contains(err.Error(), "repo repair") {
		t.Fatalf("Open of a store whose value log is damaged: %v; want ErrCorrupt naming %s and advising repair", err, filepath.Base(f))
	}
	if now, err := os.ReadFile(f); err != nil || !bytes.Equal(now, b) {
		t.Fatalf("the refused Open changed the damaged file (%v)", err)
	}

	aside, err := badgerstore.Rebuild(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kept, err := os.ReadFile(filepath.Join(aside, filepath.Base(f)+".damaged")); err != nil || !bytes.Equal(kept, b) {
		t.Errorf("the damaged file is not kept as it was in the old store: %v", err)
	}
	s := open(t, dir)
	defer s.Close()
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The record and its feed entry.
	if rep.Records != 1999 || rep.DamagedAll != 2 || !strings.Contains(strings.Join(rep.Damaged, "\n"), victim.CID.String()) {
		t.Fatalf("Verify after the rebuild = %+v; want 1999 whole records and %s damaged", rep, victim.CID)
	}
	if _, err := s.GetRecord(ctx, victim.CID); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("the damaged record reads: %v", err)
	}
	if raw, err := s.GetRecord(ctx, es[1999].CID); err != nil || !bytes.Equal(raw, es[1999].Raw) {
		t.Errorf("the last record, written after the damage: %v", err)
	}
	if ok, err := s.RepairRecord(ctx, victim.CID, victim.Raw); !ok || err != nil {
		t.Fatalf("RepairRecord: %v, %v", ok, err)
	}
	if rep, err := s.Verify(ctx); err != nil || rep.DamagedAll != 0 || rep.Records != 2000 {
		t.Errorf("Verify after the repair = %+v, %v", rep, err)
	}
}

// A byte flipped in an entry's lengths: the entries after it cannot be
// found by stepping, only by searching. Open refuses, and so does
// Rebuild, which cannot mend it; neither changes the file.
func TestValueLogDamagedLengths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	es := bigEntries("lengths", 1000)
	putBig(t, dir, es)
	f, b, i := inValueLog(t, dir, es[300].Raw)
	// The value's length is the varint just before the key, which ends
	// where the value starts: step back over the key (badger's key: the
	// record key, 'r' and the CID, then an 8-byte version).
	key := append([]byte{'r'}, es[300].CID.Bytes()...)
	k := bytes.LastIndex(b[:i], key)
	if k < 0 {
		t.Fatal("the record's key is not before its value")
	}
	b[k-2] ^= 0x7f // the value length's low byte (a 2-byte varint)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	refusedUnmended(t, dir, f, b)
}

// Bytes after the last entry of the newest value log file, as a crash in
// the middle of a write leaves: the file is no longer as the mark of a
// clean close names it, so Open leaves it to badger, which cuts them off,
// and every record reads.
func TestValueLogTornTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	es := bigEntries("torn", 500)
	putBig(t, dir, es)
	f, b, _ := inValueLog(t, dir, es[499].Raw)
	torn := append(b, bytes.Repeat([]byte{0xa5, 0x03, 0x5a}, 120)...)
	if err := os.WriteFile(f, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 500 || rep.DamagedAll != 0 {
		t.Errorf("Verify after a torn tail = %+v; want the 500 records whole", rep)
	}
}

// A blob damaged in the newest value log file: Open refuses; Rebuild mends
// its entry, as a record's, so that the blob reads as damaged (a blob is
// checked against its CID as it is read), and PutBlob writes it again.
func TestValueLogDamagedBlob(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	blob := bytes.Repeat([]byte("a payload "), 100)
	if _, err := s.PutBlob(context.Background(), blob); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, b, i := inValueLog(t, dir, blob)
	b[i+500] ^= 0x01
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := badgerstore.Open(dir, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open: %v; want ErrCorrupt", err)
	}
	if _, err := badgerstore.Rebuild(context.Background(), dir, nil); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	ctx := context.Background()
	c := protocol.BlobCID(blob)
	if _, err := s.GetBlob(ctx, c); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("GetBlob after the rebuild: %v; want the blob damaged", err)
	}
	if _, err := s.PutBlob(ctx, blob); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetBlob(ctx, c); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GetBlob after PutBlob: %v", err)
	}
}

// The last record written, damaged after a clean close: nothing follows
// it, yet it is no torn write. Open refuses; Rebuild mends it and the
// record shows as damaged.
func TestValueLogDamageLast(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	es := bigEntries("last", 300)
	putBig(t, dir, es)
	victim := es[299]
	f, b, i := inValueLog(t, dir, victim.Raw)
	b[i+3] ^= 0x01
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := badgerstore.Open(dir, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open: %v; want ErrCorrupt", err)
	}
	if _, err := badgerstore.Rebuild(context.Background(), dir, nil); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 299 || !strings.Contains(strings.Join(rep.Damaged, "\n"), victim.CID.String()) {
		t.Errorf("Verify after the rebuild = %+v; want %s damaged, the rest whole", rep, victim.CID)
	}
}

// refusedUnmended checks that Open refuses the store at dir, whose log
// file f holds the damaged bytes b, and that Rebuild refuses to mend it,
// leaving f as it was.
func refusedUnmended(t *testing.T, dir, f string, b []byte) {
	t.Helper()
	if _, err := badgerstore.Open(dir, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open: %v; want ErrCorrupt", err)
	}
	if _, err := badgerstore.Rebuild(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), "cannot be mended") {
		t.Fatalf("Rebuild: %v; want it refused, the damage not mendable", err)
	}
	if now, err := os.ReadFile(f); err != nil || !bytes.Equal(now, b) {
		t.Fatalf("the file was changed (%v)", err)
	}
}

// A blob damaged in an older value log file (Open reads only the newest
// through): GetBlob fails saying so, Verify names it, and PutBlob given
// its bytes writes them in place of the damage.
func TestDamagedBlobMended(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	blob := bytes.Repeat([]byte("a payload "), 100)
	other := bytes.Repeat([]byte("another payload "), 100)
	c, err := s.PutBlob(ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlob(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir).Close() // a newer value log file
	f, b, i := inValueLog(t, dir, blob)
	b[i+500] ^= 0x01
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if _, err := s.GetBlob(ctx, c); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), c.String()) {
		t.Fatalf("GetBlob of the damaged blob: %v; want ErrCorrupt naming it", err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 1 || rep.DamagedAll != 1 || !strings.Contains(rep.Damaged[0], "blob "+c.String()) {
		t.Fatalf("Verify = %+v; want the damaged blob named, the other whole", rep)
	}
	if got, err := s.PutBlob(ctx, blob); err != nil || !got.Equals(c) {
		t.Fatalf("PutBlob of the damaged blob's bytes: %v, %v", got, err)
	}
	if got, err := s.GetBlob(ctx, c); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("the blob after PutBlob: %v", err)
	}
	if rep, err := s.Verify(ctx); err != nil || rep.Blobs != 2 || rep.DamagedAll != 0 {
		t.Fatalf("Verify after the mend = %+v, %v", rep, err)
	}
}
