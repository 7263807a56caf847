package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// PutBlob implements store.Store. Blobs of 320 bytes or more go to badger's
// value log; a blob may not exceed the value log file size (256 MiB).
func (s *Store) PutBlob(ctx context.Context, data []byte) (cid.Cid, error) {
	c := protocol.BlobCID(data)
	switch whole, err := s.blobWhole(ctx, c); {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return cid.Undef, err
	case whole:
		return c, nil
	}
	// Not stored, or stored damaged: write data (in place of the damage).
	if err := s.begin(ctx); err != nil {
		return cid.Undef, err
	}
	defer s.end()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(blobKey(c), data)
	}); err != nil {
		return cid.Undef, fmt.Errorf("badgerstore: put blob %s: %w", c, err)
	}
	return c, nil
}

// GetBlob implements store.Store. It checks the bytes against the CID.
func (s *Store) GetBlob(ctx context.Context, c cid.Cid) ([]byte, error) {
	data, err := s.getValue(ctx, blobKey(c))
	if err != nil {
		return nil, err
	}
	return data, checkBlob(c, data)
}

// blobWhole reports whether blob c is stored and whole (its bytes hash to
// c), hashing it where badger holds it; ErrNotFound if it is not stored.
// It holds the value log file for as long as the hash takes: PutBlob of a
// blob stored already is its only caller.
func (s *Store) blobWhole(ctx context.Context, c cid.Cid) (whole bool, err error) {
	err = s.viewBlob(ctx, c, func(v []byte) { whole = checkBlob(c, v) == nil })
	return whole, err
}

// viewBlob calls fn with blob c's bytes where badger holds them (its
// memory-mapped value log, or a table for a small one), within a read
// transaction; ErrNotFound if it is not stored. fn must not keep them.
func (s *Store) viewBlob(ctx context.Context, c cid.Cid, fn func(v []byte)) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(blobKey(c))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { fn(v); return nil })
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.ErrNotFound
	case err != nil:
		return fmt.Errorf("badgerstore: read blob %s: %w", c, err)
	}
	return nil
}

// checkBlob returns an error wrapping store.ErrCorrupt if data is not the
// blob c names: the store is damaged.
func checkBlob(c cid.Cid, data []byte) error {
	if !protocol.BlobCID(data).Equals(c) {
		return fmt.Errorf("%w: blob %s: its bytes do not match its CID (a peer that holds it can send it again)", store.ErrCorrupt, c)
	}
	return nil
}

// ReadBlob implements store.Store. It copies from where badger holds the
// blob (its memory-mapped value log, or a table for a small one) within a
// read transaction that lasts no longer than the copy: badger holds the
// value log file's lock meanwhile, which its writer needs when it starts a
// new file. It does not check the blob against its CID: a reader of the
// pieces hashes them as it goes.
func (s *Store) ReadBlob(ctx context.Context, c cid.Cid, off int64, p []byte) (int, int64, error) {
	var n int
	var size int64
	err := s.viewBlob(ctx, c, func(v []byte) {
		// Not item.ValueSize: for a value in the value log it is an
		// estimate.
		size = int64(len(v))
		if off >= 0 && off < size {
			chunk := v[off:min(size, off+int64(len(p)))]
			willNeed(chunk)
			n = copy(p, chunk)
		}
	})
	if err != nil {
		return 0, 0, err
	}
	return n, size, nil
}

// HasBlob implements store.Store.
func (s *Store) HasBlob(ctx context.Context, c cid.Cid) (bool, error) {
	return s.has(ctx, blobKey(c))
}

// DeleteBlob implements store.Store. Its space on disk comes back with
// Compact.
func (s *Store) DeleteBlob(ctx context.Context, c cid.Cid) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(blobKey(c)) }); err != nil {
		return fmt.Errorf("badgerstore: delete blob %s: %w", c, err)
	}
	return nil
}

// AddCommons implements store.Store.
func (s *Store) AddCommons(ctx context.Context, commons cid.Cid) error {
	if !commons.Defined() {
		return errors.New("badgerstore: add commons: undefined CID")
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	s.commonsMu.Lock()
	defer s.commonsMu.Unlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		_, err := txn.Get(commonsKey(commons))
		if err == nil {
			return nil // already joined
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if s.nextSeq == 0 {
			list, err := listCommons(txn)
			if err != nil {
				return err
			}
			s.nextSeq = uint64(len(list)) + 1
			if len(list) > 0 {
				s.nextSeq = list[len(list)-1].seq + 1
			}
		}
		if err := txn.Set(commonsKey(commons), encodeUint(s.nextSeq)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		s.nextSeq = 0 // reload: the commit may or may not have happened
		return fmt.Errorf("badgerstore: add commons %s: %w", commons, err)
	}
	if s.nextSeq != 0 {
		s.nextSeq++
	}
	return nil
}

// RemoveCommons implements store.Store.
func (s *Store) RemoveCommons(ctx context.Context, commons cid.Cid) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	s.commonsMu.Lock()
	defer s.commonsMu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(commonsKey(commons)) }); err != nil {
		return fmt.Errorf("badgerstore: remove commons %s: %w", commons, err)
	}
	return nil
}

// Commons implements store.Store.
func (s *Store) Commons(ctx context.Context) ([]cid.Cid, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	var list []joined
	err := s.db.View(func(txn *badger.Txn) (err error) {
		list, err = listCommons(txn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("badgerstore: list commons: %w", err)
	}
	out := make([]cid.Cid, len(list))
	for i, j := range list {
		out[i] = j.cid
	}
	return out, nil
}

type joined struct {
	seq uint64
	cid cid.Cid
}

// listCommons returns the joined commons sorted by sequence number.
func listCommons(txn *badger.Txn) ([]joined, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagCommons}})
	defer it.Close()
	var list []joined
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		c, err := cid.Cast(item.Key()[1:])
		if err != nil {
			return nil, fmt.Errorf("commons key %x: %w", item.Key(), err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		if len(v) != 8 {
			return nil, fmt.Errorf("commons %s: sequence of %d bytes", c, len(v))
		}
		list = append(list, joined{seq: binary.BigEndian.Uint64(v), cid: c})
	}
	slices.SortFunc(list, func(a, b joined) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return list, nil
}

// PutMeta implements store.Store.
func (s *Store) PutMeta(ctx context.Context, key string, value []byte) error {
	if key == "" || len(value) > store.MaxMetaSize {
		return fmt.Errorf("badgerstore: put meta %q: empty key or value over %d bytes", key, store.MaxMetaSize)
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(key), slices.Clone(value))
	}); err != nil {
		return fmt.Errorf("badgerstore: put meta %q: %w", key, err)
	}
	return nil
}

// GetMeta implements store.Store.
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	return s.getValue(ctx, metaKey(key))
}
