package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) exportCmd() *cobra.Command {
	var commons, out string
	cmd := &cobra.Command{
		Use:   "export --commons ID --out FILE.car",
		Short: "Write every record of a commons to a CAR file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if commons == "" || out == "" {
				return fmt.Errorf("--commons and --out are required")
			}
			return a.withAPI(cmd, func(d api.API) error {
				// Write beside the target and rename, so a failed export
				// never leaves a truncated file under the requested name.
				tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer os.Remove(tmp.Name())
				if err := tmp.Chmod(0o644); err != nil {
					tmp.Close()
					return fmt.Errorf("--out: %w", err)
				}
				if err := d.Export(cmd.Context(), commons, tmp); err != nil {
					tmp.Close()
					return err
				}
				if err := tmp.Close(); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := os.Rename(tmp.Name(), out); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				fmt.Fprintf(a.stderr, "exported %s to %s\n", commons, out)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID")
	cmd.Flags().StringVar(&out, "out", "", "CAR file to write")
	return cmd
}

func (a *app) importCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import FILE.car",
		Short: "Validate and store the records of a CAR file; counts the rejected ones and names the first 1,000",
		Long: `Read a CAR file of records (as commons export writes), validate every record
(CID, canonical encoding, signatures), store the valid ones and replicate their
commons. Every rejected record is counted, and the first 1,000 are named with
the reason. Exits non-zero if any record was rejected.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return a.withAPI(cmd, func(d api.API) error {
				rep, err := d.Import(cmd.Context(), f)
				if asJSON {
					if jerr := a.printJSON(rep); jerr != nil {
						return jerr
					}
				} else {
					for _, r := range rep.Rejected {
						fmt.Fprintf(a.stderr, "rejected %s: %s\n", r.CID, r.Reason)
					}
					if more := rep.Rejects() - len(rep.Rejected); more > 0 {
						fmt.Fprintf(a.stderr, "... and %d more rejected records, not listed (the first %d are)\n", more, len(rep.Rejected))
					}
					fmt.Fprintf(a.stderr, "imported %d records (%d already present, %d rejected)\n", rep.Imported, rep.Duplicates, rep.Rejects())
				}
				if err != nil {
					return err
				}
				if n := rep.Rejects(); n > 0 {
					return fmt.Errorf("%d records of %s were rejected", n, args[0])
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
