package crdt

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps enforces the package's purity. Its own imports may not name the
// standard library's impure packages; and nothing it pulls in, directly or
// through protocol, may be badger, libp2p's networking (p2p/...) or pubsub.
// (The transitive closure does contain os, time and net: fmt imports os,
// and protocol's libp2p core/crypto imports more. What crdt may not do is
// use them itself.)
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("shells out to go list")
	}
	imports := goList(t, "-f", `{{join .Imports "\n"}}`, ".")
	forbidden := map[string]bool{"os": true, "os/exec": true, "net": true, "net/http": true, "time": true,
		"math/rand": true, "math/rand/v2": true, "log": true, "log/slog": true, "sync": true, "sync/atomic": true,
		"syscall": true, "unsafe": true, "io/fs": true, "runtime": true}
	for _, p := range imports {
		if forbidden[p] {
			t.Errorf("crdt imports %s", p)
		}
	}
	for _, p := range goList(t, "-deps", ".") {
		for _, bad := range []string{"github.com/dgraph-io/badger", "github.com/libp2p/go-libp2p/p2p/", "github.com/libp2p/go-libp2p-pubsub"} {
			if strings.HasPrefix(p, bad) {
				t.Errorf("crdt depends on %s", p)
			}
		}
	}
}

func goList(t *testing.T, args ...string) []string {
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}
