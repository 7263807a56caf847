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
// contributions (some revising a record), reviews of every decision by
// maintainers and others, the coalition's records, the association's
// (disputes, statements, resolutions, certificates, rotations), and
// duplicates. Some records are drawn but never emitted ("hidden"), so that
// what depends on them waits forever.
type gen struct {
	t            *rapid.T
	id           cid.Cid
	mans         []*protocol.Block // every manifest drawn, hidden ones included
	cons         []*protocol.Block // every contribution drawn, hidden ones included
	pledges      []*protocol.Block // every pledge drawn, hidden ones included
	reviews      []*protocol.Block // every review drawn, hidden ones included
	sponsorships []*protocol.Block // every sponsorship drawn, hidden ones included
	disputes     []*protocol.Block // every dispute drawn, hidden ones included
	resolutions  []*protocol.Block // every resolution drawn (copies too), hidden ones included
	rotations    []*protocol.Block // every rotation drawn, hidden ones included
	all          []*protocol.Block // every record drawn but the genesis, hidden ones included
	emitted      []*protocol.Block // in draw order, with duplicates
	n            int
}

// drawHistory draws a history of any kind: general (drawGeneral), rich in
// contests (drawContested) or in the association's records
// (drawAssociation).
func drawHistory(t *rapid.T) (cid.Cid, []*protocol.Block) {
	switch rapid.IntRange(0, 4).Draw(t, "contested") {
	case 0:
		return drawContested(t)
	case 1:
		return drawAssociation(t)
	case 2:
		return drawDisputes(t)
	}
	return drawGeneral(t)
}

// drawDisputes draws a small world where the association's acts meet
// contests: an association {0, 1, 2} of threshold 1 whose keys sign
// updates alone that often revoke each other (and sometimes a
// maintainer), maintainers 3 and 4 (quorums 1) who review the
// contributions of key 5 (some paid, sponsored by 3 or 4), pledges and
// their acknowledgements, disputes about all of these, and resolutions by
// one association key or two (copies), under a version no older than the
// dispute and its subject, often replacing earlier ones. The records come
// in a random order.
func drawDisputes(t *rapid.T) (cid.Cid, []*protocol.Block) {
	g := &gen{t: t}
	body := func() *protocol.Manifest {
		m := manifest([]int{0, 1, 2}, 1, []int{3, 4}, 1, 1)
		if rapid.IntRange(0, 3).Draw(t, "dropMaintainer") == 0 {
			m = manifest([]int{0, 1, 2}, 1, []int{rapid.IntRange(3, 4).Draw(t, "keptMaintainer")}, 1, 1)
		}
		return m
	}
	gm := body()
	gm.Policy = &protocol.Policy{Coalition: 1, Association: 1}
	gb := seal(t, &protocol.Record{Time: 1, Body: gm}, 0)
	g.id = gb.CID
	g.mans = append(g.mans, gb)
	g.emit(gb)
	assocOf := func(c cid.Cid) []protocol.PublicKey {
		if b := g.drawn(c); b != nil && b.Record.Manifest() != nil {
			return b.Record.Manifest().Association
		}
		return pubs(0, 1, 2)
	}
	resolve := func(d *protocol.Block) {
		subject := g.drawn(d.Record.Dispute().Subject.Cid)
		basis := []cid.Cid{d.Record.Dispute().Under.Cid}
		if v, ok := madeUnder(subject); ok {
			basis = append(basis, v)
		}
		under := rapid.SampledFrom(g.mans).Draw(t, "resolutionUnder")
		if ok := g.laterThan(basis...); len(ok) > 0 && rapid.IntRange(0, 4).Draw(t, "resolutionLater") != 0 {
			under = rapid.SampledFrom(ok).Draw(t, "resolutionLaterUnder")
		}
		body := &protocol.Resolution{Dispute: protocol.Link{Cid: d.CID}, Outcome: protocol.OutcomeDismiss, Reason: "decided", Under: protocol.Link{Cid: under.CID}}
		if rapid.IntRange(0, 2).Draw(t, "uphold") != 0 {
			body.Outcome = protocol.OutcomeUphold
			if rapid.IntRange(0, 3).Draw(t, "withEffect") != 0 {
				body.Effect = fitting(subject)
			}
		}
		var same []cid.Cid
		for _, r := range g.resolutions {
			if r.Record.Resolution().Dispute.Cid == d.CID {
				same = append(same, r.CID)
			}
		}
		if len(same) > 0 && rapid.Bool().Draw(t, "replaces") {
			// Often the latest: chains of resolutions replacing each
			// other.
			r := same[len(same)-1]
			if rapid.Bool().Draw(t, "replacesAny") {
				r = rapid.SampledFrom(same).Draw(t, "replaced")
			}
			body.Replaces = links(r)
		}
		assoc := assocOf(under.CID)
		signer := keyIndex(rapid.SampledFrom(assoc).Draw(t, "resolver"))
		b := seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: body}, signer)
		g.resolutions = append(g.resolutions, b)
		g.emit(b)
		if rapid.IntRange(0, 2).Draw(t, "copy") == 0 {
			r := *b.Record
			r.Cosigs = nil
			if co := keyIndex(rapid.SampledFrom(pubs(0, 1, 2)).Draw(t, "coResolver")); co != signer {
				if err := protocol.Cosign(&r, key(co)); err != nil {
					t.Fatalf("cosign: %v", err)
				}
			}
			c, err := protocol.NewBlock(&r)
			if err != nil {
				t.Fatalf("block: %v", err)
			}
			g.resolutions = append(g.resolutions, c)
			g.emit(c)
		}
	}
	for range rapid.IntRange(4, 30).Draw(t, "steps") {
		switch k := rapid.IntRange(0, 15).Draw(t, "kind"); {
		case k <= 1: // an update by one key, often revoking another
			prev := rapid.SampledFrom(g.mans).Draw(t, "prev")
			m := body()
			signer := keyIndex(rapid.SampledFrom(prev.Record.Manifest().Association).Draw(t, "signer"))
			if rapid.IntRange(0, 2).Draw(t, "revokes") != 0 {
				// One other key, so that a contest between two leaves the
				// third free to act.
				var rv []int
				if others := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == signer }); rapid.IntRange(0, 4).Draw(t, "revokesKey") != 0 {
					rv = append(rv, rapid.SampledFrom(others).Draw(t, "revokedKey"))
				}
				m.Association = pubs(slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return slices.Contains(rv, i) })...)
				if rapid.Bool().Draw(t, "revokesMaintainer") {
					rv = append(rv, rapid.IntRange(3, 4).Draw(t, "revokedMaintainer"))
				}
				m.Revoked = pubs(rv...)
			}
			b := update(t, g.id, g.time(), m, prev.Record.Manifest().Version+1, []cid.Cid{prev.CID}, signer)
			g.mans = append(g.mans, b)
			g.emit(b)
		case k <= 3: // a contribution, some paid
			g.n++
			lic := rapid.SampledFrom(g.mans).Draw(t, "licence").CID
			b := contribution(t, g.id, lic, g.time(), 5, fmt.Sprint("c", g.n))
			if rapid.IntRange(0, 2).Draw(t, "paid") == 0 {
				b = paid(t, g.id, lic, g.time(), 5, rapid.IntRange(3, 4).Draw(t, "sponsor"), fmt.Sprint("c", g.n))
			}
			g.cons = append(g.cons, b)
			g.emit(b)
		case k <= 6: // a maintainer's review
			if len(g.cons) == 0 {
				continue
			}
			target := rapid.SampledFrom(g.cons).Draw(t, "target").CID
			under := g.mans[0].CID
			if rapid.Bool().Draw(t, "reviewUnderLater") {
				under = rapid.SampledFrom(g.mans).Draw(t, "under").CID
			}
			d := rapid.SampledFrom([]string{protocol.DecisionAccept, protocol.DecisionReject, protocol.DecisionRetract}).Draw(t, "decision")
			b := review(t, g.id, target, under, g.time(), rapid.IntRange(3, 4).Draw(t, "reviewer"), d)
			g.reviews = append(g.reviews, b)
			g.emit(b)
		case k == 7: // its sponsor's sponsorship of a paid contribution
			var ps []*protocol.Block
			for _, c := range g.cons {
				if c.Record.Contribution().Sponsor != nil {
					ps = append(ps, c)
				}
			}
			if len(ps) == 0 {
				continue
			}
			c := rapid.SampledFrom(ps).Draw(t, "sponsored")
			sponsor := keyIndex(*c.Record.Contribution().Sponsor)
			b := sponsorship(t, g.id, c.CID, g.time(), sponsor)
			g.sponsorships = append(g.sponsorships, b)
			g.emit(b)
		case k == 8: // a pledge to the association, and an acknowledgement
			g.n++
			p := &protocol.Pledge{Kind: protocol.PledgeHours, Amount: 2, From: 1, Until: uint64(2 + g.n),
				Under: protocol.Link{Cid: rapid.SampledFrom(g.mans).Draw(t, "pledgeUnder").CID}}
			b := seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: p}, 5)
			g.pledges = append(g.pledges, b)
			g.emit(b)
			if rapid.Bool().Draw(t, "acknowledged") {
				under := rapid.SampledFrom(g.mans).Draw(t, "ackUnder")
				a := &protocol.Acknowledgement{Pledge: protocol.Link{Cid: b.CID}, Amount: 2, Under: &protocol.Link{Cid: under.CID}}
				g.emit(seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: a}, keyIndex(rapid.SampledFrom(assocOf(under.CID)).Draw(t, "acker"))))
			}
		case k <= 10: // a dispute about any of these, most often a review
			pool := [][]*protocol.Block{g.reviews, g.reviews, g.cons, g.sponsorships, g.pledges}[rapid.IntRange(0, 4).Draw(t, "disputeOf")]
			if len(pool) == 0 {
				pool = slices.Concat(g.cons, g.reviews, g.sponsorships, g.pledges)
			}
			if len(pool) == 0 {
				continue
			}
			subject := rapid.SampledFrom(pool).Draw(t, "disputed")
			var touched []*protocol.Block // reviews by a key some update revokes: perhaps suspended
			for _, r := range g.reviews {
				for _, m := range g.mans {
					if slices.Contains(m.Record.Manifest().Revoked, r.Record.Author) {
						touched = append(touched, r)
						break
					}
				}
			}
			if len(touched) > 0 && rapid.IntRange(0, 2).Draw(t, "disputeTouched") == 0 {
				subject = rapid.SampledFrom(touched).Draw(t, "disputedTouched")
			}
			under := g.mans[0]
			if rapid.Bool().Draw(t, "disputeUnderLater") {
				under = rapid.SampledFrom(g.mans).Draw(t, "disputeUnder")
			}
			b := seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: &protocol.Dispute{
				Subject: &protocol.Link{Cid: subject.CID}, Reason: "disputed", Under: protocol.Link{Cid: under.CID}}}, 5)
			g.disputes = append(g.disputes, b)
			g.emit(b)
			for range rapid.IntRange(0, 2).Draw(t, "resolvedAtOnce") {
				resolve(b)
			}
		default: // a resolution, perhaps with a copy
			if len(g.disputes) == 0 {
				continue
			}
			resolve(rapid.SampledFrom(g.disputes).Draw(t, "resolves"))
		}
	}
	return g.id, rapid.Permutation(g.emitted).Draw(t, "order")
}

// drawAssociation draws a general history whose genesis carries the
// coalition's and the association's records, rich in disputes and their
// resolutions, with fewer manifest updates, so that more acts of the
// association stand.
func drawAssociation(t *rapid.T) (cid.Cid, []*protocol.Block) {
	g := &gen{t: t}
	g.genesisWith(true)
	for range rapid.IntRange(1, 36).Draw(t, "steps") {
		switch k := rapid.IntRange(0, 19).Draw(t, "kind"); {
		case k == 0:
			g.update()
		case k <= 2:
			g.contribution()
		case k <= 5:
			g.review()
		case k == 6:
			g.sponsorship()
		case k == 7:
			g.pledge()
		case k == 8:
			g.acknowledgement()
		case k <= 11:
			g.dispute()
		case k == 12:
			g.statement()
		case k <= 16:
			g.resolution()
		case k == 17:
			g.certificate()
		case k == 18:
			g.rotation()
		default:
			g.emit(rapid.SampledFrom(g.emitted).Draw(t, "dup"))
		}
	}
	return g.id, g.emitted
}

func drawGeneral(t *rapid.T) (cid.Cid, []*protocol.Block) {
	g := &gen{t: t}
	g.genesis()
	steps := rapid.IntRange(1, 36).Draw(t, "steps")
	for range steps {
		switch k := rapid.IntRange(0, 22).Draw(t, "kind"); {
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
		case k <= 15:
			g.dispute()
		case k == 16:
			g.statement()
		case k <= 19:
			g.resolution()
		case k == 20:
			g.certificate()
		case k == 21:
			g.rotation()
		default:
			g.emit(rapid.SampledFrom(g.emitted).Draw(t, "dup"))
		}
	}
	return g.id, g.emitted
}

func (g *gen) emit(b *protocol.Block) { g.emitted = append(g.emitted, b) }

// maybeEmit notes b among the records drawn and emits it unless the draw
// hides it.
func (g *gen) maybeEmit(b *protocol.Block) {
	g.all = append(g.all, b)
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

func (g *gen) genesis() { g.genesisWith(false) }

// genesisWith draws a genesis; with assoc, one that carries the
// coalition's and the association's records.
func (g *gen) genesisWith(assoc bool) {
	m := g.body()
	if rapid.IntRange(0, 3).Draw(g.t, "bansAllowed") != 0 {
		m.Policy = &protocol.Policy{Bans: true}
	} else {
		m.Banned = nil // a genesis bans only where it allows bans
	}
	if assoc || rapid.IntRange(0, 3).Draw(g.t, "coalition") != 0 {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Coalition = 1
	}
	if assoc || rapid.IntRange(0, 3).Draw(g.t, "association") != 0 {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Association = 1
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
	if len(g.sponsorships) > 0 && rapid.IntRange(0, 3).Draw(g.t, "sponsorAgain") == 0 {
		// Another sponsorship of a contribution sponsored before, by the
		// same key: a new act, which a dispute about the first leaves
		// alone.
		again := rapid.SampledFrom(g.sponsorships).Draw(g.t, "sponsoredBefore")
		if x := g.drawn(again.Record.Sponsorship().Target.Cid); x != nil && x.Record.Contribution() != nil {
			target, author = x, keyIndex(again.Record.Author)
		}
	}
	t := target.CID
	if rapid.IntRange(0, 9).Draw(g.t, "targetMan") == 0 {
		t = rapid.SampledFrom(g.mans).Draw(g.t, "man").CID
	}
	b := sponsorship(g.t, g.id, t, g.time(), author)
	g.sponsorships = append(g.sponsorships, b)
	g.maybeEmit(b)
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
	b := review(g.t, g.id, target, under.CID, g.time(), author, d)
	g.reviews = append(g.reviews, b)
	g.maybeEmit(b)
}

// past returns the manifests drawn that m reaches through prev, m
// included: its past, where they are all drawn.
func (g *gen) past(m cid.Cid) map[cid.Cid]bool {
	out := map[cid.Cid]bool{}
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		if out[c] {
			return
		}
		out[c] = true
		for _, b := range g.mans {
			if b.CID == c {
				for _, p := range b.Record.Manifest().Prev {
					walk(p.Cid)
				}
			}
		}
	}
	walk(m)
	return out
}

// laterThan returns the manifests drawn whose past holds every one of vs.
func (g *gen) laterThan(vs ...cid.Cid) []*protocol.Block {
	var out []*protocol.Block
	for _, m := range g.mans {
		p := g.past(m.CID)
		ok := true
		for _, v := range vs {
			ok = ok && p[v]
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// drawn returns the record drawn whose CID is c, or nil.
func (g *gen) drawn(c cid.Cid) *protocol.Block {
	for _, b := range slices.Concat(g.all, g.mans, g.cons, g.reviews, g.pledges, g.sponsorships, g.disputes, g.resolutions) {
		if b.CID == c {
			return b
		}
	}
	return nil
}

// madeUnder is refMadeUnder for a record that may not have been drawn.
func madeUnder(b *protocol.Block) (cid.Cid, bool) {
	if b == nil {
		return cid.Undef, false
	}
	return refMadeUnder(b)
}

// fitting returns the effect an upheld dispute about b can have; "" for
// none.
func fitting(b *protocol.Block) string {
	if b == nil {
		return ""
	}
	switch b.Record.Type() {
	case protocol.TypeContribution:
		return protocol.EffectWithdraw
	case protocol.TypeReview, protocol.TypeSponsorship:
		return protocol.EffectSetAside
	case protocol.TypePledge:
		return protocol.EffectUnmet
	}
	return ""
}

// actSigners draws the signers of an act of the association under m:
// usually its threshold or more, sometimes one key alone, or with an
// outsider, or anyone (g.signers).
func (g *gen) actSigners(m *protocol.Manifest) (int, []int) {
	var assoc []int
	for _, k := range m.Association {
		assoc = append(assoc, keyIndex(k))
	}
	switch rapid.IntRange(0, 11).Draw(g.t, "actSigners") {
	case 0: // one key alone: short of a threshold above 1
		return rapid.SampledFrom(assoc).Draw(g.t, "actAlone"), nil
	case 1: // the threshold and an outsider
		ks := rapid.SliceOfNDistinct(rapid.SampledFrom(assoc), int(m.Threshold), len(assoc), rapid.ID[int]).Draw(g.t, "actKeys")
		return ks[0], append(ks[1:], rapid.IntRange(0, nKeys-1).Draw(g.t, "actOutsider"))
	case 2:
		return g.signers(m.Association)
	}
	ks := rapid.SliceOfNDistinct(rapid.SampledFrom(assoc), int(m.Threshold), len(assoc), rapid.ID[int]).Draw(g.t, "actKeys")
	return ks[0], ks[1:]
}

// underFor draws the manifest an act names: usually one whose past holds
// every version of basis (what the act must be no older than), sometimes
// any version, rarely a record that is no manifest.
func (g *gen) underFor(basis ...cid.Cid) *protocol.Block {
	under := rapid.SampledFrom(g.mans).Draw(g.t, "actUnder")
	if ok := g.laterThan(basis...); len(ok) > 0 && rapid.IntRange(0, 3).Draw(g.t, "actLater") != 0 {
		under = rapid.SampledFrom(ok).Draw(g.t, "actLaterUnder")
	}
	if len(g.cons) > 0 && rapid.IntRange(0, 15).Draw(g.t, "actUnderCon") == 0 {
		under = rapid.SampledFrom(g.cons).Draw(g.t, "actUnderConB")
	}
	return under
}

// signAct signs an act of the association under the record under: by
// signers drawn from its association when it is a manifest, else by
// anyone.
func (g *gen) signAct(body protocol.Body, under *protocol.Block) *protocol.Block {
	author, co := rapid.IntRange(0, nKeys-1).Draw(g.t, "author"), []int(nil)
	if m := under.Record.Manifest(); m != nil {
		author, co = g.actSigners(m)
	}
	return seal(g.t, &protocol.Record{Commons: g.id, Time: g.time(), Body: body}, author, co...)
}

// dispute draws a dispute about a contribution, a review, a sponsorship,
// a pledge, a participant, or a record no dispute may name (a manifest,
// or any other record drawn), under the genesis, the version its subject
// was made under, any version, or rarely a record that is no manifest.
func (g *gen) dispute() {
	d := &protocol.Dispute{Reason: "disputed"}
	from := func(bs *[]*protocol.Block, draw func(), label string) *protocol.Block {
		if len(*bs) == 0 {
			draw()
		}
		return rapid.SampledFrom(*bs).Draw(g.t, label)
	}
	var subject *protocol.Block
	switch rapid.IntRange(0, 11).Draw(g.t, "disputeOf") {
	case 0, 1, 2:
		subject = from(&g.cons, g.contribution, "disputedCon")
	case 3, 4, 5:
		subject = from(&g.reviews, g.review, "disputedReview")
		// Mostly a review by a maintainer of the version it names, which
		// may count.
		var maint []*protocol.Block
		for _, r := range g.reviews {
			if u := g.drawn(r.Record.Review().Under.Cid); u != nil && u.Record.Manifest() != nil && u.Record.Manifest().IsMaintainer(r.Record.Author) {
				maint = append(maint, r)
			}
		}
		if len(maint) > 0 && rapid.IntRange(0, 3).Draw(g.t, "disputedMaintainer") != 0 {
			subject = rapid.SampledFrom(maint).Draw(g.t, "disputedMaintainerReview")
		}
	case 6, 7:
		subject = from(&g.sponsorships, g.sponsorship, "disputedSponsorship")
	case 8:
		subject = from(&g.pledges, g.pledge, "disputedPledge")
	case 9:
		k := key(rapid.IntRange(0, nKeys-1).Draw(g.t, "disputedKey")).Public()
		d.Participant = &k
	case 10:
		subject = rapid.SampledFrom(g.mans).Draw(g.t, "disputedMan")
	default:
		if len(g.all) == 0 {
			g.profile()
		}
		subject = rapid.SampledFrom(g.all).Draw(g.t, "disputedAny")
	}
	if subject != nil {
		d.Subject = &protocol.Link{Cid: subject.CID}
	}
	under := g.mans[0]
	switch rapid.IntRange(0, 15).Draw(g.t, "disputeUnder") {
	case 0, 1, 2, 3, 4, 5:
	case 6, 7, 8:
		if v, ok := madeUnder(subject); ok {
			d.Under = protocol.Link{Cid: v}
		}
	case 9:
		if len(g.cons) > 0 {
			under = rapid.SampledFrom(g.cons).Draw(g.t, "disputeUnderCon")
		}
	default:
		under = rapid.SampledFrom(g.mans).Draw(g.t, "disputeUnderMan")
	}
	if !d.Under.Defined() {
		d.Under = protocol.Link{Cid: under.CID}
	}
	b := seal(g.t, &protocol.Record{Commons: g.id, Time: g.time(), Body: d}, rapid.IntRange(0, nKeys-1).Draw(g.t, "author"))
	g.disputes = append(g.disputes, b)
	g.maybeEmit(b)
}

// statement draws a statement on a dispute, or rarely on a record that is
// no dispute.
func (g *gen) statement() {
	if len(g.disputes) == 0 {
		g.dispute()
	}
	d := rapid.SampledFrom(g.disputes).Draw(g.t, "statementOn").CID
	if rapid.IntRange(0, 7).Draw(g.t, "statementOnOther") == 0 {
		d = rapid.SampledFrom(append(g.all, g.mans...)).Draw(g.t, "statementOnAny").CID
	}
	g.n++
	g.maybeEmit(seal(g.t, &protocol.Record{Commons: g.id, Time: g.time(), Body: &protocol.Statement{
		Dispute: protocol.Link{Cid: d}, Text: fmt.Sprint("s", g.n)}}, rapid.IntRange(0, nKeys-1).Draw(g.t, "author")))
}

// resolution draws a resolution of a dispute (rarely of a record that is
// no dispute): dismissing, or upholding with no effect, the effect that
// fits its subject or any effect; under a version no older than it must
// be, or any version; replacing earlier resolutions of the same dispute,
// of another, or records that are no resolution; signed by the
// association's threshold or not (actSigners). Some come with copies:
// the same resolution with another set of co-signatures.
func (g *gen) resolution() {
	if len(g.disputes) == 0 {
		g.dispute()
	}
	d := rapid.SampledFrom(g.disputes).Draw(g.t, "resolves")
	body := &protocol.Resolution{Dispute: protocol.Link{Cid: d.CID}, Outcome: protocol.OutcomeDismiss, Reason: "decided"}
	if rapid.IntRange(0, 15).Draw(g.t, "resolvesOther") == 0 {
		body.Dispute = protocol.Link{Cid: rapid.SampledFrom(append(g.all, g.mans...)).Draw(g.t, "resolvesAny").CID}
	}
	dis := d.Record.Dispute()
	var subject *protocol.Block
	if dis.Subject != nil {
		subject = g.drawn(dis.Subject.Cid)
	}
	if rapid.IntRange(0, 2).Draw(g.t, "uphold") != 0 {
		body.Outcome = protocol.OutcomeUphold
		switch rapid.IntRange(0, 5).Draw(g.t, "effect") {
		case 0: // a finding without effect
		case 1:
			body.Effect = rapid.SampledFrom([]string{protocol.EffectWithdraw, protocol.EffectSetAside, protocol.EffectUnmet}).Draw(g.t, "anyEffect")
		default:
			body.Effect = fitting(subject)
		}
	}
	basis := []cid.Cid{dis.Under.Cid}
	if v, ok := madeUnder(subject); ok {
		basis = append(basis, v)
	}
	under := g.underFor(basis...)
	body.Under = protocol.Link{Cid: under.CID}
	var same, other []*protocol.Block
	for _, r := range g.resolutions {
		if r.Record.Resolution().Dispute.Cid == body.Dispute.Cid {
			same = append(same, r)
		} else {
			other = append(other, r)
		}
	}
	var replaces []cid.Cid
	switch rapid.IntRange(0, 7).Draw(g.t, "replaces") {
	case 0, 1, 2:
		if len(same) > 0 {
			for _, r := range rapid.SliceOfNDistinct(rapid.SampledFrom(same), 1, 2, func(b *protocol.Block) string { return b.CID.KeyString() }).Draw(g.t, "replacesSame") {
				replaces = append(replaces, r.CID)
			}
		}
	case 3:
		if len(other) > 0 {
			replaces = append(replaces, rapid.SampledFrom(other).Draw(g.t, "replacesOther").CID)
		}
	case 4:
		replaces = append(replaces, rapid.SampledFrom(append(g.all, g.mans...)).Draw(g.t, "replacesAny").CID)
	}
	body.Replaces = links(replaces...)
	b := g.signAct(body, under)
	g.resolutions = append(g.resolutions, b)
	g.maybeEmit(b)
	for range rapid.IntRange(0, 2).Draw(g.t, "copies") {
		// The same resolution, co-signed by another set of keys: the same
		// signing bytes.
		r := *b.Record
		r.Cosigs = nil
		cosigners := g.keys("copyCosigners", 0, 3)
		if m := under.Record.Manifest(); m != nil && rapid.IntRange(0, 3).Draw(g.t, "copyByAssociation") != 0 {
			cosigners = g.keyIndexes(m.Association, "copyAssociation")
		}
		for _, c := range cosigners {
			if key(c).Public() != r.Author {
				if err := protocol.Cosign(&r, key(c)); err != nil {
					g.t.Fatalf("cosign: %v", err)
				}
			}
		}
		c, err := protocol.NewBlock(&r)
		if err != nil {
			g.t.Fatalf("block: %v", err)
		}
		g.resolutions = append(g.resolutions, c)
		g.maybeEmit(c)
	}
}

// certificate draws a certificate of a participant's role or of a release
// of contributions (rarely naming another record too), under any version,
// signed as an act of the association (actSigners).
func (g *gen) certificate() {
	c := &protocol.Certificate{Expires: 1000}
	if rapid.Bool().Draw(g.t, "certParticipant") {
		k := key(rapid.IntRange(0, nKeys-1).Draw(g.t, "certKey")).Public()
		c.Participant, c.Role = &k, "maintainer"
	} else {
		if len(g.cons) == 0 {
			g.contribution()
		}
		var cs []cid.Cid
		for _, b := range rapid.SliceOfNDistinct(rapid.SampledFrom(g.cons), 1, 3, func(b *protocol.Block) string { return b.CID.KeyString() }).Draw(g.t, "released") {
			cs = append(cs, b.CID)
		}
		if rapid.IntRange(0, 5).Draw(g.t, "releaseOther") == 0 {
			cs = append(cs, rapid.SampledFrom(append(g.all, g.mans...)).Draw(g.t, "releasedAny").CID)
		}
		c.Release = &protocol.Release{Name: "r", Root: make([]byte, 32), Contributions: links(cs...)}
	}
	under := g.underFor()
	c.Under = protocol.Link{Cid: under.CID}
	g.maybeEmit(g.signAct(c, under))
}

// rotation draws a key's rotation to a successor: often by the author of
// an earlier rotation (to its successor again, or to another key) or to
// an earlier rotation's successor, so that rotations conflict. The
// successors are test keys 6 to 9, which sign nothing else: the reference
// models how a rotation stands (SPEC §12.14), not what a successor's
// records count for through it, so no record here may count through one.
func (g *gen) rotation() {
	author := rapid.IntRange(0, nKeys+3).Draw(g.t, "author")
	succ := rapid.IntRange(nKeys, nKeys+3).Draw(g.t, "successor")
	if len(g.rotations) > 0 {
		prev := rapid.SampledFrom(g.rotations).Draw(g.t, "rotationBefore")
		switch rapid.IntRange(0, 3).Draw(g.t, "rotationAgain") {
		case 0: // the same key again
			author = keyIndex(prev.Record.Author)
			if rapid.Bool().Draw(g.t, "sameSuccessor") {
				succ = keyIndex(prev.Record.Rotation().Successor)
			}
		case 1: // another key to the same successor
			succ = keyIndex(prev.Record.Rotation().Successor)
		}
	}
	if succ == author {
		succ = nKeys + (author-nKeys+1+rapid.IntRange(0, 2).Draw(g.t, "otherSuccessor"))%4
	}
	b := seal(g.t, &protocol.Record{Commons: g.id, Time: g.time(), Body: &protocol.Rotation{Successor: key(succ).Public()}}, author, succ)
	g.rotations = append(g.rotations, b)
	g.maybeEmit(b)
}

// drawContested draws a history rich in contests that get settled, and in
// bans on heads that stop being heads: an association {0, 1, 2} of
// threshold 1, whose keys sign updates alone that often revoke the others
// and often ban keys 3 to 5, which contribute, review, pledge and dispute;
// the association's keys resolve the disputes, alone or with a copy
// co-signed by another, so that contests suspend resolutions. The records
// come in a random order: in the order drawn, no contest is ever settled
// later.
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
	gm.Policy = &protocol.Policy{Bans: true, Coalition: 1, Association: 1}
	gb := seal(t, &protocol.Record{Time: 1, Body: gm}, 0)
	g.id = gb.CID
	g.mans = append(g.mans, gb)
	g.emit(gb)
	for range rapid.IntRange(1, 30).Draw(t, "steps") {
		switch k := rapid.IntRange(0, 14).Draw(t, "kind"); {
		case k == 12:
			// A dispute about a contribution, a review or a pledge.
			var pool []*protocol.Block
			pool = append(append(append(pool, g.cons...), g.reviews...), g.pledges...)
			if len(pool) == 0 {
				continue
			}
			subject := rapid.SampledFrom(pool).Draw(t, "disputed")
			var touched []*protocol.Block // reviews by a key some update revokes: perhaps suspended
			for _, r := range g.reviews {
				for _, m := range g.mans {
					if slices.Contains(m.Record.Manifest().Revoked, r.Record.Author) {
						touched = append(touched, r)
						break
					}
				}
			}
			if len(touched) > 0 && rapid.IntRange(0, 2).Draw(t, "disputeTouched") == 0 {
				subject = rapid.SampledFrom(touched).Draw(t, "disputedTouched")
			}
			under := g.mans[0]
			if rapid.Bool().Draw(t, "disputeUnderLater") {
				under = rapid.SampledFrom(g.mans).Draw(t, "disputeUnder")
			}
			d := &protocol.Dispute{Subject: &protocol.Link{Cid: subject.CID}, Reason: "disputed", Under: protocol.Link{Cid: under.CID}}
			b := seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: d}, rapid.IntRange(3, 5).Draw(t, "disputer"))
			g.disputes = append(g.disputes, b)
			g.emit(b)
		case k >= 13:
			// A resolution by one association key, which an update may
			// revoke, under any version: upholding with the effect that
			// fits or none, or dismissing; perhaps replacing an earlier
			// one; perhaps with a copy co-signed by another key.
			if len(g.disputes) == 0 {
				continue
			}
			d := rapid.SampledFrom(g.disputes).Draw(t, "resolves")
			// Usually under a version no older than the dispute and its
			// subject.
			basis := []cid.Cid{d.Record.Dispute().Under.Cid}
			if v, ok := madeUnder(g.drawn(d.Record.Dispute().Subject.Cid)); ok {
				basis = append(basis, v)
			}
			under := rapid.SampledFrom(g.mans).Draw(t, "resolutionUnder")
			if ok := g.laterThan(basis...); len(ok) > 0 && rapid.IntRange(0, 3).Draw(t, "resolutionLater") != 0 {
				under = rapid.SampledFrom(ok).Draw(t, "resolutionLaterUnder")
			}
			body := &protocol.Resolution{Dispute: protocol.Link{Cid: d.CID}, Outcome: protocol.OutcomeDismiss, Reason: "decided",
				Under: protocol.Link{Cid: under.CID}}
			if rapid.IntRange(0, 2).Draw(t, "uphold") != 0 {
				body.Outcome = protocol.OutcomeUphold
				for _, b := range append(append(append([]*protocol.Block(nil), g.cons...), g.reviews...), g.pledges...) {
					if b.CID == d.Record.Dispute().Subject.Cid && rapid.IntRange(0, 3).Draw(t, "withEffect") != 0 {
						body.Effect = fitting(b)
					}
				}
			}
			var same []cid.Cid
			for _, r := range g.resolutions {
				if r.Record.Resolution().Dispute.Cid == d.CID {
					same = append(same, r.CID)
				}
			}
			if len(same) > 0 && rapid.IntRange(0, 2).Draw(t, "replaces") == 0 {
				body.Replaces = links(rapid.SampledFrom(same).Draw(t, "replaced"))
			}
			signer := rapid.IntRange(0, 2).Draw(t, "resolver")
			b := seal(t, &protocol.Record{Commons: g.id, Time: g.time(), Body: body}, signer)
			g.resolutions = append(g.resolutions, b)
			g.emit(b)
			if rapid.IntRange(0, 2).Draw(t, "copy") == 0 {
				r := *b.Record
				r.Cosigs = nil
				if err := protocol.Cosign(&r, key((signer+1+rapid.IntRange(0, 1).Draw(t, "coResolver"))%3)); err != nil {
					t.Fatalf("cosign: %v", err)
				}
				c, err := protocol.NewBlock(&r)
				if err != nil {
					t.Fatalf("block: %v", err)
				}
				g.resolutions = append(g.resolutions, c)
				g.emit(c)
			}
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
				m.Association = pubs(slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return slices.Contains(rv, i) })...)
				if rapid.IntRange(0, 3).Draw(t, "revokesMaintainer") == 0 {
					// A maintainer's key too: suspended while the update
					// is contested.
					rv = append(rv, rapid.IntRange(3, 5).Draw(t, "revokedMaintainer"))
				}
				m.Revoked = pubs(rv...)
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
			um := rapid.SampledFrom(g.mans).Draw(t, "under")
			under := um.CID
			d := rapid.SampledFrom([]string{protocol.DecisionAccept, protocol.DecisionReject}).Draw(t, "decision")
			reviewer := rapid.IntRange(3, 5).Draw(t, "reviewer")
			if ms := um.Record.Manifest().Maintainers; len(ms) > 0 && rapid.Bool().Draw(t, "reviewerMaintains") {
				reviewer = keyIndex(rapid.SampledFrom(ms).Draw(t, "maintainer"))
			}
			b := review(t, g.id, target, under, g.time(), reviewer, d)
			g.reviews = append(g.reviews, b)
			g.emit(b)
		default:
			g.emit(rapid.SampledFrom(g.emitted).Draw(t, "dup"))
		}
	}
	return g.id, rapid.Permutation(g.emitted).Draw(t, "order")
}
