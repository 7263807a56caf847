package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/spf13/cobra"
)

// daemonStartWait is how long a command waits for a daemon that holds the
// repo but does not answer yet: one starting (daemon & then a command at
// once), or one opening a large repo.
var daemonStartWait = 30 * time.Second

// awaitDaemon waits until the daemon that holds r's store answers on its
// API, and returns a client for it; or says why not.
func (a *app) awaitDaemon(ctx context.Context, r *repo.Repo, locked error) (api.API, error) {
	deadline := time.Now().Add(daemonStartWait)
	for {
		if addr, token, ok := r.API(); ok {
			c := api.NewClient(addr, token)
			if err := c.Ping(ctx); err == nil {
				return c, nil
			}
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("another process holds the repo %s, and no daemon answered on its API within %s (a daemon still starting, or another command running?): %w", r.Dir, daemonStartWait, locked)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// startingFile marks a repo whose daemon is starting: it holds the
// daemon's process ID from before the daemon opens the store until its API
// answers, so that a command run meanwhile (daemon & then a command at
// once) waits for the daemon instead of taking the store from under it.
const startingFile = "daemon.starting"

// markStarting writes the starting mark of the repo at dir, and returns
// what removes it.
func markStarting(dir string) func() {
	p := filepath.Join(dir, startingFile)
	if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return func() {}
	}
	return func() { _ = os.Remove(p) }
}

// daemonStarting reports whether the repo at dir has a daemon starting:
// its mark names a process that is alive.
func daemonStarting(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, startingFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// openStoreWaiting opens r's store for the daemon. Another process holding
// it (a command that ran as the daemon started) is waited for, up to
// daemonStartWait.
func openStoreWaiting(ctx context.Context, r *repo.Repo, log *slog.Logger) (store.Store, error) {
	deadline := time.Now().Add(daemonStartWait)
	said := false
	for {
		st, err := r.OpenStore(log)
		if err == nil {
			for dir, size := range r.Beside() {
				log.Warn("a copy of the store left beside it by repo compact or repo repair takes disk space: delete it once the repo works", "dir", dir, "MiB", size>>20)
			}
		}
		if !errors.Is(err, badgerstore.ErrLocked) || !time.Now().Before(deadline) {
			return st, err
		}
		if err := daemonRuns(ctx, r); err != nil {
			return nil, err
		}
		if !said {
			said = true
			log.Info("another commons process holds the repo: waiting for it to finish", "repo", r.Dir)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// detachedLog is the file in the repo that a detached daemon writes to.
const detachedLog = "daemon.log"

// detachDaemon runs this command again without --detach, in a session of
// its own, writing to the repo's daemon.log, and returns once it answers
// on its API, or fails with the end of its log if it stopped first.
func (a *app) detachDaemon(cmd *cobra.Command) error {
	r, err := a.daemonRepo(cmd.Context())
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	var args []string
	for _, arg := range os.Args[1:] {
		if arg != "--detach" && arg != "-d" && !strings.HasPrefix(arg, "--detach=") {
			args = append(args, arg)
		}
	}
	logPath := filepath.Join(r.Dir, detachedLog)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, io.SeekEnd)
	child := exec.Command(exe, args...)
	child.Env = append(os.Environ(), "COMMONS_REPO="+a.repoDir) // the repo, however it was given
	child.Stdout, child.Stderr = logf, logf
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = child.Wait(); close(exited) }()
	deadline := time.Now().Add(daemonStartWait)
	for {
		if addr, token, ok := r.API(); ok && api.NewClient(addr, token).Ping(cmd.Context()) == nil {
			fmt.Fprintf(a.stderr, "daemon running in the background, process %d, API on http://%s; its output: %s; stop it: kill %d\n",
				child.Process.Pid, addr, logPath, child.Process.Pid)
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the daemon stopped as it started:\n%s", logTail(logPath, start))
		case <-time.After(100 * time.Millisecond):
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon (process %d) did not answer within %s; its output: %s", child.Process.Pid, daemonStartWait, logPath)
		}
	}
}

// logTail returns what was written to the file at path from offset on,
// at most its last 4 KiB.
func logTail(path string, from int64) string {
	raw, err := os.ReadFile(path)
	if err != nil || int64(len(raw)) < from {
		return "(no output)"
	}
	raw = raw[from:]
	if len(raw) > 4096 {
		raw = raw[len(raw)-4096:]
	}
	return strings.TrimSpace(string(raw))
}
