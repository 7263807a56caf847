package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Rebuild writes the closed store at dir again, into a new directory: the
// newest value of every key, except the derived state (the 'D', 'a', 'j',
// 'J' and 'o' tables), which its user computes again from the records (node/
// replays the feed log into an empty derived state at its next start).
// Then it moves the old directory aside, to the name it returns, and the
// new one into its place. Nothing is deleted: the old directory stays
// whole beside the new one.
//
// A log file that badger's Open would cut short after damaged bytes is
// mended first where the damage lies inside one entry (healLogs), the file
// as it was kept beside it.
//
// Every table is read through once and written anew, so badger's tables
// that fail their checksums go with the old directory; a damaged record
// is copied as it reads (RepairRecord it first). A damaged block that
// badger cannot step through ends the rebuild with an error, leaving the
// store as it was.
func Rebuild(ctx context.Context, dir string, logger *slog.Logger) (aside string, err error) {
	if err := lockedHeal(dir, logger); err != nil {
		return "", err
	}
	old, err := Open(dir, logger)
	if err != nil {
		return "", err
	}
	defer func() {
		if old != nil {
			_ = old.Close()
		}
	}()
	tmp := dir + ".rebuild"
	// Left by a rebuild cut short: its copy, or, cut short after the
	// exchange below, the old store. Kept aside, not deleted.
	if _, err := os.Stat(tmp); err == nil {
		if err := os.Rename(tmp, fmt.Sprintf("%s.left-%s", tmp, time.Now().UTC().Format("20060102T150405"))); err != nil {
			return "", fmt.Errorf("badgerstore: rebuild: move aside what a rebuild cut short left: %w", err)
		}
	}
	fresh, err := Open(tmp, logger)
	if err != nil {
		return "", err
	}
	if err := copyStore(ctx, old.db, fresh.db, false); err != nil {
		_ = fresh.close(false) // deleted next: not opened again
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("badgerstore: rebuild %s: %w (the store is as it was)", dir, err)
	}
	if err := fresh.Close(); err != nil {
		return "", fmt.Errorf("badgerstore: rebuild %s: %w (the store is as it was)", dir, err)
	}
	if err := old.Close(); err != nil {
		return "", fmt.Errorf("badgerstore: rebuild %s: %w", dir, err)
	}
	old = nil
	aside = fmt.Sprintf("%s.damaged-%s", dir, time.Now().UTC().Format("20060102T150405"))
	// The new store takes the old one's place in one step on Linux
	// (swapDirs): a crash never leaves the repo without a store.
	if err := swapDirs(dir, tmp); err != nil {
		if errors.Is(err, errSwapHalfDone) {
			return "", fmt.Errorf("badgerstore: rebuild: %w", err)
		}
		return "", fmt.Errorf("badgerstore: rebuild: put the new store in place: %w (the store is as it was; the new one is at %s)", err, tmp)
	}
	if err := os.Rename(tmp, aside); err != nil {
		return tmp, fmt.Errorf("badgerstore: rebuild: the new store is in place; the old one is at %s: %w", tmp, err)
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return aside, nil
}

// copyBatch is how many bytes of values copyStore writes in one batch.
const copyBatch = 32 << 20

// copyStore copies the newest value of every key of src into dst: every
// key but the derived state's, or with derived, every key.
func copyStore(ctx context.Context, src, dst *badger.DB, derived bool) (err error) {
	defer func() {
		if r := recover(); r != nil { // badger panics on some damaged blocks
			err = fmt.Errorf("a table could not be read through: %v", r)
		}
	}()
	wb := dst.NewWriteBatch()
	defer func() { wb.Cancel() }()
	// Badger sizes a batch by the pointers of values bound for the value
	// log, not by their bytes: flushed by the bytes taken, a batch holds
	// copyBatch of them at most, whatever the size of the blobs.
	taken := 0
	err = src.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			switch item.Key()[0] {
			case tagDerived, tagApplied, tagJournal, tagJournalDone, tagJournalOpen:
				if !derived {
					continue
				}
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %x: %w", item.Key(), err)
			}
			if err := wb.Set(item.KeyCopy(nil), v); err != nil {
				return err
			}
			if taken += len(v); taken >= copyBatch {
				if err := wb.Flush(); err != nil {
					return errors.Join(errors.New("write the new store"), err)
				}
				wb, taken = dst.NewWriteBatch(), 0
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return errors.Join(errors.New("write the new store"), err)
	}
	return nil
}

// lockedHeal mends the log files of the store at dir (healLogs), holding
// its lock.
func lockedHeal(dir string, logger *slog.Logger) error {
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer func() { _ = unlock() }()
	healed, err := healLogs(dir)
	if healed != "" && logger != nil {
		logger.Warn("store: a damaged log file was mended: the damaged record now shows as such, and the file as it was is kept beside it", "file", healed, "kept", healed+".damaged")
	}
	if err != nil {
		return fmt.Errorf("badgerstore: rebuild %s: %w (the store is as it was: move the repo aside, commons init a fresh one and join the commons)", dir, err)
	}
	return nil
}
