package node

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowestPriority locks the calling goroutine to its thread and gives the
// thread the lowest CPU priority (nice 19): where threads wait for a
// core, the kernel gives it a small share (a weight of 15 against 1,024
// for a thread at nice 0). The goroutine never unlocks it: when it
// returns, the runtime ends the thread, and no other goroutine runs at
// that priority.
func lowestPriority() error {
	runtime.LockOSThread()
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
