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

// Badger's Open reads its log files (the newest value log file, and the
// write-ahead log of each memtable not yet flushed) entry by entry, and cuts
// each at the end of the last whole transaction before the first entry that
// fails its checksum. After a crash that is a torn tail: a transaction
// written in part. After one damaged byte it is every entry written after
// that byte, up to a file's size, which badger's Open truncates away.
// checkLogs and healLogs stand between: Open refuses a store whose logs
// would lose whole transactions, and Rebuild mends what it can first. The
// format read here is that of badger v4's log files (its logFile.iterate
// and safeRead.Entry); TestLogsFormat checks it against files badger wrote.

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

// wholeTxnFrom reports whether a whole transaction (or an entry outside
// any) that badger would take starts at off.
func wholeTxnFrom(data []byte, off int) bool {
	e, ok := readLogEntry(data, off)
	if !ok {
		return false
	}
	if e.meta&(logBitTxn|logBitFinTxn) == 0 {
		return true
	}
	if e.meta&logBitTxn == 0 {
		return false
	}
	end, _ := replayLog(data, off)
	return end > off
}

// logDamage is what checkLog found in one log file: the offset where
// badger would cut it, and where what it would lose starts.
type logDamage struct {
	path      string
	cut, stop int
}

func (d *logDamage) Error() string {
	return fmt.Sprintf("%v: the log file %s is damaged at byte %d: badger would cut it at byte %d, losing what was written after", store.ErrCorrupt, d.path, d.stop, d.cut)
}

func (d *logDamage) Unwrap() error { return store.ErrCorrupt }

// checkLog returns the damage of a log file's bytes, or nil if badger
// would read them through, or cut only a torn write. After a clean close
// nothing is torn: anything badger would not read is damage. After a
// crash, an entry that fails its checksum is damage only if a whole
// transaction follows it (a write is torn at its end, never in its
// middle).
func checkLog(path string, data []byte, clean bool) *logDamage {
	if len(data) < logHeaderSize {
		return nil
	}
	cut, stop := replayLog(data, logHeaderSize)
	last := len(data)
	for last > stop && data[last-1] == 0 {
		last--
	}
	if last <= stop {
		return nil // zeros after the last entry: the file's unused end
	}
	d := &logDamage{path: path, cut: cut, stop: stop}
	if clean {
		return d
	}
	if next, ok := entryEnd(data, stop); ok && wholeTxnFrom(data, next) {
		return d
	}
	for p := stop + 1; p < last; p++ {
		if wholeTxnFrom(data, p) {
			return d
		}
	}
	return nil // a torn write, nothing whole after it
}

// mendEntry gives the entry at off, its lengths intact, the checksum of
// its bytes as they are, in data; it reports whether badger then reads
// further than before.
func mendEntry(data []byte, off int) bool {
	end, ok := entryEnd(data, off)
	if !ok {
		return false
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

// replayedLogs lists the log files badger's Open reads through: every
// memtable's write-ahead log and the newest value log file.
func replayedLogs(dir string) ([]string, error) {
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return nil, err
	}
	vlogs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(vlogs, func(a, b string) int { return logFid(a) - logFid(b) })
	if len(vlogs) > 0 {
		mems = append(mems, vlogs[len(vlogs)-1])
	}
	return mems, nil
}

// logFid is the number a log file's name carries.
func logFid(path string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	return n
}

// checkLogs returns an error wrapping store.ErrCorrupt, naming the file,
// if badger's Open would cut off one of the log files of dir what was not
// a torn write; clean says the store was closed cleanly.
func checkLogs(dir string, clean bool) error {
	files, err := replayedLogs(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := checkLogFile(f, clean); err != nil {
			return err
		}
	}
	return nil
}

// checkLogFile is checkLog of one file, read through a read-only mapping
// (the page cache holds it for badger's Open next).
func checkLogFile(path string, clean bool) error {
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
	if d := checkLog(path, data, clean); d != nil {
		return d
	}
	return nil
}

// healLogs mends the log files of dir that checkLogs refuses, where the
// damage lies in entries' content: it gives each damaged entry the
// checksum of its bytes as they are, keeping the file as it was beside it
// (NAME.damaged), so that badger reads every transaction and the damage
// shows where it lies, as a record whose bytes do not match its CID. It
// returns the files mended, and an error for damage it cannot mend.
func healLogs(dir string, clean bool) ([]string, error) {
	files, err := replayedLogs(dir)
	if err != nil {
		return nil, err
	}
	var healed []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return healed, fmt.Errorf("read %s: %w", f, err)
		}
		orig := slices.Clone(data)
		for {
			d := checkLog(f, data, clean)
			if d == nil {
				break
			}
			if !mendEntry(data, d.stop) {
				return healed, fmt.Errorf("%w (it cannot be mended: the damage is not inside one entry's content)", d)
			}
		}
		if bytes.Equal(data, orig) {
			continue
		}
		if err := os.WriteFile(f+".damaged", orig, 0o600); err != nil {
			return healed, fmt.Errorf("keep a copy of %s: %w", f, err)
		}
		if err := writeSynced(f, data); err != nil {
			return healed, err
		}
		healed = append(healed, f)
	}
	return healed, nil
}

// writeSynced writes data over the file at path and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("mend %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("mend %s: %w", path, err)
	}
	return f.Close()
}

// closedMark is the file Close leaves in a store's directory once badger
// has closed it: its log files end where their last transaction does.
const closedMark = "closed-cleanly"

// closedCleanly reports whether the store at dir was closed cleanly last
// (not stopped by a crash): then its log files hold no torn write.
func closedCleanly(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, closedMark))
	return err == nil
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

// markClosed leaves the mark of a clean close, durably.
func markClosed(dir string) error {
	if err := writeNew(filepath.Join(dir, closedMark)); err != nil {
		return err
	}
	return syncDir(dir)
}

func writeNew(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
