package badgerstore

import (
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// tableEndSlack is how much of a table before its index readTableEnds
// reads: its last block (blocks are 16 KiB, a little more when an entry
// overflows one), which badger's Open reads for the table's biggest key.
const tableEndSlack = 64 << 10

// readTableEnds has the kernel read into the page cache the end of each
// table in dir (its last block, its index and its footer): what badger's
// Open reads of it, through a mapping of the file; and the head of each
// value log file. A fault on a page of a
// mapping that the page cache does not hold reads around it, as much as
// the device's read-ahead (8 MiB on some machines: the whole table, where
// the index is a few kilobytes); asked for ahead (POSIX_FADV_WILLNEED),
// the kernel reads the range asked, and a fault finds it there or on its
// way. Opening 2,213 tables of a commons of 10,000,000 records with
// nothing cached read 6.8 GB from the disk, in 3.2 s, on such a machine.
// A table whose footer it cannot read is left to badger, which says what
// is wrong with it. It asks for the first page of each value log file too,
// its header, which badger's Open reads through a mapping as well: with
// nothing cached, a daemon on 1,562 tables and 24 value log files
// (10,000,000 records, 2 cores) made 48 or 49 faults that read from the
// disk rather than 63 to 66, and answered 0.61 to 0.68 s after its launch
// rather than 0.78 to 0.81 (five starts of each build, alternately).
//
// It makes nine system calls a table (four to ask for its footer, five to
// read it and ask for the rest): a start makes them for thousands of
// tables, before badger opens any. Opening each through the directory,
// without os.File (which asks for the file's flags, and readies it for the
// poller), and reading the footer in one read rather than two, took a
// daemon on 2,122 tables (2 cores, every page cached, five starts of each
// build) from its launch to badger's Open in 125 to 146 ms rather than 166
// to 179 (116 to 160 with no read of the ends at all, in three starts, and
// badger's Open then 20 to 90 ms longer), when each table was read in one
// pass.
func readTableEnds(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(d)
	var tables []string
	for _, e := range ents {
		switch {
		case !e.Type().IsRegular():
		case strings.HasSuffix(e.Name(), ".sst"):
			tables = append(tables, e.Name())
		case strings.HasSuffix(e.Name(), ".vlog"):
			// badger's Open reads a value log file's header through its
			// mapping: its first page, asked for here, and not the
			// device's read-ahead around it.
			askHead(d, e.Name())
		}
	}
	// First every table's footer, which says where its index starts, is
	// asked for at once: the disk reads them side by side, where reading
	// each before asking for the next waited on the disk for each in turn.
	// With nothing cached, a daemon on 1,561 tables (10,000,000 records, 2
	// cores) spent 193 to 214 ms here rather than 285 to 334, and answered
	// 0.71 to 0.79 s after its launch rather than 0.79 to 1.00 (six starts
	// of each build, alternately).
	for _, name := range tables {
		askTableEnd(d, name, footerTail)
	}
	for _, name := range tables {
		readTableEnd(d, name)
	}
}

// askHead asks the kernel to read the first page of the file name in the
// directory open as dir, and returns without waiting for it.
func askHead(dir int, name string) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = unix.Fadvise(fd, 0, int64(os.Getpagesize()), unix.FADV_WILLNEED)
}

// askTableEnd asks the kernel to read the last n bytes of the table name
// in the directory open as dir, and returns without waiting for them.
func askTableEnd(dir int, name string, n int64) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Size <= 0 {
		return
	}
	from := max(0, st.Size-n)
	_ = unix.Fadvise(fd, from, st.Size-from, unix.FADV_WILLNEED)
}

// readTableEnd asks the kernel to read the end of the table name in the
// directory open as dir (see readTableEnds).
func readTableEnd(dir int, name string) {
	// Not through a link, nor waiting on a file that is not a regular
	// one put in the table's place since the directory was read.
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return
	}
	data, _, ok := tableFooter(fdReader(fd), st.Size)
	if !ok {
		return
	}
	from := max(0, data-tableEndSlack)
	_ = unix.Fadvise(fd, from, st.Size-from, unix.FADV_WILLNEED)
}

// fdReader reads a file by its descriptor.
type fdReader int

func (fd fdReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := unix.Pread(int(fd), b, off)
	if err == nil && n < len(b) {
		err = io.ErrUnexpectedEOF
	}
	return max(n, 0), err
}
