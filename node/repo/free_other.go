//go:build !unix

package repo

import "errors"

// FreeSpace is not known on this platform: the node does not check it.
func (r *Repo) FreeSpace() (uint64, error) {
	return 0, errors.New("repo: free space is not known on this platform")
}
