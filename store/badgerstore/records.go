package badgerstore

import (
	"bytes"
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

// txnFill is the share of badger's transaction limits that PutRecords
// fills before it starts a new transaction; the rest is slack for the
// estimate.
const txnFill = 0.9

// PutRecords implements store.Store. See the package doc for what is
// guaranteed when it fails or the process dies during the call.
func (s *Store) PutRecords(ctx context.Context, entries []store.Entry) ([]uint64, error) {
	for i, e := range entries {
		if !e.CID.Defined() || !e.Commons.Defined() {
			return nil, fmt.Errorf("badgerstore: entry %d: undefined CID or commons", i)
		}
		if len(e.Raw) == 0 {
			return nil, fmt.Errorf("badgerstore: entry %d: no bytes", i)
		}
		if len(e.Commons.Bytes()) > 255 {
			return nil, fmt.Errorf("badgerstore: entry %d: commons CID longer than 255 bytes", i)
		}
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	cursors := make([]uint64, len(entries))
	fresh, mend, err := s.assign(entries, cursors)
	if err != nil {
		return nil, fmt.Errorf("badgerstore: put records: %w", err)
	}
	if err := s.write(ctx, entries, cursors, fresh); err != nil {
		return nil, fmt.Errorf("badgerstore: put records: %w", err)
	}
	if err := s.mend(entries, mend); err != nil {
		return nil, fmt.Errorf("badgerstore: put records: write damaged records again: %w", err)
	}
	return cursors, nil
}

// assign sets cursors[i] for every entry not yet stored and not repeated
// earlier in entries, and returns the indexes of those entries, and of
// those stored damaged that the entry's bytes can mend (their stored
// bytes do not hash to the CID, and the entry's do). The caller holds
// writeMu, so the heads it reads cannot move. Reading a stored record's
// bytes costs little: a node offers PutRecords only records its state
// does not hold, which are seldom stored.
func (s *Store) assign(entries []store.Entry, cursors []uint64) (fresh, mend []int, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		seen := make(map[cid.Cid]bool, len(entries))
		heads := make(map[cid.Cid]uint64)
		for i, e := range entries {
			if seen[e.CID] {
				continue
			}
			seen[e.CID] = true
			item, err := txn.Get(recordKey(e.CID))
			if err == nil {
				whole := false
				if err := item.Value(func(v []byte) error {
					whole = checkRecord(e.CID, v) == nil
					return nil
				}); err != nil {
					return fmt.Errorf("read record %s: %w", e.CID, err)
				}
				if !whole && protocol.RecordCID(e.Raw).Equals(e.CID) {
					mend = append(mend, i)
				}
				continue
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("read record: %w", err)
			}
			head, ok := heads[e.Commons]
			if !ok {
				if head, err = readHead(txn, e.Commons); err != nil {
					return err
				}
			}
			heads[e.Commons] = head + 1
			cursors[i] = head + 1
			fresh = append(fresh, i)
		}
		return nil
	})
	return fresh, mend, err
}

// mend writes the entries mend indexes in place of their stored, damaged
// bytes, in one transaction (they are few).
func (s *Store) mend(entries []store.Entry, mend []int) error {
	if len(mend) == 0 {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for _, i := range mend {
			if err := txn.Set(recordKey(entries[i].CID), entries[i].Raw); err != nil {
				return err
			}
		}
		return nil
	})
}

// readHead returns a commons' head, 0 if it has none.
func readHead(txn *badger.Txn, commons cid.Cid) (uint64, error) {
	v, err := get(txn, headKey(commons))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read head: %w", err)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("head of %s: %d bytes, want 8", commons, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// write stores the fresh entries with their cursors, in as few
// transactions as badger allows, each committed (and synced) in order.
func (s *Store) write(ctx context.Context, entries []store.Entry, cursors []uint64, fresh []int) error {
	lim := limits{
		size:      int64(float64(s.db.MaxBatchSize()) * txnFill),
		count:     int64(float64(s.db.MaxBatchCount()) * txnFill),
		threshold: s.db.Opts().ValueThreshold,
	}
	prefixes := make(map[cid.Cid][]byte)
	for _, i := range fresh {
		c := entries[i].Commons
		if _, ok := prefixes[c]; !ok {
			id, err := s.giveID(c)
			if err != nil {
				return err
			}
			prefixes[c] = commonsPrefix(tagFeed, id)
		}
	}
	var ch chunk
	for n, i := range fresh {
		e := entries[i]
		feed := feedKey(prefixes[e.Commons], cursors[i])
		size, count := ch.cost(e, feed, lim.threshold)
		if ch.txn != nil && (ch.size+size > lim.size || ch.count+count > lim.count) {
			if err := ch.commit(); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("stored %d of %d new records: %w", n, len(fresh), err)
			}
			ch = chunk{}
			size, count = ch.cost(e, feed, lim.threshold)
		}
		if ch.txn == nil {
			ch = chunk{txn: s.db.NewTransaction(true), heads: make(map[cid.Cid]uint64)}
		}
		if err := ch.add(e, feed, cursors[i], size, count); err != nil {
			return err
		}
	}
	if ch.txn == nil {
		return nil
	}
	return ch.commit()
}

// limits are the bounds of one transaction.
type limits struct {
	size, count, threshold int64
}

// chunk is one transaction of a PutRecords call.
type chunk struct {
	txn         *badger.Txn
	heads       map[cid.Cid]uint64 // commons → highest cursor staged
	size, count int64              // estimated as badger does
}

// cost estimates what adding e, with its feed key, to the chunk costs, as
// badger's Txn.checkSize counts it, including e's head if its commons is
// new here.
func (ch *chunk) cost(e store.Entry, feed []byte, threshold int64) (size, count int64) {
	size = entrySize(recordKey(e.CID), len(e.Raw), threshold) +
		entrySize(feed, len(e.CID.Bytes()), threshold)
	count = 2
	if _, ok := ch.heads[e.Commons]; !ok {
		size += entrySize(headKey(e.Commons), 8, threshold)
		count++
	}
	return size, count
}

// add stages a record and its feed entry, under the feed key given. On
// error it discards the txn.
func (ch *chunk) add(e store.Entry, feed []byte, cursor uint64, size, count int64) error {
	if err := ch.txn.Set(recordKey(e.CID), e.Raw); err != nil {
		ch.txn.Discard()
		return fmt.Errorf("stage record: %w", err)
	}
	if err := ch.txn.Set(feed, e.CID.Bytes()); err != nil {
		ch.txn.Discard()
		return fmt.Errorf("stage feed entry: %w", err)
	}
	ch.heads[e.Commons] = cursor
	ch.size += size
	ch.count += count
	return nil
}

// commit stages the heads and commits. A failed commit stores nothing of
// the chunk.
func (ch *chunk) commit() error {
	defer ch.txn.Discard()
	for commons, head := range ch.heads {
		if err := ch.txn.Set(headKey(commons), encodeUint(head)); err != nil {
			return fmt.Errorf("stage head: %w", err)
		}
	}
	if err := ch.txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// entrySize mirrors badger's estimate of one entry's size in a
// transaction (Entry.estimateSizeAndSetThreshold plus the version).
func entrySize(key []byte, valueLen int, threshold int64) int64 {
	if int64(valueLen) < threshold {
		return int64(len(key)+valueLen) + 2 + 10
	}
	return int64(len(key)) + 12 + 2 + 10
}

// GetRecord implements store.Store. It checks the bytes against the CID.
func (s *Store) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	raw, err := s.getValue(ctx, recordKey(c))
	if err != nil {
		return nil, err
	}
	return raw, checkRecord(c, raw)
}

// checkRecord returns an error wrapping store.ErrCorrupt if raw is not the
// record c names: the store is damaged; a *store.DroppedRecordError if raw
// is a tombstone (DropRecordBytes).
func checkRecord(c cid.Cid, raw []byte) error {
	if len(raw) == 0 {
		return &store.DroppedRecordError{CID: c}
	}
	if !protocol.RecordCID(raw).Equals(c) {
		return &store.DamagedRecordError{CID: c, Advice: damagedAdvice}
	}
	return nil
}

// damagedAdvice is what a damaged record's error advises.
const damagedAdvice = "with the daemon stopped, commons repo verify checks the whole store, and commons repo repair mends it: the daemon then takes damaged records again from its peers, and repair --from a file a peer exported writes them at once"

// recordsPrefix is the prefix of every record's key.
var recordsPrefix = []byte{tagRecord}

// GetRecords implements store.Store. It reads from one snapshot, in key
// order: an iterator steps from one wanted record to the next when they are
// close (as when most of a small commons is read, for a peer that lacks
// it), about 2 µs a record where a lookup each costs 10-15 µs in a large
// store. Once stepping fails at its shortest (a sync turn's records, in
// time order, are spread over the whole key space), it looks up each of
// the rest of the call instead: a lookup reads one table of a level, the
// one its bloom filter does not rule out, where an iterator's seek reads a
// block of every level.
func (s *Store) GetRecords(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	keys := make([][]byte, len(cs))
	order := make([]int, len(cs))
	for i, c := range cs {
		keys[i], order[i] = recordKey(c), i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	out := make([][]byte, len(cs))
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordsPrefix})
		defer it.Close()
		steps := nearRecords // how far to step before seeking: halved when that fails, doubled when it works
		far := false         // stepping failed at its shortest: look the rest up
		for n, i := range order {
			if n%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			k := keys[i]
			var item *badger.Item
			if far {
				var err error
				at := s.askBlocks(k, nil, false)
				item, err = txn.Get(k)
				s.readDone(at)
				if errors.Is(err, badger.ErrKeyNotFound) {
					return fmt.Errorf("record %s: %w", cs[i], store.ErrNotFound)
				} else if err != nil {
					return fmt.Errorf("record %s: %w", cs[i], err)
				}
			} else {
				if n == 0 {
					at := s.askBlocks(k, recordsPrefix, true)
					it.Seek(k)
					s.readDone(at)
				}
				sought := false
				for step := 0; it.Valid() && bytes.Compare(it.Item().Key(), k) < 0; step++ {
					if step == steps {
						at := s.askBlocks(k, recordsPrefix, true)
						it.Seek(k)
						s.readDone(at)
						sought = true
						break
					}
					it.Next()
				}
				if sought {
					far = steps == 1
					steps = max(1, steps/2)
				} else {
					steps = min(nearRecords, steps*2)
				}
				if !it.Valid() || !bytes.Equal(it.Item().Key(), k) {
					return fmt.Errorf("record %s: %w", cs[i], store.ErrNotFound)
				}
				item = it.Item()
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("record %s: %w", cs[i], err)
			}
			if err := checkRecord(cs[i], v); err != nil {
				return err
			}
			out[i] = v
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrDropped) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: read: %w", err)
	}
	return out, nil
}

// nearRecords is the most records GetRecords steps over before it seeks.
// Stepping costs a fraction of a seek, so it pays when the records asked
// for are close together in key order (most of the store asked for: a
// join). When they are far apart, each lookup would step that far in vain
// before seeking, so the distance it steps is halved each time stepping
// fails, down to 1, and doubled each time it works; once it fails at 1,
// the rest are looked up one by one.
const nearRecords = 16

// DropRecordBytes implements store.Store: a tombstone is an empty value
// under the record's key (a record is never empty), written dropChunk
// records a transaction; each record's drop is whole.
func (s *Store) DropRecordBytes(ctx context.Context, cs []cid.Cid) (int, int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, 0, err
	}
	defer s.end()
	dropped, size := 0, int64(0)
	for len(cs) > 0 {
		if err := ctx.Err(); err != nil {
			return dropped, size, fmt.Errorf("badgerstore: drop records' bytes: %w", err)
		}
		chunk := cs[:min(len(cs), dropChunk)]
		cs = cs[len(chunk):]
		n, b, err := s.dropBytes(chunk)
		if err != nil {
			return dropped, size, fmt.Errorf("badgerstore: drop records' bytes: %w", err)
		}
		dropped, size = dropped+n, size+b
	}
	return dropped, size, nil
}

// dropBytes writes the tombstones of the records cs that the store holds
// whole, in one transaction, and returns how many and the bytes they held.
func (s *Store) dropBytes(cs []cid.Cid) (int, int64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	n, size := 0, int64(0)
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, c := range cs {
			item, err := txn.Get(recordKey(c))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if item.ValueSize() == 0 {
				continue // dropped already
			}
			if err := txn.Set(recordKey(c), []byte{}); err != nil {
				return err
			}
			n, size = n+1, size+item.ValueSize()
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return n, size, nil
}

// HasRecord implements store.Store.
func (s *Store) HasRecord(ctx context.Context, c cid.Cid) (bool, error) {
	return s.has(ctx, recordKey(c))
}

// StoredCommons implements store.Store: the commons with a head key.
func (s *Store) StoredCommons(ctx context.Context) ([]cid.Cid, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	var out []cid.Cid
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagHead}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := cid.Cast(it.Item().Key()[1:])
			if err != nil {
				return fmt.Errorf("head key %x: %w", it.Item().Key(), err)
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("badgerstore: stored commons: %w", err)
	}
	return out, nil
}

// FeedHead implements store.Store.
func (s *Store) FeedHead(ctx context.Context, commons cid.Cid) (uint64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	var head uint64
	err := s.db.View(func(txn *badger.Txn) (err error) {
		head, err = readHead(txn, commons)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("badgerstore: feed head: %w", err)
	}
	return head, nil
}

// Feed implements store.Store. A limit of zero or less gives an empty
// result. It reads from one snapshot, so a page is consistent even while
// records are added.
func (s *Store) Feed(ctx context.Context, commons cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	if limit <= 0 || after == ^uint64(0) {
		return nil, nil
	}
	var out []store.Stored
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := s.feedPrefix(commons)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(feedKey(prefix, after+1)); it.Valid() && len(out) < limit; it.Next() {
			if len(out)%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			st, err := readFeedItem(txn, it.Item(), commons, len(prefix))
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("badgerstore: feed: %w", err)
	}
	return out, nil
}

// readFeedItem decodes a feed entry and looks up its record's bytes.
func readFeedItem(txn *badger.Txn, item *badger.Item, commons cid.Cid, prefixLen int) (store.Stored, error) {
	key := item.Key()
	if len(key) != prefixLen+8 {
		return store.Stored{}, fmt.Errorf("feed key %x: bad length", key)
	}
	cursor := binary.BigEndian.Uint64(key[prefixLen:])
	v, err := item.ValueCopy(nil)
	if err != nil {
		return store.Stored{}, fmt.Errorf("feed entry %d: %w", cursor, err)
	}
	c, err := cid.Cast(v)
	if err != nil {
		return store.Stored{}, fmt.Errorf("feed entry %d: %w", cursor, err)
	}
	raw, err := get(txn, recordKey(c))
	if err != nil {
		return store.Stored{}, fmt.Errorf("record %s of feed entry %d: %w", c, cursor, err)
	}
	if err := checkRecord(c, raw); errors.Is(err, store.ErrDropped) {
		return store.Stored{Cursor: cursor, CID: c, Commons: commons, Dropped: true}, nil
	} else if err != nil {
		return store.Stored{}, &store.DamagedRecordError{CID: c, Cursor: cursor, Advice: damagedAdvice}
	}
	return store.Stored{Cursor: cursor, CID: c, Commons: commons, Raw: raw}, nil
}

// dropChunk is how many records DropRecords deletes per transaction.
const dropChunk = 2048

// DropRecords implements store.Store: each transaction deletes the newest
// dropChunk records of the commons, with their feed entries, and lowers
// its head to the newest one left.
func (s *Store) DropRecords(ctx context.Context, commons cid.Cid) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	dropped := 0
	for {
		if err := ctx.Err(); err != nil {
			return dropped, fmt.Errorf("badgerstore: drop records: %w", err)
		}
		n, err := s.dropNewest(commons)
		dropped += n
		if err != nil {
			return dropped, fmt.Errorf("badgerstore: drop records of %s: %w", commons, err)
		}
		if n == 0 {
			return dropped, nil
		}
	}
}

// dropNewest deletes up to dropChunk of a commons' newest records in one
// transaction and returns how many. It holds writeMu for that transaction
// only, so that other commons' records are stored between two.
func (s *Store) dropNewest(commons cid.Cid) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	head, err := readHead(txn, commons)
	if err != nil || head == 0 {
		return 0, err
	}
	low := head - min(head, dropChunk) // the new head
	prefix := s.feedPrefix(commons)
	for cur := head; cur > low; cur-- {
		k := feedKey(prefix, cur)
		v, err := get(txn, k)
		if err != nil {
			return 0, fmt.Errorf("read feed entry %d: %w", cur, err)
		}
		c, err := cid.Cast(v)
		if err != nil {
			return 0, fmt.Errorf("feed entry %d: %w", cur, err)
		}
		if err := txn.Delete(recordKey(c)); err != nil {
			return 0, fmt.Errorf("stage deletion: %w", err)
		}
		if err := txn.Delete(k); err != nil {
			return 0, fmt.Errorf("stage deletion: %w", err)
		}
	}
	if low == 0 {
		err = txn.Delete(headKey(commons))
	} else {
		err = txn.Set(headKey(commons), encodeUint(low))
	}
	if err != nil {
		return 0, fmt.Errorf("stage head: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return int(head - low), nil
}
