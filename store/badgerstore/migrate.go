package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// formatVersion1 is the format before commons IDs: the keys of a feed log
// ('f') and of a derived state ('d') named their commons by its CID, a
// length byte and 36 bytes, where format 2 writes a one- or two-byte ID
// under the tags 'F' and 'D'. Every record writes several of those keys:
// importing 1,000,000 records took about 0.83 of the time with the shorter
// ones (doc.go).
const formatVersion1 = "commons-store/1"

// upgrade brings an opened store to this format. With v1 (a store of
// format 1), it reads the commons' IDs, drops any format 2 feed or derived
// key (a migration cut short left them, and an earlier version may have
// changed the store since), copies the feed logs and derived states under
// their format 2 keys, gives any commons met there for the first time an
// ID before its first key is copied, records the format version, then
// drops the format 1 keys. A crash on the way leaves a store of format 1,
// which the next Open moves again from its start; or one of format 2 with
// format 1 keys left, which every Open drops.
func (s *Store) upgrade(v1 bool) error {
	if err := s.loadIDs(); err != nil {
		return err
	}
	if v1 {
		if err := s.migrate(); err != nil {
			return fmt.Errorf("move the store to %s: %w (the store is as it was, in %s, which the version of commons before this one reads)", formatVersion, err, formatVersion1)
		}
	}
	left, err := s.anyKey(tagFeed1, tagDerived1)
	if err != nil || !left {
		return err
	}
	if err := s.db.DropPrefix([]byte{tagFeed1}, []byte{tagDerived1}); err != nil {
		return fmt.Errorf("drop the keys of %s: %w", formatVersion1, err)
	}
	return nil
}

// anyKey reports whether a key under one of the tags is stored.
func (s *Store) anyKey(tags ...byte) (bool, error) {
	left := false
	err := s.db.View(func(txn *badger.Txn) error {
		for _, tag := range tags {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tag}})
			it.Rewind()
			left = left || it.Valid()
			it.Close()
		}
		return nil
	})
	return left, err
}

// migrate copies the format 1 feed and derived keys under their format 2
// keys, checks that each feed log was copied whole, then records the
// format version. Badger reads table blocks unchecked (options), so that
// a damaged block could end the copy of a table short; the feed logs'
// count catches that among their keys, not among the derived state's.
// Checking every block first (badger's VerifyChecksum) would hold every
// table's pages at once: at 1,000,000 records, 745 MB.
func (s *Store) migrate() error {
	start := time.Now()
	// The copies take about what the tables take: refused, rather than
	// fill the disk, without that much room.
	var tables int64
	for _, t := range s.db.Tables() {
		tables += int64(t.OnDiskSize)
	}
	if free, ok := freeSpace(s.dir); ok && free < tables+compactMargin {
		return fmt.Errorf("it needs up to %d MiB free, and the disk has %d MiB: make room", (tables+compactMargin)>>20, free>>20)
	}
	// Warn: a command run on the repo shows it, and the user waits.
	s.log.Warn("store: moving the feed log and the derived state to shorter keys (commons-store/2), once: about a minute for each 1,000,000 records")
	if left, err := s.anyKey(tagFeed, tagDerived); err != nil {
		return err
	} else if left {
		if err := s.db.DropPrefix([]byte{tagFeed}, []byte{tagDerived}); err != nil {
			return fmt.Errorf("drop the copies a migration cut short left: %w", err)
		}
	}
	p := progress{s: s, start: start, last: start}
	feeds, err := s.copyFormat1(tagFeed1, tagFeed, &p)
	if err != nil {
		return err
	}
	if err := s.checkFeeds(feeds); err != nil {
		return err
	}
	if _, err := s.copyFormat1(tagDerived1, tagDerived, &p); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(versionKey(), []byte(formatVersion))
	}); err != nil {
		return fmt.Errorf("record the format version: %w", err)
	}
	s.log.Warn("store: moved to shorter keys", "keys", p.n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkFeeds checks that the feed log of every commons with a head was
// copied whole: as many entries as its head (a feed log has no gap).
func (s *Store) checkFeeds(copied map[cid.Cid]uint64) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagHead}, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := cid.Cast(it.Item().KeyCopy(nil)[1:])
			if err != nil {
				return fmt.Errorf("feed head key %x: %w", it.Item().Key(), err)
			}
			head, err := readHead(txn, c)
			if err != nil {
				return err
			}
			if copied[c] != head {
				return fmt.Errorf("the feed log of %s: %d entries copied, and its head is %d: the store is damaged (the version of commons before this one can check it, commons repo verify, and repair it)", c, copied[c], head)
			}
		}
		return nil
	})
}

// progress counts the keys migrate copied, and logs the count every few
// seconds.
type progress struct {
	s           *Store
	start, last time.Time
	n           int
}

func (p *progress) add() {
	p.n++
	if p.n%4096 == 0 {
		// The pages of the tables read and written: not kept (Verify).
		_, _, _, _ = p.s.releasePages(verifyPageBudget)
	}
	if p.n%65536 == 0 && time.Since(p.last) >= 10*time.Second {
		p.last = time.Now()
		p.s.log.Warn("store: moving to shorter keys", "keys", p.n, "elapsed", time.Since(p.start).Round(time.Second))
	}
}

// copyFormat1 writes every key under tag from, 'from' len CID rest, again
// as 'to' ID rest, with its value, and returns how many it copied of each
// commons.
func (s *Store) copyFormat1(from, to byte, p *progress) (copied map[cid.Cid]uint64, err error) {
	defer func() {
		if r := recover(); r != nil { // badger panics on some damaged blocks
			err = fmt.Errorf("a table could not be read through: %v", r)
		}
	}()
	copied = make(map[cid.Cid]uint64)
	wb := s.db.NewWriteBatch()
	defer func() { wb.Cancel() }()
	taken := 0
	var last cid.Cid
	var prefix []byte
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{from}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) < 2 || len(key) < 2+int(key[1]) {
				return fmt.Errorf("key %x: shorter than the commons CID it starts with", key)
			}
			c, err := cid.Cast(key[2 : 2+int(key[1])])
			if err != nil {
				return fmt.Errorf("key %x: %w", key, err)
			}
			if !c.Equals(last) {
				// Given (and synced) before the first key under it is
				// copied.
				id, err := s.giveID(c)
				if err != nil {
					return err
				}
				last, prefix = c, commonsPrefix(to, id)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %x: %w", key, err)
			}
			nk := append(bytes.Clone(prefix), key[2+int(key[1]):]...)
			if err := wb.Set(nk, v); err != nil {
				return err
			}
			copied[c]++
			p.add()
			if taken += len(nk) + len(v); taken >= copyBatch {
				if err := wb.Flush(); err != nil {
					return errors.Join(errors.New("write the keys copied"), err)
				}
				wb, taken = s.db.NewWriteBatch(), 0
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := wb.Flush(); err != nil {
		return nil, errors.Join(errors.New("write the keys copied"), err)
	}
	return copied, nil
}
