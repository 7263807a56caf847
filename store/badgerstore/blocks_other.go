//go:build !linux

package badgerstore

// blocks is what askBlocks keeps: nothing here.
type blocks struct{}

// askBlocks does nothing here (see the Linux version).
func (s *Store) askBlocks(key, prefix []byte, seek bool) {}
