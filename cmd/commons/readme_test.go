package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// walkthroughMark precedes each README code block that the walkthroughs
// test runs.
const walkthroughMark = "<!-- walkthrough -->"

// readmeWalkthroughs returns the README's marked shell blocks, in order.
func readmeWalkthroughs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	marked, in := false, false
	var cur []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == walkthroughMark:
			marked = true
		case marked && !in && line == "```sh":
			in = true
		case in && line == "```":
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur, in, marked = nil, false, false
		case in:
			cur = append(cur, line)
		case marked && strings.TrimSpace(line) != "":
			t.Fatalf("README: %s is followed by %q, not a ```sh block", walkthroughMark, line)
		}
	}
	if len(blocks) == 0 {
		t.Fatal("README: no walkthrough blocks")
	}
	return blocks
}

// freePorts returns n TCP ports on loopback that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// TestREADMEWalkthroughs runs the README's walkthroughs as written, in
// order, in one bash, with the binary on PATH and a scratch home directory:
// the foundation founds a commons (alone, then as three members co-signing
// drafts), a contributor publishes, the maintainer accepts, an entrepreneur
// follows and exports. Only the ports change (4040 to 4043 become free
// ones), so that the test runs beside anything. It then checks what the
// walkthroughs promise: the contribution becomes accepted on the
// contributor's node, and every node holds the same commons.
func TestREADMEWalkthroughs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs real processes")
	}
	blocks := readmeWalkthroughs(t)
	bin := buildBinary(t)
	home := t.TempDir()
	script := strings.Join(blocks, "\n")
	// One pass: replaced one after another, a free port such as 40411
	// put in for 4040 would have its head replaced as 4041 next.
	var ports []string
	for i, p := range freePorts(t, 5) {
		ports = append(ports, fmt.Sprintf("tcp/%d", 4040+i), fmt.Sprintf("tcp/%d", p))
	}
	script = strings.NewReplacer(ports...).Replace(script)
	vars := filepath.Join(home, "vars")
	script = "set -euo pipefail\n" + script + "\n" +
		`printf 'ID=%s\nID2=%s\nC=%s\nE=%s\nP=%s\nG=%s\nX=%s\nD=%s\nR=%s\nY=%s\nM=%s\nM2=%s\n' "$ID" "$ID2" "$C" "$E" "$P" "$G" "$X" "$D" "$R" "$Y" "$M" "$M2" > ` + vars + "\n"
	out, err := os.Create(filepath.Join(home, "walkthrough.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "COMMONS_REPO=")
	cmd.Stdout, cmd.Stderr = out, out // files: the daemons it leaves running keep them open
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		stopUnder(t, home) // the detached daemons, each in a session of its own
	})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		err = fmt.Errorf("still running after 5 minutes")
	}
	log := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	if err != nil {
		t.Fatalf("the walkthroughs failed: %v\n%s", err, log())
	}
	v := map[string]string{}
	raw, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		k, val, _ := strings.Cut(l, "=")
		v[k] = val
	}
	repo := func(name string) string { return filepath.Join(home, name) }

	// "status: pending, then accepted", on the contributor's node.
	eventually(t, "the contribution accepted on the contributor's node", func() error {
		o, e, code := cliCode(t, bin, repo("contributor"), "show", v["C"])
		if code != 0 || !strings.Contains(o, "accepted") {
			return fmt.Errorf("show %s on the contributor's node: exit %d\n%s%s", v["C"], code, o, e)
		}
		return nil
	})
	// Every node of the commons holds the same records.
	eventually(t, "every node holds the same commons", func() error {
		var roots []string
		for _, r := range []string{"foundation", "contributor", "maintainer", "entrepreneur"} {
			var st api.StatusInfo
			if err := json.Unmarshal([]byte(cli(t, bin, repo(r), "status", "--json")), &st); err != nil {
				return err
			}
			c := findCommons(st, v["ID"])
			if c == nil {
				return fmt.Errorf("%s does not replicate %s", r, v["ID"])
			}
			roots = append(roots, fmt.Sprintf("%s: %d records, root %s", r, c.Records, c.StateRoot))
		}
		for _, r := range roots[1:] {
			if r[strings.Index(r, ":"):] != roots[0][strings.Index(roots[0], ":"):] {
				return fmt.Errorf("the nodes differ:\n%s", strings.Join(roots, "\n"))
			}
		}
		return nil
	})
	// The entrepreneur's reciprocity report: the same bytes on every node,
	// once each holds the sponsorship, the review and the acknowledgement.
	eventually(t, "the same reciprocity report on every node", func() error {
		var first string
		for _, r := range []string{"foundation", "contributor", "maintainer", "entrepreneur"} {
			o, e, code := cliCode(t, bin, repo(r), "reciprocity", "--commons", v["ID"], "--json")
			if code != 0 {
				return fmt.Errorf("reciprocity on %s: exit %d: %s", r, code, e)
			}
			var rep api.ReciprocityInfo
			if err := json.Unmarshal([]byte(o), &rep); err != nil {
				return err
			}
			if len(rep.Participants) != 1 || rep.Participants[0].Key.String() != v["E"] || len(rep.Participants[0].Sponsored) != 1 ||
				rep.Participants[0].Sponsored[0].Contribution != v["P"] || rep.Participants[0].Accepted != 1 ||
				len(rep.Participants[0].Pledges) != 1 || rep.Participants[0].Pledges[0].CID != v["G"] || rep.Participants[0].Pledges[0].Acknowledged != 30 {
				return fmt.Errorf("reciprocity on %s is not there yet:\n%s", r, o)
			}
			if first == "" {
				first = o
			} else if o != first {
				return fmt.Errorf("reciprocity on %s differs:\n%s\nfrom the foundation's:\n%s", r, o, first)
			}
		}
		return nil
	})
	// The upheld dispute withdrew the disputed contribution on every node,
	// and every node tells the dispute's story the same way.
	eventually(t, "the disputed contribution withdrawn on every node", func() error {
		var first string
		for _, r := range []string{"foundation", "contributor", "maintainer", "entrepreneur"} {
			o, e, code := cliCode(t, bin, repo(r), "show", v["X"])
			if code != 0 || !strings.Contains(o, "withdrawn") {
				return fmt.Errorf("show %s on %s: exit %d\n%s%s", v["X"], r, code, o, e)
			}
			d, e, code := cliCode(t, bin, repo(r), "dispute", "show", v["D"], "--json")
			if code != 0 {
				return fmt.Errorf("dispute show on %s: exit %d: %s", r, code, e)
			}
			var info api.DisputeInfo
			if err := json.Unmarshal([]byte(d), &info); err != nil {
				return err
			}
			if info.Outcome != "upheld" || info.Effect != "withdraw" || len(info.Statements) != 1 || len(info.Resolutions) != 1 {
				return fmt.Errorf("dispute on %s is not there yet:\n%s", r, d)
			}
			if first == "" {
				first = d
			} else if d != first {
				return fmt.Errorf("the dispute on %s differs:\n%s\nfrom the foundation's:\n%s", r, d, first)
			}
		}
		return nil
	})
	// The rotated maintainer's review accepts the new contribution on
	// every node, counting for the old key.
	eventually(t, "the new key's review counting for the maintainer on every node", func() error {
		for _, r := range []string{"foundation", "contributor", "maintainer", "entrepreneur", "maintainer-laptop"} {
			var info api.RecordInfo
			o, e, code := cliCode(t, bin, repo(r), "show", v["Y"], "--json")
			if code != 0 {
				return fmt.Errorf("show %s on %s: exit %d: %s", v["Y"], r, code, e)
			}
			if err := json.Unmarshal([]byte(o), &info); err != nil {
				return err
			}
			if info.Status != "accepted" || len(info.Reviews) != 1 || info.Reviews[0].Maintainer.String() != v["M2"] ||
				info.Reviews[0].For == nil || info.Reviews[0].For.String() != v["M"] || !info.Reviews[0].Counts {
				return fmt.Errorf("on %s it is not there yet:\n%s", r, o)
			}
		}
		return nil
	})
	// The release certificate, checked offline from the bundle, holds; at
	// a moment after its expiry it does not, and says why.
	o, e, code := cliCode(t, bin, "", "certificate", "verify", "--car", filepath.Join(home, "release.car"), "--json")
	var cert api.CertificateInfo
	if err := json.Unmarshal([]byte(o), &cert); code != 0 || err != nil || !cert.Holds || cert.CID != v["R"] || cert.Release == nil ||
		len(cert.Release.Contributions) != 1 || cert.Release.Contributions[0].CID != v["P"] {
		t.Fatalf("certificate verify: exit %d, %v\n%s%s", code, err, o, e)
	}
	o, _, code = cliCode(t, bin, "", "certificate", "verify", "--car", filepath.Join(home, "release.car"), "--at", "2031-01-01")
	if code == 0 || !strings.Contains(o, "DOES NOT HOLD") || !strings.Contains(o, "expired") {
		t.Fatalf("certificate verify after its expiry: exit %d\n%s", code, o)
	}
	// The co-signed update is on the chain of the members' commons.
	var info api.ManifestInfo
	if err := json.Unmarshal([]byte(cli(t, bin, repo("member-a"), "manifest", "show", "--commons", v["ID2"], "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Manifest == nil || info.Manifest.Version != 1 || len(info.Manifest.Maintainers) != 2 {
		t.Fatalf("the co-signed update is not the head of %s: %+v", v["ID2"], info)
	}
	if _, err := os.Stat(filepath.Join(home, "commons.car")); err != nil {
		t.Fatalf("the entrepreneur's export: %v", err)
	}
}

// stopUnder stops, with SIGTERM and then SIGKILL, every process whose
// command line names a path under dir: the daemons a walkthrough detached.
func stopUnder(t *testing.T, dir string) {
	t.Helper()
	find := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && strings.Contains(string(raw), dir+"/") {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	for _, pid := range find() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	for range 100 {
		if len(find()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range find() {
		t.Logf("process %d did not stop on SIGTERM: killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
