package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
)

// inProcess is a daemon run by run in this process.
type inProcess struct {
	stdout, stderr *syncBuffer
	exit           chan int
	cancel         context.CancelFunc
}

// startInProcess runs "commons --repo dir daemon args..." and waits until
// it serves its API.
func startInProcess(t *testing.T, dir string, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	d := &inProcess{stdout: newSyncBuffer("API on http://"), stderr: newSyncBuffer(""), exit: make(chan int, 1), cancel: cancel}
	go func() {
		d.exit <- run(ctx, append([]string{"--repo", dir, "--log-level", "error", "daemon"}, args...), d.stdout, d.stderr)
	}()
	t.Cleanup(func() { d.stop(t) })
	select {
	case <-d.stdout.marked:
	case code := <-d.exit:
		t.Fatalf("daemon exited %d early\nstdout: %s\nstderr: %s", code, d.stdout, d.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not serve its API\nstdout: %s\nstderr: %s", d.stdout, d.stderr)
	}
	return d
}

// stop stops the daemon and returns its exit code (-1 if it had stopped
// already).
func (d *inProcess) stop(t *testing.T) int {
	t.Helper()
	d.cancel()
	select {
	case code, ok := <-d.exit:
		if !ok {
			return -1
		}
		close(d.exit)
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	return -1
}

// TestDaemonAddresses: the daemon says which addresses it is bound to and,
// apart, which it announces.
func TestDaemonAddresses(t *testing.T) {
	dir, id := initTestRepo(t)
	d := startInProcess(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--announce", "/ip4/203.0.113.7/tcp/4040")
	out := d.stdout.String()
	bound := regexp.MustCompile(`(?m)^listening on /ip4/127\.0\.0\.1/tcp/[1-9][0-9]*/p2p/` + id + `$`)
	if !bound.MatchString(out) || !strings.Contains(out, "\nannouncing /ip4/203.0.113.7/tcp/4040/p2p/"+id+"\n") || strings.Contains(out, "listening on /ip4/203.0.113.7") {
		t.Errorf("daemon stdout = %q, want the bound address as listening and the announced one apart", out)
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exited %d\nstderr: %s", code, d.stderr)
	}
}

// TestDaemonRefusedWhereOneRuns: a second daemon on the TCP port of one
// running, or on its repo, is refused with an error naming the address or
// the repo.
func TestDaemonRefusedWhereOneRuns(t *testing.T) {
	dir, _ := initTestRepo(t)
	startInProcess(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	var addr string
	for _, a := range decodeJSON[api.IDInfo](t, mustRun(t, dir, "id", "--json").stdout).Addresses {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			addr, _, _ = strings.Cut(a, "/p2p/")
		}
	}
	if addr == "" {
		t.Fatal("the daemon has no TCP address on loopback")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	other := filepath.Join(t.TempDir(), "other")
	r := runCLI(t, ctx, "--repo", other, "--log-level", "error", "daemon", "--listen", addr, "--api", "127.0.0.1:0")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 2 || // the first line says the repo was created
		!strings.Contains(r.stderr, "commons: node: listen on "+addr+": address already in use") {
		t.Errorf("a second daemon on %s = %+v, want exit 1 and an error naming the address in use", addr, r)
	}
	r = runCLI(t, ctx, "--repo", dir, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "a daemon already runs on the repo "+dir) {
		t.Errorf("a second daemon on the repo = %+v, want exit 1 and an error naming the repo", r)
	}
}

// TestConfigShowDaemon: while a daemon runs, config show prints the
// settings it runs with, its flags included; once it stops, the repo's.
func TestConfigShowDaemon(t *testing.T) {
	dir, _ := initTestRepo(t)
	mustRun(t, dir, "config", "set", "bootstrap", "/ip4/127.0.0.1/tcp/8/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu")
	d := startInProcess(t, dir, "--profile", "bootstrap", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0",
		"--bootstrap", "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu")

	r := mustRun(t, dir, "config", "show", "--json")
	if r.stderr != "the running daemon's settings, as it started\n" {
		t.Errorf("config show stderr = %q, want a note that they are the daemon's", r.stderr)
	}
	got := map[string]repo.ConfigSetting{}
	for _, s := range decodeJSON[[]repo.ConfigSetting](t, r.stdout) {
		got[s.Key] = s
	}
	want := map[string]struct {
		value  string
		source string
	}{
		"profile":   {"bootstrap", "flag"},
		"listen":    {"[/ip4/127.0.0.1/tcp/0]", "flag"},
		"bootstrap": {"[/ip4/127.0.0.1/tcp/8/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu /ip4/127.0.0.1/tcp/9/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu]", "config+flag"},
		"api":       {"127.0.0.1:0", "flag"},
		"dht":       {"server", "profile"},
		"mdns":      {"false", "env"},
		"log_level": {"error", "flag"},
	}
	for k, w := range want {
		if s := got[k]; fmt.Sprint(s.Value) != w.value || s.Source != w.source {
			t.Errorf("config show: %s = %v from %q, want %s from %q", k, s.Value, s.Source, w.value, w.source)
		}
	}
	if got := mustRun(t, dir, "config", "show", "profile").stdout; got != "bootstrap\n" {
		t.Errorf("config show profile = %q, want the daemon's bootstrap", got)
	}
	if r := mustRun(t, dir, "config", "show", "--profile", "default", "dht"); r.stdout != "auto\n" || r.stderr != "" {
		t.Errorf("config show --profile default dht = %+v, want the repo's auto", r)
	}

	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exited %d\nstderr: %s", code, d.stderr)
	}
	if r := mustRun(t, dir, "config", "show", "profile"); r.stdout != "default\n" || r.stderr != "" {
		t.Errorf("config show profile after the daemon stopped = %+v, want the repo's default", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "daemon.json")); !os.IsNotExist(err) {
		t.Errorf("the daemon's settings after it stopped: %v", err)
	}
}

// TestFollowPastTheEnd: feed --follow from past the end of the feed is an
// error saying where the end is; from the end, it waits for new records.
func TestFollowPastTheEnd(t *testing.T) {
	dir, _ := initTestRepo(t)
	startInProcess(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	commons := cidOut(t, mustRun(t, dir, "manifest", "create", "--name", "x", "--licence", "MIT"))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := runCLI(t, ctx, "--repo", dir, "feed", "--follow", "--since", "5")
	want := "commons: api: bad request: cursor 5 is past the end of the feed of commons " + commons + ", which ends at cursor 1\n"
	if r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("feed --follow --since 5 = %+v, want exit 1 and %q", r, want)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if r := runCLI(t, ctx, "--repo", dir, "feed", "--follow", "--since", "1"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("feed --follow --since 1 (the end) = %+v, want it to wait quietly", r)
	}
}
