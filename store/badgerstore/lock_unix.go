//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package badgerstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on dir/commons.lock, so
// that a second process gets ErrLocked before badger is touched. The lock
// goes away with the process, so a crash never leaves a stale lock.
func lockDir(dir string) (unlock func() error, err error) {
	f, err := os.OpenFile(filepath.Join(dir, "commons.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open store %s: %w: %w", dir, ErrLocked, err)
		}
		return nil, fmt.Errorf("badgerstore: lock store directory: %w", err)
	}
	return f.Close, nil // closing the file releases the lock
}
