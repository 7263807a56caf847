package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// progressEvery is the least time between two drawings of a progress line.
const progressEvery = 200 * time.Millisecond

// progress draws, on a terminal, one line about a long copy of a CAR file
// (import, export), rewritten in place: the records and bytes so far and
// the rate. The records are counted from the CAR's own framing as its
// bytes pass. Safe for concurrent use: an HTTP client reads a request body
// on a goroutine of its own.
type progress struct {
	mu      sync.Mutex
	term    io.Writer
	verb    string // "importing FILE", "exporting to FILE"
	total   int64  // bytes in all; 0: unknown
	now     func() time.Time
	start   time.Time
	drawnAt time.Time
	drawn   bool // a line is on the terminal
	ended   bool
	bytes   int64
	car     carCounter
}

// newProgress returns a progress line on stderr for work described by
// verb, or nil when quiet is set or stderr is no terminal (a pipe, a file,
// a test's buffer): a line rewritten with \r only makes a mess there.
func (a *app) newProgress(quiet bool, verb string, total int64) *progress {
	f, ok := a.stderr.(*os.File)
	if quiet || !ok || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return nil
	}
	return newProgressOn(f, verb, total, time.Now)
}

func newProgressOn(term io.Writer, verb string, total int64, now func() time.Time) *progress {
	start := now()
	return &progress{term: term, verb: verb, total: total, now: now, start: start, drawnAt: start}
}

// add counts bytes that passed, and redraws the line when it is due.
func (p *progress) add(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.bytes += int64(len(b))
	p.car.Write(b)
	p.draw(func(elapsed time.Duration) string {
		return progressLine(p.verb, p.car.count(), p.bytes, p.total, elapsed)
	})
}

// draw rewrites the line with what line says for the time elapsed, when a
// drawing is due. p.mu held.
func (p *progress) draw(line func(elapsed time.Duration) string) {
	if now := p.now(); now.Sub(p.drawnAt) >= progressEvery {
		p.drawnAt = now
		p.drawn = true
		fmt.Fprintf(p.term, "\r%s\x1b[K", line(now.Sub(p.start)))
	}
}

// end clears the line, so that what is printed next starts on a clean
// one, and draws no more. Nil-safe.
func (p *progress) end() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn && !p.ended {
		fmt.Fprint(p.term, "\r\x1b[K")
	}
	p.ended = true
}

// reader passes r's bytes on, counting them. Nil-safe: r itself.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return progressReader{r, p}
}

// writer passes bytes on to w, counting them. Nil-safe: w itself.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return progressWriter{w, p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(b[:n])
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(b[:n])
	return n, err
}

// progressLine is the text of a progress line: records (-1: not known),
// bytes of total (0: not known) and the rate over elapsed.
//
//	importing big.car: 12,345 records, 3,086 records/s, 4.2 of 120.0 MB (3%)
func progressLine(verb string, records, bytes, total int64, elapsed time.Duration) string {
	secs := max(elapsed.Seconds(), 0.001)
	line := verb + ": "
	if records >= 0 {
		line += thousands(records) + " records, " + thousands(int64(float64(records)/secs)) + " records/s, "
	}
	mb := func(n int64) string { return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) }
	if total > 0 {
		line += fmt.Sprintf("%s of %s MB (%d%%)", mb(bytes), mb(total), bytes*100/total)
	} else {
		line += mb(bytes) + " MB"
	}
	if records < 0 {
		line += ", " + mb(int64(float64(bytes)/secs)) + " MB/s"
	}
	return line
}

// thousands writes n with a comma between each group of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// carCounter counts the blocks of a CAR (version 1) stream from its
// framing as its bytes pass: a varint length and the header, then a
// varint length and a block, for each block. Bytes that break the framing
// (a CAR version 2, or no CAR at all) make the count unknown.
type carCounter struct {
	header  bool   // the header's length has been read
	skip    uint64 // bytes left of the header or the current block
	varint  uint64 // the length being read
	shift   uint
	blocks  int64
	unknown bool
}

func (c *carCounter) Write(p []byte) {
	for len(p) > 0 && !c.unknown {
		if c.skip > 0 {
			n := min(uint64(len(p)), c.skip)
			p, c.skip = p[n:], c.skip-n
			continue
		}
		b := p[0]
		p = p[1:]
		c.varint |= uint64(b&0x7f) << c.shift
		if b&0x80 != 0 {
			if c.shift += 7; c.shift > 63 {
				c.unknown = true
			}
			continue
		}
		n := c.varint
		c.varint, c.shift = 0, 0
		switch {
		case !c.header && n == carV2PragmaLen:
			c.unknown = true // a CAR version 2: its blocks are framed further on
		case !c.header:
			c.header = true
		default:
			c.blocks++
		}
		c.skip = n
	}
}

// carV2PragmaLen is the length that starts a CAR version 2 file: its
// pragma, 10 bytes that read as a version 1 header of version 2.
const carV2PragmaLen = 10

// count returns the blocks counted, or -1 when the count is unknown.
func (c *carCounter) count() int64 {
	if c.unknown {
		return -1
	}
	return c.blocks
}

// count redraws the line, when it is due, for work that counts records
// itself (a join: the records arrived): n so far, and their rate.
// Nil-safe.
func (p *progress) count(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.draw(func(elapsed time.Duration) string {
		secs := max(elapsed.Seconds(), 0.001)
		return fmt.Sprintf("%s: %s records, %s records/s", p.verb, thousands(n), thousands(int64(float64(n)/secs)))
	})
}

// stopWriter passes bytes on to w until ctx is done, and fails after: a
// long write (testnet gen) then ends at an interrupt.
type stopWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w stopWriter) Write(b []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(b)
}
