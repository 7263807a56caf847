package badgerstore

import (
	"context"
	"fmt"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/commons-p2p/commons/store"
)

// TestJournalAfterCrash leaves a journal as a crash would, at each step of
// a CommitDerived too large for one transaction, and checks what the next
// Open makes of it: a complete journal is applied whole (even half applied
// already), an incomplete one is dropped, and the journal is gone after.
func TestJournalAfterCrash(t *testing.T) {
	ctx := context.Background()
	h, _ := mh.Sum([]byte("journal"), mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.DagCBOR, h)
	const n = 5000
	for _, tc := range []struct {
		name      string
		complete  bool // the journal was marked complete
		applied   int  // how many of its writes reached their keys
		wantWhole bool
	}{
		{"incomplete", false, 0, false},
		{"complete", true, 0, true},
		{"complete, half applied", true, n / 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			old := store.Derived{Commons: c, Applied: 1, Writes: []store.Write{{Key: []byte("k00000"), Value: []byte("old")}}}
			if err := s.CommitDerived(ctx, []store.Derived{old}); err != nil {
				t.Fatal(err)
			}
			ws := leaveJournal(t, s, c, n, "new", tc.complete, true)
			lim := s.limits()
			if err := s.apply(ws[:tc.applied], lim); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var got int
			if err := s.ScanDerived(ctx, c, []byte("k"), nil, func(_, v []byte) error {
				if string(v) == "new" {
					got++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			applied, _ := s.Applied(ctx, c)
			want, wantApplied := 0, uint64(1)
			if tc.wantWhole {
				want, wantApplied = n, 2
			}
			if got != want || applied != wantApplied {
				t.Fatalf("after reopening: %d new values, applied %d; want %d and %d", got, applied, want, wantApplied)
			}
			var left int
			_ = s.db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagJournal}})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					left++
				}
				for _, k := range [][]byte{journalDoneKey(), journalOpenKey()} {
					if _, err := txn.Get(k); err == nil {
						left++
					}
				}
				return nil
			})
			if left != 0 {
				t.Fatalf("%d journal keys left after Open", left)
			}
		})
	}
}

// TestJournalLeftByFailedCall: a CommitDerived through a journal that
// failed while applying it (disk full, an I/O error) leaves a complete
// journal, "applied again at the next open". The calls after it must not
// be undone by that: here the next call, small enough for one
// transaction, writes newer values of the same keys and a later cursor;
// the next Open must keep them, not roll them back to the journal's.
func TestJournalLeftByFailedCall(t *testing.T) {
	ctx := context.Background()
	h, _ := mh.Sum([]byte("journal"), mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.DagCBOR, h)
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What journal() leaves when its apply phase fails halfway.
	const n = 5000
	ws := leaveJournal(t, s, c, n, "first", true, true)
	lim := s.limits()
	if err := s.apply(ws[:n/2], lim); err != nil {
		t.Fatal(err)
	}
	// The node keeps what failed and sends it again with what came after:
	// here, a small call with newer values.
	later := store.Derived{Commons: c, Applied: 3, Writes: []store.Write{{Key: []byte("k00000"), Value: []byte("second")}}}
	if err := s.CommitDerived(ctx, []store.Derived{later}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.GetDerived(ctx, c, []byte("k00000"))
	if err != nil {
		t.Fatal(err)
	}
	applied, err := s.Applied(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != "second" || applied != 3 {
		t.Fatalf("after reopening: k00000 = %q, applied %d; want \"second\" and 3 (the later call's): the journal of an earlier call was applied over it", v, applied)
	}
}

// TestJournalLeftUnmarked: a version before the open mark left an
// incomplete journal, which Open, finding no mark, leaves in place. The
// next journal, shorter than it, must drop it before writing its own: a
// crash once that is complete would otherwise apply the old entries
// beyond its end with it.
func TestJournalLeftUnmarked(t *testing.T) {
	ctx := context.Background()
	h, _ := mh.Sum([]byte("journal"), mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.DagCBOR, h)
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	leaveJournal(t, s, c, n, "stale", false, false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	// Open, finding no open mark, did not look at the journal's range:
	// the entries are still there.
	var left int
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagJournal}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			left++
		}
		return nil
	})
	if left != n+1 {
		t.Fatalf("after Open, %d journal entries of the %d an older version left", left, n+1)
	}
	// A journal of fewer writes, then a crash before it is applied.
	const m = n / 2
	p := givenDerivedPrefix(t, s, c)
	var ws []kv
	for i := range m {
		ws = append(ws, kv{key: append(p[:len(p):len(p)], fmt.Sprintf("k%05d", i)...), value: []byte("fresh")})
	}
	ws = append(ws, kv{key: appliedKey(c), value: encodeUint(5)})
	if err := s.writeJournal(ws, s.limits()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stale, fresh int
	if err := s.ScanDerived(ctx, c, []byte("k"), nil, func(_, v []byte) error {
		switch string(v) {
		case "fresh":
			fresh++
		default:
			stale++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	applied, _ := s.Applied(ctx, c)
	if stale != 0 || fresh != m || applied != 5 {
		t.Fatalf("after the crash and Open: %d keys of the old journal, %d of the new, applied %d; want 0, %d and 5", stale, fresh, applied, m)
	}
}

// leaveJournal writes the journal of a call setting n keys of commons c's
// derived state to value and its applied cursor to 2, with its open mark
// if marked (a version before the mark wrote none), and marked complete if
// complete, as a crash inside CommitDerived leaves it; it returns the
// call's writes.
func leaveJournal(t *testing.T, s *Store, c cid.Cid, n int, value string, complete, marked bool) []kv {
	t.Helper()
	if marked {
		if err := s.apply([]kv{{key: journalOpenKey(), value: []byte{}}}, s.limits()); err != nil {
			t.Fatal(err)
		}
	}
	p := givenDerivedPrefix(t, s, c)
	var ws, entries []kv
	for i := range n {
		ws = append(ws, kv{key: append(p[:len(p):len(p)], fmt.Sprintf("k%05d", i)...), value: []byte(value)})
	}
	ws = append(ws, kv{key: appliedKey(c), value: encodeUint(2)})
	for i, w := range ws {
		entries = append(entries, kv{key: journalKey(uint64(i)), value: encodeJournal(w)})
	}
	lim := s.limits()
	if err := s.apply(entries, lim); err != nil {
		t.Fatal(err)
	}
	if complete {
		if err := s.apply([]kv{{key: journalDoneKey(), value: []byte{}}}, lim); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// givenDerivedPrefix returns the prefix of c's derived state, giving c an
// ID if it has none.
func givenDerivedPrefix(t *testing.T, s *Store, c cid.Cid) []byte {
	t.Helper()
	id, err := s.giveID(c)
	if err != nil {
		t.Fatal(err)
	}
	return commonsPrefix(tagDerived, id)
}

// Once a Store has dropped what it found in the journal's range, it drops
// each journal it writes by its keys, without listing the range: after
// each journaled commit the range holds nothing, though an older version
// left more entries there than the commits write, and the writes are
// applied.
func TestJournalDroppedByItsKeys(t *testing.T) {
	ctx := context.Background()
	h, _ := mh.Sum([]byte("journal"), mh.SHA2_256, -1)
	c := cid.NewCidV1(cid.DagCBOR, h)
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 5000
	leaveJournal(t, s, c, n, "stale", false, false)
	left := func() (entries int, marks []string) {
		t.Helper()
		if err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagJournal}})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				entries++
			}
			for _, k := range [][]byte{journalDoneKey(), journalOpenKey()} {
				if _, err := txn.Get(k); err == nil {
					marks = append(marks, string(k))
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return entries, marks
	}
	p := givenDerivedPrefix(t, s, c)
	for round, m := range []int{n / 2, n / 5, n / 3} {
		value := fmt.Sprintf("round %d", round)
		var ws []kv
		for i := range m {
			ws = append(ws, kv{key: append(p[:len(p):len(p)], fmt.Sprintf("k%05d", i)...), value: []byte(value)})
		}
		if err := s.journal(ws, s.limits()); err != nil {
			t.Fatal(err)
		}
		if entries, marks := left(); entries != 0 || len(marks) != 0 || !s.journalEmpty {
			t.Fatalf("round %d: %d journal entries and marks %q left (empty %v)", round, entries, marks, s.journalEmpty)
		}
		got := 0
		if err := s.ScanDerived(ctx, c, []byte("k"), nil, func(_, v []byte) error {
			if string(v) == value {
				got++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got != m {
			t.Fatalf("round %d: %d keys hold its value, want %d", round, got, m)
		}
	}
}
