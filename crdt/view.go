package crdt

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// ManifestVersion is one accepted or contested manifest.
type ManifestVersion struct {
	CID      cid.Cid
	Manifest *protocol.Manifest
	Author   protocol.PublicKey
	Time     protocol.HLC
	// Head is true for every head of the chain (no accepted manifest
	// supersedes it); with a fork several versions are heads, and Head()
	// names the resolved one.
	Head bool
	// Contested is true for a contested manifest (SPEC §12.6).
	Contested bool
	// AttackedBy lists the accepted or contested manifests that revoke a
	// key this one needs without having it in their past, sorted by CID:
	// for a contested manifest, the other side of the contest (nil for an
	// accepted one). It holds the MaxAttackedBy of them with the lowest
	// CIDs; Attackers counts them all.
	AttackedBy []cid.Cid
	Attackers  int
}

// MaxAttackedBy is how many attackers ManifestVersion.AttackedBy lists.
const MaxAttackedBy = 16

// ContributionView is a contribution with its status and reviews.
type ContributionView struct {
	CID    cid.Cid
	Author protocol.PublicKey
	Time   protocol.HLC
	Body   *protocol.Contribution
	Status Status
	// Held is true when the contribution is pending because of a contest:
	// its licence is contested, or votes a contest holds undecided could
	// decide it (SPEC §12.5).
	Held bool
	// Inert says why the contribution cannot be accepted; "" if it can.
	Inert string
	// Reviews lists every review of it in the set, whatever its standing
	// (counting or not, suspended, inert, waiting), sorted by (time, CID).
	Reviews []ReviewView
	// Sponsorship is the sponsorship that confirms a paid contribution's
	// sponsor (State.Sponsorship); undefined while the sponsor has not
	// countersigned.
	Sponsorship cid.Cid
}

// ReviewView is one review of a contribution.
type ReviewView struct {
	CID        cid.Cid
	Maintainer protocol.PublicKey // the review's author
	// For is the maintainer key the review votes for, when its author
	// stands for it through rotations (SPEC §12.14); zero otherwise.
	For       protocol.PublicKey
	Decision  string
	Under     cid.Cid
	Time      protocol.HLC
	Rationale string
	// Counts is true when this is its maintainer's latest review of the
	// contribution and it is eligible: a definite vote (a latest retract
	// counts but casts no vote).
	Counts bool
	// Suspended says why a contest holds this review's vote undecided;
	// "" if none does. A suspended latest review is an undecided vote.
	Suspended string
	// Inert says why the review carries no authority; "" if it does or
	// is still waiting.
	Inert string
	// Dropped says that its holder dropped its bytes (Droppable): its
	// Rationale is not known here.
	Dropped bool
}

// InertRecord is a record that stays in the set but carries no authority.
type InertRecord struct {
	CID    cid.Cid
	Type   protocol.Type
	Reason string
}

// byTimeCID orders entries by record time, then CID bytes.
func byTimeCID(a, b *entry) int {
	if c := cmp.Compare(a.time, b.time); c != 0 {
		return c
	}
	return compareCID(a.cid, b.cid)
}

// History returns every accepted manifest, sorted by (Version, CID).
func (s *State) History() []ManifestVersion {
	return s.versions(clsOK)
}

// ContestedCIDs returns the contested manifests' CIDs, sorted by CID.
func (s *State) ContestedCIDs() []cid.Cid {
	var out []cid.Cid
	for _, e := range s.mans {
		if e.cls == clsContested {
			out = append(out, e.cid)
		}
	}
	slices.SortFunc(out, compareCID)
	return out
}

// ContestedManifests returns every contested manifest, sorted by (Version,
// CID); empty when nothing is contested.
func (s *State) ContestedManifests() []ManifestVersion {
	return s.versions(clsContested)
}

func (s *State) versions(c class) []ManifestVersion {
	var out []ManifestVersion
	for _, e := range s.mans {
		if e.cls != c {
			continue
		}
		r := e.man.blk.Record
		v := ManifestVersion{CID: e.cid, Manifest: e.man.m, Author: r.Author, Time: r.Time,
			Head: c == clsOK && s.heads[e.man.ord], Contested: c == clsContested}
		if c == clsContested {
			as, n := s.g.attackers(e.man.ord, MaxAttackedBy, func(i int) cid.Cid { return s.mans[i].cid })
			for _, a := range as {
				v.AttackedBy = append(v.AttackedBy, s.mans[a].cid)
			}
			v.Attackers = n
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b ManifestVersion) int {
		if c := cmp.Compare(a.Manifest.Version, b.Manifest.Version); c != 0 {
			return c
		}
		return compareCID(a.CID, b.CID)
	})
	return out
}

// Revoked returns the revoked keys (listed by accepted manifests), sorted by
// their bytes.
func (s *State) Revoked() []protocol.PublicKey { return sortedKeys(s.revoked) }

// Banned returns the banned keys (listed by a head, SPEC §12.3), sorted by
// their bytes: their contributions and reviews are inert.
func (s *State) Banned() []protocol.PublicKey { return sortedKeys(s.banned) }

// Disowned reports whether record c is in the set and the commons has
// disowned it: its author is banned (by a head, SPEC §12.3). A banned
// key's contributions and reviews are inert, and its manifests never carry
// the association's authority, so a node need not fetch, keep or serve the
// blobs that only disowned records reference (SPEC §14.2). A record whose
// author's ban is contested is not disowned: the contest may lift the ban.
func (s *State) Disowned(c cid.Cid) bool {
	e := s.entry(c)
	var author protocol.PublicKey
	switch {
	case e == nil:
		return false
	case e.man != nil && e.man.blk != nil:
		author = e.man.blk.Record.Author
	case e.con != nil:
		author = e.con.author
	case e.rev != nil:
		author = e.rev.author
	case e.ext != nil:
		author = e.ext.author
	default:
		return false
	}
	_, banned := s.banned[author]
	return banned
}

// Droppable reports whether a node may drop the bytes of record b, which
// the set holds, and keep only its place (its entry, its digest in the
// root and the index): the commons disowned it (Disowned), and no rule
// will read it again, whatever arrives and whichever bans come or go. The
// rules read no review's bytes once it is added, and of a contribution's
// only whether it names a sponsor as paid work (a sponsorship's rule,
// which finds the same in every contribution that does not); so those
// two kinds qualify, less the contributions that name a paid sponsor.
// Everything else a banned key signs is kept: the rules read manifests at
// every Open, and profiles, pledges and the association's records as
// others arrive. A ban lifted later makes such a record count again,
// and its dropped bytes are then missing from its views.
func (s *State) Droppable(b *protocol.Block) bool {
	if !s.Disowned(b.CID) {
		return false
	}
	switch body := b.Record.Body.(type) {
	case *protocol.Review:
		return true
	case *protocol.Contribution:
		return body.Sponsor == nil || body.Provenance != protocol.ProvenancePaid
	}
	return false
}

// BanSuspended returns the keys banned by contested manifests and by no
// head, sorted by their bytes: their contributions are held pending and
// their reviews count neither way until the contest is decided.
func (s *State) BanSuspended() []protocol.PublicKey { return sortedKeys(s.banSusp) }

// Suspended returns the suspended keys (listed by contested manifests and
// by no accepted one), sorted by their bytes.
func (s *State) Suspended() []protocol.PublicKey { return sortedKeys(s.suspended) }

func sortedKeys(set map[protocol.PublicKey]struct{}) []protocol.PublicKey {
	out := make([]protocol.PublicKey, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.SortFunc(out, protocol.PublicKey.Compare)
	return out
}

// Contribution returns the view of a contribution; false if c is not a
// contribution in the set. It reads the contribution and its reviews
// through Records, and returns the error of a read that fails.
func (s *State) Contribution(c cid.Cid) (ContributionView, bool, error) {
	v, ok, err := s.Standing(c)
	if !ok || err != nil {
		return v, false, err
	}
	if err := v.Fill(s.src); err != nil {
		return ContributionView{}, false, err
	}
	return v, true, nil
}

// Standing returns the view of a contribution as the state holds it,
// reading no record: the contribution's Author and Body and its reviews'
// Rationale are left empty, for Fill to read. False if c is not a
// contribution in the set.
func (s *State) Standing(c cid.Cid) (ContributionView, bool, error) {
	e := s.entry(c)
	if e == nil || e.con == nil {
		return ContributionView{}, false, s.err
	}
	v := s.standing(e)
	if s.err != nil {
		return ContributionView{}, false, s.err
	}
	return v, true, nil
}

func (s *State) standing(e *entry) ContributionView {
	v := ContributionView{CID: e.cid, Time: e.time, Status: e.con.status, Held: e.con.held}
	if e.cls == clsInert {
		v.Inert = e.reason
	}
	v.Sponsorship, _ = s.Sponsorship(e.cid)
	var rs []*entry
	for _, x := range s.entries(s.listFor(tagTarget, e.cid)) {
		if x != nil && x.rev != nil {
			rs = append(rs, x)
		}
	}
	slices.SortFunc(rs, byTimeCID)
	for _, x := range rs {
		rv := ReviewView{CID: x.cid, Maintainer: x.rev.author, Decision: x.rev.decision, Under: x.rev.under, Time: x.time}
		if x.rev.slot != x.rev.author {
			rv.For = x.rev.slot
		}
		rv.Counts = x.cls == clsOK && s.latest(e, x) && x.reason == ""
		switch {
		case x.cls == clsSuspended:
			// Set aside for sure or not, a contest holds it (§12.4): its
			// Verdict and Inert() say so too.
			rv.Suspended = x.reason
		case x.reason == reasonSetAside:
			rv.Inert = x.reason // it counts as a retraction, its decision as nothing
		case x.cls == clsInert:
			rv.Inert = x.reason
		}
		v.Reviews = append(v.Reviews, rv)
	}
	return v
}

// Fill reads the records of a view that Standing returned through recs,
// and sets what Standing left empty. It does not use the State, so it may
// run while the State changes.
func (v *ContributionView) Fill(recs Records) error {
	b, err := readRecord(recs, v.CID)
	if err != nil {
		return err
	}
	v.Author, v.Body = b.Record.Author, b.Record.Contribution()
	for i := range v.Reviews {
		r, err := readRecord(recs, v.Reviews[i].CID)
		if errors.Is(err, ErrDropped) {
			v.Reviews[i].Dropped = true
			continue
		}
		if err != nil {
			return err
		}
		v.Reviews[i].Rationale = r.Record.Review().Rationale
	}
	return nil
}

// Contributions returns every contribution in the set, sorted by (time,
// CID), reading each through Records as Contribution does.
func (s *State) Contributions() ([]ContributionView, error) {
	var es []*entry
	err := s.each(func(c cid.Cid) error {
		if e := s.entry(c); e != nil && e.con != nil {
			es = append(es, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(es, byTimeCID)
	out := make([]ContributionView, 0, len(es))
	for _, e := range es {
		v := s.standing(e)
		if err := v.Fill(s.src); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, s.err
}

// Inert returns the inert records, sorted by CID.
func (s *State) Inert() ([]InertRecord, error) {
	out := make([]InertRecord, 0, len(s.manInert))
	for c := range s.manInert {
		e := s.mfs[c]
		out = append(out, InertRecord{CID: c, Type: e.typ, Reason: e.reason})
	}
	for _, k := range s.scanGroup([]byte{tagInert}) {
		c, err := cid.Cast([]byte(k[1:]))
		if err != nil {
			return nil, fmt.Errorf("crdt: key %x: %w", k, err)
		}
		if e := s.entry(c); e != nil {
			out = append(out, InertRecord{CID: c, Type: e.typ, Reason: e.reason})
		}
	}
	slices.SortFunc(out, func(a, b InertRecord) int { return compareCID(a.CID, b.CID) })
	return out, s.err
}

// NumInert returns the number of inert records.
func (s *State) NumInert() int { return s.nInert + len(s.manInert) }

// each calls fn with the CID of every record in the set, until fn returns
// an error.
func (s *State) each(fn func(cid.Cid) error) error {
	for c := range s.mfs {
		if err := fn(c); err != nil {
			return err
		}
	}
	seen := make(map[cid.Cid]bool, len(s.ents))
	for _, k := range s.scanGroup([]byte{tagEntry}) {
		c, err := cid.Cast([]byte(k[1:]))
		if err != nil {
			return fmt.Errorf("crdt: key %x: %w", k, err)
		}
		seen[c] = true
		if !s.has(c) {
			continue // a stub
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	// The entries made since the last Ready are not written yet: they are
	// in s.ents only, not under the overlay's 'e' group.
	var fresh []cid.Cid
	for c, e := range s.ents {
		if !e.stub && !seen[c] {
			fresh = append(fresh, c)
		}
	}
	for _, c := range fresh {
		if err := fn(c); err != nil {
			return err
		}
	}
	return s.err
}

// Merge returns a new state, made by New, whose set is the union of a's and
// b's, reading their records through their Records. It never modifies a or
// b (the new state shares their immutable blocks). It panics if a and b
// belong to different commons.
func Merge(a, b *State) (*State, error) {
	if a.id != b.id {
		panic("crdt: Merge of states of different commons " + a.id.String() + " and " + b.id.String())
	}
	var bs []*protocol.Block
	for i, from := range []*State{a, b} {
		err := from.each(func(c cid.Cid) error {
			if i == 1 && a.Has(c) {
				return nil
			}
			blk, err := from.Record(c)
			if err != nil {
				return err
			}
			bs = append(bs, blk)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Sorted, so that a bug that depends on order replays exactly.
	slices.SortFunc(bs, func(x, y *protocol.Block) int { return compareCID(x.CID, y.CID) })
	s := New(a.id)
	for _, blk := range bs {
		if _, err := s.Add(blk); err != nil {
			return nil, err
		}
	}
	return s, nil
}
