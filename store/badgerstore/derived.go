package badgerstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/store"
)

func appliedKey(c cid.Cid) []byte { return cidKey(tagApplied, c) }

func journalKey(i uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tagJournal}, i) }

func journalDoneKey() []byte { return []byte{tagJournalDone} }

// journalOpenKey marks that journal entries may exist: written before the
// first, deleted after the last, so that Open looks for a journal only
// when one may have been left.
func journalOpenKey() []byte { return []byte{tagJournalOpen} }

// kv is one write of a CommitDerived call, under its store key.
type kv struct {
	key, value []byte
	del        bool
}

// CommitDerived implements store.Store. A call that fits one badger
// transaction is one transaction. A larger one is written to a journal
// first, in as many transactions as it takes, then marked complete in one,
// then applied, then the journal is removed; Open applies a complete
// journal that a crash left, and drops an incomplete one.
func (s *Store) CommitDerived(ctx context.Context, ds []store.Derived) error {
	for i, d := range ds {
		if !d.Commons.Defined() || len(d.Commons.Bytes()) > 255 {
			return fmt.Errorf("badgerstore: derived state %d: undefined or overlong commons CID", i)
		}
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	var ws []kv
	for _, d := range ds {
		id, err := s.giveID(d.Commons)
		if err != nil {
			return fmt.Errorf("badgerstore: commit derived state: %w", err)
		}
		p := commonsPrefix(tagDerived, id)
		for _, w := range d.Writes {
			ws = append(ws, kv{key: append(p[:len(p):len(p)], w.Key...), value: w.Value, del: w.Delete})
		}
		ws = append(ws, kv{key: appliedKey(d.Commons), value: encodeUint(d.Applied)})
	}
	if len(ws) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// A journal that an earlier call completed but failed to apply (it
	// returned an error) would be applied again at the next Open, over
	// whatever this call writes: finish it first.
	if err := s.recoverJournal(false); err != nil {
		return fmt.Errorf("badgerstore: commit derived state: %w", err)
	}
	lim := s.limits()
	if lim.fits(ws) {
		if err := s.apply(ws, lim); err != nil {
			return fmt.Errorf("badgerstore: commit derived state: %w", err)
		}
		return nil
	}
	if err := s.journal(ws, lim); err != nil {
		return fmt.Errorf("badgerstore: commit derived state (%d writes, through a journal): %w", len(ws), err)
	}
	return nil
}

func (s *Store) limits() limits {
	return limits{
		size:      int64(float64(s.db.MaxBatchSize()) * txnFill),
		count:     int64(float64(s.db.MaxBatchCount()) * txnFill),
		threshold: s.db.Opts().ValueThreshold,
	}
}

func (lim limits) fits(ws []kv) bool {
	var size int64
	for _, w := range ws {
		size += entrySize(w.key, len(w.value), lim.threshold)
	}
	return size <= lim.size && int64(len(ws)) <= lim.count
}

// apply writes ws in as few transactions as the limits allow, in order.
func (s *Store) apply(ws []kv, lim limits) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	var size, count int64
	for _, w := range ws {
		sz := entrySize(w.key, len(w.value), lim.threshold)
		if count > 0 && (size+sz > lim.size || count+1 > lim.count) {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			size, count = 0, 0
		}
		var err error
		if w.del {
			err = txn.Delete(w.key)
		} else {
			err = txn.Set(w.key, w.value)
		}
		if err != nil {
			return err
		}
		size += sz
		count++
	}
	return txn.Commit()
}

// journal commits ws, too many for one transaction, atomically: a crash
// after writeJournal returns leaves a journal that Open applies.
func (s *Store) journal(ws []kv, lim limits) error {
	if err := s.writeJournal(ws, lim); err != nil {
		return err
	}
	if err := s.apply(ws, lim); err != nil {
		return fmt.Errorf("apply the journal (it is applied again at the next open): %w", err)
	}
	return s.dropJournalOf(len(ws))
}

// writeJournal writes ws to the journal and marks it complete.
func (s *Store) writeJournal(ws []kv, lim limits) error {
	// Entries left by a version that wrote no open mark, or by a journal
	// this one's call did not drop, are found only here: dropped, or those
	// beyond this journal's end would be applied with it. Once dropped,
	// nothing but this Store writes the journal while it is open, and it
	// drops its own by their keys (dropJournalOf): listing the journal's
	// range steps over the deletions of every journal since badger last
	// compacted it, which a 10,000,000-record join found slower at each
	// save, and at its end most of its time.
	if !s.journalEmpty {
		if err := s.dropJournal(); err != nil {
			return err
		}
		s.journalEmpty = true
	}
	s.journalEmpty = false // until this one is dropped
	if err := s.apply([]kv{{key: journalOpenKey(), value: []byte{}}}, lim); err != nil {
		return fmt.Errorf("mark the journal open: %w", err)
	}
	entries := make([]kv, len(ws))
	for i, w := range ws {
		entries[i] = kv{key: journalKey(uint64(i)), value: encodeJournal(w)}
	}
	if err := s.apply(entries, lim); err != nil {
		return fmt.Errorf("write the journal: %w", err)
	}
	if err := s.apply([]kv{{key: journalDoneKey(), value: []byte{}}}, lim); err != nil {
		return fmt.Errorf("mark the journal complete: %w", err)
	}
	return nil
}

// dropJournal removes the journal: its completion mark first, so that a
// crash halfway leaves an incomplete journal, which is dropped; its open
// mark last.
func (s *Store) dropJournal() error {
	return s.dropJournalKeys(-1)
}

// dropJournalOf drops the journal writeJournal wrote for n writes, by its
// keys: it holds those n entries and no other, since writeJournal dropped
// the journal before it wrote them.
func (s *Store) dropJournalOf(n int) error {
	if err := s.dropJournalKeys(n); err != nil {
		return err
	}
	s.journalEmpty = true
	return nil
}

// dropJournalKeys is dropJournal, for the journal's first n entries
// rather than those a listing of its range finds, if n is not negative.
func (s *Store) dropJournalKeys(n int) error {
	var ws []kv
	if n >= 0 {
		ws = make([]kv, n, n+1)
		for i := range ws {
			ws[i] = kv{key: journalKey(uint64(i)), del: true}
		}
	} else if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagJournal}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ws = append(ws, kv{key: it.Item().KeyCopy(nil), del: true})
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list the journal: %w", err)
	}
	lim := s.limits()
	if err := s.apply([]kv{{key: journalDoneKey(), del: true}}, lim); err != nil {
		return fmt.Errorf("drop the journal: %w", err)
	}
	ws = append(ws, kv{key: journalOpenKey(), del: true})
	if err := s.apply(ws, lim); err != nil {
		return fmt.Errorf("drop the journal: %w", err)
	}
	return nil
}

// recoverJournal applies a complete journal a crash (or a failed call)
// left, and drops it; and an incomplete one if dropIncomplete. Open calls
// it before anything else reads the store, and CommitDerived before it
// writes. Without an open mark or a completion mark there is nothing to
// do: it reads two keys, not the journal's range, which holds the
// deletions of every journal since badger last compacted it.
func (s *Store) recoverJournal(dropIncomplete bool) error {
	var done, open bool
	var ws []kv
	err := s.db.View(func(txn *badger.Txn) error {
		for _, m := range []struct {
			key []byte
			set *bool
		}{{journalDoneKey(), &done}, {journalOpenKey(), &open}} {
			_, err := txn.Get(m.key)
			switch {
			case err == nil:
				*m.set = true
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
		}
		if !done {
			return nil
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{tagJournal}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			w, err := decodeJournal(v)
			if err != nil {
				return fmt.Errorf("journal entry %x: %w", it.Item().Key(), err)
			}
			ws = append(ws, w)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("badgerstore: read the journal of derived state: %w", err)
	}
	if !done && (!dropIncomplete || !open) {
		return nil // an incomplete journal is dropped by the next journal, or Open
	}
	if done {
		s.log.Info("applying the derived state a crash or a failed commit left half-written", "writes", len(ws))
		if err := s.apply(ws, s.limits()); err != nil {
			return fmt.Errorf("badgerstore: apply the journal of derived state: %w", err)
		}
	}
	if err := s.dropJournal(); err != nil {
		return fmt.Errorf("badgerstore: %w", err)
	}
	return nil
}

func encodeJournal(w kv) []byte {
	var b []byte
	if w.del {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(w.key)))
	b = append(b, w.key...)
	return append(b, w.value...)
}

func decodeJournal(b []byte) (kv, error) {
	if len(b) < 1 || b[0] > 1 {
		return kv{}, errors.New("bad flag")
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || uint64(len(b)-1-k) < n {
		return kv{}, errors.New("bad key length")
	}
	rest := b[1+k:]
	return kv{del: b[0] == 1, key: bytes.Clone(rest[:n]), value: bytes.Clone(rest[n:])}, nil
}

// Applied implements store.Store.
func (s *Store) Applied(ctx context.Context, commons cid.Cid) (uint64, error) {
	v, err := s.getValue(ctx, appliedKey(commons))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("badgerstore: applied cursor of %s: %d bytes, want 8", commons, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// GetDerived implements store.Store.
func (s *Store) GetDerived(ctx context.Context, commons cid.Cid, key []byte) ([]byte, error) {
	v, err := s.getValue(ctx, append(s.derivedPrefix(commons), key...))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// ScanDerived implements store.Store.
func (s *Store) ScanDerived(ctx context.Context, commons cid.Cid, prefix, from []byte, fn func(key, value []byte) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	var err error
	_ = s.db.View(func(txn *badger.Txn) error {
		err = s.scanDerived(txn, s.derivedPrefix(commons), prefix, from, fn)
		return nil
	})
	return err
}

// scanDerived is ScanDerived in txn, under base: the commons' prefix.
func (s *Store) scanDerived(txn *badger.Txn, base, prefix, from []byte, fn func(key, value []byte) error) error {
	p := append(base[:len(base):len(base)], prefix...)
	start := append(base[:len(base):len(base)], from...)
	if bytes.Compare(start, p) < 0 {
		start = p
	}
	at := s.askBlocks(start, p, true)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
	defer it.Close()
	it.Seek(start)
	s.readDone(at)
	var fnErr error
	for ; it.Valid(); it.Next() {
		item := it.Item()
		err := item.Value(func(val []byte) error {
			fnErr = fn(item.Key()[len(base):], val)
			return fnErr
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("badgerstore: scan derived state: %w", err)
		}
	}
	return nil
}

// ReadDerived implements store.Store: a badger read transaction.
func (s *Store) ReadDerived(ctx context.Context, commons cid.Cid) (store.DerivedView, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	return &derivedView{s: s, txn: s.db.NewTransaction(false), prefix: s.derivedPrefix(commons)}, nil
}

type derivedView struct {
	s      *Store
	txn    *badger.Txn
	prefix []byte
	key    []byte
}

func (v *derivedView) Get(key []byte) ([]byte, error) {
	v.key = append(append(v.key[:0], v.prefix...), key...)
	at := v.s.askBlocks(v.key, nil, false)
	item, err := v.txn.Get(v.key)
	v.s.readDone(at)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: read derived state: %w", err)
	}
	val, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("badgerstore: read derived state: %w", err)
	}
	if val == nil {
		val = []byte{}
	}
	return val, nil
}

func (v *derivedView) Scan(prefix, from []byte, fn func(key, value []byte) error) error {
	return v.s.scanDerived(v.txn, v.prefix, prefix, from, fn)
}

func (v *derivedView) Close() {
	if v.txn != nil {
		v.txn.Discard()
		v.txn = nil
		v.s.end()
	}
}
