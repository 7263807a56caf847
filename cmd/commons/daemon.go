package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
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
			_, id, err := node.InitRepo(a.repoDir, log)
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
	var listen, bootstrap []string
	var apiAddr string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node (creates the repo if it does not exist)",
		Long: `Run the node: listen for peers, replicate every joined commons over gossip and
set-reconciliation sync, and serve the HTTP API on loopback for the other commands.
Creates the repo first if there is none. Stops cleanly on Ctrl-C or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDaemon(cmd, listen, bootstrap, apiAddr)
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", nil, "libp2p listen multiaddr, repeatable (default from config: TCP and QUIC on port 4040)")
	cmd.Flags().StringArrayVar(&bootstrap, "bootstrap", nil, "peer to connect to, as a multiaddr ending in /p2p/<peer-id>; repeatable")
	cmd.Flags().StringVar(&apiAddr, "api", "", "HTTP API address host:port (default from config: 127.0.0.1 on a free port)")
	return cmd
}

func (a *app) runDaemon(cmd *cobra.Command, listen, bootstrap []string, apiAddr string) error {
	if err := a.checkRepoFlag(); err != nil {
		return err
	}
	log, err := a.logger(slog.LevelInfo)
	if err != nil {
		return err
	}
	repo, err := node.OpenRepo(a.repoDir)
	if errors.Is(err, node.ErrNoRepo) {
		var id fmt.Stringer
		if repo, id, err = node.InitRepo(a.repoDir, log); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "initialised new repo at %s (peer ID %s)\n", a.repoDir, id)
	} else if err != nil {
		return err
	}
	cfg, err := repo.Config()
	if err != nil {
		return err
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	cfg.Bootstrap = append(cfg.Bootstrap, bootstrap...)
	if apiAddr != "" {
		cfg.API = apiAddr
	}
	key, err := repo.Key()
	if err != nil {
		return err
	}
	st, err := repo.OpenStore(log)
	if err != nil {
		return err
	}
	n, err := node.New(node.Config{Store: st, Key: key, Listen: cfg.Listen, Bootstrap: cfg.Bootstrap, Logger: log})
	if err != nil {
		st.Close()
		return err
	}
	ctx := cmd.Context()
	if err := n.Start(ctx); err != nil {
		n.Close()
		return err
	}
	token := node.NewToken()
	addr, err := n.ServeAPI(cfg.API, token)
	if err != nil {
		n.Close()
		return err
	}
	if err := repo.WriteAPI(addr.String(), token); err != nil {
		n.Close()
		return err
	}
	id, _ := n.ID(ctx)
	for _, a2 := range id.Addresses {
		fmt.Fprintf(a.stdout, "listening on %s\n", a2)
	}
	fmt.Fprintf(a.stdout, "API on http://%s\n", addr)
	<-ctx.Done()
	fmt.Fprintln(a.stderr, "shutting down")
	repo.RemoveAPI()
	return n.Close()
}
