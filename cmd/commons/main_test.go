package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/node/repo"
)

// cliResult is one run of the CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, ctx context.Context, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

// ok runs the CLI on repo and fails the test unless it exits 0.
func mustRun(t *testing.T, repo string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, t.Context(), append([]string{"--repo", repo}, args...)...)
	if r.code != 0 {
		t.Fatalf("commons %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

var (
	peerIDLine = regexp.MustCompile(`^12D3KooW[1-9A-HJ-NP-Za-km-z]+\n$`)
	cidLine    = regexp.MustCompile(`^bafy[a-z2-7]+\n$`)
)

// cidOut checks that stdout is one CID alone and returns it.
func cidOut(t *testing.T, r cliResult) string {
	t.Helper()
	if !cidLine.MatchString(r.stdout) {
		t.Fatalf("stdout = %q, want a CID alone", r.stdout)
	}
	return strings.TrimSpace(r.stdout)
}

// initRepo creates a repo and returns its directory and peer ID.
func initTestRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	r := mustRun(t, dir, "init")
	if !peerIDLine.MatchString(r.stdout) {
		t.Fatalf("init stdout = %q, want a peer ID alone", r.stdout)
	}
	id := strings.TrimSpace(r.stdout)
	if _, err := peer.Decode(id); err != nil {
		t.Fatalf("init printed %q: %v", id, err)
	}
	return dir, id
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func TestInit(t *testing.T) {
	dir, _ := initTestRepo(t)
	r := runCLI(t, t.Context(), "--repo", dir, "init")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "already exists") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("second init = %+v, want exit 1 and one line naming the existing repo", r)
	}
	key, err := os.ReadFile(filepath.Join(dir, "key"))
	if err != nil || len(key) == 0 {
		t.Errorf("key after second init: %v", err)
	}
}

// offlineRepo is a repo with a commons, two reviewed contributions and one
// pending, built through the CLI without a daemon.
type offlineRepo struct {
	dir, id                     string
	commons                     string
	accepted, rejected, pending string
	review                      string // of accepted
}

func newOfflineRepo(t *testing.T) offlineRepo {
	t.Helper()
	o := offlineRepo{}
	o.dir, o.id = initTestRepo(t)
	o.commons = cidOut(t, mustRun(t, o.dir, "manifest", "create", "--name", "CLI commons", "--licence", "MIT", "--maintainer", o.id))
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.accepted = cidOut(t, mustRun(t, o.dir, "contribute", "--commons", o.commons, "--title", "first", "--file", file, "--kind", "text"))
	o.rejected = cidOut(t, mustRun(t, o.dir, "contribute", "--commons", o.commons, "--title", "second"))
	o.pending = cidOut(t, mustRun(t, o.dir, "contribute", "--commons", o.commons, "--title", "third"))
	o.review = cidOut(t, mustRun(t, o.dir, "review", "accept", o.accepted, "--rationale", "fine"))
	cidOut(t, mustRun(t, o.dir, "review", "reject", o.rejected))
	return o
}

func TestOffline(t *testing.T) {
	o := newOfflineRepo(t)

	t.Run("show --json", func(t *testing.T) {
		r := decodeJSON[api.RecordInfo](t, mustRun(t, o.dir, "show", "--json", o.accepted).stdout)
		if r.CID != o.accepted || r.Type != "contribution" || r.Status != "accepted" || r.Contribution.Title != "first" ||
			len(r.Contribution.Payload) != 1 || r.Contribution.Payload[0].Name != "notes.txt" ||
			len(r.Reviews) != 1 || r.Reviews[0].Decision != "accept" || r.Reviews[0].Rationale != "fine" {
			t.Errorf("show = %+v", r)
		}
	})
	t.Run("show text", func(t *testing.T) {
		out := mustRun(t, o.dir, "show", o.rejected).stdout
		for _, want := range []string{"type:     contribution", "title:    second", "status:   rejected", "review:   reject by " + o.id} {
			if !strings.Contains(out, want) {
				t.Errorf("show output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("feed --json", func(t *testing.T) {
		out := mustRun(t, o.dir, "feed", "--json").stdout
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 6 {
			t.Fatalf("feed has %d lines, want 6:\n%s", len(lines), out)
		}
		wantType := []string{"manifest", "contribution", "contribution", "contribution", "review", "review"}
		wantStatus := []string{"", "accepted", "rejected", "pending", "", ""}
		for i, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %d %q: %v", i+1, l, err)
			}
			for _, k := range []string{"cursor", "cid", "type", "author", "commons", "time"} {
				if _, ok := m[k]; !ok {
					t.Errorf("line %d lacks %q: %s", i+1, k, l)
				}
			}
			if m["cursor"] != float64(i+1) || m["type"] != wantType[i] || m["author"] != o.id || m["commons"] != o.commons {
				t.Errorf("line %d = %s", i+1, l)
			}
			if wantType[i] == "contribution" && (m["title"] == nil || m["status"] != wantStatus[i]) {
				t.Errorf("contribution line %d = %s, want title and status %q", i+1, l, wantStatus[i])
			}
		}
	})
	t.Run("feed filters", func(t *testing.T) {
		tests := []struct {
			args []string
			want []string
		}{
			{[]string{"--status", "accepted"}, []string{o.accepted}},
			{[]string{"--status", "pending", "--commons", o.commons}, []string{o.pending}},
			{[]string{"--since", "3", "--status", "pending"}, []string{o.pending}},
			{[]string{"--since", "6"}, nil},
		}
		for _, tt := range tests {
			t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
				var got []string
				for l := range strings.Lines(mustRun(t, o.dir, append([]string{"feed", "--json"}, tt.args...)...).stdout) {
					got = append(got, decodeJSON[api.FeedItem](t, l).CID)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("feed %v = %v, want %v", tt.args, got, tt.want)
				}
			})
		}
	})
	t.Run("feed past the end", func(t *testing.T) {
		// Cursor 6 is the end: nothing after it (feed filters). Past it,
		// no record has the cursor: an error says where the end is.
		for _, args := range [][]string{{"feed", "--since", "7"}, {"feed", "--since", "7", "--commons", o.commons}} {
			r := runCLI(t, t.Context(), append([]string{"--repo", o.dir}, args...)...)
			want := "cursor 7 is past the end of the feed of commons " + o.commons + ", which ends at cursor 6\n"
			if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("commons %v = %+v, want exit 1 and %q", args, r, want)
			}
		}
	})
	t.Run("review of a record not a contribution", func(t *testing.T) {
		for _, c := range []struct{ cid, typ string }{{o.commons, "manifest"}, {o.review, "review"}} {
			r := runCLI(t, t.Context(), "--repo", o.dir, "review", "accept", c.cid)
			want := c.cid + " is a " + c.typ + ", not a contribution"
			if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("review accept of a %s = %+v, want exit 1 and %q", c.typ, r, want)
			}
		}
	})
	t.Run("status --json", func(t *testing.T) {
		st := statusJSON(t, o.dir)
		if st.PeerID != o.id || st.Peers != 0 || st.Online || len(st.Commons) != 1 {
			t.Fatalf("status = %+v", st)
		}
		c := st.Commons[0]
		if c.ID != o.commons || c.Name != "CLI commons" || c.Records != 6 || c.Pending != 1 || c.Accepted != 1 ||
			c.Rejected != 1 || c.StateRoot == "" || c.ManifestHead != o.commons || c.Forks == nil || len(c.Forks) != 0 {
			t.Errorf("commons status = %+v", c)
		}
	})
	t.Run("manifest show and update", func(t *testing.T) {
		head := cidOut(t, mustRun(t, o.dir, "manifest", "update", "--commons", o.commons, "--name", "Renamed", "--revoke", newPeerID(t)))
		info := decodeJSON[api.ManifestInfo](t, mustRun(t, o.dir, "manifest", "show", "--json", "--commons", o.commons).stdout)
		if info.Head != head || info.Manifest.Name != "Renamed" || len(info.Revoked) != 1 || len(info.History) != 2 {
			t.Errorf("manifest = %+v", info)
		}
	})
}

func statusJSON(t *testing.T, dir string) api.StatusInfo {
	t.Helper()
	return decodeJSON[api.StatusInfo](t, mustRun(t, dir, "status", "--json").stdout)
}

func newPeerID(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "other")
	return strings.TrimSpace(mustRun(t, dir, "init").stdout)
}

func TestExportImport(t *testing.T) {
	o := newOfflineRepo(t)
	car := filepath.Join(t.TempDir(), "commons.car")
	r := mustRun(t, o.dir, "export", "--commons", o.commons, "--out", car)
	if r.stdout != "" || !strings.Contains(r.stderr, "exported") {
		t.Errorf("export = %+v", r)
	}
	want := statusJSON(t, o.dir).Commons[0]

	t.Run("clean", func(t *testing.T) {
		dir, _ := initTestRepo(t)
		r := mustRun(t, dir, "import", "--join", car)
		if !strings.Contains(r.stderr, "imported 6 records (0 already present, 0 rejected)") {
			t.Errorf("import stderr = %q", r.stderr)
		}
		st := statusJSON(t, dir)
		if len(st.Commons) != 1 || st.Commons[0].StateRoot != want.StateRoot || st.Commons[0].Records != 6 {
			t.Errorf("imported status = %+v, want state root %s", st.Commons, want.StateRoot)
		}
		rep := decodeJSON[api.ImportReport](t, mustRun(t, dir, "import", "--join", "--json", car).stdout)
		if rep.Duplicates != 6 || rep.Imported != 0 {
			t.Errorf("re-import report = %+v", rep)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.car")
		tamperCAR(t, car, bad, o.pending, "third", "THIRD")
		dir, _ := initTestRepo(t)
		r := runCLI(t, t.Context(), "--repo", dir, "import", "--join", bad)
		if r.code != 1 || !strings.Contains(r.stderr, "rejected "+o.pending+": bytes do not match the CID") ||
			!strings.Contains(r.stderr, "imported 5 records (0 already present, 1 rejected)") {
			t.Errorf("tampered import = %+v", r)
		}
		if st := statusJSON(t, dir); st.Commons[0].Records != 5 {
			t.Errorf("records after tampered import = %d, want 5", st.Commons[0].Records)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		data, err := os.ReadFile(car)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(t.TempDir(), "cut.car")
		if err := os.WriteFile(cut, data[:len(data)-20], 0o644); err != nil {
			t.Fatal(err)
		}
		dir, _ := initTestRepo(t)
		r := runCLI(t, t.Context(), "--repo", dir, "import", "--join", cut)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "CAR file is damaged after 5 records") ||
			!strings.Contains(r.stderr, "imported 5 records") {
			t.Errorf("truncated import = %+v, want one line saying where the file is damaged and what was imported before", r)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "garbage.car")
		if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir, _ := initTestRepo(t)
		for _, args := range [][]string{{"import", bad}, {"import", "--json", bad}} {
			r := runCLI(t, t.Context(), append([]string{"--repo", dir}, args...)...)
			if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "commons: ") || strings.Count(r.stderr, "\n") != 1 ||
				!strings.Contains(r.stderr, "not a CAR file") || strings.Contains(r.stderr, "imported") {
				t.Errorf("commons %v = %+v, want exit 1 and one line saying it is not a CAR file", args, r)
			}
		}
	})
	t.Run("unknown commons", func(t *testing.T) {
		// A failed export writes nothing under the name, and leaves a
		// file already there as it was.
		dir := t.TempDir()
		out := filepath.Join(dir, "old.car")
		if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		unknown := "bafyreigyootrod62vdola6jjzbq5kzzm53rxa23elu6hy5fwzqqilaff3q"
		for _, out := range []string{out, filepath.Join(dir, "new.car")} {
			r := runCLI(t, t.Context(), "--repo", o.dir, "export", "--commons", unknown, "--out", out)
			if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, unknown+" is not replicated here") {
				t.Errorf("export of an unknown commons = %+v, want exit 1 and one line naming it", r)
			}
		}
		if b, err := os.ReadFile(out); err != nil || string(b) != "old" {
			t.Errorf("the file already there holds %q (%v), want it as it was", b, err)
		}
		if files, _ := os.ReadDir(dir); len(files) != 1 {
			t.Errorf("the directory holds %v, want only the file that was there", files)
		}
	})
	t.Run("no progress line off a terminal", func(t *testing.T) {
		// The tests' stderr is a buffer, as a pipe or a file would be:
		// no line rewritten with \r goes there.
		dir, _ := initTestRepo(t)
		for _, args := range [][]string{{"import", "--join", car}, {"import", "--join", "--quiet", car}, {"export", "--commons", o.commons, "--out", filepath.Join(t.TempDir(), "x.car")}} {
			r := runCLI(t, t.Context(), append([]string{"--repo", dir}, args...)...)
			if r.code != 0 || strings.ContainsAny(r.stderr, "\r\x1b") {
				t.Errorf("commons %v = %+v, want exit 0 and no progress line", args, r)
			}
		}
	})
}

// tamper copies the CAR at src to dst with old replaced by new in the bytes
// of record c, keeping its CID.
func tamperCAR(t *testing.T, src, dst, c, old, new string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br, err := carv2.NewBlockReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := storage.NewWritable(out, br.Roots, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for {
		b, err := br.Next()
		if err != nil {
			break
		}
		raw := b.RawData()
		if b.Cid().String() == c {
			raw = bytes.Replace(raw, []byte(old), []byte(new), 1)
			found = true
		}
		if err := w.Put(t.Context(), b.Cid().KeyString(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("record %s not in %s", c, src)
	}
}

// TestStaleAPIFile: an api file left by a daemon that died must not stop
// the commands, which then act on the repo directly.
func TestStaleAPIFile(t *testing.T) {
	dir, id := initTestRepo(t)
	r, err := repo.OpenRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteAPI("127.0.0.1:1", "stale"); err != nil {
		t.Fatal(err)
	}
	if st := statusJSON(t, dir); st.Online || st.PeerID != id {
		t.Errorf("status with a stale api file = %+v", st)
	}
	cidOut(t, mustRun(t, dir, "manifest", "create", "--name", "x", "--licence", "MIT"))
}

func TestBadInvocations(t *testing.T) {
	dir, _ := initTestRepo(t)
	someCID := "bafyreigyootrod62vdola6jjzbq5kzzm53rxa23elu6hy5fwzqqilaff3q"
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"status", "--bogus"}, "unknown flag: --bogus"},
		{"quorum not a number", []string{"manifest", "create", "--name", "x", "--licence", "MIT", "--quorum", "abc"}, `invalid argument "abc" for "--quorum"`},
		{"negative quorum", []string{"manifest", "create", "--name", "x", "--licence", "MIT", "--quorum", "-1"}, `invalid argument "-1" for "--quorum"`},
		{"manifest without name", []string{"manifest", "create", "--licence", "MIT"}, "commons: --name is required\n"},
		{"bad maintainer", []string{"manifest", "create", "--name", "x", "--licence", "MIT", "--maintainer", "notapeer"}, `--maintainer "notapeer": not a peer ID`},
		{"bad bootstrap", []string{"manifest", "create", "--name", "x", "--licence", "MIT", "--bootstrap", "/ip4/1.2.3.4/tcp/1"}, "--bootstrap"},
		{"update without commons", []string{"manifest", "update", "--name", "x"}, "--commons is required"},
		{"revoke on create", []string{"manifest", "create", "--name", "x", "--licence", "MIT", "--revoke", "x"}, "unknown flag: --revoke"},
		{"show without commons", []string{"manifest", "show"}, "--commons is required"},
		{"contribute without title", []string{"contribute", "--commons", someCID}, "commons: --title is required\n"},
		{"contribute without commons", []string{"contribute", "--title", "t"}, "commons: --commons is required\n"},
		{"contribute without either", []string{"contribute"}, "commons: --commons and --title are required\n"},
		{"contribute missing file", []string{"contribute", "--commons", someCID, "--title", "t", "--file", "/nonexistent/x"}, "--file"},
		{"contribute bad sponsor", []string{"contribute", "--commons", someCID, "--title", "t", "--sponsor", "bob"}, `--sponsor "bob": not a peer ID`},
		{"contribute unknown commons", []string{"contribute", "--commons", someCID, "--title", "t"}, "not replicated here"},
		{"review bad decision", []string{"review", "maybe", someCID}, `review decision "maybe": want accept, reject or retract`},
		{"review missing CID", []string{"review", "accept"}, "accepts 2 arg(s), received 1"},
		{"review bad CID", []string{"review", "accept", "notacid"}, `"notacid" is not a CID`},
		{"show bad CID", []string{"show", "notacid"}, `"notacid" is not a CID` + "\n"},
		{"show absent", []string{"show", someCID}, "no record"},
		{"feed bad status", []string{"feed", "--status", "done"}, `--status "done"`},
		{"feed bad since", []string{"feed", "--since", "-1"}, `invalid argument "-1" for "--since"`},
		{"feed follow offline", []string{"feed", "--follow"}, "--follow needs a running daemon"},
		{"join bad CID", []string{"join", "notacid"}, "is not a CID"},
		{"export without out", []string{"export", "--commons", someCID}, "commons: --out is required\n"},
		{"import missing file", []string{"import", "/nonexistent/x.car"}, "no such file"},
		{"bad log level", []string{"--log-level", "loud", "status"}, `--log-level "loud"`},
		{"no repo", []string{"--repo", "/nonexistent/repo", "status"}, "no repo at /nonexistent/repo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, t.Context(), append([]string{"--repo", dir}, tt.args...)...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "commons: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want one line containing %q", r.stderr, tt.wantErr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		cmd   []string
		flags []string
	}{
		{nil, []string{"--repo", "--log-level", "daemon", "manifest", "contribute", "review", "feed", "import"}},
		{[]string{"init"}, []string{"--repo"}},
		{[]string{"daemon"}, []string{"--listen", "--bootstrap", "--api"}},
		{[]string{"id"}, []string{"--json"}},
		{[]string{"manifest"}, []string{"create", "update", "show"}},
		{[]string{"manifest", "create"}, []string{"--name", "--licence", "--maintainer", "--quorum", "--reject-quorum", "--association", "--threshold", "--bootstrap", "--max-blob-bytes"}},
		{[]string{"manifest", "update"}, []string{"--commons", "--name", "--maintainer", "--quorum", "--revoke"}},
		{[]string{"manifest", "show"}, []string{"--commons", "--json"}},
		{[]string{"join"}, []string{"COMMONS-ID"}},
		{[]string{"contribute"}, []string{"--commons", "--title", "--summary", "--kind", "--file", "--revises", "--sponsor", "--paid"}},
		{[]string{"review"}, []string{"accept|reject|retract", "--rationale"}},
		{[]string{"show"}, []string{"--json"}},
		{[]string{"feed"}, []string{"--commons", "--status", "--since", "--follow", "--json"}},
		{[]string{"status"}, []string{"--json"}},
		{[]string{"peers"}, []string{"--json"}},
		{[]string{"export"}, []string{"--commons", "--out"}},
		{[]string{"import"}, []string{"--json", "FILE.car"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"commons"}, tt.cmd...), " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), append(tt.cmd, "--help")...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			for _, f := range tt.flags {
				if !strings.Contains(r.stdout, f) {
					t.Errorf("help lacks %q:\n%s", f, r.stdout)
				}
			}
		})
	}
}

// syncBuffer is a goroutine-safe buffer that signals when a line containing
// mark has been written.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	mark   string
	marked chan struct{}
}

func newSyncBuffer(mark string) *syncBuffer {
	return &syncBuffer{mark: mark, marked: make(chan struct{})}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.mark != "" && strings.Contains(b.buf.String(), b.mark) {
		close(b.marked)
		b.mark = ""
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDaemon(t *testing.T) {
	dir, id := initTestRepo(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr := newSyncBuffer("API on http://"), newSyncBuffer("")
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--repo", dir, "--log-level", "error", "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"}, stdout, stderr)
	}()
	select {
	case <-stdout.marked:
	case code := <-exit:
		t.Fatalf("daemon exited %d early\nstdout: %s\nstderr: %s", code, stdout, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not serve its API\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	apiFile := filepath.Join(dir, "api")
	addr, err := os.ReadFile(apiFile)
	if err != nil {
		t.Fatalf("api file: %v", err)
	}
	if !strings.Contains(stdout.String(), "API on http://"+strings.TrimSpace(string(addr))) ||
		!strings.Contains(stdout.String(), "listening on /ip4/127.0.0.1/tcp/") {
		t.Errorf("daemon stdout = %q", stdout)
	}

	// Each command below would fail on the badger lock if it opened the
	// repo directly, so success means it went through the HTTP API.
	st := statusJSON(t, dir)
	if !st.Online || st.PeerID != id {
		t.Errorf("status through the daemon = %+v, want online", st)
	}
	commons := cidOut(t, mustRun(t, dir, "manifest", "create", "--name", "Daemon commons", "--licence", "MIT", "--maintainer", id))
	c := cidOut(t, mustRun(t, dir, "contribute", "--commons", commons, "--title", "via the API"))
	cidOut(t, mustRun(t, dir, "review", "accept", c))
	if r := decodeJSON[api.RecordInfo](t, mustRun(t, dir, "show", "--json", c).stdout); r.Status != "accepted" {
		t.Errorf("status = %q, want accepted", r.Status)
	}
	var lines int
	for l := range strings.Lines(mustRun(t, dir, "feed", "--json", "--commons", commons).stdout) {
		decodeJSON[api.FeedItem](t, l)
		lines++
	}
	if lines != 3 {
		t.Errorf("feed has %d lines, want 3", lines)
	}
	idOut := mustRun(t, dir, "id").stdout
	if !strings.Contains(idOut, "address:    /ip4/127.0.0.1/tcp/") {
		t.Errorf("id through the daemon = %q", idOut)
	}
	// feed --follow needs the daemon; it streams the records and the
	// contribution's status change (3.1), and stops cleanly when ctx ends.
	fctx, fcancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer fcancel()
	if r := runCLI(t, fctx, "--repo", dir, "feed", "--follow", "--json"); r.code != 0 || strings.Count(r.stdout, "\n") != 4 ||
		decodeJSON[feed.Event](t, strings.Split(r.stdout, "\n")[3]).ID != "3.1" {
		t.Errorf("feed --follow = %+v", r)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("daemon exited %d\nstderr: %s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	if _, err := os.Stat(apiFile); !os.IsNotExist(err) {
		t.Errorf("api file after shutdown: %v", err)
	}
	// The repo is usable offline again, with what the daemon stored.
	if st := statusJSON(t, dir); st.Online || len(st.Commons) != 1 || st.Commons[0].Accepted != 1 {
		t.Errorf("status after shutdown = %+v", st)
	}
}
