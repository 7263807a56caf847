package crdt

import (
	"fmt"
	"slices"
	"testing"
)

// TestMemKVScan: a scan gives the keys under its prefix not less than its
// start, in order, across chunks, and stops when fn fails.
func TestMemKVScan(t *testing.T) {
	var m MemKV
	var ws []Write
	for i := range 3 * memChunk {
		ws = append(ws, Write{Key: fmt.Appendf(nil, "a%04d", i), Value: []byte{1}}, Write{Key: fmt.Appendf(nil, "b%04d", i), Value: []byte{}})
	}
	m.Apply(ws)
	scan := func(prefix, from string) []string {
		var out []string
		var f []byte
		if from != "" {
			f = []byte(from)
		}
		if err := m.Scan([]byte(prefix), f, func(k, _ []byte) error { out = append(out, string(k)); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := scan("a", ""); len(got) != 3*memChunk || got[0] != "a0000" || !slices.IsSorted(got) {
		t.Fatalf("scan a: %d keys from %q", len(got), got[0])
	}
	if got := scan("a", "a0700"); len(got) != 3*memChunk-700 || got[0] != "a0700" {
		t.Fatalf("scan a from a0700: %d keys from %q", len(got), got)
	}
	if got := scan("a", "a07000"); got[0] != "a0701" {
		t.Fatalf("scan a from a07000: first %q; want a0701", got[0])
	}
	if got := scan("a", "0"); len(got) != 3*memChunk {
		t.Fatalf("scan a from before it: %d keys", len(got))
	}
	if got := scan("a", "b"); len(got) != 0 {
		t.Fatalf("scan a from past it: %q", got)
	}
	if got := scan("b0", "b0767"); !slices.Equal(got, []string{"b0767"}) {
		t.Fatalf("scan b0 from b0767: %q", got)
	}
	stop := fmt.Errorf("stop")
	n := 0
	if err := m.Scan([]byte("b"), nil, func(_, _ []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("scan whose fn fails: %v after %d keys", err, n)
	}
}
