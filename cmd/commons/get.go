package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) getCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "get BLOB-CID [--out FILE]",
		Short: "Write a payload blob to stdout or a file, fetching it from peers if needed",
		Long: `Write a payload blob (a contribution's file, a licence text) to stdout, or to
FILE with --out. A blob not stored here is fetched from connected peers by the
running daemon, if a record of a replicated commons references it; it is
verified against its CID and the commons' size limit.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				data, err := d.GetBlob(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if out == "" {
					_, err := a.stdout.Write(data)
					return err
				}
				tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer os.Remove(tmp.Name())
				if _, err := tmp.Write(data); err != nil {
					tmp.Close()
					return fmt.Errorf("--out: %w", err)
				}
				if err := tmp.Chmod(0o644); err != nil {
					tmp.Close()
					return fmt.Errorf("--out: %w", err)
				}
				if err := tmp.Close(); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := os.Rename(tmp.Name(), out); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				fmt.Fprintf(a.stderr, "wrote %d bytes to %s\n", len(data), out)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (default stdout)")
	return cmd
}
