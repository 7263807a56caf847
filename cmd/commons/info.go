package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
)

func (a *app) idCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print this node's peer ID, public key and addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				id, err := d.ID(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(id)
				}
				fmt.Fprintf(a.stdout, "peer_id:    %s\npublic_key: %s\n", id.PeerID, id.PublicKey)
				for _, ad := range id.Addresses {
					fmt.Fprintf(a.stdout, "address:    %s\n", ad)
				}
				if len(id.Addresses) == 0 {
					fmt.Fprintln(a.stdout, "addresses:  (none: the daemon is not running)")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node, its peers and each commons: records, statuses, state root",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				st, err := d.Status(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(st)
				}
				a.printStatus(st)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printStatus(st api.StatusInfo) {
	w := a.stdout
	state := "online, " + plural(st.Peers, "peer")
	if !st.Online {
		state = "offline (no daemon running)"
	}
	fmt.Fprintf(w, "peer_id: %s\nnode:    %s\n", st.PeerID, state)
	if st.Online {
		fmt.Fprintf(w, "reachability: %s\n", reachabilityText(st.Reachability))
		if st.DHT != nil {
			fmt.Fprintf(w, "dht:     %s, %s in the routing table\n", st.DHT.Mode, plural(st.DHT.RoutingTable, "peer"))
		}
		for _, ad := range st.Addresses {
			fmt.Fprintf(w, "address: %s\n", ad)
		}
		for _, c := range st.Connections {
			fmt.Fprintf(w, "peer:    %s  %s %s %s\n", c.Peer, connKind(c.ConnInfo), c.Direction, c.Address)
		}
	}
	if len(st.Commons) == 0 {
		fmt.Fprintln(w, "commons: none yet (commons manifest create, or commons join ID)")
	}
	for _, c := range st.Commons {
		name := c.Name
		if name == "" {
			name = "(manifest not received yet)"
		}
		fmt.Fprintf(w, "\ncommons %s\n", c.ID)
		fmt.Fprintf(w, "  name:          %s\n", name)
		fmt.Fprintf(w, "  records:       %d\n", c.Records)
		fmt.Fprintf(w, "  contributions: %d pending, %d accepted, %d rejected", c.Pending, c.Accepted, c.Rejected)
		if c.Withdrawn > 0 {
			fmt.Fprintf(w, ", %d withdrawn (by upheld disputes)", c.Withdrawn)
		}
		fmt.Fprintln(w)
		if c.OpenDisputes > 0 {
			fmt.Fprintf(w, "  disputes:      %d open (commons dispute list --commons %s)\n", c.OpenDisputes, c.ID)
		}
		if c.StateRootRecords > 0 && c.StateRootRecords != c.Records { // 0: a daemon that does not say
			fmt.Fprintf(w, "  state_root:    %s (of the first %d records held: records are arriving, and the root is computed again shortly)\n", c.StateRoot, c.StateRootRecords)
		} else {
			fmt.Fprintf(w, "  state_root:    %s\n", c.StateRoot)
		}
		fmt.Fprintf(w, "  manifest_head: %s\n", c.ManifestHead)
		if len(c.Forks) > 0 {
			fmt.Fprintf(w, "  forks:         %s\n", strings.Join(c.Forks, ", "))
		}
		if len(c.Contested) > 0 {
			fmt.Fprintf(w, "  CONTESTED:     %s (keys that together meet a threshold revoke each other; commons manifest show)\n", strings.Join(c.Contested, ", "))
			fmt.Fprintf(w, "  held:          %d contributions pending until the contest is decided\n", c.Held)
		}
		if c.LeftOut > 0 {
			fmt.Fprintf(w, "  left out:      %d records stored damaged (the log names them), until a peer that holds them sends them again\n", c.LeftOut)
		}
		if c.Inert > 0 || c.Waiting > 0 {
			fmt.Fprintf(w, "  inert:         %d (records claiming authority they lack)\n  waiting:       %d (for records not received yet)\n", c.Inert, c.Waiting)
		}
		if st.Online {
			fmt.Fprintf(w, "  topic peers:   %d\n", c.Peers)
		}
	}
}

func (a *app) peersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List connected peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				ps, err := d.Peers(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(ps)
				}
				if len(ps) == 0 {
					fmt.Fprintln(a.stderr, "no peers connected")
				}
				for _, p := range ps {
					kinds := make([]string, len(p.Connections))
					for i, c := range p.Connections {
						kinds[i] = connKind(c) + " " + c.Direction + " " + c.Address
					}
					fmt.Fprintf(a.stdout, "%s  %s\n", p.ID, strings.Join(kinds, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// connKind says how a connection reaches a peer.
func connKind(c api.ConnInfo) string {
	if c.Relayed {
		return "relayed"
	}
	return "direct"
}

func reachabilityText(r string) string {
	switch r {
	case "public":
		return "public (peers dial this node directly)"
	case "private":
		return "private (behind NAT or a firewall: reached through a relay, then by hole punching)"
	case "unknown":
		return "unknown (not learnt yet: AutoNAT needs a peer with a public address)"
	}
	return r
}
