package bench

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// majorFaults reads the 12th field of /proc/PID/stat, after a command
// name that may hold spaces and parentheses; it agrees with getrusage for
// this process; a line cut short or without a name is refused.
func TestMajorFaults(t *testing.T) {
	line := "4242 (a) b (c) d) S 1 4242 4242 0 -1 4194560 5120 0 77 0 12 3 0 0 20 0 9 0 100 1000000 200\n"
	if n, err := majorFaults(line); err != nil || n != 77 {
		t.Errorf("majorFaults(%q) = %d, %v; want 77", line, n, err)
	}
	for _, bad := range []string{"", "4242 no name S 1 2 3 4 5 6 7 8 9 10", "4242 (x) S 1 4242 4242 0 -1 4194560 5120 0"} {
		if n, err := majorFaults(bad); err == nil {
			t.Errorf("majorFaults(%q) = %d, want an error", bad, n)
		}
	}

	var before, after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		t.Fatal(err)
	}
	got, err := procDisk(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		t.Fatal(err)
	}
	if got.faults < uint64(before.Majflt) || got.faults > uint64(after.Majflt) {
		t.Errorf("major faults from /proc: %d; getrusage gave %d before and %d after", got.faults, before.Majflt, after.Majflt)
	}
}

// readBytes finds read_bytes among /proc/PID/io's lines, and refuses a
// file without it or with a value that is no number.
func TestReadBytes(t *testing.T) {
	pio := "rchar: 100\nwchar: 200\nsyscr: 3\nsyscw: 4\nread_bytes: 8192\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n"
	if n, err := readBytes(pio); err != nil || n != 8192 {
		t.Errorf("readBytes = %d, %v; want 8192", n, err)
	}
	for _, bad := range []string{"", strings.Replace(pio, "read_bytes: 8192", "read_bytes: many", 1), "rchar: 100\n"} {
		if n, err := readBytes(bad); err == nil {
			t.Errorf("readBytes(%q) = %d, want an error", bad, n)
		}
	}
}
