package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// The end-to-end test runs the real binary: three daemons, each with its own
// repo, on loopback, as a user would.

func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go toolchain not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "commons")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type daemon struct {
	repo string
	cmd  *exec.Cmd
	addr string // first listen address, with /p2p/
	log  *bytes.Buffer
}

// cli runs one command and returns its stdout; it fails the test on a
// non-zero exit.
func cli(t *testing.T, bin, repo string, args ...string) string {
	t.Helper()
	out, errOut, code := cliCode(t, bin, repo, args...)
	if code != 0 {
		t.Fatalf("commons %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func cliCode(t *testing.T, bin, repo string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--repo", repo}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run commons: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

func startDaemon(t *testing.T, bin, repo string, bootstrap ...string) *daemon {
	t.Helper()
	args := []string{"--repo", repo, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	d := &daemon{repo: repo, log: &bytes.Buffer{}}
	d.cmd = exec.Command(bin, args...) // COMMONS_MDNS=false from TestMain
	d.cmd.Stderr = d.log
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "listening on "); ok && d.addr == "" {
			d.addr = a
		}
		if strings.HasPrefix(line, "API on ") {
			break
		}
	}
	if d.addr == "" {
		t.Fatalf("daemon for %s printed no address; log:\n%s", repo, d.log)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return d
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("daemon %s exited with %v; log:\n%s", d.repo, err, d.log)
	}
}

func status(t *testing.T, bin, repo string) api.StatusInfo {
	t.Helper()
	var st api.StatusInfo
	if err := json.Unmarshal([]byte(cli(t, bin, repo, "status", "--json")), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	return st
}

// eventually polls cond (real processes: there is nothing to await) until
// it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// converged checks every repo lists the contribution as accepted and all
// print the same state root.
func converged(t *testing.T, bin string, repos []string, records int) error {
	root := ""
	for _, r := range repos {
		st := status(t, bin, r)
		if len(st.Commons) != 1 {
			return fmt.Errorf("%s replicates %d commons", r, len(st.Commons))
		}
		c := st.Commons[0]
		if c.Records != records || c.Accepted != 1 {
			return fmt.Errorf("%s: %d records, %d accepted", r, c.Records, c.Accepted)
		}
		if root != "" && c.StateRoot != root {
			return fmt.Errorf("%s: state root %s differs from %s", r, c.StateRoot, root)
		}
		root = c.StateRoot
	}
	return nil
}

func TestThreeDaemonsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs real processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	repos := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	ids := make([]string, 3)
	for i, r := range repos {
		ids[i] = strings.TrimSpace(cli(t, bin, r, "init"))
	}
	a := startDaemon(t, bin, repos[0])
	b := startDaemon(t, bin, repos[1], a.addr)
	c := startDaemon(t, bin, repos[2], a.addr)

	commons := strings.TrimSpace(cli(t, bin, repos[0], "manifest", "create", "--name", "E2E", "--licence", "CC-BY-SA-4.0", "--maintainer", ids[1], "--quorum", "1"))
	cli(t, bin, repos[1], "join", commons)
	cli(t, bin, repos[2], "join", commons)
	file := filepath.Join(dir, "work.txt")
	if err := os.WriteFile(file, []byte("the work itself\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// C can contribute as soon as the manifest has reached it.
	var contribution string
	eventually(t, "contribute on C", func() error {
		out, errOut, code := cliCode(t, bin, repos[2], "contribute", "--commons", commons, "--title", "First", "--file", file)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		contribution = strings.TrimSpace(out)
		return nil
	})
	eventually(t, "review on B", func() error {
		_, errOut, code := cliCode(t, bin, repos[1], "review", "accept", contribution)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		return nil
	})
	eventually(t, "all accepted with equal roots", func() error { return converged(t, bin, repos, 3) })

	for _, d := range []*daemon{a, b, c} {
		d.stop(t)
	}
	if err := converged(t, bin, repos, 3); err != nil {
		t.Fatalf("after stopping (offline view): %v", err)
	}
	a = startDaemon(t, bin, repos[0])
	b = startDaemon(t, bin, repos[1], a.addr)
	c = startDaemon(t, bin, repos[2], a.addr)
	if err := converged(t, bin, repos, 3); err != nil {
		t.Fatalf("after restart: %v", err)
	}

	car := filepath.Join(dir, "a.car")
	cli(t, bin, repos[0], "export", "--commons", commons, "--out", car)
	fresh := filepath.Join(dir, "fresh")
	cli(t, bin, fresh, "init")
	cli(t, bin, fresh, "import", "--join", car)
	if err := converged(t, bin, []string{repos[0], fresh}, 3); err != nil {
		t.Fatalf("import: %v", err)
	}

	// A CAR with one tampered record: the others import, the bad one is named.
	data, err := os.ReadFile(car)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("First"))
	data[i] = 'X'
	bad := filepath.Join(dir, "bad.car")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	cli(t, bin, other, "init")
	_, errOut, code := cliCode(t, bin, other, "import", "--join", bad)
	if code == 0 || !strings.Contains(errOut, contribution) || !strings.Contains(errOut, "imported 2 records") {
		t.Fatalf("tampered import: exit %d, stderr:\n%s", code, errOut)
	}
	for _, d := range []*daemon{a, b, c} {
		d.stop(t)
	}
}
