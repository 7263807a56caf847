//go:build !linux

package node

// lowestPriority does nothing where the store's pages are not released
// (badgerstore releases them on Linux only).
func lowestPriority() error { return nil }
