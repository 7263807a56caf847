package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the repo's settings (config.json)",
		Long: `Show or change the repo's settings, kept in config.json in the repo.

Each setting comes from one of five sources, each winning over those before
it: its default, the profile's default (profile bootstrap), the config file,
the environment variable COMMONS_<KEY> (for example COMMONS_MDNS=false), and
the daemon's flags (--listen, --announce, --api, --bootstrap, --profile,
--log-level). A running daemon reads its settings when it starts: restart it
after a change.

Keys:
` + configKeysHelp(),
	}
	cmd.AddCommand(a.configShowCmd(), a.configSetCmd(), a.configUnsetCmd())
	return cmd
}

func configKeysHelp() string {
	var b strings.Builder
	for _, k := range repo.ConfigKeys() {
		fmt.Fprintf(&b, "  %-14s %s: %s\n", k.Name, k.Kind, k.Doc)
	}
	return b.String()
}

func (a *app) configShowCmd() *cobra.Command {
	var asJSON bool
	var profile string
	cmd := &cobra.Command{
		Use:   "show [KEY]",
		Short: "Print the effective settings and where each comes from (default, profile, config, env, flag)",
		Long: `Print the effective settings and where each comes from: default, profile,
config (the file), env (COMMONS_<KEY>) or flag (the daemon's).

While a daemon runs on the repo, these are the settings it runs with, its
flags included, as it started. Otherwise, and with --profile, they are the
settings the repo gives now: what a daemon started now without flags would
run with.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.openRepo()
			if err != nil {
				return err
			}
			list, running, err := a.shownSettings(cmd.Context(), r, profile)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				list = slices.DeleteFunc(list, func(s repo.ConfigSetting) bool { return s.Key != args[0] })
				if len(list) == 0 {
					return fmt.Errorf("unknown key %q (commons config --help lists them)", args[0])
				}
			}
			if running {
				fmt.Fprintln(a.stderr, "the running daemon's settings, as it started")
			}
			if asJSON {
				return a.printJSON(list)
			}
			if len(args) == 1 {
				fmt.Fprintln(a.stdout, valueText(list[0].Value))
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KEY\tVALUE\tFROM")
			for _, s := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\n", s.Key, valueText(s.Value), s.Source)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, with each key's documentation")
	cmd.Flags().StringVar(&profile, "profile", "", "show the settings the repo gives under this profile (default or bootstrap), not the running daemon's")
	return cmd
}

// shownSettings are the settings config show prints: those of the daemon
// running on the repo (running is then true), or, when none answers or
// profile is given, those the repo gives now.
func (a *app) shownSettings(ctx context.Context, r *repo.Repo, profile string) (list []repo.ConfigSetting, running bool, err error) {
	if profile == "" {
		if addr, token, ok := r.API(); ok && api.NewClient(addr, token).Ping(ctx) == nil {
			list, ok, err := r.DaemonSettings()
			if err != nil || ok {
				return list, ok, err
			}
		}
	}
	_, list, err = r.Settings(os.LookupEnv, profile)
	return list, false, err
}

// valueText prints lists comma-separated, as config set takes them.
func valueText(v any) string {
	if l, ok := v.([]string); ok {
		if len(l) == 0 {
			return "(none)"
		}
		return strings.Join(l, ",")
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

func (a *app) configSetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set a key in the repo's config file (lists: comma-separated or a JSON array; empty clears)",
		Example: `  commons config set profile bootstrap
  commons config set announce /ip4/203.0.113.7/tcp/4040,/ip4/203.0.113.7/udp/4040/quic-v1
  commons config set mdns false
  commons config set sync_interval 1m`,
		Args: cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := a.openRepo()
			if err != nil {
				return err
			}
			if err := r.SetConfig(args[0], args[1]); err != nil {
				return err
			}
			if _, _, ok := r.API(); ok {
				fmt.Fprintln(a.stderr, "saved; restart the daemon for it to take effect")
			}
			return nil
		},
	}
	// A value that starts with '-' (conn_low -3) is a value to check, not
	// a flag: flags go before KEY.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func (a *app) configUnsetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unset KEY",
		Short: "Remove a key from the repo's config file: it takes its default again",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := a.openRepo()
			if err != nil {
				return err
			}
			return r.UnsetConfig(args[0])
		},
	}
}

func (a *app) openRepo() (*repo.Repo, error) {
	if err := a.checkRepoFlag(); err != nil {
		return nil, err
	}
	return repo.OpenRepo(a.repoDir)
}
