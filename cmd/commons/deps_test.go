package main

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// testingImporters are the packages outside this module allowed to import
// testing into the binary, each with the reason. Importing testing
// registers no flag (testing.Init does, in test binaries only) and runs no
// test code; the packages below are the ones that carry the rest of the
// machinery.
var testingImporters = map[string]string{
	"github.com/libp2p/go-libp2p-kad-dht": "dht_options.go declares two unexported test-only options that take a *testing.T (v0.42.2); node/ runs the DHT",
}

// forbidden reports whether the binary must not link package p: test
// machinery, or package testnet, which registers the -testnet.seed flag.
func forbidden(p string) bool {
	return strings.HasPrefix(p, "testing/") ||
		strings.HasPrefix(p, "github.com/stretchr/testify") ||
		p == "github.com/libp2p/go-libp2p/x/simlibp2p" ||
		p == "github.com/commons-p2p/commons/testnet"
}

// The commons binary links no test machinery (issue 12): not
// testing/synctest, testing/cryptotest, go-libp2p's x/simlibp2p, testify
// nor package testnet, and testing itself only through the dependencies
// listed in testingImporters. Its help shows no -testnet.seed flag.
func TestBinaryLinksNoTestMachinery(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not on PATH: %v", err)
		}
		t.Skipf("go tool not on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderrOf(err))
	}
	importers := map[string][]string{} // package → the packages of the binary that import it
	deps := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		deps++
		for _, imp := range f[1:] {
			importers[imp] = append(importers[imp], f[0])
		}
	}
	if deps < 50 || len(importers["github.com/commons-p2p/commons/node"]) == 0 {
		t.Fatalf("go list -deps listed %d packages, none importing node: not the commons binary's dependencies\n%s", deps, out)
	}
	for _, p := range slices.Sorted(maps.Keys(importers)) {
		if by := importers[p]; forbidden(p) {
			t.Errorf("the binary links %s, imported by %s", p, strings.Join(by, ", "))
		}
	}
	for _, by := range importers["testing"] {
		if _, ok := testingImporters[by]; !ok {
			t.Errorf("the binary links testing through %s", by)
		}
	}
	for p := range testingImporters {
		if !slices.Contains(importers["testing"], p) {
			t.Errorf("%s no longer imports testing into the binary: remove it from testingImporters", p)
		}
	}

	bin := buildBinary(t)
	// What the binary links of package testing (through testingImporters)
	// is its package initialisation alone: no function of it survives.
	syms, err := exec.Command(goBin, "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v\n%s", err, stderrOf(err))
	}
	for line := range strings.Lines(string(syms)) {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == "T" && strings.HasPrefix(f[2], "testing.") && f[2] != "testing.init" {
			t.Errorf("the binary links the code of %s", f[2])
		}
	}
	for _, args := range [][]string{{"--help"}, {"testnet", "--help"}, {"testnet", "bench", "--help"}, {"testnet", "gen", "--help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("commons %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(string(out), "--help") {
			t.Fatalf("commons %s printed no flags:\n%s", strings.Join(args, " "), out)
		}
		if s := string(out); strings.Contains(s, "testnet.seed") || strings.Contains(s, "--test.") {
			t.Errorf("commons %s shows test flags:\n%s", strings.Join(args, " "), s)
		}
	}
	if out, err := exec.Command(bin, "--testnet.seed", "1", "--help").CombinedOutput(); err == nil {
		t.Errorf("commons --testnet.seed 1 succeeded:\n%s", out)
	}
}

// stderrOf returns the standard error an exec.ExitError captured.
func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}
