package main

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
)

func (a *app) feedCmd() *cobra.Command {
	var q api.FeedQuery
	var follow, asJSON bool
	cmd := &cobra.Command{
		Use:   "feed [--commons ID] [--status S] [--since CURSOR] [--follow] [--json]",
		Short: "List records in arrival order; --follow keeps listing new ones",
		Long: `List a commons' records in the order this node received them. Each has a
cursor; --since CURSOR resumes after it without skipping or repeating. Without
--commons, every replicated commons is listed (cursors are per commons).
--status keeps contributions with that current status. --follow streams the
live feed (Server-Sent Events) until interrupted, resuming by itself after a
dropped connection: records as they arrive and contributions' status changes
(with --status, those that reach or arrive with that status); it needs a
running daemon.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := feed.CheckStatus(q.Status); err != nil {
				return fmt.Errorf("--%w", err)
			}
			return a.withAPI(cmd, func(d api.API) error {
				return a.runFeed(cmd, d, q, follow, asJSON)
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

func (a *app) runFeed(cmd *cobra.Command, d api.API, q api.FeedQuery, follow, asJSON bool) error {
	ctx := cmd.Context()
	if follow {
		return a.followFeed(cmd, d, q, asJSON)
	}
	items, err := d.Feed(ctx, q)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(a.stdout)
	for _, it := range items {
		if asJSON {
			if err := enc.Encode(it); err != nil {
				return err
			}
			continue
		}
		a.printFeedItem(it)
	}
	return nil
}

// followFeed prints a commons' live feed (Server-Sent Events) after
// --since until interrupted: records, and status changes of contributions.
// It reconnects and resumes by itself when the stream ends.
func (a *app) followFeed(cmd *cobra.Command, d api.API, q api.FeedQuery, asJSON bool) error {
	ctx := cmd.Context()
	c, ok := d.(*api.Client)
	if !ok {
		return fmt.Errorf("--follow needs a running daemon (commons daemon)")
	}
	if q.Commons == "" {
		st, err := d.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Commons) != 1 {
			return fmt.Errorf("--follow needs --commons ID when this node replicates %d commons", len(st.Commons))
		}
		q.Commons = st.Commons[0].ID
	}
	from := ""
	if q.Since > 0 {
		// The stream would wait past the end for records that have not
		// arrived, and skip those that come first: say so, as feed does.
		if _, err := d.Feed(ctx, api.FeedQuery{Commons: q.Commons, Since: q.Since, Limit: 1}); err != nil {
			return err
		}
		from = strconv.FormatUint(q.Since, 10)
	}
	enc := json.NewEncoder(a.stdout)
	return c.Events(ctx, q.Commons, from, feed.EventFilter{Status: q.Status}, func(e feed.Event) error {
		if asJSON {
			return enc.Encode(e)
		}
		if e.Type == feed.EventStatus {
			fmt.Fprintf(a.stdout, "%6s  %s  %-12s [%s] %s: %s -> %s  (%s)\n", e.ID, e.Time.Format("2006-01-02 15:04:05"), "status", e.Status, e.Title, e.From, e.Status, e.CID)
			return nil
		}
		a.printFeedItem(api.FeedItem{Cursor: e.Cursor, CID: e.CID, Type: e.Type, Author: e.Author, Commons: e.Commons,
			Time: e.Time, Title: e.Title, Status: e.Status, Target: e.Target, Decision: e.Decision})
		return nil
	})
}

func (a *app) printFeedItem(it api.FeedItem) {
	what := it.Title
	switch it.Type {
	case "review":
		what = it.Decision + " " + it.Target
	case "manifest":
		what = "manifest: " + it.Title
	case "profile":
		what = "profile: " + it.Title
	case "sponsorship":
		what = "sponsors " + it.Target
	case "pledge":
		what = "pledge: " + it.Title
	case "acknowledgement":
		what = "acknowledges " + it.Target
	case "dispute":
		what = "disputes " + it.Target + ": " + it.Title
	case "statement":
		what = "on dispute " + it.Target + ": " + it.Title
	case "resolution":
		what = it.Decision + "s dispute " + it.Target + ": " + it.Title
	case "certificate":
		what = "certifies " + it.Title
		if it.Target != "" {
			what = "certifies " + it.Target + " as " + it.Title
		}
	case "rotation":
		what = "hands its key on to " + it.Target
	}
	status := ""
	if it.Status != "" {
		status = "[" + it.Status + "] "
	}
	fmt.Fprintf(a.stdout, "%6d  %s  %-12s %s%s  (%s)\n", it.Cursor, it.Time.Format("2006-01-02 15:04:05"), it.Type, status, what, it.CID)
}
