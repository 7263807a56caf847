package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/commons-p2p/commons/protocol"
)

func TestProgressLine(t *testing.T) {
	tests := []struct {
		name                  string
		records, bytes, total int64
		elapsed               time.Duration
		want                  string
	}{
		{"known size", 12345, 4_200_000, 120_000_000, 4 * time.Second, "importing big.car: 12,345 records, 3,086 records/s, 4.2 of 120.0 MB (3%)"},
		{"unknown size", 1_234_567, 987_654_321, 0, 10 * time.Second, "importing big.car: 1,234,567 records, 123,456 records/s, 987.7 MB"},
		{"records not known", -1, 3_000_000, 0, 2 * time.Second, "importing big.car: 3.0 MB, 1.5 MB/s"},
		{"at once", 0, 0, 100, 0, "importing big.car: 0 records, 0 records/s, 0.0 of 0.0 MB (0%)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := progressLine("importing big.car", tt.records, tt.bytes, tt.total, tt.elapsed); got != tt.want {
				t.Errorf("progressLine = %q, want %q", got, tt.want)
			}
		})
	}
}

// testCAR is a CAR (version 1) of n small blocks.
func testCAR(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := protocol.NewCARWriter(&buf, protocol.RecordCID([]byte("root")))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		raw := bytes.Repeat([]byte{byte(i)}, 100+i) // lengths past one varint byte
		if err := w.Put(protocol.RecordCID(raw), raw); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestCARCounter(t *testing.T) {
	car := testCAR(t, 300)
	for _, chunk := range []int{1, 7, 4096, len(car)} {
		var c carCounter
		for b := car; len(b) > 0; b = b[min(chunk, len(b)):] {
			c.Write(b[:min(chunk, len(b))])
		}
		if c.count() != 300 {
			t.Errorf("in chunks of %d bytes: counted %d blocks, want 300", chunk, c.count())
		}
	}
	// A CAR version 2 starts with its pragma: its blocks are not counted.
	v2 := append([]byte{0x0a, 0xa1, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x02}, make([]byte, 40)...)
	var c carCounter
	c.Write(append(v2, car...))
	if c.count() != -1 {
		t.Errorf("a CAR version 2: count %d, want -1 (unknown)", c.count())
	}
}

// TestProgressDraws: on a terminal, the line is drawn as bytes pass, at
// most every progressEvery (so not at all for work shorter), and cleared at the end, after which nothing
// more is drawn.
func TestProgressDraws(t *testing.T) {
	car := testCAR(t, 100)
	var term bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgressOn(&term, "importing x.car", int64(len(car)), func() time.Time { return now })
	r := p.reader(bytes.NewReader(car))
	buf := make([]byte, len(car))
	if _, err := io.ReadFull(r, buf[:10]); err != nil {
		t.Fatal(err)
	}
	if term.Len() != 0 {
		t.Errorf("drew %q at once, want a line only after %v", term.String(), progressEvery)
	}
	now = now.Add(2 * time.Second)
	if _, err := io.ReadFull(r, buf[10:]); err != nil { // one Read of bytes.Reader
		t.Fatal(err)
	}
	if want := "\rimporting x.car: 100 records, 50 records/s, 0.0 of 0.0 MB (100%)\x1b[K"; term.String() != want {
		t.Errorf("drew %q, want %q", term.String(), want)
	}
	p.end()
	if !strings.HasSuffix(term.String(), "\r\x1b[K") {
		t.Errorf("end left %q, want the line cleared", term.String())
	}
	drawn := term.Len()
	now = now.Add(time.Hour)
	p.add([]byte{1, 2, 3})
	if term.Len() != drawn {
		t.Errorf("drew %q after the end", term.String()[drawn:])
	}
	var nilP *progress
	if nilP.reader(r) != r {
		t.Error("a nil progress wraps the reader")
	}
	nilP.end()
}
