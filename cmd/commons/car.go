package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) exportCmd() *cobra.Command {
	var commons, out string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "export --commons ID --out FILE.car",
		Short: "Write every record of a commons to a CAR file",
		Long: `Write every record of a commons to a CAR file, which commons import reads.
The file appears under its name only once complete: a failed export leaves
no file, and an existing file as it was. On a terminal, a progress line
counts the records written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--commons", commons, "--out", out); err != nil {
				return err
			}
			return a.withAPI(cmd, func(d api.API) error {
				return a.export(cmd.Context(), d, commons, out, quiet)
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID")
	cmd.Flags().StringVar(&out, "out", "", "CAR file to write")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	return cmd
}

// export writes commons' records to the CAR file out, through a file
// beside it that is renamed once complete, so that a failed export never
// leaves a file, or a truncated one, under the requested name.
func (a *app) export(ctx context.Context, d api.API, commons, out string, quiet bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("--out: %w", err)
	}
	p := a.newProgress(quiet, "exporting to "+out, 0)
	err = d.Export(ctx, commons, p.writer(tmp))
	p.end()
	if err != nil {
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
}

func (a *app) importCmd() *cobra.Command {
	var asJSON, quiet, join bool
	cmd := &cobra.Command{
		Use:   "import FILE.car [--join]",
		Short: "Validate and store the records of a CAR file; counts the rejected ones and names the first 1,000",
		Long: `Read a CAR file of records (as commons export writes), validate every record
(CID, canonical encoding, the proof of work its commons asks, signatures), and
store the valid ones of the commons this node replicates. A record is checked
against its commons' genesis, so one that comes before that genesis in the
file (export writes the genesis first), when this node does not hold it, is
refused as delayed; importing the file again stores it. With --join, it
replicates the commons the file's records belong to (as commons join does) and
stores them all; without, the records of other commons are skipped and
counted, and an import that stores nothing for that reason fails. Every
rejected record is counted, and the first 1,000 are named with the reason.
Exits non-zero if any record was rejected, or if the file is no CAR or is
damaged (then the records before the damage are kept). On a terminal, a
progress line counts the records read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var size int64
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				size = fi.Size()
			}
			return a.withAPI(cmd, func(d api.API) error {
				p := a.newProgress(quiet, "importing "+args[0], size)
				rep, err := d.Import(cmd.Context(), p.reader(f), join)
				p.end()
				return a.reportImport(args[0], rep, err, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	cmd.Flags().BoolVar(&join, "join", false, "replicate the commons the file's records belong to")
	return cmd
}

// reportImport prints what an import of file did and returns its error.
// An import that failed before it did anything (no CAR at all) prints
// nothing but the error; one that failed part way says in the error what
// it did before.
func (a *app) reportImport(file string, rep api.ImportReport, err error, asJSON bool) error {
	if err != nil && rep.Imported == 0 && rep.Duplicates == 0 && rep.Rejects() == 0 {
		return err
	}
	if err == nil && !asJSON && rep.Skipped > 0 && rep.Imported == 0 && rep.Duplicates == 0 && rep.Rejects() == 0 {
		return fmt.Errorf("nothing of %s was imported: its %d records belong to commons not replicated here (%s); import --join replicates them",
			file, rep.Skipped, strings.Join(rep.NotReplicated, ", "))
	}
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
	}
	summary := fmt.Sprintf("imported %d records (%d already present, %d rejected)", rep.Imported, rep.Duplicates, rep.Rejects())
	if rep.Skipped > 0 {
		summary += fmt.Sprintf("; skipped %d records of %s not replicated here (%s): import --join replicates them",
			rep.Skipped, fmt.Sprint(len(rep.NotReplicated), " commons"), strings.Join(rep.NotReplicated, ", "))
	}
	if err != nil {
		return fmt.Errorf("%w; before that, %s", err, summary)
	}
	if !asJSON {
		fmt.Fprintln(a.stderr, summary)
	}
	if n := rep.Rejects(); n > 0 {
		return fmt.Errorf("%d records of %s were rejected", n, file)
	}
	if rep.Skipped > 0 && rep.Imported == 0 && rep.Duplicates == 0 {
		return fmt.Errorf("nothing of %s was imported: its records belong to commons not replicated here (import --join replicates them)", file)
	}
	return nil
}
