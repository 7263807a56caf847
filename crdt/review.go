package crdt

import (
	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// reclassifyReview re-derives a review's standing and, when its eligibility
// changed, its target's latest reviews and status.
func (s *State) reclassifyReview(e *entry) {
	was := e.cls == clsOK
	c, reason, on := s.classifyReview(e)
	s.setClass(e, c, reason)
	s.wait(e, on)
	now := c == clsOK
	if was == now {
		return
	}
	t := s.recs[e.blk.Record.Review().Target.Cid]
	if now {
		offerLatest(t.con, e)
	} else {
		s.dropLatest(t, e)
	}
	s.recount(t)
}

// classifyReview applies the review rules (SPEC §12.4) to e. The CID it
// returns is the Under manifest whenever that is missing or pending, even
// for an inert review: Under's arrival may change the reason. A review
// waiting for its target, or for its target's licence, is re-examined
// through byTarget instead.
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
	case u != nil && u.cls == clsContested:
		return clsInert, reasonUnderContested, cid.Undef
	case u != nil && u.cls == clsOK && !u.man.m.IsMaintainer(r.Author):
		return clsInert, reasonNotMaintainer, cid.Undef
	case u == nil || u.cls == clsWaiting || t == nil || t.cls == clsWaiting:
		return clsWaiting, "", on // an unlabelled Under is re-examined through byUnder
	case t.cls != clsOK:
		return clsInert, reasonTargetInert, cid.Undef
	case !u.man.anc.has(s.recs[t.blk.Record.Contribution().Licence.Cid].man.ord):
		return clsInert, reasonUnderNotLater, cid.Undef
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

// offerLatest makes e its maintainer's latest review of c if it is later
// than the one held.
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

// dropLatest removes e, no longer eligible, from its target's latest
// reviews, falling back to the maintainer's latest remaining eligible one.
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
		if r.cls == clsOK && r.blk.Record.Author == e.blk.Record.Author {
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
	s.setStatus(t, s.decide(t))
}

// decide computes a contribution's status: rejected if some version's
// reject quorum is met by counting rejects naming it, else accepted if some
// version's quorum is met by counting accepts naming it, else pending.
func (s *State) decide(t *entry) Status {
	if t.cls != clsOK {
		return StatusPending
	}
	latest := t.con.latest
	accepted := false
	for i, r := range latest {
		under := r.blk.Record.Review().Under.Cid
		if firstUnder(latest[:i], under) {
			continue // this version was tallied already
		}
		var acc, rej uint64
		for _, x := range latest[i:] {
			v := x.blk.Record.Review()
			if v.Under.Cid != under {
				continue
			}
			switch v.Decision {
			case protocol.DecisionAccept:
				acc++
			case protocol.DecisionReject:
				rej++
			}
		}
		m := s.recs[under].man.m
		if m.RejectQuorum > 0 && rej >= m.RejectQuorum {
			return StatusRejected
		}
		if m.Quorum > 0 && acc >= m.Quorum {
			accepted = true
		}
	}
	if accepted {
		return StatusAccepted
	}
	return StatusPending
}

// firstUnder reports whether some review in rs names under.
func firstUnder(rs []*entry, under cid.Cid) bool {
	for _, r := range rs {
		if r.blk.Record.Review().Under.Cid == under {
			return true
		}
	}
	return false
}
