package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// The entrepreneurial coalition's records (SPEC §5.5, §5.6, §12.9):
// profiles and sponsorships, published and read here.

// Sponsor signs this node's countersignature of a paid contribution that
// names its key as sponsor. It is refused when the commons would hold it
// inert (the contribution does not name this key, or is not paid), when
// the commons does not carry sponsorships, and when this key has already
// confirmed the contribution: a second sponsorship would change nothing.
func (n *Node) Sponsor(ctx context.Context, p api.SponsorParams) (api.Published, error) {
	target, err := cid.Decode(p.Target)
	if err != nil {
		return api.Published{}, badRequest("%q is not a CID", p.Target)
	}
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		rep := n.holding(target)
		if rep == nil {
			return nil, fmt.Errorf("%w: no contribution %s here", api.ErrNotFound, p.Target)
		}
		if _, ok := rep.state.Status(target); !ok {
			typ, _ := rep.state.Type(target)
			return nil, badRequest("%s is a %s, not a contribution: only a paid contribution is sponsored", p.Target, typ)
		}
		b, err := rep.state.Record(target)
		if errors.Is(err, crdt.ErrDropped) {
			return nil, badRequest("contribution %s is disowned (its author's key is banned), and this node dropped its bytes: it names no sponsor, so a sponsorship of it would be inert; nothing was published", target)
		}
		if err != nil {
			return nil, fmt.Errorf("node: read %s: %w", target, err)
		}
		if c := b.Record.Contribution(); c.Sponsor != nil && *c.Sponsor == n.self {
			if s, ok := rep.state.Sponsorship(target); ok {
				return nil, badRequest("contribution %s is confirmed already, by sponsorship %s; nothing was published", target, s)
			}
		} // else the commons would hold it inert, and says why

		return &protocol.Record{Commons: rep.id, Body: &protocol.Sponsorship{
			Target: protocol.Link{Cid: target}, Note: p.Note,
		}}, nil
	})
}

// SetProfile publishes this node's profile in a commons; it replaces the
// one published before. A profile the same as the one that counts is
// refused: publishing it would change nothing.
func (n *Node) SetProfile(ctx context.Context, p api.ProfileParams) (api.Published, error) {
	body := &protocol.Profile{Name: p.Name, About: p.About, Uses: p.Uses}
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		rep, err := n.replicaFor(p.Commons)
		if err != nil {
			return nil, err
		}
		if c, ok := rep.state.Profile(n.self); ok {
			b, err := rep.state.Record(c)
			if err != nil {
				return nil, fmt.Errorf("node: read profile %s: %w", c, err)
			}
			if samePro(b.Record.Profile(), body) {
				return nil, badRequest("profile %s says this already; nothing was published", c)
			}
		}
		r := &protocol.Record{Commons: rep.id, Body: body}
		if _, t, ok := rep.state.LatestProfile(n.self); ok {
			// This key's latest profile may be dated ahead of this node's
			// clock (another device's, or a thief's): the new one must be
			// later to count.
			r.Time = t + 1
		}
		return r, nil
	})
}

func samePro(a, b *protocol.Profile) bool {
	if a.Name != b.Name || a.About != b.About || len(a.Uses) != len(b.Uses) {
		return false
	}
	for i := range a.Uses {
		if a.Uses[i] != b.Uses[i] {
			return false
		}
	}
	return true
}

// Profile returns the profile that counts for key (a peer ID; "" for this
// node's) in a commons.
func (n *Node) Profile(ctx context.Context, commons, key string) (api.ProfileInfo, error) {
	k := n.self
	if key != "" {
		var err error
		if k, err = protocol.ParsePublicKey(key); err != nil {
			return api.ProfileInfo{}, badRequest("key %q is not a peer ID", key)
		}
	}
	var (
		id   cid.Cid
		c    cid.Cid
		ok   bool
		ierr error
	)
	if err := n.do(ctx, func() {
		rep, err := n.replicaFor(commons)
		if err != nil {
			ierr = err
			return
		}
		id = rep.id
		c, ok = rep.state.Profile(k)
		ierr = rep.state.Err()
	}); err != nil {
		return api.ProfileInfo{}, err
	}
	if ierr != nil {
		return api.ProfileInfo{}, ierr
	}
	if !ok {
		return api.ProfileInfo{}, fmt.Errorf("%w: key %s has no profile that counts in commons %s (none, or its key is banned)", api.ErrNotFound, k, id)
	}
	raw, err := n.st.GetRecord(ctx, c)
	if err != nil {
		return api.ProfileInfo{}, fmt.Errorf("read profile %s: %w", c, err)
	}
	b, err := protocol.ParseStored(c, raw)
	if err != nil {
		return api.ProfileInfo{}, fmt.Errorf("stored profile %s: %w", c, err)
	}
	return api.ProfileInfo{Commons: id.String(), Key: k, CID: c.String(), Time: b.Record.Time.Time(), Profile: b.Record.Profile()}, nil
}

// holding returns the replica whose set holds record c, or nil; on the
// event loop.
func (n *Node) holding(c cid.Cid) *replica {
	for _, id := range n.order {
		if n.commons[id].state.Has(c) {
			return n.commons[id]
		}
	}
	return nil
}

// Reciprocity returns the reciprocity report of a commons over the
// contributions made at or after since (zero: the commons' whole life). A
// commons whose genesis does not carry the coalition's records has no
// report: nobody there can declare a use or countersign.
func (n *Node) Reciprocity(ctx context.Context, commons string, since time.Time) (api.ReciprocityInfo, error) {
	var (
		id   cid.Cid
		r    crdt.Reciprocity
		ierr error
	)
	from := protocol.HLC(0)
	if !since.IsZero() {
		if since.UnixMilli() < 0 {
			return api.ReciprocityInfo{}, badRequest("since %s is before 1970", since.Format(time.RFC3339))
		}
		from = protocol.HLCFromMillis(since.UnixMilli(), 0)
	}
	if err := n.do(ctx, func() {
		rep, err := n.replicaFor(commons)
		if err != nil {
			ierr = err
			return
		}
		id = rep.id
		g := rep.state.Genesis()
		if g == nil {
			ierr = fmt.Errorf("%w: the genesis manifest of %s has not arrived yet", api.ErrUnknownCommons, commons)
			return
		}
		if g.Coalition() == 0 {
			ierr = badRequest("commons %s carries no profiles or sponsorships (its genesis does not set policy.coalition), so it has no reciprocity report", id)
			return
		}
		r, ierr = rep.reciprocity(from)
	}); err != nil {
		return api.ReciprocityInfo{}, err
	}
	if ierr != nil {
		return api.ReciprocityInfo{}, ierr
	}
	out := api.ReciprocityInfo{Commons: id.String(), Accepted: r.Accepted, Participants: []api.ParticipantInfo{}}
	if !since.IsZero() {
		t := from.Time()
		out.Since = &t
	}
	for _, p := range r.Participants {
		pi := api.ParticipantInfo{Key: p.Key, Accepted: p.Accepted, Sponsored: []api.SponsoredInfo{},
			Unconfirmed: cidStrings(p.Unconfirmed[:min(len(p.Unconfirmed), api.MaxUnconfirmed)]), UnconfirmedCount: len(p.Unconfirmed)}
		if p.Profile.Defined() {
			raw, err := n.st.GetRecord(ctx, p.Profile)
			if err != nil {
				return api.ReciprocityInfo{}, fmt.Errorf("read profile %s: %w", p.Profile, err)
			}
			b, err := protocol.ParseStored(p.Profile, raw)
			if err != nil {
				return api.ReciprocityInfo{}, fmt.Errorf("stored profile %s: %w", p.Profile, err)
			}
			pi.Profile, pi.Name, pi.Uses = p.Profile.String(), b.Record.Profile().Name, b.Record.Profile().Uses
		}
		for _, s := range p.Sponsored {
			pi.Sponsored = append(pi.Sponsored, api.SponsoredInfo{Contribution: s.Contribution.String(), Time: s.Time.Time(),
				Sponsorship: s.Sponsorship.String(), Status: string(s.Status)})
		}
		if r.Accepted > 0 {
			pi.Share = float64(p.Accepted) / float64(r.Accepted)
		}
		pi.Pledges = []api.PledgeInfo{}
		for _, v := range p.Pledges {
			pl := v.Pledge
			info := api.PledgeInfo{CID: v.CID.String(), Kind: pl.Kind, Amount: pl.Amount, Currency: pl.Currency,
				Peer: pl.Peer, From: time.UnixMilli(int64(pl.From)).UTC(), Until: time.UnixMilli(int64(pl.Until)).UTC(),
				Beneficiary: pl.Beneficiary, Acknowledged: v.Acknowledged, Met: v.Met,
				Acks: cidStrings(v.Acks[:min(len(v.Acks), api.MaxUnconfirmed)]), AcksCount: len(v.Acks)}
			if v.Unmet.Defined() {
				info.Unmet = v.Unmet.String()
			}
			pi.Pledges = append(pi.Pledges, info)
		}
		out.Participants = append(out.Participants, pi)
	}
	return out, nil
}

// Pledge publishes this node's pledge: what it gives back to the commons
// over a period. The protocol checks its fields (a money pledge's currency,
// an infrastructure pledge's peer, the period), naming any that is wrong.
func (n *Node) Pledge(ctx context.Context, p api.PledgeParams) (api.Published, error) {
	if p.From.IsZero() || p.Until.IsZero() {
		return api.Published{}, badRequest("a pledge gives its period: from and until")
	}
	if p.From.UnixMilli() < 1 {
		return api.Published{}, badRequest("a pledge's period starts after 1970")
	}
	body := &protocol.Pledge{Kind: p.Kind, Amount: p.Amount, Currency: p.Currency, Peer: p.Peer,
		From: uint64(p.From.UnixMilli()), Until: uint64(p.Until.UnixMilli()), Beneficiary: p.Beneficiary, Note: p.Note}
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		rep, err := n.replicaFor(p.Commons)
		if err != nil {
			return nil, err
		}
		h, m := rep.state.Head()
		if m == nil {
			return nil, fmt.Errorf("%w: the manifest of %s has not arrived yet", api.ErrUnknownCommons, p.Commons)
		}
		body.Under = protocol.Link{Cid: h}
		return &protocol.Record{Commons: rep.id, Body: body}, nil
	})
}

// Acknowledge signs that a pledge was met, in part (p.Amount, in the
// pledge's unit) or, for infrastructure, whole: as the pledge's
// beneficiary, or, for a pledge to the association, as an association key
// of the current manifest. An association whose threshold is above one
// must co-sign (DraftAcknowledgement): that is refused here, as is
// anything the commons would hold inert (with its reason).
func (n *Node) Acknowledge(ctx context.Context, p api.AckParams) (api.Published, error) {
	target, err := cid.Decode(p.Pledge)
	if err != nil {
		return api.Published{}, badRequest("%q is not a CID", p.Pledge)
	}
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) { return n.buildAck(target, p, false) })
}

// DraftAcknowledgement signs, for the association, an acknowledgement
// that needs more of its members' signatures than this node's, and returns
// it as a draft bundle (bundle.go) for them to co-sign (CosignManifest)
// and publish. It is refused for a pledge to a beneficiary, which needs
// only the beneficiary's signature, and when even every association
// signature would leave it inert.
func (n *Node) DraftAcknowledgement(ctx context.Context, p api.AckParams) ([]byte, error) {
	target, err := cid.Decode(p.Pledge)
	if err != nil {
		return nil, badRequest("%q is not a CID", p.Pledge)
	}
	blk, err := n.sign(ctx, func() (*protocol.Record, error) { return n.buildAck(target, p, true) })
	if err != nil {
		return nil, err
	}
	if _, err := n.publishChecked(ctx, blk, refuseInert, true); err != nil {
		return nil, err
	}
	return n.draftBundle(ctx, blk)
}

// buildAck makes this node's acknowledgement of pledge target; draft: for
// co-signing by the association. Loop only.
func (n *Node) buildAck(target cid.Cid, p api.AckParams, draft bool) (*protocol.Record, error) {
	rep := n.holding(target)
	if rep == nil {
		return nil, fmt.Errorf("%w: no pledge %s here", api.ErrNotFound, target)
	}
	b, err := rep.state.Record(target)
	if err != nil {
		return nil, fmt.Errorf("node: read %s: %w", target, err)
	}
	pl := b.Record.Pledge()
	if pl == nil {
		return nil, badRequest("%s is a %s, not a pledge", target, b.Record.Type())
	}
	switch {
	case pl.Kind == protocol.PledgeInfrastructure && p.Amount != 0:
		return nil, badRequest("pledge %s is for infrastructure: it is acknowledged whole, without an amount", target)
	case pl.Kind != protocol.PledgeInfrastructure && p.Amount == 0:
		unit := "hours"
		if pl.Kind == protocol.PledgeMoney {
			unit = "the smallest unit of " + pl.Currency
		}
		return nil, badRequest("give the amount of pledge %s that was met, in %s (it pledged %d)", target, unit, pl.Amount)
	}
	ack := &protocol.Acknowledgement{Pledge: protocol.Link{Cid: target}, Amount: p.Amount, Note: p.Note}
	if pl.Beneficiary != nil {
		if draft {
			return nil, badRequest("pledge %s names a beneficiary, %s, whose signature alone acknowledges it: no draft to co-sign", target, pl.Beneficiary)
		}
		return &protocol.Record{Commons: rep.id, Body: ack}, nil
	}
	h, err := n.actUnder(rep, fmt.Sprintf("pledge %s is to the association: its acknowledgement", target), draft, "acknowledge")
	if err != nil {
		return nil, err
	}
	ack.Under = &protocol.Link{Cid: h}
	return &protocol.Record{Commons: rep.id, Body: ack}, nil
}

// cachedReport is a reciprocity report and the state it was computed on.
type cachedReport struct {
	records int // the state's Len: every change to the state adds records
	since   protocol.HLC
	r       crdt.Reciprocity
}

// reciprocity returns the state's reciprocity report over the records made
// since from, computed again only when records were added since the last
// one for the same period: asking for it costs the event loop nothing
// while the commons does not change. Loop only.
func (rep *replica) reciprocity(from protocol.HLC) (crdt.Reciprocity, error) {
	if c := rep.report; c != nil && c.records == rep.state.Len() && c.since == from {
		return c.r, nil
	}
	r, err := rep.state.Reciprocity(from)
	if err != nil {
		return r, err
	}
	rep.report = &cachedReport{records: rep.state.Len(), since: from, r: r}
	return r, nil
}
