package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/repo"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the repo's settings (config.json)",
		Long: `Show or change the repo's settings, kept in config.json in the repo.

Each setting takes, in order: its default, the profile's default (profile
bootstrap), the config file, then the environment variable COMMONS_<KEY>
(for example COMMONS_MDNS=false). The daemon's flags win over all of them.
A running daemon reads its settings when it starts: restart it after a change.

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
		Short: "Print the effective settings and where each comes from (default, profile, config, env)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := a.openRepo()
			if err != nil {
				return err
			}
			_, list, err := r.Settings(os.LookupEnv, profile)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				var found []repo.ConfigSetting
				for _, s := range list {
					if s.Key == args[0] {
						found = append(found, s)
					}
				}
				if len(found) == 0 {
					return fmt.Errorf("unknown key %q (commons config --help lists them)", args[0])
				}
				list = found
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
	cmd.Flags().StringVar(&profile, "profile", "", "show the settings under this profile (default or bootstrap)")
	return cmd
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
