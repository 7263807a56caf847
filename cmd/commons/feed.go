package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
)

func (a *app) feedCmd() *cobra.Command {
	var q node.FeedQuery
	var follow, asJSON bool
	cmd := &cobra.Command{
		Use:   "feed [--commons ID] [--status S] [--since CURSOR] [--follow] [--json]",
		Short: "List records in arrival order; --follow keeps listing new ones",
		Long: `List a commons' records in the order this node received them. Each has a
cursor; --since CURSOR resumes after it without skipping or repeating. Without
--commons, every replicated commons is listed (cursors are per commons).
--status keeps contributions with that current status. --follow waits for new
records until interrupted (it needs a running daemon).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch q.Status {
			case "", "pending", "accepted", "rejected":
			default:
				return fmt.Errorf("--status %q: want pending, accepted or rejected", q.Status)
			}
			return a.withAPI(cmd, func(api node.API) error {
				return a.runFeed(cmd, api, q, follow, asJSON)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&q.Commons, "commons", "", "commons ID (default: all)")
	fs.StringVar(&q.Status, "status", "", "only contributions with this status: pending, accepted, rejected")
	fs.Uint64Var(&q.Since, "since", 0, "list records after this cursor")
	fs.BoolVar(&follow, "follow", false, "keep waiting for new records")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	return cmd
}

func (a *app) runFeed(cmd *cobra.Command, api node.API, q node.FeedQuery, follow, asJSON bool) error {
	ctx := cmd.Context()
	if follow {
		if _, offline := api.(*node.Node); offline {
			return fmt.Errorf("--follow needs a running daemon (commons daemon)")
		}
		if q.Commons == "" {
			st, err := api.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Commons) != 1 {
				return fmt.Errorf("--follow needs --commons ID when this node replicates %d commons", len(st.Commons))
			}
			q.Commons = st.Commons[0].ID
		}
	}
	enc := json.NewEncoder(a.stdout)
	for {
		items, err := api.Feed(ctx, q)
		if err != nil {
			if ctx.Err() != nil && follow {
				return nil
			}
			return err
		}
		for _, it := range items {
			if asJSON {
				if err := enc.Encode(it); err != nil {
					return err
				}
				continue
			}
			a.printFeedItem(it)
		}
		if !follow {
			return nil
		}
		if len(items) > 0 {
			q.Since = items[len(items)-1].Cursor
		}
		q.Wait = 30 * time.Second
	}
}

func (a *app) printFeedItem(it node.FeedItem) {
	what := it.Title
	switch it.Type {
	case "review":
		what = it.Decision + " " + it.Target
	case "manifest":
		what = "manifest: " + it.Title
	}
	status := ""
	if it.Status != "" {
		status = "[" + it.Status + "] "
	}
	fmt.Fprintf(a.stdout, "%6d  %s  %-12s %s%s  (%s)\n", it.Cursor, it.Time.Format("2006-01-02 15:04:05"), it.Type, status, what, it.CID)
}
