package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The API token survives a restart of the daemon, so that a client that
// read it once keeps working; --rotate-token makes a new one.
func TestTokenKeptAcrossRestarts(t *testing.T) {
	dir, _ := initTestRepo(t)
	token := func() string {
		raw, err := os.ReadFile(filepath.Join(dir, "api.token"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(raw))
	}
	args := []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"}
	d := startInProcess(t, dir, args...)
	first := token()
	d.stop(t)
	d = startInProcess(t, dir, args...)
	if got := token(); got != first {
		t.Fatalf("after a restart the token is %s, was %s", got, first)
	}
	mustRun(t, dir, "status") // a client with it is let in
	d.stop(t)
	startInProcess(t, dir, append(args, "--rotate-token")...)
	if got := token(); got == first || len(got) != 64 {
		t.Fatalf("after --rotate-token the token is %q, want a new one", got)
	}
	mustRun(t, dir, "status")
}
