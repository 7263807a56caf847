package node

import (
	"testing"

	"golang.org/x/sys/unix"
)

// lowestPriority lowers its own goroutine's thread only, and that thread
// ends with the goroutine.
func TestLowestPriority(t *testing.T) {
	before, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		tid, nice int
		err       error
	}
	got := make(chan result)
	go func() {
		err := lowestPriority()
		// Getpriority gives the raw system call's value: 20 - nice.
		p, gerr := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err == nil {
			err = gerr
		}
		got <- result{unix.Gettid(), 20 - p, err}
	}()
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.nice != 19 {
		t.Errorf("the thread's nice value is %d; want 19", r.nice)
	}
	for range 100 {
		// Goroutines started after take threads from the runtime's pool;
		// none of them may be the lowered one.
		done := make(chan int)
		go func() {
			p, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
			if unix.Gettid() == r.tid || p != before {
				done <- unix.Gettid()
				return
			}
			done <- 0
		}()
		if tid := <-done; tid != 0 {
			t.Fatalf("thread %d runs another goroutine at the lowered priority", tid)
		}
	}
}
