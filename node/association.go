package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// The for-benefit association's records (SPEC §5.9–§5.12, §12.12,
// §12.13): disputes and statements, which anyone publishes; resolutions
// and certificates, which the association signs under the current
// manifest, co-signed (cosignAct) when its threshold is above one.

// OpenDispute publishes this node's dispute about a record of a commons
// (a contribution, a review, a sponsorship or a pledge) or about a key.
func (n *Node) OpenDispute(ctx context.Context, p api.DisputeParams) (api.Published, error) {
	body := &protocol.Dispute{Reason: p.Reason, Evidence: p.Evidence, Participant: p.Participant}
	var subject cid.Cid
	switch {
	case p.Subject == "" && p.Participant == nil:
		return api.Published{}, badRequest("a dispute is about a record (subject) or a key (participant)")
	case p.Subject != "" && p.Participant != nil:
		return api.Published{}, badRequest("a dispute is about a record or a key, not both")
	case p.Subject != "":
		var err error
		if subject, err = cid.Decode(p.Subject); err != nil {
			return api.Published{}, badRequest("subject %q is not a CID", p.Subject)
		}
		body.Subject = &protocol.Link{Cid: subject}
	}
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		var rep *replica
		if subject.Defined() {
			if rep = n.holding(subject); rep == nil {
				return nil, fmt.Errorf("%w: no record %s here to dispute", api.ErrNotFound, subject)
			}
			if c, err := cid.Decode(p.Commons); p.Commons != "" && (err != nil || !c.Equals(rep.id)) {
				return nil, badRequest("%s is a record of commons %s, not of %s: a dispute is opened in its subject's commons (leave commons out)", subject, rep.id, p.Commons)
			}
			if typ, _ := rep.state.Type(subject); !protocol.Disputable(typ) {
				return nil, badRequest("%s is a %s: a dispute is about a contribution, a review, a sponsorship or a pledge (or a key, with participant)", subject, typ)
			}
		} else {
			var err error
			if rep, err = n.replicaFor(p.Commons); err != nil {
				return nil, err
			}
		}
		if err := carriesAssociation(rep, "disputes"); err != nil {
			return nil, err
		}
		h, _ := rep.state.Head()
		body.Under = protocol.Link{Cid: h}
		return &protocol.Record{Commons: rep.id, Body: body}, nil
	})
}

// carriesAssociation refuses a commons whose genesis does not carry the
// association's records, or whose manifest has not arrived. Loop only.
func carriesAssociation(rep *replica, what string) error {
	g := rep.state.Genesis()
	if g == nil {
		return fmt.Errorf("%w: the manifest of %s has not arrived yet", api.ErrUnknownCommons, rep.id)
	}
	if g.AssociationRecords() == 0 {
		return badRequest("commons %s carries no %s: its genesis does not set policy.association (manifest create sets it unless --association-records=false)", rep.id, what)
	}
	if h, _ := rep.state.Head(); !h.Defined() {
		return fmt.Errorf("%w: no manifest of %s is on the chain yet", api.ErrUnknownCommons, rep.id)
	}
	return nil
}

// disputeReplica returns the replica holding dispute d. Loop only.
func (n *Node) disputeReplica(d cid.Cid) (*replica, error) {
	rep := n.holding(d)
	if rep == nil {
		return nil, fmt.Errorf("%w: no dispute %s here", api.ErrNotFound, d)
	}
	if typ, _ := rep.state.Type(d); typ != protocol.TypeDispute {
		return nil, badRequest("%s is a %s, not a dispute", d, typ)
	}
	return rep, nil
}

// AddStatement publishes this node's statement in a dispute.
func (n *Node) AddStatement(ctx context.Context, p api.StatementParams) (api.Published, error) {
	d, err := cid.Decode(p.Dispute)
	if err != nil {
		return api.Published{}, badRequest("dispute %q is not a CID", p.Dispute)
	}
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		rep, err := n.disputeReplica(d)
		if err != nil {
			return nil, err
		}
		return &protocol.Record{Commons: rep.id, Body: &protocol.Statement{Dispute: protocol.Link{Cid: d}, Text: p.Text, Evidence: p.Evidence}}, nil
	})
}

// Resolve publishes the association's resolution of a dispute, signed by
// this node alone: for an association whose threshold is one.
func (n *Node) Resolve(ctx context.Context, p api.ResolveParams) (api.Published, error) {
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) { return n.buildResolution(p, false) })
}

// DraftResolution signs the association's resolution of a dispute and
// returns it as a draft bundle, for the other members to co-sign
// (CosignManifest) and publish.
func (n *Node) DraftResolution(ctx context.Context, p api.ResolveParams) ([]byte, error) {
	return n.draftAct(ctx, func() (*protocol.Record, error) { return n.buildResolution(p, true) })
}

// Certify publishes the association's certificate, signed by this node
// alone: for an association whose threshold is one.
func (n *Node) Certify(ctx context.Context, p api.CertifyParams) (api.Published, error) {
	return n.create(ctx, refuseInert, func() (*protocol.Record, error) { return n.buildCertificate(p, false) })
}

// DraftCertificate signs the association's certificate and returns it as
// a draft bundle, for the other members to co-sign and publish.
func (n *Node) DraftCertificate(ctx context.Context, p api.CertifyParams) ([]byte, error) {
	return n.draftAct(ctx, func() (*protocol.Record, error) { return n.buildCertificate(p, true) })
}

// draftAct signs an act of the association that needs more members'
// signatures, checks that it could take effect once they all signed, and
// returns its draft bundle.
func (n *Node) draftAct(ctx context.Context, build func() (*protocol.Record, error)) ([]byte, error) {
	blk, err := n.sign(ctx, build)
	if err != nil {
		return nil, err
	}
	if _, err := n.publishChecked(ctx, blk, refuseInert, true); err != nil {
		return nil, err
	}
	return n.draftBundle(ctx, blk)
}

// actUnder returns the current manifest of rep, under which this node
// acts for the association in what (a resolution of …, a certificate):
// its key must be an association key there, and the threshold must allow
// it to act alone, or, for a draft, must not. Loop only.
func (n *Node) actUnder(rep *replica, what string, draft bool, how string) (cid.Cid, error) {
	h, m := rep.state.Head()
	switch {
	case m == nil:
		return cid.Undef, fmt.Errorf("%w: the manifest of %s has not arrived yet", api.ErrUnknownCommons, rep.id)
	case !m.IsAssociation(n.self):
		return cid.Undef, fmt.Errorf("%w: %s is the association's act, and this node's key %s is not an association key of the current manifest %s", api.ErrForbidden, what, n.self, h)
	case m.Threshold > 1 && !draft:
		return cid.Undef, fmt.Errorf("%w: %s needs %d association signatures under manifest %s: draft it (%s --draft FILE), have it co-signed (manifest cosign FILE), then publish it (manifest publish FILE)", api.ErrForbidden, what, m.Threshold, h, how)
	case m.Threshold <= 1 && draft:
		return cid.Undef, badRequest("manifest %s lets one association key act alone: publish it without --draft", h)
	}
	return h, nil
}

// buildResolution makes this node's resolution of a dispute. Loop only.
func (n *Node) buildResolution(p api.ResolveParams, draft bool) (*protocol.Record, error) {
	d, err := cid.Decode(p.Dispute)
	if err != nil {
		return nil, badRequest("dispute %q is not a CID", p.Dispute)
	}
	rep, err := n.disputeReplica(d)
	if err != nil {
		return nil, err
	}
	body := &protocol.Resolution{Dispute: protocol.Link{Cid: d}, Outcome: p.Outcome, Effect: p.Effect, Reason: p.Reason}
	for _, s := range p.Replaces {
		c, err := cid.Decode(s)
		if err != nil {
			return nil, badRequest("replaces: %q is not a CID", s)
		}
		body.Replaces = append(body.Replaces, protocol.Link{Cid: c})
	}
	slices.SortFunc(body.Replaces, func(a, b protocol.Link) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	body.Replaces = slices.CompactFunc(body.Replaces, func(a, b protocol.Link) bool { return a.Equals(b.Cid) })
	for _, l := range body.Replaces { // else it would wait, or be inert, for good
		typ, ok := rep.state.Type(l.Cid)
		if !ok {
			return nil, fmt.Errorf("%w: replaces: no record %s in commons %s (dispute show %s lists its resolutions)", api.ErrNotFound, l.Cid, rep.id, d)
		}
		if typ != protocol.TypeResolution {
			return nil, badRequest("replaces: %s is a %s, not a resolution (dispute show %s lists its resolutions)", l.Cid, typ, d)
		}
		b, err := rep.state.Record(l.Cid)
		if err != nil {
			return nil, fmt.Errorf("node: read %s: %w", l.Cid, err)
		}
		if o := b.Record.Resolution().Dispute.Cid; !o.Equals(d) {
			return nil, badRequest("replaces: %s resolves dispute %s, not %s: a resolution replaces only resolutions of its own dispute", l.Cid, o, d)
		}
	}
	h, err := n.actUnder(rep, "the resolution of dispute "+d.String(), draft, "dispute resolve")
	if err != nil {
		return nil, err
	}
	body.Under = protocol.Link{Cid: h}
	return &protocol.Record{Commons: rep.id, Body: body}, nil
}

// buildCertificate makes this node's certificate: of a participant's role,
// or of a release of contributions at the commons' state root now. Loop
// only.
func (n *Node) buildCertificate(p api.CertifyParams, draft bool) (*protocol.Record, error) {
	rep, err := n.replicaFor(p.Commons)
	if err != nil {
		return nil, err
	}
	if err := carriesAssociation(rep, "certificates"); err != nil {
		return nil, err
	}
	switch ms := p.Expires.UnixMilli(); {
	case ms < 1:
		return nil, badRequest("a certificate says when it expires (expires)")
	case ms <= n.nowMillis():
		return nil, badRequest("it would expire at %s, which has passed: a certificate that never holds attests nothing", p.Expires.UTC().Format(time.RFC3339Nano))
	}
	body := &protocol.Certificate{Participant: p.Participant, Role: p.Role, Expires: uint64(p.Expires.UnixMilli()), Note: p.Note}
	what := "a certificate"
	if p.Release != "" {
		if p.Participant != nil {
			return nil, badRequest("a certificate attests a participant or a release, not both")
		}
		root := rep.state.Root()
		body.Release = &protocol.Release{Name: p.Release, Root: root[:]}
		for _, s := range p.Contributions {
			c, err := cid.Decode(s)
			if err != nil {
				return nil, badRequest("contributions: %q is not a CID", s)
			}
			st, ok := rep.state.Status(c)
			if !ok {
				return nil, badRequest("release %q: %s is not a contribution of commons %s", p.Release, c, rep.id)
			}
			if st != crdt.StatusAccepted {
				return nil, badRequest("release %q: contribution %s is %s: a release names accepted contributions", p.Release, c, st)
			}
			body.Release.Contributions = append(body.Release.Contributions, protocol.Link{Cid: c})
		}
		slices.SortFunc(body.Release.Contributions, func(a, b protocol.Link) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
		body.Release.Contributions = slices.CompactFunc(body.Release.Contributions, func(a, b protocol.Link) bool { return a.Equals(b.Cid) })
		what = fmt.Sprintf("the certificate of release %q", p.Release)
	} else if p.Participant != nil {
		what = fmt.Sprintf("the certificate of %s as %s", p.Participant, p.Role)
	}
	h, err := n.actUnder(rep, what, draft, "certificate issue")
	if err != nil {
		return nil, err
	}
	body.Under = protocol.Link{Cid: h}
	return &protocol.Record{Commons: rep.id, Body: body}, nil
}

// cosignAct adds this node's signature to a drafted act of the
// association (an acknowledgement of a pledge to it, a resolution, a
// certificate), judged by this node's state of the commons: what it is
// about must be here, it must be made under the current manifest (unless
// force), this key must be an association key of that manifest, and the
// draft must be able to take effect once every member signed (unless
// force). Loop only.
func (n *Node) cosignAct(blk *protocol.Block, force bool) error {
	r := blk.Record
	rep := n.commons[r.Commons]
	if rep == nil {
		return fmt.Errorf("%w: commons %s is not replicated here: join it to co-sign its association's acts (commons join %s)", api.ErrUnknownCommons, r.Commons, r.Commons)
	}
	var under cid.Cid
	var about []cid.Cid // what this node must hold to know what it signs
	switch body := r.Body.(type) {
	case *protocol.Acknowledgement:
		if body.Under == nil {
			return badRequest("acknowledgement %s names no manifest (under): only the association's acknowledgements are co-signed", blk.CID)
		}
		under, about = body.Under.Cid, []cid.Cid{body.Pledge.Cid}
	case *protocol.Resolution:
		under = body.Under.Cid
		about = append(about, body.Dispute.Cid)
		for _, l := range body.Replaces {
			about = append(about, l.Cid)
		}
	case *protocol.Certificate:
		under = body.Under.Cid
		if body.Release != nil {
			for _, l := range body.Release.Contributions {
				about = append(about, l.Cid)
			}
		}
	}
	for _, c := range about {
		if !rep.state.Has(c) {
			return fmt.Errorf("%w: %s, which %s %s is about, is not here: this node co-signs only what it can read (sync the commons, then co-sign)", api.ErrNotFound, c, r.Type(), blk.CID)
		}
	}
	if h, _ := rep.state.Head(); !h.Equals(under) && !force {
		return fmt.Errorf("%w: %s %s is made under manifest %s, not the current one, %s: draft it again (force co-signs it anyway)", api.ErrForbidden, r.Type(), blk.CID, under, h)
	}
	u := rep.state.Manifest(under)
	if u == nil {
		return fmt.Errorf("%w: manifest %s, which %s %s is made under, has not arrived here", api.ErrUnknownCommons, under, r.Type(), blk.CID)
	}
	if !u.Record.Manifest().IsAssociation(n.self) {
		return fmt.Errorf("%w: this node's key %s is not an association key of manifest %s, which %s %s is made under", api.ErrForbidden, n.self, under, r.Type(), blk.CID)
	}
	if slices.Contains(r.Signers(), n.self) {
		return badRequest("this node's key %s has signed %s %s already", n.self, r.Type(), blk.CID)
	}
	if rep.state.Has(blk.CID) && !force {
		return badRequest("%s %s is already published; co-signing it would make another record", r.Type(), blk.CID)
	}
	v, err := rep.state.ClassifyDraft(blk)
	if err != nil {
		return badRequest("draft %s: %w", blk.CID, err)
	}
	if v.Class == crdt.ClassInert && !force {
		return fmt.Errorf("%w: the commons would hold %s %s inert even with every association signature (%s)", api.ErrForbidden, r.Type(), blk.CID, v.Reason)
	}
	return nil
}

// Disputes returns a page of the disputes of a commons, those of CID
// after the cursor after ("" for the first page), with how each stands,
// the page's open ones first.
func (n *Node) Disputes(ctx context.Context, commons, after string) (api.DisputeList, error) {
	var out api.DisputeList
	var from cid.Cid
	if after != "" {
		var err error
		if from, err = cid.Decode(after); err != nil {
			return out, badRequest("after %q is not a CID: pass the cursor a page names as next (%v)", after, err)
		}
	}
	var ierr error
	if err := n.do(ctx, func() {
		rep, err := n.replicaFor(commons)
		if err != nil {
			ierr = err
			return
		}
		out.Commons = rep.id.String()
		out.Disputes = []api.DisputeInfo{}
		if typ, _ := rep.state.Type(from); from.Defined() && typ != protocol.TypeDispute {
			ierr = badRequest("after: %s is not a dispute of commons %s: pass the cursor a page names as next", from, rep.id)
			return
		}
		var last cid.Cid
		rep.state.Disputes(from, func(c cid.Cid) bool {
			if len(out.Disputes) >= api.MaxDisputes {
				out.More, out.Next = true, last.String()
				return false
			}
			last = c
			d, err := n.disputeInfo(rep, c, false, cid.Undef)
			if err != nil {
				ierr = err
				return false
			}
			out.Disputes = append(out.Disputes, d)
			return true
		})
		if ierr == nil {
			ierr = rep.state.Err()
		}
	}); err != nil {
		return api.DisputeList{}, err
	}
	slices.SortStableFunc(out.Disputes, func(a, b api.DisputeInfo) int {
		ao, bo := a.Outcome == crdt.DisputeOpen, b.Outcome == crdt.DisputeOpen
		switch {
		case ao && !bo:
			return -1
		case bo && !ao:
			return 1
		}
		return b.Time.Compare(a.Time)
	})
	return out, ierr
}

// Dispute returns a dispute with its statements and resolutions.
func (n *Node) Dispute(ctx context.Context, c, after string) (api.DisputeInfo, error) {
	d, err := cid.Decode(c)
	if err != nil {
		return api.DisputeInfo{}, badRequest("%q is not a CID", c)
	}
	var from cid.Cid
	if after != "" {
		if from, err = cid.Decode(after); err != nil {
			return api.DisputeInfo{}, badRequest("after %q is not a CID: pass the cursor a page names as next (%v)", after, err)
		}
	}
	var out api.DisputeInfo
	var ierr error
	if err := n.do(ctx, func() {
		rep, err := n.disputeReplica(d)
		if err != nil {
			ierr = err
			return
		}
		if from.Defined() && !repliesTo(rep, from, d) {
			ierr = badRequest("after: %s is no statement or resolution of dispute %s: pass the cursor a page names as next", from, d)
			return
		}
		out, ierr = n.disputeInfo(rep, d, true, from)
	}); err != nil {
		return api.DisputeInfo{}, err
	}
	return out, ierr
}

// repliesTo reports whether record x of the commons is a statement or a
// resolution of dispute d. Loop only.
func repliesTo(rep *replica, x, d cid.Cid) bool {
	if !rep.state.Has(x) {
		return false
	}
	b, err := rep.state.Record(x)
	if err != nil {
		return false
	}
	switch body := b.Record.Body.(type) {
	case *protocol.Statement:
		return body.Dispute.Cid.Equals(d)
	case *protocol.Resolution:
		return body.Dispute.Cid.Equals(d)
	}
	return false
}

// disputeInfo describes dispute d of rep; with replies, its statements and
// resolutions too: a page of them after the cursor after, and every
// resolution that stands or is suspended. Loop only.
func (n *Node) disputeInfo(rep *replica, d cid.Cid, replies bool, after cid.Cid) (api.DisputeInfo, error) {
	b, err := rep.state.Record(d)
	if err != nil {
		return api.DisputeInfo{}, fmt.Errorf("node: read dispute %s: %w", d, err)
	}
	v, _ := rep.state.Verdict(d)
	o, _ := rep.state.DisputeOutcome(d)
	body := b.Record.Dispute()
	out := api.DisputeInfo{CID: d.String(), Commons: rep.id.String(), Author: b.Record.Author, Time: b.Record.Time.Time(),
		Participant: body.Participant, Reason: body.Reason, Evidence: body.Evidence, Under: body.Under.Cid.String(),
		Class: string(v.Class), Inert: v.Reason, Outcome: o.State, Effect: o.Effect, Held: o.Held, Resolutions: []api.ResolutionInfo{}}
	if body.Subject != nil {
		out.Subject = body.Subject.Cid.String()
		if typ, ok := rep.state.Type(body.Subject.Cid); ok {
			out.SubjectType = string(typ)
		}
	}
	counting := map[cid.Cid]bool{}
	for _, r := range o.Counting {
		counting[r.CID] = true
		out.Counting = append(out.Counting, r.CID.String())
	}
	if !replies {
		return out, nil
	}
	out.Statements = []api.StatementInfo{}
	answers, more := rep.state.Replies(d, after, api.MaxReplies)
	if more || after.Defined() { // a page of a flood: those that decide it come all the same
		if more {
			out.More, out.Next = true, answers[len(answers)-1].String()
		}
		for _, c := range rep.state.Resolutions(d) {
			if !slices.ContainsFunc(answers, c.Equals) {
				answers = append(answers, c)
			}
		}
	}
	for _, c := range answers {
		rb, err := rep.state.Record(c)
		if err != nil {
			return api.DisputeInfo{}, fmt.Errorf("node: read %s: %w", c, err)
		}
		rv, _ := rep.state.Verdict(c)
		switch body := rb.Record.Body.(type) {
		case *protocol.Statement:
			out.Statements = append(out.Statements, api.StatementInfo{CID: c.String(), Author: rb.Record.Author, Time: rb.Record.Time.Time(),
				Text: body.Text, Evidence: body.Evidence, Class: string(rv.Class), Inert: rv.Reason})
		case *protocol.Resolution:
			ri := api.ResolutionInfo{CID: c.String(), Signers: rb.Record.Signers(), Time: rb.Record.Time.Time(), Outcome: body.Outcome,
				Effect: body.Effect, Reason: body.Reason, Under: body.Under.Cid.String(), Class: string(rv.Class), Inert: rv.Reason, Counting: counting[c]}
			for _, l := range body.Replaces {
				ri.Replaces = append(ri.Replaces, l.Cid.String())
			}
			out.Resolutions = append(out.Resolutions, ri)
		}
	}
	slices.SortFunc(out.Statements, func(a, b api.StatementInfo) int { return a.Time.Compare(b.Time) })
	slices.SortFunc(out.Resolutions, func(a, b api.ResolutionInfo) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// Certificate says whether a certificate holds at a moment (zero: now),
// and why not.
func (n *Node) Certificate(ctx context.Context, c string, at time.Time) (api.CertificateInfo, error) {
	x, err := cid.Decode(c)
	if err != nil {
		return api.CertificateInfo{}, badRequest("%q is not a CID", c)
	}
	if at.IsZero() {
		at = time.Now()
	}
	var out api.CertificateInfo
	var ierr error
	if err := n.do(ctx, func() {
		rep := n.holding(x)
		if rep == nil {
			ierr = fmt.Errorf("%w: no certificate %s here", api.ErrNotFound, x)
			return
		}
		out, ierr = CheckCertificate(rep.state, x, at)
	}); err != nil {
		return api.CertificateInfo{}, err
	}
	return out, ierr
}

// CheckCertificate says whether certificate c holds in state s at a
// moment, and why not, in words: what `certificate verify` prints, from a
// node's own state or from a CAR file.
func CheckCertificate(s *crdt.State, c cid.Cid, at time.Time) (api.CertificateInfo, error) {
	ch, ok, err := s.CheckCertificate(c, uint64(max(at.UnixMilli(), 0)))
	if err != nil {
		return api.CertificateInfo{}, err
	}
	if !ok {
		typ, _ := s.Type(c)
		if typ == "" {
			return api.CertificateInfo{}, fmt.Errorf("%w: no record %s in commons %s", api.ErrNotFound, c, s.ID())
		}
		return api.CertificateInfo{}, badRequest("%s is a %s, not a certificate", c, typ)
	}
	cert := ch.Certificate
	head, _ := s.Head()
	out := api.CertificateInfo{CID: c.String(), Commons: s.ID().String(), Participant: cert.Participant, Role: cert.Role, Head: head.String(),
		Time: ch.Time.Time(), Expires: time.UnixMilli(int64(cert.Expires)).UTC(), Note: cert.Note, Under: ch.Under.String(), Signers: ch.Signers,
		Class: string(ch.Verdict.Class), Inert: ch.Verdict.Reason, Holds: ch.Holds, At: at.UTC()}
	if cert.Release != nil {
		out.Release = &api.ReleaseInfo{Name: cert.Release.Name, Root: fmt.Sprintf("%x", cert.Release.Root), Contributions: []api.ContributionStatus{}}
		for _, x := range ch.Contributions {
			out.Release.Contributions = append(out.Release.Contributions, api.ContributionStatus{CID: x.CID.String(), Status: string(x.Status)})
		}
	}
	if ch.Verdict.Class != crdt.ClassEffective {
		why := ch.Verdict.Reason
		if why == "" {
			why = "it is " + string(ch.Verdict.Class)
		}
		out.Problems = append(out.Problems, "the commons does not count it: "+why)
	}
	for _, k := range ch.Revoked {
		out.Problems = append(out.Problems, fmt.Sprintf("signer %s is revoked", k))
	}
	for _, k := range ch.Suspended {
		out.Problems = append(out.Problems, fmt.Sprintf("signer %s is suspended (its revocation is contested)", k))
	}
	if ch.Expired {
		out.Problems = append(out.Problems, fmt.Sprintf("it expired at %s", out.Expires.Format(time.RFC3339)))
	}
	if ch.Early {
		out.Problems = append(out.Problems, fmt.Sprintf("it was made at %s, after that moment", out.Time.Format(time.RFC3339Nano)))
	}
	if !ch.Vouched && ch.Verdict.Class == crdt.ClassEffective {
		out.Problems = append(out.Problems, "the association of the current manifest no longer counts its signers (members were removed or replaced since): the association reissues what it stands by")
	}
	return out, nil
}

// CertificateBundle returns certificate c with what a node that never saw
// its commons needs to check it (VerifyCertificate): a CAR file whose root
// is the certificate, followed by the commons' manifests on the chain and,
// for a release, its contributions and their reviews.
func (n *Node) CertificateBundle(ctx context.Context, c string) ([]byte, error) {
	x, err := cid.Decode(c)
	if err != nil {
		return nil, badRequest("%q is not a CID", c)
	}
	var b bundle
	var ierr error
	if err := n.do(ctx, func() {
		rep := n.holding(x)
		if rep == nil {
			ierr = fmt.Errorf("%w: no certificate %s here", api.ErrNotFound, x)
			return
		}
		blk, err := rep.state.Record(x)
		if err != nil {
			ierr = err
			return
		}
		cert := blk.Record.Certificate()
		if cert == nil {
			ierr = badRequest("%s is a %s, not a certificate", x, blk.Record.Type())
			return
		}
		b = bundle{draft: blk, carried: authority(rep.state)}
		if cert.Release == nil {
			return
		}
		for _, l := range cert.Release.Contributions {
			v, ok, err := rep.state.Standing(l.Cid)
			if err != nil {
				ierr = err
				return
			}
			if !ok {
				ierr = fmt.Errorf("%w: contribution %s of release %q is not here: the certificate waits for it, and a bundle without it could not be checked", api.ErrNotFound, l.Cid, cert.Release.Name)
				return
			}
			// The contribution, the reviews that can count (not inert ones:
			// anyone can make those), the rotations that make a review
			// count in an older key's slot, and the disputes about any of
			// them with their resolutions: what its status rests on.
			ids := []cid.Cid{l.Cid}
			for _, r := range v.Reviews {
				if r.Inert != "" && r.Inert != crdt.ReasonSetAside {
					continue
				}
				ids = append(ids, r.CID)
				ids = append(ids, rep.state.RotationPath(r.Maintainer)...)
			}
			for _, x := range slices.Clone(ids) {
				for _, d := range rep.state.DisputesAbout(x) {
					ids = append(ids, d)
					ids = append(ids, rep.state.Resolutions(d)...)
				}
			}
			slices.SortFunc(ids, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
			for _, id := range slices.CompactFunc(ids, cid.Cid.Equals) {
				rb, err := rep.state.Record(id)
				if errors.Is(err, crdt.ErrDropped) {
					ierr = fmt.Errorf("%w: record %s, which the certificate rests on, was dropped here, its author's key being banned (commons repo compact --disowned): make the bundle on a node that kept it", api.ErrNotFound, id)
					return
				}
				if err != nil {
					ierr = err
					return
				}
				b.carried = append(b.carried, rb)
			}
		}
	}); err != nil {
		return nil, err
	}
	if ierr != nil {
		return nil, ierr
	}
	return encodeBundle(b)
}

// VerifyCertificate checks certificate c (or, if c is undefined, the root
// of the file) at a moment from a CAR file alone, as a node that never saw
// its commons would: a certificate bundle (CertificateBundle) or a
// commons' export. Every record's signatures are checked; the state is
// built from the file's records alone, in memory.
func VerifyCertificate(r io.Reader, c cid.Cid, at time.Time) (api.CertificateInfo, error) {
	br, err := carv2.NewBlockReader(r, carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return api.CertificateInfo{}, fmt.Errorf("not a CAR file: %w", err)
	}
	if !c.Defined() {
		if len(br.Roots) != 1 {
			return api.CertificateInfo{}, fmt.Errorf("the file has %d roots: name the certificate to check", len(br.Roots))
		}
		c = br.Roots[0]
	}
	var blocks []*protocol.Block
	var cert *protocol.Block
	for n := 0; ; n++ {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return api.CertificateInfo{}, fmt.Errorf("the file is damaged after %d records: %w", n, err)
		}
		b, err := protocol.Validate(blk.RawData())
		if err != nil {
			return api.CertificateInfo{}, fmt.Errorf("record %d (%s): %w", n, blk.Cid(), err)
		}
		if !b.CID.Equals(blk.Cid()) {
			return api.CertificateInfo{}, fmt.Errorf("record %d is %s, not %s as the file says", n, b.CID, blk.Cid())
		}
		if b.CID.Equals(c) {
			cert = b
		}
		blocks = append(blocks, b)
	}
	if cert == nil {
		return api.CertificateInfo{}, fmt.Errorf("%w: the file does not hold %s", api.ErrNotFound, c)
	}
	id := cert.CommonsID()
	var mine []*protocol.Block
	genesis := false
	for _, b := range blocks {
		if b.CommonsID().Equals(id) {
			mine = append(mine, b)
			genesis = genesis || b.CID.Equals(id)
		}
	}
	if !genesis {
		return api.CertificateInfo{}, fmt.Errorf("%w: unknown commons: the file does not hold the genesis manifest of commons %s, which %s belongs to", api.ErrUnknownCommons, id, c)
	}
	st := crdt.New(id)
	if _, err := st.AddBatch(mine); err != nil {
		return api.CertificateInfo{}, fmt.Errorf("node: the file's records: %w", err)
	}
	return CheckCertificate(st, c, at)
}

// cachedCount is a count and the state it was computed on.
type cachedCount struct {
	state *crdt.State
	gen   uint64 // the state's DisputeGeneration
	n     int
}

// openDisputes returns how many disputes of the commons no resolution
// decides, counted again only when a dispute or a resolution moved since:
// other records, a flood of them included, cost it nothing. Loop only.
func (rep *replica) openDisputes() int {
	if c := rep.disputes; c != nil && c.state == rep.state && c.gen == rep.state.DisputeGeneration() {
		return c.n
	}
	n := 0
	rep.state.Disputes(cid.Undef, func(c cid.Cid) bool {
		if o, ok := rep.state.DisputeOutcome(c); ok && o.State == crdt.DisputeOpen {
			if v, _ := rep.state.Verdict(c); v.Class == crdt.ClassEffective {
				n++
			}
		}
		return true
	})
	rep.disputes = &cachedCount{state: rep.state, gen: rep.state.DisputeGeneration(), n: n}
	return n
}

// DraftRotation signs this node's rotation to a successor key in a
// commons (SPEC §5.13, §12.14) and returns it as a draft bundle: the
// successor co-signs it (CosignManifest, on the successor's node), and
// either publishes it. Refused when the commons would hold it inert even
// once co-signed (this key is revoked or banned, or rotated to another key
// already).
func (n *Node) DraftRotation(ctx context.Context, p api.RotateParams) ([]byte, error) {
	if p.Successor == n.self {
		return nil, badRequest("the successor is this node's own key: name the new key (the peer ID that commons id prints on the new node)")
	}
	return n.draftAct(ctx, func() (*protocol.Record, error) {
		rep, err := n.replicaFor(p.Commons)
		if err != nil {
			return nil, err
		}
		if err := carriesAssociation(rep, "rotations"); err != nil {
			return nil, err
		}
		return &protocol.Record{Commons: rep.id, Body: &protocol.Rotation{Successor: p.Successor}}, nil
	})
}

// cosignRotation checks that this node may co-sign a drafted rotation: its
// key is the successor the rotation names, and the commons would not hold
// the rotation inert once co-signed (unless force). Loop only.
func (n *Node) cosignRotation(blk *protocol.Block, force bool) error {
	x := blk.Record.Rotation()
	if x.Successor != n.self {
		return fmt.Errorf("%w: rotation %s hands key %s on to %s, not to this node's key %s: the successor co-signs it", api.ErrForbidden, blk.CID, blk.Record.Author, x.Successor, n.self)
	}
	if len(blk.Record.Cosigs) > 0 {
		return badRequest("rotation %s is co-signed already: publish it (manifest publish)", blk.CID)
	}
	rep := n.commons[blk.Record.Commons]
	if rep == nil {
		return fmt.Errorf("%w: commons %s is not replicated here: join it to co-sign a rotation in it (commons join %s)", api.ErrUnknownCommons, blk.Record.Commons, blk.Record.Commons)
	}
	v, err := rep.state.ClassifyDraft(blk)
	if err != nil {
		return badRequest("draft %s: %w", blk.CID, err)
	}
	if v.Class == crdt.ClassInert && !force {
		return fmt.Errorf("%w: the commons would hold rotation %s inert even once co-signed (%s)", api.ErrForbidden, blk.CID, v.Reason)
	}
	return nil
}
