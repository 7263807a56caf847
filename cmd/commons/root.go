package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// app holds what every command shares.
type app struct {
	stdout, stderr io.Writer
	repoDir        string
	logLevel       string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "commons",
		Short: "A peer-to-peer node for commons-based peer production",
		Long: `Commons replicates a commons — signed contributions, maintainers' reviews and
the association's licence manifest — between peers, with no central server.

Start a node with "commons daemon"; the other commands talk to it (or, when no
daemon runs, act on the repo directly).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionText(readBuildInfo()),
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetOut(stdout)
	root.SetErr(stderr)
	def := os.Getenv("COMMONS_REPO")
	if def == "" {
		if home, err := os.UserHomeDir(); err == nil {
			def = filepath.Join(home, ".commons")
		}
	}
	root.PersistentFlags().StringVar(&a.repoDir, "repo", def, "repo directory ($COMMONS_REPO, else ~/.commons)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn, error (default info for the daemon, warn otherwise)")
	root.AddCommand(
		a.initCmd(), a.daemonCmd(), a.idCmd(), a.manifestCmd(), a.joinCmd(), a.leaveCmd(), a.repoCmd(),
		a.contributeCmd(), a.reviewCmd(), a.sponsorCmd(), a.profileCmd(), a.reciprocityCmd(), a.pledgeCmd(), a.acknowledgeCmd(), a.disputeCmd(), a.certificateCmd(), a.rotateCmd(), a.showCmd(), a.feedCmd(), a.statusCmd(),
		a.peersCmd(), a.exportCmd(), a.importCmd(),
	)
	root.AddCommand(a.getCmd())
	root.AddCommand(a.testnetCmd())
	root.AddCommand(a.syncCmd())
	root.AddCommand(a.configCmd())
	root.AddCommand(a.versionCmd())
	return root
}

func (a *app) logger(def slog.Level) (*slog.Logger, error) {
	lvl := def
	if a.logLevel != "" {
		if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", a.logLevel)
		}
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

func (a *app) checkRepoFlag() error {
	if a.repoDir == "" {
		return errors.New("no repo directory: set --repo or $COMMONS_REPO")
	}
	return nil
}

// connect returns the API of the repo's running daemon, or, when none
// answers, an offline node on the repo itself. done releases it.
func (a *app) connect(ctx context.Context) (d api.API, done func(), err error) {
	if err := a.checkRepoFlag(); err != nil {
		return nil, nil, err
	}
	r, err := repo.OpenRepo(a.repoDir)
	if err != nil {
		return nil, nil, err
	}
	if addr, token, ok := r.API(); ok {
		c := api.NewClient(addr, token)
		if err := c.Ping(ctx); err == nil {
			return c, func() {}, nil
		}
	}
	if daemonStarting(r.Dir) {
		c, err := a.awaitDaemon(ctx, r, errors.New("a daemon is starting on it"))
		if err != nil {
			return nil, nil, err
		}
		return c, func() {}, nil
	}
	s, _, err := r.Settings(os.LookupEnv, "")
	if err != nil {
		return nil, nil, err
	}
	limitMemory(s)
	log, err := a.logger(slog.LevelWarn)
	if err != nil {
		return nil, nil, err
	}
	st, err := r.OpenStore(log)
	if errors.Is(err, badgerstore.ErrLocked) {
		// A daemon starting (or another command) holds the store.
		c, werr := a.awaitDaemon(ctx, r, err)
		if werr != nil {
			return nil, nil, werr
		}
		return c, func() {}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("no daemon answers for %s, and opening the repo directly failed: %w", a.repoDir, err)
	}
	key, err := r.Key()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	n, err := node.New(node.Config{Store: st, Key: key, Offline: true, Logger: log,
		FreeSpace: r.FreeSpace, DiskMargin: uint64(s.DiskMargin) << 20})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return nil, nil, err
	}
	return n, func() {
		switch err := n.Close(); {
		case errors.Is(err, api.ErrDiskFull):
			fmt.Fprintln(a.stderr, "commons: the disk is full: what the last records imply was not saved, and the next start derives it again from them")
		case err != nil:
			fmt.Fprintf(a.stderr, "commons: closing repo: %v\n", err)
		}
	}, nil
}

// withAPI runs fn against the node and releases it afterwards.
func (a *app) withAPI(cmd *cobra.Command, fn func(d api.API) error) error {
	d, done, err := a.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer done()
	return fn(d)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printCID prints a new record's CID, alone on stdout.
func (a *app) printCID(c string) { fmt.Fprintln(a.stdout, c) }

// printPublished prints a published record's CID on stdout and, on
// stderr, anything the user must know: that the commons holds it inert
// (forced), that it waits, is contested or suspended, and any warning.
func (a *app) printPublished(p api.Published) {
	a.printCID(p.CID)
	switch p.Class {
	case "inert":
		fmt.Fprintf(a.stderr, "published as forced, but the commons holds it inert: %s\n", p.Reason)
	case "waiting":
		fmt.Fprintf(a.stderr, "note: it waits for a record it links to, which has not arrived here; it takes effect when that arrives\n")
	case "contested":
		fmt.Fprintf(a.stderr, "note: this manifest is contested: keys that together meet a threshold act against each other, and neither side counts until one revocation is undisputed (see commons manifest show)\n")
	case "suspended":
		fmt.Fprintf(a.stderr, "note: a contest holds this review undecided (%s); it counts once the contest is decided\n", p.Reason)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(a.stderr, "warning: %s\n", w)
	}
}

// requireFlags takes pairs of a flag's name and its value, and says which
// of the flags have no value: "--title is required", "--commons and
// --title are required".
func requireFlags(nameValues ...string) error {
	var missing []string
	for i := 0; i+1 < len(nameValues); i += 2 {
		if nameValues[i+1] == "" {
			missing = append(missing, nameValues[i])
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s is required", missing[0])
	}
	return fmt.Errorf("%s and %s are required", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
}

func parseKeys(flag string, vals []string) ([]protocol.PublicKey, error) {
	out := make([]protocol.PublicKey, 0, len(vals))
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			k, err := protocol.ParsePublicKey(s)
			if err != nil {
				return nil, fmt.Errorf("--%s %q: not a peer ID (12D3KooW…) or hex ed25519 key", flag, s)
			}
			out = append(out, k)
		}
	}
	return out, nil
}

// limitMemory sets the Go runtime's soft memory limit to the memory_limit
// setting, unless $GOMEMLIMIT sets one (the runtime read it at start), and
// has the garbage collector run once the heap has grown by half of what
// was live after the last run, not by all of it (gcPercent), unless $GOGC
// says otherwise.
func limitMemory(s repo.Settings) {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok || s.MemoryLimit == 0 {
		return
	}
	debug.SetMemoryLimit(int64(s.MemoryLimit) << 20)
}

// gcPercent is the growth of the heap, in percent of what was live after
// the last collection, that starts the next: the runtime's default is
// 100. Most of what an import or a join allocates is garbage within the
// batch (records parsed, keys built, badger's writes): importing 1,000,000
// records (2 cores, four runs each, alternately) held at most 197 to 214
// MB of anonymous memory against 222 to 231 MB, in 79 to 95 s against 80
// to 95 s (the collector took 2% of the CPU at the runtime's default).
// The peaks of resident memory, 381 to 434 MB against 401 to 473, differ
// less than the file pages of badger's compactions do from run to run.
const gcPercent = 50
