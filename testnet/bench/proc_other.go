//go:build !linux

package bench

import (
	"os"
	"syscall"
)

// daemonAttr: only Linux can tie a child's life to its parent's.
func daemonAttr() *syscall.SysProcAttr { return nil }

// peakMB: reported on Linux only.
func peakMB(*os.ProcessState) float64 { return 0 }
