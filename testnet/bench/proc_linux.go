package bench

import (
	"os"
	"syscall"
)

// daemonAttr makes a daemon the scale scenario starts die with it (a test
// timeout, a panic), rather than outlive it.
func daemonAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// peakMB is a finished process' peak resident memory (getrusage's maxrss,
// kilobytes on Linux).
func peakMB(ps *os.ProcessState) float64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024
	}
	return 0
}
