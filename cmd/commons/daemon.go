package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
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
	var detach, rotateToken bool
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node (creates the repo if it does not exist)",
		Long: `Run the node: listen for peers, replicate every joined commons over gossip and
set-reconciliation sync, and serve the HTTP API on loopback for the other commands.
Creates the repo first if there is none. Stops cleanly on Ctrl-C or SIGTERM.
With --detach it runs in the background: the command returns once the daemon
answers (so the next command finds it), and prints its process ID.

Settings come from their defaults (and the profile's), the repo's config file,
COMMONS_* environment variables, then these flags; commons config show lists
them and where each comes from. Peers are found through the bootstrap
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
			if detach {
				return a.detachDaemon(cmd)
			}
			return a.runDaemon(cmd, daemonFlags{listen, bootstrap, announce, apiAddr, profile, rotateToken})
		},
	}
	cmd.Flags().BoolVar(&rotateToken, "rotate-token", false, "make a new API token (the repo's api.token) instead of keeping the last one: clients that read the old one are refused")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background: return once the daemon answers, its output in the repo's daemon.log")
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "libp2p listen multiaddr, repeatable (default from config: TCP and QUIC on port 4040, every interface)")
	cmd.Flags().StringArrayVar(&bootstrap, "bootstrap", nil, "peer to connect to, as a multiaddr ending in /p2p/<peer-id>; repeatable, added to the bootstrap peers of the config")
	cmd.Flags().StringArrayVar(&announce, "announce", nil, "address to announce instead of the detected ones, repeatable (a bootstrap node's public address)")
	cmd.Flags().StringVar(&apiAddr, "api", "", "HTTP API address host:port (default from config: 127.0.0.1 on a free port)")
	cmd.Flags().StringVar(&profile, "profile", "", "settings profile: default or bootstrap (default from config)")
	return cmd
}

// daemonFlags are the daemon's flags that override its settings.
type daemonFlags struct {
	listen, bootstrap, announce []string
	api, profile                string
	rotateToken                 bool
}

// apply lays the flags over the settings s, and over list, where each
// setting a flag gives takes the source "flag": listen, announce and api
// replace theirs, bootstrap peers add to the configured ones (their source
// is then, say, "config+flag"), and logLevel (--log-level) replaces
// log_level.
func (f daemonFlags) apply(s *repo.Settings, list []repo.ConfigSetting, logLevel string) {
	set := func(key string, v any, add bool) {
		for i := range list {
			if list[i].Key != key {
				continue
			}
			if prev, ok := list[i].Value.([]string); add && ok && len(prev) > 0 {
				list[i].Source += "+flag"
			} else {
				list[i].Source = "flag"
			}
			list[i].Value = v
		}
	}
	if len(f.listen) > 0 {
		s.Listen = f.listen
		set("listen", s.Listen, false)
	}
	if len(f.bootstrap) > 0 {
		s.Bootstrap = append(slices.Clone(s.Bootstrap), f.bootstrap...)
		set("bootstrap", s.Bootstrap, true)
	}
	if len(f.announce) > 0 {
		s.Announce = f.announce
		set("announce", s.Announce, false)
	}
	if f.api != "" {
		s.API = f.api
		set("api", s.API, false)
	}
	if logLevel != "" {
		s.LogLevel = strings.ToLower(logLevel)
		set("log_level", s.LogLevel, false)
	}
}

// runDaemon runs the node until the command's context ends: it opens the
// repo (creating it if need be), resolves the settings, starts the node and
// its API, says where to reach them, and on shutdown removes the API file
// and closes the node.
func (a *app) runDaemon(cmd *cobra.Command, f daemonFlags) error {
	r, err := a.daemonRepo(cmd.Context())
	if err != nil {
		return err
	}
	unmark := markStarting(r.Dir) // until the API answers
	defer unmark()
	s, list, err := r.Settings(os.LookupEnv, f.profile)
	if err != nil {
		return err
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(s.LogLevel)) // log_level is validated
	log, err := a.logger(lvl)                 // --log-level, checked here, wins
	if err != nil {
		return err
	}
	f.apply(&s, list, a.logLevel)
	limitMemory(s)
	ctx := cmd.Context()
	n, err := startNode(ctx, r, s, log)
	if err != nil {
		return err
	}
	// What config show prints while the daemon runs: written before the
	// API address, by which the other commands know a daemon runs.
	if err := r.WriteDaemonSettings(list); err != nil {
		n.Close()
		return err
	}
	addr, err := serveAPI(n, r, s.API, f.rotateToken)
	if err != nil {
		r.RemoveDaemonSettings()
		n.Close()
		return err
	}
	unmark()
	a.printReady(ctx, n, s, addr)
	<-ctx.Done()
	fmt.Fprintln(a.stderr, "shutting down")
	r.RemoveAPI()
	r.RemoveDaemonSettings()
	return n.Close()
}

// daemonRepo opens the repo for a daemon, creating it if need be, and
// refuses one where a daemon answers already.
func (a *app) daemonRepo(ctx context.Context) (*repo.Repo, error) {
	if err := a.checkRepoFlag(); err != nil {
		return nil, err
	}
	r, err := a.openOrInitRepo()
	if err != nil {
		return nil, err
	}
	if err := daemonRuns(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// daemonRuns returns an error saying so if a daemon answers on r's API.
func daemonRuns(ctx context.Context, r *repo.Repo) error {
	if addr, token, ok := r.API(); ok && api.NewClient(addr, token).Ping(ctx) == nil {
		return fmt.Errorf("a daemon already runs on the repo %s (its API is on http://%s): stop it first, or give another --repo", r.Dir, addr)
	}
	return nil
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
	st, err := openStoreWaiting(ctx, r, log)
	if err != nil {
		return nil, err
	}
	cfg := node.ConfigFromSettings(s)
	cfg.Store, cfg.Key, cfg.Logger, cfg.FreeSpace = st, key, log, r.FreeSpace
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
func serveAPI(n *node.Node, r *repo.Repo, addr string, rotate bool) (net.Addr, error) {
	token, ok := r.Token()
	if !ok || rotate {
		token = repo.NewToken()
	}
	got, err := n.ServeAPI(addr, token)
	if err != nil {
		return nil, err
	}
	if err := r.WriteAPI(got.String(), token); err != nil {
		return nil, err
	}
	return got, nil
}

// printReady prints, on stdout, the addresses the node listens on (as
// bound), those it announces when told which, how it takes part in the
// network, and the API's URL.
func (a *app) printReady(ctx context.Context, n *node.Node, s repo.Settings, apiAddr net.Addr) {
	for _, addr := range n.ListenAddrs() {
		where := ""
		if strings.HasPrefix(addr, "/ip4/0.0.0.0/") || strings.HasPrefix(addr, "/ip6/::/") {
			where = " (every interface)"
		}
		fmt.Fprintf(a.stdout, "listening on %s%s\n", addr, where)
	}
	id, _ := n.ID(ctx)
	for _, addr := range s.Announce {
		if !strings.Contains(addr, "/p2p/") {
			addr += "/p2p/" + id.PeerID
		}
		fmt.Fprintf(a.stdout, "announcing %s\n", addr)
	}
	fmt.Fprintf(a.stdout, "profile %s, DHT %s, mDNS %v, reachability %s\n", s.Profile, s.DHT, s.MDNS, n.Reachability())
	fmt.Fprintf(a.stdout, "API on http://%s\n", apiAddr)
}
