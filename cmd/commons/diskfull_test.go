package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFullDisk imports into a repo on a 400 MiB tmpfs more records than fit
// above the default disk_margin of 256 MiB (which leaves room for badger's
// largest writes: a memtable flush, a compaction out of level 0): the
// import stops with one clear error naming the free space, the repo keeps what was stored and answers reads, and
// once the filesystem grows the same import completes. Before, badger died
// with SIGBUS inside its memory-mapped writes. It needs root, to mount the
// tmpfs; under CI=true, not having it fails the test.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs real processes")
	}
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=400m"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true, but a tmpfs cannot be mounted (CI runs as root): %v", err)
		}
		t.Skipf("mounting a tmpfs needs root: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
	bin := buildBinary(t)
	car := filepath.Join(t.TempDir(), "g.car")
	cli(t, bin, filepath.Join(t.TempDir(), "gen"), "testnet", "gen", "--records", "150000", "--authors", "50", "--no-payloads", "--out", car)
	repo := filepath.Join(disk, "repo")
	cli(t, bin, repo, "init")
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, append([]string{"--repo", repo}, args...)...)
		cmd.Env = os.Environ() // the default disk_margin
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ee.Sys().(syscall.WaitStatus).Signaled() {
				t.Fatalf("commons %v died of %v:\n%s", args, ee.Sys().(syscall.WaitStatus).Signal(), errOut.String())
			}
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}

	_, errOut, code := run("import", "--join", car)
	if code != 1 || !strings.Contains(errOut, "disk full") || !strings.Contains(errOut, "below the 256 MiB") || strings.Contains(errOut, "panic") {
		t.Fatalf("import onto a full disk: exit %d\n%s", code, errOut)
	}
	t.Logf("stopped with: %s", lastLine(errOut))
	out, errOut, code := run("status")
	if code != 0 || !strings.Contains(out, "records:") {
		t.Fatalf("status after the disk filled: exit %d\n%s%s", code, out, errOut)
	}

	if err := syscall.Mount("tmpfs", disk, "tmpfs", syscall.MS_REMOUNT, "size=1g"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run("import", "--join", car)
	if code != 0 || !strings.Contains(errOut, "imported") {
		t.Fatalf("import once the disk has room: exit %d\n%s", code, errOut)
	}
	out, _, _ = run("status")
	if !strings.Contains(out, "records:       150000") {
		t.Fatalf("status after the import completed:\n%s", out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
