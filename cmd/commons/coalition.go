package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

func (a *app) sponsorCmd() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "sponsor CONTRIBUTION-CID",
		Short: "Countersign, as its sponsor, a paid contribution that names this key; prints the sponsorship's CID",
		Long: `Countersign, as its sponsor, a paid contribution that names this node's key as
its sponsor (contribute --sponsor). The contribution's paid provenance is
confirmed once both sides have signed it, and commons show then says so.

Refused, with the reason, when the contribution does not name this key as its
sponsor or is volunteer work, when this key has confirmed it already, and in a
commons whose genesis does not carry sponsorships (manifest create
--coalition).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.Sponsor(cmd.Context(), api.SponsorParams{Target: args[0], Note: note})
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "a note for the record, such as the contract or the amount")
	return cmd
}

func (a *app) profileCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Publish or show a participant's profile: a name and what it does with the commons",
		Long: `A profile is a participant's description of itself in one commons: a display
name, a few words about it and, for an entrepreneur, its use declarations:
the products and services it builds on the commons. The latest profile a key
published is the one that counts.`,
	}
	cmd.AddCommand(a.profileSetCmd(), a.profileShowCmd())
	return cmd
}

func (a *app) profileSetCmd() *cobra.Command {
	var p api.ProfileParams
	var uses []string
	cmd := &cobra.Command{
		Use:   "set --commons ID --name NAME [--about TEXT] [--use KIND=NAME[=URL]]...",
		Short: "Publish this node's profile in a commons; prints its CID",
		Long: `Publish this node's profile in a commons; it replaces the one published before,
so give every field again. Each --use declares one use of the commons: its kind
(product, service, hosting, research, ...: a-z 0-9 - _ .), its name and, if
it has one, its address, as in

  commons profile set --commons ID --name "Acme Co-op" \
    --use "service=Acme Cloud=https://cloud.acme.example"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--commons", p.Commons, "--name", p.Name); err != nil {
				return err
			}
			for _, u := range uses {
				use, err := parseUse(u)
				if err != nil {
					return err
				}
				p.Uses = append(p.Uses, use)
			}
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.SetProfile(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&p.Commons, "commons", "", "commons ID")
	fs.StringVar(&p.Name, "name", "", "display name")
	fs.StringVar(&p.About, "about", "", "a few words about this participant")
	fs.StringArrayVar(&uses, "use", nil, "use declaration KIND=NAME or KIND=NAME=URL; repeatable")
	return cmd
}

// parseUse parses KIND=NAME[=URL].
func parseUse(s string) (protocol.Use, error) {
	kind, rest, ok := strings.Cut(s, "=")
	if !ok || kind == "" || rest == "" {
		return protocol.Use{}, fmt.Errorf("--use %q: give KIND=NAME or KIND=NAME=URL, such as product=Acme=https://acme.example", s)
	}
	name, url, _ := strings.Cut(rest, "=")
	return protocol.Use{Kind: kind, Name: name, URL: url}, nil
}

func (a *app) profileShowCmd() *cobra.Command {
	var commons string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [PEER-ID] --commons ID",
		Short: "Show the profile that counts for a key (default: this node's)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags("--commons", commons); err != nil {
				return err
			}
			key := ""
			if len(args) == 1 {
				key = args[0]
			}
			return a.withAPI(cmd, func(d api.API) error {
				if key == "" {
					id, err := d.ID(cmd.Context())
					if err != nil {
						return err
					}
					key = id.PeerID
				}
				info, err := d.Profile(cmd.Context(), commons, key)
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(info)
				}
				w := a.stdout
				fmt.Fprintf(w, "key:      %s\n", info.Key)
				fmt.Fprintf(w, "profile:  %s\n", info.CID)
				fmt.Fprintf(w, "time:     %s\n", info.Time.Format("2006-01-02 15:04:05.000Z"))
				printProfile(w, info.Profile)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printProfile(w io.Writer, p *protocol.Profile) {
	fmt.Fprintf(w, "name:     %s\n", p.Name)
	if p.About != "" {
		fmt.Fprintf(w, "about:    %s\n", p.About)
	}
	for _, u := range p.Uses {
		line := u.Kind + ": " + u.Name
		if u.URL != "" {
			line += " <" + u.URL + ">"
		}
		fmt.Fprintf(w, "use:      %s\n", line)
	}
}

func (a *app) reciprocityCmd() *cobra.Command {
	var commons, since string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reciprocity [--commons ID] [--since DATE] [--json]",
		Short: "Report who builds on the commons and what they give back, from signed records alone",
		Long: `Report, for every participant that declared a use of the commons in its profile
or countersigned paid work as its sponsor, what the signed records say it gives
back: the paid contributions it sponsored (signed by both sides), how many of
them were accepted, and their share of all accepted contributions. Paid work
that names it as sponsor without its countersignature is listed apart: that is
the contributors' word alone.

The report states signals and the records behind each, never a verdict. It is
the same on every node that holds the same records (--json byte for byte).
--since limits it to contributions made from that date (2026-01-31, or a time
such as 2026-01-31T12:00:00Z). --commons may be left out when the node
replicates one commons.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var from time.Time
			if since != "" {
				var err error
				if from, err = time.Parse(time.RFC3339Nano, since); err != nil {
					if from, err = time.Parse(time.DateOnly, since); err != nil {
						return fmt.Errorf("--since %q: give a date such as 2026-01-31 or a time such as 2026-01-31T12:00:00Z", since)
					}
				}
			}
			return a.withAPI(cmd, func(d api.API) error {
				if commons == "" {
					var err error
					if commons, err = onlyCommons(cmd.Context(), d); err != nil {
						return err
					}
				}
				r, err := d.Reciprocity(cmd.Context(), commons, from)
				if err != nil {
					return err
				}
				if asJSON {
					return a.printJSON(r)
				}
				a.printReciprocity(r)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID")
	cmd.Flags().StringVar(&since, "since", "", "only contributions made from this date or time")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printReciprocity(r api.ReciprocityInfo) {
	w := a.stdout
	fmt.Fprintf(w, "commons:  %s\n", r.Commons)
	if r.Since != nil {
		fmt.Fprintf(w, "period:   contributions made since %s\n", r.Since.Format("2006-01-02 15:04:05Z"))
	} else {
		fmt.Fprintln(w, "period:   the commons' whole life")
	}
	fmt.Fprintf(w, "accepted: %d contributions\n", r.Accepted)
	if len(r.Participants) == 0 {
		fmt.Fprintln(w, "\nNo participant has declared a use of the commons (commons profile set --use) or countersigned paid work (commons sponsor).")
		return
	}
	for _, p := range r.Participants {
		fmt.Fprintf(w, "\n%s", p.Key)
		if p.Name != "" {
			fmt.Fprintf(w, "  %s", p.Name)
		}
		fmt.Fprintln(w)
		for _, u := range p.Uses {
			line := u.Kind + ": " + u.Name
			if u.URL != "" {
				line += " <" + u.URL + ">"
			}
			fmt.Fprintf(w, "  uses:        %s\n", line)
		}
		if len(p.Uses) == 0 {
			fmt.Fprintln(w, "  uses:        none declared")
		}
		fmt.Fprintf(w, "  sponsored:   %s signed by both sides, %d accepted (%.0f%% of the accepted)\n",
			plural(len(p.Sponsored), "paid contribution"), p.Accepted, 100*p.Share)
		for _, s := range p.Sponsored {
			fmt.Fprintf(w, "    %s  %s  (sponsorship %s)\n", s.Contribution, s.Status, s.Sponsorship)
		}
		if p.UnconfirmedCount > 0 {
			fmt.Fprintf(w, "  unconfirmed: %s name it as sponsor without its countersignature\n", plural(p.UnconfirmedCount, "paid contribution"))
			for _, c := range p.Unconfirmed {
				fmt.Fprintf(w, "    %s\n", c)
			}
			if more := p.UnconfirmedCount - len(p.Unconfirmed); more > 0 {
				fmt.Fprintf(w, "    and %d more (--json lists the first %d)\n", more, len(p.Unconfirmed))
			}
		}
		for _, pl := range p.Pledges {
			what := pl.Kind
			switch pl.Kind {
			case protocol.PledgeMoney:
				what = fmt.Sprintf("%d %s (smallest unit)", pl.Amount, pl.Currency)
			case protocol.PledgeHours:
				what = fmt.Sprintf("%d hours", pl.Amount)
			case protocol.PledgeInfrastructure:
				what = "infrastructure: node " + pl.Peer
			}
			to := "the association"
			if pl.Beneficiary != nil {
				to = pl.Beneficiary.String()
			}
			met := fmt.Sprintf("%d acknowledged", pl.Acknowledged)
			switch {
			case pl.Met:
				met = "met in full"
			case pl.Kind == protocol.PledgeInfrastructure:
				met = "not acknowledged"
			}
			if pl.Unmet != "" {
				met = "marked unmet by the association, upholding a dispute (resolution " + pl.Unmet + ")"
			}
			fmt.Fprintf(w, "  pledged:     %s to %s, %s to %s: %s\n", what, to,
				pl.From.Format(time.DateOnly), pl.Until.Format(time.DateOnly), met)
			fmt.Fprintf(w, "    %s", pl.CID)
			if len(pl.Acks) > 0 {
				fmt.Fprintf(w, "  (acknowledged in %s)", strings.Join(pl.Acks, ", "))
			}
			fmt.Fprintln(w)
		}
	}
}

func (a *app) pledgeCmd() *cobra.Command {
	var p api.PledgeParams
	var from, until, to string
	cmd := &cobra.Command{
		Use:   "pledge --commons ID --kind money|hours|infrastructure --from DATE --until DATE [flags]",
		Short: "Declare what this participant gives back to the commons over a period; prints the pledge's CID",
		Long: `Declare what this participant gives back to the commons over a period: money
(--amount in the currency's smallest unit, such as cents, and --currency),
hours of paid contribution (--amount), or infrastructure, such as a bootstrap
node it runs for the commons (--peer, that node's peer ID). It goes to the
association, or to --to, a beneficiary's key.

A pledge is a claim: it counts in the reciprocity report as pledged, and as
met once the association (under its manifest) or the beneficiary acknowledges
it (commons acknowledge).

  commons pledge --commons ID --kind hours --amount 40 --from 2026-01-01 --until 2026-06-30
  commons pledge --commons ID --kind money --amount 50000 --currency EUR --from 2026-01-01 --until 2026-12-31
  commons pledge --commons ID --kind infrastructure --peer 12D3KooW... --from 2026-01-01 --until 2026-12-31`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--commons", p.Commons, "--kind", p.Kind, "--from", from, "--until", until); err != nil {
				return err
			}
			var err error
			if p.From, err = parseWhen("--from", from); err != nil {
				return err
			}
			if p.Until, err = parseWhen("--until", until); err != nil {
				return err
			}
			if to != "" {
				k, err := protocol.ParsePublicKey(to)
				if err != nil {
					return fmt.Errorf("--to %q: not a peer ID", to)
				}
				p.Beneficiary = &k
			}
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.Pledge(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&p.Commons, "commons", "", "commons ID")
	fs.StringVar(&p.Kind, "kind", "", "money, hours or infrastructure")
	fs.Uint64Var(&p.Amount, "amount", 0, "money in the currency's smallest unit (50000 for 500.00 EUR), or whole hours")
	fs.StringVar(&p.Currency, "currency", "", "ISO 4217 code of a money pledge, such as EUR")
	fs.StringVar(&p.Peer, "peer", "", "peer ID of the node an infrastructure pledge runs")
	fs.StringVar(&from, "from", "", "start of the period: a date (2026-01-31) or a time (2026-01-31T12:00:00Z)")
	fs.StringVar(&until, "until", "", "end of the period, after --from")
	fs.StringVar(&to, "to", "", "peer ID of the beneficiary, who acknowledges it (default: the association)")
	fs.StringVar(&p.Note, "note", "", "a note for the record")
	return cmd
}

// parseWhen parses a date or an RFC 3339 time given to flag.
func parseWhen(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: give a date such as 2026-01-31 or a time such as 2026-01-31T12:00:00Z", flag, s)
}

func (a *app) acknowledgeCmd() *cobra.Command {
	var p api.AckParams
	var draft string
	cmd := &cobra.Command{
		Use:   "acknowledge PLEDGE-CID [--amount N] [--note TEXT]",
		Short: "Sign that a pledge was met, as its beneficiary or for the association; prints the acknowledgement's CID",
		Long: `Sign that a pledge was met: in part or in full with --amount (in the pledge's
unit: the currency's smallest unit, or hours), or whole for infrastructure
(no --amount). Several acknowledgements of one pledge add up, to at most what
was pledged.

A pledge that names a beneficiary is acknowledged by that key alone. A pledge
to the association is acknowledged under the current manifest by an
association key; when its threshold is above 1, one member drafts it, others
co-sign the draft file, and any of them publishes it:

  commons acknowledge PLEDGE --amount 30 --draft ack.car
  commons manifest cosign ack.car          (by other association members)
  commons manifest publish ack.car

Revoking a key takes back what its acknowledgements counted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Pledge = args[0]
			if draft != "" {
				return a.withAPI(cmd, func(d api.API) error {
					raw, err := d.DraftAcknowledgement(cmd.Context(), p)
					if err != nil {
						return err
					}
					if err := os.WriteFile(draft, raw, 0o644); err != nil {
						return fmt.Errorf("--draft: %w", err)
					}
					fmt.Fprintf(a.stderr, "acknowledgement draft written to %s: have it co-signed (commons manifest cosign %s) up to the association's threshold, then publish it (commons manifest publish %s)\n", draft, draft, draft)
					return nil
				})
			}
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.Acknowledge(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	cmd.Flags().Uint64Var(&p.Amount, "amount", 0, "the part met, in the pledge's unit; none for infrastructure")
	cmd.Flags().StringVar(&p.Note, "note", "", "a note for the record, such as the payment's reference")
	cmd.Flags().StringVar(&draft, "draft", "", "write the signed acknowledgement to this file for the association's other members to co-sign, instead of publishing it")
	return cmd
}

// onlyCommons returns the commons the node replicates when it replicates
// one; otherwise it says to choose with --commons.
func onlyCommons(ctx context.Context, d api.API) (string, error) {
	st, err := d.Status(ctx)
	if err != nil {
		return "", err
	}
	switch len(st.Commons) {
	case 1:
		return st.Commons[0].ID, nil
	case 0:
		return "", errors.New("this node replicates no commons: join one first (commons join ID)")
	}
	ids := make([]string, len(st.Commons))
	for i, c := range st.Commons {
		ids[i] = c.ID + " (" + c.Name + ")"
	}
	return "", fmt.Errorf("this node replicates %d commons: choose one with --commons: %s", len(ids), strings.Join(ids, ", "))
}
