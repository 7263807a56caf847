package crdt

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Class is how a record stands in the commons.
type Class string

// Record classes.
const (
	// ClassEffective: an accepted manifest, an eligible review, a live
	// contribution (one whose licence is accepted).
	ClassEffective Class = "effective"
	// ClassWaiting: something it links to is missing or unresolved.
	ClassWaiting Class = "waiting"
	// ClassContested: a contested manifest (SPEC §12.6).
	ClassContested Class = "contested"
	// ClassSuspended: a review whose vote a contest holds undecided
	// (SPEC §12.4); Verdict.Reason says why.
	ClassSuspended Class = "suspended"
	// ClassInert: it carries no authority; Verdict.Reason says why.
	ClassInert Class = "inert"
)

// Verdict is a record's class, and for an inert record the reason.
type Verdict struct {
	Class  Class
	Reason string
}

// ErrNoAuthority is returned by ReviewUnder when the maintainer cannot
// review the contribution under any accepted manifest.
var ErrNoAuthority = errors.New("crdt: no authority")

func verdictOf(c class, reason string) Verdict {
	switch c {
	case clsOK:
		if reason != "" { // a review set aside: its vote is none
			return Verdict{Class: ClassInert, Reason: reason}
		}
		return Verdict{Class: ClassEffective}
	case clsInert:
		return Verdict{Class: ClassInert, Reason: reason}
	case clsContested:
		return Verdict{Class: ClassContested}
	case clsSuspended:
		return Verdict{Class: ClassSuspended, Reason: reason}
	}
	return Verdict{Class: ClassWaiting}
}

// Classify says how b would stand if it were added now, by exactly the
// rules Add applies, without adding it; for a record already in the set, how
// it stands. A manifest is labelled together with every candidate already
// here, so an update that a revocation here condemns is inert, and one that
// would start a contest is contested. It returns ErrWrongCommons or
// ErrNilBlock as Add does. Records already here that wait for b are not
// considered: once b arrives they may resolve and move its class (never
// from effective to inert, since what b unlocks descends from b).
func (s *State) Classify(b *protocol.Block) (Verdict, error) {
	if err := s.check(b); err != nil {
		return Verdict{}, err
	}
	if v, ok := s.Verdict(b.CID); ok {
		return v, nil
	}
	e := newEntry(b)
	switch {
	case e.man != nil:
		return s.classifyNewManifest(b.Record, e.man.m), nil
	case e.con != nil:
		c, reason, _ := s.classifyContribution(e)
		return verdictOf(c, reason), nil
	case e.rev != nil:
		c, reason, _ := s.classifyReview(e)
		return verdictOf(c, reason), nil
	case e.ext != nil:
		c, reason, _ := s.classifyExt(e)
		return verdictOf(c, reason), nil
	}
	return verdictOf(clsInert, reasonUnknownType), nil
}

// Verdict returns how the record c, held in the set, stands: what Classify
// returns for it; false if c is not in the set.
func (s *State) Verdict(c cid.Cid) (Verdict, bool) {
	e := s.entry(c)
	if e == nil {
		return Verdict{}, false
	}
	return verdictOf(e.cls, e.reason), true
}

// classifyNewManifest labels the candidates with r added, leaving the state
// as it is.
func (s *State) classifyNewManifest(r *protocol.Record, m *protocol.Manifest) Verdict {
	switch st, reason, _ := s.classifyManifest(r, m); st {
	case manPending:
		return verdictOf(clsWaiting, "")
	case manBad:
		return verdictOf(clsInert, reason)
	}
	ord := len(s.mans)
	mi := s.candidate(r, m, ord)
	g := graph{
		ms: append(slices.Clip(s.g.ms), mi), lab: slices.Clone(s.g.lab),
		revokers: s.g.revokers, needers: s.g.needers, extra: mi,
		nAccepted: maps.Clone(s.g.nAccepted), nLive: maps.Clone(s.g.nLive),
	}
	g.addLabel(mi)
	g.ground(g.closure([]int{ord}))
	switch g.lab[ord] {
	case accepted:
		return verdictOf(clsOK, "")
	case rejected:
		return verdictOf(clsInert, g.rejectReason(ord))
	}
	return verdictOf(clsContested, "")
}

// ReviewUnder returns the manifest a maintainer's review of contribution c
// should name to count: an accepted manifest that lists the maintainer and
// is the version c assented to or a later one. It prefers the resolved head,
// then the other heads, then the accepted manifest with the largest past
// (then the lowest CID). It returns an error wrapping ErrNoAuthority when
// there is none, or c is not a live contribution, naming why.
func (s *State) ReviewUnder(c cid.Cid, maintainer protocol.PublicKey) (cid.Cid, error) {
	t := s.entry(c)
	switch {
	case s.err != nil:
		return cid.Undef, s.err
	case t == nil || t.con == nil:
		return cid.Undef, fmt.Errorf("%w: %s is not a contribution of this commons", ErrNoAuthority, c)
	case t.cls == clsWaiting:
		return cid.Undef, fmt.Errorf("%w: contribution %s waits for the manifest it assents to", ErrNoAuthority, c)
	case t.cls != clsOK:
		return cid.Undef, fmt.Errorf("%w: contribution %s is inert (%s)", ErrNoAuthority, c, t.reason)
	}
	lic := t.con.licence
	lord := s.mfs[lic].man.ord
	fits := func(e *entry) bool {
		if e.cls != clsOK || !e.man.anc.has(lord) {
			return false
		}
		_, _, ok := s.slotIn(e.man.m, maintainer)
		return ok
	}
	for _, h := range s.headOrder {
		if e := s.mans[h]; fits(e) {
			return e.cid, nil
		}
	}
	var best *entry
	for _, e := range s.mans {
		if fits(e) && (best == nil || e.man.depth > best.man.depth ||
			e.man.depth == best.man.depth && compareCID(e.cid, best.cid) < 0) {
			best = e
		}
	}
	if best == nil {
		return cid.Undef, fmt.Errorf("%w: key %s is not a maintainer in manifest %s, which contribution %s assented to, nor in any later accepted version (nor does it stand for one there through a rotation)", ErrNoAuthority, maintainer, lic, c)
	}
	return best.cid, nil
}

// actUnder returns the manifest under which r, an act of the association
// (an acknowledgement of a pledge to it, a resolution, a certificate), is
// signed.
func actUnder(r *protocol.Record) (cid.Cid, bool) {
	switch body := r.Body.(type) {
	case *protocol.Acknowledgement:
		if body.Under != nil {
			return body.Under.Cid, true
		}
	case *protocol.Resolution:
		return body.Under.Cid, true
	case *protocol.Certificate:
		return body.Under.Cid, true
	}
	return cid.Undef, false
}

// ClassifyDraft classifies a manifest as Classify would once every key of
// its predecessors' associations (for a genesis, of its own) had co-signed
// it: whether a draft
// can ever take effect, whoever still has to sign. A draft that is inert
// even so (it builds on a rejected version, its version is not above its
// predecessors', a revocation here condemns it) should not be passed round
// for signatures. An acknowledgement of a pledge to the association is
// classified as if every key of its Under's association had co-signed it,
// and so are a resolution and a certificate; a rotation as if its
// successor had.
// Any other record is classified as by Classify.
func (s *State) ClassifyDraft(b *protocol.Block) (Verdict, error) {
	if err := s.check(b); err != nil {
		return Verdict{}, err
	}
	if under, ok := actUnder(b.Record); ok && !s.has(b.CID) {
		// The association's act, once every key of its manifest's
		// association has co-signed it.
		if u := s.mfs[under]; u != nil {
			r := *b.Record
			r.Cosigs = slices.Clone(r.Cosigs)
			for _, k := range u.man.m.Association {
				if !slices.Contains(r.Signers(), k) {
					r.Cosigs = append(r.Cosigs, protocol.Cosig{Key: k})
				}
			}
			return s.Classify(&protocol.Block{CID: b.CID, Raw: b.Raw, Record: &r})
		}
	}
	if x := b.Record.Rotation(); x != nil && len(b.Record.Cosigs) == 0 && !s.has(b.CID) {
		// A rotation, once its successor has co-signed it.
		r := *b.Record
		r.Cosigs = []protocol.Cosig{{Key: x.Successor}}
		return s.Classify(&protocol.Block{CID: b.CID, Raw: b.Raw, Record: &r})
	}
	m := b.Record.Manifest()
	if e := s.entry(b.CID); m == nil || e != nil && e.man != nil && e.man.st == manCand {
		return s.Classify(b)
	}
	// Not here, or here short of signatures (someone published the
	// half-signed draft): what would its fully signed form be?
	r := *b.Record
	r.Cosigs = slices.Clone(r.Cosigs)
	sign := func(assoc []protocol.PublicKey) {
		for _, k := range assoc {
			if !slices.Contains(r.Signers(), k) {
				r.Cosigs = append(r.Cosigs, protocol.Cosig{Key: k})
			}
		}
	}
	if r.IsGenesis() {
		sign(m.Association)
	}
	for _, p := range m.Prev {
		if pe := s.mfs[p.Cid]; pe != nil {
			sign(pe.man.m.Association)
		}
	}
	return s.classifyNewManifest(&r, m), nil
}

// RulesVersion numbers the authority rules this package applies (SPEC §12).
// It grows whenever a change to the rules can classify a stored record
// differently, so that a node can tell that its derived state was computed
// under other rules. Version 1 resolved forks by version and revoked only in
// a manifest's lineage; version 2 is the grounded labelling; version 4
// adds the banned keys (version 3 had them the union over the accepted
// manifests).
const RulesVersion = 4
