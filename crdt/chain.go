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

// attackersOf returns the candidates (among s.mans) that attack a manifest
// needing keys and outside their past, which is candidate ord.
func (s *State) attackersOf(keys []protocol.PublicKey, ord int) []int {
	var out []int
	for _, k := range keys {
		for _, r := range s.byRevoker[k] {
			if r.man.ord != ord && !r.man.anc.has(ord) && !slices.Contains(out, r.man.ord) {
				out = append(out, r.man.ord)
			}
		}
	}
	return out
}

// targetsOf returns the candidates (among s.mans) that a manifest revoking
// revoked, with past anc, attacks.
func (s *State) targetsOf(revoked []protocol.PublicKey, anc bitset) []*entry {
	var out []*entry
	for _, k := range revoked {
		for _, x := range s.bySigner[k] {
			if !anc.has(x.man.ord) && !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	return out
}

// addCandidate gives a new candidate its ordinal, past and attack edges,
// and asks for a relabel.
func (s *State) addCandidate(e *entry) {
	ord := len(s.mans)
	mi := s.candidate(e.blk.Record, e.man.m, ord)
	mi.attackers = s.attackersOf(mi.keys, ord)
	for _, x := range s.targetsOf(mi.m.Revoked, mi.anc) {
		x.man.attackers = append(x.man.attackers, ord)
	}
	e.man = mi
	s.mans = append(s.mans, e)
	for _, k := range mi.keys {
		s.bySigner[k] = append(s.bySigner[k], e)
	}
	for _, k := range mi.m.Revoked {
		s.byRevoker[k] = append(s.byRevoker[k], e)
	}
	s.relabelPending = true
}

// ground computes the grounded labelling of the candidates (SPEC §12.2):
// from all undecided, a candidate becomes accepted once its predecessors
// are accepted and it meets their thresholds without the keys revoked by
// its attackers that are not rejected, and rejected once a predecessor is
// rejected or it falls short without the keys revoked by its accepted
// attackers. Each candidate is re-examined when a predecessor or an
// attacker is decided, so the cost is linear in candidates and edges.
func ground(ms []*manInfo) []label {
	lab := make([]label, len(ms))
	deps := make([][]int, len(ms))
	for i, m := range ms {
		for _, p := range m.preds {
			deps[p] = append(deps[p], i)
		}
		for _, a := range m.attackers {
			deps[a] = append(deps[a], i)
		}
	}
	queue := make([]int, len(ms))
	for i := range queue {
		queue[i] = i
	}
	for h := 0; h < len(queue); h++ {
		i := queue[h]
		if lab[i] != undecided {
			continue
		}
		if lab[i] = decideLabel(ms, lab, i); lab[i] != undecided {
			queue = append(queue, deps[i]...)
		}
	}
	return lab
}

// decideLabel applies the two labelling rules to candidate i.
func decideLabel(ms []*manInfo, lab []label, i int) label {
	m := ms[i]
	allIn := true
	for _, p := range m.preds {
		switch lab[p] {
		case rejected:
			return rejected
		case undecided:
			allIn = false
		}
	}
	revokedBy := func(ok func(label) bool) func(protocol.PublicKey) bool {
		return func(k protocol.PublicKey) bool {
			for _, a := range m.attackers {
				if ok(lab[a]) && slices.Contains(ms[a].m.Revoked, k) {
					return true
				}
			}
			return false
		}
	}
	if !meets(m.reqs, revokedBy(func(l label) bool { return l == accepted })) {
		return rejected
	}
	if allIn && meets(m.reqs, revokedBy(func(l label) bool { return l != rejected })) {
		return accepted
	}
	return undecided
}

// rejectReason says why a rejected candidate is rejected.
func rejectReason(ms []*manInfo, lab []label, i int) string {
	for _, p := range ms[i].preds {
		if lab[p] == rejected {
			return reasonPrevRejected
		}
	}
	return reasonSignersRevoked
}

// infos returns the candidates' labelling data, by ordinal.
func (s *State) infos() []*manInfo {
	out := make([]*manInfo, len(s.mans))
	for i, e := range s.mans {
		out[i] = e.man
	}
	return out
}

// relabel recomputes the labelling after new candidates and carries every
// change through: heads, the revoked keys, and the contributions and
// reviews that name a manifest whose label moved or are by a key whose
// revocation did.
func (s *State) relabel() {
	ms := s.infos()
	lab := ground(ms)
	var changed []*entry
	for i, e := range s.mans {
		if e.man.labelled && e.man.label == lab[i] {
			if lab[i] == rejected {
				e.reason = rejectReason(ms, lab, i) // its cause may have moved
			}
			continue
		}
		e.man.label, e.man.labelled = lab[i], true
		switch lab[i] {
		case accepted:
			s.setClass(e, clsOK, "")
		case rejected:
			s.setClass(e, clsInert, rejectReason(ms, lab, i))
		default:
			s.setClass(e, clsContested, "")
		}
		changed = append(changed, e)
	}
	if len(changed) == 0 {
		return
	}
	s.resolveHeads()
	moved := s.resolveRevoked()
	for _, e := range changed {
		for _, c := range s.byLicence[e.cid] {
			s.reclassifyContribution(c)
		}
		for _, r := range s.byUnder[e.cid] {
			s.reclassifyReview(r)
		}
	}
	if len(moved) > 0 {
		s.rescanAuthors(moved)
	}
}

// resolveHeads recomputes the heads: accepted manifests no accepted
// manifest names in Prev, resolved first.
func (s *State) resolveHeads() {
	named := map[int]bool{}
	for _, e := range s.mans {
		if e.man.label == accepted {
			for _, p := range e.man.preds {
				named[p] = true
			}
		}
	}
	s.headOrder = s.headOrder[:0]
	for _, e := range s.mans {
		if e.man.label == accepted && !named[e.man.ord] {
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
	for _, e := range s.mans {
		if e.man.labelled && e.man.label == accepted {
			for _, k := range e.man.m.Revoked {
				rev[k] = struct{}{}
			}
		}
	}
	for _, e := range s.mans {
		if e.man.labelled && e.man.label == undecided {
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
