package crdt

import (
	"fmt"
	"slices"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"
)

// gen draws a random commons history: a genesis, manifest updates (forks,
// merges, co-signatures, revocations, bad versions, short signatures),
// contributions (some revising a record), reviews of every decision by maintainers and others, and
// duplicates. Some records are drawn but never emitted ("hidden"), so that
// what depends on them waits forever.
type gen struct {
	t       *rapid.T
	id      cid.Cid
	mans    []*protocol.Block // every manifest drawn, hidden ones included
	cons    []*protocol.Block // every contribution drawn, hidden ones included
	pledges []*protocol.Block // every pledge drawn, hidden ones included
	emitted []*protocol.Block // in draw order, with duplicates
	n       int
}

// drawHistory draws a history of either kind: general (drawGeneral) or
// rich in contests (drawContested).
func drawHistory(t *rapid.T) (cid.Cid, []*protocol.Block) {
	if rapid.IntRange(0, 2).Draw(t, "contested") == 0 {
		return drawContested(t)
	}
	return drawGeneral(t)
}

func drawGeneral(t *rapid.T) (cid.Cid, []*protocol.Block) {
	g := &gen{t: t}
	g.genesis()
	steps := rapid.IntRange(1, 30).Draw(t, "steps")
	for range steps {
		switch k := rapid.IntRange(0, 14).Draw(t, "kind"); {
		case k <= 1:
			g.update()
		case k <= 4:
			g.contribution()
		case k <= 8:
			g.review()
		case k == 9:
			g.profile()
		case k == 10:
			g.sponsorship()
		case k == 11:
			g.pledge()
		case k <= 13:
			g.acknowledgement()
		default:
			g.emit(rapid.SampledFrom(g.emitted).Draw(t, "dup"))
		}
	}
	return g.id, g.emitted
}

func (g *gen) emit(b *protocol.Block) { g.emitted = append(g.emitted, b) }

// maybeEmit emits b unless the draw hides it.
func (g *gen) maybeEmit(b *protocol.Block) {
	if rapid.IntRange(0, 11).Draw(g.t, "hide") != 0 {
		g.emit(b)
	}
}

func (g *gen) keys(label string, min, max int) []int {
	return rapid.SliceOfNDistinct(rapid.IntRange(0, nKeys-1), min, max, rapid.ID[int]).Draw(g.t, label)
}

// keyIndexes draws a non-empty subset of the test keys among ks.
func (g *gen) keyIndexes(ks []protocol.PublicKey, label string) []int {
	var idx []int
	for _, k := range ks {
		idx = append(idx, keyIndex(k))
	}
	return rapid.SliceOfNDistinct(rapid.SampledFrom(idx), 1, len(idx), rapid.ID[int]).Draw(g.t, label)
}

func (g *gen) time() protocol.HLC {
	return protocol.HLC(rapid.Uint64Range(1, 12).Draw(g.t, "time"))
}

// body draws a manifest body.
func (g *gen) body() *protocol.Manifest {
	assoc := g.keys("assoc", 1, 4)
	maint := g.keys("maint", 0, 4)
	m := manifest(assoc, rapid.Uint64Range(1, uint64(len(assoc))).Draw(g.t, "threshold"), maint, 0, 0)
	if n := uint64(len(m.Maintainers)); n > 0 {
		m.Quorum = rapid.Uint64Range(1, n).Draw(g.t, "quorum")
		m.RejectQuorum = rapid.Uint64Range(1, n).Draw(g.t, "rejectQuorum")
	}
	if rapid.IntRange(0, 3).Draw(g.t, "revokes") == 0 {
		m.Revoked = pubs(g.keys("revoked", 1, 2)...)
	}
	if rapid.IntRange(0, 3).Draw(g.t, "bans") == 0 {
		// Any key the manifest does not list (SPEC §5.1): contributors,
		// maintainers of other versions, association keys of others.
		var pool []int
		for i := range nKeys {
			if k := key(i).Public(); !m.IsAssociation(k) && !m.IsMaintainer(k) {
				pool = append(pool, i)
			}
		}
		if len(pool) > 0 {
			m.Banned = pubs(rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 1, 2, rapid.ID[int]).Draw(g.t, "banned")...)
		}
	}
	return m
}

// signers draws an author (one of want when possible) and co-signers,
// usually enough of want to meet a threshold.
func (g *gen) signers(want []protocol.PublicKey) (int, []int) {
	var idx []int
	for i := range nKeys {
		if slices.Contains(want, key(i).Public()) {
			idx = append(idx, i)
		}
	}
	co := g.keys("cosigners", 0, 3)
	if rapid.IntRange(0, 3).Draw(g.t, "enough") != 0 {
		co = append(co, idx...)
	}
	author := rapid.IntRange(0, nKeys-1).Draw(g.t, "author")
	if len(idx) > 0 && rapid.Bool().Draw(g.t, "authorIn") {
		author = rapid.SampledFrom(idx).Draw(g.t, "authorKey")
	}
	return author, co
}

func (g *gen) genesis() {
	m := g.body()
	if rapid.IntRange(0, 3).Draw(g.t, "bansAllowed") != 0 {
		m.Policy = &protocol.Policy{Bans: true}
	} else {
		m.Banned = nil // a genesis bans only where it allows bans
	}
	if rapid.IntRange(0, 3).Draw(g.t, "coalition") != 0 {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Coalition = 1
	}
	author, co := g.signers(m.Association)
	if !m.IsAssociation(key(author).Public()) {
		author = keyIndex(m.Association[0])
	}
	b := seal(g.t, &protocol.Record{Time: g.time(), Body: m}, author, co...)
	g.id = b.CID
	g.mans = append(g.mans, b)
	g.emit(b)
}

func (g *gen) update() {
	prev := rapid.SliceOfNDistinct(rapid.SampledFrom(g.mans), 1, 3, func(b *protocol.Block) string { return b.CID.KeyString() }).Draw(g.t, "prev")
	var cs []cid.Cid
	var maxV uint64
	for _, p := range prev {
		cs = append(cs, p.CID)
		maxV = max(maxV, p.Record.Manifest().Version)
	}
	if len(g.cons) > 0 && rapid.IntRange(0, 15).Draw(g.t, "prevCon") == 0 {
		cs = append(cs, rapid.SampledFrom(g.cons).Draw(g.t, "con").CID)
	}
	v := max(1, maxV+[]uint64{0, 1, 1, 1, 2}[rapid.IntRange(0, 4).Draw(g.t, "bump")])
	author, co := g.signers(prev[0].Record.Manifest().Association)
	m := g.body()
	if rapid.IntRange(0, 2).Draw(g.t, "revokeAssoc") == 0 {
		// Revoke keys of the predecessor's association: what attacks
		// concurrent branches, and with luck starts a contest.
		m.Revoked = pubs(append(g.keyIndexes(prev[0].Record.Manifest().Association, "revokedAssoc"), g.keys("revokedMore", 0, 1)...)...)
	}
	b := update(g.t, g.id, g.time(), m, v, cs, author, co...)
	g.mans = append(g.mans, b)
	g.maybeEmit(b)
}

func (g *gen) contribution() {
	lic := rapid.SampledFrom(g.mans).Draw(g.t, "licence").CID
	if len(g.cons) > 0 && rapid.IntRange(0, 15).Draw(g.t, "licCon") == 0 {
		lic = rapid.SampledFrom(g.cons).Draw(g.t, "con").CID
	}
	g.n++
	t, author, title := g.time(), rapid.IntRange(0, nKeys-1).Draw(g.t, "author"), fmt.Sprint("c", g.n)
	b := contribution(g.t, g.id, lic, t, author, title)
	if rapid.IntRange(0, 2).Draw(g.t, "paid") == 0 {
		b = paid(g.t, g.id, lic, t, author, rapid.IntRange(0, nKeys-1).Draw(g.t, "sponsor"), title)
	}
	// Revises is no dependency: it may name a contribution (hidden ones
	// included, so never arriving) or a manifest, and changes nothing.
	switch rapid.IntRange(0, 5).Draw(g.t, "revises") {
	case 0:
		if len(g.cons) > 0 {
			b = revision(g.t, g.id, lic, rapid.SampledFrom(g.cons).Draw(g.t, "revised").CID, t, author, title)
		}
	case 1:
		b = revision(g.t, g.id, lic, rapid.SampledFrom(g.mans).Draw(g.t, "revisedMan").CID, t, author, title)
	}
	g.cons = append(g.cons, b)
	g.maybeEmit(b)
}

// profile draws a profile by any key; a key often has several.
func (g *gen) profile() {
	g.n++
	g.maybeEmit(profile(g.t, g.id, g.time(), rapid.IntRange(0, nKeys-1).Draw(g.t, "author"), fmt.Sprint("p", g.n)))
}

// sponsorship draws a sponsorship of a contribution, usually by the
// sponsor it names if any, sometimes by another key or of a manifest.
func (g *gen) sponsorship() {
	if len(g.cons) == 0 {
		g.contribution()
	}
	target := rapid.SampledFrom(g.cons).Draw(g.t, "target")
	author := rapid.IntRange(0, nKeys-1).Draw(g.t, "author")
	if c := target.Record.Contribution(); c.Sponsor != nil && rapid.IntRange(0, 3).Draw(g.t, "bySponsor") != 0 {
		author = keyIndex(*c.Sponsor)
	}
	t := target.CID
	if rapid.IntRange(0, 9).Draw(g.t, "targetMan") == 0 {
		t = rapid.SampledFrom(g.mans).Draw(g.t, "man").CID
	}
	g.maybeEmit(sponsorship(g.t, g.id, t, g.time(), author))
}

// pledge draws a pledge of any kind by any key, for the association or a
// beneficiary, over a period among the times drawn.
func (g *gen) pledge() {
	p := &protocol.Pledge{Kind: rapid.SampledFrom([]string{protocol.PledgeMoney, protocol.PledgeHours, protocol.PledgeInfrastructure}).Draw(g.t, "pledgeKind")}
	switch p.Kind {
	case protocol.PledgeMoney:
		p.Amount, p.Currency = rapid.Uint64Range(1, 5).Draw(g.t, "amount"), "EUR"
	case protocol.PledgeHours:
		p.Amount = rapid.Uint64Range(1, 5).Draw(g.t, "amount")
	default:
		p.Peer = key(rapid.IntRange(0, nKeys-1).Draw(g.t, "peer")).Public().String()
	}
	p.From = rapid.Uint64Range(1, 10).Draw(g.t, "from")
	p.Until = p.From + rapid.Uint64Range(1, 5).Draw(g.t, "length")
	p.Under = protocol.Link{Cid: rapid.SampledFrom(g.mans).Draw(g.t, "pledgeUnder").CID}
	author := rapid.IntRange(0, nKeys-1).Draw(g.t, "author")
	if rapid.Bool().Draw(g.t, "beneficiary") {
		k := key(rapid.IntRange(0, nKeys-1).Draw(g.t, "beneficiaryKey")).Public()
		if k == key(author).Public() {
			k = key((author + 1) % nKeys).Public() // a pledge to its own author is invalid
		}
		p.Beneficiary = &k
	}
	b := seal(g.t, &protocol.Record{Commons: g.id, Time: g.time(), Body: p}, author)
	g.pledges = append(g.pledges, b)
	g.maybeEmit(b)
}

// acknowledgement draws an acknowledgement of a pledge (or, rarely, of
// another record): by its beneficiary or, for the association, under a
// manifest by enough of its association, or by anyone, with the amount
// its kind asks or not.
func (g *gen) acknowledgement() {
	if len(g.pledges) == 0 {
		g.pledge()
	}
	target := rapid.SampledFrom(g.pledges).Draw(g.t, "pledge")
	if rapid.IntRange(0, 9).Draw(g.t, "ackCon") == 0 && len(g.cons) > 0 {
		target = rapid.SampledFrom(g.cons).Draw(g.t, "con")
	}
	a := &protocol.Acknowledgement{Pledge: protocol.Link{Cid: target.CID}}
	author, co := rapid.IntRange(0, nKeys-1).Draw(g.t, "author"), []int(nil)
	p := target.Record.Pledge()
	if p != nil && p.Kind != protocol.PledgeInfrastructure || rapid.IntRange(0, 5).Draw(g.t, "wrongAmount") == 0 {
		a.Amount = rapid.Uint64Range(1, 6).Draw(g.t, "met")
	}
	switch {
	case p != nil && p.Beneficiary != nil && rapid.IntRange(0, 3).Draw(g.t, "byBeneficiary") != 0:
		author = keyIndex(*p.Beneficiary)
		if rapid.IntRange(0, 4).Draw(g.t, "benCosigned") == 0 {
			co = []int{rapid.IntRange(0, nKeys-1).Draw(g.t, "benCosigner")}
		}
	case rapid.IntRange(0, 5).Draw(g.t, "noUnder") != 0:
		under := rapid.SampledFrom(g.mans).Draw(g.t, "under")
		if rapid.IntRange(0, 15).Draw(g.t, "underCon") == 0 && len(g.cons) > 0 {
			under = rapid.SampledFrom(g.cons).Draw(g.t, "underConB")
		}
		a.Under = &protocol.Link{Cid: under.CID}
		if m := under.Record.Manifest(); m != nil {
			author, co = g.signers(m.Association)
			if rapid.IntRange(0, 2).Draw(g.t, "alone") == 0 {
				// One association key alone: short of a threshold above 1.
				author, co = keyIndex(rapid.SampledFrom(m.Association).Draw(g.t, "alone"+"Key")), nil
			}
		}
	}
	b := seal(g.t, &protocol.Record{Commons: g.id, Time: g.time(), Body: a}, author, co...)
	g.maybeEmit(b)
	if rapid.IntRange(0, 3).Draw(g.t, "recosign") == 0 {
		// The same acknowledgement with one more co-signature: another
		// record, the same content.
		r := *b.Record
		r.Cosigs = slices.Clone(r.Cosigs)
		extra := rapid.IntRange(0, nKeys-1).Draw(g.t, "extraCosigner")
		if !slices.Contains(r.Signers(), key(extra).Public()) {
			if err := protocol.Cosign(&r, key(extra)); err != nil {
				g.t.Fatalf("cosign: %v", err)
			}
			c, err := protocol.NewBlock(&r)
			if err != nil {
				g.t.Fatalf("block: %v", err)
			}
			g.maybeEmit(c)
		}
	}
}

func (g *gen) review() {
	if len(g.cons) == 0 {
		g.contribution()
	}
	target := rapid.SampledFrom(g.cons).Draw(g.t, "target").CID
	if rapid.IntRange(0, 15).Draw(g.t, "targetMan") == 0 {
		target = rapid.SampledFrom(g.mans).Draw(g.t, "man").CID
	}
	under := rapid.SampledFrom(g.mans).Draw(g.t, "under")
	if rapid.IntRange(0, 15).Draw(g.t, "underCon") == 0 {
		under = rapid.SampledFrom(g.cons).Draw(g.t, "con")
	}
	author := rapid.IntRange(0, nKeys-1).Draw(g.t, "author")
	if m := under.Record.Manifest(); m != nil && len(m.Maintainers) > 0 && rapid.IntRange(0, 3).Draw(g.t, "byMaint") != 0 {
		want := rapid.SampledFrom(m.Maintainers).Draw(g.t, "maintainer")
		author = keyIndex(want)
	}
	d := rapid.SampledFrom([]string{protocol.DecisionAccept, protocol.DecisionAccept, protocol.DecisionReject, protocol.DecisionRetract}).Draw(g.t, "decision")
	g.maybeEmit(review(g.t, g.id, target, under.CID, g.time(), author, d))
}

// drawContested draws a history rich in contests that get settled, and in
// bans on heads that stop being heads: an association {0, 1, 2} of
// threshold 1, whose keys sign updates alone that often revoke the others
// and often ban keys 3 to 5, which contribute and review. The records come
// in a random order: in the order drawn, no contest is ever settled later.
func drawContested(t *rapid.T) (cid.Cid, []*protocol.Block) {
	g := &gen{t: t}
	body := func() *protocol.Manifest {
		maint := rapid.SliceOfNDistinct(rapid.IntRange(3, 5), 0, 2, rapid.ID[int]).Draw(t, "maint")
		m := manifest([]int{0, 1, 2}, 1, maint, 0, 0)
		if len(m.Maintainers) > 0 {
			m.Quorum, m.RejectQuorum = 1, 1
		}
		if rapid.IntRange(0, 2).Draw(t, "bans") != 0 {
			var pool []int
			for i := 3; i < nKeys; i++ {
				if !m.IsMaintainer(key(i).Public()) {
					pool = append(pool, i)
				}
			}
			if len(pool) > 0 {
				m.Banned = pubs(rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 1, 2, rapid.ID[int]).Draw(t, "banned")...)
			}
		}
		return m
	}
	gm := body()
	gm.Policy = &protocol.Policy{Bans: true, Coalition: 1}
	gb := seal(t, &protocol.Record{Time: 1, Body: gm}, 0)
	g.id = gb.CID
	g.mans = append(g.mans, gb)
	g.emit(gb)
	for range rapid.IntRange(1, 25).Draw(t, "steps") {
		switch k := rapid.IntRange(0, 11).Draw(t, "kind"); {
		case k == 10:
			// A pledge to the association, by a key that may be banned.
			g.n++
			p := &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 2, From: 1, Until: uint64(2 + g.n),
				Under: protocol.Link{Cid: rapid.SampledFrom(g.mans).Draw(t, "pledgeUnder").CID}}
			b := seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: p}, rapid.IntRange(3, 5).Draw(t, "pledger"))
			g.pledges = append(g.pledges, b)
			g.emit(b)
		case k == 11:
			// Its acknowledgement by one association key, which an
			// update may revoke, under any version.
			if len(g.pledges) == 0 {
				continue
			}
			a := &protocol.Acknowledgement{Pledge: protocol.Link{Cid: rapid.SampledFrom(g.pledges).Draw(t, "pledge").CID},
				Amount: rapid.Uint64Range(1, 3).Draw(t, "met"), Under: &protocol.Link{Cid: rapid.SampledFrom(g.mans).Draw(t, "ackUnder").CID}}
			g.emit(seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: a}, rapid.IntRange(0, 2).Draw(t, "acker")))
		case k <= 4:
			prev := rapid.SliceOfNDistinct(rapid.SampledFrom(g.mans), 1, 2, func(b *protocol.Block) string { return b.CID.KeyString() }).Draw(t, "prev")
			var cs []cid.Cid
			var maxV uint64
			for _, p := range prev {
				cs = append(cs, p.CID)
				maxV = max(maxV, p.Record.Manifest().Version)
			}
			m := body()
			signer := rapid.IntRange(0, 2).Draw(t, "signer")
			if rapid.IntRange(0, 2).Draw(t, "revokes") != 0 {
				others := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == signer })
				rv := rapid.SliceOfNDistinct(rapid.SampledFrom(others), 1, 2, rapid.ID[int]).Draw(t, "revoked")
				m.Revoked = pubs(rv...)
				m.Association = pubs(slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return slices.Contains(rv, i) })...)
			}
			b := update(t, g.id, g.time(), m, maxV+1, cs, signer)
			g.mans = append(g.mans, b)
			g.emit(b)
		case k <= 6:
			g.n++
			lic := rapid.SampledFrom(g.mans).Draw(t, "licence").CID
			b := contribution(t, g.id, lic, g.time(), rapid.IntRange(3, 5).Draw(t, "author"), fmt.Sprint("c", g.n))
			g.cons = append(g.cons, b)
			g.emit(b)
		case k <= 8:
			if len(g.cons) == 0 {
				continue
			}
			target := rapid.SampledFrom(g.cons).Draw(t, "target").CID
			under := rapid.SampledFrom(g.mans).Draw(t, "under").CID
			d := rapid.SampledFrom([]string{protocol.DecisionAccept, protocol.DecisionReject}).Draw(t, "decision")
			g.emit(review(t, g.id, target, under, g.time(), rapid.IntRange(3, 5).Draw(t, "reviewer"), d))
		default:
			g.emit(rapid.SampledFrom(g.emitted).Draw(t, "dup"))
		}
	}
	return g.id, rapid.Permutation(g.emitted).Draw(t, "order")
}
