package crdt

import (
	"fmt"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// The for-benefit association's records (protocol/SPEC.md §12.12–§12.14):
// disputes and statements put a complaint and what participants say about
// it on the record; a resolution, the association's act under a manifest,
// decides a dispute and may withdraw a contribution, set a review or a
// sponsorship aside, or mark a pledge unmet; a certificate attests a
// participant's role or a release. Resolutions and certificates obey the
// rule by which the association acts (associationActs), which
// acknowledgements obey too.
//
// A record a dispute names carries flagDisputed, so that asking whether
// an effect binds it costs nothing for the records nobody disputed.

const (
	reasonNoAssociation = "type: the commons' genesis does not set policy.association"
	reasonSubjectType   = "subject: not a contribution, a review, a sponsorship or a pledge"
	reasonNotDispute    = "dispute: not a dispute"
	reasonEffectKey     = "effect: a dispute about a participant has none"
	reasonEffectFit     = "effect: not one the disputed record can have (withdraw a contribution, set aside a review or a sponsorship, unmet a pledge)"
	reasonReplaces      = "replaces: not a resolution of the same dispute"
	reasonResNotLater   = "under: neither the version the dispute or its subject was made under nor a later one"
	reasonReplacesLater = "replaces: a resolution made under a version not in this one's past"
	reasonActSuspended  = "signers: the threshold is met only with suspended keys (their revocation is contested)"
	reasonSetAsideHeld  = "a resolution that a contest holds could set it aside"
	reasonReleaseNotCon = "release: names a record that is not a contribution"
	reasonSetAside      = "set aside by a resolution: counts as its author's retraction"
)

// StatusWithdrawn is the status of a contribution an upheld dispute
// withdrew (SPEC §12.12): neither pending, accepted nor rejected.
const StatusWithdrawn Status = "withdrawn"

// Outcomes of a dispute.
const (
	DisputeOpen      = "open"
	DisputeDismissed = "dismissed"
	DisputeUpheld    = "upheld"
)

// disputeGroup is the prefix of the 'b' list of every dispute.
var disputeGroup = []byte{tagDispute}

// extRecord returns the record of e: the block it was made from while it
// is being classified before it is added, else read through Records.
func (s *State) extRecord(e *entry) *protocol.Record {
	if e.ext.blk != nil {
		return e.ext.blk.Record
	}
	b, err := s.read(e.cid)
	if err != nil {
		s.fail(err)
		return nil
	}
	return b.Record
}

// classifyAssoc applies the rules of §12.12 and §12.13 to a dispute, a
// statement, a resolution or a certificate e, whose author's bans and
// genesis were checked.
func (s *State) classifyAssoc(e *entry) (class, string, cid.Cid) {
	r := s.extRecord(e)
	if r == nil {
		return clsInert, reasonUnknownType, cid.Undef
	}
	switch body := r.Body.(type) {
	case *protocol.Dispute:
		if u := s.lookupRecord(body.Under.Cid); u == nil {
			return clsWaiting, "", body.Under.Cid
		} else if u.man == nil {
			return clsInert, reasonUnderNotMan, cid.Undef
		}
		if body.Subject != nil {
			x := s.entry(body.Subject.Cid)
			switch {
			case x == nil:
				return clsWaiting, "", body.Subject.Cid
			case !protocol.Disputable(x.typ):
				return clsInert, reasonSubjectType, cid.Undef
			}
		}
		return clsOK, "", cid.Undef
	case *protocol.Statement:
		d := s.entry(body.Dispute.Cid)
		switch {
		case d == nil:
			return clsWaiting, "", body.Dispute.Cid
		case d.typ != protocol.TypeDispute:
			return clsInert, reasonNotDispute, cid.Undef
		}
		return clsOK, "", cid.Undef
	case *protocol.Resolution:
		return s.classifyResolution(e, body)
	case *protocol.Certificate:
		if c, reason, on := s.actStanding(e); c != clsOK && c != clsSuspended {
			return c, reason, on
		}
		if body.Release != nil {
			for _, l := range body.Release.Contributions {
				x := s.entry(l.Cid)
				switch {
				case x == nil:
					return clsWaiting, "", l.Cid
				case x.con == nil:
					return clsInert, reasonReleaseNotCon, cid.Undef
				}
			}
		}
		return s.actStanding(e)
	}
	return clsInert, reasonUnknownType, cid.Undef
}

// lookupRecord returns the entry of record c, manifests included, or nil.
func (s *State) lookupRecord(c cid.Cid) *entry {
	if m := s.mfs[c]; m != nil {
		return m
	}
	return s.entry(c)
}

// effectFits reports whether an upheld dispute about a record of type t
// may have effect.
func effectFits(effect string, t protocol.Type) bool {
	switch effect {
	case protocol.EffectWithdraw:
		return t == protocol.TypeContribution
	case protocol.EffectSetAside:
		return t == protocol.TypeReview || t == protocol.TypeSponsorship
	case protocol.EffectUnmet:
		return t == protocol.TypePledge
	}
	return false
}

// classifyResolution applies the resolution rules (SPEC §12.12) to e, in
// their order: its manifest and signers first, so that a record short of
// the association's authority waits for nothing else.
func (s *State) classifyResolution(e *entry, body *protocol.Resolution) (class, string, cid.Cid) {
	act, why, on := s.actStanding(e)
	if act != clsOK && act != clsSuspended {
		return act, why, on
	}
	d := s.entry(body.Dispute.Cid)
	switch {
	case d == nil:
		return clsWaiting, "", body.Dispute.Cid
	case d.typ != protocol.TypeDispute:
		return clsInert, reasonNotDispute, cid.Undef
	}
	db := s.extRecord(d)
	if db == nil {
		return clsInert, reasonNotDispute, cid.Undef
	}
	dis := db.Dispute()
	basis := []cid.Cid{dis.Under.Cid}
	if body.Effect != "" && dis.Participant != nil {
		return clsInert, reasonEffectKey, cid.Undef
	}
	if dis.Subject != nil {
		x := s.entry(dis.Subject.Cid)
		if x == nil {
			return clsWaiting, "", dis.Subject.Cid
		}
		if body.Effect != "" && !effectFits(body.Effect, x.typ) {
			return clsInert, reasonEffectFit, cid.Undef
		}
		if v, ok := s.madeUnder(x); ok {
			basis = append(basis, v)
		}
	}
	if !s.inPast(e.ext.under, basis...) {
		return clsInert, reasonResNotLater, cid.Undef
	}
	for _, l := range body.Replaces {
		x := s.entry(l.Cid)
		switch {
		case x == nil:
			return clsWaiting, "", l.Cid
		case x.typ != protocol.TypeResolution || x.ext.target != body.Dispute.Cid:
			return clsInert, reasonReplaces, cid.Undef
		case !s.inPast(e.ext.under, x.ext.under):
			return clsInert, reasonReplacesLater, cid.Undef
		}
	}
	return act, why, cid.Undef
}

// madeUnder returns the manifest version a disputed record was made
// under: a contribution's licence, a review's or a pledge's under.
func (s *State) madeUnder(x *entry) (cid.Cid, bool) {
	switch {
	case x.con != nil:
		return x.con.licence, true
	case x.rev != nil:
		return x.rev.under, true
	case x.typ == protocol.TypePledge:
		if r := s.extRecord(x); r != nil {
			return r.Pledge().Under.Cid, true
		}
	}
	return cid.Undef, false
}

// inPast reports whether every version vs is in the past of manifest
// under, a candidate. Under's past is all here: a version not in it now
// never will be.
func (s *State) inPast(under cid.Cid, vs ...cid.Cid) bool {
	u := s.mfs[under]
	for _, v := range vs {
		if pv := s.mfs[v]; pv == nil || pv.man.st != manCand || u == nil || !u.man.anc.has(pv.man.ord) {
			return false
		}
	}
	return true
}

// actStanding applies the rule by which the association acts under a
// manifest (SPEC §12.11 step 3, §12.12, §12.13) to e, signed by its author
// and co-signers under manifest e.ext.under: it waits for under and its
// label; it is inert if under is not a manifest or is off the chain, if a
// signer is not in under's association, or if fewer than under's
// threshold of them are not revoked. It is suspended (clsSuspended, with
// the reason) when under is contested, or when the threshold is met only
// counting suspended keys: what it does then depends on a contest.
func (s *State) actStanding(e *entry) (class, string, cid.Cid) {
	under := e.ext.under
	c, reason, on := s.manifestStanding(under, reasonUnderNotMan, reasonUnderInert, reasonUnderContested)
	if c != clsOK && reason != reasonUnderContested {
		return c, reason, on
	}
	m := s.mfs[under].man.m
	sure, maybe := 0, 0
	for _, k := range append([]protocol.PublicKey{e.ext.author}, e.ext.cosigners...) {
		if !m.IsAssociation(k) {
			return clsInert, reasonAckOutsider, cid.Undef
		}
		if _, revoked := s.revoked[k]; revoked {
			continue
		}
		maybe++
		if _, suspended := s.suspended[k]; !suspended {
			sure++
		}
	}
	switch {
	case uint64(maybe) < m.Threshold:
		return clsInert, reasonAckSigners, cid.Undef
	case reason == reasonUnderContested:
		return clsSuspended, reasonUnderContested, cid.Undef
	case uint64(sure) < m.Threshold:
		return clsSuspended, reasonActSuspended, cid.Undef
	}
	return clsOK, "", cid.Undef
}

// associationActs is actStanding for an act that a contest makes inert
// rather than suspended (an acknowledgement, whose effect is a report's
// figure), with every version of basis in under's past (else inert with
// notLater), so that members an update removed, or a threshold it
// raised, cannot be got round by naming an older version.
func (s *State) associationActs(e *entry, basis []cid.Cid, notLater string) (class, string, cid.Cid) {
	if c, reason, on := s.manifestStanding(e.ext.under, reasonUnderNotMan, reasonUnderInert, reasonUnderContested); c != clsOK {
		return c, reason, on
	}
	if !s.inPast(e.ext.under, basis...) {
		return clsInert, notLater, cid.Undef
	}
	switch c, reason, on := s.actStanding(e); c {
	case clsSuspended:
		return clsInert, reasonAckSigners, cid.Undef
	default:
		return c, reason, on
	}
}

// resolutionMoved carries a resolution's change of standing to the record
// its dispute names, whose effects may have moved.
func (s *State) resolutionMoved(e *entry) {
	d := s.entry(e.ext.target)
	if d == nil || d.typ != protocol.TypeDispute || !d.ext.target.Defined() {
		return
	}
	x := s.entry(d.ext.target)
	switch {
	case x == nil:
	case x.con != nil:
		s.reclassifyContribution(x)
	case x.rev != nil:
		s.reclassifyReview(x)
	case x.typ == protocol.TypeSponsorship:
		s.reclassifyExt(x)
	}
}

// Resolution is one of a dispute's resolutions as its outcome reads it.
type Resolution struct {
	CID     cid.Cid
	Under   cid.Cid
	Outcome string
	Effect  string
	// Suspended is true when what it does depends on a contest: its
	// manifest is contested, or its signers meet the threshold only with
	// suspended keys.
	Suspended bool
	digest    [32]byte
	replaces  map[[32]byte]bool // the signing digests of the resolutions it replaces
}

// Outcome is how a dispute stands (SPEC §12.12).
type Outcome struct {
	// State is DisputeOpen, DisputeDismissed or DisputeUpheld: what the
	// dispute's counting resolutions decide.
	State string
	// Effect is the effect of the counting resolutions that uphold it
	// ("" for a finding without effect).
	Effect string
	// Held is true when a contest could change State or Effect: some way
	// the suspended resolutions could turn out (each effective, or gone)
	// decides otherwise.
	Held bool
	// Counting are the resolutions that decide it, sorted by CID: those
	// that stand, replaced and superseded by none that stands or could.
	// Of copies that differ only in their signatures, one is listed.
	Counting []Resolution
}

// DisputeOutcome returns how the dispute c stands; false if c is not a
// dispute of the set.
func (s *State) DisputeOutcome(c cid.Cid) (Outcome, bool) {
	out, rs, ok := s.outcome(c)
	if ok {
		out.Held = s.contestCould(rs, out)
	}
	return out, ok
}

// outcome is DisputeOutcome without Held, with the dispute's resolutions.
func (s *State) outcome(c cid.Cid) (Outcome, []Resolution, bool) {
	d := s.entry(c)
	if d == nil || d.typ != protocol.TypeDispute {
		return Outcome{}, nil, false
	}
	rs := s.resolutions(c)
	out := Outcome{State: DisputeOpen}
	over := s.newOverruling(rs)
	for _, r := range rs {
		if r.Suspended || over.overruled(r, true) {
			continue
		}
		out.Counting = append(out.Counting, r)
		switch {
		case r.Outcome == protocol.OutcomeUphold:
			out.State = DisputeUpheld
			if r.Effect != "" {
				out.Effect = r.Effect
			}
		case out.State == DisputeOpen:
			out.State = DisputeDismissed
		}
	}
	return out, rs, true
}

// maxHeldExact bounds the resolutions of a dispute for which
// contestCould weighs every way the contest could turn out. Past it, a
// dispute is shown held when a suspended resolution is overruled by no
// effective one, or an effective one is overruled by suspended ones only:
// otherwise every way the contest could turn out counts the same
// resolutions as now.
const maxHeldExact = 32

// contestCould reports whether some way the suspended resolutions of rs
// could turn out (each effective, or gone) gives an outcome other than
// out's (SPEC §12.12: "shown held when a contest could change its
// outcome").
//
// A world is the effective resolutions plus a subset W of the suspended
// ones; in it, a resolution counts when none of the world overrules it.
// Whether some world lets a resolution m count while none of those
// forbid names counts is decided without trying every W: the worlds
// that qualify are closed under union (a forbidden resolution overruled
// in each is overruled in their union), so the greatest candidate, every
// suspended resolution but m's overrulers, is pruned of the forbidden
// suspended ones nothing in it overrules until none is left, and the
// world qualifies if every forbidden effective one is then overruled.
// Each outcome other than out's is tried that way: upheld with an effect
// (one resolution carrying it counts), upheld without (a plain upholding
// one counts, none carrying an effect), dismissed (a dismissal counts,
// no upholding one) and open (none counts).
func (s *State) contestCould(rs []Resolution, out Outcome) bool {
	n := len(rs)
	if !slices.ContainsFunc(rs, func(r Resolution) bool { return r.Suspended }) {
		return false
	}
	if n > maxHeldExact {
		x := s.newOverruling(rs)
		return slices.ContainsFunc(rs, func(r Resolution) bool {
			sure := x.overruled(r, false)
			return r.Suspended && !sure || !r.Suspended && !sure && x.overruled(r, true)
		})
	}
	over := make([][]bool, n) // over[o][r]: rs[o] overrules rs[r]
	for o := range rs {
		over[o] = make([]bool, n)
		for r := range rs {
			over[o][r] = s.overruled(rs[r], rs[o:o+1], true)
		}
	}
	in := make([]bool, n)
	overruledIn := func(r int) bool {
		for o := range rs {
			if in[o] && over[o][r] {
				return true
			}
		}
		return false
	}
	// world reports whether some world lets rs[must] count (none when
	// must < 0) while none of those forbid names counts.
	world := func(must int, forbid func(Resolution) bool) bool {
		for i := range in {
			in[i] = true
		}
		if must >= 0 {
			for o := range rs {
				if over[o][must] {
					if !rs[o].Suspended {
						return false
					}
					in[o] = false
				}
			}
		}
		for pruned := true; pruned; {
			pruned = false
			for i, r := range rs {
				if in[i] && r.Suspended && forbid(r) && !overruledIn(i) {
					in[i], pruned = false, true
				}
			}
		}
		for i, r := range rs {
			if !r.Suspended && forbid(r) && !overruledIn(i) {
				return false
			}
		}
		return true
	}
	some := func(keep func(Resolution) bool, forbid func(Resolution) bool) bool {
		for i, r := range rs {
			if keep(r) && world(i, forbid) {
				return true
			}
		}
		return false
	}
	uphold := func(r Resolution) bool { return r.Outcome == protocol.OutcomeUphold }
	withEffect := func(r Resolution) bool { return uphold(r) && r.Effect != "" }
	plain := func(r Resolution) bool { return uphold(r) && r.Effect == "" }
	dismiss := func(r Resolution) bool { return r.Outcome == protocol.OutcomeDismiss }
	none := func(Resolution) bool { return false }
	all := func(Resolution) bool { return true }
	upheld := out.State == DisputeUpheld
	return (!upheld || out.Effect == "") && some(withEffect, none) ||
		(!upheld || out.Effect != "") && some(plain, withEffect) ||
		out.State != DisputeDismissed && some(dismiss, uphold) ||
		out.State != DisputeOpen && world(-1, all)
}

// resFacts is what a dispute's outcome reads of one of its resolutions
// that stands or is suspended: its body's fields, its signing digest and
// those of the resolutions it replaces (all of them in the set, or it
// would wait). A record never changes, so neither do they.
type resFacts struct {
	digest   [32]byte
	outcome  string
	effect   string
	under    cid.Cid
	replaces map[[32]byte]bool
}

// resFactsMax bounds the resolutions whose facts memory keeps: the
// resolutions of the disputes being decided, which would otherwise be read
// and encoded again at every decision (keys whose revocation is contested
// can sign them by the thousand).
const resFactsMax = 8192

// factsOf returns the facts of resolution e, nil if its record cannot be
// read (the State has failed).
func (s *State) factsOf(e *entry) *resFacts {
	if f := s.resFacts[e.cid]; f != nil {
		return f
	}
	digestOf := func(x *entry) ([32]byte, bool) {
		if f := s.resFacts[x.cid]; f != nil {
			return f.digest, true
		}
		r := s.extRecord(x)
		if r == nil {
			return [32]byte{}, false
		}
		d, err := r.SigningDigest()
		if err != nil {
			s.fail(fmt.Errorf("%w: resolution %s: %w", ErrDamaged, x.cid, err))
			return [32]byte{}, false
		}
		return d, true
	}
	r := s.extRecord(e)
	if r == nil {
		return nil
	}
	dg, ok := digestOf(e)
	if !ok {
		return nil
	}
	body := r.Resolution()
	f := &resFacts{digest: dg, outcome: body.Outcome, effect: body.Effect, under: body.Under.Cid}
	for _, l := range body.Replaces { // at most MaxPrev
		if y := s.entry(l.Cid); y != nil && y.typ == protocol.TypeResolution {
			if yd, ok := digestOf(y); ok {
				if f.replaces == nil {
					f.replaces = map[[32]byte]bool{}
				}
				f.replaces[yd] = true
			}
		}
	}
	if s.err != nil {
		return nil
	}
	if len(s.resFacts) >= resFactsMax {
		clear(s.resFacts)
	}
	if s.resFacts == nil {
		s.resFacts = map[cid.Cid]*resFacts{}
	}
	s.resFacts[e.cid] = f
	return f
}

// resolutions returns the effective and suspended resolutions of dispute
// d, one of each set of copies that differ only in their signatures (the
// lowest CID, effective if any copy is), sorted by CID.
func (s *State) resolutions(d cid.Cid) []Resolution {
	var out []Resolution
	seen := map[[32]byte]int{}
	for _, x := range s.list(groupKey(tagResolved, d)) {
		e := s.entry(x)
		if e == nil || e.typ != protocol.TypeResolution || !votes(e.cls) {
			continue
		}
		f := s.factsOf(e)
		if f == nil {
			return nil
		}
		v := Resolution{CID: x, Under: f.under, Outcome: f.outcome, Effect: f.effect, Suspended: e.cls == clsSuspended, digest: f.digest, replaces: f.replaces}
		if i, ok := seen[f.digest]; ok {
			out[i].Suspended = out[i].Suspended && v.Suspended
			continue
		}
		seen[f.digest] = len(out)
		out = append(out, v)
	}
	return out
}

// overruled reports whether resolution r is replaced or superseded by
// another of rs (SPEC §12.12): one that names a copy of r in replaces, or
// one under a later version (r's under strictly in its past). With
// maybe, suspended ones count too: r could be overruled; without, r is
// overruled for sure.
func (s *State) overruled(r Resolution, rs []Resolution, maybe bool) bool {
	for _, o := range rs {
		if o.digest == r.digest || o.Suspended && !maybe {
			continue
		}
		if o.Under != r.Under && s.inPast(o.Under, r.Under) || o.replaces[r.digest] {
			return true
		}
	}
	return false
}

// overruling answers overruled for every resolution of one dispute at
// the cost of the versions they are made under, not of the resolutions:
// suspended ones, which keys whose revocation is contested can sign by
// the thousand, would otherwise cost each other quadratically.
type overruling struct {
	s        *State
	replaced [2]map[[32]byte]bool // [0]: by effective ones; [1]: by any
	unders   [2][]cid.Cid         // the versions they are made under, likewise
}

func (s *State) newOverruling(rs []Resolution) *overruling {
	x := &overruling{s: s, replaced: [2]map[[32]byte]bool{{}, {}}}
	for _, o := range rs {
		for i := range 2 {
			if i == 0 && o.Suspended {
				continue
			}
			for d := range o.replaces {
				x.replaced[i][d] = true
			}
			if !slices.Contains(x.unders[i], o.Under) {
				x.unders[i] = append(x.unders[i], o.Under)
			}
		}
	}
	return x
}

// overruled is State.overruled(r, rs, maybe) for the rs x was made from.
// A copy of r (the same signing digest) is made under r's version and
// cannot name r, so it overrules r no more here than there.
func (x *overruling) overruled(r Resolution, maybe bool) bool {
	i := 0
	if maybe {
		i = 1
	}
	if x.replaced[i][r.digest] {
		return true
	}
	for _, u := range x.unders[i] {
		if u != r.Under && x.s.inPast(u, r.Under) {
			return true
		}
	}
	return false
}

// Effect says whether an effect binds record c (SPEC §12.12): sure when a
// counting resolution of a dispute about c upholds it with that effect
// whatever a contest decides, maybe when a contest could; by is the
// resolution of lowest CID that does (or could).
func (s *State) Effect(c cid.Cid, effect string) (by cid.Cid, sure, maybe bool) {
	x := s.lookup(c)
	if x == nil || x.flags&flagDisputed == 0 {
		return cid.Undef, false, false
	}
	for _, d := range s.listFor(tagDisputed, c) {
		o, rs, ok := s.outcome(d)
		if !ok {
			continue
		}
		for _, r := range o.Counting {
			if r.Outcome == protocol.OutcomeUphold && r.Effect == effect && (!sure || compareCID(r.CID, by) < 0) {
				by, sure = r.CID, true
			}
		}
		if sure {
			continue
		}
		over := s.newOverruling(rs)
		for _, r := range rs {
			if r.Outcome == protocol.OutcomeUphold && r.Effect == effect && !over.overruled(r, false) && (!maybe || compareCID(r.CID, by) < 0) {
				by, maybe = r.CID, true
			}
		}
	}
	return by, sure, sure || maybe
}

// DisputeGeneration changes whenever a dispute's standing or outcome
// (DisputeOutcome) may have moved: a dispute's class or reason changes, or
// a resolution's class changes to or from one that stands or is
// suspended, the only ones an outcome weighs. What is derived from the
// disputes at one generation holds while it stays. It is counted in
// memory, from 0 for each State.
func (s *State) DisputeGeneration() uint64 { return s.disputeGen }

// Disputes calls fn with the disputes of the set after the CID after
// (all of them when it is undefined), effective or not, in CID order,
// until fn returns false. It reads the store only as far as fn asks.
func (s *State) Disputes(after cid.Cid, fn func(c cid.Cid) bool) {
	var from []byte
	if after.Defined() {
		from = append(cidKey(tagDispute, after), 0) // the first key past after's
	}
	s.walkFrom(disputeGroup, from, func(k []byte) bool {
		c, err := cid.Cast(k[len(disputeGroup):])
		if err != nil {
			s.fail(fmt.Errorf("%w: key %x", ErrDamaged, k))
			return false
		}
		return fn(c)
	})
}

// Replies returns the statements and resolutions that name dispute c,
// whatever their standing, sorted by CID.
//
// It reads at most limit of them (all when limit ≤ 0), in CID order,
// from the first after the CID after (the first of all when it is
// undefined); more is true when there are others.
func (s *State) Replies(c, after cid.Cid, limit int) (out []cid.Cid, more bool) {
	p := groupKey(tagReplies, c)
	var from []byte
	if after.Defined() {
		from = append(append(slices.Clip(p), after.Bytes()...), 0) // the first key past after's
	}
	s.walkFrom(p, from, func(k []byte) bool {
		if len(k) <= len(p) {
			return true
		}
		if limit > 0 && len(out) == limit {
			more = true
			return false
		}
		x, err := cid.Cast(k[len(p):])
		if err != nil {
			s.fail(fmt.Errorf("%w: key %x: %w", ErrDamaged, k, err))
			return false
		}
		out = append(out, x)
		return true
	})
	return out, more
}

// Resolutions returns the resolutions of dispute d that stand or are
// suspended, copies included, in CID order: those its outcome weighs.
func (s *State) Resolutions(d cid.Cid) []cid.Cid {
	var out []cid.Cid
	for _, x := range s.list(groupKey(tagResolved, d)) {
		if e := s.entry(x); e != nil && e.typ == protocol.TypeResolution && votes(e.cls) {
			out = append(out, x)
		}
	}
	return out
}

const (
	reasonRotatedTwice   = "author: rotated to more than one key"
	reasonSuccessorTwice = "successor: named by more than one key"
	reasonNoSuccessor    = "cosigs: the successor has not co-signed"
)

// rotationGroup is the prefix of the 'h' list of the rotations by key k
// (side 0) or to successor k (side 1).
func rotationGroup(side byte, k protocol.PublicKey) []byte {
	return append([]byte{tagRotation, side}, k[:]...)
}

// successor returns a rotation's successor: its one co-signer.
func successor(e *entry) (protocol.PublicKey, bool) {
	if len(e.ext.cosigners) != 1 {
		return protocol.PublicKey{}, false
	}
	return e.ext.cosigners[0], true
}

// rotationSummary is the 'h' key holding the first two distinct keys
// seen on the other side of key k's rotations: its successors (side 2) or
// its predecessors (side 3). Two of them mean a conflict, whatever else
// arrives, so classifying a rotation reads two keys, not every rotation
// of a key that rotated many times.
func rotationSummary(side byte, k protocol.PublicKey) []byte {
	return append([]byte{tagRotation, side}, k[:]...)
}

// summaryKeys reads a rotation summary.
func (s *State) summaryKeys(key []byte) []protocol.PublicKey {
	v := s.getKey(key)
	var out []protocol.PublicKey
	for len(v) >= protocol.PublicKeySize {
		out = append(out, protocol.PublicKey(v[:protocol.PublicKeySize]))
		v = v[protocol.PublicKeySize:]
	}
	return out
}

// noteSummary adds other to the summary under key unless it holds it or
// two keys already; it reports whether the summary now first holds two.
func (s *State) noteSummary(key []byte, other protocol.PublicKey) bool {
	ks := s.summaryKeys(key)
	if len(ks) >= 2 || slices.Contains(ks, other) {
		return false
	}
	v := make([]byte, 0, 2*protocol.PublicKeySize)
	for _, k := range append(ks, other) {
		v = append(v, k[:]...)
	}
	s.ov.set([]byte{tagRotation}, key, op{v: v})
	return len(ks) == 1
}

// classifyRotation applies the rotation rules (SPEC §12.14) to e, whose
// author's bans and genesis were checked: inert if its author is revoked,
// or if its author rotated to another key too, or another key rotated to
// its successor too.
func (s *State) classifyRotation(e *entry) (class, string, cid.Cid) {
	if _, ok := s.revoked[e.ext.author]; ok {
		return clsInert, reasonRevoked, cid.Undef
	}
	succ, ok := successor(e)
	if !ok {
		return clsInert, reasonNoSuccessor, cid.Undef
	}
	if ks := s.summaryKeys(rotationSummary(2, e.ext.author)); len(ks) > 1 || len(ks) == 1 && ks[0] != succ {
		return clsInert, reasonRotatedTwice, cid.Undef
	}
	if ks := s.summaryKeys(rotationSummary(3, succ)); len(ks) > 1 || len(ks) == 1 && ks[0] != e.ext.author {
		return clsInert, reasonSuccessorTwice, cid.Undef
	}
	return clsOK, "", cid.Undef
}

// addRotation lists rotation e by its author and its successor, and notes
// both in the summaries. It returns the lists whose summary first holds
// two keys now, for their rotations to be re-examined, and whether e is
// the first of its pair (author, successor): a later one of the pair
// changes nothing.
func (s *State) addRotation(e *entry) (conflicts [][]byte, first bool) {
	succ, ok := successor(e)
	if !ok {
		return nil, false
	}
	first = !slices.Contains(s.summaryKeys(rotationSummary(2, e.ext.author)), succ) ||
		!slices.Contains(s.summaryKeys(rotationSummary(3, succ)), e.ext.author)
	s.listAdd(rotationGroup(0, e.ext.author), e.cid)
	s.listAdd(rotationGroup(1, succ), e.cid)
	if s.noteSummary(rotationSummary(2, e.ext.author), succ) {
		conflicts = append(conflicts, rotationGroup(0, e.ext.author))
	}
	if s.noteSummary(rotationSummary(3, succ), e.ext.author) {
		conflicts = append(conflicts, rotationGroup(1, succ))
	}
	return conflicts, first
}

// rotationArrived re-examines the rotations of the lists a new rotation
// put in conflict: once, when a key first has two successors or two
// predecessors.
func (s *State) rotationArrived(e *entry, conflicts [][]byte) {
	for _, g := range conflicts {
		for _, c := range s.list(g) {
			if x := s.entry(c); x != nil && c != e.cid {
				s.reclassifyExt(x) // inert ones too: their reason may change
			}
		}
	}
}

// CertificateCheck is whether a certificate holds at a moment, and why not
// (SPEC §12.13).
type CertificateCheck struct {
	Certificate *protocol.Certificate
	Time        protocol.HLC // when it was made
	Under       cid.Cid
	// Verdict is how the certificate stands in the state.
	Verdict Verdict
	// Signers are its signers; Revoked and Suspended those of them that
	// are.
	Signers, Revoked, Suspended []protocol.PublicKey
	// Expired is true when its expiry is not after the moment asked;
	// Early when the moment is before the certificate was made (its time).
	Expired, Early bool
	// Vouched is true when a head of the chain has Under in its past and
	// counts at least its threshold of the signers in its association,
	// neither revoked nor suspended: the association of today stands by
	// it.
	Vouched bool
	// Holds is true when it is effective, not expired and vouched for.
	Holds bool
	// Contributions are a release's contributions with their status now.
	Contributions []ContributionStatus
}

// ContributionStatus is a contribution and its status.
type ContributionStatus struct {
	CID    cid.Cid
	Status Status
}

// CheckCertificate says whether certificate c holds at nowMillis (Unix
// milliseconds, the caller's clock); false if c is not a certificate of
// the set.
func (s *State) CheckCertificate(c cid.Cid, nowMillis uint64) (CertificateCheck, bool, error) {
	e := s.entry(c)
	if e == nil || e.typ != protocol.TypeCertificate {
		return CertificateCheck{}, false, s.err
	}
	b, err := s.read(c)
	if err != nil {
		return CertificateCheck{}, false, err
	}
	body := b.Record.Certificate()
	out := CertificateCheck{Certificate: body, Time: b.Record.Time, Under: body.Under.Cid, Verdict: verdictOf(e.cls, e.reason), Signers: b.Record.Signers()}
	for _, k := range out.Signers {
		if _, ok := s.revoked[k]; ok {
			out.Revoked = append(out.Revoked, k)
		}
		if _, ok := s.suspended[k]; ok {
			out.Suspended = append(out.Suspended, k)
		}
	}
	out.Expired = body.Expires <= nowMillis
	out.Early = uint64(b.Record.Time.Millis()) > nowMillis
	for _, h := range s.headOrder {
		hm := s.mans[h]
		if !s.inPast(hm.cid, body.Under.Cid) {
			continue
		}
		n := uint64(0)
		for _, k := range out.Signers {
			_, revoked := s.revoked[k]
			_, suspended := s.suspended[k]
			if hm.man.m.IsAssociation(k) && !revoked && !suspended {
				n++
			}
		}
		if n >= hm.man.m.Threshold {
			out.Vouched = true
			break
		}
	}
	out.Holds = e.cls == clsOK && !out.Expired && !out.Early && out.Vouched
	if body.Release != nil {
		for _, l := range body.Release.Contributions {
			st, _ := s.Status(l.Cid)
			out.Contributions = append(out.Contributions, ContributionStatus{CID: l.Cid, Status: st})
		}
	}
	return out, true, s.err
}

// maxRotations bounds the rotations followed from a key to the key it
// stands for (SPEC §12.14).
const maxRotations = 16

// pairStands reports whether author's rotations to succ stand: every
// rotation of one pair is classified alike (classifyRotation), from the
// author's standing and the two summaries, so this reads no rotation.
func (s *State) pairStands(author, succ protocol.PublicKey) bool {
	g := s.Genesis()
	if g == nil || g.AssociationRecords() < protocol.AssociationOf(protocol.TypeRotation) {
		return false
	}
	for _, set := range []map[protocol.PublicKey]struct{}{s.revoked, s.banned, s.banSusp} {
		if _, ok := set[author]; ok {
			return false
		}
	}
	a, b := s.summaryKeys(rotationSummary(2, author)), s.summaryKeys(rotationSummary(3, succ))
	return len(a) == 1 && a[0] == succ && len(b) == 1 && b[0] == author
}

// predecessor returns the key k stands for through one effective
// rotation, if any, in O(1).
func (s *State) predecessor(k protocol.PublicKey) (protocol.PublicKey, bool) {
	if ks := s.summaryKeys(rotationSummary(3, k)); len(ks) == 1 && s.pairStands(ks[0], k) {
		return ks[0], true
	}
	return protocol.PublicKey{}, false
}

// successorOf returns the key that stands for k through one effective
// rotation, if any, in O(1).
func (s *State) successorOf(k protocol.PublicKey) (protocol.PublicKey, bool) {
	if ks := s.summaryKeys(rotationSummary(2, k)); len(ks) == 1 && s.pairStands(k, ks[0]) {
		return ks[0], true
	}
	return protocol.PublicKey{}, false
}

// standsFor returns the keys k stands for, nearest first, at most
// maxRotations of them, stopping before a key repeats.
func (s *State) standsFor(k protocol.PublicKey) []protocol.PublicKey {
	var out []protocol.PublicKey
	for cur := k; len(out) < maxRotations; {
		p, ok := s.predecessor(cur)
		if !ok || p == k || slices.Contains(out, p) {
			break
		}
		out = append(out, p)
		cur = p
	}
	return out
}

// slotIn returns the maintainer of m whose vote a review by author casts
// (SPEC §12.14): the author if m lists it, else the nearest key it stands
// for that m lists; and the keys from the slot to the author. False if
// there is none.
func (s *State) slotIn(m *protocol.Manifest, author protocol.PublicKey) (protocol.PublicKey, []protocol.PublicKey, bool) {
	path := []protocol.PublicKey{author}
	if m.IsMaintainer(author) {
		return author, path, true
	}
	for _, k := range s.standsFor(author) {
		path = append(path, k)
		if m.IsMaintainer(k) {
			return k, path, true
		}
	}
	return author, nil, false
}

// rotationMoved re-examines what the keys that stand for rotation e's
// author sign, whose slots and standing may have moved with e's.
func (s *State) rotationMoved(e *entry) {
	succ, ok := successor(e)
	s.downstream(e.ext.author, succ, ok)
}

// afterKey re-examines what the keys that stand for k sign: k's standing
// (revoked, suspended, banned) moved, and with it their slots.
func (s *State) afterKey(k protocol.PublicKey) {
	if ks := s.summaryKeys(rotationSummary(2, k)); len(ks) > 0 {
		s.downstream(k, ks[0], true)
	}
}

// downstream re-examines what succ and the keys after it sign (not their
// rotations), at most maxRotations keys from author.
func (s *State) downstream(author, succ protocol.PublicKey, ok bool) {
	seen := map[protocol.PublicKey]bool{author: true}
	for n := 0; ok && n < maxRotations && !seen[succ]; n++ {
		seen[succ] = true
		for _, c := range s.list(authorGroup(succ)) {
			if x := s.entry(c); x != nil && x.typ != protocol.TypeRotation {
				s.reclassify(x)
			}
		}
		succ, ok = s.successorOf(succ)
	}
}

// DisputesAbout returns the disputes that name record c, in CID order.
func (s *State) DisputesAbout(c cid.Cid) []cid.Cid {
	return slices.Clone(s.listFor(tagDisputed, c))
}

// RotationPath returns, for key k, one effective rotation of each step
// from the nearest key k stands for back along the chain (SPEC §12.14):
// the records that make k's reviews count in an older key's slot.
func (s *State) RotationPath(k protocol.PublicKey) []cid.Cid {
	var out []cid.Cid
	cur := k
	for _, p := range s.standsFor(k) {
		for _, c := range s.list(rotationGroup(1, cur)) {
			if x := s.entry(c); x != nil && x.cls == clsOK && x.ext.author == p {
				out = append(out, c)
				break
			}
		}
		cur = p
	}
	return out
}

// ReasonSetAside is the reason a review set aside for sure shows
// (ReviewView.Inert): it counts as its maintainer's retraction.
const ReasonSetAside = reasonSetAside
