package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Records     int      `json:"records"`      // records read whole
	FeedEntries int      `json:"feed_entries"` // feed entries whose record is there
	Blobs       int      `json:"blobs"`        // blobs read whole
	Dropped     int      `json:"dropped"`      // records whose bytes this node dropped (DropRecordBytes)
	Damaged     []string `json:"damaged"`      // what is wrong, one line each, the first maxDamaged
	DamagedAll  int      `json:"damaged_total"`
}

const maxDamaged = 100

func (r *VerifyReport) damage(format string, args ...any) {
	r.DamagedAll++
	if len(r.Damaged) < maxDamaged {
		r.Damaged = append(r.Damaged, fmt.Sprintf(format, args...))
	}
}

// verifyPageBudget is the budget with which Verify releases the pages of
// the store's files it read (ReleasePages).
var verifyPageBudget int64 = 48 << 20

// Verify checks the whole store: every table block against its checksum
// (naming the first damaged table file), every record and blob against
// its CID, and every commons' feed log against its head and its records. It reads
// everything once; the store stays usable meanwhile.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	if err := s.begin(ctx); err != nil {
		return rep, err
	}
	defer s.end()
	if err := s.db.VerifyChecksum(); err != nil {
		rep.damage("%v", err)
	}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if rep.Records%4096 == 4095 {
				if err := ctx.Err(); err != nil {
					return err
				}
				// Every record is read once: what was read need not
				// stay in the process (see ReleasePages).
				_, _, _, _ = s.releasePages(verifyPageBudget)
			}
			item := it.Item()
			c, err := cid.Cast(item.KeyCopy(nil)[1:])
			if err != nil {
				rep.damage("record key %x: %v", item.Key(), err)
				continue
			}
			raw, err := item.ValueCopy(nil)
			if err != nil {
				rep.damage("record %s: %v", c, err)
				continue
			}
			if len(raw) == 0 {
				rep.Dropped++ // a tombstone
				continue
			}
			if !protocol.RecordCID(raw).Equals(c) {
				rep.damage("record %s: its bytes do not match its CID", c)
				continue
			}
			rep.Records++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if err := s.verifyBlobs(ctx, &rep); err != nil {
		return rep, err
	}
	err = s.db.View(func(txn *badger.Txn) error {
		heads := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagHead}})
		defer heads.Close()
		for heads.Rewind(); heads.Valid(); heads.Next() {
			commons, err := cid.Cast(heads.Item().KeyCopy(nil)[1:])
			if err != nil {
				rep.damage("feed head key %x: %v", heads.Item().Key(), err)
				continue
			}
			head, err := readHead(txn, commons)
			if err != nil {
				rep.damage("feed head of %s: %v", commons, err)
				continue
			}
			prefix := s.feedPrefix(commons)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			want := uint64(1)
			for it.Rewind(); it.Valid(); it.Next() {
				key := it.Item().Key()
				if len(key) != len(prefix)+8 {
					rep.damage("feed key %x: bad length", key)
					continue
				}
				cur := binary.BigEndian.Uint64(key[len(prefix):])
				if cur != want {
					rep.damage("feed of %s: entries %d to %d are missing", commons, want, cur-1)
				}
				want = cur + 1
				if cur%4096 == 0 {
					_, _, _, _ = s.releasePages(verifyPageBudget)
				}
				st, err := readFeedItem(txn, it.Item(), commons, len(prefix))
				if err != nil {
					rep.damage("feed of %s, entry %d: %v", commons, cur, err)
					continue
				}
				_ = st
				rep.FeedEntries++
			}
			it.Close()
			if want-1 != head {
				rep.damage("feed of %s: its head says %d entries, its log ends at %d", commons, head, want-1)
			}
		}
		return nil
	})
	if err == nil && rep.FeedEntries != rep.Records+rep.Dropped && rep.DamagedAll == 0 {
		rep.damage("the feed logs list %d records and the store holds %d: a table could not be read to its end", rep.FeedEntries, rep.Records+rep.Dropped)
	}
	return rep, err
}

// verifyBlobs checks every blob against its CID, hashing it where badger
// holds it (no copy).
func (s *Store) verifyBlobs(ctx context.Context, rep *VerifyReport) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagBlob}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			_, _, _, _ = s.releasePages(verifyPageBudget)
			item := it.Item()
			c, err := cid.Cast(item.KeyCopy(nil)[1:])
			if err != nil {
				rep.damage("blob key %x: %v", item.Key(), err)
				continue
			}
			var bad error
			if err := item.Value(func(v []byte) error { bad = checkBlob(c, v); return nil }); err != nil {
				rep.damage("blob %s: %v", c, err)
				continue
			}
			if bad != nil {
				rep.damage("blob %s: its bytes do not match its CID", c)
				continue
			}
			rep.Blobs++
		}
		return nil
	})
}

// RepairRecord writes raw, the bytes of record c, in place of the bytes
// the store holds for c, if those are damaged (they do not hash to c),
// and reports whether it did. A record the store does not hold, or holds
// whole, is left as it is: repairing adds nothing. raw that is not c's
// bytes is refused.
func (s *Store) RepairRecord(ctx context.Context, c cid.Cid, raw []byte) (bool, error) {
	if !protocol.RecordCID(raw).Equals(c) {
		return false, fmt.Errorf("badgerstore: repair %s: the bytes given do not hash to it", c)
	}
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	defer s.end()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	repaired := false
	err := s.db.Update(func(txn *badger.Txn) error {
		stored, err := get(txn, recordKey(c))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if checkRecord(c, stored) == nil {
			return nil
		}
		repaired = true
		return txn.Set(recordKey(c), raw)
	})
	if err != nil {
		return false, fmt.Errorf("badgerstore: repair %s: %w", c, err)
	}
	return repaired, nil
}
