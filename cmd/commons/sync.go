package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) syncCmd() *cobra.Command {
	var (
		asJSON  bool
		quiet   bool
		peer    string
		commons []string
	)
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Reconcile commons with connected peers now",
		Long: `Run set reconciliation (/commons/sync/2.0.0) with a connected peer, or with
every connected peer, over every replicated commons or those named with
--commons, and print what moved. Needs a running daemon. On a terminal, a
progress line counts the records that arrive meanwhile.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				rep, err := a.syncProgress(cmd.Context(), d, peer, commons, quiet || asJSON)
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
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	cmd.Flags().StringVar(&peer, "peer", "", "peer ID to sync with (default: every connected peer)")
	cmd.Flags().StringSliceVar(&commons, "commons", nil, "commons ID to sync (repeatable; default: every replicated commons)")
	return cmd
}

// syncProgress runs a sync, drawing on a terminal the records that arrive
// meanwhile in the commons synced (every replicated one if none is named).
func (a *app) syncProgress(ctx context.Context, d api.API, peer string, commons []string, quiet bool) (api.SyncReport, error) {
	p := a.newProgress(quiet, "syncing", 0)
	if p == nil {
		return d.Sync(ctx, peer, commons...)
	}
	defer p.end()
	type result struct {
		rep api.SyncReport
		err error
	}
	done := make(chan result, 1)
	go func() { r, err := d.Sync(ctx, peer, commons...); done <- result{r, err} }()
	held := func() int {
		st, err := d.Status(ctx)
		if err != nil {
			return 0
		}
		n := 0
		for _, c := range st.Commons {
			if len(commons) == 0 || slices.Contains(commons, c.ID) {
				n += c.Records
			}
		}
		return n
	}
	first := held()
	for {
		select {
		case r := <-done:
			return r.rep, r.err
		case <-time.After(500 * time.Millisecond):
			p.count(int64(held() - first))
		}
	}
}
