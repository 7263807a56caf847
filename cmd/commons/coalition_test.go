package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/node/api"
)

// The coalition's commands, as a user types them: a paid contribution
// shows as not confirmed until its sponsor countersigns it, a second
// countersignature is refused, and a profile is published and shown.
func TestCoalitionCommands(t *testing.T) {
	dir, self := initTestRepo(t)
	commons := cidOut(t, mustRun(t, dir, "manifest", "create", "--name", "x", "--licence", "MIT"))
	if out := mustRun(t, dir, "manifest", "show", "--commons", commons).stdout; !strings.Contains(out, "coalition:     profiles and sponsorships") {
		t.Errorf("manifest show does not say the commons carries the coalition's records:\n%s", out)
	}
	// The contributor, on a repo of its own, is paid by this one.
	other, _ := initTestRepo(t)
	car := filepath.Join(t.TempDir(), "c.car")
	mustRun(t, dir, "export", "--commons", commons, "--out", car)
	mustRun(t, other, "import", "--join", car)
	work := cidOut(t, mustRun(t, other, "contribute", "--commons", commons, "--title", "paid", "--sponsor", self))
	mustRun(t, other, "export", "--commons", commons, "--out", car)
	mustRun(t, dir, "import", car)
	if out := mustRun(t, dir, "show", work).stdout; !strings.Contains(out, "not confirmed: the sponsor has not countersigned it; commons sponsor "+work) {
		t.Errorf("show before the sponsor signs:\n%s", out)
	}
	sp := cidOut(t, mustRun(t, dir, "sponsor", work, "--note", "invoice 7"))
	if out := mustRun(t, dir, "show", work).stdout; !strings.Contains(out, "(confirmed: the sponsor countersigned it in "+sp+")") {
		t.Errorf("show after the sponsor signs:\n%s", out)
	}
	if out := mustRun(t, dir, "show", sp).stdout; !strings.Contains(out, "sponsors: "+work) || !strings.Contains(out, "note:     invoice 7") {
		t.Errorf("show of the sponsorship:\n%s", out)
	}
	if r := runCLI(t, t.Context(), "--repo", dir, "sponsor", work); r.code == 0 || !strings.Contains(r.stderr, "confirmed already, by sponsorship "+sp) {
		t.Errorf("a second sponsorship: exit %d, stderr %q", r.code, r.stderr)
	}

	mustRun(t, dir, "profile", "set", "--commons", commons, "--name", "Acme", "--about", "a co-op",
		"--use", "service=Acme Cloud=https://cloud.acme.example/path?a=b", "--use", "research=Notes")
	out := mustRun(t, dir, "profile", "show", "--commons", commons).stdout
	for _, want := range []string{"key:      " + self, "name:     Acme", "about:    a co-op",
		"use:      service: Acme Cloud <https://cloud.acme.example/path?a=b>", "use:      research: Notes"} {
		if !strings.Contains(out, want) {
			t.Errorf("profile show lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--use", "service"}, "give KIND=NAME"},
		{[]string{"--use", "Service=x"}, "body.uses[0].kind"},
		{[]string{"--use", "service=x=ftp://x"}, "body.uses[0].url"},
	} {
		r := runCLI(t, t.Context(), append([]string{"--repo", dir, "profile", "set", "--commons", commons, "--name", "Acme"}, bad.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("profile set %v: exit %d, stderr %q; want it refused naming %q", bad.args, r.code, r.stderr, bad.want)
		}
	}
	if r := runCLI(t, t.Context(), "--repo", dir, "profile", "show", "--commons", commons, "12D3KooWBFPaJptG8J4AzBPX361SuncdkCt7oL7uBK5oq5qGT1Zq"); r.code == 0 || !strings.Contains(r.stderr, "has no profile") {
		t.Errorf("profile show of a key without one: exit %d, stderr %q", r.code, r.stderr)
	}

	out = mustRun(t, dir, "reciprocity", "--commons", commons).stdout
	for _, want := range []string{"period:   the commons' whole life", "\n" + self + "  Acme\n", "uses:        service: Acme Cloud",
		"sponsored:   1 paid contribution signed by both sides, 0 accepted (0% of the accepted)", work + "  pending  (sponsorship " + sp + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("reciprocity lacks %q:\n%s", want, out)
		}
	}
	pledge := cidOut(t, mustRun(t, dir, "pledge", "--commons", commons, "--kind", "hours", "--amount", "40", "--from", "2026-01-01", "--until", "2026-06-30"))
	if r := runCLI(t, t.Context(), "--repo", dir, "acknowledge", pledge); r.code == 0 || !strings.Contains(r.stderr, "give the amount") {
		t.Errorf("acknowledge without --amount: exit %d, stderr %q", r.code, r.stderr)
	}
	ackCID := cidOut(t, mustRun(t, dir, "acknowledge", pledge, "--amount", "15"))
	if out := mustRun(t, dir, "reciprocity", "--commons", commons).stdout; !strings.Contains(out, "pledged:     40 hours to the association, 2026-01-01 to 2026-06-30: 15 acknowledged") ||
		!strings.Contains(out, pledge+"  (acknowledged in "+ackCID+")") {
		t.Errorf("reciprocity with a pledge:\n%s", out)
	}
	if r := runCLI(t, t.Context(), "--repo", dir, "pledge", "--commons", commons, "--kind", "money", "--amount", "5", "--currency", "eur", "--from", "2026-01-01", "--until", "2026-06-30"); r.code == 0 || !strings.Contains(r.stderr, "body.currency") {
		t.Errorf("a pledge in eur: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := mustRun(t, dir, "reciprocity"); r.stdout != mustRun(t, dir, "reciprocity", "--commons", commons).stdout {
		t.Errorf("reciprocity without --commons, on a node of one commons:\n%s", r.stdout)
	}
	cidOut(t, mustRun(t, dir, "manifest", "create", "--name", "second", "--licence", "MIT"))
	if r := runCLI(t, t.Context(), "--repo", dir, "reciprocity"); r.code == 0 || !strings.Contains(r.stderr, "choose one with --commons") || !strings.Contains(r.stderr, commons+" (x)") {
		t.Errorf("reciprocity without --commons, on a node of two: exit %d, stderr %q", r.code, r.stderr)
	}
	rj := decodeJSON[api.ReciprocityInfo](t, mustRun(t, dir, "reciprocity", "--commons", commons, "--json", "--since", "2000-01-01").stdout)
	if rj.Since == nil || len(rj.Participants) != 1 || rj.Participants[0].Sponsored[0].Contribution != work {
		t.Errorf("reciprocity --json: %+v", rj)
	}
	if r := runCLI(t, t.Context(), "--repo", dir, "reciprocity", "--commons", commons, "--since", "last week"); r.code == 0 || !strings.Contains(r.stderr, "give a date such as") {
		t.Errorf("reciprocity --since last week: exit %d, stderr %q", r.code, r.stderr)
	}
}
