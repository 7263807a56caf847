//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package badgerstore

// freeBytes cannot tell the free space on these systems.
func freeBytes(string) (int64, bool) { return 0, false }
