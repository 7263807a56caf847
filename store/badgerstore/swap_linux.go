package badgerstore

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// swapDirs exchanges the directories at a and b in one step: at no moment
// is either path missing. An error means that nothing moved.
func swapDirs(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// canSwap reports whether the file system that holds dir can exchange
// two directories in one step (some network and FUSE file systems
// cannot), by exchanging two empty ones beside it.
func canSwap(dir string) error {
	a, b := dir+".swap-a", dir+".swap-b"
	defer os.Remove(a)
	defer os.Remove(b)
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
	}
	if err := swapDirs(a, b); err != nil {
		return &os.LinkError{Op: "exchange", Old: a, New: filepath.Base(b), Err: err}
	}
	return nil
}

// errSwapHalfDone: never on Linux, where the exchange is one step.
var errSwapHalfDone = errors.New("the store directories were left half exchanged")
