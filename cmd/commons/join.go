package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) joinCmd() *cobra.Command {
	var wait time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "join COMMONS-ID [--wait 30s]",
		Short: "Replicate an existing commons (remembered across restarts)",
		Long: `Replicate an existing commons: the node remembers it across restarts, joins its
gossip, and asks its peers for its records. With a running daemon, join waits up
to --wait for the commons' manifest to arrive from a peer and says what it
found; if none arrives, it says why and how to reach a peer that has the
commons, and exits non-zero (the commons stays joined: its records arrive when
such a peer connects; "commons leave ID" undoes a join). On a terminal, a
progress line counts the records that arrive. Without a daemon, the commons is
remembered and fetched when the daemon runs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				id := args[0]
				if err := d.Join(cmd.Context(), id); err != nil {
					return err
				}
				if _, online := d.(*api.Client); !online {
					fmt.Fprintf(a.stderr, "joined %s: no daemon runs, so nothing is fetched until \"commons daemon\" runs\n", id)
					return nil
				}
				if wait <= 0 {
					fmt.Fprintf(a.stderr, "replicating %s\n", id)
					return nil
				}
				return a.awaitCommons(cmd.Context(), d, id, wait, quiet)
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the commons' manifest from a peer (0: do not wait)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	return cmd
}

// awaitCommons waits until a joined commons' manifest has arrived, saying
// which peers the node asks, or says why nothing came. While peers are
// connected it reconciles the commons with them (as commons sync does), so
// that when it returns the node holds what they held.
func (a *app) awaitCommons(ctx context.Context, d api.API, id string, wait time.Duration, quiet bool) error {
	deadline := time.Now().Add(wait)
	said := -1 // peers last said
	var st api.StatusInfo
	for {
		var err error
		if st, err = d.Status(ctx); err != nil {
			return err
		}
		if st.Peers != said {
			said = st.Peers
			if st.Peers == 0 {
				fmt.Fprintf(a.stderr, "replicating %s; no peer connected yet: looking for one (bootstrap peers, DHT, mDNS)\n", id)
			} else {
				fmt.Fprintf(a.stderr, "replicating %s; asking %s: %s\n", id, plural(st.Peers, "connected peer"), peerList(st))
			}
		}
		if st.Peers > 0 {
			if err := a.syncShowing(ctx, d, id, deadline, quiet); err != nil {
				return err
			}
			if st, err = d.Status(ctx); err != nil {
				return err
			}
		}
		if cs := findCommons(st, id); cs != nil && cs.ManifestHead != "" {
			fmt.Fprintf(a.stderr, "replicating %s (%s): %s; more arrive in the background (commons status)\n",
				id, cs.Name, plural(cs.Records, "record"))
			return nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	dht := "the DHT is off"
	if st.DHT != nil {
		dht = "the DHT knows " + plural(st.DHT.RoutingTable, "peer")
	}
	fmt.Fprintf(a.stderr, `no peer sent the manifest of %s within %s (connected to %s; %s).
The commons stays joined: its records arrive when a peer that has them connects. To reach one:
  - restart the daemon with --bootstrap ADDR, the address of a node that replicates the commons
    (its foundation publishes one, like /ip4/203.0.113.7/tcp/4040/p2p/12D3KooW...),
    or keep it in the repo: commons config set bootstrap ADDR;
  - on the same network, mDNS finds such a node by itself, unless it is off (commons config show mdns);
  - check the ID: a mistyped one matches no commons (commons leave %s undoes the join).
`, id, wait, plural(st.Peers, "peer"), dht, id)
	return fmt.Errorf("join %s: nothing received yet", id)
}

// syncShowing reconciles commons id with the connected peers until
// deadline, drawing on a terminal the records that arrive meanwhile.
func (a *app) syncShowing(ctx context.Context, d api.API, id string, deadline time.Time, quiet bool) error {
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := d.Sync(sctx, "", id); done <- err }()
	p := a.newProgress(quiet, "joining "+id, 0)
	defer p.end()
	first := -1
	for {
		select {
		case err := <-done:
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return nil // a sync cut by the deadline or refused by a peer: what came is there
		case <-time.After(500 * time.Millisecond):
		}
		if p == nil {
			continue
		}
		if st, err := d.Status(ctx); err == nil {
			if cs := findCommons(st, id); cs != nil {
				if first < 0 {
					first = cs.Records
				}
				p.count(int64(cs.Records - first))
			}
		}
	}
}

func findCommons(st api.StatusInfo, id string) *api.CommonsStatus {
	for i := range st.Commons {
		if st.Commons[i].ID == id {
			return &st.Commons[i]
		}
	}
	return nil
}

// peerList names up to three connected peers.
func peerList(st api.StatusInfo) string {
	var ids []string
	for _, c := range st.Connections {
		if len(ids) == 3 {
			ids = append(ids, "…")
			break
		}
		if len(ids) == 0 || ids[len(ids)-1] != c.Peer {
			ids = append(ids, c.Peer)
		}
	}
	return strings.Join(ids, ", ")
}

func (a *app) leaveCmd() *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "leave COMMONS-ID [--purge]",
		Short: "Stop replicating a commons; --purge also deletes its records",
		Long: `Stop replicating a commons: the node leaves its gossip, stops syncing it, and no
longer replicates it after a restart. Its records stay stored unless --purge is
given, so that joining it again takes up where it was. With --purge, its records,
its feed and everything derived from them are deleted (payload blobs stay: other
commons may reference them); joined again, its feed cursors start again at 1. A
live feed open on the commons ends. The disk space they took is given back by
"commons repo compact", run with the daemon stopped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				r, err := d.Leave(cmd.Context(), args[0], purge)
				if err != nil {
					return err
				}
				switch {
				case r.Purged:
					fmt.Fprintf(a.stderr, "left %s and deleted its %s; their disk space is given back by commons repo compact, with the daemon stopped\n", r.Commons, plural(r.Records, "record"))
				case r.Records > 0:
					fmt.Fprintf(a.stderr, "left %s; its records stay stored (%s; leave --purge deletes them)\n", r.Commons, plural(r.Records, "record"))
				default:
					fmt.Fprintf(a.stderr, "left %s\n", r.Commons)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the commons' records, feed and derived state")
	return cmd
}

// plural says n things: "1 record", "2 records".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
