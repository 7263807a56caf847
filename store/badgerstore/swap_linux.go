package badgerstore

import "golang.org/x/sys/unix"

// swapDirs exchanges the directories at a and b in one step: at no moment
// is either path missing.
func swapDirs(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
