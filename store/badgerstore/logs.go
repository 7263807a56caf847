package badgerstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/commons-p2p/commons/store"
)

// Badger's Open reads its newest value log file through, entry by entry,
// and cuts it at the end of the last whole transaction before the first
// entry that fails its checksum. After a crash that is a torn write. After
// one damaged byte it is every record written to that file after that
// byte, which badger's Open truncates away. So when the store was closed
// cleanly, and nothing can be torn, Open first reads that file the same
// way (checkLogs) and refuses it if badger would not read it through; and
// Rebuild mends a damaged record there (healLogs). After a crash Open
// cannot tell a torn write from damage, and leaves the file to badger, as
// it does the write-ahead logs. The format read here is that of badger
// v4's log files (its logFile.iterate and safeRead.Entry).

// Badger's log file layout.
const (
	logHeaderSize = 20      // key ID and IV, before the first entry
	logKeyMax     = 1 << 16 // badger refuses longer keys
	logBitTxn     = 1 << 6  // an entry of a transaction
	logBitFinTxn  = 1 << 7  // the end of a transaction: its value is the commit timestamp
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logEntry is an entry of a log file that passes its checksum.
type logEntry struct {
	meta       byte
	key, value []byte
	end        int // offset just after it (after its checksum)
	hlen       int // header length
}

// readLogEntry parses the entry at off of a log file; ok is false if none
// there passes its checksum.
func readLogEntry(data []byte, off int) (e logEntry, ok bool) {
	if off+2 > len(data) {
		return e, false
	}
	e.meta = data[off]
	p := off + 2
	var v [3]uint64
	for i := range v {
		x, n := binary.Uvarint(data[p:])
		if n <= 0 {
			return e, false
		}
		v[i], p = x, p+n
	}
	klen, vlen := v[0], v[1]
	if klen == 0 || klen > logKeyMax || vlen > math.MaxUint32 || uint64(len(data)-p) < klen+vlen+crc32.Size {
		return e, false
	}
	e.hlen = p - off
	body := p + int(klen) + int(vlen)
	e.key, e.value, e.end = data[p:p+int(klen)], data[p+int(klen):body], body+crc32.Size
	if binary.BigEndian.Uint32(data[body:]) != crc32.Checksum(data[off:body], castagnoli) {
		return e, false
	}
	return e, true
}

// keyTs is badger's commit timestamp of a stored key (its last 8 bytes).
func keyTs(key []byte) uint64 {
	if len(key) <= 8 {
		return 0
	}
	return math.MaxUint64 - binary.BigEndian.Uint64(key[len(key)-8:])
}

// replayLog reads the entries of a log file from off as badger's Open
// does. It returns where badger would cut the file (the end of the last
// whole transaction) and where the first entry it could not take starts.
func replayLog(data []byte, off int) (validEnd, stop int) {
	validEnd, stop = off, off
	var open uint64 // the transaction being read; 0 if none
	for {
		e, ok := readLogEntry(data, stop)
		if !ok {
			return validEnd, stop
		}
		switch {
		case e.meta&logBitTxn != 0:
			ts := keyTs(e.key)
			if open == 0 {
				open = ts
			}
			if ts != open {
				return validEnd, stop
			}
		case e.meta&logBitFinTxn != 0:
			ts, err := strconv.ParseUint(string(e.value), 10, 64)
			if err != nil || ts != open {
				return validEnd, stop
			}
			open, validEnd = 0, e.end
		default:
			if open != 0 {
				return validEnd, stop
			}
			validEnd = e.end
		}
		stop = e.end
	}
}

// logDamage is what checkLog found in a log file: the offset where badger
// would cut it, and the first entry it would not read.
type logDamage struct {
	path      string
	cut, stop int
}

func (d *logDamage) Error() string {
	return fmt.Sprintf("%v: the log file %s is damaged at byte %d: badger would cut it at byte %d, losing what was written after", store.ErrCorrupt, d.path, d.stop, d.cut)
}

func (d *logDamage) Unwrap() error { return store.ErrCorrupt }

// checkLog returns the damage of the bytes of a log file closed cleanly:
// anything badger would not read, before the zeros of its unused end.
func checkLog(path string, data []byte) *logDamage {
	if len(data) < logHeaderSize {
		return nil
	}
	cut, stop := replayLog(data, logHeaderSize)
	last := len(data)
	for last > stop && data[last-1] == 0 {
		last--
	}
	if last <= stop {
		return nil
	}
	return &logDamage{path: path, cut: cut, stop: stop}
}

// mendEntry gives the entry at off, a record's or a blob's, its lengths
// intact, the checksum of its bytes as they are, in data, and reports
// whether badger then reads further than before. Only a record or a blob
// is mended: its bytes are checked against its CID whenever it is read,
// so the damage then shows there. (The key of a value log entry is the store's key and an 8-byte
// version.)
func mendEntry(data []byte, off int) bool {
	end, ok := entryEnd(data, off)
	if !ok {
		return false
	}
	var h [3]uint64
	p := off + 2
	for i := range h {
		x, n := binary.Uvarint(data[p:])
		h[i], p = x, p+n
	}
	if data[off] != 0 || h[0] <= 8 || data[p] != tagRecord && data[p] != tagBlob {
		return false // not a plain record or blob entry as the store writes them
	}
	at := end - crc32.Size
	old := binary.BigEndian.Uint32(data[at:])
	binary.BigEndian.PutUint32(data[at:], crc32.Checksum(data[off:at], castagnoli))
	if _, stop := replayLog(data, logHeaderSize); stop > off {
		return true
	}
	binary.BigEndian.PutUint32(data[at:], old)
	return false
}

// entryEnd is where an entry at off ends by its header's lengths, whether
// or not it passes its checksum.
func entryEnd(data []byte, off int) (int, bool) {
	p := off + 2
	if p > len(data) {
		return 0, false
	}
	var v [3]uint64
	for i := range v {
		x, n := binary.Uvarint(data[p:])
		if n <= 0 {
			return 0, false
		}
		v[i], p = x, p+n
	}
	if v[0] == 0 || v[0] > logKeyMax || uint64(len(data)-p) < v[0]+v[1]+crc32.Size {
		return 0, false
	}
	return p + int(v[0]) + int(v[1]) + crc32.Size, true
}

// newestValueLog returns the newest value log file of dir ("" if none)
// and whether a memtable's write-ahead log is there (none is after a clean
// close).
func newestValueLog(dir string) (string, bool, error) {
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return "", false, err
	}
	vlogs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		return "", false, err
	}
	if len(vlogs) == 0 {
		return "", len(mems) > 0, nil
	}
	return slices.MaxFunc(vlogs, func(a, b string) int { return logFid(a) - logFid(b) }), len(mems) > 0, nil
}

// logFid is the number a log file's name carries.
func logFid(path string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	return n
}

// closedMark is the file Close leaves in a store's directory once badger
// has closed it, naming the newest value log file and its size then.
const closedMark = "closed-cleanly"

// cleanLog returns the newest value log file of dir if the store was
// closed cleanly last and nothing has touched the file since: the mark
// names it with its size, and no write-ahead log is there. Then it holds
// no torn write. Else "".
func cleanLog(dir string) string {
	mark, err := os.ReadFile(filepath.Join(dir, closedMark))
	if err != nil {
		return ""
	}
	newest, mems, err := newestValueLog(dir)
	if err != nil || mems || newest == "" {
		return ""
	}
	fi, err := os.Stat(newest)
	if err != nil || string(mark) != fmt.Sprintf("%s %d\n", filepath.Base(newest), fi.Size()) {
		return ""
	}
	return newest
}

// checkLogs returns an error wrapping store.ErrCorrupt, naming the file,
// if the store at dir was closed cleanly and badger's Open would cut its
// newest value log file short.
func checkLogs(dir string) error {
	f := cleanLog(dir)
	if f == "" {
		return nil
	}
	return checkLogFile(f)
}

// checkLogFile is checkLog of one file, read through a read-only mapping
// (the page cache holds it for badger's Open next).
func checkLogFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if fi.Size() < logHeaderSize {
		return nil
	}
	data, err := z.Mmap(f, false, fi.Size())
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer func() { _ = z.Munmap(data) }()
	if d := checkLog(path, data); d != nil {
		return d
	}
	return nil
}

// healLogs mends the newest value log file of dir if checkLogs refuses it
// and the damage lies in records' entries: it gives each the checksum of
// its bytes as they are, keeping the file as it was beside it
// (NAME.damaged), so that badger reads it through and the damage shows
// where it lies, as a record whose bytes do not match its CID. It returns
// the file mended (or ""), and an error, the file untouched, for damage it
// cannot mend.
func healLogs(dir string) (string, error) {
	f := cleanLog(dir)
	if f == "" {
		return "", nil
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f, err)
	}
	orig := slices.Clone(data)
	for {
		d := checkLog(f, data)
		if d == nil {
			break
		}
		if !mendEntry(data, d.stop) {
			return "", fmt.Errorf("%w (it cannot be mended: the damage is not inside a record or a blob)", d)
		}
	}
	if bytes.Equal(data, orig) {
		return "", nil
	}
	if err := writeSynced(f+".damaged", orig, os.O_CREATE|os.O_TRUNC); err != nil {
		return "", fmt.Errorf("keep a copy of %s: %w", f, err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	if err := writeSynced(f, data, 0); err != nil {
		return "", err
	}
	// The mark names the file with its size, unchanged: the next Open
	// checks it again, mended.
	return f, nil
}

// writeSynced writes data at the start of the file at path (with flags
// besides O_WRONLY) and syncs it.
func writeSynced(path string, data []byte, flags int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|flags, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// markOpen removes the mark of a clean close, durably: from now on a
// crash may tear a write.
func markOpen(dir string) error {
	err := os.Remove(filepath.Join(dir, closedMark))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// markClosed leaves the mark of a clean close, durably, naming the newest
// value log file and its size.
func markClosed(dir string) error {
	newest, mems, err := newestValueLog(dir)
	if err != nil || mems || newest == "" {
		return err // no mark: the next Open checks nothing
	}
	fi, err := os.Stat(newest)
	if err != nil {
		return err
	}
	mark := fmt.Sprintf("%s %d\n", filepath.Base(newest), fi.Size())
	if err := writeSynced(filepath.Join(dir, closedMark), []byte(mark), os.O_CREATE|os.O_TRUNC); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
