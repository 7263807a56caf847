package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/store/memstore"
	"github.com/commons-p2p/commons/testnet/gen"
)

// An import killed (SIGKILL) at random moments leaves a repo that opens
// every time, whose feed log has no gaps, and whose state root is that of
// a fresh import of the records it holds; importing again completes it.
// It runs at a size CI affords (20,000 records, 6 kills); the seed is
// logged, and COMMONS_CRASH_SEED replays it. COMMONS_CRASH_RECORDS and
// COMMONS_CRASH_ROUNDS run it larger, for example 1,000,000 records and 20
// kills.
func TestKillDuringImport(t *testing.T) {
	bin := buildBinary(t)
	records, rounds := envInt(t, "COMMONS_CRASH_RECORDS", 20_000), envInt(t, "COMMONS_CRASH_ROUNDS", 6)
	g, err := gen.Generate(gen.Options{Records: records, Authors: 100, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	car := filepath.Join(dir, "commons.car")
	data, err := g.CAR()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(car, data, 0o644); err != nil {
		t.Fatal(err)
	}
	importer := func(repo string) *exec.Cmd { return exec.Command(bin, "--repo", repo, "import", "--join", car) }
	initRepo := func(repo string) {
		if out, err := exec.Command(bin, "--repo", repo, "init").CombinedOutput(); err != nil {
			t.Fatalf("init: %v\n%s", err, out)
		}
	}
	// How long a whole import takes with the same binary, to kill the
	// others part way.
	scratch := filepath.Join(dir, "scratch")
	initRepo(scratch)
	start := time.Now()
	if out, err := importer(scratch).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	whole := time.Since(start)

	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("COMMONS_CRASH_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (rerun: COMMONS_CRASH_SEED=%d); a whole import takes %v", seed, seed, whole)
	rng := rand.New(rand.NewPCG(seed, 1))
	repo, fresh, held, partway := "", 0, 0, 0
	for round := range rounds {
		if held == len(g.Records) || repo == "" {
			// A repo complete (or none yet): start again on a fresh one.
			fresh++
			repo = filepath.Join(dir, fmt.Sprint("repo", fresh))
			initRepo(repo)
			held = 0
		}
		cmd := importer(repo)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(whole))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		n := checkCrashedRepo(t, repo, g.ID.String())
		t.Logf("round %d: the repo holds %d records after the kill", round, n)
		if n < held {
			t.Fatalf("round %d: %d records, fewer than the %d held before", round, n, held)
		}
		if n > held && n < len(g.Records) {
			partway++
		}
		held = n
	}
	if partway == 0 {
		t.Errorf("no kill landed part way through an import (a whole import takes %v): the check checked nothing", whole)
	}
	if out, err := importer(repo).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if n := checkCrashedRepo(t, repo, g.ID.String()); n != len(g.Records) {
		t.Fatalf("after a full import: %d records, want %d", n, len(g.Records))
	}
}

// envInt returns the positive integer in the environment variable name, or
// def if it is unset.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// checkCrashedRepo opens a repo's store as a node does and checks it: the
// feed log's cursors run 1..n without a gap, and the node it starts
// derives the state root a fresh import of its records gives. It returns
// n (0 if the commons is not there yet).
func checkCrashedRepo(t *testing.T, repo, commons string) int {
	t.Helper()
	ctx := context.Background()
	st, err := badgerstore.Open(filepath.Join(repo, "store"), nil)
	if err != nil {
		t.Fatalf("the killed repo does not open: %v", err)
	}
	n, err := node.New(node.Config{Store: st, Key: testKeyFor(t), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatalf("a node does not start on the killed repo: %v", err)
	}
	defer n.Close()
	status, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status.Commons) == 0 {
		return 0
	}
	got := status.Commons[0]
	var after uint64
	for {
		page, err := st.Feed(ctx, mustCID(t, commons), after, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			if s.Cursor != after+1 {
				t.Fatalf("the feed log jumps from cursor %d to %d", after, s.Cursor)
			}
			after = s.Cursor
		}
	}
	if int(after) != got.Records {
		t.Fatalf("the feed log holds %d records, the node %d", after, got.Records)
	}
	var exported bytes.Buffer
	if err := n.Export(ctx, commons, &exported); err != nil {
		t.Fatal(err)
	}
	fresh, err := node.New(node.Config{Store: memstore.New(), Key: testKeyFor(t), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	exportedLen := exported.Len()
	rep, err := fresh.Import(ctx, &exported, true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fresh.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Records == 0 && len(want.Commons) == 0 {
		// Killed after the import joined the commons and before it stored
		// a record: an export holds no record, and importing it joins
		// nothing.
		return 0
	}
	if len(want.Commons) != 1 {
		t.Fatalf("a fresh import of the killed repo's export (%d bytes) replicates %d commons; its report: %+v", exportedLen, len(want.Commons), rep)
	}
	if w := want.Commons[0]; w.StateRoot != got.StateRoot || w.Records != got.Records {
		t.Fatalf("the killed repo: %d records, root %s; a fresh import of them: %d, root %s", got.Records, got.StateRoot, w.Records, w.StateRoot)
	}
	return got.Records
}

func mustCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testKeyFor returns a fresh node identity.
func testKeyFor(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
