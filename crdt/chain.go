package crdt

import (
	"cmp"
	"math/bits"
	"slices"

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
	reasonBanned           = "author: key is banned"
	reasonBanContested     = "author: key's ban is contested"
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
	// The coalition's reasons are in coalition.go.
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
	st, reason, ons := s.classifyManifest(e.man.blk.Record, e.man.m)
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
		pe := s.mfs[p.Cid]
		switch {
		case pe == nil && s.entry(p.Cid) != nil:
			return manBad, reasonPrev, nil
		case pe == nil:
			ons = append(ons, p.Cid)
		case pe.man.st == manBad:
			return manBad, reasonPrev, nil
		case pe.man.st == manPending:
			ons = append(ons, p.Cid)
		}
	}
	if len(ons) > 0 {
		return manPending, "", ons
	}
	for _, p := range m.Prev {
		if m.Version <= s.mfs[p.Cid].man.m.Version {
			return manBad, reasonVersion, nil
		}
	}
	for _, p := range m.Prev {
		pm := s.mfs[p.Cid].man.m
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
		pi := s.mfs[p.Cid].man
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
	mi := s.candidate(e.man.blk.Record, e.man.m, ord)
	mi.blk = e.man.blk
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
// accepted or revoking candidate moved, the banned keys when the heads or
// a banning candidate did, and the contributions naming a moved manifest
// as licence, the reviews naming it as Under, the reviews by a key whose
// revocation came or went, and the contributions and reviews by a key
// whose ban came, went or was contested.
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
	var touched []int                         // changed candidates and their predecessors: heads may move
	keys := map[protocol.PublicKey]struct{}{} // keys revoked by changed candidates
	bans := map[protocol.PublicKey]struct{}{} // keys whose banning heads or contested candidates were counted anew
	for k, i := range cl {
		e := s.mans[i]
		isNew := e.cls == clsWaiting // a fresh candidate, not labelled yet
		if !isNew && old[k] == g.lab[i] {
			if g.lab[i] == rejected {
				e.reason = g.rejectReason(i) // its cause may have moved
			}
			continue
		}
		if was, now := e.cls == clsContested, g.lab[i] == undecided; was != now {
			s.countBans(i, s.nContBans, now, bans)
		}
		switch g.lab[i] {
		case accepted:
			s.setClass(e, clsOK, "")
		case rejected:
			s.setClass(e, clsInert, g.rejectReason(i))
		default:
			s.setClass(e, clsContested, "")
		}
		touched = append(append(touched, i), g.ms[i].preds...)
		for _, r := range e.man.m.Revoked {
			keys[r] = struct{}{}
		}
		changed = append(changed, e)
	}
	s.resolveHeads(touched, bans)
	moved := s.resolveRevoked(keys)
	banMoved := s.resolveBanned(bans)
	if s.quiet {
		return // what rests on the chain is stored as it stands on it
	}
	// Each contribution is recounted once, after all its reviews moved.
	s.deferring = true
	each := func(prefix []byte, fn func(*entry)) {
		for _, c := range s.list(prefix) {
			if e := s.entry(c); e != nil {
				fn(e)
			}
		}
	}
	for _, e := range changed {
		each(groupKey(tagLicence, e.cid), s.reclassifyContribution)
		each(groupKey(tagUnder, e.cid), s.reclassify) // reviews, acknowledgements
	}
	for _, k := range banMoved {
		each(ownerGroup(k), s.reclassify) // contributions, profiles, sponsorships
	}
	authors := map[protocol.PublicKey]bool{}
	for _, k := range slices.Concat(moved, banMoved) {
		if !authors[k] {
			authors[k] = true
			each(authorGroup(k), s.reclassify) // reviews, acknowledgements, rotations
			s.afterKey(k)                      // what the keys standing for k sign
		}
	}
	s.deferring = false
	for t := range s.deferred {
		s.recount(t)
	}
	clear(s.deferred)
}

// resolveHeads updates the heads (accepted manifests no accepted manifest
// names in Prev), resolved first, for the candidates whose label, or a
// child's, may have moved.
func (s *State) resolveHeads(touched []int, bans map[protocol.PublicKey]struct{}) {
	for _, i := range touched {
		head := s.g.lab[i] == accepted && !slices.ContainsFunc(s.g.ms[i].children, func(c int) bool { return s.g.lab[c] == accepted })
		if head == s.heads[i] {
			continue
		}
		s.countBans(i, s.nHeadBans, head, bans)
		j, found := slices.BinarySearchFunc(s.headOrder, i, s.resolvedFirst)
		if head {
			s.heads[i] = true
			if !found {
				s.headOrder = slices.Insert(s.headOrder, j, i)
			}
		} else {
			delete(s.heads, i)
			if found {
				s.headOrder = slices.Delete(s.headOrder, j, j+1)
			}
		}
	}
}

// resolvedFirst orders heads (by ordinal) by the size of their past,
// largest first, then by ascending CID bytes.
func (s *State) resolvedFirst(a, b int) int {
	if c := cmp.Compare(s.g.ms[b].depth, s.g.ms[a].depth); c != 0 {
		return c
	}
	return compareCID(s.mans[a].cid, s.mans[b].cid)
}

// countBans counts candidate i's banned keys in (add) or out of n, the
// heads or the contested candidates banning each key, and notes them in
// keys. Only a commons whose genesis allows bans bans (SPEC §7.5): nodes
// refuse banning manifests elsewhere, and the state counts none of them
// should one be added all the same.
func (s *State) countBans(i int, n map[protocol.PublicKey]int, add bool, keys map[protocol.PublicKey]struct{}) {
	if !s.Genesis().BansAllowed() {
		return
	}
	for _, k := range s.mans[i].man.m.Banned {
		keys[k] = struct{}{}
		if add {
			n[k]++
		} else if n[k]--; n[k] <= 0 {
			delete(n, k)
		}
	}
}

// resolveBanned updates, for keys, the banned keys (listed by a head) and
// the ban-suspended ones (listed by contested manifests and by no head),
// from the counts, and returns the keys whose standing moved.
func (s *State) resolveBanned(keys map[protocol.PublicKey]struct{}) []protocol.PublicKey {
	return resolveKeys(keys, s.nHeadBans, s.nContBans, s.banned, s.banSusp)
}

// resolveRevoked updates the revoked keys (listed by accepted manifests)
// and the suspended ones (listed by contested manifests only) for keys, from
// the per-key counts of the labelling, and returns the keys whose standing
// moved.
func (s *State) resolveRevoked(keys map[protocol.PublicKey]struct{}) []protocol.PublicKey {
	return resolveKeys(keys, s.g.nAccepted, s.g.nLive, s.revoked, s.suspended)
}

// resolveKeys sets the standing of each of keys from two counts: in sure
// when sureN counts it, else in held when heldN does, else in neither. It
// returns the keys whose standing moved.
func resolveKeys(keys map[protocol.PublicKey]struct{}, sureN, heldN map[protocol.PublicKey]int, sure, held map[protocol.PublicKey]struct{}) []protocol.PublicKey {
	var moved []protocol.PublicKey
	for k := range keys {
		s1 := sureN[k] > 0
		h1 := !s1 && heldN[k] > 0
		_, s0 := sure[k]
		_, h0 := held[k]
		if s0 == s1 && h0 == h1 {
			continue
		}
		moved = append(moved, k)
		delete(sure, k)
		delete(held, k)
		if s1 {
			sure[k] = struct{}{}
		}
		if h1 {
			held[k] = struct{}{}
		}
	}
	return moved
}
