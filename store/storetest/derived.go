package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/store"
)

// scanDerived returns a commons' derived keys under prefix, with their
// values, in the order ScanDerived gives them.
func scanDerived(t *testing.T, s store.Store, c cid.Cid, prefix string) (keys []string, values map[string]string) {
	t.Helper()
	return scanDerivedFrom(t, s, c, prefix, "")
}

// scanDerivedFrom is scanDerived of the keys not less than from.
func scanDerivedFrom(t *testing.T, s store.Store, c cid.Cid, prefix, from string) (keys []string, values map[string]string) {
	t.Helper()
	values = map[string]string{}
	err := s.ScanDerived(bg, c, []byte(prefix), []byte(from), func(k, v []byte) error {
		keys = append(keys, string(k))
		values[string(k)] = string(v)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanDerived(%q): %v", prefix, err)
	}
	return keys, values
}

func commitDerived(t *testing.T, s store.Store, ds ...store.Derived) {
	t.Helper()
	if err := s.CommitDerived(bg, ds); err != nil {
		t.Fatalf("CommitDerived: %v", err)
	}
}

func set(k, v string) store.Write { return store.Write{Key: []byte(k), Value: []byte(v)} }
func del(k string) store.Write    { return store.Write{Key: []byte(k), Delete: true} }

// testDerived checks the derived state against a map: gets, scans in
// order under prefixes, deletes, empty values, later writes winning,
// commons kept apart, and the applied cursor.
func testDerived(t *testing.T, s store.Store) {
	a, b := CommonsID("derived-a"), CommonsID("derived-b")
	if n, err := s.Applied(bg, a); err != nil || n != 0 {
		t.Fatalf("Applied of a fresh commons: %d, %v; want 0", n, err)
	}
	if v, err := s.GetDerived(bg, a, []byte("x")); err != nil || v != nil {
		t.Fatalf("GetDerived of an absent key: %q, %v; want nil", v, err)
	}
	commitDerived(t, s,
		store.Derived{Commons: a, Applied: 3, Writes: []store.Write{set("t1", "one"), set("t2", ""), set("u", "u"), set("t1", "uno"), set("t3", "three")}},
		store.Derived{Commons: b, Applied: 7, Writes: []store.Write{set("t1", "bee")}})
	if v, err := s.GetDerived(bg, a, []byte("t1")); err != nil || string(v) != "uno" {
		t.Fatalf("GetDerived(t1): %q, %v; want the later write of the call, \"uno\"", v, err)
	}
	if v, err := s.GetDerived(bg, a, []byte("t2")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("GetDerived of a key stored empty: %#v, %v; want an empty, non-nil value", v, err)
	}
	if keys, vals := scanDerived(t, s, a, "t"); !slices.Equal(keys, []string{"t1", "t2", "t3"}) || vals["t3"] != "three" {
		t.Fatalf("ScanDerived(t): %q %q", keys, vals)
	}
	for _, tc := range []struct {
		prefix, from string
		want         []string
	}{
		{"t", "t2", []string{"t2", "t3"}},
		{"t", "t20", []string{"t3"}},
		{"t", "t4", nil},
		{"t", "a", []string{"t1", "t2", "t3"}}, // from before the prefix
		{"t", "u", nil},                        // from past it
		{"", "t3", []string{"t3", "u"}},
	} {
		if keys, _ := scanDerivedFrom(t, s, a, tc.prefix, tc.from); !slices.Equal(keys, tc.want) {
			t.Fatalf("ScanDerived(%q from %q): %q; want %q", tc.prefix, tc.from, keys, tc.want)
		}
		v, err := s.ReadDerived(bg, a)
		if err != nil {
			t.Fatalf("ReadDerived: %v", err)
		}
		var keys []string
		err = v.Scan([]byte(tc.prefix), []byte(tc.from), func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
		if got, gerr := v.Get([]byte("t3")); err != nil || gerr != nil || !slices.Equal(keys, tc.want) || string(got) != "three" {
			t.Fatalf("a view's Scan(%q from %q): %q, %v; Get(t3): %q, %v; want %q and \"three\"", tc.prefix, tc.from, keys, err, got, gerr, tc.want)
		}
		v.Close()
	}
	if keys, _ := scanDerived(t, s, b, ""); !slices.Equal(keys, []string{"t1"}) {
		t.Fatalf("ScanDerived of the other commons: %q; want its own key only", keys)
	}
	if n, _ := s.Applied(bg, b); n != 7 {
		t.Fatalf("Applied(b) = %d, want 7", n)
	}
	commitDerived(t, s, store.Derived{Commons: a, Applied: 5, Writes: []store.Write{del("t2"), del("absent")}})
	if keys, _ := scanDerived(t, s, a, ""); !slices.Equal(keys, []string{"t1", "t3", "u"}) {
		t.Fatalf("after deleting t2: %q", keys)
	}
	if n, _ := s.Applied(bg, a); n != 5 {
		t.Fatalf("Applied(a) = %d, want 5", n)
	}
	stop := fmt.Errorf("stop")
	var seen int
	if err := s.ScanDerived(bg, a, nil, nil, func(_, _ []byte) error { seen++; return stop }); err != stop || seen != 1 {
		t.Fatalf("ScanDerived whose fn fails: %v after %d keys; want fn's error after 1", err, seen)
	}
	if err := s.CommitDerived(bg, []store.Derived{{Writes: []store.Write{set("k", "v")}}}); err == nil {
		t.Fatal("CommitDerived of an undefined commons succeeded")
	}
}

// testDerivedRandom commits random batches, some far larger than a
// transaction, and compares every key with a map after each.
func testDerivedRandom(t *testing.T, s store.Store) {
	c := CommonsID("derived-random")
	rng := rand.New(rand.NewPCG(7, 11))
	want := map[string]string{}
	for round := range 6 {
		n := 1 + rng.IntN(50)
		if round%3 == 2 {
			n = 60_000 // several megabytes: more than one badger transaction
		}
		var ws []store.Write
		for range n {
			k := fmt.Sprintf("k%05d", rng.IntN(80_000))
			if rng.IntN(4) == 0 {
				ws = append(ws, del(k))
				delete(want, k)
				continue
			}
			v := string(bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(80)))
			ws = append(ws, set(k, v))
			want[k] = v
		}
		commitDerived(t, s, store.Derived{Commons: c, Applied: uint64(round + 1), Writes: ws})
		keys, got := scanDerived(t, s, c, "k")
		if !slices.IsSorted(keys) {
			t.Fatalf("round %d: keys out of order", round)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("round %d (%d writes): %d keys stored, want %d, or values differ", round, n, len(got), len(want))
		}
		if a, _ := s.Applied(bg, c); a != uint64(round+1) {
			t.Fatalf("round %d: Applied %d", round, a)
		}
	}
}
