package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/testnet/bench"
	"github.com/commons-p2p/commons/testnet/gen"
)

func (a *app) testnetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Synthetic commons and benchmarks",
	}
	cmd.AddCommand(a.testnetGenCmd(), a.testnetBenchCmd())
	return cmd
}

func (a *app) testnetGenCmd() *cobra.Command {
	var o gen.Options
	var out string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "gen --records N --authors K [--maintainers M] [--seed S] --out FILE.car",
		Short: "Write a valid, realistic synthetic commons to a CAR file",
		Long: `Generate a synthetic commons: a genesis manifest, manifest updates that rotate
maintainers, contributions from K authors (some with payload references, some
paid, some revising others) and reviews from the maintainers of the time
(accept, reject, retract; some reaching quorum), spread over time. The same
options give the same bytes. Import it with "commons import FILE.car".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if o.Records < 1 || o.Authors < 1 || o.Maintainers < 1 {
				return fmt.Errorf("--records, --authors and --maintainers must be at least 1")
			}
			start := time.Now()
			tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			defer os.Remove(tmp.Name())
			p := a.newProgress(quiet, "generating "+out, 0)
			w := bufio.NewWriterSize(p.writer(stopWriter{cmd.Context(), tmp}), 1<<20)
			g, err := gen.WriteCAR(o, w) // streams: memory does not grow with --records
			if err == nil {
				err = w.Flush()
			}
			p.end()
			if cerr := cmd.Context().Err(); cerr != nil {
				tmp.Close()
				return fmt.Errorf("interrupted: %s not written", out)
			}
			if err == nil {
				err = tmp.Chmod(0o644)
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), out)
			}
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(a.stderr, "commons %s: %d records (%d manifests, %d contributions, %d reviews), %d bytes, generated in %v\n",
				g.ID, g.Records, g.Manifests, g.Contributions, g.Reviews, g.Bytes, time.Since(start).Round(time.Millisecond))
			a.printCID(g.ID.String())
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Records, "records", 1000, "number of records, genesis included")
	fs.IntVar(&o.Authors, "authors", 50, "number of contributor keys")
	fs.IntVar(&o.Maintainers, "maintainers", 5, "number of maintainers at a time")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed: the same seed gives the same bytes")
	fs.BoolVar(&o.NoPayloads, "no-payloads", false, "leave payload references out (their blobs do not exist)")
	fs.StringVar(&out, "out", "", "CAR file to write")
	fs.BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	return cmd
}

func (a *app) testnetBenchCmd() *cobra.Command {
	var o bench.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench SCENARIO [--records N] [--json]",
		Short: "Run a benchmark: " + strings.Join(bench.ScenarioNames(), ", "),
		Long: `Run a benchmark scenario and print its figures together with the baseline
measured in the same run:

  ingest     import N records (badger) vs a bare ed25519.Verify loop
  join       a fresh node syncs N records from one peer over loopback TCP
             vs a local import of the same CAR, and bytes on the wire vs
             the records' size
  repair     two nodes each missing 1% / 0.01% of the other's records:
             bytes on the wire vs the missing records' size
  propagate  time for a record to reach every node of a simulated network
             (p50, p99) vs raw gossipsub
  partition  two halves write apart, then heal: time to one state root,
             records missing
  byzantine  100 members, a fifth of them hostile (withholding gossip,
             flooding forgeries and signed junk, stalling syncs and
             blobs): time for a record and a payload to reach every honest
             node, attacked vs the same honest nodes alone, state roots,
             forgeries stored
  flood      1,000 validly signed junk records a second (--rate) from
             peers that come back with new keys once banned: time for an honest
             record to reach every honest node, flooded vs quiet, on a
             commons that asks no proof of work and on one that asks 16
             bits; junk stored
  scale      each step a process of this binary, as users run it: generate
             N records, import them (time, rate vs a batch-verify of the
             same signatures on every core, peak memory, disk use), start a
             daemon (time, memory), query it (status, contribution, feed
             page: p50, p99, and on Linux what the daemon read from the
             disk a call), and join them from a second daemon over
             loopback (time vs the import, peak memory)

propagate, partition, byzantine and flood run in real time here, where CPU
costs count; their Go benchmarks run them in virtual time (network delays
only):
go test -run '^$' -bench 'Propagate|Partition|Byzantine|Flood' -benchtime 1x -v ./testnet`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: bench.ScenarioNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := a.logger(slog.LevelError)
			if err != nil {
				return err
			}
			o.Logger = log
			run, ok := bench.Scenarios[args[0]]
			if !ok {
				return fmt.Errorf("no scenario %q: want one of %s", args[0], strings.Join(bench.ScenarioNames(), ", "))
			}
			res, err := run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return res.WriteJSON(a.stdout)
			}
			res.WriteText(a.stdout)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Records, "records", 0, "records in the commons (default: 10000 for ingest, join, repair and scale; 200 for partition)")
	fs.IntVar(&o.Nodes, "nodes", 0, "nodes (propagate: default 50; partition: default 10; byzantine: members, default 100, a fifth hostile; flood: honest nodes, default 20)")
	fs.IntVar(&o.Rounds, "rounds", 0, "records timed by propagate, and by each phase of byzantine and flood (default 20)")
	fs.IntVar(&o.Rate, "rate", 0, "flood: junk records a second, all flooders together (default 1000)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed")
	fs.StringVar(&o.Dir, "dir", "", "directory for the badger stores (default: a temporary one)")
	fs.StringVar(&o.CAR, "car", "", "scale: import this commons (a CAR from testnet gen or export) instead of generating one; --records is ignored")
	fs.BoolVar(&o.NoJoin, "no-join", false, "scale: leave out the join")
	fs.StringVar(&o.Imported, "imported", "", "scale: start and query this repo, into which the records of --car were imported already (as --keep leaves it: its directory a), instead of importing them into a fresh one")
	fs.BoolVar(&o.Keep, "keep", false, "scale: keep the CAR and the repos (in --dir, or a temporary directory) and say where, to look into or profile them")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
