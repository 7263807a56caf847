package api

import (
	"context"
	"io"
	"time"

	"github.com/commons-p2p/commons/protocol"
)

// API is what the CLI can ask of a node. *Node implements it directly (in
// process, for a repo whose daemon is not running) and *Client implements it
// over the daemon's HTTP API.
type API interface {
	ID(ctx context.Context) (IDInfo, error)
	Status(ctx context.Context) (StatusInfo, error)
	Peers(ctx context.Context) ([]PeerInfo, error)
	CreateManifest(ctx context.Context, p ManifestParams) (string, error)
	UpdateManifest(ctx context.Context, commons string, p ManifestParams) (Published, error)
	DraftManifest(ctx context.Context, commons string, p ManifestParams) ([]byte, error)
	CosignManifest(ctx context.Context, draft []byte, force bool) ([]byte, error)
	Publish(ctx context.Context, record []byte, force bool) (Published, error)
	Manifest(ctx context.Context, commons string) (ManifestInfo, error)
	Join(ctx context.Context, commons string) error
	Leave(ctx context.Context, commons string, purge bool) (LeaveReport, error)
	PutBlob(ctx context.Context, data []byte) (string, error)
	GetBlob(ctx context.Context, c string) ([]byte, error)
	Contribute(ctx context.Context, p ContributeParams) (string, error)
	Review(ctx context.Context, p ReviewParams) (Published, error)
	Sponsor(ctx context.Context, p SponsorParams) (Published, error)
	SetProfile(ctx context.Context, p ProfileParams) (Published, error)
	Profile(ctx context.Context, commons, key string) (ProfileInfo, error)
	Reciprocity(ctx context.Context, commons string, since time.Time) (ReciprocityInfo, error)
	Pledge(ctx context.Context, p PledgeParams) (Published, error)
	Acknowledge(ctx context.Context, p AckParams) (Published, error)
	DraftAcknowledgement(ctx context.Context, p AckParams) ([]byte, error)
	OpenDispute(ctx context.Context, p DisputeParams) (Published, error)
	AddStatement(ctx context.Context, p StatementParams) (Published, error)
	Resolve(ctx context.Context, p ResolveParams) (Published, error)
	DraftResolution(ctx context.Context, p ResolveParams) ([]byte, error)
	Certify(ctx context.Context, p CertifyParams) (Published, error)
	DraftCertificate(ctx context.Context, p CertifyParams) ([]byte, error)
	Disputes(ctx context.Context, commons, after string) (DisputeList, error)
	Dispute(ctx context.Context, c, after string) (DisputeInfo, error)
	Certificate(ctx context.Context, c string, at time.Time) (CertificateInfo, error)
	CertificateBundle(ctx context.Context, c string) ([]byte, error)
	DraftRotation(ctx context.Context, p RotateParams) ([]byte, error)
	Show(ctx context.Context, c string) (RecordInfo, error)
	Feed(ctx context.Context, q FeedQuery) ([]FeedItem, error)
	Export(ctx context.Context, commons string, w io.Writer) error
	Import(ctx context.Context, r io.Reader, join bool) (ImportReport, error)
	Sync(ctx context.Context, peer string, commons ...string) (SyncReport, error)
}

// IDInfo identifies a node.
type IDInfo struct {
	PeerID    string   `json:"peer_id"`
	PublicKey string   `json:"public_key"` // hex
	Addresses []string `json:"addresses"`  // with /p2p/<peer_id>
}

// PeerInfo is a connected peer.
type PeerInfo struct {
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
	// Relayed: every connection to the peer goes through a circuit relay.
	Relayed     bool       `json:"relayed"`
	Connections []ConnInfo `json:"connections"`
}

// ConnInfo is one connection to a peer.
type ConnInfo struct {
	Address   string `json:"address"`   // the peer's end
	Direction string `json:"direction"` // inbound or outbound
	// Relayed: through a circuit relay (limited; hole punching may
	// replace it with a direct connection).
	Relayed bool `json:"relayed"`
}

// PeerConn is a connection in StatusInfo.
type PeerConn struct {
	Peer string `json:"peer"`
	ConnInfo
}

// DHTInfo is the state of the node's DHT client or server.
type DHTInfo struct {
	Mode         string `json:"mode"` // client or server
	RoutingTable int    `json:"routing_table"`
}

// LeaveReport is what leaving a commons did.
type LeaveReport struct {
	Commons string `json:"commons"`
	// Records is how many records of the commons were stored when it was
	// left.
	Records int `json:"records"`
	// Purged: they were deleted, with the commons' feed log and derived
	// state.
	Purged bool `json:"purged"`
}

// CommonsStatus summarises one replicated commons.
type CommonsStatus struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Records  int    `json:"records"`
	Pending  int    `json:"pending"`
	Accepted int    `json:"accepted"`
	Rejected int    `json:"rejected"`
	// Withdrawn are the contributions an upheld dispute withdrew, and
	// OpenDisputes the disputes no resolution decides yet (SPEC §12.12).
	Withdrawn    int    `json:"withdrawn"`
	OpenDisputes int    `json:"open_disputes"`
	StateRoot    string `json:"state_root"`
	// StateRootRecords is how many records StateRoot is the root of:
	// Records, unless records are arriving faster than the node computes
	// roots for status; then the root of the set when it held that many.
	StateRootRecords int      `json:"state_root_records"`
	ManifestHead     string   `json:"manifest_head"`
	Forks            []string `json:"forks"`
	// Contested lists the contested manifests (SPEC §12.6): keys that
	// together meet a threshold act against each other.
	Contested []string `json:"contested"`
	// Held counts the contributions a contest holds pending.
	Held int `json:"held"`
	// LeftOut counts the records stored damaged and left out of the
	// state, until a peer that holds them sends them again.
	LeftOut int `json:"left_out"`
	Inert   int `json:"inert"`
	Waiting int `json:"waiting"`
	Peers   int `json:"peers"` // peers in the commons' gossip topic
}

// StatusInfo is the node's state.
type StatusInfo struct {
	PeerID string `json:"peer_id"`
	Peers  int    `json:"peers"`
	Online bool   `json:"online"`
	// Reachability is how others reach this node: public, private
	// (behind NAT or a firewall: through a relay, or by hole punching),
	// unknown (not learnt yet) or offline.
	Reachability string `json:"reachability"`
	// Addresses are the addresses the node announces, relayed ones
	// included.
	Addresses   []string        `json:"addresses"`
	Connections []PeerConn      `json:"connections"`
	DHT         *DHTInfo        `json:"dht,omitempty"` // nil: DHT off
	Commons     []CommonsStatus `json:"commons"`
}

// ManifestParams are a manifest's settings. In an update, a nil pointer or
// nil slice keeps the previous version's value; a given value replaces it.
// Revoke adds keys to the previous version's revoked list. Ban adds keys
// to the banned ones of the versions an update builds on, Unban takes keys
// out (SPEC §12.3).
type ManifestParams struct {
	Name         *string              `json:"name"`
	Licence      *string              `json:"licence"`
	Association  []protocol.PublicKey `json:"association"`
	Threshold    *uint64              `json:"threshold"`
	Maintainers  []protocol.PublicKey `json:"maintainers"`
	Quorum       *uint64              `json:"quorum"`
	RejectQuorum *uint64              `json:"reject_quorum"`
	Bootstrap    []string             `json:"bootstrap"`
	Revoke       []protocol.PublicKey `json:"revoke"`
	Ban          []protocol.PublicKey `json:"ban"`
	Unban        []protocol.PublicKey `json:"unban"`
	// Bans says whether a new commons' manifests may ban keys (SPEC
	// §7.5): a genesis only, for the commons' life. Default: true.
	Bans *bool `json:"bans"`
	// Coalition says whether a new commons carries the entrepreneurial
	// coalition's records, profiles and sponsorships (SPEC §7.6): a genesis
	// only, for the commons' life. Default: true.
	Coalition *bool `json:"coalition"`
	// AssociationRecords says whether a new commons carries the
	// association's records: disputes, statements, resolutions,
	// certificates, rotations (SPEC §7.7): a genesis only, for the
	// commons' life. Default: true.
	AssociationRecords *bool   `json:"association_records"`
	MaxBlobBytes       *uint64 `json:"max_blob_bytes"`
	// Work is the proof of work, in bits, every record of a new commons
	// but its genesis must carry (SPEC §7.4): a genesis only.
	Work *uint64 `json:"work"`
	// On is no setting: the manifest versions (CIDs) an update builds on,
	// accepted or contested ones. Default: every accepted head. An
	// association member answering an update made with a stolen key
	// builds on the version before it.
	On []string `json:"on,omitempty"`
	// Force is no setting: it publishes (or drafts) an update even when
	// the commons would hold it inert.
	Force bool `json:"force,omitempty"`
}

// Published is what publishing a record did: its CID and how the commons
// classifies it (crdt's Classify): effective, waiting (for a record it
// links to), contested (a manifest, SPEC §12.6), suspended (a review a
// contest holds undecided) or, only when forced, inert. Reason says why
// for inert and suspended records.
type Published struct {
	CID      string   `json:"cid"`
	Class    string   `json:"class,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// ManifestInfo is a commons' current manifest and its history.
type ManifestInfo struct {
	Commons  string               `json:"commons"`
	Head     string               `json:"head"`
	Manifest *protocol.Manifest   `json:"manifest"`
	Forks    []string             `json:"forks"`
	Revoked  []protocol.PublicKey `json:"revoked"`
	// Suspended keys are revoked only by contested manifests: their
	// reviews count neither way until the contest is decided.
	Suspended []protocol.PublicKey `json:"suspended"`
	// Banned keys are banned by a head (SPEC §12.3): their contributions
	// and reviews are inert.
	Banned []protocol.PublicKey `json:"banned"`
	// BanSuspended keys are banned only by contested manifests: their
	// contributions are held pending and their reviews count neither way
	// until the contest is decided.
	BanSuspended []protocol.PublicKey `json:"ban_suspended"`
	History      []ManifestVersion    `json:"history"`
	// Contested lists the contested manifests, each with the manifests
	// it is contested with (SPEC §12.6).
	Contested []ManifestVersion `json:"contested"`
	// Work is the proof of work, in bits, the commons' genesis asks of
	// every other record (SPEC §7.4); 0: none.
	Work int `json:"work"`
	// Bans: the commons' genesis lets its manifests ban keys (SPEC §7.5).
	Bans bool `json:"bans"`
	// Coalition is the version of the coalition's records (profiles,
	// sponsorships) the commons' genesis lets it carry (SPEC §7.6); 0:
	// none.
	Coalition int `json:"coalition"`
	// AssociationRecords is the version of the association's records
	// (disputes, resolutions, certificates, rotations) the commons'
	// genesis lets it carry (SPEC §7.7); 0: none.
	AssociationRecords int `json:"association_records"`
}

// ManifestVersion is one accepted (on-chain) or contested manifest version.
type ManifestVersion struct {
	CID     string             `json:"cid"`
	Version uint64             `json:"version"`
	Author  protocol.PublicKey `json:"author"`
	Time    time.Time          `json:"time"`
	Head    bool               `json:"head"`
	// ContestedWith lists, for a contested version, the manifests that
	// revoke a key it needs and that it may revoke in turn: the first 16
	// by CID; ContestedWithTotal counts them all.
	ContestedWith      []string `json:"contested_with,omitempty"`
	ContestedWithTotal int      `json:"contested_with_total,omitempty"`
}

// ContributeParams describe a new contribution. Payload CIDs must name
// blobs already stored (PutBlob).
type ContributeParams struct {
	Commons string              `json:"commons"`
	Title   string              `json:"title"`
	Summary string              `json:"summary"`
	Kind    string              `json:"kind"`
	Payload []PayloadParam      `json:"payload"`
	Revises string              `json:"revises"`
	Sponsor *protocol.PublicKey `json:"sponsor"`
	Paid    bool                `json:"paid"`
}

// PayloadParam names one stored blob of a contribution.
type PayloadParam struct {
	CID  string `json:"cid"`
	Name string `json:"name"`
}

// ReviewParams describe a review.
type ReviewParams struct {
	Target    string `json:"target"`
	Decision  string `json:"decision"`
	Rationale string `json:"rationale"`
	// Force publishes the review even when the commons would hold it
	// inert (this key is no maintainer for this contribution).
	Force bool `json:"force,omitempty"`
}

// SponsorParams describe a sponsorship: the sponsor's countersignature of
// a paid contribution that names this node's key as its sponsor (SPEC
// §5.6).
type SponsorParams struct {
	Target string `json:"target"`
	Note   string `json:"note,omitempty"`
}

// ProfileParams describe this node's profile in a commons (SPEC §5.5): it
// replaces the one published before.
type ProfileParams struct {
	Commons string         `json:"commons"`
	Name    string         `json:"name"`
	About   string         `json:"about,omitempty"`
	Uses    []protocol.Use `json:"uses,omitempty"`
}

// ProfileInfo is the profile that counts for a key in a commons: its
// latest (SPEC §12.9).
type ProfileInfo struct {
	Commons string             `json:"commons"`
	Key     protocol.PublicKey `json:"key"`
	CID     string             `json:"cid"`
	Time    time.Time          `json:"time"`
	Profile *protocol.Profile  `json:"profile"`
}

// PledgeParams describe a pledge by this node (SPEC §5.7): what it gives
// back to the commons over a period.
type PledgeParams struct {
	Commons string `json:"commons"`
	// Kind is money, hours or infrastructure.
	Kind string `json:"kind"`
	// Amount is money in the currency's smallest unit (cents), or whole
	// hours; none for infrastructure.
	Amount   uint64 `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
	// Peer is the peer ID of the node an infrastructure pledge runs.
	Peer        string              `json:"peer,omitempty"`
	From        time.Time           `json:"from"`
	Until       time.Time           `json:"until"`
	Beneficiary *protocol.PublicKey `json:"beneficiary,omitempty"`
	Note        string              `json:"note,omitempty"`
}

// AckParams describe an acknowledgement by this node that a pledge was
// met (SPEC §5.8): as the pledge's beneficiary, or for the association
// under the current manifest.
type AckParams struct {
	Pledge string `json:"pledge"`
	// Amount is the part met, in the pledge's unit; none for
	// infrastructure.
	Amount uint64 `json:"amount,omitempty"`
	Note   string `json:"note,omitempty"`
}

// PledgeInfo is a pledge in the reciprocity report, with what its
// acknowledgements say was met.
type PledgeInfo struct {
	CID         string              `json:"cid"`
	Kind        string              `json:"kind"`
	Amount      uint64              `json:"amount"`
	Currency    string              `json:"currency,omitempty"`
	Peer        string              `json:"peer,omitempty"`
	From        time.Time           `json:"from"`
	Until       time.Time           `json:"until"`
	Beneficiary *protocol.PublicKey `json:"beneficiary,omitempty"`
	// Acknowledged is the part acknowledged (at most Amount); Met: all of
	// it, or for infrastructure, acknowledged at all.
	Acknowledged uint64 `json:"acknowledged"`
	Met          bool   `json:"met"`
	// Acks lists the first MaxUnconfirmed of its AcksCount
	// acknowledgements that count.
	Acks      []string `json:"acks"`
	AcksCount int      `json:"acks_count"`
	// Unmet is the resolution of an upheld dispute that marks the pledge
	// unmet (SPEC §12.12): then no acknowledgement counts.
	Unmet string `json:"unmet,omitempty"`
}

// ReciprocityInfo is the reciprocity report of a commons (SPEC §12.10):
// per participant that declared a use of the commons or sponsored work,
// the signals the signed records give and the records behind each. It is
// the same on every node that holds the same records.
type ReciprocityInfo struct {
	Commons string `json:"commons"`
	// Since is the start of the period; absent: the commons' whole life.
	Since *time.Time `json:"since,omitempty"`
	// Accepted is how many contributions made in the period are accepted.
	Accepted     int               `json:"accepted"`
	Participants []ParticipantInfo `json:"participants"`
}

// ParticipantInfo is one participant's part in the reciprocity report.
type ParticipantInfo struct {
	Key protocol.PublicKey `json:"key"`
	// Profile is the profile that counts for the key, if any, with its
	// name and use declarations.
	Profile string         `json:"profile,omitempty"`
	Name    string         `json:"name,omitempty"`
	Uses    []protocol.Use `json:"uses,omitempty"`
	// Sponsored are the paid contributions made in the period that name
	// the key as sponsor and that it countersigned.
	Sponsored []SponsoredInfo `json:"sponsored"`
	// Accepted is how many of them are accepted, and Share that number
	// over the period's accepted contributions (0 when there are none).
	Accepted int     `json:"accepted"`
	Share    float64 `json:"share"`
	// Unconfirmed are the paid contributions made in the period that name
	// the key as sponsor without its countersignature: the contributors'
	// word alone. It lists the first MaxUnconfirmed of UnconfirmedCount.
	Unconfirmed      []string `json:"unconfirmed"`
	UnconfirmedCount int      `json:"unconfirmed_count"`
	// Pledges are the key's pledges whose period reaches the report's.
	Pledges []PledgeInfo `json:"pledges"`
}

// MaxUnconfirmed is the most unconfirmed contributions a participant's
// part of the reciprocity report lists (anyone can name a key as
// sponsor), and the most acknowledgements a pledge lists.
const MaxUnconfirmed = 100

// SponsoredInfo is a paid contribution its sponsor countersigned.
type SponsoredInfo struct {
	Contribution string    `json:"contribution"`
	Time         time.Time `json:"time"`
	Sponsorship  string    `json:"sponsorship"`
	Status       string    `json:"status"`
}

// RecordInfo is a decoded record and, for a contribution, its status.
type RecordInfo struct {
	CID          string                    `json:"cid"`
	Type         string                    `json:"type"`
	Commons      string                    `json:"commons"`
	Author       protocol.PublicKey        `json:"author"`
	Time         time.Time                 `json:"time"`
	HLC          uint64                    `json:"hlc"`
	Links        []string                  `json:"links"`
	Manifest     *protocol.Manifest        `json:"manifest,omitempty"`
	Contribution *protocol.Contribution    `json:"contribution,omitempty"`
	Review       *protocol.Review          `json:"review,omitempty"`
	Profile      *protocol.Profile         `json:"profile,omitempty"`
	Sponsorship  *protocol.Sponsorship     `json:"sponsorship,omitempty"`
	Pledge       *protocol.Pledge          `json:"pledge,omitempty"`
	Ack          *protocol.Acknowledgement `json:"acknowledgement,omitempty"`
	Dispute      *protocol.Dispute         `json:"dispute,omitempty"`
	Statement    *protocol.Statement       `json:"statement,omitempty"`
	Resolution   *protocol.Resolution      `json:"resolution,omitempty"`
	Certificate  *protocol.Certificate     `json:"certificate,omitempty"`
	Rotation     *protocol.Rotation        `json:"rotation,omitempty"`
	// WithdrawnBy is, for a withdrawn contribution (or one a contest
	// could withdraw), the resolution that withdraws it.
	WithdrawnBy string `json:"withdrawn_by,omitempty"`
	// ConfirmedBy is, for a paid contribution, the sponsorship by which its
	// sponsor countersigned it (SPEC §12.9); empty until it has.
	ConfirmedBy string               `json:"confirmed_by,omitempty"`
	Cosigners   []protocol.PublicKey `json:"cosigners,omitempty"`
	Status      string               `json:"status,omitempty"`
	// Held: a contribution a contest holds pending: its licence version is
	// contested, or undecided votes could decide it (SPEC §12.5).
	Held bool `json:"held,omitempty"`
	// Contested: a manifest that is contested (SPEC §12.6).
	Contested bool         `json:"contested,omitempty"`
	Inert     string       `json:"inert,omitempty"`
	Reviews   []ReviewInfo `json:"reviews,omitempty"`
}

// ReviewInfo is one review of a contribution.
type ReviewInfo struct {
	CID        string             `json:"cid"`
	Maintainer protocol.PublicKey `json:"maintainer"`
	// For is the maintainer key it votes for, when its author stands for
	// that key through rotations (SPEC §12.14).
	For       *protocol.PublicKey `json:"for,omitempty"`
	Decision  string              `json:"decision"`
	Under     string              `json:"under"`
	Time      time.Time           `json:"time"`
	Rationale string              `json:"rationale,omitempty"`
	Counts    bool                `json:"counts"`
	// Suspended says why a contest holds this review's vote undecided.
	Suspended string `json:"suspended,omitempty"`
	Inert     string `json:"inert,omitempty"`
	// Dropped says that this node dropped the review's bytes, its author's
	// key being banned (commons repo compact --disowned): its rationale is
	// not known here.
	Dropped bool `json:"dropped,omitempty"`
}

// FeedQuery selects feed entries. Commons "" means every replicated commons;
// Since applies per commons, and a Since past the end of the feed of every
// commons selected is refused (ErrBadRequest, saying where the end is): no
// record has it. Wait > 0 blocks up to that long until at least one entry
// matches.
type FeedQuery struct {
	Commons string        `json:"commons"`
	Status  string        `json:"status"`
	Since   uint64        `json:"since"`
	Limit   int           `json:"limit"`
	Wait    time.Duration `json:"wait"`
}

// FeedItem is one record in a commons' feed, in arrival order.
type FeedItem struct {
	Cursor  uint64             `json:"cursor"`
	CID     string             `json:"cid"`
	Type    string             `json:"type"`
	Author  protocol.PublicKey `json:"author"`
	Commons string             `json:"commons"`
	Time    time.Time          `json:"time"`
	Title   string             `json:"title,omitempty"`
	// Status is a contribution's status now. (The live feed's record
	// events carry the status on arrival instead, and its status events
	// each later change: a stream is a log, a page a snapshot.)
	Status   string `json:"status,omitempty"`
	Target   string `json:"target,omitempty"`
	Decision string `json:"decision,omitempty"`
}

// ImportReport says what an import did.
type ImportReport struct {
	Imported   int `json:"imported"`
	Duplicates int `json:"duplicates"`
	// Rejected names the first MaxListedRejects records refused, and
	// RejectedTotal counts them all: a file of millions of bad records
	// costs no memory for each.
	Rejected      []RejectedRecord `json:"rejected"`
	RejectedTotal int              `json:"rejected_total"`
	Commons       []string         `json:"commons"`
	// Skipped counts the valid records of commons this node does not
	// replicate, left out (import with join replicates them); NotReplicated
	// names those commons.
	Skipped       int      `json:"skipped"`
	NotReplicated []string `json:"not_replicated"`
}

// MaxListedRejects is how many refused records an ImportReport names.
const MaxListedRejects = 1000

// Reject counts a refused record, and names it while fewer than
// MaxListedRejects are.
func (r *ImportReport) Reject(rec RejectedRecord) {
	r.RejectedTotal++
	if len(r.Rejected) < MaxListedRejects {
		r.Rejected = append(r.Rejected, rec)
	}
}

// Rejects returns how many records were refused (a report from a node
// that does not count them beyond those it names: those).
func (r *ImportReport) Rejects() int { return max(r.RejectedTotal, len(r.Rejected)) }

// RejectedRecord is a record an import refused, and why.
type RejectedRecord struct {
	CID    string `json:"cid"`
	Reason string `json:"reason"`
}

// Limits of the API.
const (
	DefaultFeedLimit = 1000
	MaxFeedLimit     = 10000
	MaxFeedWait      = 60 * time.Second
)

// SyncReport says what an on-demand sync did.
type SyncReport struct {
	Sessions []SyncSession `json:"sessions"`
	Received int           `json:"received"` // records added, over all sessions
	Sent     int           `json:"sent"`     // records sent, over all sessions
}

// SyncSession is one reconciliation session with one peer over one commons.
type SyncSession struct {
	Peer          string `json:"peer"`
	Commons       string `json:"commons"`
	Received      int    `json:"received"` // records added here
	Sent          int    `json:"sent"`     // records sent to the peer
	Turns         int    `json:"turns"`    // turns, both directions
	RoundTrips    int    `json:"round_trips"`
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
	Error         string `json:"error,omitempty"`
}

// MaxBlobSize is the largest blob a node stores, whatever a manifest allows.
const MaxBlobSize = 1 << 30

// DisputeParams describe this node's dispute (SPEC §5.9): about a record
// (Subject, a CID: its commons is the record's) or about a key
// (Participant, in Commons).
type DisputeParams struct {
	Commons     string              `json:"commons,omitempty"`
	Subject     string              `json:"subject,omitempty"`
	Participant *protocol.PublicKey `json:"participant,omitempty"`
	Reason      string              `json:"reason"`
	Evidence    []string            `json:"evidence,omitempty"`
}

// StatementParams describe this node's statement in a dispute.
type StatementParams struct {
	Dispute  string   `json:"dispute"`
	Text     string   `json:"text"`
	Evidence []string `json:"evidence,omitempty"`
}

// ResolveParams describe the association's resolution of a dispute (SPEC
// §5.11), under the current manifest.
type ResolveParams struct {
	Dispute string `json:"dispute"`
	// Outcome is dismiss or uphold; Effect, with uphold, withdraw,
	// set-aside or unmet.
	Outcome  string   `json:"outcome"`
	Effect   string   `json:"effect,omitempty"`
	Reason   string   `json:"reason"`
	Replaces []string `json:"replaces,omitempty"`
}

// CertifyParams describe the association's certificate (SPEC §5.12): of a
// participant's role, or of a release of contributions at the commons'
// state root now.
type CertifyParams struct {
	Commons       string              `json:"commons"`
	Participant   *protocol.PublicKey `json:"participant,omitempty"`
	Role          string              `json:"role,omitempty"`
	Release       string              `json:"release,omitempty"`
	Contributions []string            `json:"contributions,omitempty"`
	Expires       time.Time           `json:"expires"`
	Note          string              `json:"note,omitempty"`
}

// RotateParams describe this node's rotation to a successor key in a
// commons (SPEC §5.13): the successor co-signs it.
type RotateParams struct {
	Commons   string             `json:"commons"`
	Successor protocol.PublicKey `json:"successor"`
}

// MaxDisputes is the most disputes a DisputeList holds.
const MaxDisputes = 1000

// MaxReplies is the most statements and resolutions a DisputeInfo reads
// past those that stand or are suspended, which it always lists.
const MaxReplies = 1000

// DisputeList is a page of the disputes of a commons: at most
// MaxDisputes, taken in CID order after a cursor, then shown open ones
// first, then the latest first (open ones first within the page only).
type DisputeList struct {
	Commons  string        `json:"commons"`
	Disputes []DisputeInfo `json:"disputes"`
	// More is true when the commons holds disputes past this page; Next is
	// then the cursor (after) that asks for the next page.
	More bool   `json:"more,omitempty"`
	Next string `json:"next,omitempty"`
}

// DisputeInfo is a dispute and how it stands (SPEC §12.12).
type DisputeInfo struct {
	CID     string             `json:"cid"`
	Commons string             `json:"commons"`
	Author  protocol.PublicKey `json:"author"`
	Time    time.Time          `json:"time"`
	// Subject is the record disputed, and SubjectType its type once here;
	// Participant the key disputed.
	Subject     string              `json:"subject,omitempty"`
	SubjectType string              `json:"subject_type,omitempty"`
	Participant *protocol.PublicKey `json:"participant,omitempty"`
	Reason      string              `json:"reason"`
	Evidence    []string            `json:"evidence,omitempty"`
	Under       string              `json:"under"`
	// Class is how the dispute stands (effective, waiting, inert), Inert
	// why not.
	Class string `json:"class"`
	Inert string `json:"inert,omitempty"`
	// Outcome is open, dismissed or upheld; Effect the effect that binds
	// its subject when upheld with one; Held: a contest could change it.
	Outcome string `json:"outcome"`
	Effect  string `json:"effect,omitempty"`
	Held    bool   `json:"held,omitempty"`
	// Counting are the resolutions that decide it.
	Counting []string `json:"counting,omitempty"`
	// Statements and Resolutions are the records that answer it, oldest
	// first (with a single dispute only): every resolution that stands or
	// is suspended, and a page of MaxReplies of the others and of the
	// statements, taken by CID after a cursor. More is true when there are
	// others, and Next is then the cursor of the next page.
	Statements  []StatementInfo  `json:"statements,omitempty"`
	Resolutions []ResolutionInfo `json:"resolutions,omitempty"`
	More        bool             `json:"more,omitempty"`
	Next        string           `json:"next,omitempty"`
}

// StatementInfo is a statement in a dispute.
type StatementInfo struct {
	CID      string             `json:"cid"`
	Author   protocol.PublicKey `json:"author"`
	Time     time.Time          `json:"time"`
	Text     string             `json:"text"`
	Evidence []string           `json:"evidence,omitempty"`
	Class    string             `json:"class"`
	Inert    string             `json:"inert,omitempty"`
}

// ResolutionInfo is a resolution of a dispute and how it stands.
type ResolutionInfo struct {
	CID      string               `json:"cid"`
	Signers  []protocol.PublicKey `json:"signers"`
	Time     time.Time            `json:"time"`
	Outcome  string               `json:"outcome"`
	Effect   string               `json:"effect,omitempty"`
	Reason   string               `json:"reason"`
	Replaces []string             `json:"replaces,omitempty"`
	Under    string               `json:"under"`
	Class    string               `json:"class"`
	Inert    string               `json:"inert,omitempty"`
	// Counting: it decides the dispute (effective, and overruled by none).
	Counting bool `json:"counting"`
}

// CertificateInfo says whether a certificate holds at a moment (SPEC
// §12.13), and why not.
type CertificateInfo struct {
	CID         string               `json:"cid"`
	Commons     string               `json:"commons"`
	Participant *protocol.PublicKey  `json:"participant,omitempty"`
	Role        string               `json:"role,omitempty"`
	Release     *ReleaseInfo         `json:"release,omitempty"`
	Time        time.Time            `json:"time"` // when it was made
	Expires     time.Time            `json:"expires"`
	Note        string               `json:"note,omitempty"`
	Under       string               `json:"under"`
	Signers     []protocol.PublicKey `json:"signers"`
	Class       string               `json:"class"`
	Inert       string               `json:"inert,omitempty"`
	// Head is the manifest head of the state it was checked in: a
	// revocation after it, which that state does not hold, is not seen.
	Head string `json:"head"`
	// At is the moment asked about; Holds whether it holds then, and
	// Problems why not, in words.
	At       time.Time `json:"at"`
	Holds    bool      `json:"holds"`
	Problems []string  `json:"problems,omitempty"`
}

// ReleaseInfo is a certified release, with each contribution's status now.
type ReleaseInfo struct {
	Name          string               `json:"name"`
	Root          string               `json:"root"`
	Contributions []ContributionStatus `json:"contributions"`
}

// ContributionStatus is a contribution and its status.
type ContributionStatus struct {
	CID    string `json:"cid"`
	Status string `json:"status"`
}
