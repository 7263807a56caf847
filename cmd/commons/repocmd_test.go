package main

import (
	"strings"
	"testing"
)

// repo verify reads a whole store and says so; on a repo whose daemon
// runs it refuses, naming the daemon.
func TestRepoVerify(t *testing.T) {
	dir, _ := initTestRepo(t)
	mustRun(t, dir, "manifest", "create", "--name", "X", "--licence", "MIT")
	r := mustRun(t, dir, "repo", "verify")
	if !strings.Contains(r.stdout, "records read whole: 1") || !strings.Contains(r.stderr, "the store is whole") {
		t.Fatalf("repo verify of a whole repo = %+v", r)
	}
	startInProcess(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	r = runCLI(t, t.Context(), "--repo", dir, "repo", "verify")
	if r.code != 1 || !strings.Contains(r.stderr, "a daemon already runs") {
		t.Fatalf("repo verify while the daemon runs = %+v", r)
	}
}
