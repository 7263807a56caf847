package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// The entrepreneurial coalition's records (protocol/SPEC.md §12.9): a
// profile counts for its author, a sponsorship confirms the paid
// contribution it names when that contribution names its author as
// sponsor. Neither carries authority over anything else, and how either
// stands depends only on the records' contents, the genesis and the bans:
//
//   - a profile or sponsorship by a banned key is inert, as is one whose
//     key's ban is contested;
//   - without the genesis it waits; in a commons whose genesis does not
//     set policy.coalition it is inert;
//   - a sponsorship waits for its target, and is inert unless the target
//     is a paid contribution by another key naming the sponsorship's author
//     as sponsor.
//
// So all of one key's profiles stand alike, and all of one contribution's
// confirming sponsorships too (they share their author, its sponsor).

const (
	reasonNoCoalition    = "type: the commons' genesis does not set policy.coalition"
	reasonNotSponsor     = "target: the contribution does not name this key as its sponsor"
	reasonSelfSponsor    = "target: the contribution is this key's own: nobody else signed it"
	reasonNotPledge      = "pledge: not a pledge"
	reasonAckAmount      = "amount: an infrastructure pledge is acknowledged whole, without an amount; money and hours by the part met"
	reasonNotBeneficiary = "author: not the pledge's beneficiary"
	reasonNoUnder        = "under: missing: the association acknowledges a pledge under a manifest"
	reasonAckSigners     = "signers: fewer than the threshold of that manifest's association, revoked and suspended keys left out"
	reasonAckOutsider    = "signers: one is not in that manifest's association"
	reasonAckNotLater    = "under: neither the version the pledge was made under nor a later one"
	reasonBenCosigned    = "cosigs: a beneficiary's acknowledgement carries none"
)

// extInfo is what the coalition's rules read of a profile, a sponsorship, a
// pledge or an acknowledgement.
type extInfo struct {
	author protocol.PublicKey
	target cid.Cid // a sponsorship's contribution, an acknowledgement's pledge
	// An acknowledgement's:
	under     cid.Cid              // the manifest its signers act under, if any
	amount    uint64               // the part of the pledge met
	cosigners []protocol.PublicKey // its co-signers, sorted (a rotation's: its successor)
	// blk is the record itself while it is classified before it is added
	// (State.Classify); nil for an entry of the set, whose record is read
	// through Records when a rule needs more of it (extRecord).
	blk *protocol.Block
}

// profileKey is the 'p' key of a key's latest profile.
func profileKey(k protocol.PublicKey) []byte { return append([]byte{tagProfile}, k[:]...) }

// noteProfile keeps e as its author's latest profile if it is later, by
// (time, CID), than the one kept.
func (s *State) noteProfile(e *entry) {
	k := profileKey(e.ext.author)
	if old, ok := s.latestProfile(k); ok && compareRef(ref{cid: e.cid, time: e.time}, old) <= 0 {
		return
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(e.time))
	s.ov.set([]byte{tagProfile}, k, op{v: append(v, e.cid.Bytes()...)})
}

// latestProfile reads the profile kept under k.
func (s *State) latestProfile(k []byte) (ref, bool) {
	v := s.getKey(k)
	if v == nil {
		return ref{}, false
	}
	d := &decoder{b: v}
	t := protocol.HLC(d.u64())
	c, err := cid.Cast(d.b)
	if d.err != nil || err != nil {
		s.fail(fmt.Errorf("%w: the latest profile under %x", ErrDamaged, k))
		return ref{}, false
	}
	return ref{cid: c, time: t}, true
}

// compareRef orders records by (time, CID bytes).
func compareRef(a, b ref) int {
	switch {
	case a.time < b.time:
		return -1
	case a.time > b.time:
		return 1
	}
	return compareCID(a.cid, b.cid)
}

// reclassifyExt re-derives a profile's or a sponsorship's standing.
func (s *State) reclassifyExt(e *entry) {
	was := e.cls
	c, reason, on := s.classifyExt(e)
	s.setClass(e, c, reason)
	s.wait(e, on)
	if c == clsOK && e.typ == protocol.TypeSponsorship {
		s.listAdd(groupKey(tagSponsored, e.ext.target), e.cid)
	}
	if e.typ == protocol.TypeResolution && votes(was) != votes(c) {
		// Only resolutions that stand or are suspended are listed by their
		// dispute: junk by keys outside the association costs its outcome
		// nothing.
		p := groupKey(tagResolved, e.ext.target)
		w := op{v: []byte{}}
		if !votes(c) {
			w = op{del: true}
		}
		s.ov.set(p, append(slices.Clip(p), e.cid.Bytes()...), w)
	}
	if e.typ == protocol.TypeResolution && was != c && (votes(was) || votes(c)) {
		s.resolutionMoved(e)
	}
	if e.typ == protocol.TypeRotation && was != clsNone && was != c {
		s.rotationMoved(e)
	}
}

// classifyExt applies the rules above to e.
func (s *State) classifyExt(e *entry) (class, string, cid.Cid) {
	if _, ok := s.banned[e.ext.author]; ok {
		return clsInert, reasonBanned, cid.Undef
	}
	if _, ok := s.banSusp[e.ext.author]; ok {
		return clsInert, reasonBanContested, cid.Undef
	}
	if _, ok := s.revoked[e.ext.author]; ok && e.typ == protocol.TypeRotation {
		return clsInert, reasonRevoked, cid.Undef // SPEC §12.14: before the genesis
	}
	g := s.Genesis()
	switch {
	case g == nil:
		return clsWaiting, "", s.id
	case g.Coalition() < protocol.CoalitionOf(e.typ):
		return clsInert, reasonNoCoalition, cid.Undef
	case g.AssociationRecords() < protocol.AssociationOf(e.typ):
		return clsInert, reasonNoAssociation, cid.Undef
	case e.typ == protocol.TypeRotation:
		return s.classifyRotation(e)
	case protocol.AssociationOf(e.typ) > 0:
		return s.classifyAssoc(e)
	case e.typ == protocol.TypeAcknowledgement:
		return s.classifyAck(e)
	case e.typ != protocol.TypeSponsorship:
		return clsOK, "", cid.Undef // a profile or a pledge
	}
	t := s.entry(e.ext.target)
	switch {
	case t == nil:
		return clsWaiting, "", e.ext.target
	case t.con == nil:
		return clsInert, reasonTargetNotCon, cid.Undef
	}
	b, err := s.read(t.cid)
	if errors.Is(err, ErrDropped) {
		// Droppable drops no contribution that names a sponsor and is
		// paid: its bytes would say what they say of every other.
		return clsInert, reasonNotSponsor, cid.Undef
	}
	if err != nil {
		s.fail(err)
		return clsInert, reasonNotSponsor, cid.Undef
	}
	if c := b.Record.Contribution(); c == nil || c.Sponsor == nil || *c.Sponsor != e.ext.author || c.Provenance != protocol.ProvenancePaid {
		return clsInert, reasonNotSponsor, cid.Undef
	}
	if b.Record.Author == e.ext.author {
		return clsInert, reasonSelfSponsor, cid.Undef
	}
	if _, _, maybe := s.Effect(e.cid, protocol.EffectSetAside); maybe {
		// A sponsorship that a contest could set aside confirms nothing
		// meanwhile: the report states what surely stands.
		return clsInert, reasonSetAside, cid.Undef
	}
	return clsOK, "", cid.Undef
}

// classifyAck applies the acknowledgement rules (SPEC §12.11) to e, whose
// author's bans and genesis were checked.
func (s *State) classifyAck(e *entry) (class, string, cid.Cid) {
	p := s.entry(e.ext.target)
	switch {
	case p == nil:
		return clsWaiting, "", e.ext.target
	case p.typ != protocol.TypePledge:
		return clsInert, reasonNotPledge, cid.Undef
	}
	b, err := s.read(p.cid)
	if err != nil {
		s.fail(err)
		return clsInert, reasonNotPledge, cid.Undef
	}
	pl := b.Record.Pledge()
	if (pl.Kind == protocol.PledgeInfrastructure) != (e.ext.amount == 0) {
		return clsInert, reasonAckAmount, cid.Undef
	}
	if pl.Beneficiary != nil {
		_, revoked := s.revoked[e.ext.author]
		_, suspended := s.suspended[e.ext.author]
		path := []protocol.PublicKey{e.ext.author}
		if *pl.Beneficiary != e.ext.author {
			// A key that stands for the beneficiary (SPEC §12.14).
			via := s.standsFor(e.ext.author)
			i := slices.Index(via, *pl.Beneficiary)
			if i < 0 {
				return clsInert, reasonNotBeneficiary, cid.Undef
			}
			path = append(path, via[:i+1]...)
		}
		for _, k := range path[1:] {
			if _, ok := s.suspended[k]; ok {
				suspended = true
			}
		}
		switch {
		case len(e.ext.cosigners) > 0:
			return clsInert, reasonBenCosigned, cid.Undef
		case revoked:
			return clsInert, reasonRevoked, cid.Undef
		case suspended:
			return clsInert, reasonSuspended, cid.Undef
		}
		return clsOK, "", cid.Undef
	}
	if !e.ext.under.Defined() {
		return clsInert, reasonNoUnder, cid.Undef
	}
	return s.associationActs(e, []cid.Cid{pl.Under.Cid}, reasonAckNotLater)
}

// Profile returns the profile that counts for key k: the latest by (time,
// CID) of its profiles, unless they are inert or waiting; if it has none,
// that of the nearest key it stands for through rotations.
func (s *State) Profile(k protocol.PublicKey) (cid.Cid, bool) {
	if c, ok := s.ownProfile(k); ok {
		return c, true
	}
	for _, p := range s.standsFor(k) { // the nearest key k stands for (SPEC §12.14)
		if c, ok := s.ownProfile(p); ok {
			return c, true
		}
	}
	return cid.Undef, false
}

// ownProfile returns k's own profile that counts.
func (s *State) ownProfile(k protocol.PublicKey) (cid.Cid, bool) {
	r, ok := s.latestProfile(profileKey(k))
	if !ok {
		return cid.Undef, false
	}
	if e := s.entry(r.cid); e == nil || e.cls != clsOK {
		return cid.Undef, false
	}
	return r.cid, true
}

// LatestProfile returns the latest by (time, CID) of k's profiles,
// whatever its standing, and its time: a new profile of k counts only if
// it is later.
func (s *State) LatestProfile(k protocol.PublicKey) (cid.Cid, protocol.HLC, bool) {
	r, ok := s.latestProfile(profileKey(k))
	return r.cid, r.time, ok
}

// Sponsorship returns the sponsorship that confirms contribution c's paid
// provenance: the one of lowest CID among those its sponsor signed for it,
// unless they are inert (the sponsor is banned).
func (s *State) Sponsorship(c cid.Cid) (cid.Cid, bool) {
	prefix := groupKey(tagSponsored, c)
	var first cid.Cid
	s.walk(prefix, func(k []byte) bool {
		x, err := cid.Cast(k[len(prefix):])
		if err != nil {
			s.fail(fmt.Errorf("%w: key %x", ErrDamaged, k))
			return false
		}
		if e := s.entry(x); e != nil && e.cls == clsOK {
			first = x // the lowest CID that counts: one set aside does not
			return false
		}
		return true
	})
	return first, first.Defined()
}
