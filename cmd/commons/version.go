package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build: module version, source commit, Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(a.stdout, versionText(readBuildInfo()))
			return nil
		},
	}
}

// readBuildInfo returns what the binary records of its build; nil when it
// records nothing.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionText describes a build, one fact a line: the module version
// ("devel" for a build from a source tree the go command gave no
// version), the source commit, its time and whether the tree held
// uncommitted changes ("unknown" when the build recorded no version
// control information, as under go run or with -buildvcs=false), and the
// Go version and platform.
func versionText(bi *debug.BuildInfo) string {
	version, goVersion := "devel", runtime.Version()
	settings := map[string]string{}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
	}
	commit := "unknown"
	if rev := settings["vcs.revision"]; rev != "" {
		commit = rev
		if t := settings["vcs.time"]; t != "" {
			commit += " (" + t + ")"
		}
		switch settings["vcs.modified"] {
		case "true":
			commit += ", with uncommitted changes"
		case "false":
			commit += ", clean"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "commons %s\n", version)
	fmt.Fprintf(&b, "commit  %s\n", commit)
	fmt.Fprintf(&b, "go      %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
