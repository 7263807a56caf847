//go:build linux

package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// The namespace testnet runs the real commons binary, one daemon per host
// of a Lab, and drives it with the CLI as a user would. Real processes give
// nothing to await, so the helpers poll (every 250ms, up to a deadline):
// the one place in testnet that waits on the wall clock.

// newTestLab returns a Lab deleted when the test ends. It skips the test
// when namespaces cannot be made, except under CI=true, where it fails:
// CI runs as root with iproute2 and nftables installed by .ci/run.
func newTestLab(tb testing.TB) *Lab {
	tb.Helper()
	if testing.Short() {
		tb.Skip("the namespace testnet runs real processes")
	}
	l, err := NewLab()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true but %v", err)
		}
		tb.Skipf("%v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("delete namespaces: %v", err)
		}
	})
	return l
}

// nsNet is the daemons of one test on one Lab.
type nsNet struct {
	tb  testing.TB
	lab *Lab
	bin string
	dir string

	mu      sync.Mutex
	daemons []*nsDaemon
}

// newNsNet builds the commons binary and returns an empty net whose daemons
// are killed when the test ends, after printing the end of their logs if it
// failed. Set COMMONS_NETNS_LOGS=DIR to keep the whole logs.
func newNsNet(tb testing.TB, lab *Lab) *nsNet {
	tb.Helper()
	n := &nsNet{tb: tb, lab: lab, dir: tb.TempDir()}
	n.bin = filepath.Join(n.dir, "commons")
	out, err := exec.Command("go", "build", "-o", n.bin, "github.com/commons-p2p/commons/cmd/commons").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	tb.Cleanup(n.shutdown)
	return n
}

func (n *nsNet) shutdown() {
	n.mu.Lock()
	ds := n.daemons
	n.mu.Unlock()
	for _, d := range ds {
		d.kill()
	}
	keep := os.Getenv("COMMONS_NETNS_LOGS")
	for _, d := range ds {
		if keep != "" {
			name := strings.NewReplacer("/", "_").Replace(n.tb.Name()) + "." + d.name + ".log"
			if data, err := os.ReadFile(d.logPath); err == nil {
				_ = os.MkdirAll(keep, 0o755)
				_ = os.WriteFile(filepath.Join(keep, name), data, 0o644)
			}
		}
		if n.tb.Failed() {
			n.tb.Logf("== %s (%s) log, last lines:\n%s", d.name, d.id, tail(d.logPath, 60))
		}
	}
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// nsDaemon is one node: a repo on a host of the Lab, and its daemon while
// it runs.
type nsDaemon struct {
	n       *nsNet
	name    string
	host    *Host
	repo    string
	id      string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	started time.Time
}

// node makes a repo for a node on host h and returns it, not running.
func (n *nsNet) node(name string, h *Host) *nsDaemon {
	n.tb.Helper()
	d := &nsDaemon{n: n, name: name, host: h, repo: filepath.Join(n.dir, name), logPath: filepath.Join(n.dir, name+".log")}
	out, err := d.cli("init")
	if err != nil {
		n.tb.Fatalf("%s: init: %v", name, err)
	}
	d.id = strings.TrimSpace(out)
	n.mu.Lock()
	n.daemons = append(n.daemons, d)
	n.mu.Unlock()
	return d
}

// addrs are the daemon's listen addresses as peers on its segment dial
// them: TCP and QUIC on port 4040 of its host, with its peer ID.
func (d *nsDaemon) addrs() []string {
	ip := d.host.Addr.String()
	return []string{
		"/ip4/" + ip + "/tcp/4040/p2p/" + d.id,
		"/ip4/" + ip + "/udp/4040/quic-v1/p2p/" + d.id,
	}
}

// libp2pLogLevel is the daemons' go-libp2p log levels (go-log's
// GOLOG_LOG_LEVEL, which the test's own environment overrides): the NAT
// traversal subsystems at debug, for the logs printed on failure.
const libp2pLogLevel = "error,p2p-holepunch=debug,autorelay=debug,autonat=debug,autonatv2=info"

// start runs the daemon with extra daemon flags and extra environment
// (COMMONS_* settings), listening on TCP and QUIC port 4040, and waits
// until its API is up.
func (d *nsDaemon) start(flags []string, env ...string) {
	d.n.tb.Helper()
	args := []string{"--repo", d.repo, "--log-level", "info", "daemon",
		"--listen", "/ip4/0.0.0.0/tcp/4040", "--listen", "/ip4/0.0.0.0/udp/4040/quic-v1",
		"--api", "127.0.0.1:0"}
	args = append(args, flags...)
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.n.tb.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := d.n.lab.Command(context.Background(), d.host.NS, d.n.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		cmd.Env = append(cmd.Env, "GOLOG_LOG_LEVEL="+libp2pLogLevel)
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		d.n.tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		d.n.tb.Fatalf("%s: start daemon: %v", d.name, err)
	}
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.exited, d.started = cmd, exited, time.Now()
	d.mu.Unlock()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if !sent && strings.HasPrefix(sc.Text(), "API on ") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-exited
			d.n.tb.Fatalf("%s: daemon exited (%v) before its API was up; log:\n%s", d.name, cmd.ProcessState, tail(d.logPath, 40))
		}
	case <-time.After(30 * time.Second):
		d.n.tb.Fatalf("%s: daemon API not up after 30s; log:\n%s", d.name, tail(d.logPath, 40))
	}
}

// stop stops the daemon with SIGTERM, as Ctrl-C would, and waits for it.
func (d *nsDaemon) stop() {
	d.n.tb.Helper()
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		d.n.tb.Errorf("%s: daemon did not stop within 20s of SIGTERM", d.name)
	}
	if !cmd.ProcessState.Success() {
		d.n.tb.Errorf("%s: daemon exited with %v", d.name, cmd.ProcessState)
	}
}

// startedAt is when the daemon last started.
func (d *nsDaemon) startedAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started
}

// kill kills the daemon if it runs.
func (d *nsDaemon) kill() {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.cmd = nil
	d.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// pid is the daemon's process ID (ip netns exec execs in place), 0 if it
// does not run.
func (d *nsDaemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// cli runs a commons command against this node in its namespace (the API
// listens on the namespace's loopback) and returns its stdout.
func (d *nsDaemon) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := d.n.lab.Command(ctx, d.host.NS, d.n.bin, append([]string{"--repo", d.repo}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("commons %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// mustCLI is cli failing the test on error.
func (d *nsDaemon) mustCLI(args ...string) string {
	d.n.tb.Helper()
	out, err := d.cli(args...)
	if err != nil {
		d.n.tb.Fatalf("%s: %v", d.name, err)
	}
	return out
}

func (d *nsDaemon) status() (api.StatusInfo, error) {
	var st api.StatusInfo
	out, err := d.cli("status", "--json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s: status --json: %w", d.name, err)
	}
	return st, nil
}

// commons returns the node's status of one commons.
func (d *nsDaemon) commons(id string) (api.CommonsStatus, error) {
	st, err := d.status()
	if err != nil {
		return api.CommonsStatus{}, err
	}
	for _, c := range st.Commons {
		if c.ID == id {
			return c, nil
		}
	}
	return api.CommonsStatus{}, fmt.Errorf("%s does not replicate %s", d.name, id)
}

// conns returns the node's connections to the peer of another node.
func (d *nsDaemon) conns(to *nsDaemon) ([]api.ConnInfo, error) {
	st, err := d.status()
	if err != nil {
		return nil, err
	}
	var cs []api.ConnInfo
	for _, c := range st.Connections {
		if c.Peer == to.id {
			cs = append(cs, c.ConnInfo)
		}
	}
	return cs, nil
}

// relayed checks that the node announces a relayed address (it holds a
// reservation on a relay) and returns it.
func (d *nsDaemon) relayed() (string, error) {
	st, err := d.status()
	if err != nil {
		return "", err
	}
	for _, a := range st.Addresses {
		if strings.Contains(a, "/p2p-circuit") {
			return a, nil
		}
	}
	return "", fmt.Errorf("%s announces no relayed address: %v", d.name, st.Addresses)
}

// direct reports whether the node has a connection to the other that is
// not relayed, and returns its address.
func (d *nsDaemon) direct(to *nsDaemon) (string, error) {
	cs, err := d.conns(to)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if !c.Relayed {
			return c.Address, nil
		}
	}
	if len(cs) == 0 {
		return "", fmt.Errorf("%s has no connection to %s", d.name, to.name)
	}
	return "", fmt.Errorf("%s reaches %s only relayed: %v", d.name, to.name, cs)
}

// rss is the daemon's resident memory in KiB, from /proc.
func (d *nsDaemon) rss() (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// contribute publishes a contribution, retrying until the commons'
// manifest has reached the node, and returns its CID.
func (d *nsDaemon) contribute(commons, title string) string {
	d.n.tb.Helper()
	file := filepath.Join(d.n.dir, d.name+"-"+strings.ReplaceAll(title, " ", "_")+".txt")
	if err := os.WriteFile(file, []byte(title+"\n"), 0o644); err != nil {
		d.n.tb.Fatal(err)
	}
	var c string
	waitUntil(d.n.tb, d.name+" contributes "+title, 60*time.Second, func() error {
		out, err := d.cli("contribute", "--commons", commons, "--title", title, "--file", file)
		c = strings.TrimSpace(out)
		return err
	})
	return c
}

// waitUntil polls cond every 250ms until it returns nil, failing the test
// with its last error after timeout. It returns how long it took.
func waitUntil(tb testing.TB, what string, timeout time.Duration, cond func() error) time.Duration {
	tb.Helper()
	took, err := waitFor(timeout, cond)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return took
}

// waitFor polls cond every 250ms until it returns nil and returns how long
// that took, or returns cond's last error after timeout.
func waitFor(timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("not after %v: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hasRecords checks that every node holds n records of a commons, and that
// they agree on its state root.
func hasRecords(commons string, records int, ds ...*nsDaemon) error {
	root := ""
	for _, d := range ds {
		c, err := d.commons(commons)
		if err != nil {
			return err
		}
		if c.Records != records {
			return fmt.Errorf("%s holds %d records, not %d", d.name, c.Records, records)
		}
		if c.StateRootRecords != c.Records {
			return fmt.Errorf("%s: its state root is of %d of its %d records (records still arriving)", d.name, c.StateRootRecords, c.Records)
		}
		if root != "" && c.StateRoot != root {
			return fmt.Errorf("%s: state root %s differs from %s's %s", d.name, c.StateRoot, ds[0].name, root)
		}
		root = c.StateRoot
	}
	return nil
}

// hasRecord checks that a node has a record (commons show succeeds).
func (d *nsDaemon) hasRecord(cid string) error {
	_, err := d.cli("show", cid)
	return err
}
