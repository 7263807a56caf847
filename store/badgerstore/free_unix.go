//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package badgerstore

import "golang.org/x/sys/unix"

// freeBytes returns the space free for an unprivileged user on the file
// system that holds dir; ok is false if it cannot tell.
func freeBytes(dir string) (free int64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
