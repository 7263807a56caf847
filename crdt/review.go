package crdt

import (
	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// votes reports whether a review of class c takes its place among its
// maintainer's reviews: eligible (a definite vote) or suspended (undecided).
func votes(c class) bool { return c == clsOK || c == clsSuspended }

// reclassifyReview re-derives a review's standing and, when that moved, its
// target's latest reviews and status.
func (s *State) reclassifyReview(e *entry) {
	was := e.cls
	c, reason, on := s.classifyReview(e)
	s.setClass(e, c, reason)
	s.wait(e, on)
	if was == c || !votes(was) && !votes(c) {
		return
	}
	t := s.recs[e.blk.Record.Review().Target.Cid]
	switch {
	case votes(c) && !votes(was):
		offerLatest(t.con, e)
	case !votes(c) && votes(was):
		s.dropLatest(t, e)
	}
	s.recount(t)
}

// classifyReview applies the review rules (SPEC §12.4) to e, in their
// order. The CID it returns is the Under manifest whenever that is missing
// or pending, even for an inert review: Under's arrival may change the
// reason. A review waiting for its target, its target's licence or an
// unlabelled Under is re-examined through byTarget or byUnder instead.
func (s *State) classifyReview(e *entry) (class, string, cid.Cid) {
	r := e.blk.Record
	v := r.Review()
	if _, ok := s.revoked[r.Author]; ok {
		return clsInert, reasonRevoked, cid.Undef
	}
	u, t := s.recs[v.Under.Cid], s.recs[v.Target.Cid]
	var on cid.Cid
	if u == nil || u.man != nil && u.man.st == manPending {
		on = v.Under.Cid
	}
	switch {
	case u != nil && u.man == nil:
		return clsInert, reasonUnderNotMan, cid.Undef
	case t != nil && t.con == nil:
		return clsInert, reasonTargetNotCon, on
	case u != nil && u.cls == clsInert:
		return clsInert, reasonUnderInert, cid.Undef
	case u != nil && (u.cls == clsOK || u.cls == clsContested) && !u.man.m.IsMaintainer(r.Author):
		return clsInert, reasonNotMaintainer, cid.Undef
	case u == nil || u.cls == clsWaiting || t == nil || t.cls == clsWaiting:
		return clsWaiting, "", on
	case t.cls != clsOK:
		return clsInert, reasonTargetInert, cid.Undef
	case !u.man.anc.has(s.recs[t.blk.Record.Contribution().Licence.Cid].man.ord):
		return clsInert, reasonUnderNotLater, cid.Undef
	case u.cls == clsContested:
		return clsSuspended, reasonUnderContested, cid.Undef
	}
	if _, ok := s.suspended[r.Author]; ok {
		return clsSuspended, reasonSuspended, cid.Undef
	}
	return clsOK, "", cid.Undef
}

// later reports whether review a is later than review b: by record time,
// then CID bytes.
func later(a, b *entry) bool {
	ta, tb := a.blk.Record.Time, b.blk.Record.Time
	if ta != tb {
		return ta > tb
	}
	return a.cid.KeyString() > b.cid.KeyString()
}

// offerLatest makes e (eligible or suspended) its maintainer's latest
// review of c if it is later than the one held.
func offerLatest(c *conInfo, e *entry) {
	author := e.blk.Record.Author
	for i, x := range c.latest {
		if x.blk.Record.Author == author {
			if later(e, x) {
				c.latest[i] = e
			}
			return
		}
	}
	c.latest = append(c.latest, e)
}

// dropLatest removes e, neither eligible nor suspended any more, from its
// target's latest reviews, falling back to the maintainer's latest
// remaining eligible or suspended one.
func (s *State) dropLatest(t *entry, e *entry) {
	c := t.con
	i := -1
	for j, x := range c.latest {
		if x == e {
			i = j
		}
	}
	if i < 0 {
		return
	}
	c.latest = append(c.latest[:i], c.latest[i+1:]...)
	for _, r := range s.byTarget[t.cid] {
		if votes(r.cls) && r.blk.Record.Author == e.blk.Record.Author {
			offerLatest(c, r)
		}
	}
}

// reclassifyContribution re-derives a contribution's standing and status,
// and its reviews' when its standing moved.
func (s *State) reclassifyContribution(e *entry) {
	was := e.cls
	c, reason, on := s.classifyContribution(e)
	s.setClass(e, c, reason)
	s.wait(e, on)
	if c != was {
		for _, r := range s.byTarget[e.cid] {
			s.reclassifyReview(r)
		}
	}
	s.recount(e)
}

// classifyContribution applies the licence rule to e.
func (s *State) classifyContribution(e *entry) (class, string, cid.Cid) {
	lic := e.blk.Record.Contribution().Licence.Cid
	l := s.recs[lic]
	switch {
	case l == nil:
		return clsWaiting, "", lic
	case l.man == nil:
		return clsInert, reasonLicenceNotMan, cid.Undef
	case l.cls == clsInert:
		return clsInert, reasonLicenceInert, cid.Undef
	case l.cls == clsContested:
		return clsInert, reasonLicenceContested, cid.Undef
	case l.man.st == manPending:
		return clsWaiting, "", lic
	case l.cls == clsWaiting:
		return clsWaiting, "", cid.Undef // not labelled yet: re-examined through byLicence
	}
	return clsOK, "", cid.Undef
}

// recount sets a contribution's status from its latest reviews.
func (s *State) recount(t *entry) {
	st, held := s.decide(t)
	t.con.held = held
	s.setStatus(t, st)
}

// tally is the votes naming one version: definite and undecided.
type tally struct{ acc, rej, uAcc, uRej uint64 }

// decide computes a contribution's status (SPEC §12.5): rejected if some
// version's reject quorum is met by definite rejects naming it; else
// accepted if some version's quorum is met by definite accepts naming it
// and no version's reject quorum could be met with the undecided rejects
// added; else pending. held is true when it is pending only because the
// undecided votes could go either way.
func (s *State) decide(t *entry) (st Status, held bool) {
	if t.cls != clsOK {
		return StatusPending, false
	}
	byUnder := map[cid.Cid]*tally{}
	for _, r := range t.con.latest {
		v := r.blk.Record.Review()
		x := byUnder[v.Under.Cid]
		if x == nil {
			x = &tally{}
			byUnder[v.Under.Cid] = x
		}
		sure := r.cls == clsOK
		switch v.Decision {
		case protocol.DecisionAccept:
			if sure {
				x.acc++
			} else {
				x.uAcc++
			}
		case protocol.DecisionReject:
			if sure {
				x.rej++
			} else {
				x.uRej++
			}
		}
	}
	var rejSure, rejMaybe, accSure, accMaybe bool
	for u, x := range byUnder {
		m := s.recs[u].man.m
		if q := m.RejectQuorum; q > 0 {
			rejSure = rejSure || x.rej >= q
			rejMaybe = rejMaybe || x.rej+x.uRej >= q
		}
		if q := m.Quorum; q > 0 {
			accSure = accSure || x.acc >= q
			accMaybe = accMaybe || x.acc+x.uAcc >= q
		}
	}
	switch {
	case rejSure:
		return StatusRejected, false
	case accSure && !rejMaybe:
		return StatusAccepted, false
	}
	return StatusPending, rejMaybe || accMaybe
}
