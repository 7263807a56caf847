package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

var bg = context.Background()

func testPutGetHas(t *testing.T, s store.Store) {
	a := CommonsID("a")
	es := Entries(a, "pgh", 3)
	wantCursors(t, put(t, s, es), 1, 2, 3)
	for _, e := range es {
		raw, err := s.GetRecord(bg, e.CID)
		if err != nil || !bytes.Equal(raw, e.Raw) {
			t.Fatalf("GetRecord(%s) = %q, %v; want %q", e.CID, raw, err, e.Raw)
		}
		if ok, err := s.HasRecord(bg, e.CID); !ok || err != nil {
			t.Fatalf("HasRecord(%s) = %v, %v; want true", e.CID, ok, err)
		}
	}
	other := Entry(a, "never stored")
	if ok, err := s.HasRecord(bg, other.CID); ok || err != nil {
		t.Fatalf("HasRecord(unstored) = %v, %v; want false, nil", ok, err)
	}
	// A record is not a blob.
	if ok, err := s.HasBlob(bg, es[0].CID); ok || err != nil {
		t.Fatalf("HasBlob(record CID) = %v, %v; want false, nil", ok, err)
	}
}

func testGetRecords(t *testing.T, s store.Store) {
	a := CommonsID("a")
	es := Entries(a, "grs", 3)
	put(t, s, es)
	got, err := s.GetRecords(bg, []cid.Cid{es[2].CID, es[0].CID, es[2].CID, es[1].CID})
	if err != nil || len(got) != 4 {
		t.Fatalf("GetRecords = %d records, %v; want 4", len(got), err)
	}
	for i, j := range []int{2, 0, 2, 1} {
		if !bytes.Equal(got[i], es[j].Raw) {
			t.Fatalf("GetRecords[%d] = %q, want %q", i, got[i], es[j].Raw)
		}
	}
	got[0][0] ^= 1 // the caller's copy
	if again, err := s.GetRecord(bg, es[2].CID); err != nil || !bytes.Equal(again, es[2].Raw) {
		t.Fatalf("after changing what GetRecords returned, GetRecord = %q, %v", again, err)
	}
	if got, err := s.GetRecords(bg, nil); err != nil || len(got) != 0 {
		t.Fatalf("GetRecords(nil) = %v, %v; want empty, nil", got, err)
	}
	// Far apart and close together, in no order.
	many := Entries(a, "grs-many", 300)
	put(t, s, many)
	var want []store.Entry
	for i := 0; i < len(many); i += 37 {
		want = append(want, many[i])
	}
	want = append(want, many[100:160]...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(want), func(i, j int) { want[i], want[j] = want[j], want[i] })
	cs := make([]cid.Cid, len(want))
	for i, e := range want {
		cs[i] = e.CID
	}
	got, err = s.GetRecords(bg, cs)
	if err != nil || len(got) != len(want) {
		t.Fatalf("GetRecords of %d = %d records, %v", len(want), len(got), err)
	}
	for i, e := range want {
		if !bytes.Equal(got[i], e.Raw) {
			t.Fatalf("GetRecords[%d] = %q, want %q", i, got[i], e.Raw)
		}
	}
	other := Entry(a, "never stored")
	_, err = s.GetRecords(bg, []cid.Cid{es[0].CID, other.CID})
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), other.CID.String()) {
		t.Fatalf("GetRecords with an unstored record: %v; want ErrNotFound naming %s", err, other.CID)
	}
	testGetRecordsFarApart(t, s, a)
}

// testGetRecordsFarApart reads records far apart in key order, as a sync
// turn over a large store does (a store may look those up one by one):
// every 50th of 2,000 in key order, in no order, one of them twice; then
// with a record never stored, and with one dropped, each far into the
// list in key order.
func testGetRecordsFarApart(t *testing.T, s store.Store, a cid.Cid) {
	t.Helper()
	byKey := func(x, y store.Entry) int { return bytes.Compare(x.CID.Bytes(), y.CID.Bytes()) }
	spread := Entries(a, "grs-spread", 2000)
	put(t, s, spread)
	slices.SortFunc(spread, byKey)
	var want []store.Entry
	for i := 0; i < len(spread); i += 50 {
		want = append(want, spread[i])
	}
	want = append(want, want[25])
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(want), func(i, j int) { want[i], want[j] = want[j], want[i] })
	cs := make([]cid.Cid, len(want))
	for i, e := range want {
		cs[i] = e.CID
	}
	got, err := s.GetRecords(bg, cs)
	if err != nil || len(got) != len(want) {
		t.Fatalf("GetRecords of %d far apart = %d records, %v", len(want), len(got), err)
	}
	for i, e := range want {
		if !bytes.Equal(got[i], e.Raw) {
			t.Fatalf("GetRecords far apart [%d] = %q, want %q", i, got[i], e.Raw)
		}
	}
	// A record never stored whose key is above the 30th asked for.
	late := spread[30*50]
	var other store.Entry
	for i := 0; ; i++ {
		if other = Entry(a, fmt.Sprint("never stored, far ", i)); byKey(other, late) > 0 {
			break
		}
	}
	if _, err := s.GetRecords(bg, append(slices.Clone(cs), other.CID)); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), other.CID.String()) {
		t.Fatalf("GetRecords far apart with an unstored record: %v; want ErrNotFound naming %s", err, other.CID)
	}
	if n, _, err := s.DropRecordBytes(bg, []cid.Cid{late.CID}); n != 1 || err != nil {
		t.Fatalf("DropRecordBytes = %d, %v", n, err)
	}
	var d *store.DroppedRecordError
	if _, err := s.GetRecords(bg, cs); !errors.As(err, &d) || !d.CID.Equals(late.CID) {
		t.Fatalf("GetRecords far apart with a dropped record: %v; want a DroppedRecordError naming %s", err, late.CID)
	}
}

func testEmptyPut(t *testing.T, s store.Store) {
	for _, es := range [][]store.Entry{nil, {}} {
		cursors, err := s.PutRecords(bg, es)
		if err != nil || len(cursors) != 0 {
			t.Fatalf("PutRecords(%v) = %v, %v; want empty, nil", es, cursors, err)
		}
	}
}

func testInvalidEntry(t *testing.T, s store.Store) {
	a := CommonsID("a")
	good := Entry(a, "good")
	for name, bad := range map[string]store.Entry{
		"undefined CID":     {Commons: a, Raw: []byte("x")},
		"undefined commons": {CID: protocol.RecordCID([]byte("x")), Raw: []byte("x")},
		"no bytes":          {CID: protocol.RecordCID(nil), Commons: a}, // an empty value is a tombstone
	} {
		if _, err := s.PutRecords(bg, []store.Entry{good, bad}); err == nil {
			t.Errorf("PutRecords with %s: no error", name)
		}
	}
	if ok, _ := s.HasRecord(bg, good.CID); ok {
		t.Fatalf("a rejected call stored its valid entry")
	}
	if head, _ := s.FeedHead(bg, a); head != 0 {
		t.Fatalf("FeedHead after rejected calls = %d, want 0", head)
	}
}

func testDuplicatesWithinCall(t *testing.T, s store.Store) {
	a := CommonsID("a")
	x, y := Entry(a, "x"), Entry(a, "y")
	wantCursors(t, put(t, s, []store.Entry{x, x, y, x, y}), 1, 0, 2, 0, 0)
	checkFeed(t, feedAll(t, s, a, 10), []store.Entry{x, y})
}

func testDuplicatesAcrossCalls(t *testing.T, s store.Store) {
	a := CommonsID("a")
	es := Entries(a, "dup", 4)
	wantCursors(t, put(t, s, es[:2]), 1, 2)
	wantCursors(t, put(t, s, es[:2]), 0, 0)
	wantCursors(t, put(t, s, es), 0, 0, 3, 4)
	wantCursors(t, put(t, s, es[3:]), 0)
	checkFeed(t, feedAll(t, s, a, 3), es)
	if head, err := s.FeedHead(bg, a); head != 4 || err != nil {
		t.Fatalf("FeedHead = %d, %v; want 4", head, err)
	}
}

func testCursorsPerCommons(t *testing.T, s store.Store) {
	a, b := CommonsID("a"), CommonsID("b")
	ea, eb := Entries(a, "pc", 3), Entries(b, "pc", 3)
	wantCursors(t, put(t, s, []store.Entry{ea[0], eb[0], eb[1], ea[1]}), 1, 1, 2, 2)
	wantCursors(t, put(t, s, []store.Entry{eb[2], ea[2]}), 3, 3)
	checkFeed(t, feedAll(t, s, a, 2), ea)
	checkFeed(t, feedAll(t, s, b, 2), eb)
}

func testFeedPaging(t *testing.T, s store.Store) {
	a := CommonsID("a")
	es := Entries(a, "page", 100)
	for i := 0; i < len(es); i += 13 {
		put(t, s, es[i:min(i+13, len(es))])
	}
	for _, page := range []int{1, 7, 50, 100, 1000} {
		t.Run(fmt.Sprintf("limit=%d", page), func(t *testing.T) {
			checkFeed(t, feedAll(t, s, a, page), es)
		})
	}
	// Resuming while the feed grows neither skips nor repeats.
	got, _ := s.Feed(bg, a, 0, 60)
	more := Entries(a, "page-more", 10)
	put(t, s, more)
	for after := got[len(got)-1].Cursor; ; {
		page, err := s.Feed(bg, a, after, 30)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Cursor
	}
	checkFeed(t, got, append(append([]store.Entry{}, es...), more...))
}

func testFeedEdges(t *testing.T, s store.Store) {
	a := CommonsID("a")
	es := Entries(a, "edge", 5)
	put(t, s, es)
	for _, tc := range []struct {
		name  string
		c     cid.Cid
		after uint64
		limit int
		want  int
	}{
		{"unknown commons", CommonsID("nobody"), 0, 10, 0},
		{"after head", a, 5, 10, 0},
		{"far beyond head", a, 1 << 62, 10, 0},
		{"max cursor", a, ^uint64(0), 10, 0},
		{"limit zero", a, 0, 0, 0},
		{"limit negative", a, 0, -1, 0},
		{"middle", a, 2, 2, 2},
		{"tail", a, 3, 10, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Feed(bg, tc.c, tc.after, tc.limit)
			if err != nil || len(got) != tc.want {
				t.Fatalf("Feed(after=%d, limit=%d) = %d records, %v; want %d", tc.after, tc.limit, len(got), err, tc.want)
			}
			for i, g := range got {
				if g.Cursor != tc.after+uint64(i)+1 {
					t.Fatalf("record %d has cursor %d, want %d", i, g.Cursor, tc.after+uint64(i)+1)
				}
			}
		})
	}
}

func testFeedHead(t *testing.T, s store.Store) {
	a, b := CommonsID("a"), CommonsID("b")
	if head, err := s.FeedHead(bg, a); head != 0 || err != nil {
		t.Fatalf("FeedHead(empty) = %d, %v; want 0, nil", head, err)
	}
	put(t, s, Entries(a, "head", 7))
	put(t, s, Entries(b, "head", 2))
	put(t, s, Entries(a, "head", 9)) // 7 duplicates, 2 new
	for c, want := range map[cid.Cid]uint64{a: 9, b: 2} {
		if head, err := s.FeedHead(bg, c); head != want || err != nil {
			t.Fatalf("FeedHead = %d, %v; want %d", head, err, want)
		}
	}
}

func testDropRecords(t *testing.T, s store.Store) {
	a, b := CommonsID("a"), CommonsID("b")
	ea, eb := Entries(a, "drop", 5000), Entries(b, "drop", 3)
	put(t, s, ea)
	put(t, s, eb)
	if err := s.AddCommons(bg, a); err != nil {
		t.Fatal(err)
	}
	blob, err := s.PutBlob(bg, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	mark := store.Derived{Commons: a, Applied: 5000, Writes: []store.Write{{Key: []byte("k"), Value: []byte("v")}}}
	if err := s.CommitDerived(bg, []store.Derived{mark}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.StoredCommons(bg); err != nil || len(got) != 2 || !slices.ContainsFunc(got, a.Equals) || !slices.ContainsFunc(got, b.Equals) {
		t.Fatalf("StoredCommons = %v, %v; want a and b", got, err)
	}
	if n, err := s.DropRecords(bg, a); n != len(ea) || err != nil {
		t.Fatalf("DropRecords = %d, %v; want %d, nil", n, err, len(ea))
	}
	if got, err := s.StoredCommons(bg); err != nil || len(got) != 1 || !got[0].Equals(b) {
		t.Fatalf("StoredCommons after DropRecords = %v, %v; want b", got, err)
	}
	if head, err := s.FeedHead(bg, a); head != 0 || err != nil {
		t.Fatalf("FeedHead after DropRecords = %d, %v; want 0", head, err)
	}
	if got := feedAll(t, s, a, 100); len(got) != 0 {
		t.Fatalf("Feed after DropRecords: %d records", len(got))
	}
	for _, e := range []store.Entry{ea[0], ea[2047], ea[2048], ea[4999]} {
		if ok, err := s.HasRecord(bg, e.CID); ok || err != nil {
			t.Fatalf("HasRecord(%s) after DropRecords = %v, %v", e.CID, ok, err)
		}
	}
	// The other commons, the listing, blobs and derived state stay.
	checkFeed(t, feedAll(t, s, b, 2), eb)
	if cs, err := s.Commons(bg); err != nil || len(cs) != 1 || !cs[0].Equals(a) {
		t.Fatalf("Commons after DropRecords = %v, %v; want [a]", cs, err)
	}
	if ok, err := s.HasBlob(bg, blob); !ok || err != nil {
		t.Fatalf("HasBlob after DropRecords = %v, %v", ok, err)
	}
	if v, err := s.GetDerived(bg, a, []byte("k")); string(v) != "v" || err != nil {
		t.Fatalf("GetDerived after DropRecords = %q, %v", v, err)
	}
	if n, err := s.DropRecords(bg, a); n != 0 || err != nil {
		t.Fatalf("DropRecords again = %d, %v; want 0, nil", n, err)
	}
	// Stored again, the records get cursors from 1.
	wantCursors(t, put(t, s, ea[:2]), 1, 2)
	checkFeed(t, feedAll(t, s, a, 100), ea[:2])
}

// testDropRecordBytes drops the bytes of some records of a commons and
// checks that every read names them dropped, that the feed log keeps their
// cursors (the records around them read whole), and that their bytes given
// again take them back at their cursors.
func testDropRecordBytes(t *testing.T, s store.Store) {
	a := CommonsID("a")
	es := Entries(a, "tomb", 10)
	put(t, s, es)
	gone := []cid.Cid{es[0].CID, es[4].CID, es[9].CID}
	missing := Entry(a, "never stored").CID
	n, size, err := s.DropRecordBytes(bg, append(slices.Clone(gone), missing, es[4].CID))
	if err != nil || n != 3 || size != int64(len(es[0].Raw)+len(es[4].Raw)+len(es[9].Raw)) {
		t.Fatalf("DropRecordBytes = %d, %d, %v; want 3, the records' bytes, nil", n, size, err)
	}
	if n, _, err := s.DropRecordBytes(bg, gone); n != 0 || err != nil {
		t.Fatalf("DropRecordBytes again = %d, %v; want 0, nil", n, err)
	}
	isDropped := func(what string, err error, c cid.Cid) {
		t.Helper()
		var d *store.DroppedRecordError
		if !errors.As(err, &d) || !errors.Is(err, store.ErrDropped) || !d.CID.Equals(c) {
			t.Fatalf("%s: err = %v; want a DroppedRecordError naming %s", what, err, c)
		}
		if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: err = %v says damaged or not found", what, err)
		}
	}
	for i, e := range es {
		raw, err := s.GetRecord(bg, e.CID)
		if slices.Contains(gone, e.CID) {
			isDropped("GetRecord", err, e.CID)
		} else if err != nil || !bytes.Equal(raw, e.Raw) {
			t.Fatalf("GetRecord(%d) = %q, %v", i, raw, err)
		}
		if ok, err := s.HasRecord(bg, e.CID); !ok || err != nil {
			t.Fatalf("HasRecord(%d) = %v, %v; want true: a tombstone keeps its place", i, ok, err)
		}
	}
	_, err = s.GetRecords(bg, []cid.Cid{es[1].CID, es[4].CID})
	isDropped("GetRecords", err, es[4].CID)
	if raws, err := s.GetRecords(bg, []cid.Cid{es[1].CID, es[5].CID}); err != nil || !bytes.Equal(raws[1], es[5].Raw) {
		t.Fatalf("GetRecords of whole records = %v", err)
	}
	for _, size := range []int{1, 3, 10} {
		got := feedAll(t, s, a, size)
		if len(got) != len(es) {
			t.Fatalf("Feed in pages of %d: %d records; want %d, the dropped ones marked", size, len(got), len(es))
		}
		for i, st := range got {
			drop := slices.Contains(gone, es[i].CID)
			if st.Cursor != uint64(i+1) || !st.CID.Equals(es[i].CID) || st.Dropped != drop || drop != (st.Raw == nil) || !drop && !bytes.Equal(st.Raw, es[i].Raw) {
				t.Fatalf("Feed in pages of %d, entry %d: %+v; want cursor %d, dropped %v", size, i, st, i+1, drop)
			}
		}
	}
	if head, err := s.FeedHead(bg, a); head != 10 || err != nil {
		t.Fatalf("FeedHead = %d, %v; want 10", head, err)
	}
	// Bytes that are not the record's do not take its place.
	forged := store.Entry{CID: es[4].CID, Commons: a, Raw: []byte("not it")}
	if _, err := s.PutRecords(bg, []store.Entry{forged}); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetRecord(bg, es[4].CID)
	isDropped("GetRecord after forged bytes", err, es[4].CID)
	// The record's bytes take it back at its cursor; nothing is added.
	if cursors := put(t, s, []store.Entry{es[4], es[0], es[9]}); !slices.Equal(cursors, []uint64{0, 0, 0}) {
		t.Fatalf("PutRecords of dropped records = %v; want no new cursors", cursors)
	}
	checkFeed(t, feedAll(t, s, a, 4), es)
}

func testBlobs(t *testing.T, s store.Store) {
	for _, data := range [][]byte{[]byte("payload"), {}, bytes.Repeat([]byte{7}, 300<<10)} {
		c, err := s.PutBlob(bg, data)
		if err != nil {
			t.Fatalf("PutBlob: %v", err)
		}
		if want := protocol.BlobCID(data); !c.Equals(want) {
			t.Fatalf("PutBlob CID = %s, want %s", c, want)
		}
		if p := c.Prefix(); p.Version != 1 || p.Codec != cid.Raw {
			t.Fatalf("PutBlob CID prefix = %+v, want CIDv1 raw", p)
		}
		if c2, err := s.PutBlob(bg, data); err != nil || !c2.Equals(c) {
			t.Fatalf("PutBlob twice = %s, %v", c2, err)
		}
		got, err := s.GetBlob(bg, c)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetBlob = %d bytes, %v; want %d bytes", len(got), err, len(data))
		}
		// A piece at a time, pieces of a size that does not divide it.
		var read []byte
		buf := make([]byte, 100<<10+7)
		for {
			n, size, err := s.ReadBlob(bg, c, int64(len(read)), buf)
			if err != nil || size != int64(len(data)) {
				t.Fatalf("ReadBlob at %d = %d, size %d, %v; want size %d", len(read), n, size, err, len(data))
			}
			if n == 0 {
				break
			}
			read = append(read, buf[:n]...)
		}
		if !bytes.Equal(read, data) {
			t.Fatalf("ReadBlob read %d bytes, not the blob's %d", len(read), len(data))
		}
		if n, size, err := s.ReadBlob(bg, c, int64(len(data))+5, buf); n != 0 || size != int64(len(data)) || err != nil {
			t.Fatalf("ReadBlob past the end = %d, size %d, %v; want 0, %d, nil", n, size, err, len(data))
		}
		if ok, err := s.HasBlob(bg, c); !ok || err != nil {
			t.Fatalf("HasBlob = %v, %v", ok, err)
		}
		if ok, err := s.HasRecord(bg, c); ok || err != nil {
			t.Fatalf("HasRecord(blob CID) = %v, %v; want false", ok, err)
		}
	}
	gone, err := s.PutBlob(bg, []byte("deleted"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time, a blob not stored
		if err := s.DeleteBlob(bg, gone); err != nil {
			t.Fatalf("DeleteBlob: %v", err)
		}
		if ok, err := s.HasBlob(bg, gone); ok || err != nil {
			t.Fatalf("HasBlob after DeleteBlob = %v, %v", ok, err)
		}
		if _, err := s.GetBlob(bg, gone); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetBlob after DeleteBlob = %v, want ErrNotFound", err)
		}
	}
	if ok, err := s.HasBlob(bg, protocol.BlobCID([]byte("absent"))); ok || err != nil {
		t.Fatalf("HasBlob(absent) = %v, %v", ok, err)
	}
	if n, _, err := s.ReadBlob(bg, protocol.BlobCID([]byte("absent")), 0, make([]byte, 8)); !errors.Is(err, store.ErrNotFound) || n != 0 {
		t.Fatalf("ReadBlob(absent) = %d, %v; want ErrNotFound", n, err)
	}
}

func testCommons(t *testing.T, s store.Store) {
	if got, err := s.Commons(bg); len(got) != 0 || err != nil {
		t.Fatalf("Commons(empty) = %v, %v", got, err)
	}
	// Insertion order, not CID order.
	ids := []cid.Cid{CommonsID("z"), CommonsID("a"), CommonsID("m"), CommonsID("b")}
	for _, c := range append(append([]cid.Cid{}, ids...), ids[2], ids[0]) {
		if err := s.AddCommons(bg, c); err != nil {
			t.Fatalf("AddCommons: %v", err)
		}
	}
	got, err := s.Commons(bg)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("Commons = %v, %v; want %v", got, err, ids)
	}
	// Removing keeps the records and the order of the rest; adding again
	// lists it last; removing what is not listed does nothing.
	put(t, s, []store.Entry{Entry(ids[1], "kept")})
	for _, c := range []cid.Cid{ids[1], ids[1], CommonsID("never listed")} {
		if err := s.RemoveCommons(bg, c); err != nil {
			t.Fatalf("RemoveCommons: %v", err)
		}
	}
	want := []cid.Cid{ids[0], ids[2], ids[3]}
	if got, err := s.Commons(bg); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Commons after RemoveCommons = %v, %v; want %v", got, err, want)
	}
	if head, err := s.FeedHead(bg, ids[1]); head != 1 || err != nil {
		t.Fatalf("FeedHead of a removed commons = %d, %v; want its record kept", head, err)
	}
	if err := s.AddCommons(bg, ids[1]); err != nil {
		t.Fatal(err)
	}
	want = append(want, ids[1])
	if got, err := s.Commons(bg); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Commons after adding again = %v, %v; want %v", got, err, want)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetRecord(bg, CommonsID("absent")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRecord(absent) error = %v, want ErrNotFound", err)
	}
	if _, err := s.GetBlob(bg, protocol.BlobCID([]byte("absent"))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetBlob(absent) error = %v, want ErrNotFound", err)
	}
}

func testCopies(t *testing.T, s store.Store) {
	a := CommonsID("a")
	e := Entry(a, "copy")
	raw := append([]byte{}, e.Raw...)
	in := store.Entry{CID: e.CID, Commons: a, Raw: raw}
	put(t, s, []store.Entry{in})
	raw[0] ^= 0xff // the caller reuses its buffer
	got, _ := s.GetRecord(bg, e.CID)
	if !bytes.Equal(got, e.Raw) {
		t.Fatalf("store kept the caller's buffer")
	}
	got[0] ^= 0xff // the caller scribbles on a result
	if again, _ := s.GetRecord(bg, e.CID); !bytes.Equal(again, e.Raw) {
		t.Fatalf("store returned its own buffer")
	}
	data := []byte("blob")
	c, _ := s.PutBlob(bg, data)
	data[0] = 'X'
	if got, _ := s.GetBlob(bg, c); string(got) != "blob" {
		t.Fatalf("store kept the caller's blob buffer")
	}
}

func testClosed(t *testing.T, s store.Store) {
	a := CommonsID("a")
	e := Entry(a, "closed")
	put(t, s, []store.Entry{e})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	errs := map[string]error{}
	_, errs["PutRecords"] = s.PutRecords(bg, []store.Entry{Entry(a, "after")})
	_, errs["GetRecord"] = s.GetRecord(bg, e.CID)
	_, errs["HasRecord"] = s.HasRecord(bg, e.CID)
	_, errs["Feed"] = s.Feed(bg, a, 0, 10)
	_, errs["FeedHead"] = s.FeedHead(bg, a)
	_, errs["PutBlob"] = s.PutBlob(bg, []byte("b"))
	_, errs["GetBlob"] = s.GetBlob(bg, e.CID)
	_, errs["HasBlob"] = s.HasBlob(bg, e.CID)
	errs["AddCommons"] = s.AddCommons(bg, a)
	errs["RemoveCommons"] = s.RemoveCommons(bg, a)
	_, errs["Commons"] = s.Commons(bg)
	errs["PutMeta"] = s.PutMeta(bg, "k", []byte("v"))
	_, errs["GetMeta"] = s.GetMeta(bg, "k")
	errs["Close"] = s.Close()
	for name, err := range errs {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", name, err)
		}
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	a := CommonsID("a")
	e := Entry(a, "stored")
	put(t, s, []store.Entry{e})
	ctx, cancel := context.WithCancel(bg)
	cancel()
	errs := map[string]error{}
	_, errs["PutRecords"] = s.PutRecords(ctx, []store.Entry{Entry(a, "canceled")})
	_, errs["GetRecord"] = s.GetRecord(ctx, e.CID)
	_, errs["HasRecord"] = s.HasRecord(ctx, e.CID)
	_, errs["Feed"] = s.Feed(ctx, a, 0, 10)
	_, errs["FeedHead"] = s.FeedHead(ctx, a)
	_, errs["PutBlob"] = s.PutBlob(ctx, []byte("b"))
	_, errs["GetBlob"] = s.GetBlob(ctx, e.CID)
	_, errs["HasBlob"] = s.HasBlob(ctx, e.CID)
	errs["AddCommons"] = s.AddCommons(ctx, a)
	errs["RemoveCommons"] = s.RemoveCommons(ctx, a)
	_, errs["Commons"] = s.Commons(ctx)
	errs["PutMeta"] = s.PutMeta(ctx, "k", []byte("v"))
	_, errs["GetMeta"] = s.GetMeta(ctx, "k")
	for name, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: error = %v, want context.Canceled", name, err)
		}
	}
	// A canceled call writes nothing.
	if head, _ := s.FeedHead(bg, a); head != 1 {
		t.Fatalf("FeedHead after canceled PutRecords = %d, want 1", head)
	}
	if ok, _ := s.HasBlob(bg, protocol.BlobCID([]byte("b"))); ok {
		t.Fatalf("canceled PutBlob stored its blob")
	}
	if got, _ := s.Commons(bg); len(got) != 0 {
		t.Fatalf("canceled AddCommons added %v", got)
	}
}

// testConcurrentPutRecords runs writers whose batches overlap: every record
// must get exactly one nonzero cursor, and the cursors of each commons must
// be exactly 1..n.
func testConcurrentPutRecords(t *testing.T, s store.Store) {
	const writers, calls, batch = 8, 10, 16
	ids := []cid.Cid{CommonsID("a"), CommonsID("b")}
	var mu sync.Mutex
	assigned := map[cid.Cid][]uint64{} // record → nonzero cursors it got
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				var es []store.Entry
				for i := range batch {
					// Writers w and w^1 write the same records.
					tag := fmt.Sprintf("w%d-c%d-i%d", w/2, c, i)
					es = append(es, Entry(ids[(w/2+i)%2], tag))
				}
				cursors, err := s.PutRecords(bg, es)
				if err != nil {
					t.Errorf("PutRecords: %v", err)
					return
				}
				mu.Lock()
				for i, cur := range cursors {
					if cur != 0 {
						assigned[es[i].CID] = append(assigned[es[i].CID], cur)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for _, c := range ids {
		feed := feedAll(t, s, c, 50)
		total += len(feed)
		for i, st := range feed {
			got := assigned[st.CID]
			if st.Cursor != uint64(i+1) || len(got) != 1 || got[0] != st.Cursor {
				t.Fatalf("feed[%d] cursor %d; PutRecords assigned %v", i, st.Cursor, got)
			}
		}
	}
	if want := writers / 2 * calls * batch; total != want || len(assigned) != want {
		t.Fatalf("feeds hold %d records, %d assigned; want %d", total, len(assigned), want)
	}
	heads := []uint64{}
	for _, c := range ids {
		h, _ := s.FeedHead(bg, c)
		heads = append(heads, h)
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i] < heads[j] })
	if heads[0]+heads[1] != uint64(total) {
		t.Fatalf("heads %v do not add up to %d", heads, total)
	}
}

func testMeta(t *testing.T, s store.Store) {
	if _, err := s.GetMeta(bg, "rules"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMeta of an absent key: %v, want ErrNotFound", err)
	}
	v := []byte("2")
	if err := s.PutMeta(bg, "rules", v); err != nil {
		t.Fatalf("PutMeta: %v", err)
	}
	v[0] = 'X'
	if got, err := s.GetMeta(bg, "rules"); err != nil || string(got) != "2" {
		t.Fatalf("GetMeta: %q, %v; want \"2\" (and not the caller's buffer)", got, err)
	}
	if err := s.PutMeta(bg, "rules", []byte("3")); err != nil {
		t.Fatalf("PutMeta again: %v", err)
	}
	if got, _ := s.GetMeta(bg, "rules"); string(got) != "3" {
		t.Fatalf("GetMeta after a second PutMeta: %q, want \"3\"", got)
	}
	if _, err := s.GetMeta(bg, "rule"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMeta of a prefix of a key: %v, want ErrNotFound", err)
	}
	if err := s.PutMeta(bg, "", []byte("x")); err == nil {
		t.Fatal("PutMeta with an empty key succeeded")
	}
	if err := s.PutMeta(bg, "big", make([]byte, store.MaxMetaSize+1)); err == nil {
		t.Fatal("PutMeta of an oversized value succeeded")
	}
}
