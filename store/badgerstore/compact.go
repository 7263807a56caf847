package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Compact gives the disk space of what the store at dir no longer holds
// back to the file system: the records of a commons left with purge, the
// blobs deleted, the values written over. Badger keeps them in its value
// log files until those are garbage collected, which this store never
// lets badger do (package doc, Values); so Compact writes the store again,
// as Rebuild does, into a new directory, now with every key's newest
// value, the derived state included, and once the copy is whole puts it in
// the old one's place and deletes the old one. The store must not be open.
//
// A copy that fails (a damaged table or value log entry, a full disk, ctx
// done) is deleted, and the store is left as it was: repo verify and repo
// repair deal with damage. It returns the store's size on disk before and
// after.
func Compact(ctx context.Context, dir string, logger *slog.Logger) (before, after int64, err error) {
	if before, err = dirSize(dir); err != nil {
		return 0, 0, fmt.Errorf("badgerstore: compact: %w", err)
	}
	old, err := Open(dir, logger)
	if err != nil {
		return before, 0, err
	}
	defer func() {
		if old != nil {
			_ = old.Close()
		}
	}()
	tmp := dir + ".compact"
	if err := os.RemoveAll(tmp); err != nil { // a compaction cut short: never in use
		return before, 0, fmt.Errorf("badgerstore: compact: %w", err)
	}
	fresh, err := Open(tmp, logger)
	if err != nil {
		return before, 0, err
	}
	if err := copyStore(ctx, old.db, fresh.db, true); err != nil {
		_ = fresh.Close()
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact %s: %w (the store is as it was)", dir, err)
	}
	if err := fresh.Close(); err != nil {
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact %s: %w (the store is as it was)", dir, err)
	}
	if err := old.Close(); err != nil {
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact %s: %w (the store is as it was)", dir, err)
	}
	old = nil
	aside := fmt.Sprintf("%s.compacted-%s", dir, time.Now().UTC().Format("20060102T150405"))
	if err := os.Rename(dir, aside); err != nil {
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact: move the old store aside: %w (the store is as it was)", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return before, 0, fmt.Errorf("badgerstore: compact: the old store is at %s, the new one at %s, and could not be moved to %s: %w", aside, tmp, dir, err)
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	if err := os.RemoveAll(aside); err != nil {
		return before, 0, fmt.Errorf("badgerstore: compact: the new store is in place; the old one, at %s, could not be deleted: %w", aside, err)
	}
	if after, err = dirSize(dir); err != nil {
		return before, 0, fmt.Errorf("badgerstore: compact: %w", err)
	}
	return before, after, nil
}

// dirSize returns the bytes the files under dir take.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if fi != nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}
