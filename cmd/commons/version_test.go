package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("commons %v: exit %d, stderr %q", args, r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "commons ") || !strings.HasPrefix(lines[1], "commit  ") ||
				lines[2] != "go      "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
				t.Errorf("commons %v printed:\n%s", args, r.stdout)
			}
		})
	}
}

func TestVersionText(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want []string
	}{
		{"no build info", nil, []string{"commons devel\n", "commit  unknown\n", "go      " + runtime.Version()}},
		{"go run", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}},
			[]string{"commons devel\n", "commit  unknown\n", "go      go1.99 "}},
		{"go build in a modified checkout", &debug.BuildInfo{GoVersion: "go1.99",
			Main:     debug.Module{Version: "v0.0.0-20261202082000-4158454abcde+dirty"},
			Settings: vcs("vcs", "git", "vcs.revision", "4158454abcdef", "vcs.time", "2026-12-02T08:20:00Z", "vcs.modified", "true")},
			[]string{"commons v0.0.0-20261202082000-4158454abcde+dirty\n", "commit  4158454abcdef (2026-12-02T08:20:00Z), with uncommitted changes\n"}},
		{"a release", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: vcs("vcs.revision", "abc", "vcs.modified", "false")},
			[]string{"commons v1.2.3\n", "commit  abc, clean\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := versionText(tt.bi)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("versionText lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
