package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// The association's records: disputes, statements, resolutions and
// certificates (SPEC §5.9–§5.12, §12.12, §12.13).

func (a *app) disputeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dispute",
		Short: "Open, answer, resolve and list disputes: complaints for the association to resolve",
		Long: `A dispute is a participant's complaint, for the for-benefit association to
resolve: about a record (a contribution that infringes the licence, a
maintainer's review, a sponsorship, a pledge never honoured) or about a
participant's conduct. Anyone opens one and adds statements; the association
resolves it under its current manifest, co-signed up to its threshold:

  commons dispute open --subject CONTRIBUTION --reason "copies X without credit" --evidence https://...
  commons dispute state DISPUTE --text "the credit is in the README"
  commons dispute resolve DISPUTE --uphold --effect withdraw --reason "..." [--draft res.car]
  commons dispute show DISPUTE
  commons dispute list [--commons ID]

Upholding can withdraw a contribution (it can no longer be accepted), set a
review or a sponsorship aside (it stops counting), or mark a pledge unmet;
every node applies it the same way (SPEC §12.12). The commons' genesis must
carry the association's records (manifest create sets it unless
--association-records=false).`,
	}
	cmd.AddCommand(a.disputeOpenCmd(), a.disputeStateCmd(), a.disputeResolveCmd(), a.disputeShowCmd(), a.disputeListCmd())
	return cmd
}

func (a *app) disputeOpenCmd() *cobra.Command {
	var p api.DisputeParams
	var participant string
	cmd := &cobra.Command{
		Use:   "open (--subject CID | --participant PEER-ID --commons ID) --reason TEXT [--evidence URL]...",
		Short: "Open a dispute about a record or a participant; prints the dispute's CID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--reason", p.Reason); err != nil {
				return err
			}
			switch {
			case p.Subject == "" && participant == "":
				return errors.New("say what the dispute is about: --subject CID (a contribution, review, sponsorship or pledge) or --participant PEER-ID")
			case p.Subject != "" && participant != "":
				return errors.New("a dispute is about a record (--subject) or a participant (--participant), not both")
			case participant != "":
				k, err := protocol.ParsePublicKey(participant)
				if err != nil {
					return fmt.Errorf("--participant %q: not a peer ID", participant)
				}
				p.Participant = &k
			}
			return a.withAPI(cmd, func(d api.API) error {
				if p.Participant != nil && p.Commons == "" {
					var err error
					if p.Commons, err = onlyCommons(cmd.Context(), d); err != nil {
						return err
					}
				}
				pub, err := d.OpenDispute(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&p.Subject, "subject", "", "CID of the record disputed: a contribution, a review, a sponsorship or a pledge")
	fs.StringVar(&participant, "participant", "", "peer ID of the participant whose conduct is disputed")
	fs.StringVar(&p.Commons, "commons", "", "commons ID, for a dispute about a participant (default: the node's only commons)")
	fs.StringVar(&p.Reason, "reason", "", "what is wrong, for the association to resolve")
	fs.StringArrayVar(&p.Evidence, "evidence", nil, "an http(s) URL of evidence (repeat for more, up to 16)")
	return cmd
}

func (a *app) disputeStateCmd() *cobra.Command {
	var p api.StatementParams
	cmd := &cobra.Command{
		Use:   "state DISPUTE-CID --text TEXT [--evidence URL]...",
		Short: "Add a statement to a dispute: an answer, a testimony, more evidence; prints its CID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags("--text", p.Text); err != nil {
				return err
			}
			p.Dispute = args[0]
			return a.withAPI(cmd, func(d api.API) error {
				pub, err := d.AddStatement(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&p.Text, "text", "", "the statement")
	cmd.Flags().StringArrayVar(&p.Evidence, "evidence", nil, "an http(s) URL of evidence (repeat for more, up to 16)")
	return cmd
}

func (a *app) disputeResolveCmd() *cobra.Command {
	var p api.ResolveParams
	var dismiss, uphold bool
	var draft string
	cmd := &cobra.Command{
		Use:   "resolve DISPUTE-CID (--dismiss | --uphold [--effect withdraw|set-aside|unmet]) --reason TEXT [--replaces CID]... [--draft FILE]",
		Short: "Resolve a dispute for the association, under the current manifest; prints the resolution's CID",
		Long: `Resolve a dispute for the association, under the current manifest: dismiss it,
or uphold it, with an effect that fits what it disputes: withdraw a
contribution, set-aside a review or a sponsorship, unmet a pledge (none: a
finding without effect). --replaces names earlier resolutions of the same
dispute that this one replaces: how the association reconsiders.

When the association's threshold is above 1, one member drafts it, others
co-sign the draft file, and any of them publishes it:

  commons dispute resolve DISPUTE --uphold --effect withdraw --reason "..." --draft res.car
  commons manifest cosign res.car          (by other association members)
  commons manifest publish res.car`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case dismiss && uphold:
				return errors.New("--dismiss and --uphold: give one, not both")
			case !dismiss && !uphold:
				return errors.New("say how it is resolved: --dismiss or --uphold")
			case dismiss && p.Effect != "":
				return errors.New("--effect goes with --uphold: a dismissal has no effect")
			case dismiss:
				p.Outcome = protocol.OutcomeDismiss
			default:
				p.Outcome = protocol.OutcomeUphold
			}
			if err := requireFlags("--reason", p.Reason); err != nil {
				return err
			}
			p.Dispute = args[0]
			return a.withAPI(cmd, func(d api.API) error {
				if draft != "" {
					raw, err := d.DraftResolution(cmd.Context(), p)
					if err != nil {
						return err
					}
					return a.writeDraft(draft, raw, "resolution")
				}
				pub, err := d.Resolve(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&dismiss, "dismiss", false, "dismiss the dispute")
	fs.BoolVar(&uphold, "uphold", false, "uphold the dispute")
	fs.StringVar(&p.Effect, "effect", "", "with --uphold: withdraw (a contribution), set-aside (a review or a sponsorship) or unmet (a pledge)")
	fs.StringVar(&p.Reason, "reason", "", "the association's reasons")
	fs.StringArrayVar(&p.Replaces, "replaces", nil, "CID of an earlier resolution of the dispute that this one replaces (repeat for more)")
	fs.StringVar(&draft, "draft", "", "write the signed resolution to this file for the association's other members to co-sign, instead of publishing it")
	return cmd
}

// writeDraft writes a drafted act of the association to path and says
// what comes next.
func (a *app) writeDraft(path string, raw []byte, what string) error {
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("--draft: %w", err)
	}
	fmt.Fprintf(a.stderr, "%s draft written to %s: have it co-signed (commons manifest cosign %s) up to the association's threshold, then publish it (commons manifest publish %s)\n", what, path, path, path)
	return nil
}

func (a *app) disputeShowCmd() *cobra.Command {
	var asJSON bool
	var after string
	cmd := &cobra.Command{
		Use:   "show DISPUTE-CID [--after CID] [--json]",
		Short: "Show a dispute, its statements and resolutions, and how it stands",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				v, err := d.Dispute(cmd.Context(), args[0], after)
				if err != nil || asJSON {
					if err == nil {
						err = a.printJSON(v)
					}
					return err
				}
				a.printDispute(a.stdout, v)
				for _, s := range v.Statements {
					fmt.Fprintf(a.stdout, "\nstatement %s by %s at %s%s\n  %s\n", s.CID, s.Author, s.Time.Format(time.RFC3339), inertNote(s.Inert), indent(s.Text))
					for _, e := range s.Evidence {
						fmt.Fprintf(a.stdout, "  evidence: %s\n", e)
					}
				}
				for _, r := range v.Resolutions {
					what := r.Outcome
					if r.Effect != "" {
						what += " (" + r.Effect + ")"
					}
					stand := r.Class
					switch {
					case r.Counting:
						stand = "counts"
					case r.Inert != "":
						stand += ": " + r.Inert
					}
					fmt.Fprintf(a.stdout, "\nresolution %s: %s, under %s, %s\n  signed by %s\n  %s\n", r.CID, what, r.Under, stand, keyList(r.Signers), indent(r.Reason))
					if len(r.Replaces) > 0 {
						fmt.Fprintf(a.stdout, "  replaces %s\n", strings.Join(r.Replaces, ", "))
					}
				}
				if v.More {
					fmt.Fprintf(a.stdout, "\n(%d statements and resolutions by CID, and every resolution that stands or is suspended; more: commons dispute show %s --after %s)\n", api.MaxReplies, v.CID, v.Next)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&after, "after", "", "show the statements and resolutions after this cursor (the next page's, as a page with more names it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDispute prints a dispute's summary.
func (a *app) printDispute(w io.Writer, v api.DisputeInfo) {
	about := "participant " + fmt.Sprint(v.Participant)
	if v.Subject != "" {
		about = v.Subject
		if v.SubjectType != "" {
			about = v.SubjectType + " " + v.Subject
		}
	}
	state := v.Outcome
	if v.Effect != "" {
		state += ": " + v.Effect
	}
	if v.Held {
		state += " (held: a contest could change it)"
	}
	fmt.Fprintf(w, "dispute %s: %s\n  about %s\n  by %s at %s%s\n  %s\n", v.CID, state, about, v.Author, v.Time.Format(time.RFC3339), inertNote(v.Inert), indent(v.Reason))
	for _, e := range v.Evidence {
		fmt.Fprintf(w, "  evidence: %s\n", e)
	}
}

func inertNote(reason string) string {
	if reason == "" {
		return ""
	}
	return " (inert: " + reason + ")"
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }

func (a *app) disputeListCmd() *cobra.Command {
	var commons, after string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--commons ID] [--after CID] [--json]",
		Short: "List a commons' disputes, open ones first",
		Long: fmt.Sprintf(`List a commons' disputes, open ones first, then the latest.

A commons with more than %d disputes lists them in pages taken in CID
order, each shown open ones first: a page says which --after gives the
next. status counts the open ones of all pages.`, api.MaxDisputes),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd, func(d api.API) error {
				if commons == "" {
					var err error
					if commons, err = onlyCommons(cmd.Context(), d); err != nil {
						return err
					}
				}
				v, err := d.Disputes(cmd.Context(), commons, after)
				if err != nil || asJSON {
					if err == nil {
						err = a.printJSON(v)
					}
					return err
				}
				if len(v.Disputes) == 0 {
					if after != "" {
						fmt.Fprintf(a.stdout, "no disputes after %s in commons %s\n", after, v.Commons)
					} else {
						fmt.Fprintf(a.stdout, "no disputes in commons %s\n", v.Commons)
					}
				}
				for i, x := range v.Disputes {
					if i > 0 {
						fmt.Fprintln(a.stdout)
					}
					a.printDispute(a.stdout, x)
				}
				if v.More {
					fmt.Fprintf(a.stdout, "\n(%d disputes; more: commons dispute list --commons %s --after %s)\n", len(v.Disputes), v.Commons, v.Next)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&commons, "commons", "", "commons ID (default: the node's only commons)")
	cmd.Flags().StringVar(&after, "after", "", "list the disputes after this cursor (the next page's, as a page with more names it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) certificateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certificate",
		Short: "Issue, show and verify the association's certificates of participants and releases",
		Long: `A certificate is the association's attestation, signed by its threshold under
the current manifest: of a participant's role (such as certified maintainer or
partner), or of a release: a named set of contributions at the commons' state
root, that an entrepreneur can build on. It holds until it expires, while the
association of the current manifest still counts its signers.

  commons certificate issue --release 2026.12 --contribution CID... --expires 2027-12-31
  commons certificate issue --participant PEER-ID --role maintainer --expires 2027-06-30
  commons certificate show CID [--bundle cert.car]
  commons certificate verify --car cert.car          (offline: no node, no network)`,
	}
	cmd.AddCommand(a.certificateIssueCmd(), a.certificateShowCmd(), a.certificateVerifyCmd())
	return cmd
}

func (a *app) certificateIssueCmd() *cobra.Command {
	var p api.CertifyParams
	var participant, expires, draft string
	cmd := &cobra.Command{
		Use:   "issue (--participant PEER-ID --role ROLE | --release NAME --contribution CID...) --expires DATE [--draft FILE]",
		Short: "Issue a certificate for the association, under the current manifest; prints its CID",
		Long: `Issue a certificate for the association, under the current manifest: of a
participant's role, or of a release of contributions (at the commons' state
root now). When the association's threshold is above 1, draft it (--draft),
have other members co-sign it (manifest cosign), then publish it (manifest
publish).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--expires", expires); err != nil {
				return err
			}
			var err error
			if p.Expires, err = parseWhen("--expires", expires); err != nil {
				return err
			}
			switch {
			case participant == "" && p.Release == "":
				return errors.New("say what is certified: --participant PEER-ID with --role, or --release NAME with --contribution")
			case participant != "" && p.Release != "":
				return errors.New("a certificate attests a participant or a release, not both")
			case participant != "":
				if err := requireFlags("--role", p.Role); err != nil {
					return err
				}
				k, err := protocol.ParsePublicKey(participant)
				if err != nil {
					return fmt.Errorf("--participant %q: not a peer ID", participant)
				}
				p.Participant = &k
			case len(p.Contributions) == 0:
				return errors.New("a release names its contributions: --contribution CID (repeat for more)")
			}
			return a.withAPI(cmd, func(d api.API) error {
				if p.Commons == "" {
					if p.Commons, err = onlyCommons(cmd.Context(), d); err != nil {
						return err
					}
				}
				if draft != "" {
					raw, err := d.DraftCertificate(cmd.Context(), p)
					if err != nil {
						return err
					}
					return a.writeDraft(draft, raw, "certificate")
				}
				pub, err := d.Certify(cmd.Context(), p)
				if err == nil {
					a.printPublished(pub)
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&p.Commons, "commons", "", "commons ID (default: the node's only commons)")
	fs.StringVar(&participant, "participant", "", "peer ID of the participant certified")
	fs.StringVar(&p.Role, "role", "", "the role certified, such as maintainer or partner")
	fs.StringVar(&p.Release, "release", "", "name of the release certified, such as 2026.12")
	fs.StringArrayVar(&p.Contributions, "contribution", nil, "CID of a contribution in the release (repeat for each, up to 512)")
	fs.StringVar(&expires, "expires", "", "when it stops attesting: a date (2027-12-31) or a time")
	fs.StringVar(&p.Note, "note", "", "a note for the record")
	fs.StringVar(&draft, "draft", "", "write the signed certificate to this file for the association's other members to co-sign, instead of publishing it")
	return cmd
}

func (a *app) certificateShowCmd() *cobra.Command {
	var at, bundle string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CERTIFICATE-CID [--at DATE] [--bundle FILE] [--json]",
		Short: "Say whether a certificate holds, and why not; exits 1 when it does not",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var when time.Time
			if at != "" {
				var err error
				if when, err = parseWhen("--at", at); err != nil {
					return err
				}
			}
			return a.withAPI(cmd, func(d api.API) error {
				v, err := d.Certificate(cmd.Context(), args[0], when)
				if err != nil {
					return err
				}
				if bundle != "" {
					raw, err := d.CertificateBundle(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					if err := os.WriteFile(bundle, raw, 0o644); err != nil {
						return fmt.Errorf("--bundle: %w", err)
					}
					fmt.Fprintf(a.stderr, "certificate bundle written to %s: anyone can check it offline (commons certificate verify --car %s)\n", bundle, bundle)
				}
				return a.reportCertificate(v, asJSON, false)
			})
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "the moment to check it at (default: now)")
	cmd.Flags().StringVar(&bundle, "bundle", "", "also write the certificate, with what a node that never saw the commons needs to check it, to this CAR file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) certificateVerifyCmd() *cobra.Command {
	var at, car string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [CERTIFICATE-CID] --car FILE [--at DATE] [--json]",
		Short: "Check a certificate offline, from a CAR file alone; exits 1 when it does not hold",
		Long: `Check a certificate from a CAR file alone, as someone who never saw its commons
would: a certificate bundle (certificate show --bundle), whose root is the
certificate, or a commons' export (commons export), naming the certificate.
Every record's signatures are checked, and the state is built from the file's
records: no repo, daemon or network is used. It says why a certificate does
not hold: expired, signers short of the threshold, a revoked signer, no longer
vouched for by the current association, an unknown commons. It sees only what
the file holds: a later manifest that revokes a signer, left out of the file,
is not seen, so it names the newest manifest the file holds; a node of the
commons (certificate show) sees the commons as it is.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags("--car", car); err != nil {
				return err
			}
			when := time.Now()
			if at != "" {
				var err error
				if when, err = parseWhen("--at", at); err != nil {
					return err
				}
			}
			var c cid.Cid
			if len(args) == 1 {
				var err error
				if c, err = cid.Decode(args[0]); err != nil {
					return fmt.Errorf("%q is not a CID", args[0])
				}
			}
			f, err := os.Open(car)
			if err != nil {
				return fmt.Errorf("--car: %w", err)
			}
			defer f.Close()
			v, err := node.VerifyCertificate(f, c, when)
			if err != nil {
				return fmt.Errorf("%s: %w", car, err)
			}
			return a.reportCertificate(v, asJSON, true)
		},
	}
	cmd.Flags().StringVar(&car, "car", "", "the CAR file holding the certificate and its commons' manifests")
	cmd.Flags().StringVar(&at, "at", "", "the moment to check it at (default: now)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// errDoesNotHold is the exit status of a certificate that does not hold.
var errDoesNotHold = errors.New("the certificate does not hold")

// reportCertificate prints whether a certificate holds, and fails when it
// does not.
func (a *app) reportCertificate(v api.CertificateInfo, asJSON, offline bool) error {
	if asJSON {
		if err := a.printJSON(v); err != nil {
			return err
		}
	} else {
		what := fmt.Sprintf("%s as %s", v.Participant, v.Role)
		if v.Release != nil {
			what = fmt.Sprintf("release %q (%s, state root %s)", v.Release.Name, plural(len(v.Release.Contributions), "contribution"), v.Release.Root)
		}
		verdict := "HOLDS"
		if !v.Holds {
			verdict = "DOES NOT HOLD"
		}
		fmt.Fprintf(a.stdout, "certificate %s %s at %s\n  certifies %s\n  commons %s, under manifest %s\n  signed by %s\n  expires %s\n",
			v.CID, verdict, v.At.Format(time.RFC3339), what, v.Commons, v.Under, keyList(v.Signers), v.Expires.Format(time.RFC3339))
		for _, p := range v.Problems {
			fmt.Fprintf(a.stdout, "  - %s\n", p)
		}
		if offline {
			fmt.Fprintf(a.stdout, "  as of manifest %s, the newest the file holds: a revocation the file does not hold is not seen (check it with a node of the commons: commons certificate show %s)\n", v.Head, v.CID)
		}
		if v.Release != nil {
			for _, c := range v.Release.Contributions {
				fmt.Fprintf(a.stdout, "  %s  %s\n", c.CID, c.Status)
			}
		}
	}
	if !v.Holds {
		return errDoesNotHold
	}
	return nil
}

func (a *app) rotateCmd() *cobra.Command {
	var p api.RotateParams
	var to, draft string
	cmd := &cobra.Command{
		Use:   "rotate --to PEER-ID --draft FILE [--commons ID]",
		Short: "Hand this key's identity in a commons on to a new key, which co-signs it",
		Long: `Hand this node's key's identity in a commons on to a successor key: the new
key of a new machine, say. Its reviews, acknowledgements (as a pledge's
beneficiary) and profile then count where manifests name the old key, until the
association names the new key itself. The old key signs the rotation, the new
key co-signs it, and either publishes it:

  commons init --repo ~/new                        (prints the new key's peer ID)
  commons rotate --commons ID --to NEW-PEER-ID --draft rotation.car
  commons --repo ~/new join ID
  commons --repo ~/new manifest cosign rotation.car
  commons --repo ~/new manifest publish rotation.car

A key rotates once: a second rotation to another key, or two keys rotating to
one, makes every rotation involved count for nothing, on every node. A rotation
by a key later revoked stops counting too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--to", to, "--draft", draft); err != nil {
				return err
			}
			k, err := protocol.ParsePublicKey(to)
			if err != nil {
				return fmt.Errorf("--to %q: not a peer ID", to)
			}
			p.Successor = k
			return a.withAPI(cmd, func(d api.API) error {
				if p.Commons == "" {
					if p.Commons, err = onlyCommons(cmd.Context(), d); err != nil {
						return err
					}
				}
				raw, err := d.DraftRotation(cmd.Context(), p)
				if err != nil {
					return err
				}
				if err := os.WriteFile(draft, raw, 0o644); err != nil {
					return fmt.Errorf("--draft: %w", err)
				}
				fmt.Fprintf(a.stderr, "rotation draft written to %s: the new key co-signs it (commons manifest cosign %s, on its node), then either node publishes it (commons manifest publish %s)\n", draft, draft, draft)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&p.Commons, "commons", "", "commons ID (default: the node's only commons)")
	cmd.Flags().StringVar(&to, "to", "", "peer ID of the successor key")
	cmd.Flags().StringVar(&draft, "draft", "", "the file to write the signed rotation to, for the successor to co-sign")
	return cmd
}
