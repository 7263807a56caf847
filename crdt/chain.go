package crdt

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Reasons a record is inert.
const (
	reasonUnknownType      = "type: not a record type this state knows"
	reasonGenesisSigners   = "signers: fewer than the genesis threshold of its own association"
	reasonNoPrev           = "prev: a manifest update names no predecessor"
	reasonPrev             = "prev: names a record that is not a well-formed, signed manifest"
	reasonVersion          = "version: not above every predecessor's version"
	reasonSigners          = "signers: fewer than a predecessor's threshold of its association keys"
	reasonPrevRejected     = "prev: a predecessor is rejected"
	reasonSignersRevoked   = "signers: short of a predecessor's threshold without keys revoked by an accepted manifest that does not have this one in its past"
	reasonRevoked          = "author: key is revoked"
	reasonUnderNotMan      = "under: not a manifest"
	reasonTargetNotCon     = "target: not a contribution"
	reasonUnderInert       = "under: manifest is not on the chain"
	reasonUnderContested   = "under: manifest is contested"
	reasonSuspended        = "author: key is suspended (its revocation is contested)"
	reasonNotMaintainer    = "author: not a maintainer under that manifest"
	reasonTargetInert      = "target: contribution is inert"
	reasonUnderNotLater    = "under: neither the version the contribution assented to nor a later one"
	reasonLicenceNotMan    = "licence: not a manifest"
	reasonLicenceInert     = "licence: manifest is not on the chain"
	reasonLicenceContested = "licence: manifest is contested"
)

// manState is how far a manifest's structural classification got.
type manState uint8

const (
	manPending manState = iota // a predecessor is missing or pending
	manBad                     // inert for good: malformed chain or short of signatures
	manCand                    // a candidate: labelled accepted, rejected or contested
)

// label is a candidate's standing in the grounded labelling.
type label uint8

const (
	undecided label = iota // contested (or not labelled yet)
	accepted
	rejected
)

// req is what a candidate needs of one predecessor: that many of the
// listed keys (its signers in the predecessor's association).
type req struct {
	keys      []protocol.PublicKey
	threshold uint64
}

// meets reports whether every requirement holds without the keys for which
// gone is true.
func meets(reqs []req, gone func(protocol.PublicKey) bool) bool {
	for _, r := range reqs {
		var n uint64
		for _, k := range r.keys {
			if !gone(k) {
				n++
			}
		}
		if n < r.threshold {
			return false
		}
	}
	return true
}

// bitset is a set of candidate ordinals.
type bitset []uint64

func (b bitset) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }

func (b *bitset) set(i int) {
	for len(*b) <= i/64 {
		*b = append(*b, 0)
	}
	(*b)[i/64] |= 1 << (i % 64)
}

func (b *bitset) or(o bitset) {
	for len(*b) < len(o) {
		*b = append(*b, 0)
	}
	for i, w := range o {
		(*b)[i] |= w
	}
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// reclassifyManifest classifies a manifest that has not resolved yet; once a
// candidate or inert for good, its structural standing never changes.
func (s *State) reclassifyManifest(e *entry) {
	if e.man.st != manPending {
		return
	}
	st, reason, ons := s.classifyManifest(e.blk.Record, e.man.m)
	s.waitAll(e, ons)
	switch st {
	case manPending:
		s.setClass(e, clsWaiting, "")
	case manBad:
		e.man.st = manBad
		s.setClass(e, clsInert, reason)
		s.queue = append(s.queue, e.cid)
	case manCand:
		// Labelled by the next relabel; until then it is unresolved.
		e.man.st = manCand
		s.setClass(e, clsWaiting, "")
		s.addCandidate(e)
		s.queue = append(s.queue, e.cid)
	}
}

// classifyManifest applies the structural rules (SPEC §12.2, candidates) to
// a manifest record. A pending manifest waits for all its missing or pending
// predecessors, since any of them may turn out not to be a candidate.
func (s *State) classifyManifest(r *protocol.Record, m *protocol.Manifest) (manState, string, []cid.Cid) {
	if !r.Commons.Defined() {
		if countSigners(r, m.Association) < m.Threshold {
			return manBad, reasonGenesisSigners, nil
		}
		return manCand, "", nil
	}
	if len(m.Prev) == 0 {
		return manBad, reasonNoPrev, nil
	}
	var ons []cid.Cid
	for _, p := range m.Prev {
		pe := s.recs[p.Cid]
		switch {
		case pe == nil:
			ons = append(ons, p.Cid)
		case pe.man == nil || pe.man.st == manBad:
			return manBad, reasonPrev, nil
		case pe.man.st == manPending:
			ons = append(ons, p.Cid)
		}
	}
	if len(ons) > 0 {
		return manPending, "", ons
	}
	for _, p := range m.Prev {
		if m.Version <= s.recs[p.Cid].man.m.Version {
			return manBad, reasonVersion, nil
		}
	}
	for _, p := range m.Prev {
		pm := s.recs[p.Cid].man.m
		if countSigners(r, pm.Association) < pm.Threshold {
			return manBad, reasonSigners, nil
		}
	}
	return manCand, "", nil
}

// signersIn returns r's distinct signers that are in assoc, sorted.
func signersIn(r *protocol.Record, assoc []protocol.PublicKey) []protocol.PublicKey {
	var out []protocol.PublicKey
	for _, k := range r.Signers() {
		if slices.Contains(assoc, k) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, protocol.PublicKey.Compare)
	return out
}

// countSigners counts r's distinct signers that are in assoc.
func countSigners(r *protocol.Record, assoc []protocol.PublicKey) uint64 {
	return uint64(len(signersIn(r, assoc)))
}

// candidate builds the labelling data of a manifest that is a candidate,
// as candidate number ord, from its predecessors' (all candidates).
func (s *State) candidate(r *protocol.Record, m *protocol.Manifest, ord int) *manInfo {
	mi := &manInfo{m: m, st: manCand, ord: ord}
	for _, p := range m.Prev {
		pi := s.recs[p.Cid].man
		mi.preds = append(mi.preds, pi.ord)
		mi.anc.or(pi.anc)
		ks := signersIn(r, pi.m.Association)
		mi.reqs = append(mi.reqs, req{keys: ks, threshold: pi.m.Threshold})
		for _, k := range ks {
			if !slices.Contains(mi.keys, k) {
				mi.keys = append(mi.keys, k)
			}
		}
	}
	mi.anc.set(ord)
	mi.depth = mi.anc.count()
	return mi
}

// addCandidate gives a new candidate its ordinal, past and indexes, and
// asks for a relabel.
func (s *State) addCandidate(e *entry) {
	ord := len(s.mans)
	mi := s.candidate(e.blk.Record, e.man.m, ord)
	e.man = mi
	s.mans = append(s.mans, e)
	s.g.ms = append(s.g.ms, mi)
	s.g.addLabel(mi)
	for _, p := range mi.preds {
		s.g.ms[p].children = append(s.g.ms[p].children, ord)
	}
	for _, k := range mi.keys {
		s.g.needers[k] = append(s.g.needers[k], ord)
	}
	for _, k := range mi.m.Revoked {
		s.g.revokers[k] = append(s.g.revokers[k], ord)
	}
	s.fresh = append(s.fresh, ord)
}

// relabel labels the candidates that arrived since the last labelling and
// every candidate whose label may depend on theirs (graph.closure), and
// carries every change through: the heads and the revoked keys when an
// accepted or revoking candidate moved, and the contributions naming a
// moved manifest as licence, the reviews naming it as Under, and the
// reviews by a key whose revocation came or went.
func (s *State) relabel() {
	g := &s.g
	fresh := s.fresh
	s.fresh = nil
	cl := g.closure(fresh)
	old := make([]label, len(cl))
	for k, i := range cl {
		old[k] = g.lab[i]
	}
	g.ground(cl)
	var changed []*entry
	heads, revs := false, false
	for k, i := range cl {
		e := s.mans[i]
		isNew := e.cls == clsWaiting // a fresh candidate, not labelled yet
		if !isNew && old[k] == g.lab[i] {
			if g.lab[i] == rejected {
				e.reason = g.rejectReason(i) // its cause may have moved
			}
			continue
		}
		switch g.lab[i] {
		case accepted:
			s.setClass(e, clsOK, "")
		case rejected:
			s.setClass(e, clsInert, g.rejectReason(i))
		default:
			s.setClass(e, clsContested, "")
		}
		heads = heads || g.lab[i] == accepted || !isNew && old[k] == accepted
		revs = revs || len(e.man.m.Revoked) > 0
		changed = append(changed, e)
	}
	if heads {
		s.resolveHeads()
	}
	var moved []protocol.PublicKey
	if revs {
		moved = s.resolveRevoked()
	}
	for _, e := range changed {
		for _, c := range s.byLicence[e.cid] {
			s.reclassifyContribution(c)
		}
		for _, r := range s.byUnder[e.cid] {
			s.reclassifyReview(r)
		}
	}
	for _, k := range moved {
		for _, r := range s.byAuthor[k] {
			s.reclassifyReview(r)
		}
	}
}

// resolveHeads recomputes the heads: accepted manifests no accepted
// manifest names in Prev, resolved first.
func (s *State) resolveHeads() {
	s.headOrder = s.headOrder[:0]
	for i, e := range s.mans {
		if s.g.lab[i] != accepted || e.cls != clsOK {
			continue
		}
		superseded := false
		for _, c := range s.g.ms[i].children {
			superseded = superseded || s.g.lab[c] == accepted && s.mans[c].cls == clsOK
		}
		if !superseded {
			s.headOrder = append(s.headOrder, e.cid)
		}
	}
	slices.SortFunc(s.headOrder, s.resolvedFirst)
}

// resolvedFirst orders heads by the size of their past, largest first, then
// by ascending CID bytes.
func (s *State) resolvedFirst(a, b cid.Cid) int {
	da, db := s.recs[a].man.depth, s.recs[b].man.depth
	if c := cmp.Compare(db, da); c != 0 {
		return c
	}
	return strings.Compare(a.KeyString(), b.KeyString())
}

// resolveRevoked recomputes the revoked keys (listed by accepted
// manifests) and the suspended ones (listed by contested manifests only),
// and returns the keys whose standing moved.
func (s *State) resolveRevoked() []protocol.PublicKey {
	rev, sus := map[protocol.PublicKey]struct{}{}, map[protocol.PublicKey]struct{}{}
	for i, e := range s.mans {
		if e.cls == clsOK && s.g.lab[i] == accepted {
			for _, k := range e.man.m.Revoked {
				rev[k] = struct{}{}
			}
		}
	}
	for i, e := range s.mans {
		if e.cls == clsContested && s.g.lab[i] == undecided {
			for _, k := range e.man.m.Revoked {
				if _, ok := rev[k]; !ok {
					sus[k] = struct{}{}
				}
			}
		}
	}
	var moved []protocol.PublicKey
	note := func(k protocol.PublicKey) {
		_, r0 := s.revoked[k]
		_, s0 := s.suspended[k]
		_, r1 := rev[k]
		_, s1 := sus[k]
		if (r0 != r1 || s0 != s1) && !slices.Contains(moved, k) {
			moved = append(moved, k)
		}
	}
	for _, m := range []map[protocol.PublicKey]struct{}{s.revoked, s.suspended, rev, sus} {
		for k := range m {
			note(k)
		}
	}
	s.revoked, s.suspended = rev, sus
	return moved
}
