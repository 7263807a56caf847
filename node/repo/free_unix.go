//go:build unix

package repo

import "golang.org/x/sys/unix"

// FreeSpace returns the bytes free, for an unprivileged process, on the
// disk that holds the repo.
func (r *Repo) FreeSpace() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(r.Dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
