// Package memstore is an in-memory store.Store for tests and tools.
//
// It keeps everything in maps behind one lock, copies every byte slice
// that crosses its API, and loses everything when the process ends, so
// its "durably" is trivially true only for the life of the process.
// It imports neither badger nor libp2p.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

var _ store.Store = (*Store)(nil)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.RWMutex
	closed  bool
	records map[cid.Cid][]byte
	feeds   map[cid.Cid][]cid.Cid // commons → record CIDs; index i is cursor i+1
	blobs   map[cid.Cid][]byte
	commons []cid.Cid
	joined  map[cid.Cid]bool
	meta    map[string][]byte
	derived map[cid.Cid]*derived
}

// New returns an empty store.
func New() *Store {
	return &Store{
		records: make(map[cid.Cid][]byte),
		feeds:   make(map[cid.Cid][]cid.Cid),
		blobs:   make(map[cid.Cid][]byte),
		joined:  make(map[cid.Cid]bool),
	}
}

// begin checks ctx and the closed flag; the caller holds s.mu.
func (s *Store) begin(ctx context.Context) error {
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

// PutRecords implements store.Store.
func (s *Store) PutRecords(ctx context.Context, entries []store.Entry) ([]uint64, error) {
	for i, e := range entries {
		if !e.CID.Defined() || !e.Commons.Defined() {
			return nil, fmt.Errorf("memstore: entry %d: undefined CID or commons", i)
		}
		if len(e.Raw) == 0 {
			return nil, fmt.Errorf("memstore: entry %d: no bytes", i)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	cursors := make([]uint64, len(entries))
	for i, e := range entries {
		if raw, ok := s.records[e.CID]; ok {
			if len(raw) == 0 && protocol.RecordCID(e.Raw).Equals(e.CID) {
				s.records[e.CID] = slices.Clone(e.Raw) // dropped: taken back
			}
			continue
		}
		s.records[e.CID] = slices.Clone(e.Raw)
		s.feeds[e.Commons] = append(s.feeds[e.Commons], e.CID)
		cursors[i] = uint64(len(s.feeds[e.Commons]))
	}
	return cursors, nil
}

// GetRecords implements store.Store.
func (s *Store) GetRecords(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := make([][]byte, len(cs))
	for i, c := range cs {
		raw, ok := s.records[c]
		if !ok {
			return nil, fmt.Errorf("record %s: %w", c, store.ErrNotFound)
		}
		if len(raw) == 0 {
			return nil, &store.DroppedRecordError{CID: c}
		}
		out[i] = slices.Clone(raw)
	}
	return out, nil
}

// GetRecord implements store.Store.
func (s *Store) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	raw, ok := s.records[c]
	if !ok {
		return nil, store.ErrNotFound
	}
	if len(raw) == 0 {
		return nil, &store.DroppedRecordError{CID: c}
	}
	return slices.Clone(raw), nil
}

// DropRecordBytes implements store.Store: a tombstone is an empty record.
func (s *Store) DropRecordBytes(ctx context.Context, cs []cid.Cid) (int, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return 0, 0, err
	}
	n, size := 0, int64(0)
	for _, c := range cs {
		if raw, ok := s.records[c]; ok && len(raw) > 0 {
			s.records[c] = []byte{}
			n, size = n+1, size+int64(len(raw))
		}
	}
	return n, size, nil
}

// HasRecord implements store.Store.
func (s *Store) HasRecord(ctx context.Context, c cid.Cid) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	_, ok := s.records[c]
	return ok, nil
}

// Feed implements store.Store. A limit of zero or less gives an empty
// result.
func (s *Store) Feed(ctx context.Context, commons cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	log := s.feeds[commons]
	if limit <= 0 || after >= uint64(len(log)) {
		return nil, nil
	}
	end := uint64(len(log))
	if uint64(limit) < end-after {
		end = after + uint64(limit)
	}
	out := make([]store.Stored, 0, end-after)
	for cur := after + 1; cur <= end; cur++ {
		c := log[cur-1]
		if len(s.records[c]) == 0 {
			out = append(out, store.Stored{Cursor: cur, CID: c, Commons: commons, Dropped: true})
			continue
		}
		out = append(out, store.Stored{Cursor: cur, CID: c, Commons: commons, Raw: slices.Clone(s.records[c])})
	}
	return out, nil
}

// FeedHead implements store.Store.
func (s *Store) FeedHead(ctx context.Context, commons cid.Cid) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	return uint64(len(s.feeds[commons])), nil
}

// PutBlob implements store.Store.
func (s *Store) PutBlob(ctx context.Context, data []byte) (cid.Cid, error) {
	c := protocol.BlobCID(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return cid.Undef, err
	}
	if _, ok := s.blobs[c]; !ok {
		s.blobs[c] = slices.Clone(data)
	}
	return c, nil
}

// GetBlob implements store.Store.
func (s *Store) GetBlob(ctx context.Context, c cid.Cid) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	data, ok := s.blobs[c]
	if !ok {
		return nil, store.ErrNotFound
	}
	return slices.Clone(data), nil
}

// ReadBlob implements store.Store.
func (s *Store) ReadBlob(ctx context.Context, c cid.Cid, off int64, p []byte) (int, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return 0, 0, err
	}
	data, ok := s.blobs[c]
	if !ok {
		return 0, 0, store.ErrNotFound
	}
	return copyAt(p, data, off), int64(len(data)), nil
}

// copyAt copies into p what data holds from off (nothing past its end).
func copyAt(p, data []byte, off int64) int {
	if off < 0 || off >= int64(len(data)) {
		return 0
	}
	return copy(p, data[off:])
}

// DeleteBlob implements store.Store.
func (s *Store) DeleteBlob(ctx context.Context, c cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	delete(s.blobs, c)
	return nil
}

// HasBlob implements store.Store.
func (s *Store) HasBlob(ctx context.Context, c cid.Cid) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	_, ok := s.blobs[c]
	return ok, nil
}

// AddCommons implements store.Store.
func (s *Store) AddCommons(ctx context.Context, commons cid.Cid) error {
	if !commons.Defined() {
		return fmt.Errorf("memstore: add commons: undefined CID")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	if !s.joined[commons] {
		s.joined[commons] = true
		s.commons = append(s.commons, commons)
	}
	return nil
}

// RemoveCommons implements store.Store.
func (s *Store) RemoveCommons(ctx context.Context, commons cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	if s.joined[commons] {
		delete(s.joined, commons)
		s.commons = slices.DeleteFunc(s.commons, func(c cid.Cid) bool { return c.Equals(commons) })
	}
	return nil
}

// DropRecords implements store.Store.
func (s *Store) DropRecords(ctx context.Context, commons cid.Cid) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	log := s.feeds[commons]
	for _, c := range log {
		delete(s.records, c)
	}
	delete(s.feeds, commons)
	return len(log), nil
}

// StoredCommons implements store.Store.
func (s *Store) StoredCommons(ctx context.Context) ([]cid.Cid, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var out []cid.Cid
	for c, log := range s.feeds {
		if len(log) > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// Commons implements store.Store.
func (s *Store) Commons(ctx context.Context) ([]cid.Cid, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(s.commons), nil
}

// PutMeta implements store.Store.
func (s *Store) PutMeta(ctx context.Context, key string, value []byte) error {
	if key == "" || len(value) > store.MaxMetaSize {
		return fmt.Errorf("memstore: put meta %q: empty key or value over %d bytes", key, store.MaxMetaSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx); err != nil {
		return err
	}
	if s.meta == nil {
		s.meta = map[string][]byte{}
	}
	s.meta[key] = slices.Clone(value)
	return nil
}

// GetMeta implements store.Store.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	v, ok := s.meta[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return slices.Clone(v), nil
}

// Close implements store.Store. It drops the data; a second Close returns
// store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.records, s.feeds, s.blobs, s.commons, s.joined = nil, nil, nil, nil, nil
	return nil
}
