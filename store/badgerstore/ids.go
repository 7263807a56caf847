package badgerstore

import (
	"fmt"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// ids holds the short IDs that name commons inside the keys of their feed
// logs and derived state ('i' keys): one or two bytes where the commons'
// CID took 37, in keys written several times for every record. An ID is
// given once and kept, the commons left or not, so that a commons joined
// again finds its records.
type ids struct {
	giving sync.Mutex // held by giveID while it writes, so that an ID is given once
	mu     sync.Mutex // guards the fields below, never held across a write
	of     map[cid.Cid]uint64
	next   uint64
}

// loadIDs reads every commons' ID.
func (s *Store) loadIDs() error {
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	s.ids.of, s.ids.next = make(map[cid.Cid]uint64), 1
	of := make(map[uint64]cid.Cid)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagID}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := cid.Cast(it.Item().KeyCopy(nil)[1:])
			if err != nil {
				return fmt.Errorf("read commons IDs: key %x: %w", it.Item().Key(), err)
			}
			var id uint64
			if err := it.Item().Value(func(v []byte) error {
				id, err = decodeUint(v)
				return err
			}); err != nil || id == 0 {
				return fmt.Errorf("read commons IDs: the ID of %s: %d, %v", c, id, err)
			}
			if other, ok := of[id]; ok {
				return fmt.Errorf("read commons IDs: %s and %s have the same ID, %d", other, c, id)
			}
			of[id] = c
			s.ids.of[c] = id
			s.ids.next = max(s.ids.next, id+1)
		}
		return nil
	})
}

// id returns a commons' ID, 0 (which no commons has) if it has none yet.
func (s *Store) id(c cid.Cid) uint64 {
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	return s.ids.of[c]
}

// giveID returns a commons' ID, giving it the next one, in a synced
// transaction of its own, if it has none: before any key is written under
// it. A write that failed may have stored the ID all the same: that ID is
// not given again.
func (s *Store) giveID(c cid.Cid) (uint64, error) {
	s.ids.giving.Lock()
	defer s.ids.giving.Unlock()
	s.ids.mu.Lock()
	id, ok := s.ids.of[c]
	next, loaded := s.ids.next, s.ids.of != nil
	s.ids.mu.Unlock()
	switch {
	case ok:
		return id, nil
	case !loaded:
		return 0, fmt.Errorf("give commons %s an ID: the IDs were not read", c)
	}
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(idKey(c), encodeUint(next)) })
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	s.ids.next = next + 1
	if err != nil {
		return 0, fmt.Errorf("give commons %s an ID: %w", c, err)
	}
	s.ids.of[c] = next
	return next, nil
}

// feedPrefix returns the prefix of a commons' feed log.
func (s *Store) feedPrefix(c cid.Cid) []byte { return commonsPrefix(tagFeed, s.id(c)) }

// derivedPrefix returns the prefix of a commons' derived state.
func (s *Store) derivedPrefix(c cid.Cid) []byte { return commonsPrefix(tagDerived, s.id(c)) }
