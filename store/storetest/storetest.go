// Package storetest is the conformance suite for store.Store
// implementations. An implementation's own tests call Run with a
// constructor for fresh, empty stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
// The suite uses fake entries (arbitrary bytes whose CID is
// protocol.RecordCID of those bytes); it does not need valid records.
// It imports no implementation and neither badger nor libp2p.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// Run runs the conformance suite as named subtests. newStore must return a
// fresh, empty store for each call; Run closes every store it gets (a
// second Close from the caller's own t.Cleanup returns store.ErrClosed and
// should be ignored). newStore should register the removal of any other
// resources, such as a temporary directory, with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGetHas", testPutGetHas},
		{"GetRecords", testGetRecords},
		{"EmptyPut", testEmptyPut},
		{"InvalidEntry", testInvalidEntry},
		{"DuplicatesWithinCall", testDuplicatesWithinCall},
		{"DuplicatesAcrossCalls", testDuplicatesAcrossCalls},
		{"CursorsPerCommons", testCursorsPerCommons},
		{"FeedPaging", testFeedPaging},
		{"FeedEdges", testFeedEdges},
		{"FeedHead", testFeedHead},
		{"DropRecords", testDropRecords},
		{"DropRecordBytes", testDropRecordBytes},
		{"Blobs", testBlobs},
		{"Commons", testCommons},
		{"Meta", testMeta},
		{"Derived", testDerived},
		{"DerivedRandom", testDerivedRandom},
		{"NotFound", testNotFound},
		{"Copies", testCopies},
		{"Closed", testClosed},
		{"ConcurrentPutRecords", testConcurrentPutRecords},
		{"ContextCanceled", testContextCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// CommonsID returns a fake commons CID named by tag.
func CommonsID(tag string) cid.Cid {
	return protocol.RecordCID([]byte("commons genesis " + tag))
}

// Entries returns n fake entries of commons, distinct for each (tag, i).
func Entries(commons cid.Cid, tag string, n int) []store.Entry {
	out := make([]store.Entry, n)
	for i := range out {
		out[i] = Entry(commons, fmt.Sprintf("%s-%d", tag, i))
	}
	return out
}

// Entry returns one fake entry of commons whose bytes are derived from tag.
func Entry(commons cid.Cid, tag string) store.Entry {
	raw := []byte("fake record " + commons.String() + " " + tag)
	return store.Entry{CID: protocol.RecordCID(raw), Commons: commons, Raw: raw}
}

// put stores entries and fails the test on error.
func put(t *testing.T, s store.Store, entries []store.Entry) []uint64 {
	t.Helper()
	cursors, err := s.PutRecords(context.Background(), entries)
	if err != nil {
		t.Fatalf("PutRecords(%d entries): %v", len(entries), err)
	}
	if len(cursors) != len(entries) {
		t.Fatalf("PutRecords(%d entries) gave %d cursors", len(entries), len(cursors))
	}
	return cursors
}

// feedAll pages through a commons' feed with the given page size.
func feedAll(t *testing.T, s store.Store, commons cid.Cid, page int) []store.Stored {
	t.Helper()
	var all []store.Stored
	var after uint64
	for {
		got, err := s.Feed(context.Background(), commons, after, page)
		if err != nil {
			t.Fatalf("Feed(after=%d, limit=%d): %v", after, page, err)
		}
		if len(got) > page {
			t.Fatalf("Feed(after=%d, limit=%d) gave %d records", after, page, len(got))
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		after = got[len(got)-1].Cursor
	}
}

// checkFeed checks that a feed is exactly want, with cursors 1..len(want).
func checkFeed(t *testing.T, got []store.Stored, want []store.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("feed has %d records, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Cursor != uint64(i+1) || !g.CID.Equals(w.CID) || !g.Commons.Equals(w.Commons) || string(g.Raw) != string(w.Raw) {
			t.Fatalf("feed[%d] = {cursor %d, %s, %s, %q}, want {cursor %d, %s, %s, %q}",
				i, g.Cursor, g.CID, g.Commons, g.Raw, i+1, w.CID, w.Commons, w.Raw)
		}
	}
}

func wantCursors(t *testing.T, got []uint64, want ...uint64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cursors = %v, want %v", got, want)
	}
}
