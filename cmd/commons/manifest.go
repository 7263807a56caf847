package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
)

func (a *app) manifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Create, update or show a commons' licence manifest",
	}
	cmd.AddCommand(a.manifestCreateCmd(), a.manifestUpdateCmd(), a.manifestShowCmd(), a.manifestCosignCmd(), a.manifestPublishCmd())
	return cmd
}

// manifestFlags are the settings shared by create and update.
type manifestFlags struct {
	name, licence                                string
	maintainers, association, revoke, ban, unban []string
	bootstrap                                    []string
	quorum, rejectQuorum, threshold              uint64
	maxBlob, work                                uint64
	force, bans, coalition, assocRecords         bool
	on                                           []string
}

func (f *manifestFlags) register(fs *pflag.FlagSet, update bool) {
	fs.StringVar(&f.name, "name", "", "the commons' name")
	fs.StringVar(&f.licence, "licence", "", "SPDX licence expression, e.g. CC-BY-SA-4.0 or (MIT OR Apache-2.0)")
	fs.StringArrayVar(&f.maintainers, "maintainer", nil, "maintainer peer ID; repeatable")
	fs.Uint64Var(&f.quorum, "quorum", 0, "accepts needed to accept a contribution (default 1 when there are maintainers)")
	fs.Uint64Var(&f.rejectQuorum, "reject-quorum", 0, "rejects needed to reject a contribution (default: the quorum)")
	fs.StringArrayVar(&f.association, "association", nil, "association key (peer ID) that signs manifest updates; repeatable (default: this node's key)")
	fs.Uint64Var(&f.threshold, "threshold", 0, "association signatures an update needs (default 1)")
	fs.StringArrayVar(&f.bootstrap, "bootstrap", nil, "bootstrap peer multiaddr (ending in /p2p/<peer-id>) for the commons; repeatable")
	fs.Uint64Var(&f.maxBlob, "max-blob-bytes", 0, "largest payload file the commons accepts (default 64 MiB)")
	fs.Uint64Var(&f.work, "work", 0, "proof of work, in bits (0 to 24), that every later record of the commons must carry: each bit doubles what a record costs its author, about 16 ms of one core at 16 bits and 0.25 s at 20, so that a flood of junk costs its sender far more than its receivers; set once, for the commons' life (default 0: none)")
	fs.BoolVar(&f.bans, "bans", true, "let the commons' manifests ban keys that flood it (manifest update --ban); --bans=false founds a commons that can never ban, readable by nodes too old to know bans")
	fs.BoolVar(&f.coalition, "coalition", true, "let the commons carry the entrepreneurial coalition's records: profiles (commons profile) and sponsors' countersignatures of paid work (commons sponsor); --coalition=false founds a commons readable by nodes too old to know them")
	fs.BoolVar(&f.assocRecords, "association-records", true, "let the commons carry the association's records: disputes and their resolutions (commons dispute), certificates (commons certificate) and key rotations; --association-records=false founds a commons readable by nodes too old to know them")
	if update {
		// Only a genesis sets them: given to an update, the node says so.
		_ = fs.MarkHidden("work")
		_ = fs.MarkHidden("bans")
		_ = fs.MarkHidden("coalition")
		_ = fs.MarkHidden("association-records")
	}
	if update {
		fs.StringArrayVar(&f.revoke, "revoke", nil, "compromised key (peer ID): its reviews count nowhere, its signature on any manifest this update does not build on counts for nothing, and it leaves the association and the maintainers; repeatable")
		fs.StringArrayVar(&f.ban, "ban", nil, "key (peer ID) flooding the commons with junk: its contributions and reviews count for nothing, whenever they were made, while a version bans it (later versions keep the ban unless --unban); not for keys this update lists as association or maintainers; repeatable")
		fs.StringArrayVar(&f.unban, "unban", nil, "banned key (peer ID) whose ban this update lifts: its contributions and reviews count again; repeatable")
		fs.BoolVar(&f.force, "force", false, "publish (or draft) the update even if the commons would hold it inert")
		fs.StringArrayVar(&f.on, "on", nil, "build on this manifest version (CID) instead of the current heads, e.g. the last one before an update made with a stolen key; repeatable")
	}
}

// params turns the flags that were given into manifest parameters.
func (f *manifestFlags) params(fs *pflag.FlagSet) (api.ManifestParams, error) {
	p := api.ManifestParams{Force: f.force, On: f.on}
	var err error
	if fs.Changed("name") {
		p.Name = &f.name
	}
	if fs.Changed("licence") {
		p.Licence = &f.licence
	}
	if fs.Changed("maintainer") {
		if p.Maintainers, err = parseKeys("maintainer", f.maintainers); err != nil {
			return p, err
		}
	}
	if fs.Changed("association") {
		if p.Association, err = parseKeys("association", f.association); err != nil {
			return p, err
		}
	}
	if fs.Changed("revoke") {
		if p.Revoke, err = parseKeys("revoke", f.revoke); err != nil {
			return p, err
		}
	}
	if fs.Changed("ban") {
		if p.Ban, err = parseKeys("ban", f.ban); err != nil {
			return p, err
		}
	}
	if fs.Changed("unban") {
		if p.Unban, err = parseKeys("unban", f.unban); err != nil {
			return p, err
		}
	}
	if fs.Changed("bans") {
		p.Bans = &f.bans
	}
	if fs.Changed("coalition") {
		p.Coalition = &f.coalition
	}
	if fs.Changed("association-records") {
		p.AssociationRecords = &f.assocRecords
	}
	if fs.Changed("bootstrap") {
		p.Bootstrap = []string{}
		for _, b := range f.bootstrap {
			if !strings.Contains(b, "/p2p/") {
				return p, fmt.Errorf("--bootstrap %q: give a multiaddr ending in /p2p/<peer-id> (see commons id)", b)
			}
			p.Bootstrap = append(p.Bootstrap, b)
		}
	}
	for name, dst := range map[string]**uint64{"quorum": &p.Quorum, "reject-quorum": &p.RejectQuorum, "threshold": &p.Threshold, "max-blob-bytes": &p.MaxBlobBytes, "work": &p.Work} {
		if fs.Changed(name) {
			v, _ := fs.GetUint64(name)
			*dst = &v
		}
	}
	return p, nil
}

func (a *app) manifestCreateCmd() *cobra.Command {
	var f manifestFlags
	var draft string
	cmd := &cobra.Command{
		Use:   "create --name NAME --licence SPDX [flags]",
		Short: "Found a commons: publish its genesis manifest; prints the commons ID",
		Long: `Found a commons: publish its genesis manifest; prints the commons ID.

By default this node's key is the association's only key. Keys that can sign
a version alone can always contest the versions after it, even once revoked
(protocol/SPEC.md §12.1), so a foundation of several members founds with all
their keys and a threshold of 2 or more, drafted and co-signed:
  commons manifest create --name N --licence L --association K1 --association K2 \
      --association K3 --threshold 2 --draft genesis.car
  commons manifest cosign genesis.car       (by another member)
  commons manifest publish genesis.car      (prints the commons ID)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", f.name, "--licence", f.licence); err != nil {
				return err
			}
			p, err := f.params(cmd.Flags())
			if err != nil {
				return err
			}
			return a.withAPI(cmd, func(d api.API) error {
				if draft != "" {
					raw, err := d.DraftManifest(cmd.Context(), "", p)
					if err != nil {
						return err
					}
					if err := os.WriteFile(draft, raw, 0o644); err != nil {
						return fmt.Errorf("--draft: %w", err)
					}
					fmt.Fprintf(a.stderr, "genesis draft written to %s: have it co-signed (commons manifest cosign %s) up to the threshold, then publish it (commons manifest publish %s), which prints the commons ID\n", draft, draft, draft)
					return nil
				}
				c, err := d.CreateManifest(cmd.Context(), p)
				if err != nil {
					return err
				}
				a.printCID(c)
				switch {
				case len(p.Association) > 1 && (p.Threshold == nil || *p.Threshold <= 1):
					fmt.Fprintf(a.stderr, "warning: any one of the %d association keys can act alone (threshold 1): a thief holding one can contest every later version, even after it is revoked; found with --threshold 2 and --draft instead (see commons manifest create --help)\n", len(p.Association))
				case len(p.Association) <= 1:
					fmt.Fprintln(a.stderr, "note: this node's key alone founds the commons: whoever holds it can contest every later version, even after it is revoked; a foundation of several members founds with several keys instead (see commons manifest create --help)")
				}
				return nil
			})
		},
	}
	f.register(cmd.Flags(), false)
	cmd.Flags().StringVar(&draft, "draft", "", "write the signed genesis to this file instead of publishing it, for co-signing (a threshold above 1)")
	return cmd
}

func (a *app) manifestUpdateCmd() *cobra.Command {
	var f manifestFlags
	var commons, draft string
	cmd := &cobra.Command{
		Use:   "update --commons ID [flags]",
		Short: "Publish a new manifest version; flags given replace the previous values",
		Long: `Publish a new manifest version on top of the current one (and of every fork
head, which the update merges). Flags given replace the previous values; the
others are kept. --revoke adds to the revoked keys. --ban bans keys that flood
the commons with junk: their contributions and reviews count for nothing,
whenever they were made; the keys banned before stay banned, unless --unban
lifts a ban.

The node asks the commons how the update would stand before publishing it: one
it would hold inert is refused with the reason (unless --force); one that
starts a contest is published and reported as contested. If an update was made
with a stolen association key, build on the last version before it and revoke
that key: --on CID --revoke PEERID (see the README on stolen keys).

When the association's threshold is above 1, write a draft instead:
  commons manifest update --commons ID ... --draft update.car
  commons manifest cosign update.car      (by other association members)
  commons manifest publish update.car
The draft file (a CAR file) carries every manifest of the commons besides the
draft, so a member whose node does not replicate the commons, or has not
synced it, can judge and co-sign it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if commons == "" {
				return fmt.Errorf("--commons is required")
			}
			p, err := f.params(cmd.Flags())
			if err != nil {
				return err
			}
			return a.withAPI(cmd, func(d api.API) error {
				if draft != "" {
					raw, err := d.DraftManifest(cmd.Context(), commons, p)
					if err != nil {
						return err
					}
					if err := os.WriteFile(draft, raw, 0o644); err != nil {
						return fmt.Errorf("--draft: %w", err)
					}
					fmt.Fprintf(a.stderr, "draft written to %s: have it co-signed (commons manifest cosign %s), then publish it\n", draft, draft)
					return nil
				}
				pub, err := d.UpdateManifest(cmd.Context(), commons, p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID (its genesis manifest CID)")
	cmd.Flags().StringVar(&draft, "draft", "", "write the signed update to this file instead of publishing it, for co-signing")
	f.register(cmd.Flags(), true)
	return cmd
}

func (a *app) manifestCosignCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "cosign DRAFT-FILE",
		Short: "Add this node's signature to a drafted manifest, act of the association or rotation (in place)",
		Long: `Add this node's association signature to a drafted manifest (a genesis or an
update), or to another drafted act of the association (commons acknowledge
--draft, dispute resolve --draft, certificate issue --draft), in place; or, on
the successor's node, the successor's signature to a drafted rotation (commons
rotate). The node judges a drafted manifest by its own copy of the commons
when that holds the versions the draft builds on, else by the manifests the
draft file carries: this node's key must be an association key of each version
the draft builds on, and a draft that could not take effect even with every
association signature (it builds on a rejected version, or a revocation
condemns it) is refused with the reason, unless --force. Any other act (an
acknowledgement, a resolution, a certificate, a rotation) it judges by its own
copy of the commons only, so that it knows what it signs: the node must
replicate the commons (commons join ID). It says what the draft sets before it
signs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			draft, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var drafted *protocol.Block
			if rec, err := api.DraftRecord(draft); err == nil {
				if blk, err := protocol.ParseDraft(rec); err == nil {
					drafted = blk
					a.describeDraft(blk) // what is about to be signed
				}
			}
			return a.withAPI(cmd, func(d api.API) error {
				if drafted != nil && drafted.Record.Acknowledgement() != nil {
					a.describePledge(cmd.Context(), d, drafted.Record.Acknowledgement().Pledge.String()) // what it says was met
				}
				raw, err := d.CosignManifest(cmd.Context(), draft, force)
				if err != nil {
					return err
				}
				rec, err := api.DraftRecord(raw) // the whole file, before it replaces the old one
				if err != nil {
					return err
				}
				blk, err := protocol.Parse(rec)
				if err != nil {
					return err
				}
				if err := writeFileAtomic(args[0], raw); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "co-signed: %d signatures (%s); its CID is now %s (a CID covers the signatures: manifest publish prints the one it is published under)\n",
					len(blk.Record.Signers()), keyList(blk.Record.Signers()), blk.CID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "co-sign even if the update could never take effect")
	return cmd
}

func (a *app) manifestPublishCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "publish RECORD-FILE",
		Short: "Validate and publish a signed record from a file (e.g. a co-signed manifest); prints its CID",
		Long: `Validate and publish a signed record from a file (e.g. a co-signed manifest);
prints its CID. A record the commons would hold inert (an update short of
signatures, a review by a revoked key) is refused with the reason, unless
--force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.Publish(cmd.Context(), raw, force)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "publish even if the commons would hold the record inert")
	return cmd
}

func (a *app) manifestShowCmd() *cobra.Command {
	var commons string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show --commons ID",
		Short: "Show a commons' current manifest and its history",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if commons == "" {
				return fmt.Errorf("--commons is required")
			}
			return a.withAPI(cmd, func(d api.API) error {
				info, err := d.Manifest(cmd.Context(), commons)
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(info)
				}
				a.printManifest(info)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printManifest(info api.ManifestInfo) {
	m := info.Manifest
	w := a.stdout
	fmt.Fprintf(w, "commons:       %s\n", info.Commons)
	fmt.Fprintf(w, "name:          %s\n", m.Name)
	fmt.Fprintf(w, "licence:       %s\n", m.Licence)
	fmt.Fprintf(w, "head:          %s (version %d)\n", info.Head, m.Version)
	fmt.Fprintf(w, "association:   %s (threshold %d)\n", keyList(m.Association), m.Threshold)
	fmt.Fprintf(w, "maintainers:   %s\n", keyList(m.Maintainers))
	fmt.Fprintf(w, "quorum:        accept %d, reject %d\n", m.Quorum, m.RejectQuorum)
	if len(info.Revoked) > 0 {
		fmt.Fprintf(w, "revoked:       %s\n", keyList(info.Revoked))
	}
	if len(info.Suspended) > 0 {
		fmt.Fprintf(w, "suspended:     %s (revoked only by contested versions: their reviews count neither way)\n", keyList(info.Suspended))
	}
	if len(info.Banned) > 0 {
		fmt.Fprintf(w, "banned:        %s (their contributions and reviews count for nothing)\n", keyList(info.Banned))
	}
	if len(info.BanSuspended) > 0 {
		fmt.Fprintf(w, "ban suspended: %s (banned only by contested versions: their work is held pending)\n", keyList(info.BanSuspended))
	}
	for _, b := range m.Bootstrap {
		fmt.Fprintf(w, "bootstrap:     %s\n", b)
	}
	fmt.Fprintf(w, "blob limit:    %d bytes\n", m.BlobLimit())
	if info.Bans {
		fmt.Fprintln(w, "bans:          allowed (manifest update --ban; set by the genesis)")
	} else {
		fmt.Fprintln(w, "bans:          never (the genesis does not allow them)")
	}
	if info.Coalition > 0 {
		fmt.Fprintln(w, "coalition:     profiles and sponsorships (commons profile, commons sponsor; set by the genesis)")
	} else {
		fmt.Fprintln(w, "coalition:     none (the genesis does not carry profiles or sponsorships)")
	}
	if info.AssociationRecords > 0 {
		fmt.Fprintln(w, "association:   disputes, resolutions, certificates, rotations (commons dispute, commons certificate; set by the genesis)")
	} else {
		fmt.Fprintln(w, "association:   no disputes or certificates (the genesis does not carry them)")
	}
	if info.Work > 0 {
		fmt.Fprintf(w, "work:          %d bits of proof of work on every record (set by the genesis)\n", info.Work)
	}
	if len(info.Forks) > 0 {
		fmt.Fprintf(w, "FORK:          %d concurrent heads: %s (resolved to the first; an update merges them)\n", len(info.Forks), strings.Join(info.Forks, ", "))
	}
	fmt.Fprintln(w, "history:")
	for _, v := range info.History {
		mark := " "
		if v.Head {
			mark = "*"
		}
		fmt.Fprintf(w, " %s v%-3d %s  %s  by %s\n", mark, v.Version, v.CID, v.Time.Format("2006-01-02 15:04:05Z"), v.Author)
	}
	if len(info.Contested) > 0 {
		fmt.Fprintf(w, "CONTESTED:     %d versions: keys that together meet a threshold revoke each other, and neither side counts\n", len(info.Contested))
		fmt.Fprintln(w, "               until one revocation is undisputed (README: \"When a key is stolen\")")
		for _, v := range info.Contested {
			with := strings.Join(v.ContestedWith, ", ")
			if more := v.ContestedWithTotal - len(v.ContestedWith); more > 0 {
				with += fmt.Sprintf(" and %d more", more)
			}
			fmt.Fprintf(w, " ! v%-3d %s  %s  by %s, contested with %s\n", v.Version, v.CID, v.Time.Format("2006-01-02 15:04:05Z"), v.Author, with)
		}
	}
}

func keyList(ks []protocol.PublicKey) string {
	if len(ks) == 0 {
		return "(none)"
	}
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = k.String()
	}
	return strings.Join(s, ", ")
}

// describeDraft says what a drafted manifest sets.
func (a *app) describeDraft(blk *protocol.Block) {
	r := blk.Record
	switch {
	case r.Resolution() != nil:
		x := r.Resolution()
		what := x.Outcome
		if x.Effect != "" {
			what += " with effect " + x.Effect
		}
		fmt.Fprintf(a.stderr, "resolution %s: %s dispute %s (commons dispute show %s), under manifest %s, signed by %s\nreason: %q\n",
			blk.CID, what, x.Dispute, x.Dispute, x.Under, keyList(r.Signers()), x.Reason)
		return
	case r.Certificate() != nil:
		c := r.Certificate()
		what := fmt.Sprintf("%s as %s", c.Participant, c.Role)
		if c.Release != nil {
			what = fmt.Sprintf("release %q of %s", c.Release.Name, plural(len(c.Release.Contributions), "contribution"))
		}
		fmt.Fprintf(a.stderr, "certificate %s: %s, until %s, under manifest %s, signed by %s\n",
			blk.CID, what, time.UnixMilli(int64(c.Expires)).UTC().Format(time.RFC3339), c.Under, keyList(r.Signers()))
		return
	case r.Rotation() != nil:
		fmt.Fprintf(a.stderr, "rotation %s: key %s hands its identity in commons %s on to %s\n", blk.CID, r.Author, r.Commons, r.Rotation().Successor)
		return
	}
	if ack := blk.Record.Acknowledgement(); ack != nil {
		fmt.Fprintf(a.stderr, "acknowledgement %s: pledge %s met", blk.CID, ack.Pledge)
		if ack.Amount > 0 {
			fmt.Fprintf(a.stderr, " by %d (in the pledge's unit)", ack.Amount)
		}
		if ack.Under != nil {
			fmt.Fprintf(a.stderr, ", under manifest %s", ack.Under)
		}
		fmt.Fprintf(a.stderr, ", signed by %s\n", keyList(blk.Record.Signers()))
		if ack.Note != "" {
			fmt.Fprintf(a.stderr, "note: %q\n", ack.Note)
		}
		return
	}
	m := blk.Record.Manifest()
	if m == nil {
		return
	}
	what := "genesis"
	if !blk.Record.IsGenesis() {
		what = fmt.Sprintf("version %d, building on %s", m.Version, plural(len(m.Prev), "earlier version"))
	}
	fmt.Fprintf(a.stderr, "manifest %s (%s): %q, licence %s, %s (threshold %d), %s (quorum %d), %s revoked, %s banned\n",
		blk.CID, what, m.Name, m.Licence, plural(len(m.Association), "association key"), m.Threshold,
		plural(len(m.Maintainers), "maintainer"), m.Quorum, plural(len(m.Revoked), "key"), plural(len(m.Banned), "key"))
	if len(m.Banned) > 0 {
		fmt.Fprintf(a.stderr, "banned: %s\n", keyList(m.Banned))
	}
}

// describePledge says what pledge c is, as this node holds it, before an
// acknowledgement of it is co-signed.
func (a *app) describePledge(ctx context.Context, d api.API, c string) {
	r, err := d.Show(ctx, c)
	if err != nil || r.Pledge == nil {
		return // the node refuses the co-signature, and says why
	}
	pl := r.Pledge
	to := "the association"
	if pl.Beneficiary != nil {
		to = pl.Beneficiary.String()
	}
	fmt.Fprintf(a.stderr, "the pledge: %s by %s to %s, %s to %s\n", feed.PledgeSummary(pl), r.Author, to,
		time.UnixMilli(int64(pl.From)).UTC().Format(time.DateOnly), time.UnixMilli(int64(pl.Until)).UTC().Format(time.DateOnly))
}

// writeFileAtomic replaces path with data: written beside it, then
// renamed, so that a failure leaves the old file whole.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
