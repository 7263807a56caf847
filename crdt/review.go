package crdt

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// votes reports whether a review of class c takes its place among its
// maintainer's reviews: eligible (a definite vote) or suspended (undecided).
func votes(c class) bool { return c == clsOK || c == clsSuspended }

// reclassifyReview re-derives a review's standing and, when that moved, its
// target's latest reviews and status.
func (s *State) reclassifyReview(e *entry) {
	was, wasReason, wasSlot := e.cls, e.reason, e.rev.slot
	c, reason, on, slot := s.classifyReviewSlot(e)
	s.setClass(e, c, reason)
	s.wait(e, on)
	if !votes(c) {
		slot = e.rev.author
	}
	if was == c && slot == wasSlot && (wasReason == reason || !votes(c)) || !votes(was) && !votes(c) {
		e.rev.slot = slot
		return
	}
	t := s.entry(e.rev.target)
	if t == nil || t.con == nil {
		return // unreachable: a review votes only on a contribution here
	}
	if votes(was) && (!votes(c) || slot != wasSlot) {
		s.drop(t, e) // under the slot it voted in
	}
	e.rev.slot = slot
	if votes(c) && (!votes(was) || slot != wasSlot) {
		s.offer(t, e)
	}
	s.touch(t)
}

// classifyReview applies the review rules (SPEC §12.4) to e, in their
// order, then the resolutions that set it aside (SPEC §12.12): one set
// aside for sure counts as its author's retraction (eligible, with
// reasonSetAside, casting no vote); one a contest could set aside is
// suspended (reasonSetAsideHeld: no vote is among its possible votes).
func (s *State) classifyReview(e *entry) (class, string, cid.Cid) {
	c, reason, on, _ := s.classifyReviewSlot(e)
	return c, reason, on
}

// classifyReviewSlot is classifyReview, with the slot the review votes in
// (SPEC §12.14).
func (s *State) classifyReviewSlot(e *entry) (class, string, cid.Cid, protocol.PublicKey) {
	c, reason, on, slot := s.classifyReviewRules(e)
	if !votes(c) {
		return c, reason, on, slot
	}
	switch _, sure, maybe := s.Effect(e.cid, protocol.EffectSetAside); {
	case sure:
		// A retraction: no vote if it stands; if a contest leaves it
		// inert, the maintainer's earlier review votes (possible).
		return c, reasonSetAside, on, slot
	case maybe:
		return clsSuspended, reasonSetAsideHeld, on, slot
	}
	return c, reason, on, slot
}

// classifyReviewRules applies the review rules (SPEC §12.4, with the
// slots of §12.14) to e, in their order, and returns the slot it votes in. The CID it returns is the Under manifest whenever that is missing
// or pending, even for an inert review: Under's arrival may change the
// reason. A review waiting for its target, its target's licence or an
// unlabelled Under is re-examined through byTarget or byUnder instead.
func (s *State) classifyReviewRules(e *entry) (class, string, cid.Cid, protocol.PublicKey) {
	v := e.rev
	if _, ok := s.revoked[v.author]; ok {
		return clsInert, reasonRevoked, cid.Undef, v.author
	}
	if _, ok := s.banned[v.author]; ok {
		return clsInert, reasonBanned, cid.Undef, v.author
	}
	u, t := s.mfs[v.under], s.entry(v.target)
	if u == nil && s.entry(v.under) != nil {
		return clsInert, reasonUnderNotMan, cid.Undef, v.author
	}
	var on cid.Cid
	if u == nil || u.man != nil && u.man.st == manPending {
		on = v.under
	}
	slot, path, hasSlot := v.author, []protocol.PublicKey{v.author}, true
	if u != nil && (u.cls == clsOK || u.cls == clsContested) {
		slot, path, hasSlot = s.slotIn(u.man.m, v.author)
	}
	switch {
	case u != nil && u.man == nil:
		return clsInert, reasonUnderNotMan, cid.Undef, slot
	case t != nil && t.con == nil:
		return clsInert, reasonTargetNotCon, on, slot
	case u != nil && u.cls == clsInert:
		return clsInert, reasonUnderInert, cid.Undef, slot
	case !hasSlot:
		return clsInert, reasonNotMaintainer, cid.Undef, slot
	case u == nil || u.cls == clsWaiting || t == nil || t.cls == clsWaiting:
		return clsWaiting, "", on, slot
	case t.cls != clsOK:
		return clsInert, reasonTargetInert, cid.Undef, slot
	case !u.man.anc.has(s.mfs[t.con.licence].man.ord):
		return clsInert, reasonUnderNotLater, cid.Undef, slot
	case u.cls == clsContested:
		return clsSuspended, reasonUnderContested, cid.Undef, slot
	}
	for _, k := range path {
		if _, ok := s.suspended[k]; ok {
			return clsSuspended, reasonSuspended, cid.Undef, slot
		}
		if _, ok := s.banSusp[k]; ok {
			return clsSuspended, reasonBanContested, cid.Undef, slot
		}
	}
	return clsOK, "", cid.Undef, slot
}

// ref names one review among a maintainer's votes on a contribution.
type ref struct {
	cid  cid.Cid
	time protocol.HLC
}

// A maintainer's eligible and suspended reviews of a contribution are keys
// of their own, latest first (time and CID inverted), so that a review
// writes one key, however many the maintainer made before, and the votes
// are read from the latest down only as far as the rules look. The
// contribution's entry lists the maintainers who have any (conInfo.voters).

// votePrefix is the prefix of maintainer author's votes on contribution
// con.
func votePrefix(con cid.Cid, author protocol.PublicKey) []byte {
	return append(groupKey(tagVote, con), author[:]...)
}

func voteKey(prefix []byte, r ref) []byte {
	k := binary.BigEndian.AppendUint64(slices.Clip(prefix), ^uint64(r.time))
	for _, b := range r.cid.Bytes() {
		k = append(k, ^b)
	}
	return k
}

func refOf(prefix, key []byte) (ref, error) {
	if len(key) < len(prefix)+8 {
		return ref{}, fmt.Errorf("vote key %x: too short", key)
	}
	t := ^binary.BigEndian.Uint64(key[len(prefix):])
	raw := slices.Clone(key[len(prefix)+8:])
	for i := range raw {
		raw[i] = ^raw[i]
	}
	c, err := cid.Cast(raw)
	if err != nil {
		return ref{}, fmt.Errorf("vote key %x: %w", key, err)
	}
	return ref{cid: c, time: protocol.HLC(t)}, nil
}

// voter is a maintainer with eligible or suspended reviews of a
// contribution, and the latest of them.
type voter struct {
	author protocol.PublicKey
	latest ref
}

// laterRef reports whether a is later than b: by time, then CID bytes.
func laterRef(a, b ref) bool {
	if a.time != b.time {
		return a.time > b.time
	}
	return compareCID(a.cid, b.cid) > 0
}

func (c *conInfo) voter(author protocol.PublicKey) (int, bool) {
	return slices.BinarySearchFunc(c.voters, author, func(v voter, k protocol.PublicKey) int { return v.author.Compare(k) })
}

// offer adds e, now eligible or suspended, to its maintainer's votes on
// t.
func (s *State) offer(t, e *entry) {
	author, r := e.rev.slot, ref{cid: e.cid, time: e.time}
	p := votePrefix(t.cid, author)
	s.ov.set(p, voteKey(p, r), op{v: []byte{}})
	t.con.voters = slices.Clone(t.con.voters)
	switch i, found := t.con.voter(author); {
	case !found:
		t.con.voters = slices.Insert(t.con.voters, i, voter{author: author, latest: r})
	case laterRef(r, t.con.voters[i].latest):
		t.con.voters[i].latest = r
	}
}

// drop removes e, neither eligible nor suspended any more, from its
// maintainer's votes on t.
func (s *State) drop(t, e *entry) {
	author := e.rev.slot
	p := votePrefix(t.cid, author)
	s.ov.set(p, voteKey(p, ref{cid: e.cid, time: e.time}), op{del: true})
	i, found := t.con.voter(author)
	if !found || t.con.voters[i].latest.cid != e.cid {
		return
	}
	t.con.voters = slices.Clone(t.con.voters)
	if next, ok := s.latestVote(t.cid, author); ok {
		t.con.voters[i].latest = next
	} else {
		t.con.voters = slices.Delete(t.con.voters, i, i+1)
	}
}

// votesOf calls fn with a maintainer's votes on contribution con, latest
// first, until fn returns false.
func (s *State) votesOf(con cid.Cid, author protocol.PublicKey, fn func(ref) bool) {
	p := votePrefix(con, author)
	s.walk(p, func(k []byte) bool {
		r, err := refOf(p, k)
		if err != nil {
			s.fail(err)
			return false
		}
		return fn(r)
	})
}

// latestVote returns a maintainer's latest eligible or suspended review of
// con; false if there is none.
func (s *State) latestVote(con cid.Cid, author protocol.PublicKey) (ref, bool) {
	var out ref
	var found bool
	s.votesOf(con, author, func(r ref) bool { out, found = r, true; return false })
	return out, found
}

// latest reports whether e is its maintainer's latest eligible or
// suspended review of t.
func (s *State) latest(t, e *entry) bool {
	i, found := t.con.voter(e.rev.slot)
	return found && t.con.voters[i].latest.cid == e.cid
}

// reclassifyContribution re-derives a contribution's standing and status,
// and its reviews' when its standing moved.
func (s *State) reclassifyContribution(e *entry) {
	was := e.cls
	c, reason, on := s.classifyContribution(e)
	s.setClass(e, c, reason)
	s.wait(e, on)
	if c != was {
		for _, r := range s.listFor(tagTarget, e.cid) {
			if x := s.entry(r); x != nil {
				s.reclassifyReview(x)
			}
		}
	}
	s.touch(e)
}

// classifyContribution applies the ban and licence rules to e.
func (s *State) classifyContribution(e *entry) (class, string, cid.Cid) {
	if _, ok := s.banned[e.con.author]; ok {
		return clsInert, reasonBanned, cid.Undef
	}
	if _, ok := s.banSusp[e.con.author]; ok {
		return clsInert, reasonBanContested, cid.Undef
	}
	return s.manifestStanding(e.con.licence, reasonLicenceNotMan, reasonLicenceInert, reasonLicenceContested)
}

// manifestStanding is how a record that rests on manifest m stands for
// m's sake: effective when m is on the chain; inert, with the reason
// given, when m is not a manifest, is off the chain or is contested;
// waiting while m is missing or not labelled yet (a record waiting for the
// label is re-examined through the list that names m: 'l' or 'u').
func (s *State) manifestStanding(m cid.Cid, notMan, inert, contested string) (class, string, cid.Cid) {
	l := s.mfs[m]
	switch {
	case l == nil && s.entry(m) != nil:
		return clsInert, notMan, cid.Undef
	case l == nil:
		return clsWaiting, "", m
	case l.cls == clsInert:
		return clsInert, inert, cid.Undef
	case l.cls == clsContested:
		return clsInert, contested, cid.Undef
	case l.man.st == manPending:
		return clsWaiting, "", m
	case l.cls == clsWaiting:
		return clsWaiting, "", cid.Undef
	}
	return clsOK, "", cid.Undef
}

// touch recounts a contribution now, or at the end of the relabel that is
// carrying its changes.
func (s *State) touch(t *entry) {
	if s.deferring {
		s.deferred[t] = struct{}{}
		return
	}
	s.recount(t)
}

// recount sets a contribution's status from its latest reviews.
func (s *State) recount(t *entry) {
	st, held := s.decide(t)
	if held != t.con.held {
		t.con.held = held
		if held {
			s.nHeld++
		} else {
			s.nHeld--
		}
	}
	s.setStatus(t, st)
}

// vote is a possible vote: a decision naming a version, or none (a retract,
// or no review that stands).
type vote struct {
	decision string // accept or reject; "" for no vote
	under    cid.Cid
}

func voteOf(r *entry) vote {
	v := r.rev
	if v == nil {
		return vote{}
	}
	if v.decision == protocol.DecisionRetract || r.reason == reasonSetAside {
		return vote{}
	}
	return vote{decision: v.decision, under: v.under}
}

// possible returns a maintainer's possible votes on contribution con
// (SPEC §12.4): the vote of their latest review if it is eligible;
// otherwise the votes of their reviews from the latest back to the latest
// eligible one, or to the end and no vote. It reads their reviews only
// that far.
func (s *State) possible(con cid.Cid, v voter) []vote {
	if r := s.review(v.latest); r.cls == clsOK {
		return []vote{voteOf(r)}
	}
	var out []vote
	eligible := false
	s.votesOf(con, v.author, func(x ref) bool {
		r := s.review(x)
		if v := voteOf(r); !slices.Contains(out, v) {
			out = append(out, v)
		}
		if r.reason == reasonSetAsideHeld && !slices.Contains(out, vote{}) {
			out = append(out, vote{}) // set aside, it would be a retraction
		}
		eligible = r.cls == clsOK
		return !eligible
	})
	if !eligible && !slices.Contains(out, vote{}) {
		out = append(out, vote{})
	}
	return out
}

// decide computes a contribution's status (SPEC §12.5) from its
// maintainers' possible votes: rejected if some version's reject quorum is
// met by certain rejects naming it; else accepted if some version's quorum
// is met by certain accepts naming it and no version's reject quorum by
// possible rejects; else pending. held is true when it is pending because
// of a contest: its licence is contested, or the possible votes could
// decide it.
func (s *State) decide(t *entry) (st Status, held bool) {
	if t.cls != clsOK {
		return StatusPending, t.cls == clsInert && (t.reason == reasonLicenceContested || t.reason == reasonBanContested)
	}
	switch _, sure, maybe := s.Effect(t.cid, protocol.EffectWithdraw); {
	case sure:
		return StatusWithdrawn, false
	case maybe:
		return StatusPending, true
	}
	// The distinct votes are few (one per version and decision): a slice
	// on the stack, searched linearly, costs less than a map.
	type count struct {
		v                 vote
		certain, possible uint64
	}
	var buf [8]count
	tally := buf[:0]
	add := func(v vote, certain bool) {
		if v.decision == "" {
			return
		}
		i := slices.IndexFunc(tally, func(c count) bool { return c.v == v })
		if i < 0 {
			tally = append(tally, count{v: v})
			i = len(tally) - 1
		}
		tally[i].possible++
		if certain {
			tally[i].certain++
		}
	}
	for _, v := range t.con.voters {
		opts := s.possible(t.cid, v)
		for _, v := range opts {
			add(v, len(opts) == 1)
		}
	}
	var rejSure, rejMaybe, accSure, accMaybe bool
	for _, c := range tally {
		m := s.mfs[c.v.under].man.m
		switch q := m.Quorum; c.v.decision {
		case protocol.DecisionReject:
			q = m.RejectQuorum
			rejSure = rejSure || q > 0 && c.certain >= q
			rejMaybe = rejMaybe || q > 0 && c.possible >= q
		case protocol.DecisionAccept:
			accSure = accSure || q > 0 && c.certain >= q
			accMaybe = accMaybe || q > 0 && c.possible >= q
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

// review returns the entry of a review a voter lists; after a failed read,
// an entry that casts no vote.
func (s *State) review(r ref) *entry {
	if e := s.entry(r.cid); e != nil {
		return e
	}
	if s.err == nil {
		s.fail(fmt.Errorf("review %s, listed as a vote, is not in the derived state", r.cid))
	}
	return &entry{cid: r.cid, cls: clsInert}
}
