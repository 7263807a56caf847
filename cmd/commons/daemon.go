package main

import (
	"errors"
	"fmt"
	"log/slog"
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

type daemonFlags struct {
	listen, bootstrap, announce []string
	api, profile                string
}

func (a *app) runDaemon(cmd *cobra.Command, f daemonFlags) error {
	if err := a.checkRepoFlag(); err != nil {
		return err
	}
	r, err := repo.OpenRepo(a.repoDir)
	if errors.Is(err, repo.ErrNoRepo) {
		log, lerr := a.logger(slog.LevelInfo)
		if lerr != nil {
			return lerr
		}
		var id fmt.Stringer
		if r, id, err = repo.InitRepo(a.repoDir, log); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "initialised new repo at %s (peer ID %s)\n", a.repoDir, id)
	} else if err != nil {
		return err
	}
	cfg, _, err := r.Settings(os.LookupEnv, f.profile)
	if err != nil {
		return err
	}
	if len(f.listen) > 0 {
		cfg.Listen = f.listen
	}
	cfg.Bootstrap = append(cfg.Bootstrap, f.bootstrap...)
	if len(f.announce) > 0 {
		cfg.Announce = f.announce
	}
	if f.api != "" {
		cfg.API = f.api
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	log, err := a.logger(lvl)
	if err != nil {
		return err
	}
	key, err := r.Key()
	if err != nil {
		return err
	}
	st, err := r.OpenStore(log)
	if err != nil {
		return err
	}
	ncfg := node.ConfigFromSettings(cfg)
	ncfg.Store, ncfg.Key, ncfg.Logger = st, key, log
	n, err := node.New(ncfg)
	if err != nil {
		st.Close()
		return err
	}
	ctx := cmd.Context()
	if err := n.Start(ctx); err != nil {
		n.Close()
		return err
	}
	token := repo.NewToken()
	addr, err := n.ServeAPI(cfg.API, token)
	if err != nil {
		n.Close()
		return err
	}
	if err := r.WriteAPI(addr.String(), token); err != nil {
		n.Close()
		return err
	}
	id, _ := n.ID(ctx)
	for _, a2 := range id.Addresses {
		fmt.Fprintf(a.stdout, "listening on %s\n", a2)
	}
	fmt.Fprintf(a.stdout, "profile %s, DHT %s, mDNS %v, reachability %s\n", cfg.Profile, cfg.DHT, cfg.MDNS, n.Reachability())
	fmt.Fprintf(a.stdout, "API on http://%s\n", addr)
	<-ctx.Done()
	fmt.Fprintln(a.stderr, "shutting down")
	r.RemoveAPI()
	return n.Close()
}
