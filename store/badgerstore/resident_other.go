//go:build !linux

package badgerstore

import "context"

// resident is what ReleasePages keeps between calls: nothing here.
type resident struct{}

// ReleasePages releases nothing on this system: it cannot tell the file
// pages the process holds (see the Linux version).
func (s *Store) ReleasePages(ctx context.Context, budget int64) (before, after int64, released bool, err error) {
	if err := s.begin(ctx); err != nil {
		return 0, 0, false, err
	}
	s.end()
	return 0, 0, false, nil
}

func (s *Store) releasePages(budget int64) (before, after int64, released bool, err error) {
	return 0, 0, false, nil
}

// ReadRandomly does nothing here: the pages of the store's files are read
// as the system reads any mapped file's (see the Linux version).
func (s *Store) ReadRandomly(ctx context.Context, random bool) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	s.end()
	return nil
}

// willNeed does nothing here (see the Linux version).
func willNeed(b []byte) {}
