package badgerstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadRandomly says how the kernel is to read the store's files (its
// tables and value log files, which badger reads through memory
// mappings) when a read finds a page that is not in memory. With random,
// it reads that page alone (madvise MADV_RANDOM); without, it reads
// around it as for any mapped file, as far as the device reads ahead
// (MADV_NORMAL), the default.
//
// The kernel reads around a page that a mapping faults in, by as much as
// the device reads ahead, a whole 4 MiB table where it reads 8 MiB ahead
// (as some virtual disks do; 128 KiB is common). A lookup of a key or a
// record reads a block of 16 KiB of a table, or a record of the value
// log, in a few pages: on a store that the page cache does not hold, each
// read far from the last read the whole table around it. A daemon on a
// commons of 10,000,000 records, started with nothing cached (2 cores, 8
// MiB read ahead), answered 200 lookups of contributions in 15.3 and 9.3
// ms at the median and 57 and 34 ms at p99 reading around; 1.05 ms and
// 6.6 ms reading the pages alone (its tables and value log files), and
// pages of the feed in 5.3 ms at p99 rather than 20.6 and 17.9. Reads in
// order through large ranges (badger's compactions, which read each table
// they merge from its start to its end, a node's import, its export, the
// records a sync sends) take the opposite: importing 1,000,000 records
// into a fresh store, each page read alone, took 105.6 and 111.2 s
// against 81.8 and 78.0 s. The node reads randomly only while it stores
// and reads records slowly (node's pages.go).
//
// Read a page at a time, a block of a table (16 KiB) that a lookup
// searches took three or four reads of the disk one after another; the
// store asks for each block whole before badger reads it (blocks).
//
// Badger's compactions in a daemon that stores records slowly run with
// the pages read alone, and take longer. On Linux 6.3 and later the
// advice also has reclaim, under memory pressure, take the pages of those
// mappings without regard to how recently they were read.
//
// The advice holds for a mapping: while random, a call advises the
// mappings made since the last (new tables, value log files), if the
// store's directory has changed since or had changed less than
// dirSettled before the last call looked. It changes only how pages are
// read and reclaimed, never what they hold: a range that badger has
// unmapped meanwhile, and that now maps something else, is read as that
// advice says, nothing more. Any goroutine.
func (s *Store) ReadRandomly(ctx context.Context, random bool) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	r := &s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed time.Time
	if random {
		// Stated before the maps are read: a file made after the
		// statement changes the directory again.
		fi, err := os.Stat(s.dir)
		if err != nil {
			return fmt.Errorf("badgerstore: read randomly: %w", err)
		}
		changed = fi.ModTime()
		if r.random && changed.Equal(r.randomAt) {
			return nil
		}
		if time.Since(changed) < dirSettled {
			// A file made just before the statement may be mapped only
			// after the maps are read, and a change within the clock's
			// tick leaves the time as it was: look again next time.
			changed = time.Time{}
		}
	} else if !r.random {
		return nil // a mapping is read around unless advised otherwise
	}
	if r.advised == nil {
		r.advised = map[mapping]bool{}
	}
	err := adviseMappings(s.dir, random, r.advised)
	// After a failure some mappings may be advised: taken back by the
	// next call without random, looked at again by the next with it.
	r.random, r.randomAt = random || (err != nil && r.random), changed
	r.randomNow.Store(r.random)
	if err != nil {
		r.randomAt = time.Time{}
		return fmt.Errorf("badgerstore: read randomly: %w", err)
	}
	return nil
}

// dirSettled is how long before ReadRandomly looks at the mappings the
// store's directory must have last changed for it not to look again until
// the directory changes: a directory's time comes from a clock that ticks
// every few milliseconds, and every second or two on some file systems.
const dirSettled = 2 * time.Second

// mapping is a range of the process's memory that maps a file whole.
type mapping struct {
	start, length uintptr
	file          string // as /proc/self/maps names it
}

// adviseMappings gives each shared mapping of a table or value log file
// in dir MADV_RANDOM (random) or MADV_NORMAL. advised holds the mappings
// given MADV_RANDOM, which are not given it again (a file mapped where
// another was is another mapping); it is left holding those mapped still,
// or none without random. A range unmapped since /proc/self/maps listed
// it (ENOMEM) is skipped.
func adviseMappings(dir string, random bool, advised map[mapping]bool) error {
	d, err := filepath.Abs(dir)
	if err == nil {
		d, err = filepath.EvalSymlinks(d)
	}
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	var ranges []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields, path, ok := mapsLine(sc.Text())
		if !ok || filepath.Dir(path) != d || !strings.HasSuffix(fields[1], "s") {
			continue
		}
		if ext := filepath.Ext(path); ext != ".sst" && ext != ".vlog" {
			continue // not one of badger's mapped files, or deleted
		}
		if start, end, ok := mapRange(fields[0]); ok {
			ranges = append(ranges, mapping{uintptr(start), uintptr(end - start), path})
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read /proc/self/maps: %w", err)
	}
	advice := unix.MADV_NORMAL
	if random {
		advice = unix.MADV_RANDOM
	}
	mapped := make(map[mapping]bool, len(ranges))
	for _, rg := range ranges {
		mapped[rg] = true
		if random && advised[rg] {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, rg.start, rg.length, uintptr(advice))
		if errno != 0 && errno != unix.ENOMEM {
			return fmt.Errorf("madvise %#x (%d bytes, %s): %w", rg.start, rg.length, filepath.Base(rg.file), errno)
		}
		if random {
			advised[rg] = true
		} else {
			delete(advised, rg)
		}
	}
	for rg := range advised {
		if !random || !mapped[rg] {
			delete(advised, rg)
		}
	}
	return nil
}

// willNeed asks the kernel to read b's pages at once, b being memory that
// badger maps from a file (a blob it holds in its value log): a reader of
// a large range then waits for the disk once, not once a page, when the
// store's files are read a page at a time (ReadRandomly). It does nothing
// for pages cached already, and anything else is left as it is.
func willNeed(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	start &^= page - 1
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_WILLNEED)
}
