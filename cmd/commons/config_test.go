package main

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/node/repo"
)

func TestConfigCommands(t *testing.T) {
	t.Setenv("COMMONS_MDNS", "") // TestMain's; empty counts as unset
	dir, _ := initTestRepo(t)
	mustRun(t, dir, "config", "set", "mdns", "false")
	mustRun(t, dir, "config", "set", "bootstrap", "/ip4/7.0.0.2/tcp/4040/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu")

	if got := mustRun(t, dir, "config", "show", "mdns").stdout; got != "false\n" {
		t.Errorf("config show mdns = %q, want false", got)
	}
	table := mustRun(t, dir, "config", "show", "--profile", "bootstrap").stdout
	for _, want := range []string{"mdns           false  ", "dht            server", "relay_service  true"} {
		if !strings.Contains(table, want) {
			t.Errorf("config show --profile bootstrap lacks %q:\n%s", want, table)
		}
	}
	list := decodeJSON[[]repo.ConfigSetting](t, mustRun(t, dir, "config", "show", "--json").stdout)
	sources := map[string]string{}
	for _, s := range list {
		sources[s.Key] = s.Source
	}
	if sources["mdns"] != "config" || sources["dht"] != "default" || sources["bootstrap"] != "config" {
		t.Errorf("sources = %v", sources)
	}
	t.Setenv("COMMONS_DHT", "off")
	if got := mustRun(t, dir, "config", "show", "dht").stdout; got != "off\n" {
		t.Errorf("with COMMONS_DHT=off, config show dht = %q", got)
	}

	for _, bad := range []struct{ args, want []string }{
		{[]string{"config", "set", "dht", "sometimes"}, []string{"dht", "sometimes", "auto, client, server, off"}},
		{[]string{"config", "set", "no_such_key", "1"}, []string{`unknown key "no_such_key"`}},
		{[]string{"config", "set", "bootstrap", "/ip4/1.2.3.4/tcp/1"}, []string{"bootstrap", "/p2p/"}},
		{[]string{"config", "set", "mdns"}, []string{"accepts 2 arg"}},
		{[]string{"config", "set", "conn_low", "-3"}, []string{"conn_low: -3: want at least 1"}},
		{[]string{"config", "show", "nope"}, []string{`unknown key "nope"`}},
	} {
		r := runCLI(t, t.Context(), append([]string{"--repo", dir}, bad.args...)...)
		if r.code == 0 {
			t.Errorf("commons %v succeeded", bad.args)
			continue
		}
		for _, w := range bad.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("commons %v: stderr %q lacks %q", bad.args, r.stderr, w)
			}
		}
	}
	t.Setenv("COMMONS_MDNS", "perhaps")
	r := runCLI(t, t.Context(), "--repo", dir, "config", "show")
	if r.code == 0 || !strings.Contains(r.stderr, "COMMONS_MDNS") {
		t.Errorf("a bad COMMONS_MDNS: exit %d, stderr %q; want an error naming it", r.code, r.stderr)
	}
	t.Setenv("COMMONS_MDNS", "") // empty counts as unset
	mustRun(t, dir, "config", "unset", "mdns")
	if got := mustRun(t, dir, "config", "show", "mdns").stdout; got != "true\n" {
		t.Errorf("after unset, config show mdns = %q, want the default true", got)
	}
}

// TestMemoryLimit: a command that opens the repo sets the Go runtime's soft
// memory limit to the memory_limit setting, unless $GOMEMLIMIT is set, and
// the collector's growth percent to gcPercent, unless $GOGC is set.
func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if v, ok := os.LookupEnv("GOGC"); ok {
		os.Unsetenv("GOGC")
		defer os.Setenv("GOGC", v)
	}
	dir, _ := initTestRepo(t)
	mustRun(t, dir, "status")
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("after status, the collector's percent is %d, want %d", got, gcPercent)
	}
	t.Setenv("GOGC", "100")
	mustRun(t, dir, "status")
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with $GOGC set, status changed the collector's percent to %d", got)
	}
	mustRun(t, dir, "config", "set", "memory_limit", "300")
	mustRun(t, dir, "status")
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("after status with memory_limit 300, the limit is %d B, want %d", got, 300<<20)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	mustRun(t, dir, "status")
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with $GOMEMLIMIT set, status changed the limit to %d B", got)
	}
	if r := runCLI(t, t.Context(), "--repo", dir, "config", "set", "memory_limit", "-1"); r.code == 0 || !strings.Contains(r.stderr, "memory_limit") {
		t.Errorf("config set memory_limit -1: exit %d, %q", r.code, r.stderr)
	}
}
