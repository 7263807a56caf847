package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/repo"
)

func (a *app) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new repo: identity key, config and store; prints the peer ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkRepoFlag(); err != nil {
				return err
			}
			log, err := a.logger(slog.LevelWarn)
			if err != nil {
				return err
			}
			_, id, err := repo.InitRepo(a.repoDir, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "initialised repo at %s\n", a.repoDir)
			fmt.Fprintln(a.stdout, id)
			return nil
		},
	}
}

func (a *app) daemonCmd() *cobra.Command {
	var listen, bootstrap, announce []string
	var apiAddr, profile string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node (creates the repo if it does not exist)",
		Long: `Run the node: listen for peers, replicate every joined commons over gossip and
set-reconciliation sync, and serve the HTTP API on loopback for the other commands.
Creates the repo first if there is none. Stops cleanly on Ctrl-C or SIGTERM.

Settings come from the repo's config file (commons config show), then COMMONS_*
environment variables, then these flags. Peers are found through the bootstrap
peers (config and manifests), the Kademlia DHT and mDNS on the local network;
behind a NAT the node reserves a relay slot and upgrades relayed connections by
hole punching.

Profiles:
  default    a contributor's daemon (DHT client until publicly reachable)
  bootstrap  a foundation's always-on node with a public address: DHT server,
             circuit relay v2 service, public reachability assumed, higher
             connection limits; give its public addresses with --announce`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDaemon(cmd, daemonFlags{listen, bootstrap, announce, apiAddr, profile})
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "libp2p listen multiaddr, repeatable (default from config: TCP and QUIC on port 4040)")
	cmd.Flags().StringArrayVar(&bootstrap, "bootstrap", nil, "peer to connect to, as a multiaddr ending in /p2p/<peer-id>; repeatable, added to the config's")
	cmd.Flags().StringArrayVar(&announce, "announce", nil, "address to announce instead of the detected ones, repeatable (a bootstrap node's public address)")
	cmd.Flags().StringVar(&apiAddr, "api", "", "HTTP API address host:port (default from config: 127.0.0.1 on a free port)")
	cmd.Flags().StringVar(&profile, "profile", "", "settings profile: default or bootstrap (default from config)")
	return cmd
}

// daemonFlags are the daemon's flags that override its settings.
type daemonFlags struct {
	listen, bootstrap, announce []string
	api, profile                string
}

// apply lays the flags over the settings: listen, announce and api replace
// theirs, bootstrap peers add to the configured ones.
func (f daemonFlags) apply(s *repo.Settings) {
	if len(f.listen) > 0 {
		s.Listen = f.listen
	}
	s.Bootstrap = append(s.Bootstrap, f.bootstrap...)
	if len(f.announce) > 0 {
		s.Announce = f.announce
	}
	if f.api != "" {
		s.API = f.api
	}
}

// runDaemon runs the node until the command's context ends: it opens the
// repo (creating it if need be), resolves the settings, starts the node and
// its API, says where to reach them, and on shutdown removes the API file
// and closes the node.
func (a *app) runDaemon(cmd *cobra.Command, f daemonFlags) error {
	if err := a.checkRepoFlag(); err != nil {
		return err
	}
	r, err := a.openOrInitRepo()
	if err != nil {
		return err
	}
	s, _, err := r.Settings(os.LookupEnv, f.profile)
	if err != nil {
		return err
	}
	f.apply(&s)
	limitMemory(s)
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(s.LogLevel)) // log_level is validated
	log, err := a.logger(lvl)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	n, err := startNode(ctx, r, s, log)
	if err != nil {
		return err
	}
	addr, err := serveAPI(n, r, s.API)
	if err != nil {
		n.Close()
		return err
	}
	a.printReady(ctx, n, s, addr)
	<-ctx.Done()
	fmt.Fprintln(a.stderr, "shutting down")
	r.RemoveAPI()
	return n.Close()
}

// openOrInitRepo opens the repo, or creates it when there is none and says
// so on stderr.
func (a *app) openOrInitRepo() (*repo.Repo, error) {
	r, err := repo.OpenRepo(a.repoDir)
	if !errors.Is(err, repo.ErrNoRepo) {
		return r, err
	}
	log, err := a.logger(slog.LevelInfo)
	if err != nil {
		return nil, err
	}
	r, id, err := repo.InitRepo(a.repoDir, log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "initialised new repo at %s (peer ID %s)\n", a.repoDir, id)
	return r, nil
}

// startNode starts a node on the repo's key and store under settings s.
// On error nothing is left open.
func startNode(ctx context.Context, r *repo.Repo, s repo.Settings, log *slog.Logger) (*node.Node, error) {
	key, err := r.Key()
	if err != nil {
		return nil, err
	}
	st, err := r.OpenStore(log)
	if err != nil {
		return nil, err
	}
	cfg := node.ConfigFromSettings(s)
	cfg.Store, cfg.Key, cfg.Logger = st, key, log
	n, err := node.New(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// serveAPI serves the node's HTTP API on addr with a fresh token, and
// records the address it got and the token in the repo for the other
// commands.
func serveAPI(n *node.Node, r *repo.Repo, addr string) (net.Addr, error) {
	token := repo.NewToken()
	got, err := n.ServeAPI(addr, token)
	if err != nil {
		return nil, err
	}
	if err := r.WriteAPI(got.String(), token); err != nil {
		return nil, err
	}
	return got, nil
}

// printReady prints, on stdout, the node's listen addresses, how it takes
// part in the network, and the API's URL.
func (a *app) printReady(ctx context.Context, n *node.Node, s repo.Settings, api net.Addr) {
	id, _ := n.ID(ctx)
	for _, addr := range id.Addresses {
		fmt.Fprintf(a.stdout, "listening on %s\n", addr)
	}
	fmt.Fprintf(a.stdout, "profile %s, DHT %s, mDNS %v, reachability %s\n", s.Profile, s.DHT, s.MDNS, n.Reachability())
	fmt.Fprintf(a.stdout, "API on http://%s\n", api)
}
