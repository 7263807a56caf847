package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/store/badgerstore"
)

func (a *app) repoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Check the repo's store",
	}
	cmd.AddCommand(a.repoVerifyCmd())
	return cmd
}

func (a *app) repoVerifyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole store: table checksums, every record against its CID, the feed logs",
		Long: `Read the whole store once and check it: every block of badger's tables against
its checksum (naming the first damaged table file), every record against its
CID, and each commons' feed log against its head and its records. Prints what
it checked and each thing found wrong (the first 100), and exits 1 if anything
is. Runs on a repo whose daemon is stopped.

A damaged repo's records can be had again from peers: export what reads whole
(commons export), or start a fresh repo, join the commons and let it sync.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkRepoFlag(); err != nil {
				return err
			}
			r, err := repo.OpenRepo(a.repoDir)
			if err != nil {
				return err
			}
			if err := daemonRuns(cmd.Context(), r); err != nil {
				return fmt.Errorf("%w; verify reads the store itself", err)
			}
			log, err := a.logger(slog.LevelWarn)
			if err != nil {
				return err
			}
			st, err := r.OpenStore(log)
			if err != nil {
				return fmt.Errorf("the store cannot be opened: %w", err)
			}
			defer st.Close()
			bs, ok := st.(*badgerstore.Store)
			if !ok {
				return errors.New("this store cannot be verified")
			}
			rep, err := bs.Verify(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "records read whole: %d\nfeed entries:       %d\n", rep.Records, rep.FeedEntries)
				for _, d := range rep.Damaged {
					fmt.Fprintf(a.stdout, "damaged: %s\n", d)
				}
				if more := rep.DamagedAll - len(rep.Damaged); more > 0 {
					fmt.Fprintf(a.stdout, "... and %d more\n", more)
				}
			}
			if rep.DamagedAll > 0 {
				return fmt.Errorf("the store of %s is damaged (%s found): its records can be had again from peers, in a fresh repo that joins the commons", a.repoDir, plural(rep.DamagedAll, "problem"))
			}
			if !asJSON {
				fmt.Fprintln(a.stderr, "the store is whole")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
