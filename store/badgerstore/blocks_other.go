//go:build !linux

package badgerstore

import "time"

// blocks is what askBlocks keeps: nothing here.
type blocks struct{}

// askBlocks does nothing here (see the Linux version).
func (s *Store) askBlocks(key, prefix []byte, seek bool) time.Time { return time.Time{} }

// readDone does nothing here (see the Linux version).
func (s *Store) readDone(start time.Time) {}
