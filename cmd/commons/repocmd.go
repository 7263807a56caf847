package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

func (a *app) repoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Check the repo's store, repair damaged records, give back the space of deleted ones",
	}
	cmd.AddCommand(a.repoVerifyCmd(), a.repoRepairCmd(), a.repoCompactCmd())
	return cmd
}

func (a *app) repoCompactCmd() *cobra.Command {
	var asJSON, disowned bool
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Give the disk space of deleted data back (after leave --purge), with the daemon stopped",
		Long: `Give back the disk space of what the store no longer holds, with the repo's
daemon stopped: the records of a commons left with leave --purge, and values
written over. The store keeps them on disk until then, since it never
rewrites a file that might hold the only copy of a record.

compact writes the store again into a new directory beside it, with the
newest value of every key (the commons' derived state included, so the next
start is as quick as before), and once the copy is whole puts it in the old
one's place (in one step, on Linux) and deletes the old one. It needs free space for
the copy, and refuses to start on a disk with less free than the store
takes. A copy that fails is deleted and the store left as it was; damage is
copied as it reads, for repo verify to name and repo repair to mend.

With --disowned, it first deletes what the commons disowned, in the commons
that ban keys (manifest update --ban): the payloads that only records of
banned keys reference, which the node neither fetches nor serves once the
key is banned, but keeps what it stored before; and the bytes of the banned
keys' contributions and reviews. Those records keep their place in the
commons' state (the state root does not change), so syncs with peers that
hold them carry nothing, and they are not stored again when they come
again; peers that lack them cannot have them from this node. Kept: a
banned key's paid work that names a sponsor, its profiles, manifests and
other records, which the rules read again as records arrive. Mind that a
ban can be lifted (a stolen association key's ban goes with the key): what
every node deleted then comes back only from its author (and repo repair
--from a peer's export writes dropped records back). And a node that
derives a commons' state again from its records (the first start of a
version with other rules, or after repo repair) cannot derive the dropped
ones: it leaves them out until a peer that kept them syncs, and records
that name them wait meanwhile.`,
		Example: `  commons leave COMMONS-ID --purge
  # stop the daemon, then:
  commons repo compact
  commons repo compact --disowned     # also what banned keys published`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkRepoFlag(); err != nil {
				return err
			}
			r, err := repo.OpenRepo(a.repoDir)
			if err != nil {
				return err
			}
			if err := daemonRuns(cmd.Context(), r); err != nil {
				return fmt.Errorf("%w; compact writes the store itself", err)
			}
			log, err := a.logger(slog.LevelWarn)
			if err != nil {
				return err
			}
			var out struct {
				Before        int64 `json:"bytes_before"`
				After         int64 `json:"bytes_after"`
				Disowned      int   `json:"disowned_blobs_deleted"`
				DisownedBytes int64 `json:"disowned_bytes_deleted"`
				Records       int   `json:"disowned_records_dropped"`
				RecordBytes   int64 `json:"disowned_record_bytes_dropped"`
			}
			if disowned {
				var d disownedDropped
				err := a.dropDisowned(cmd, &d)
				out.Disowned, out.DisownedBytes, out.Records, out.RecordBytes = d.blobs, d.blobBytes, d.records, d.recordBytes
				if err != nil {
					if d.blobs > 0 || d.records > 0 {
						return fmt.Errorf("%w (%s and %s dropped before; the store was not written again)", err, plural(d.blobs, "payload"), plural(d.records, "record"))
					}
					return err
				}
			}
			if !asJSON {
				fmt.Fprintln(a.stderr, "writing the store again (minutes for a large repo)")
			}
			if out.Before, out.After, err = badgerstore.Compact(cmd.Context(), r.StoreDir(), log); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(out)
			}
			if disowned {
				fmt.Fprintf(a.stdout, "deleted: %s that only banned keys' records reference (%s)\n", plural(out.Disowned, "payload"), sizeText(out.DisownedBytes))
				fmt.Fprintf(a.stdout, "dropped: the bytes of %s of banned keys (%s); the commons' state keeps their place\n", plural(out.Records, "record"), sizeText(out.RecordBytes))
			}
			fmt.Fprintf(a.stdout, "store: %s before, %s now (%s given back)\n", sizeText(out.Before), sizeText(out.After), sizeText(max(out.Before-out.After, 0)))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the sizes as JSON")
	cmd.Flags().BoolVar(&disowned, "disowned", false, "first delete the payloads that only banned keys' records reference, and the bytes of those keys' contributions and reviews")
	return cmd
}

// disownedDropped is what dropDisowned deleted.
type disownedDropped struct {
	blobs, records         int
	blobBytes, recordBytes int64
}

// dropDisowned deletes the repo's disowned payloads (node.DropDisowned),
// then drops the bytes of its disowned records (node.DropDisownedRecords),
// through a node opened on the repo, offline; it counts in out what it
// deleted, also when it fails part way.
func (a *app) dropDisowned(cmd *cobra.Command, out *disownedDropped) error {
	d, done, err := a.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer done()
	n, ok := d.(*node.Node)
	if !ok {
		return errors.New("a daemon started on the repo meanwhile: stop it, and run repo compact again")
	}
	if out.blobs, out.blobBytes, err = n.DropDisowned(cmd.Context()); err != nil {
		return err
	}
	out.records, out.recordBytes, err = n.DropDisownedRecords(cmd.Context())
	return err
}

// sizeText formats a size in bytes in the largest of KiB, MiB and GiB it
// makes at least 1 of (KiB below that), to one decimal.
func sizeText(n int64) string {
	f := float64(n)
	switch {
	case f >= 1<<30:
		return fmt.Sprintf("%.1f GiB", f/(1<<30))
	case f >= 1<<20:
		return fmt.Sprintf("%.1f MiB", f/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", f/(1<<10))
}

func (a *app) repoRepairCmd() *cobra.Command {
	var from string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "repair [--from FILE.car]",
		Short: "Repair a damaged store: records from a peer's export, the rest from the records",
		Long: `Repair the repo's store, with its daemon stopped:

 1. With --from, read a CAR file of records (one a peer wrote with commons
    export) and, for every record of it that the store holds damaged (its
    bytes no longer hash to its CID: repo verify names them), write the
    file's bytes in their place. Records the store does not hold are not
    added (commons import adds them); blocks of the file that do not hash
    to their CID are left out.
 2. Check the whole store, as repo verify does. If anything is damaged,
    write the store again, into a new directory, from the newest value of
    each key: the tables that fail their checksums go, and the derived
    state (statuses, lists, the feed's rows, indexes) is left out, to be
    computed again from the records at the next start. The old store is
    moved aside, whole, beside the new one (delete it once the repo works).
 3. Check the new store, and exit 1 if anything is still wrong (a damaged
    record no file given held). The daemon starts all the same: it leaves
    the damaged records out of the commons' state, and the first peer that
    holds them sends them again at its next sync, whole, in their place.

A damaged byte in the newest value log file stops the store from opening:
badger would lose what was written after it. Then repair first mends that
file, where the damage lies inside records (the file as it was is kept
beside it, as NAME.damaged), and writes the store again; the damaged record
then shows as such, for step 1 to write again.`,
		Example: `  commons repo verify                      # names what is damaged
  commons --repo ~/peer export --commons ID --out peer.car   # on a peer
  commons repo repair --from peer.car`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkRepoFlag(); err != nil {
				return err
			}
			var f *os.File
			if from != "" {
				var err error
				if f, err = os.Open(from); err != nil {
					return err
				}
				defer f.Close()
			}
			r, err := repo.OpenRepo(a.repoDir)
			if err != nil {
				return err
			}
			storeDir := r.StoreDir()
			out := struct {
				repo.RepairReport
				Rebuilt string                   `json:"rebuilt_aside,omitempty"` // where the old store was moved
				Verify  badgerstore.VerifyReport `json:"verify"`
			}{RepairReport: repo.RepairReport{Repaired: []string{}}}
			rebuild := func() error {
				log, err := a.logger(slog.LevelWarn)
				if err != nil {
					return err
				}
				out.Rebuilt, err = badgerstore.Rebuild(cmd.Context(), storeDir, log)
				return err
			}
			bs, done, err := a.openStoreStopped(cmd, "repair")
			if errors.Is(err, store.ErrCorrupt) {
				// A log file damaged: the store does not open until
				// Rebuild has mended it.
				if !asJSON {
					fmt.Fprintf(a.stderr, "%v\nmending it and writing the store again (minutes for a large repo)\n", err)
				}
				if err := rebuild(); err != nil {
					return err
				}
				bs, done, err = a.openStoreStopped(cmd, "repair")
			}
			if err != nil {
				return err
			}
			defer func() { done() }()
			if f != nil {
				if out.RepairReport, err = repo.Repair(cmd.Context(), bs, f); err != nil {
					return fmt.Errorf("repair from %s: %w (%s written again before)", from, err, plural(out.RepairedTotal, "record"))
				}
			}
			if out.Verify, err = bs.Verify(cmd.Context()); err != nil {
				return err
			}
			if out.Verify.DamagedAll > 0 && out.Rebuilt == "" {
				if !asJSON {
					fmt.Fprintln(a.stderr, "writing the store again from its records (minutes for a large repo)")
				}
				done()
				done = func() {}
				if err := rebuild(); err != nil {
					return err
				}
				if bs, done, err = a.openStoreStopped(cmd, "repair"); err != nil {
					done = func() {}
					return err
				}
				if out.Verify, err = bs.Verify(cmd.Context()); err != nil {
					return err
				}
			}
			if asJSON {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				if f != nil {
					fmt.Fprintf(a.stdout, "records read from %s: %d\nrepaired:              %d\n", from, out.Read, out.RepairedTotal)
				}
				for _, c := range out.Repaired {
					fmt.Fprintf(a.stdout, "repaired: %s\n", c)
				}
				if out.Unusable > 0 {
					fmt.Fprintf(a.stdout, "left out: %s of the file whose bytes do not hash to their CID\n", plural(out.Unusable, "block"))
				}
				if out.Rebuilt != "" {
					fmt.Fprintf(a.stdout, "written again: the old store is at %s (delete it once the repo works); the derived state is computed again at the next start\n", out.Rebuilt)
				}
			}
			return a.reportDamage(out.Verify, asJSON, "still damaged", "repair --from a file that holds those records (a peer's commons export), or start the daemon: it leaves them out of the commons' state, and a peer that holds them sends them again when they sync")
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "CAR file of the commons' records (a peer's commons export)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// openStoreStopped opens the repo's store for a command that reads it
// itself (what), refusing while a daemon runs on the repo; done closes it.
func (a *app) openStoreStopped(cmd *cobra.Command, what string) (*badgerstore.Store, func(), error) {
	r, err := repo.OpenRepo(a.repoDir)
	if err != nil {
		return nil, nil, err
	}
	if err := daemonRuns(cmd.Context(), r); err != nil {
		return nil, nil, fmt.Errorf("%w; %s reads the store itself", err, what)
	}
	log, err := a.logger(slog.LevelWarn)
	if err != nil {
		return nil, nil, err
	}
	st, err := r.OpenStore(log)
	if err != nil {
		return nil, nil, fmt.Errorf("the store cannot be opened: %w", err)
	}
	bs, ok := st.(*badgerstore.Store)
	if !ok {
		_ = st.Close()
		return nil, nil, fmt.Errorf("this store cannot be checked by %s", what)
	}
	return bs, func() { _ = bs.Close() }, nil
}

func (a *app) repoVerifyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole store: table checksums, every record against its CID, the feed logs",
		Long: `Read the whole store once and check it: every block of badger's tables against
its checksum (naming the first damaged table file), every record against its
CID, and each commons' feed log against its head and its records. Prints what
it checked and each thing found wrong (the first 100), and exits 1 if anything
is. Runs on a repo whose daemon is stopped.

A damaged repo's records can be had again from peers: repo repair writes them
again from a file a peer exported (commons export). A daemon that finds a
damaged record while it derives a commons' state (at the first start after
repo repair, or of a version with other rules) leaves it out of the state,
says so in its log, and takes it again from the first peer that syncs it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkRepoFlag(); err != nil {
				return err
			}
			bs, done, err := a.openStoreStopped(cmd, "verify")
			if err != nil {
				return err
			}
			defer done()
			rep, err := bs.Verify(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "records read whole: %d\nblobs read whole:   %d\nfeed entries:       %d\n", rep.Records, rep.Blobs, rep.FeedEntries)
				if rep.Dropped > 0 {
					fmt.Fprintf(a.stdout, "records dropped:    %d (banned keys', by repo compact --disowned)\n", rep.Dropped)
				}
			}
			return a.reportDamage(rep, asJSON, "damaged", "run commons repo repair: the daemon then takes damaged records again from its peers (commons repo repair --from a file a peer exported writes them at once); it fetches a damaged blob again from a peer when it is read or a peer asks for it")
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// reportDamage prints what Verify found damaged (unless asJSON), each
// line headed so, and returns an error giving advice if anything is.
func (a *app) reportDamage(rep badgerstore.VerifyReport, asJSON bool, head, advice string) error {
	if !asJSON {
		for _, d := range rep.Damaged {
			fmt.Fprintf(a.stdout, "%s: %s\n", head, d)
		}
		if more := rep.DamagedAll - len(rep.Damaged); more > 0 {
			fmt.Fprintf(a.stdout, "... and %d more\n", more)
		}
	}
	if rep.DamagedAll > 0 {
		return fmt.Errorf("the store of %s is %s (%s found): %s", a.repoDir, head, plural(rep.DamagedAll, "problem"), advice)
	}
	if !asJSON {
		fmt.Fprintln(a.stderr, "the store is whole")
	}
	return nil
}
