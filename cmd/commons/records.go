package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

func (a *app) contributeCmd() *cobra.Command {
	var p api.ContributeParams
	var files []string
	var revises, sponsor string
	cmd := &cobra.Command{
		Use:   "contribute --commons ID --title T [flags]",
		Short: "Publish a signed contribution; prints its CID",
		Long: `Publish a signed contribution to a commons, under its current manifest (and so
its licence). Files given with --file are stored as payload blobs and referenced
by CID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--commons", p.Commons, "--title", p.Title); err != nil {
				return err
			}
			p.Revises = revises
			if sponsor != "" {
				k, err := protocol.ParsePublicKey(sponsor)
				if err != nil {
					return fmt.Errorf("--sponsor %q: not a peer ID", sponsor)
				}
				p.Sponsor = &k
			}
			blobs := make([][]byte, len(files))
			for i, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("--file: %w", err)
				}
				blobs[i] = data
			}
			return a.withAPI(cmd, func(d api.API) error {
				for i, data := range blobs {
					c, err := d.PutBlob(cmd.Context(), data)
					if err != nil {
						return fmt.Errorf("store %s: %w", files[i], err)
					}
					p.Payload = append(p.Payload, api.PayloadParam{CID: c, Name: filepath.Base(files[i])})
				}
				c, err := d.Contribute(cmd.Context(), p)
				if err == nil {
					a.printCID(c)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&p.Commons, "commons", "", "commons ID")
	fs.StringVar(&p.Title, "title", "", "title")
	fs.StringVar(&p.Summary, "summary", "", "summary")
	fs.StringVar(&p.Kind, "kind", "", "kind, e.g. code, design, data, text (a-z 0-9 - _ .)")
	fs.StringArrayVar(&files, "file", nil, "file to attach as payload; repeatable")
	fs.StringVar(&revises, "revises", "", "CID of a contribution this one revises")
	fs.StringVar(&sponsor, "sponsor", "", "peer ID of whoever paid for the work (implies --paid)")
	fs.BoolVar(&p.Paid, "paid", false, "the work was paid for (default: volunteer)")
	return cmd
}

func (a *app) reviewCmd() *cobra.Command {
	var rationale string
	var force bool
	cmd := &cobra.Command{
		Use:   "review accept|reject|retract CONTRIBUTION-CID",
		Short: "Sign a maintainer's decision on a contribution; prints the review's CID",
		Long: `Sign a maintainer's decision on a contribution; prints the review's CID.

The review names the manifest version it acts under: the current one if it
lists this node's key as a maintainer, else the latest that does and is the
version the contribution assented to or a later one. A review counts only
under such a version, so a maintainer removed from the commons cannot decide
work contributed after the removal. When no version qualifies (this key is no
maintainer for this contribution, or is revoked), the review is refused with
the reason, unless --force.`,
		Args:      cobra.ExactArgs(2),
		ValidArgs: []string{"accept", "reject", "retract"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case protocol.DecisionAccept, protocol.DecisionReject, protocol.DecisionRetract:
			default:
				return fmt.Errorf("review decision %q: want accept, reject or retract", args[0])
			}
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.Review(cmd.Context(), api.ReviewParams{Target: args[1], Decision: args[0], Rationale: rationale, Force: force})
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&rationale, "rationale", "", "why")
	cmd.Flags().BoolVar(&force, "force", false, "publish even if the commons would hold the review inert (this key is no maintainer for it)")
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CID",
		Short: "Show a record; for a contribution, its status and reviews",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				info, err := d.Show(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(info)
				}
				a.printRecord(info)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printRecord(r api.RecordInfo) {
	w := a.stdout
	fmt.Fprintf(w, "cid:      %s\n", r.CID)
	fmt.Fprintf(w, "type:     %s\n", r.Type)
	fmt.Fprintf(w, "commons:  %s\n", r.Commons)
	fmt.Fprintf(w, "author:   %s\n", r.Author)
	fmt.Fprintf(w, "time:     %s\n", r.Time.Format("2006-01-02 15:04:05.000Z"))
	switch {
	case r.Contribution != nil:
		c := r.Contribution
		fmt.Fprintf(w, "title:    %s\n", c.Title)
		if c.Summary != "" {
			fmt.Fprintf(w, "summary:  %s\n", c.Summary)
		}
		if c.Kind != "" {
			fmt.Fprintf(w, "kind:     %s\n", c.Kind)
		}
		fmt.Fprintf(w, "licence:  under manifest %s\n", c.Licence)
		prov := c.Provenance
		if c.Sponsor != nil {
			prov += ", sponsored by " + c.Sponsor.String()
		}
		if c.Sponsor != nil {
			if r.ConfirmedBy != "" {
				prov += " (confirmed: the sponsor countersigned it in " + r.ConfirmedBy + ")"
			} else {
				prov += " (not confirmed: the sponsor has not countersigned it; commons sponsor " + r.CID + ")"
			}
		}
		fmt.Fprintf(w, "work:     %s\n", prov)
		if c.Revises != nil {
			fmt.Fprintf(w, "revises:  %s\n", c.Revises)
		}
		for _, p := range c.Payload {
			fmt.Fprintf(w, "payload:  %s  %s (%d bytes)\n", p.CID, p.Name, p.Size)
		}
		status := r.Status
		if r.Held {
			status += " (held by a contest over the association's keys: its licence version is contested, or votes the contest leaves undecided could decide it; see commons manifest show)"
		}
		if r.WithdrawnBy != "" {
			if r.Status == "withdrawn" {
				status += " (by the association, upholding a dispute: resolution " + r.WithdrawnBy + ")"
			} else {
				status += " (a resolution a contest holds could withdraw it: " + r.WithdrawnBy + ")"
			}
		}
		fmt.Fprintf(w, "status:   %s\n", status)
		for _, v := range r.Reviews {
			note := ""
			switch {
			case v.Inert != "":
				note = " (does not count: " + v.Inert + ")"
			case v.Suspended != "":
				note = " (undecided while contested: " + v.Suspended + ")"
			case !v.Counts:
				note = " (superseded)"
			}
			if v.For != nil {
				note = " for " + v.For.String() + " (through a rotation)" + note
			}
			fmt.Fprintf(w, "review:   %s by %s%s\n", v.Decision, v.Maintainer, note)
			if v.Rationale != "" {
				fmt.Fprintf(w, "          %q\n", v.Rationale)
			}
		}
	case r.Review != nil:
		fmt.Fprintf(w, "decision: %s\n", r.Review.Decision)
		fmt.Fprintf(w, "target:   %s\n", r.Review.Target)
		fmt.Fprintf(w, "under:    %s\n", r.Review.Under)
		if r.Review.Rationale != "" {
			fmt.Fprintf(w, "rationale: %s\n", r.Review.Rationale)
		}
	case r.Profile != nil:
		printProfile(w, r.Profile)
	case r.Pledge != nil:
		pl := r.Pledge
		fmt.Fprintf(w, "pledge:   %s", pl.Kind)
		switch pl.Kind {
		case protocol.PledgeMoney:
			fmt.Fprintf(w, ", %d %s (smallest unit)", pl.Amount, pl.Currency)
		case protocol.PledgeHours:
			fmt.Fprintf(w, ", %d hours", pl.Amount)
		default:
			fmt.Fprintf(w, ", node %s", pl.Peer)
		}
		fmt.Fprintf(w, "\nperiod:   %s to %s\n", time.UnixMilli(int64(pl.From)).UTC().Format(time.RFC3339), time.UnixMilli(int64(pl.Until)).UTC().Format(time.RFC3339))
		if pl.Beneficiary != nil {
			fmt.Fprintf(w, "to:       %s\n", pl.Beneficiary)
		} else {
			fmt.Fprintln(w, "to:       the association")
		}
		if pl.Note != "" {
			fmt.Fprintf(w, "note:     %s\n", pl.Note)
		}
	case r.Ack != nil:
		fmt.Fprintf(w, "acknowledges: %s\n", r.Ack.Pledge)
		if r.Ack.Amount > 0 {
			fmt.Fprintf(w, "amount:   %d\n", r.Ack.Amount)
		}
		if r.Ack.Under != nil {
			fmt.Fprintf(w, "under:    %s\n", r.Ack.Under)
		}
		if len(r.Cosigners) > 0 {
			fmt.Fprintf(w, "co-signed: %s\n", keyList(r.Cosigners))
		}
		if r.Ack.Note != "" {
			fmt.Fprintf(w, "note:     %s\n", r.Ack.Note)
		}
	case r.Dispute != nil:
		if r.Dispute.Subject != nil {
			fmt.Fprintf(w, "disputes: %s\n", r.Dispute.Subject)
		} else {
			fmt.Fprintf(w, "disputes: participant %s\n", r.Dispute.Participant)
		}
		fmt.Fprintf(w, "reason:   %s\n", r.Dispute.Reason)
		for _, e := range r.Dispute.Evidence {
			fmt.Fprintf(w, "evidence: %s\n", e)
		}
		fmt.Fprintf(w, "(commons dispute show %s: its statements, resolutions and outcome)\n", r.CID)
	case r.Statement != nil:
		fmt.Fprintf(w, "in dispute: %s\n%s\n", r.Statement.Dispute, r.Statement.Text)
	case r.Resolution != nil:
		x := r.Resolution
		what := x.Outcome
		if x.Effect != "" {
			what += " (" + x.Effect + ")"
		}
		fmt.Fprintf(w, "resolves: %s: %s\nunder:    %s\nreason:   %s\n", x.Dispute, what, x.Under, x.Reason)
		if len(r.Cosigners) > 0 {
			fmt.Fprintf(w, "co-signed: %s\n", keyList(r.Cosigners))
		}
	case r.Certificate != nil:
		fmt.Fprintf(w, "(commons certificate show %s: whether it holds, and why not)\n", r.CID)
	case r.Rotation != nil:
		fmt.Fprintf(w, "hands on to: %s\n", r.Rotation.Successor)
	case r.Sponsorship != nil:
		fmt.Fprintf(w, "sponsors: %s\n", r.Sponsorship.Target)
		if r.Sponsorship.Note != "" {
			fmt.Fprintf(w, "note:     %s\n", r.Sponsorship.Note)
		}
	case r.Manifest != nil:
		m := r.Manifest
		fmt.Fprintf(w, "name:     %s\nlicence:  %s\nversion:  %d\n", m.Name, m.Licence, m.Version)
		fmt.Fprintf(w, "maintainers: %s (quorum %d, reject quorum %d)\n", keyList(m.Maintainers), m.Quorum, m.RejectQuorum)
		fmt.Fprintf(w, "association: %s (threshold %d)\n", keyList(m.Association), m.Threshold)
		if len(m.Revoked) > 0 {
			fmt.Fprintf(w, "revokes:  %s\n", keyList(m.Revoked))
		}
		if len(m.Banned) > 0 {
			fmt.Fprintf(w, "bans:     %s\n", keyList(m.Banned))
		}
		if r.Contested {
			fmt.Fprintf(w, "CONTESTED: keys that together meet a threshold act against each other (commons manifest show --commons %s)\n", r.Commons)
		}
	}
	if r.Inert != "" {
		fmt.Fprintf(w, "inert:    %s\n", r.Inert)
	}
}
