package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) joinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "join COMMONS-ID",
		Short: "Replicate an existing commons (remembered across restarts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				if err := d.Join(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "replicating %s\n", args[0])
				return nil
			})
		},
	}
}
