package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	carv2 "github.com/ipld/go-car/v2"
)

// repo verify reads a whole store and says so; on a repo whose daemon
// runs it refuses, naming the daemon.
func TestRepoVerify(t *testing.T) {
	dir, _ := initTestRepo(t)
	mustRun(t, dir, "manifest", "create", "--name", "X", "--licence", "MIT")
	r := mustRun(t, dir, "repo", "verify")
	if !strings.Contains(r.stdout, "records read whole: 1") || !strings.Contains(r.stderr, "the store is whole") {
		t.Fatalf("repo verify of a whole repo = %+v", r)
	}
	startInProcess(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	r = runCLI(t, t.Context(), "--repo", dir, "repo", "verify")
	if r.code != 1 || !strings.Contains(r.stderr, "a daemon already runs") {
		t.Fatalf("repo verify while the daemon runs = %+v", r)
	}
}

// A byte flipped inside a record, as a bad disk would. The record lies in
// one of badger's value log files, not the newest (each start begins a
// new one): repo verify names the record and exits 1. repo repair
// without a file writes the store again (the old store is kept aside) but
// cannot mend the record and says so; with a file exported before, it
// writes the record again, and the store is whole, with the same state
// once the derived state is computed again. A file that is not a CAR, or
// not there, is refused. (Damage in the newest file, which badger's Open
// would cut short, is badgerstore's TestValueLogDamage.)
func TestRepoRepair(t *testing.T) {
	o := newOfflineRepo(t)
	car := filepath.Join(t.TempDir(), "peer.car")
	mustRun(t, o.dir, "export", "--commons", o.commons, "--out", car)
	want := statusJSON(t, o.dir).Commons[0]
	victim, victimCID := lastRecord(t, car)
	logs, _ := filepath.Glob(filepath.Join(o.dir, "store", "*.vlog"))
	flipped := ""
	for _, f := range logs {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(raw, victim); i >= 0 {
			raw[i+len(victim)/2] ^= 0x04
			if err := os.WriteFile(f, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			flipped = filepath.Base(f)
			break
		}
	}
	if flipped == "" {
		t.Fatalf("record %s is in no value log file of %v", victimCID, logs)
	}

	r := runCLI(t, t.Context(), "--repo", o.dir, "repo", "verify")
	if r.code != 1 || !strings.Contains(r.stdout, "damaged: record "+victimCID) || !strings.Contains(r.stderr, "repo repair --from") {
		t.Fatalf("repo verify of the damaged repo = %+v; want the record named, and repair advised", r)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"repo", "repair", "--from", filepath.Join(t.TempDir(), "absent.car")}, "no such file"},
		{[]string{"repo", "repair", "--from", filepath.Join(o.dir, "config.json")}, "not a CAR file"},
	} {
		r := runCLI(t, t.Context(), append([]string{"--repo", o.dir}, bad.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("%v = %+v; want it refused saying %q", bad.args, r, bad.want)
		}
	}
	r = runCLI(t, t.Context(), "--repo", o.dir, "repo", "repair")
	if r.code != 1 || !strings.Contains(r.stdout, "written again: the old store is at") ||
		!strings.Contains(r.stdout, "still damaged: record "+victimCID) || !strings.Contains(r.stderr, "repair --from") {
		t.Fatalf("repo repair without a file = %+v; want the store written again, the record still damaged", r)
	}
	asides, _ := filepath.Glob(filepath.Join(o.dir, "store.damaged-*", flipped))
	if len(asides) != 1 {
		t.Errorf("the old store, with %s, is not kept aside: %v", flipped, asides)
	}
	r = mustRun(t, o.dir, "repo", "repair", "--from", car)
	if !strings.Contains(r.stdout, "repaired:              1") || !strings.Contains(r.stdout, "repaired: "+victimCID) || !strings.Contains(r.stderr, "the store is whole") {
		t.Fatalf("repo repair --from = %+v; want the record repaired", r)
	}
	mustRun(t, o.dir, "repo", "verify")
	if got := statusJSON(t, o.dir).Commons[0]; got.StateRoot != want.StateRoot || got.Records != want.Records || got.Accepted != want.Accepted || got.Pending != want.Pending || got.Rejected != want.Rejected {
		t.Errorf("after the repair: %+v; want %+v", got, want)
	}
	// Again: nothing is damaged, nothing is written.
	r = mustRun(t, o.dir, "repo", "repair", "--from", car)
	if !strings.Contains(r.stdout, "repaired:              0") || strings.Contains(r.stdout, "written again") {
		t.Errorf("a second repair = %+v; want nothing done", r)
	}
}

// A byte flipped inside the last record of the newest value log file,
// which badger's Open would cut there: repo verify refuses to open the
// store, naming the file and advising repair; repo repair mends the file
// (kept as it was in the old store), writes the store again and names the
// record still damaged; repair --from writes it again, and the repo holds
// the commons as the peer does.
func TestRepoRepairDamagedLog(t *testing.T) {
	o := newOfflineRepo(t)
	car := filepath.Join(t.TempDir(), "peer.car")
	mustRun(t, o.dir, "export", "--commons", o.commons, "--out", car)
	want := statusJSON(t, o.dir).Commons[0]
	victim, victimCID := lastRecord(t, car)
	dir, _ := initTestRepo(t)
	mustRun(t, dir, "import", "--join", car) // the last process to open the store
	logs, _ := filepath.Glob(filepath.Join(dir, "store", "*.vlog"))
	slices.Sort(logs) // numbered with leading zeros
	newest := logs[len(logs)-1]
	raw, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, victim)
	if i < 0 {
		t.Fatalf("record %s is not in the newest value log file %s", victimCID, newest)
	}
	raw[i+len(victim)/2] ^= 0x04
	if err := os.WriteFile(newest, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	flipped := filepath.Base(newest)

	r := runCLI(t, t.Context(), "--repo", dir, "repo", "verify")
	if r.code != 1 || !strings.Contains(r.stderr, flipped+" is damaged") || !strings.Contains(r.stderr, "repo repair") {
		t.Fatalf("repo verify = %+v; want %s named damaged, and repair advised", r, flipped)
	}
	r = runCLI(t, t.Context(), "--repo", dir, "repo", "repair")
	if r.code != 1 || !strings.Contains(r.stderr, "mending it") || !strings.Contains(r.stdout, "written again: the old store is at") ||
		!strings.Contains(r.stdout, "still damaged: record "+victimCID) || !strings.Contains(r.stderr, "repair --from") {
		t.Fatalf("repo repair = %+v; want the file mended, the store written again, the record still damaged", r)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "store.damaged-*", flipped+".damaged")); len(kept) != 1 {
		t.Errorf("the damaged file is not kept as it was in the old store: %v", kept)
	}
	r = mustRun(t, dir, "repo", "repair", "--from", car)
	if !strings.Contains(r.stdout, "repaired: "+victimCID) || !strings.Contains(r.stderr, "the store is whole") {
		t.Fatalf("repo repair --from = %+v; want the record repaired", r)
	}
	if got := statusJSON(t, dir).Commons[0]; got.StateRoot != want.StateRoot || got.Records != want.Records {
		t.Errorf("after the repair: %+v; want %+v", got, want)
	}
}

// lastRecord returns the bytes and CID of the last record of a CAR file
// (in an export, a contribution or a review).
func lastRecord(t *testing.T, car string) ([]byte, string) {
	t.Helper()
	data, err := os.ReadFile(car)
	if err != nil {
		t.Fatal(err)
	}
	br, err := carv2.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	var c string
	for {
		blk, err := br.Next()
		if err != nil {
			break
		}
		raw, c = blk.RawData(), blk.Cid().String()
	}
	if raw == nil {
		t.Fatalf("%s holds no record", car)
	}
	return raw, c
}

// repo compact gives back the space of a purged commons and keeps the
// state of the repo as it was; leave --purge points to it; on a repo whose
// daemon runs it refuses, naming the daemon.
func TestRepoCompact(t *testing.T) {
	o := newOfflineRepo(t)
	want := statusJSON(t, o.dir).Commons[0]
	other := cidOut(t, mustRun(t, o.dir, "manifest", "create", "--name", "Left", "--licence", "MIT"))
	for i := range 50 {
		mustRun(t, o.dir, "contribute", "--commons", other, "--title", strings.Repeat("long title ", 20)+string(rune('a'+i%26)))
	}
	r := mustRun(t, o.dir, "leave", other, "--purge")
	if !strings.Contains(r.stderr, "repo compact") {
		t.Errorf("leave --purge = %+v; want repo compact named", r)
	}
	r = mustRun(t, o.dir, "repo", "compact", "--json")
	sizes := decodeJSON[struct {
		Before        int64 `json:"bytes_before"`
		After         int64 `json:"bytes_after"`
		Disowned      int   `json:"disowned_blobs_deleted"`
		DisownedBytes int64 `json:"disowned_bytes_deleted"`
		Records       int   `json:"disowned_records_dropped"`
		RecordBytes   int64 `json:"disowned_record_bytes_dropped"`
	}](t, r.stdout)
	if sizes.After <= 0 || sizes.After >= sizes.Before || sizes.Disowned != 0 {
		t.Errorf("repo compact = %+v; want less on disk after", sizes)
	}
	if got := statusJSON(t, o.dir).Commons; len(got) != 1 || got[0].StateRoot != want.StateRoot || got[0].Records != want.Records {
		t.Errorf("after repo compact: %+v; want %+v", got, want)
	}
	if r := mustRun(t, o.dir, "repo", "verify"); !strings.Contains(r.stderr, "the store is whole") {
		t.Errorf("repo verify after repo compact = %+v", r)
	}
	if r := mustRun(t, o.dir, "repo", "compact", "--disowned"); !strings.Contains(r.stdout, "deleted: 0 payloads") || !strings.Contains(r.stdout, "given back") {
		t.Errorf("repo compact --disowned with no key banned = %+v", r)
	}
	startInProcess(t, o.dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	r = runCLI(t, t.Context(), "--repo", o.dir, "repo", "compact")
	if r.code != 1 || !strings.Contains(r.stderr, "a daemon already runs") {
		t.Fatalf("repo compact while the daemon runs = %+v", r)
	}
}

// repo compact --disowned drops the bytes of a banned key's contributions
// and reviews: the commons' state root and record count stay, repo verify
// counts them dropped, show says so, export leaves them out, and importing
// them again stores nothing.
func TestRepoCompactDropsDisownedRecords(t *testing.T) {
	o := newOfflineRepo(t)
	car := filepath.Join(t.TempDir(), "commons.car")
	mustRun(t, o.dir, "export", "--commons", o.commons, "--out", car)
	flooder, flooderID := initTestRepo(t)
	mustRun(t, flooder, "import", "--join", car)
	var junk []string
	for i := range 3 {
		junk = append(junk, cidOut(t, mustRun(t, flooder, "contribute", "--commons", o.commons, "--title", fmt.Sprintf("junk %d", i))))
	}
	theirs := filepath.Join(t.TempDir(), "flooder.car")
	mustRun(t, flooder, "export", "--commons", o.commons, "--out", theirs)
	mustRun(t, o.dir, "import", theirs)
	mustRun(t, o.dir, "manifest", "update", "--commons", o.commons, "--ban", flooderID)
	want := statusJSON(t, o.dir).Commons[0]

	r := mustRun(t, o.dir, "repo", "compact", "--disowned")
	if !strings.Contains(r.stdout, "dropped: the bytes of 3 records of banned keys") {
		t.Errorf("repo compact --disowned = %+v; want 3 records dropped", r)
	}
	if got := statusJSON(t, o.dir).Commons[0]; got.StateRoot != want.StateRoot || got.Records != want.Records {
		t.Errorf("after the drop: %+v; want the state as before, %+v", got, want)
	}
	if r := mustRun(t, o.dir, "repo", "verify"); !strings.Contains(r.stdout, "records dropped:    3") || !strings.Contains(r.stderr, "the store is whole") {
		t.Errorf("repo verify after the drop = %+v", r)
	}
	r = runCLI(t, t.Context(), "--repo", o.dir, "show", junk[0])
	if r.code != 1 || !strings.Contains(r.stderr, "dropped its bytes") {
		t.Errorf("show of a dropped record = %+v; want exit 1, saying its bytes were dropped", r)
	}
	mustRun(t, o.dir, "show", o.accepted)
	out := filepath.Join(t.TempDir(), "after.car")
	mustRun(t, o.dir, "export", "--commons", o.commons, "--out", out)
	fresh, _ := initTestRepo(t)
	if r := mustRun(t, fresh, "import", "--join", out); !strings.Contains(r.stderr, fmt.Sprintf("imported %d records", want.Records-3)) {
		t.Errorf("import of an export taken after the drop = %+v; want %d records, the dropped ones left out", r, want.Records-3)
	}
	mustRun(t, o.dir, "import", theirs)
	r = runCLI(t, t.Context(), "--repo", o.dir, "show", junk[1])
	if r.code != 1 || !strings.Contains(r.stderr, "dropped its bytes") {
		t.Errorf("show of a dropped record imported again = %+v; want it still dropped", r)
	}
	if r := mustRun(t, o.dir, "repo", "compact", "--disowned"); !strings.Contains(r.stdout, "dropped: the bytes of 0 records") {
		t.Errorf("repo compact --disowned again = %+v; want nothing more dropped", r)
	}
	// A peer's export written back by repair: the records are whole again.
	if r := mustRun(t, o.dir, "repo", "repair", "--from", theirs); !strings.Contains(r.stdout, "repaired:              3") {
		t.Errorf("repo repair --from the flooder's export = %+v; want the 3 records written back", r)
	}
	mustRun(t, o.dir, "show", junk[2])
	if got := statusJSON(t, o.dir).Commons[0]; got.StateRoot != want.StateRoot || got.Records != want.Records {
		t.Errorf("after the repair: %+v; want %+v", got, want)
	}
}
