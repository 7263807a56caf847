package crdt

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"
)

// The attacker's generator. Keys 0 and 1 are honest association members
// and maintainers; keys 2 and 3 are compromised (association members and
// maintainers until the honest chain revokes them); key 4 is a maintainer
// the association removes at some version and who then tries to act anyway;
// key 5 contributes. The honest side keeps one linear chain from the
// genesis, revokes 2 and 3 in one version (R), removes 4 in one version,
// and reviews as an honest node would. The attacker forks from any manifest
// with any version (up to 2^64-1), appoints itself, revokes keys, and
// reviews under any version with times far ahead; key 4 reviews under the
// old versions that still list it.
const (
	keyRogue       = 4
	keyContributor = 5
)

var (
	honestKeys = []int{0, 1}
	stolenKeys = []int{2, 3}
)

type attack struct {
	t  *rapid.T
	id cid.Cid
	// contest: the attacker may revoke honest keys too (which can start a
	// contest); otherwise it revokes none.
	contest bool

	chain   []*protocol.Block // the genesis and the honest versions, in order
	revokes int               // index in chain of the version that revokes 2 and 3
	removes int               // index in chain of the version that removes key 4
	forged  []*protocol.Block // the attacker's manifests
	cons    []*protocol.Block // every contribution
	honest  []*protocol.Block // honest reviews
	rogue   []*protocol.Block // key 4's reviews
	stolen  []*protocol.Block // reviews by keys 2 and 3
	now     protocol.HLC
}

func drawAttack(t *rapid.T) *attack {
	a := &attack{t: t, contest: rapid.Bool().Draw(t, "contest")}
	a.honestChain()
	steps := rapid.IntRange(4, 24).Draw(t, "steps")
	for range steps {
		switch k := rapid.IntRange(0, 9).Draw(t, "kind"); {
		case k <= 1:
			a.forge()
		case k <= 3:
			a.contribute()
		case k <= 5:
			a.honestReview()
		case k <= 7:
			a.stolenReview()
		default:
			a.rogueReview()
		}
	}
	return a
}

func (a *attack) tick() protocol.HLC { a.now += 10; return a.now }

// when draws a review's or forgery's time: now, or far ahead.
func (a *attack) when() protocol.HLC {
	if rapid.IntRange(0, 3).Draw(a.t, "ahead") == 0 {
		return protocol.HLC(1<<40 + rapid.Uint64Range(0, 5).Draw(a.t, "aheadBy"))
	}
	return a.tick()
}

func (a *attack) honestChain() {
	n := rapid.IntRange(1, 4).Draw(a.t, "versions")
	a.revokes = rapid.IntRange(1, n).Draw(a.t, "revokes")
	a.removes = rapid.IntRange(1, n).Draw(a.t, "removes")
	for i := 0; i <= n; i++ {
		assoc, maint := slices.Clone(honestKeys), slices.Clone(honestKeys)
		if i < a.revokes {
			assoc = append(assoc, stolenKeys...)
			maint = append(maint, stolenKeys...)
		}
		if i < a.removes {
			maint = append(maint, keyRogue)
		}
		m := manifest(assoc, rapid.Uint64Range(1, 2).Draw(a.t, "threshold"), maint, 0, 0)
		m.Quorum = rapid.Uint64Range(1, min(3, uint64(len(maint)))).Draw(a.t, "quorum")
		m.RejectQuorum = rapid.Uint64Range(1, min(3, uint64(len(maint)))).Draw(a.t, "rejectQuorum")
		if i >= a.revokes {
			m.Revoked = pubs(stolenKeys...)
		}
		if i == 0 {
			g := genesisBlock(a.t, m, 0, 1)
			a.id = g.CID
			a.chain = append(a.chain, g)
			continue
		}
		a.chain = append(a.chain, update(a.t, a.id, a.tick(), m, uint64(i), []cid.Cid{a.chain[i-1].CID}, 0, 1))
	}
}

func (a *attack) manifests() []*protocol.Block { return append(slices.Clone(a.chain), a.forged...) }

// forge makes an attacker manifest: signed by the stolen keys, from any
// manifest, with any version, appointing the attacker.
func (a *attack) forge() {
	prev := rapid.SliceOfNDistinct(rapid.SampledFrom(a.manifests()), 1, 2, func(b *protocol.Block) string { return b.CID.KeyString() }).Draw(a.t, "forkFrom")
	var cs []cid.Cid
	var maxV uint64
	for _, p := range prev {
		cs = append(cs, p.CID)
		maxV = max(maxV, p.Record.Manifest().Version)
	}
	next := maxV + 1
	if maxV == math.MaxUint64 {
		next = maxV // no version is above it: the forgery is inert
	}
	v := rapid.SampledFrom([]uint64{next, 1000, 1 << 63, math.MaxUint64}).Draw(a.t, "version")
	assoc := slices.Clone(stolenKeys)
	if rapid.Bool().Draw(a.t, "keepHonest") {
		assoc = append(assoc, honestKeys...)
	}
	maint := slices.Clone(stolenKeys)
	if rapid.Bool().Draw(a.t, "keepRogue") {
		maint = append(maint, keyRogue)
	}
	m := manifest(assoc, rapid.Uint64Range(1, 2).Draw(a.t, "forgedThreshold"), maint, 1, 1)
	pool := append(slices.Clone(stolenKeys), keyRogue)
	if a.contest {
		pool = append(pool, honestKeys...)
	}
	if rk := rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, len(pool), rapid.ID[int]).Draw(a.t, "forgedRevokes"); len(rk) > 0 {
		m.Revoked = pubs(rk...)
	}
	a.forged = append(a.forged, update(a.t, a.id, a.when(), m, v, cs, stolenKeys[0], stolenKeys[1]))
}

func (a *attack) contribute() {
	lic := rapid.SampledFrom(a.chain).Draw(a.t, "licence")
	if len(a.forged) > 0 && rapid.IntRange(0, 4).Draw(a.t, "forgedLicence") == 0 {
		lic = rapid.SampledFrom(a.forged).Draw(a.t, "forgedLic")
	}
	author := rapid.SampledFrom([]int{keyContributor, keyContributor, stolenKeys[0]}).Draw(a.t, "contributor")
	a.cons = append(a.cons, contribution(a.t, a.id, lic.CID, a.tick(), author, fmt.Sprint("c", len(a.cons))))
}

func (a *attack) target() *protocol.Block {
	if len(a.cons) == 0 {
		a.contribute()
	}
	return rapid.SampledFrom(a.cons).Draw(a.t, "target")
}

func (a *attack) decision() string {
	return rapid.SampledFrom([]string{protocol.DecisionAccept, protocol.DecisionAccept, protocol.DecisionReject, protocol.DecisionRetract}).Draw(a.t, "decision")
}

// honestReview reviews as an honest node does: under the contribution's
// licence or a later honest version.
func (a *attack) honestReview() {
	c := a.target()
	from := slices.IndexFunc(a.chain, func(b *protocol.Block) bool { return b.CID == c.Record.Contribution().Licence.Cid })
	under := rapid.SampledFrom(a.chain[max(from, 0):]).Draw(a.t, "honestUnder")
	by := rapid.SampledFrom(honestKeys).Draw(a.t, "reviewer")
	a.honest = append(a.honest, review(a.t, a.id, c.CID, under.CID, a.tick(), by, a.decision()))
}

// stolenReview reviews with a stolen key under any manifest.
func (a *attack) stolenReview() {
	c := a.target()
	under := rapid.SampledFrom(a.manifests()).Draw(a.t, "stolenUnder")
	by := rapid.SampledFrom(stolenKeys).Draw(a.t, "thief")
	a.stolen = append(a.stolen, review(a.t, a.id, c.CID, under.CID, a.when(), by, a.decision()))
}

// rogueReview reviews with the removed maintainer's key, under a version
// that lists it (an old one, or a forgery).
func (a *attack) rogueReview() {
	var lists []*protocol.Block
	for _, m := range a.manifests() {
		if m.Record.Manifest().IsMaintainer(key(keyRogue).Public()) {
			lists = append(lists, m)
		}
	}
	c := a.target()
	under := rapid.SampledFrom(lists).Draw(a.t, "rogueUnder")
	a.rogue = append(a.rogue, review(a.t, a.id, c.CID, under.CID, a.when(), keyRogue, a.decision()))
}

// all returns every record; honestWorld the records without the attacker's
// manifests and reviews (contributions are open input: all are kept).
func (a *attack) all() []*protocol.Block {
	return slices.Concat(a.chain, a.forged, a.cons, a.honest, a.rogue, a.stolen)
}

func (a *attack) honestWorld() []*protocol.Block {
	return slices.Concat(a.chain, a.cons, a.honest, a.rogue)
}

func (a *attack) withoutRogue() []*protocol.Block {
	return slices.Concat(a.chain, a.forged, a.cons, a.honest, a.stolen)
}

func (a *attack) chainIndex(c cid.Cid) int {
	return slices.IndexFunc(a.chain, func(b *protocol.Block) bool { return b.CID == c })
}

// shuffled builds a state from bs in a drawn order, with duplicates.
func shuffled(t *rapid.T, id cid.Cid, bs []*protocol.Block, label string) *State {
	perm := rapid.Permutation(bs).Draw(t, label)
	perm = append(perm, rapid.SliceOfN(rapid.SampledFrom(bs), 0, 3).Draw(t, label+"Dups")...)
	return build(t, id, perm)
}

// TestAttackerHoldingKeys checks, for every history the attacker's
// generator draws, properties stated from the records alone:
//
//   - the chain is sound (checkSound);
//   - no manifest the attacker forged is on the chain, no honest version is
//     rejected, no honest key is revoked, and the head is honest;
//   - whatever differs from the honest world (the same records without the
//     attacker's manifests and reviews) is visible: a contested manifest,
//     and for a contribution a status held pending, never another
//     decision;
//   - with no contest, the state is the honest world's: head, chain,
//     revoked keys and every status; and an attacker that revokes no honest
//     key never starts a contest;
//   - removal binds new work: the removed maintainer's reviews change no
//     status of a contribution made under the removing version or a later
//     one, and those it made under a version that lists it, of a
//     contribution made under that version or an earlier one, still count;
//   - the order of arrival changes nothing.
func TestAttackerHoldingKeys(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := drawAttack(t)
		full := shuffled(t, a.id, a.all(), "order")
		honest := shuffled(t, a.id, a.honestWorld(), "honestOrder")
		checkSound(t, full, a.all())
		if d := snap(shuffled(t, a.id, a.all(), "order2")).diff(snap(full)); d != "" {
			t.Fatalf("another order gives another state:\n%s", d)
		}
		contested := len(full.ContestedManifests()) > 0

		for _, f := range a.forged {
			if full.OnChain(f.CID) {
				t.Fatalf("forged manifest %s (version %d) is on the chain", f.CID, f.Record.Manifest().Version)
			}
		}
		for i, m := range a.chain {
			if !full.OnChain(m.CID) && !full.Contested(m.CID) {
				t.Fatalf("honest version %d (%s) is neither accepted nor contested", i, m.CID)
			}
		}
		for _, k := range full.Revoked() {
			if slices.Contains(pubs(honestKeys...), k) {
				t.Fatalf("honest key %s is revoked", k)
			}
		}
		head, _ := full.Head()
		if a.chainIndex(head) < 0 {
			t.Fatalf("head %s is not an honest version", head)
		}
		if hh, _ := honest.Head(); head != hh && !contested {
			t.Fatalf("head %s, honest world's %s, and nothing contested", head, hh)
		}
		if !a.contest && contested {
			t.Fatalf("an attacker that revokes no honest key started a contest: %v", full.ContestedManifests())
		}
		for _, c := range a.cons {
			got, _ := viewOf(t, full, c.CID)
			want, _ := viewOf(t, honest, c.CID)
			if got.Status == want.Status {
				continue
			}
			if !contested || got.Status != StatusPending || !got.Held {
				t.Fatalf("contribution %s: %s (held %v, inert %q), honest world's %s; contested manifests: %d",
					c.CID, got.Status, got.Held, got.Inert, want.Status, len(full.ContestedManifests()))
			}
		}
		if !contested {
			if d := snapChain(full).diff(snapChain(honest)); d != "" {
				t.Fatalf("no contest, yet the chain differs from the honest world's:\n%s", d)
			}
		}
		a.checkRemoval(t, full, contested)
	})
}

// checkRemoval checks that removal binds new work and is not retroactive.
func (a *attack) checkRemoval(t *rapid.T, full *State, contested bool) {
	without := shuffled(t, a.id, a.withoutRogue(), "withoutRogue")
	for _, c := range a.cons {
		li := a.chainIndex(c.Record.Contribution().Licence.Cid)
		if li < a.removes {
			continue
		}
		got, _ := viewOf(t, full, c.CID)
		want, _ := viewOf(t, without, c.CID)
		if got.Status != want.Status && (!contested || got.Status != StatusPending) {
			t.Fatalf("contribution %s made under version %d (the removal is at %d): %s with the removed maintainer's reviews, %s without",
				c.CID, li, a.removes, got.Status, want.Status)
		}
	}
	if contested {
		return
	}
	for _, r := range a.rogue {
		v := r.Record.Review()
		ui := a.chainIndex(v.Under.Cid)
		tgt := recordOf(t, full, v.Target.Cid)
		li := a.chainIndex(tgt.Record.Contribution().Licence.Cid)
		if ui < 0 || li < 0 || li > ui {
			continue
		}
		cv, _ := viewOf(t, full, v.Target.Cid)
		for _, rv := range cv.Reviews {
			if rv.CID == r.CID && rv.Inert != "" {
				t.Fatalf("the removed maintainer's review under version %d (which lists it) of a contribution made under version %d is inert: %s", ui, li, rv.Inert)
			}
		}
	}
}

// chainSnap is the manifest chain as the state reports it.
type chainSnap = snapshot

func snapChain(s *State) snapshot {
	full := snap(s)
	return snapshot{Head: full.Head, Forks: full.Forks, OnChain: full.OnChain, Revoked: full.Revoked, Status: full.Status}
}

// checkSound checks the state against the records from first principles,
// whatever history produced them:
//
//   - every accepted manifest other than the genesis has accepted
//     predecessors and meets every predecessor's threshold without the keys
//     revoked by the accepted manifests that do not have it in their past;
//   - the head is accepted and no accepted manifest names it in prev;
//   - the revoked keys are exactly those listed by accepted manifests;
//   - a review that counts is by a key not revoked, names an accepted
//     version that lists its author and has the contribution's licence in
//     its past;
//   - an accepted or rejected contribution assented to an accepted version,
//     and the counting reviews meet that decision's quorum for some
//     version (and for an acceptance, no reject quorum).
func checkSound(t fataler, s *State, records []*protocol.Block) {
	t.Helper()
	set := map[cid.Cid]*protocol.Block{}
	for _, b := range records {
		set[b.CID] = b
	}
	past := func(c cid.Cid) map[cid.Cid]bool {
		out := map[cid.Cid]bool{}
		var walk func(cid.Cid)
		walk = func(x cid.Cid) {
			if out[x] || set[x] == nil || set[x].Record.Manifest() == nil {
				return
			}
			out[x] = true
			for _, p := range set[x].Record.Manifest().Prev {
				walk(p.Cid)
			}
		}
		walk(c)
		return out
	}
	accepted := map[cid.Cid]bool{}
	revoked := map[protocol.PublicKey]bool{}
	for _, v := range s.History() {
		accepted[v.CID] = true
		for _, k := range v.Manifest.Revoked {
			revoked[k] = true
		}
	}
	for c := range accepted {
		r := set[c].Record
		gone := map[protocol.PublicKey]bool{}
		for x := range accepted {
			if !past(x)[c] {
				for _, k := range set[x].Record.Manifest().Revoked {
					gone[k] = true
				}
			}
		}
		for _, p := range r.Manifest().Prev {
			if !accepted[p.Cid] {
				t.Fatalf("accepted %s names %s, which is not accepted", c, p.Cid)
			}
			pm := set[p.Cid].Record.Manifest()
			var n uint64
			for _, k := range signersIn(r, pm.Association) {
				if !gone[k] {
					n++
				}
			}
			if n < pm.Threshold {
				t.Fatalf("accepted %s has %d unrevoked signers of %s's association, which needs %d", c, n, p.Cid, pm.Threshold)
			}
		}
		if !r.Commons.Defined() && countSigners(r, r.Manifest().Association) < r.Manifest().Threshold {
			t.Fatalf("accepted genesis %s is short of its threshold", c)
		}
	}
	if h, _ := s.Head(); len(accepted) > 0 {
		if !accepted[h] {
			t.Fatalf("head %s is not accepted", h)
		}
		for c := range accepted {
			if slices.ContainsFunc(set[c].Record.Manifest().Prev, func(l protocol.Link) bool { return l.Cid == h }) {
				t.Fatalf("head %s is superseded by accepted %s", h, c)
			}
		}
	}
	got := s.Revoked()
	if len(got) != len(revoked) {
		t.Fatalf("revoked %v, accepted manifests list %d keys", got, len(revoked))
	}
	for _, k := range got {
		if !revoked[k] {
			t.Fatalf("key %s is revoked, but no accepted manifest lists it", k)
		}
	}
	for _, c := range viewsOf(t, s) {
		checkSoundContribution(t, s, set, c, accepted, revoked, past)
	}
}

func checkSoundContribution(t fataler, s *State, set map[cid.Cid]*protocol.Block, c ContributionView,
	accepted map[cid.Cid]bool, revoked map[protocol.PublicKey]bool, past func(cid.Cid) map[cid.Cid]bool) {
	t.Helper()
	acc, rej := map[cid.Cid]uint64{}, map[cid.Cid]uint64{}
	for _, r := range c.Reviews {
		if !r.Counts {
			continue
		}
		u := set[r.Under]
		switch {
		case revoked[r.Maintainer]:
			t.Fatalf("review %s by revoked key %s counts", r.CID, r.Maintainer)
		case !accepted[r.Under]:
			t.Fatalf("review %s counts under %s, which is not accepted", r.CID, r.Under)
		case !u.Record.Manifest().IsMaintainer(r.Maintainer):
			t.Fatalf("review %s counts, but %s is no maintainer in %s", r.CID, r.Maintainer, r.Under)
		case !past(r.Under)[c.Body.Licence.Cid]:
			t.Fatalf("review %s counts under %s, which is not the contribution's licence %s or later", r.CID, r.Under, c.Body.Licence.Cid)
		}
		switch r.Decision {
		case protocol.DecisionAccept:
			acc[r.Under]++
		case protocol.DecisionReject:
			rej[r.Under]++
		}
	}
	if c.Status == StatusPending {
		return
	}
	if !accepted[c.Body.Licence.Cid] {
		t.Fatalf("contribution %s is %s under licence %s, which is not accepted", c.CID, c.Status, c.Body.Licence.Cid)
	}
	met := func(n map[cid.Cid]uint64, q func(*protocol.Manifest) uint64) bool {
		for u, k := range n {
			if m := set[u].Record.Manifest(); q(m) > 0 && k >= q(m) {
				return true
			}
		}
		return false
	}
	rejected := met(rej, func(m *protocol.Manifest) uint64 { return m.RejectQuorum })
	switch {
	case c.Status == StatusRejected && !rejected:
		t.Fatalf("contribution %s is rejected without a reject quorum of counting reviews", c.CID)
	case c.Status == StatusAccepted && (rejected || !met(acc, func(m *protocol.Manifest) uint64 { return m.Quorum })):
		t.Fatalf("contribution %s is accepted without an accept quorum of counting reviews, or with a reject quorum", c.CID)
	}
}

// TestSound checks checkSound's properties on the general generator's
// histories too, after every chunk.
func TestSound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id, bs := drawHistory(t)
		s := New(id)
		for i, b := range bs {
			mustAdd(t, s, b)
			checkSound(t, s, bs[:i+1])
		}
	})
}

// TestAttackReach checks that the attacker's generator reaches what the
// properties are about: forgeries, contests, held statuses, suspended and
// inert reviews, accepted and rejected contributions. A property that never
// meets its case proves nothing.
func TestAttackReach(t *testing.T) {
	seen := map[string]int{}
	rapid.Check(t, func(t *rapid.T) {
		a := drawAttack(t)
		s := build(t, a.id, a.all())
		if len(s.ContestedManifests()) > 0 {
			seen["contest"]++
		}
		for _, f := range a.forged {
			if !s.OnChain(f.CID) && !s.Contested(f.CID) && recordOf(t, s, f.CID) != nil {
				if e := s.mfs[f.CID]; e != nil && e.cls == clsInert && e.man.st == manCand {
					seen["forgery rejected"]++
				}
			}
		}
		for _, c := range viewsOf(t, s) {
			seen[string(c.Status)]++
			if c.Held {
				seen["held"]++
			}
			for _, r := range c.Reviews {
				switch {
				case r.Suspended != "":
					seen["suspended review"]++
				case r.Inert == reasonRevoked:
					seen["revoked review"]++
				case r.Inert == reasonUnderNotLater:
					seen["removed maintainer's review"]++
				}
			}
		}
	})
	t.Logf("reached: %v", seen)
	for _, what := range []string{"contest", "forgery rejected", "held", "suspended review", "revoked review",
		"removed maintainer's review", string(StatusAccepted), string(StatusRejected)} {
		if seen[what] == 0 {
			t.Errorf("the attacker's generator never reached %q in %v", what, seen)
		}
	}
}
