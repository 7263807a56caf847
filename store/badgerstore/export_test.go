package badgerstore

// SetFreeSpace makes Compact see free bytes free on every disk, until
// the returned function restores it.
func SetFreeSpace(free int64) (restore func()) {
	was := freeSpace
	freeSpace = func(string) (int64, bool) { return free, true }
	return func() { freeSpace = was }
}
