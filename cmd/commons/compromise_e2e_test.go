package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// TestStolenKeyEndToEnd runs, with the real binary and four daemons on
// loopback, the attacks of a thief who holds association key A2: H1 (a)
// founds the commons with association {a, x}, threshold 1 (the CLI warns);
// b, c and x are maintainers; the association revokes x (co-signed by x, as
// before the theft) and removes c. The thief, on its own daemon x, tries
// to update the manifest, forks from the genesis (refused as inert, then
// forced), and reviews with its revoked key; a fork with version 1000
// arrives by CAR import on c; c, removed, reviews new work. Every node ends
// with the honest head, statuses and one state root.
func TestStolenKeyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs real processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	names := []string{"a", "b", "c", "x"}
	repos := map[string]string{}
	ids := map[string]string{}
	for _, n := range names {
		repos[n] = filepath.Join(dir, n)
		ids[n] = strings.TrimSpace(cli(t, bin, repos[n], "init"))
	}
	a := startDaemon(t, bin, repos["a"])
	daemons := []*daemon{a}
	for _, n := range names[1:] {
		daemons = append(daemons, startDaemon(t, bin, repos[n], a.addr))
	}
	defer func() {
		for _, d := range daemons {
			d.stop(t)
		}
	}()
	// until runs a command until it succeeds (while records are still on
	// their way) and returns its stdout.
	until := func(who string, args ...string) string {
		t.Helper()
		var out string
		eventually(t, who+": commons "+strings.Join(args, " "), func() error {
			o, errOut, code := cliCode(t, bin, repos[who], args...)
			if code != 0 {
				return fmt.Errorf("exit %d: %s", code, errOut)
			}
			out = strings.TrimSpace(o)
			return nil
		})
		return out
	}
	run := func(who string, args ...string) (string, string, int) {
		t.Helper()
		out, errOut, code := cliCode(t, bin, repos[who], args...)
		t.Logf("%s$ commons %s\n  exit %d\n  stdout: %s  stderr: %s", who, strings.Join(args, " "), code, out, errOut)
		return strings.TrimSpace(out), errOut, code
	}

	commons, errOut, code := run("a", "manifest", "create", "--name", "Stolen keys", "--licence", "CC-BY-SA-4.0",
		"--association", ids["a"], "--association", ids["x"], "--threshold", "1",
		"--maintainer", ids["b"], "--maintainer", ids["c"], "--maintainer", ids["x"], "--quorum", "1")
	if code != 0 || !strings.Contains(errOut, "warning: any one of the 2 association keys can act alone") || !strings.Contains(errOut, "even after it is revoked") {
		t.Fatalf("manifest create: exit %d, stderr %q; want the one-key warning", code, errOut)
	}
	for _, n := range names[1:] {
		cli(t, bin, repos[n], "join", commons)
	}
	c0 := until("c", "contribute", "--commons", commons, "--title", "before the theft")
	until("b", "review", "accept", c0)

	// v1: revokes x and removes c, co-signed by x before the theft is known.
	draft := filepath.Join(dir, "v1.cbor")
	cli(t, bin, repos["a"], "manifest", "update", "--commons", commons, "--association", ids["a"], "--maintainer", ids["b"], "--revoke", ids["x"], "--draft", draft)
	until("x", "manifest", "cosign", draft)
	v1, _, code := run("a", "manifest", "publish", draft)
	if code != 0 {
		t.Fatal("publish v1")
	}
	eventually(t, "v1 everywhere", func() error { return headEverywhere(t, bin, repos, v1) })
	c2 := until("a", "contribute", "--commons", commons, "--title", "after the removal")
	until("c", "show", c2)

	// The thief, with its own daemon and CLI.
	refusals := []struct {
		who  string
		args []string
		want string
	}{
		{"x", []string{"manifest", "update", "--commons", commons, "--name", "mine"}, "is not an association key of manifest"},
		{"x", []string{"manifest", "update", "--commons", commons, "--on", commons, "--association", ids["x"], "--maintainer", ids["x"], "--revoke", ids["a"]}, "signers: short of a predecessor's threshold"},
		{"x", []string{"review", "reject", c0}, "author: key is revoked"},
		{"c", []string{"review", "reject", c2}, "is not a maintainer in manifest"},
	}
	for _, r := range refusals {
		out, errOut, code := run(r.who, r.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, r.want) {
			t.Errorf("%s: commons %s: exit %d, stdout %q, stderr %q; want exit 1 naming %q", r.who, strings.Join(r.args, " "), code, out, errOut, r.want)
		}
	}
	// Forced, the fork is published, said to be inert, and spreads.
	fork, errOut, code := run("x", "manifest", "update", "--commons", commons, "--on", commons, "--association", ids["x"], "--maintainer", ids["x"], "--revoke", ids["a"], "--force")
	if code != 0 || !strings.Contains(errOut, "holds it inert") {
		t.Fatalf("forced fork: exit %d, stderr %q", code, errOut)
	}
	// Removal is not retroactive: c still reviews work made before it.
	if _, _, code := run("c", "review", "accept", c0); code != 0 {
		t.Errorf("removed maintainer reviewing earlier work: exit %d", code)
	}

	// A fork with version 1000, by CAR import on c.
	rx, err := repo.OpenRepo(repos["x"])
	if err != nil {
		t.Fatal(err)
	}
	lk, err := rx.Key()
	if err != nil {
		t.Fatal(err)
	}
	key, err := protocol.PrivateKeyFromLibp2p(lk)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cid.Decode(commons)
	thief := key.Public()
	rec := &protocol.Record{Commons: g, Time: protocol.HLCFromMillis(time.Now().UnixMilli(), 0), Body: &protocol.Manifest{
		Name: "version 1000", Licence: "MIT", Association: []protocol.PublicKey{thief}, Threshold: 1,
		Maintainers: []protocol.PublicKey{thief}, Quorum: 1, RejectQuorum: 1,
		Prev: []protocol.Link{{Cid: g}}, Version: 1000,
	}}
	if err := protocol.Sign(rec, key); err != nil {
		t.Fatal(err)
	}
	blk, err := protocol.NewBlock(rec)
	if err != nil {
		t.Fatal(err)
	}
	car, err := sim.CAR(blk.Raw)
	if err != nil {
		t.Fatal(err)
	}
	carFile := filepath.Join(dir, "forged.car")
	if err := os.WriteFile(carFile, car, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run("c", "import", carFile); code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	if _, errOut, code := run("c", "sync"); code != 0 { // rather than wait for the periodic sync
		t.Fatalf("sync: exit %d: %s", code, errOut)
	}

	eventually(t, "every node converged on the honest state", func() error {
		root := ""
		for _, n := range names {
			st := status(t, bin, repos[n])
			if len(st.Commons) != 1 {
				return fmt.Errorf("%s replicates %d commons", n, len(st.Commons))
			}
			cs := st.Commons[0]
			if cs.ManifestHead != v1 || len(cs.Contested) != 0 || cs.Accepted != 1 || cs.Records != 8 {
				return fmt.Errorf("%s: head %s (want %s), contested %v, %d accepted, %d records", n, cs.ManifestHead, v1, cs.Contested, cs.Accepted, cs.Records)
			}
			if root != "" && cs.StateRoot != root {
				return fmt.Errorf("%s: root %s, another node %s", n, cs.StateRoot, root)
			}
			root = cs.StateRoot
		}
		return nil
	})
	for _, n := range names {
		st := status(t, bin, repos[n]).Commons[0]
		var info api.RecordInfo
		for _, f := range []string{fork, blk.CID.String()} {
			if err := json.Unmarshal([]byte(cli(t, bin, repos[n], "show", f, "--json")), &info); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(info.Inert, "signers: short of a predecessor's threshold") {
				t.Errorf("%s: fork %s: inert %q", n, f, info.Inert)
			}
		}
		t.Logf("%s: head %s, %d accepted, %d pending, %d inert, contested %v, root %s", n, st.ManifestHead, st.Accepted, st.Pending, st.Inert, st.Contested, st.StateRoot)
	}
	show, _, _ := run("b", "manifest", "show", "--commons", commons)
	if strings.Contains(show, "CONTESTED") || !strings.Contains(show, "revoked:       "+ids["x"]) {
		t.Errorf("manifest show:\n%s", show)
	}
}

// headEverywhere checks every repo's manifest head.
func headEverywhere(t *testing.T, bin string, repos map[string]string, head string) error {
	for n, r := range repos {
		st := status(t, bin, r)
		if len(st.Commons) != 1 || st.Commons[0].ManifestHead != head {
			return fmt.Errorf("%s: %+v", n, st.Commons)
		}
	}
	return nil
}
