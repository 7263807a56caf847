package badgerstore

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// tableEndSlack is how much of a table before its index readTableEnds
// reads: its last block (blocks are 16 KiB, a little more when an entry
// overflows one), which badger's Open reads for the table's biggest key.
const tableEndSlack = 64 << 10

// readTableEnds has the kernel read into the page cache the end of each
// table in dir (its last block, its index and its footer): what badger's
// Open reads of it, through a mapping of the file. A fault on a page of a
// mapping that the page cache does not hold reads around it, as much as
// the device's read-ahead (8 MiB on some machines: the whole table, where
// the index is a few kilobytes); asked for ahead (POSIX_FADV_WILLNEED),
// the kernel reads the range asked, and a fault finds it there or on its
// way. Opening 2,213 tables of a commons of 10,000,000 records with
// nothing cached read 6.8 GB from the disk, in 3.2 s, on such a machine.
// A table whose footer it cannot read is left to badger, which says what
// is wrong with it.
func readTableEnds(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sst") && e.Type().IsRegular() {
			readTableEnd(filepath.Join(dir, e.Name()))
		}
	}
}

// readTableEnd asks the kernel to read the end of the table at path (see
// readTableEnds).
func readTableEnd(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	data, ok := tableFooter(f, fi.Size())
	if !ok {
		return
	}
	from := max(0, data-tableEndSlack)
	_ = unix.Fadvise(int(f.Fd()), from, fi.Size()-from, unix.FADV_WILLNEED)
}
