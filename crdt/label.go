package crdt

import (
	"math/bits"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// graph is what the labelling reads of the candidates: the state's own, or
// the state's and one hypothetical candidate (Classify), whose labels are
// then worked out on a copy.
//
// No attack is stored: R attacks M when R revokes a key M counts and M is
// not in R's past, so the labelling finds M's attackers through the
// candidates revoking each key M counts, and the candidates R attacks
// through those counting each key R revokes. What a candidate costs in
// memory is thus its own keys and revocations, not the pairs they make.
type graph struct {
	ms       []*manInfo                   // by ordinal
	lab      []label                      // the labels being worked out
	revokers map[protocol.PublicKey][]int // candidates revoking each key
	needers  map[protocol.PublicKey][]int // candidates counting each key
	extra    *manInfo                     // a hypothetical last candidate, or nil
	in       []uint32                     // in[i] == gen: i is in the closure being labelled
	gen      uint32

	// Per key, how many of the candidates revoking it are accepted, and
	// how many are not rejected: most questions "is k revoked against i"
	// are answered by a zero, without looking at the revokers.
	nAccepted map[protocol.PublicKey]int
	nLive     map[protocol.PublicKey]int
}

// setLabel sets candidate i's label, keeping the per-key counts.
func (g *graph) setLabel(i int, l label) {
	old := g.lab[i]
	if old == l {
		return
	}
	for _, k := range g.ms[i].m.Revoked {
		if old == accepted {
			g.nAccepted[k]--
		}
		if old == rejected {
			g.nLive[k]++
		}
		if l == accepted {
			g.nAccepted[k]++
		}
		if l == rejected {
			g.nLive[k]--
		}
	}
	g.lab[i] = l
}

// addLabel counts a new candidate, undecided.
func (g *graph) addLabel(mi *manInfo) {
	g.lab = append(g.lab, undecided)
	for _, k := range mi.m.Revoked {
		g.nLive[k]++
	}
}

func (g *graph) revokersOf(k protocol.PublicKey) []int {
	rs := g.revokers[k]
	if g.extra != nil && slices.Contains(g.extra.m.Revoked, k) {
		rs = append(slices.Clip(rs), g.extra.ord)
	}
	return rs
}

func (g *graph) needersOf(k protocol.PublicKey) []int {
	ns := g.needers[k]
	if g.extra != nil && slices.Contains(g.extra.keys, k) {
		ns = append(slices.Clip(ns), g.extra.ord)
	}
	return ns
}

func (g *graph) childrenOf(i int) []int {
	cs := g.ms[i].children
	if g.extra != nil && slices.Contains(g.extra.preds, i) {
		cs = append(slices.Clip(cs), g.extra.ord)
	}
	return cs
}

func (g *graph) inClosure(i int) bool { return i < len(g.in) && g.in[i] == g.gen }

// closure returns the candidates whose label may depend on seeds': the
// seeds, and again and again the children of each and the candidates each
// attacks. Every other candidate keeps its label (grounded labels depend
// only on what attacks or precedes a candidate).
func (g *graph) closure(seeds []int) []int {
	g.gen++
	if g.gen == 0 { // wrapped: forget every old mark
		clear(g.in)
		g.gen = 1
	}
	for len(g.in) < len(g.ms) {
		g.in = append(g.in, 0)
	}
	var out []int
	add := func(i int) {
		if g.in[i] != g.gen {
			g.in[i] = g.gen
			out = append(out, i)
		}
	}
	for _, i := range seeds {
		add(i)
	}
	// The candidates a revoker of k attacks are those counting k outside
	// its past. Per key, keep the intersection of the pasts of the revokers
	// expanded so far: the needers already added are all those outside it,
	// so a further revoker adds only the needers that leave it (those in
	// the intersection but not in its own past), found by the bits that
	// drop, not by walking every needer again.
	inter := map[protocol.PublicKey]bitset{}
	owned := map[protocol.PublicKey]bool{} // inter[k] is a copy, not a revoker's own past
	for h := 0; h < len(out); h++ {
		i := out[h]
		for _, c := range g.childrenOf(i) {
			add(c)
		}
		anc := g.ms[i].anc
		for _, k := range g.ms[i].m.Revoked {
			prev, seen := inter[k]
			if !seen {
				for _, j := range g.needersOf(k) {
					if !anc.has(j) {
						add(j)
					}
				}
				inter[k] = anc // copied only if another revoker of k narrows it
				continue
			}
			if !owned[k] {
				prev = slices.Clone(prev)
				inter[k], owned[k] = prev, true
			}
			for w := range prev {
				var keep uint64
				if w < len(anc) {
					keep = anc[w]
				}
				for dropped := prev[w] &^ keep; dropped != 0; dropped &= dropped - 1 {
					if j := w*64 + bits.TrailingZeros64(dropped); j < len(g.ms) && slices.Contains(g.ms[j].keys, k) {
						add(j)
					}
				}
				prev[w] &= keep
			}
		}
	}
	slices.Sort(out) // ordinal order: predecessors first
	return out
}

// ground labels the closure cl by the grounded semantics (SPEC §12.2),
// the other candidates' labels fixed: from all undecided, a candidate
// becomes accepted once its predecessors are accepted and it meets their
// thresholds without the keys revoked by its attackers that are not
// rejected, and rejected once a predecessor is rejected or it falls short
// without the keys revoked by its accepted attackers. A candidate is
// examined again when a predecessor is decided, or when a candidate
// revoking one of its keys is decided (found per key, once per round).
func (g *graph) ground(cl []int) {
	for _, i := range cl {
		g.setLabel(i, undecided)
	}
	queue := slices.Clone(cl)
	dirty := map[protocol.PublicKey]struct{}{}
	for len(queue) > 0 {
		for h := 0; h < len(queue); h++ {
			i := queue[h]
			if g.lab[i] != undecided {
				continue
			}
			l := g.decide(i)
			if l == undecided {
				continue
			}
			g.setLabel(i, l)
			for _, c := range g.childrenOf(i) {
				if g.inClosure(c) && g.lab[c] == undecided {
					queue = append(queue, c)
				}
			}
			for _, k := range g.ms[i].m.Revoked {
				dirty[k] = struct{}{}
			}
		}
		queue = queue[:0]
		for k := range dirty {
			for _, j := range g.needersOf(k) {
				if g.inClosure(j) && g.lab[j] == undecided {
					queue = append(queue, j)
				}
			}
		}
		clear(dirty)
	}
}

// decide applies the two labelling rules to candidate i.
func (g *graph) decide(i int) label {
	m := g.ms[i]
	allIn := true
	for _, p := range m.preds {
		switch g.lab[p] {
		case rejected:
			return rejected
		case undecided:
			allIn = false
		}
	}
	if !meets(m.reqs, func(k protocol.PublicKey) bool { return g.revokedAgainst(i, k, true) }) {
		return rejected
	}
	if allIn && meets(m.reqs, func(k protocol.PublicKey) bool { return g.revokedAgainst(i, k, false) }) {
		return accepted
	}
	return undecided
}

// revokedAgainst reports whether a candidate that does not have i in its
// past revokes k and is accepted (onlyAccepted), or is not rejected.
func (g *graph) revokedAgainst(i int, k protocol.PublicKey, onlyAccepted bool) bool {
	if onlyAccepted && g.nAccepted[k] == 0 || g.nLive[k] == 0 {
		return false
	}
	for _, r := range g.revokersOf(k) {
		l := g.lab[r]
		if (l == accepted || !onlyAccepted && l == undecided) && !g.ms[r].anc.has(i) {
			return true
		}
	}
	return false
}

// attackers returns up to max candidates that attack i and are not
// rejected, those with the lowest CIDs (cid gives a candidate's CID), and
// how many there are in all.
func (g *graph) attackers(i, max int, cidOf func(int) cid.Cid) ([]int, int) {
	seen := map[int]bool{}
	var out []int
	less := func(a, b int) int { return compareCID(cidOf(a), cidOf(b)) }
	for _, k := range g.ms[i].keys {
		for _, r := range g.revokersOf(k) {
			if seen[r] || g.lab[r] == rejected || g.ms[r].anc.has(i) {
				continue
			}
			seen[r] = true
			if len(out) == max && less(r, out[max-1]) > 0 {
				continue
			}
			j, _ := slices.BinarySearchFunc(out, r, less)
			out = slices.Insert(out, j, r)
			if len(out) > max {
				out = out[:max]
			}
		}
	}
	return out, len(seen)
}

// rejectReason says why a rejected candidate is rejected.
func (g *graph) rejectReason(i int) string {
	for _, p := range g.ms[i].preds {
		if g.lab[p] == rejected {
			return reasonPrevRejected
		}
	}
	return reasonSignersRevoked
}
