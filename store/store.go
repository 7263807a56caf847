// Package store persists a node's data: records and payload blobs by CID,
// the local feed log of each commons (arrival order, with cursors), the
// list of commons the node replicates, and each commons' derived state
// (what package crdt derives from the records, as keys and values the
// store does not interpret).
//
// The Store interface is deliberately narrow. Package badgerstore is the
// embedded default; package memstore is an in-memory implementation for
// tests. Both pass the conformance suite in package storetest.
//
// A store holds only records that passed validation: a node that applies
// stored records again (those its derived state does not reflect yet)
// does not verify their signatures again.
//
// This package does no networking and imports neither libp2p nor crdt.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// ErrNotFound is returned when a record, blob or commons is not stored.
var ErrNotFound = errors.New("store: not found")

// ErrCorrupt is wrapped by the errors of reads that find the store
// damaged: a record whose bytes do not hash to its CID, a table whose
// checksum fails.
var ErrCorrupt = errors.New("store: damaged")

// DamagedRecordError is the error of a read that finds a record's stored
// bytes damaged: they do not hash to its CID. It wraps ErrCorrupt. A
// PutRecords call given the record's bytes writes them again.
type DamagedRecordError struct {
	CID    cid.Cid
	Cursor uint64 // its cursor in the feed log read (Feed), or 0
	Advice string // what can be done, for the error's text
}

func (e *DamagedRecordError) Error() string {
	s := fmt.Sprintf("%v: record %s: its bytes do not match its CID", ErrCorrupt, e.CID)
	if e.Advice != "" {
		s += " (" + e.Advice + ")"
	}
	return s
}

func (e *DamagedRecordError) Unwrap() error { return ErrCorrupt }

// ErrDropped is wrapped by the errors of reads of a record whose bytes this
// node dropped (DropRecordBytes): the commons disowned it.
var ErrDropped = errors.New("store: dropped")

// DroppedRecordError is the error of a read that finds a record dropped:
// its bytes were deleted by DropRecordBytes, and a tombstone keeps its
// place. It wraps ErrDropped. A PutRecords call given the record's bytes
// writes them again.
type DroppedRecordError struct {
	CID cid.Cid
}

func (e *DroppedRecordError) Error() string {
	return fmt.Sprintf("%v: record %s: this node dropped its bytes, its author's key being banned (commons repo compact --disowned); a peer that kept it can serve it", ErrDropped, e.CID)
}

func (e *DroppedRecordError) Unwrap() error { return ErrDropped }

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store: closed")

// MaxMetaSize is the largest value PutMeta stores.
const MaxMetaSize = 64 << 10

// Entry is a validated record to store.
type Entry struct {
	CID     cid.Cid // the record's CID
	Commons cid.Cid // the commons it belongs to (a genesis manifest: its own CID)
	Raw     []byte  // the record's exact bytes
}

// Stored is a record as the feed log returns it.
type Stored struct {
	Cursor  uint64 // position in its commons' feed log, from 1
	CID     cid.Cid
	Commons cid.Cid
	Raw     []byte // nil if Dropped
	// Dropped says that the record's bytes were dropped (DropRecordBytes):
	// the feed log keeps its place.
	Dropped bool
}

// Store persists records, blobs and the feed log. Implementations are safe
// for concurrent use.
type Store interface {
	// PutRecords stores entries atomically and durably: when it returns nil,
	// every entry survives a crash (kill -9, power loss aside from disk
	// lies). A call costs one sync however many entries it holds (group
	// commit). Entries already stored, or repeated within the call, are
	// skipped. The result has one cursor per entry: the feed position newly
	// assigned in the entry's commons, or 0 if it was already stored. An
	// entry stored already whose stored bytes are damaged (they do not hash
	// to its CID) has them written again from the entry, if the entry's
	// do: a whole copy from a peer mends the store.
	// Cursors in a commons increase by one with each new record and are
	// never reused. An entry with an undefined CID or commons, or no bytes
	// (no record is empty), fails the call before anything is stored. A call that fails may have stored a
	// prefix of its new entries, each at the cursor it would have had (see
	// the implementation's doc); calling again with the same entries is
	// always safe.
	PutRecords(ctx context.Context, entries []Entry) ([]uint64, error)

	// GetRecord returns a record's bytes, or ErrNotFound; a
	// *DroppedRecordError if its bytes were dropped.
	GetRecord(ctx context.Context, c cid.Cid) ([]byte, error)

	// GetRecords returns the bytes of the records cs, in their order, read
	// together (cheaper than a GetRecord each). A record that is not stored
	// fails the call with an error that wraps ErrNotFound and names it; one
	// dropped, with a *DroppedRecordError.
	GetRecords(ctx context.Context, cs []cid.Cid) ([][]byte, error)

	// HasRecord reports whether a record is stored (its bytes, or the
	// tombstone of its dropped bytes).
	HasRecord(ctx context.Context, c cid.Cid) (bool, error)

	// DropRecordBytes deletes, durably, the bytes of the records cs,
	// leaving a tombstone in their place: the feed log keeps their
	// cursors (Feed returns them marked Dropped), and reads of them fail
	// with a *DroppedRecordError until PutRecords is given their bytes
	// again. Records not stored, or dropped already, are skipped; it
	// returns how many it dropped and the bytes they held.
	DropRecordBytes(ctx context.Context, cs []cid.Cid) (int, int64, error)

	// Feed returns up to limit records of a commons with cursors greater
	// than after, in cursor order. Resuming from the last cursor returned
	// never skips or repeats a record. An empty result means the caller is
	// up to date. A commons with no records, or a limit of zero or less,
	// gives an empty result. A record dropped (DropRecordBytes) is
	// returned marked Dropped, without its bytes.
	Feed(ctx context.Context, commons cid.Cid, after uint64, limit int) ([]Stored, error)

	// StoredCommons returns the commons some of whose records are stored,
	// replicated or not (one left without its records deleted), in no
	// particular order.
	StoredCommons(ctx context.Context) ([]cid.Cid, error)

	// FeedHead returns the highest cursor assigned in a commons (0 if none),
	// which is also its number of records.
	FeedHead(ctx context.Context, commons cid.Cid) (uint64, error)

	// PutBlob stores a payload blob under its CID (CIDv1, raw, sha2-256),
	// durably, and returns the CID. Storing the same blob twice is a no-op,
	// unless the stored bytes are damaged: they are written again.
	PutBlob(ctx context.Context, data []byte) (cid.Cid, error)

	// GetBlob returns a blob, or ErrNotFound; an error wrapping ErrCorrupt
	// if the stored bytes do not hash to c.
	GetBlob(ctx context.Context, c cid.Cid) ([]byte, error)

	// ReadBlob copies into p the bytes of a blob from offset off (as many
	// as fit, fewer at its end), and returns how many, and the blob's size;
	// ErrNotFound if it is not stored. A blob is served a piece at a time
	// this way, so that serving it holds no copy of it in memory, and the
	// store is held for no longer than a copy of p takes. The pieces are
	// not checked against c: the reader hashes them as it goes.
	ReadBlob(ctx context.Context, c cid.Cid, off int64, p []byte) (n int, size int64, err error)

	// HasBlob reports whether a blob is stored.
	HasBlob(ctx context.Context, c cid.Cid) (bool, error)

	// DeleteBlob deletes a blob, durably; deleting one not stored is a
	// no-op. (A store may give its disk space back only later: see
	// badgerstore.Compact.)
	DeleteBlob(ctx context.Context, c cid.Cid) error

	// AddCommons records, durably, that this node replicates a commons.
	// Adding one twice is a no-op.
	AddCommons(ctx context.Context, commons cid.Cid) error

	// RemoveCommons records, durably, that this node no longer replicates
	// a commons. Its records and feed log stay stored; adding it again
	// lists it last. Removing one not listed is a no-op.
	RemoveCommons(ctx context.Context, commons cid.Cid) error

	// DropRecords deletes, durably, every record of a commons and its feed
	// log, newest first, in as many transactions as it takes, and returns
	// how many it deleted. A call that fails or a crash part-way leaves the
	// commons holding its records of cursors 1 to k, with head k, for some
	// k: calling again finishes the job. It is the one way a cursor is
	// reused: the commons' next record, if any, gets cursor 1 again. It
	// touches neither the commons' listing nor its derived state nor
	// blobs.
	DropRecords(ctx context.Context, commons cid.Cid) (int, error)

	// Commons lists the replicated commons in the order they were added.
	Commons(ctx context.Context) ([]cid.Cid, error)

	// PutMeta stores a small value (at most MaxMetaSize bytes) under a
	// metadata key, durably, replacing any previous value. Keys are the
	// caller's (node/ keeps, for instance, the rules its derived state
	// was computed under). An empty key or an oversized value fails.
	PutMeta(ctx context.Context, key string, value []byte) error

	// GetMeta returns the value stored under a metadata key, or
	// ErrNotFound.
	GetMeta(ctx context.Context, key string) ([]byte, error)

	// CommitDerived writes, durably, the changes to the derived state of
	// each commons in ds, with the feed cursor through which that state
	// now reflects the commons' records (Applied). The whole call is
	// atomic: after a crash, either every change and cursor is there, or
	// none is, however many writes it holds. Within a commons, a later
	// write to a key replaces an earlier one of the same call.
	CommitDerived(ctx context.Context, ds []Derived) error

	// Applied returns the cursor a commons' derived state was last
	// committed with (0 if never): its records up to that cursor are
	// reflected in it, those after are not.
	Applied(ctx context.Context, commons cid.Cid) (uint64, error)

	// GetDerived returns the value of key in a commons' derived state, or
	// nil (and no error) if there is none. A value stored empty is
	// returned as an empty, non-nil slice.
	GetDerived(ctx context.Context, commons cid.Cid, key []byte) ([]byte, error)

	// ScanDerived calls fn with every key of a commons' derived state
	// that starts with prefix and is not less than from (nil: every key
	// under prefix), and its value, in ascending byte order, until fn
	// returns an error, which it returns. fn must not keep key or value,
	// nor call the store.
	ScanDerived(ctx context.Context, commons cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error

	// ReadDerived returns a view of a commons' derived state: reading
	// many keys through one view costs less than through GetDerived each.
	// What is committed while the view is open may or may not be visible
	// through it. The caller must Close it; the store's Close waits for
	// that.
	ReadDerived(ctx context.Context, commons cid.Cid) (DerivedView, error)

	// Close flushes and releases the store. Later calls return ErrClosed.
	Close() error
}

// DerivedView reads a commons' derived state (Store.ReadDerived), as
// GetDerived and ScanDerived do.
type DerivedView interface {
	Get(key []byte) ([]byte, error)
	Scan(prefix, from []byte, fn func(key, value []byte) error) error
	Close()
}

// Write is one change to a commons' derived state: Value stored under
// Key (an empty Value is stored as such), or Key deleted.
type Write struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// Derived is what CommitDerived writes of one commons.
type Derived struct {
	Commons cid.Cid
	Writes  []Write
	Applied uint64 // the feed cursor the state reflects the records through
}
