package crdt

import (
	"cmp"
	"slices"
	"strings"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Reasons a record is inert.
const (
	reasonUnknownType    = "type: not a record type this state knows"
	reasonGenesisSigners = "signers: fewer than the genesis threshold of its own association"
	reasonNoPrev         = "prev: a manifest update names no predecessor"
	reasonPrev           = "prev: names a record that is not a manifest on the chain"
	reasonVersion        = "version: not above every predecessor's version"
	reasonSigners        = "signers: fewer than a predecessor's threshold of its unrevoked association keys"
	reasonRevoked        = "author: key is revoked"
	reasonUnderNotMan    = "under: not a manifest"
	reasonTargetNotCon   = "target: not a contribution"
	reasonUnderInert     = "under: manifest is not on the chain"
	reasonNotMaintainer  = "author: not a maintainer under that manifest"
	reasonLicenceNotMan  = "licence: not a manifest"
	reasonLicenceInert   = "licence: manifest is not on the chain"
)

// reclassifyManifest classifies a manifest that has not resolved yet; once on
// the chain or inert, a manifest stays so.
func (s *State) reclassifyManifest(e *entry) {
	if e.cls == clsOK || e.cls == clsInert {
		return
	}
	c, reason, ons := s.classifyManifest(e)
	s.setClass(e, c, reason)
	s.waitAll(e, ons)
	switch c {
	case clsOK:
		s.joinChain(e)
		s.queue = append(s.queue, e.cid)
	case clsInert:
		s.queue = append(s.queue, e.cid)
	}
}

// classifyManifest applies the chain rules (see the package doc) to e. A
// waiting manifest waits for all its missing or waiting predecessors, since
// any of them may turn out not to be an on-chain manifest.
func (s *State) classifyManifest(e *entry) (class, string, []cid.Cid) {
	r, m := e.blk.Record, e.man.m
	if !r.Commons.Defined() {
		if countSigners(r, m.Association, nil) < m.Threshold {
			return clsInert, reasonGenesisSigners, nil
		}
		return clsOK, "", nil
	}
	if len(m.Prev) == 0 {
		return clsInert, reasonNoPrev, nil
	}
	var ons []cid.Cid
	for _, p := range m.Prev {
		pe := s.recs[p.Cid]
		switch {
		case pe == nil:
			ons = append(ons, p.Cid)
		case pe.man == nil || pe.cls == clsInert:
			return clsInert, reasonPrev, nil
		case pe.cls == clsWaiting:
			ons = append(ons, p.Cid)
		}
	}
	if len(ons) > 0 {
		return clsWaiting, "", ons
	}
	for _, p := range m.Prev {
		if m.Version <= s.recs[p.Cid].man.m.Version {
			return clsInert, reasonVersion, nil
		}
	}
	for _, p := range m.Prev {
		pi := s.recs[p.Cid].man
		if countSigners(r, pi.m.Association, pi.lineage) < pi.m.Threshold {
			return clsInert, reasonSigners, nil
		}
	}
	return clsOK, "", nil
}

// countSigners counts r's distinct signers that are in assoc and not in
// revoked.
func countSigners(r *protocol.Record, assoc []protocol.PublicKey, revoked map[protocol.PublicKey]struct{}) uint64 {
	var n uint64
	for i, k := range r.Signers() {
		if i > 0 && k == r.Author {
			continue // cosigs never repeat the author, but do not count on it
		}
		if _, gone := revoked[k]; gone || !slices.Contains(assoc, k) {
			continue
		}
		n++
	}
	return n
}

// joinChain does the bookkeeping for a manifest that just went on the chain:
// its lineage's revoked keys, the heads and the revoked set.
func (s *State) joinChain(e *entry) {
	m := e.man.m
	lin := make(map[protocol.PublicKey]struct{}, len(m.Revoked))
	for _, p := range m.Prev {
		for k := range s.recs[p.Cid].man.lineage {
			lin[k] = struct{}{}
		}
		delete(s.heads, p.Cid)
	}
	for _, k := range m.Revoked {
		lin[k] = struct{}{}
		if _, ok := s.revoked[k]; !ok {
			s.revoked[k] = struct{}{}
			s.fresh = append(s.fresh, k)
		}
	}
	e.man.lineage = lin
	s.heads[e.cid] = struct{}{}
	s.headOrder = s.headOrder[:0]
	for h := range s.heads {
		s.headOrder = append(s.headOrder, h)
	}
	slices.SortFunc(s.headOrder, s.resolvedFirst)
}

// resolvedFirst orders manifests by descending Version, then ascending CID.
func (s *State) resolvedFirst(a, b cid.Cid) int {
	va, vb := s.recs[a].man.m.Version, s.recs[b].man.m.Version
	if c := cmp.Compare(vb, va); c != 0 {
		return c
	}
	return strings.Compare(a.KeyString(), b.KeyString())
}
