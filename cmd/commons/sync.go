package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) syncCmd() *cobra.Command {
	var (
		asJSON  bool
		peer    string
		commons []string
	)
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Reconcile commons with connected peers now",
		Long: `Run set reconciliation (/commons/sync/2.0.0) with a connected peer, or with
every connected peer, over every replicated commons or those named with
--commons, and print what moved. Needs a running daemon.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				rep, err := d.Sync(cmd.Context(), peer, commons...)
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(rep)
				}
				if len(rep.Sessions) == 0 {
					fmt.Fprintln(a.stderr, "nothing to sync: no peers connected, or no commons replicated")
				}
				failed := 0
				for _, s := range rep.Sessions {
					if s.Error != "" {
						failed++
						fmt.Fprintf(a.stdout, "%s  %s  failed: %s\n", s.Peer, s.Commons, s.Error)
						continue
					}
					fmt.Fprintf(a.stdout, "%s  %s  received %d, sent %d, %d round trips, %d/%d bytes out/in\n",
						s.Peer, s.Commons, s.Received, s.Sent, s.RoundTrips, s.BytesSent, s.BytesReceived)
				}
				if failed > 0 && failed == len(rep.Sessions) {
					return errors.New("every sync session failed")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&peer, "peer", "", "peer ID to sync with (default: every connected peer)")
	cmd.Flags().StringSliceVar(&commons, "commons", nil, "commons ID to sync (repeatable; default: every replicated commons)")
	return cmd
}
