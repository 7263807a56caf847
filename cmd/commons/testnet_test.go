package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/protocol"
)

func TestGet(t *testing.T) {
	o := newOfflineRepo(t)
	blob := protocol.BlobCID([]byte("payload")).String()
	out := filepath.Join(t.TempDir(), "got.txt")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"stdout", []string{"get", blob}, 0, "payload"},
		{"out file", []string{"get", blob, "--out", out}, 0, ""},
		{"not a CID", []string{"get", "nope"}, 1, ""},
		{"not here", []string{"get", protocol.BlobCID([]byte("other")).String()}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, t.Context(), append([]string{"--repo", o.dir}, tc.args...)...)
			if r.code != tc.code || r.stdout != tc.stdout {
				t.Fatalf("exit %d, stdout %q (stderr %q); want %d, %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout)
			}
		})
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "payload" {
		t.Errorf("--out wrote %q, %v", b, err)
	}
}

func TestTestnetGen(t *testing.T) {
	dir := t.TempDir()
	var cars [][]byte
	for _, name := range []string{"a.car", "b.car"} {
		f := filepath.Join(dir, name)
		r := runCLI(t, t.Context(), "testnet", "gen", "--records", "200", "--authors", "10", "--maintainers", "3", "--seed", "5", "--out", f)
		if r.code != 0 || !cidLine.MatchString(r.stdout) || !strings.Contains(r.stderr, "200 records") {
			t.Fatalf("gen: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cars = append(cars, b)
	}
	if !bytes.Equal(cars[0], cars[1]) {
		t.Error("the same seed wrote different files")
	}
	repo, _ := initTestRepo(t)
	mustRun(t, repo, "import", "--join", filepath.Join(dir, "a.car"))
	if r := runCLI(t, t.Context(), "testnet", "gen", "--records", "0", "--out", filepath.Join(dir, "c.car")); r.code == 0 {
		t.Error("gen --records 0 succeeded")
	}
	if r := runCLI(t, t.Context(), "testnet", "bench", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "ingest") {
		t.Errorf("bench nosuch: exit %d, stderr %q", r.code, r.stderr)
	}
}

// An interrupted gen stops, says so, and leaves no file behind, neither
// under --out nor a temporary one beside it.
func TestTestnetGenInterrupted(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := runCLI(t, ctx, "testnet", "gen", "--records", "3000", "--out", filepath.Join(dir, "a.car"))
	if r.code == 0 || !strings.Contains(r.stderr, "interrupted: "+filepath.Join(dir, "a.car")+" not written") {
		t.Fatalf("gen with the context done: exit %d, stderr %q", r.code, r.stderr)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("gen left %v", left)
	}

	// Part way: the writes after the interrupt fail.
	ctx, cancel = context.WithCancel(t.Context())
	var got bytes.Buffer
	w := stopWriter{ctx, &got}
	if _, err := w.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if n, err := w.Write([]byte("two")); n != 0 || !errors.Is(err, context.Canceled) || got.String() != "one" {
		t.Errorf("write after the interrupt: %d, %v; wrote %q", n, err, got.String())
	}
}
