package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Compact gives the disk space of what the store at dir no longer holds
// back to the file system: the records of a commons left with purge, the
// blobs deleted, the values written over. Badger keeps them in its value
// log files until those are garbage collected, which this store never
// lets badger do (package doc, Values); so Compact writes the store again,
// as Rebuild does, into a new directory beside it (dir+".compact"), now
// with every key's newest value, the derived state included. Once the
// copy is whole it exchanges the two directories and deletes the old one.
// On Linux the exchange is one step, and both stores stay locked
// throughout, so no other process opens either meanwhile; elsewhere it
// takes three renames (swapDirs), and on systems without flock (lockDir)
// the stores are unlocked between their close and the exchange. The store
// must not be open.
//
// It refuses to start when the disk has less free space than the store
// takes (the copy takes at most as much), since badger's memory-mapped
// writes do not fail on a full disk but crash the process. A copy that
// fails (a damaged table, ctx done) is deleted, and the store left as it
// was; on Linux a crash leaves the store whole at dir, old or new, and the
// next Compact deletes what is left beside it. It returns the store's size
// on disk before and after.
func Compact(ctx context.Context, dir string, logger *slog.Logger) (before, after int64, err error) {
	if before, err = DirSize(dir); err != nil {
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
	if err := os.RemoveAll(tmp); err != nil { // left by a compaction cut short: never in use
		return before, 0, fmt.Errorf("badgerstore: compact: %w", err)
	}
	if free, ok := freeSpace(filepath.Dir(dir)); ok && free < before+compactMargin {
		return before, 0, fmt.Errorf("badgerstore: compact: the copy of the store needs up to %d MiB free beside it, and the disk has %d MiB: make room, or move the repo to a larger disk", (before+compactMargin)>>20, free>>20)
	}
	if err := canSwap(dir); err != nil {
		return before, 0, fmt.Errorf("badgerstore: compact: this file system cannot put a copy of the store in its place in one step, so compact does not run on it: %w", err)
	}
	fresh, err := Open(tmp, logger)
	if err != nil {
		return before, 0, err
	}
	if err := copyStore(ctx, old.db, fresh.db, true); err != nil {
		_ = fresh.close(false) // deleted next: not opened again
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact %s: %w (the store is as it was)", dir, err)
	}
	unlockFresh, err := fresh.closeLocked()
	if unlockFresh != nil {
		defer func() { _ = unlockFresh() }()
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact %s: %w (the store is as it was)", dir, err)
	}
	unlockOld, err := old.closeLocked()
	old = nil
	if unlockOld != nil {
		defer func() { _ = unlockOld() }()
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact %s: %w (the store is as it was)", dir, err)
	}
	if err := swapDirs(dir, tmp); err != nil {
		if errors.Is(err, errSwapHalfDone) {
			return before, 0, fmt.Errorf("badgerstore: compact: %w", err)
		}
		_ = os.RemoveAll(tmp)
		return before, 0, fmt.Errorf("badgerstore: compact: put the new store in place: %w (the store is as it was)", err)
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	if err := os.RemoveAll(tmp); err != nil {
		return before, 0, fmt.Errorf("badgerstore: compact: the new store is in place; the old one, at %s, could not be deleted: %w", tmp, err)
	}
	if after, err = DirSize(dir); err != nil {
		return before, 0, fmt.Errorf("badgerstore: compact: %w", err)
	}
	return before, after, nil
}

// compactMargin is the free space Compact asks for beyond the store's
// size: badger's files for the copy's first writes.
const compactMargin = 64 << 20

// DirSize returns the bytes the files under dir take.
func DirSize(dir string) (int64, error) {
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

// freeSpace is freeBytes, or what a test says.
var freeSpace = freeBytes
