package node

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowestPriority locks the calling goroutine to its thread and gives the
// thread the lowest CPU priority (nice 19), so that the kernel runs it
// when the process's other threads leave a core free. The goroutine never
// unlocks it: when it returns, the runtime ends the thread, and no other
// goroutine runs at that priority.
func lowestPriority() error {
	runtime.LockOSThread()
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
