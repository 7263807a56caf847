package badgerstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	boptions "github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/commons-p2p/commons/store"
)

var _ store.Store = (*Store)(nil)

// ErrLocked is returned, wrapped with the cause, by Open when another
// process has the directory open.
var ErrLocked = errors.New("badgerstore: repo is in use by another commons process (is a daemon running?)")

// formatVersion is the value of the 'v' key. Open moves a store of
// formatVersion1 to it (migrate.go) and refuses any other.
const formatVersion = "commons-store/2"

// Store is a store.Store kept in a badger database. It is safe for
// concurrent use. PutRecords calls run one at a time; reads run in
// parallel with each other and with writes.
type Store struct {
	log    *slog.Logger
	dir    string
	db     *badger.DB
	unlock func() error

	closeMu sync.RWMutex // held for reading by every operation, for writing by Close
	closed  bool

	writeMu sync.Mutex // serialises PutRecords: cursor assignment
	// journalEmpty: the journal's range holds no entry (writeJournal),
	// under writeMu.
	journalEmpty bool
	commonsMu    sync.Mutex // serialises AddCommons: sequence assignment
	nextSeq      uint64     // next 'c' sequence number; 0 means not loaded yet

	ids ids // the commons' short IDs

	res    resident // ReleasePages
	blocks blocks   // askBlocks
}

// Open opens, creating it if needed, the store in directory dir. logger
// receives badger's log (see the package doc); nil discards it.
//
// Open returns an error wrapping ErrLocked if another process has dir
// open, and an error naming dir and wrapping the cause if the directory
// cannot be created or read or is not a commons store.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "badgerstore")
	s, big, err := open(dir, logger)
	if err != nil || !big {
		return s, err
	}
	// Badger's Open reads the newest value log file through its mapping,
	// and those pages stay in the process until the file is closed: after
	// an import, up to valueLogFileSize. That file is closed once the store
	// is, and each Open starts a new one: opened again, the store maps a
	// file with nothing in it.
	if err := s.close(false); err != nil {
		return nil, err
	}
	s, _, err = open(dir, logger)
	return s, err
}

// reopenAbove is the size of the newest value log file from which Open
// opens the store a second time (see Open).
const reopenAbove = 16 << 20

// memTableSize is the size of badger's memtables (package doc, Resources).
const memTableSize = 8 << 20

// walMemTableSize returns the memtable size that the memtables' write-ahead
// logs left in dir need, if one needs more than memTableSize (0 if none
// does). Badger makes each log twice its memtable's size.
func walMemTableSize(dir string) int64 {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	var most int64
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil {
			most = max(most, fi.Size()/2)
		}
	}
	if most > memTableSize {
		return most
	}
	return 0
}

// open is Open, once; big says that the store is to be opened again: the
// newest value log file was larger than reopenAbove, or a crash left a
// memtable larger than memTableSize.
func open(dir string, logger *slog.Logger) (s *Store, big bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("badgerstore: create store directory: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, false, err
	}
	big = newestAbove(dir, reopenAbove)
	opts := options(dir, logger)
	if testOptions != nil {
		opts = testOptions(opts)
	}
	if size := walMemTableSize(dir); size > 0 {
		// A crash left the write-ahead log of a memtable larger than this
		// version's (a store last run with 16 MiB memtables): badger
		// replays it into a memtable of the configured size, and fails
		// outright when it does not fit. This Open takes memtables of its
		// size, and the next (Open opens twice) the configured size, once
		// closing has flushed it into a table.
		logger.Info("store: a crash left a memtable larger than this version's: opening with memtables of its size, then again", "memtable_bytes", size)
		opts, big = opts.WithMemTableSize(size), true
	}
	if err := checkLogs(dir); err != nil {
		_ = unlock()
		return nil, false, fmt.Errorf("badgerstore: open store %s: %w (with the daemon stopped, commons repo repair mends it and writes the store again, keeping the damaged file beside it; then commons repo verify names the records damaged, and commons repo repair --from a file a peer exported writes them again)", dir, err)
	}
	readTableEnds(dir)
	db, err := badger.Open(opts)
	if err != nil && strings.Contains(err.Error(), z.NewFile.Error()) {
		// A process killed just after it created a memtable file leaves
		// it empty, and badger's next Open fails on it, having sized it
		// (dgraph-io/badger#2207); it holds nothing, and the Open after
		// that reads it as an empty memtable.
		logger.Info("store: an empty memtable file was left by a crash: opening again", "err", err)
		db, err = badger.Open(opts)
	}
	if err != nil {
		_ = unlock()
		if strings.Contains(err.Error(), "acquire directory lock") {
			return nil, false, fmt.Errorf("open store %s: %w: %w", dir, ErrLocked, err)
		}
		return nil, false, fmt.Errorf("badgerstore: the store %s cannot be opened, and may be damaged (its records can be had again from peers: move the repo aside, commons init a fresh one and join the commons): %w", dir, err)
	}
	if err := markOpen(dir); err != nil {
		_ = db.Close()
		_ = unlock()
		return nil, false, fmt.Errorf("badgerstore: open store %s: %w", dir, err)
	}
	s = &Store{log: logger, db: db, unlock: unlock, dir: dir}
	v1, err := s.checkFormat()
	if err != nil {
		_ = db.Close()
		_ = unlock()
		return nil, false, fmt.Errorf("badgerstore: open store %s: %w", dir, err)
	}
	// A journal holds the keys of the format that wrote it: applied
	// before the store moves to this format.
	if err := s.recoverJournal(true); err != nil {
		_ = db.Close()
		_ = unlock()
		return nil, false, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.upgrade(v1); err != nil {
		_ = db.Close()
		_ = unlock()
		return nil, false, fmt.Errorf("badgerstore: open store %s: %w", dir, err)
	}
	logger.Debug("store opened", "dir", dir)
	return s, big, nil
}

// valueThreshold is the size from which a value is written to badger's
// value log rather than into the tree's tables (package doc, Values): a
// record or a blob, written once and never changed, most of them; not
// the derived state, whose entries are rewritten as records arrive and are
// nearly all smaller.
const valueThreshold = 320

// bloomFalsePositive is the false positive rate asked of the tables'
// bloom filters. Badger sizes a filter at as many bits a key as the
// number of probes that rate would take (badger's y.BloomBitsPerKey): its
// default, 0.01, gets 7 bits a key, and 4 to 6% of the absent keys pass
// it (1 to 1.5% for this setting's 10 bits, in filters of 40,000 to
// 200,000 keys; TestBloomFilterBits). A lookup of
// a key the store lacks (two for each record that an import or a join
// adds: the node's state and the store each look for it) checks the
// filter of every table of level 0 and of one table at each level below,
// and seeks in each table whose filter it passes.
const bloomFalsePositive = 0.001

// valueLogFileSize is the size of a value log file, and so the largest
// blob the store takes. Each Open starts a new one, which Open reads
// through at the next start after a clean close (checkLogs).
const valueLogFileSize = 256 << 20

// testOptions, if set, changes the options of every store opened after:
// for tests that need badger to compact with little data.
var testOptions func(badger.Options) badger.Options

// options returns badger's options for a desktop daemon.
func options(dir string, logger *slog.Logger) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{logger}).
		WithSyncWrites(true).
		WithDetectConflicts(false). // writers are serialised by Store's mutexes
		WithMetricsEnabled(false).
		WithMemTableSize(memTableSize).
		WithNumMemtables(3).
		WithNumLevelZeroTables(8).       // fewer, larger compactions out of level 0,
		WithNumLevelZeroTablesStall(16). // and a larger first level below it: an
		WithBaseLevelSize(64 << 20).     // import of 1M records takes about 0.75 of the time
		WithNumCompactors(2).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold).
		// No block compression: a compaction then holds about half as
		// much in memory, and a soft memory limit costs little time; 4 MiB
		// tables, a quarter as many files as with 1 MiB for Open to read
		// (package doc, Resources).
		WithCompression(boptions.None).
		WithBaseTableSize(4 << 20).
		// 16 KiB blocks: a table's index names each block by its first key,
		// and badger reads every table's index at Open (package doc,
		// Resources).
		WithBlockSize(16 << 10).
		// Bloom filters of 10 bits a key, not 7 (package doc, Resources).
		WithBloomFalsePositive(bloomFalsePositive)
	// Tables of the base size at every level, not twice the size of the
	// level above's (badger's default): a compaction builds each table in
	// memory, in an allocation twice its size, up to eight at once, and
	// badger keeps eight such allocations for the next; with tables
	// doubling at each level, that heap grew as the store deepened, to
	// 264 MB at 3,000,000 records against 88 MB at 1,000,000 (package
	// doc, Resources).
	opts.TableSizeMultiplier = 1
	// Each level four times the size of the one above, not ten (badger's
	// default): a table compacted into the level below is merged with
	// about as many times its bytes there as the ratio, so each level
	// writes a key about five times rather than eleven, for a level more
	// (package doc, Resources).
	opts.LevelSizeMultiplier = 4
	// Table blocks are not checked against their checksums as they are
	// read: a compaction that met a damaged block would drop the rest of its
	// table without a word. Records are checked against their CIDs as they
	// are read instead, and Verify checks every block.
	return opts
}

// checkFormat writes the format version into an empty database and
// refuses a database with another version than this one or format 1
// (which it reports), or with data but no version.
func (s *Store) checkFormat() (v1 bool, err error) {
	err = s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey())
		if err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read format version: %w", err)
			}
			switch string(v) {
			case formatVersion:
				return nil
			case formatVersion1:
				v1 = true
				return nil
			}
			return fmt.Errorf("unsupported format version %q (this version of commons reads %q, and moves %q to it): written by a newer version of commons? run that version on this repo", v, formatVersion, formatVersion1)
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("read format version: %w", err)
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		it.Rewind()
		empty := !it.Valid()
		it.Close()
		if !empty {
			return errors.New("database has data but no format version: not a commons store")
		}
		return txn.Set(versionKey(), []byte(formatVersion))
	})
	return v1, err
}

// Close closes the database and releases the directory. Later calls,
// Close included, return store.ErrClosed. It waits for running calls.
// After large writes it opens the store again and closes it (close).
func (s *Store) Close() error { return s.close(true) }

// close is Close; rotate says to open the store again and close it when
// the newest value log file is larger than reopenAbove (this Open's
// writes: an import's, a join's), so that it is no longer the newest and
// the next Open, which reads the newest through, opens the store once
// rather than twice (Open): the process that wrote the file pays for it,
// rather than the next start. Failing that, Close still succeeds: the
// store is closed, and the next Open opens it twice; unless the store,
// opened again, is refused as damaged (checkLogs), which Close returns,
// since the next Open would refuse it too.
func (s *Store) close(rotate bool) error {
	unlock, err := s.closeLocked()
	if unlock != nil {
		if uerr := unlock(); err == nil && uerr != nil {
			err = fmt.Errorf("badgerstore: close: release lock: %w", uerr)
		}
	}
	if err != nil || !rotate || !newestAbove(s.dir, reopenAbove) {
		return err
	}
	start := time.Now()
	again, _, err := open(s.dir, s.log)
	if err == nil {
		err = again.close(false)
	}
	if errors.Is(err, store.ErrCorrupt) {
		// The file this process wrote reads back damaged: the next
		// start refuses the store as this Open did, and says so now.
		return fmt.Errorf("badgerstore: the store was closed, and opened again it is refused: %w", err)
	}
	if err != nil {
		s.log.Warn("store: closed, but not opened again on a new value log file: the next start opens it twice", "err", err)
		return nil
	}
	s.log.Debug("store opened again and closed, on a new value log file", "took", time.Since(start))
	return nil
}

// newestAbove reports whether the newest value log file in dir is larger
// than size bytes.
func newestAbove(dir string, size int64) bool {
	newest, _, err := newestValueLog(dir)
	if err != nil || newest == "" {
		return false
	}
	fi, err := os.Stat(newest)
	return err == nil && fi.Size() > size
}

// closeLocked closes the database as Close does, but keeps the directory
// locked: unlock releases it (nil if the store was closed already).
func (s *Store) closeLocked() (unlock func() error, err error) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	s.closed = true
	err = s.db.Close()
	if err == nil {
		err = markClosed(s.dir)
	}
	if err != nil {
		return s.unlock, fmt.Errorf("badgerstore: close: %w", err)
	}
	s.log.Debug("store closed")
	return s.unlock, nil
}

// begin takes the read side of closeMu and checks ctx. On success the
// caller must call s.end.
func (s *Store) begin(ctx context.Context) error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.closeMu.RUnlock()
		return err
	}
	return nil
}

func (s *Store) end() { s.closeMu.RUnlock() }

// get reads one key's value, translating badger.ErrKeyNotFound.
func get(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// has reports whether a key exists.
func (s *Store) has(ctx context.Context, key []byte) (bool, error) {
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	defer s.end()
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("badgerstore: read: %w", err)
	}
	return true, nil
}

// getValue reads one key's value, or store.ErrNotFound.
func (s *Store) getValue(ctx context.Context, key []byte) ([]byte, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	at := s.askBlocks(key, nil, false)
	var v []byte
	err := s.db.View(func(txn *badger.Txn) (err error) {
		v, err = get(txn, key)
		return err
	})
	s.readDone(at)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: read: %w", err)
	}
	return v, nil
}

// badgerLogger routes badger's log to slog: errors at Warn (the error
// that matters reaches the caller as a return value), the rest at Debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	msg := string(bytes.TrimSpace([]byte(fmt.Sprintf(format, args...))))
	b.l.Log(ctx, level, msg, "source", "badger")
}
