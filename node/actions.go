package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// inertRule says what publishChecked does with a record the commons would
// hold inert.
type inertRule int

const (
	refuseInert   inertRule = iota // refuse it (the caller has no way to force it)
	offerForce                     // refuse it, saying that forcing it publishes it anyway
	publishForced                  // publish it all the same
)

// forceIf returns the rule of a caller that may force: publishForced if it
// does.
func forceIf(force bool) inertRule {
	if force {
		return publishForced
	}
	return offerForce
}

// create builds a record on the event loop (where the views and the clock
// live), signs it, asks the commons how it would stand, and unless it would
// be inert (and force does not publish it) stores, merges and publishes it.
func (n *Node) create(ctx context.Context, force inertRule, build func() (*protocol.Record, error)) (api.Published, error) {
	blk, err := n.sign(ctx, build)
	if err != nil {
		return api.Published{}, err
	}
	return n.publishChecked(ctx, blk, force, false)
}

// publishChecked admits blk (admit.go; not a draft, which lacks
// signatures), classifies it against its commons (crdt's Classify, or
// ClassifyDraft with draft), refuses it with crdt's reason when it would be
// inert unless force is set, and otherwise commits and publishes it.
func (n *Node) publishChecked(ctx context.Context, blk *protocol.Block, force inertRule, draft bool) (api.Published, error) {
	if !draft {
		var aerr error
		n.admit([]*protocol.Block{blk}, cid.Undef, func(_ *protocol.Block, err error) { aerr = err })
		if aerr != nil {
			return api.Published{}, fmt.Errorf("%w: record: %w", api.ErrBadRequest, aerr)
		}
	}
	v, err := n.classify(ctx, blk, draft)
	if err != nil {
		return api.Published{}, err
	}
	pub := api.Published{CID: blk.CID.String(), Class: string(v.Class), Reason: v.Reason}
	if v.Class == crdt.ClassInert && force != publishForced {
		hint := ""
		if force == offerForce {
			hint = " (force publishes it anyway)"
		}
		return pub, fmt.Errorf("%w: the commons would hold %s %s inert (%s); nothing was published%s",
			api.ErrForbidden, blk.Record.Type(), blk.CID, v.Reason, hint)
	}
	if draft {
		return pub, nil
	}
	if err := n.commit(ctx, blk, blk.Record.IsGenesis()); err != nil {
		return api.Published{}, err
	}
	return pub, nil
}

// classify asks the commons of blk how blk would stand if added now. A
// genesis manifest is classified in a commons of its own.
func (n *Node) classify(ctx context.Context, blk *protocol.Block, draft bool) (crdt.Verdict, error) {
	var v crdt.Verdict
	var cerr error
	err := n.do(ctx, func() {
		st := crdt.New(blk.CID)
		if id := blk.CommonsID(); !blk.Record.IsGenesis() {
			rep := n.commons[id]
			if rep == nil {
				cerr = fmt.Errorf("%w: record %s belongs to commons %s, which is not replicated here", api.ErrUnknownCommons, blk.CID, id)
				return
			}
			st = rep.state
		}
		if draft {
			v, cerr = st.ClassifyDraft(blk)
		} else {
			v, cerr = st.Classify(blk)
		}
	})
	if err != nil {
		return v, err
	}
	if cerr != nil && !errors.Is(cerr, api.ErrUnknownCommons) {
		cerr = fmt.Errorf("%w: record %s: %w", api.ErrBadRequest, blk.CID, cerr)
	}
	return v, cerr
}

// sign builds a record on the event loop, stamps it with the clock and
// signs it with the node's key, without storing it.
func (n *Node) sign(ctx context.Context, build func() (*protocol.Record, error)) (*protocol.Block, error) {
	var rec *protocol.Record
	var berr error
	if err := n.do(ctx, func() {
		if rec, berr = build(); berr == nil {
			// A time build set is the least the record needs (a profile
			// after one dated ahead, SetProfile).
			rec.Time = max(rec.Time, n.nextTime())
		}
	}); err != nil {
		return nil, err
	}
	if berr != nil {
		return nil, berr
	}
	if err := n.solveWork(ctx, rec); err != nil {
		return nil, err
	}
	if err := protocol.Sign(rec, n.key); err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	blk, err := protocol.NewBlock(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return blk, nil
}

// solveWork gives rec the proof of work its commons asks (SPEC §7.4): it
// moves rec's time forward until the record carries it, then moves the
// node's clock past that time. A genesis asks nothing of itself.
func (n *Node) solveWork(ctx context.Context, rec *protocol.Record) error {
	if rec.IsGenesis() {
		return nil
	}
	bits, err := n.workOf(rec.Commons)
	if err != nil {
		return fmt.Errorf("%w: the genesis manifest of %s has not arrived yet, so the proof of work it asks is not known: %w", api.ErrUnknownCommons, rec.Commons, err)
	}
	if bits == 0 {
		return nil
	}
	rec.Author, rec.Cosigs = n.self, nil // as Sign sets them: the work covers the signing bytes
	const chunk = 1 << 16
	for tried := uint64(0); tried < 1<<(bits+6); tried += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := protocol.SolveWork(rec, bits, chunk)
		if err != nil {
			return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
		}
		if ok {
			return n.do(ctx, func() { n.hlc = max(n.hlc, rec.Time) })
		}
		rec.Time += chunk
	}
	return fmt.Errorf("no time carries the %d bits of work commons %s asks, after %d tries", bits, rec.Commons, uint64(1)<<(bits+6))
}

// checkDraftWork refuses a drafted update that breaks a rule its commons'
// genesis decides (SPEC §7.4, §7.5): short of the work it asks, or banning
// keys where it allows no ban; signed as it is, it could never be
// published. The genesis is the stored one, or one the draft carries (its
// CID is the commons ID, so the bytes are the commons'); with neither, the
// rest of the judging says what is missing.
func checkDraftWork(n *Node, blk *protocol.Block, carried []*protocol.Block) error {
	g, err := n.genesisOf(blk.Record.Commons)
	if err != nil {
		for _, c := range carried {
			if c.CID.Equals(blk.Record.Commons) && c.Record.IsGenesis() {
				g, err = c.Record.Manifest(), nil
			}
		}
	}
	if err != nil {
		return nil
	}
	if want := g.WorkAsked(); blk.Work() < want {
		return badRequest("draft %s carries %d bits of proof of work; commons %s asks %d of every record, so it could never be published: draft the update again with a version of commons that knows proof of work", blk.CID, blk.Work(), blk.Record.Commons, want)
	}
	if m := blk.Record.Manifest(); m != nil && len(m.Banned) > 0 && !g.BansAllowed() {
		return badRequest("draft %s bans keys, and the genesis of commons %s does not let its manifests ban keys, so it could never be published", blk.CID, blk.Record.Commons)
	}
	return nil
}

// commit stores and merges a valid block, then publishes it to its
// commons' topic. join makes the node replicate the block's commons if it
// does not yet.
func (n *Node) commit(ctx context.Context, blk *protocol.Block, join bool) error {
	res, err := n.ingest(ctx, []*protocol.Block{blk}, join)
	if err != nil {
		return err
	}
	if res.skipped[0] {
		return fmt.Errorf("%w: record %s belongs to commons %s, which is not replicated here", api.ErrUnknownCommons, blk.CID, blk.CommonsID())
	}
	if n.ps != nil {
		id := blk.CommonsID()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.publish(id, blk.Raw)
		}()
	}
	return nil
}

// CreateManifest founds a new commons with a genesis manifest signed by
// this node's key, which is by default the association's only key. It
// returns the commons ID.
func (n *Node) CreateManifest(ctx context.Context, p api.ManifestParams) (string, error) {
	m, err := n.genesis(p)
	if err != nil {
		return "", err
	}
	if m.Threshold > 1 {
		return "", badRequest("a genesis with threshold %d needs that many signatures: draft it (manifest create --draft FILE), have it co-signed, then publish it", m.Threshold)
	}
	pub, err := n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		return &protocol.Record{Body: m}, nil
	})
	if err != nil {
		return "", err
	}
	return pub.CID, nil
}

// genesis builds a genesis manifest body from p: by default this node's
// key is the association's only key.
func (n *Node) genesis(p api.ManifestParams) (*protocol.Manifest, error) {
	if p.Name == nil || p.Licence == nil {
		return nil, badRequest("a manifest needs a name and a licence")
	}
	if len(p.Revoke) > 0 || len(p.On) > 0 || len(p.Ban) > 0 || len(p.Unban) > 0 {
		return nil, badRequest("a new commons has no keys to revoke or ban and no version to build on")
	}
	m := &protocol.Manifest{Association: []protocol.PublicKey{n.self}, Threshold: 1}
	applyManifestParams(m, p)
	if p.Bans == nil || *p.Bans {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Bans = true
	}
	if p.Coalition == nil || *p.Coalition {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Coalition = protocol.CoalitionVersion
	}
	if p.AssociationRecords == nil || *p.AssociationRecords {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Association = protocol.AssociationVersion
	}
	if !m.IsAssociation(n.self) {
		return nil, badRequest("this node's key %s must be one of the association keys: it signs the genesis manifest", n.self)
	}
	return m, nil
}

// oneKeyActs reports whether one key alone can act for an association of
// several (threshold 1): if it is stolen, the thief can contest every later
// version, even once revoked (SPEC §12.1).
func oneKeyActs(m *protocol.Manifest) bool {
	return m.Threshold <= 1 && len(m.Association) > 1
}

// oneKeyWarning is the warning for a manifest where oneKeyActs.
func oneKeyWarning(m *protocol.Manifest) string {
	return fmt.Sprintf("any one of the %d association keys can act alone (threshold 1): a thief holding one can contest every later version, even after it is revoked; raise the threshold to 2 or more early", len(m.Association))
}

// UpdateManifest publishes a new manifest version on top of every current
// head (so it also merges a fork), or of the versions p.On names.
// Parameters not given keep their values.
// It needs a predecessor whose threshold this node's key meets alone; for a
// higher threshold use DraftManifest and CosignManifest.
//
// The node asks the commons how the update would stand before publishing
// it: one that would be inert is refused with the reason, unless p.Force.
func (n *Node) UpdateManifest(ctx context.Context, commons string, p api.ManifestParams) (api.Published, error) {
	var m *protocol.Manifest
	var removed []protocol.PublicKey
	pub, err := n.create(ctx, forceIf(p.Force), func() (*protocol.Record, error) {
		r, err := n.buildUpdate(commons, p, true)
		if err == nil {
			m = r.Manifest()
			removed = n.removedUnrevoked(r)
		}
		return r, err
	})
	if err == nil && oneKeyActs(m) {
		pub.Warnings = append(pub.Warnings, oneKeyWarning(m))
	}
	if err == nil && len(removed) > 0 {
		pub.Warnings = append(pub.Warnings, fmt.Sprintf("%s left the association without being revoked: keys that met the threshold of a version they served in can still sign a version forked from it, which the commons cannot tell from the association's own (SPEC §12.1); revoke them (--revoke) unless they are trusted", keyNames(removed)))
	}
	return pub, err
}

// removedUnrevoked returns the keys of the association of update r's
// predecessors that r neither keeps nor revokes, and that no accepted
// manifest has revoked. Loop only.
func (n *Node) removedUnrevoked(r *protocol.Record) []protocol.PublicKey {
	rep := n.commons[r.Commons]
	m := r.Manifest()
	if rep == nil || m == nil {
		return nil
	}
	revoked := rep.state.Revoked()
	var out []protocol.PublicKey
	for _, p := range m.Prev {
		pb := rep.state.Manifest(p.Cid)
		if pb == nil {
			continue
		}
		for _, k := range pb.Record.Manifest().Association {
			if !m.IsAssociation(k) && !slices.Contains(m.Revoked, k) && !slices.Contains(revoked, k) && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func keyNames(ks []protocol.PublicKey) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = k.String()
	}
	return strings.Join(s, ", ")
}

// DraftManifest is UpdateManifest without publishing: it returns the new
// version signed by this node alone, for other association keys to
// co-sign (CosignManifest) before anyone publishes it (Publish).
// A draft that could not take effect even once every association key had
// co-signed it is refused, unless p.Force.
//
// With commons "", it drafts a genesis manifest instead, for an
// association of several keys to found a commons together: signed by this
// node, to be co-signed by the others up to its threshold.
func (n *Node) DraftManifest(ctx context.Context, commons string, p api.ManifestParams) ([]byte, error) {
	build := func() (*protocol.Record, error) { return n.buildUpdate(commons, p, false) }
	if commons == "" {
		m, err := n.genesis(p)
		if err != nil {
			return nil, err
		}
		build = func() (*protocol.Record, error) { return &protocol.Record{Body: m}, nil }
	}
	blk, err := n.sign(ctx, build)
	if err != nil {
		return nil, err
	}
	if _, err := n.publishChecked(ctx, blk, forceIf(p.Force), true); err != nil {
		return nil, err
	}
	if commons == "" {
		return encodeBundle(bundle{draft: blk}) // a genesis: no manifests before it
	}
	return n.draftBundle(ctx, blk)
}

// draftBundle returns the draft bundle (bundle.go) of blk, a record of a
// commons, carrying the commons' manifests that bear on who may sign.
func (n *Node) draftBundle(ctx context.Context, blk *protocol.Block) ([]byte, error) {
	b := bundle{draft: blk}
	if err := n.do(ctx, func() {
		if rep := n.commons[blk.Record.Commons]; rep != nil {
			b.carried = authority(rep.state)
		}
	}); err != nil {
		return nil, err
	}
	return encodeBundle(b)
}

// buildUpdate makes the next manifest version of a commons. Loop only.
func (n *Node) buildUpdate(commons string, p api.ManifestParams, alone bool) (*protocol.Record, error) {
	rep, err := n.replicaFor(commons)
	if err != nil {
		return nil, err
	}
	headCID, head := rep.state.Head()
	if head == nil {
		return nil, fmt.Errorf("%w: the genesis manifest of %s has not arrived yet", api.ErrUnknownCommons, commons)
	}
	heads := rep.state.Forks()
	if len(heads) == 0 {
		heads = []cid.Cid{headCID}
	}
	if len(p.On) > 0 {
		heads = heads[:0]
		for _, s := range p.On {
			c, err := cid.Decode(s)
			if err != nil {
				return nil, badRequest("on %q: not a CID: %w", s, err)
			}
			if !rep.state.OnChain(c) && !rep.state.Contested(c) {
				return nil, badRequest("on %s: not an accepted or contested manifest version of commons %s", s, commons)
			}
			if !slices.Contains(heads, c) {
				heads = append(heads, c)
			}
		}
		head = rep.state.Manifest(heads[0]).Record.Manifest()
	}
	if err := vouchesForRevoked(n, rep, heads, p); err != nil {
		return nil, err
	}
	if p.Work != nil {
		return nil, badRequest("only a new commons' genesis sets the proof of work its records carry; it cannot change later (it is %d bits in commons %s)", rep.state.Genesis().WorkAsked(), commons)
	}
	if p.Bans != nil {
		allows := "does not allow them"
		if rep.state.Genesis().BansAllowed() {
			allows = "allows them"
		}
		return nil, badRequest("only a new commons' genesis says whether its manifests may ban keys, for the commons' life (that of %s %s)", commons, allows)
	}
	if p.Coalition != nil {
		return nil, badRequest("only a new commons' genesis says whether it carries profiles and sponsorships, for the commons' life (that of %s carries version %d: 0 is none)", commons, rep.state.Genesis().Coalition())
	}
	if p.AssociationRecords != nil {
		return nil, badRequest("only a new commons' genesis says whether it carries disputes, certificates and rotations, for the commons' life (that of %s carries version %d: 0 is none)", commons, rep.state.Genesis().AssociationRecords())
	}
	m := *head
	m.Prev, m.Version, m.Revoked, m.Banned = nil, 0, slices.Clone(head.Revoked), nil
	if head.Policy != nil { // the genesis's work, bans and coalition are not carried on: they hold anyway
		pol := *head.Policy
		pol.Work, pol.Bans, pol.Coalition, pol.Association = 0, false, 0, 0
		m.Policy = &pol
	}
	var banned [][]protocol.PublicKey // by each version the update builds on
	for _, h := range heads {
		hm := rep.state.Manifest(h).Record.Manifest()
		if !hm.IsAssociation(n.self) {
			return nil, fmt.Errorf("%w: this node's key %s is not an association key of manifest %s; if that version was made with a stolen key, build on the last version this key can sign (manifest update --on CID) and revoke the stolen key", api.ErrForbidden, n.self, h)
		}
		if alone && hm.Threshold > 1 {
			return nil, fmt.Errorf("%w: manifest %s needs %d association signatures: draft the update, have it co-signed, then publish it", api.ErrForbidden, h, hm.Threshold)
		}
		m.Prev = append(m.Prev, protocol.Link{Cid: h})
		m.Version = max(m.Version, hm.Version+1)
		m.Revoked = append(m.Revoked, hm.Revoked...)
		banned = append(banned, hm.Banned)
	}
	slices.SortFunc(m.Prev, func(a, b protocol.Link) int { return compareBytes(a.Bytes(), b.Bytes()) })
	applyManifestParams(&m, p)
	if p.Maintainers != nil {
		fixQuorums(&m, head, p)
	}
	if err := dropRevoked(&m, head, p); err != nil {
		return nil, err
	}
	if err := setBans(&m, banned, p, rep.state.Genesis()); err != nil {
		return nil, err
	}
	return &protocol.Record{Commons: rep.id, Body: &m}, nil
}

// setBans sets the keys update m bans: those the versions it builds on ban
// (each of heads), with p.Ban and without p.Unban (SPEC §12.3). Where the
// versions it merges disagree on a key (a ban made or lifted on one branch
// only), it asks which is meant rather than let the union undo a lifted
// ban. It refuses what would do nothing (banning a key banned already,
// lifting one that is not, any ban where the genesis allows none) and a
// banned key the update would give authority, naming what to do instead.
func setBans(m *protocol.Manifest, heads [][]protocol.PublicKey, p api.ManifestParams, genesis *protocol.Manifest) error {
	if len(p.Ban) > 0 && !genesis.BansAllowed() {
		return badRequest("this commons' genesis does not let its manifests ban keys: that is decided when a commons is founded (manifest create allows bans unless --bans=false)")
	}
	ban, unban := sortKeys(p.Ban), sortKeys(p.Unban)
	var banned []protocol.PublicKey // by some of heads
	for _, h := range heads {
		banned = append(banned, h...)
	}
	banned = sortKeys(banned)
	byAll := func(k protocol.PublicKey) bool {
		for _, h := range heads {
			if !slices.Contains(h, k) {
				return false
			}
		}
		return true
	}
	for _, k := range banned {
		if !byAll(k) && !slices.Contains(ban, k) && !slices.Contains(unban, k) {
			return badRequest("the versions this update merges disagree on banning %s (one of them made or lifted the ban): say --ban %s to keep it banned, or --unban %s to lift it", k, k, k)
		}
	}
	for _, k := range unban {
		switch {
		case slices.Contains(ban, k):
			return badRequest("%s is both to be banned and to have its ban lifted: say one", k)
		case !slices.Contains(banned, k):
			return badRequest("%s is not banned by the versions this update builds on: nothing to lift", k)
		}
	}
	m.Banned = slices.DeleteFunc(banned, func(k protocol.PublicKey) bool { return slices.Contains(unban, k) })
	for _, k := range ban {
		switch {
		case byAll(k):
			return badRequest("%s is banned already by the versions this update builds on", k)
		case m.IsAssociation(k):
			return badRequest("%s is an association key of this update: an association key is revoked (--revoke), not banned", k)
		case m.IsMaintainer(k):
			return badRequest("%s is a maintainer in this update: take it off the maintainers (--maintainer lists them all), or revoke it (--revoke) if it was stolen", k)
		}
		m.Banned = append(m.Banned, k)
	}
	m.Banned = sortKeys(m.Banned)
	for _, k := range m.Banned {
		switch {
		case m.IsMaintainer(k):
			return badRequest("%s is banned, so its reviews would count for nothing as a maintainer: lift the ban (--unban) or leave it off the maintainers", k)
		case m.IsAssociation(k):
			return badRequest("%s is banned: lift the ban (--unban) before making it an association key", k)
		}
	}
	if len(m.Banned) > protocol.MaxKeys {
		return badRequest("%d keys would be banned, at most %d at a time: lift some (--unban)", len(m.Banned), protocol.MaxKeys)
	}
	if len(m.Banned) == 0 {
		m.Banned = nil
	}
	return nil
}

// vouchesForRevoked refuses an update that revokes a key and builds, by
// default, on versions that key signed since this node's key last signed
// one: those versions, and what they changed (the association, the
// maintainers), would stay in force, in the revoking update's own past.
// Naming the versions to build on (p.On) says they are to be kept; else the
// update must build on the version before the first of them.
func vouchesForRevoked(n *Node, rep *replica, heads []cid.Cid, p api.ManifestParams) error {
	if len(p.On) > 0 || p.Force || len(p.Revoke) == 0 {
		return nil
	}
	seen := map[cid.Cid]bool{}
	walk := slices.Clone(heads)
	for len(walk) > 0 {
		c := walk[len(walk)-1]
		walk = walk[:len(walk)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		r := rep.state.Manifest(c).Record
		signers := r.Signers()
		if slices.Contains(signers, n.self) {
			continue // this node's key vouched for it and what came before
		}
		for _, k := range p.Revoke {
			if slices.Contains(signers, k) {
				return fmt.Errorf("%w: version %s, which this update would build on, was signed by %s, the key it revokes, after this node's key last signed a version; building on it keeps it and all it changed in force. If it was signed before the key was stolen, name the version to build on: --on %s; if after, build on the version before it (manifest show lists them)", api.ErrForbidden, c, k, heads[0])
			}
		}
		for _, l := range r.Manifest().Prev {
			walk = append(walk, l.Cid)
		}
	}
	return nil
}

// dropRevoked takes the revoked keys out of the association and the
// maintainers: a revoked key in those lists would count for nothing, and
// would only mislead whoever reads the manifest. A threshold the remaining
// keys cannot meet is an error naming the fix; quorums are capped.
func dropRevoked(m, prev *protocol.Manifest, p api.ManifestParams) error {
	if len(m.Revoked) == 0 {
		return nil
	}
	keep := func(ks []protocol.PublicKey) []protocol.PublicKey {
		return slices.DeleteFunc(slices.Clone(ks), func(k protocol.PublicKey) bool { return slices.Contains(m.Revoked, k) })
	}
	m.Association = keep(m.Association)
	if len(m.Association) == 0 {
		return badRequest("the update revokes every association key; list at least one other with --association")
	}
	if m.Threshold > uint64(len(m.Association)) {
		return badRequest("without the revoked keys the association has %d keys, fewer than its threshold of %d; lower it with --threshold", len(m.Association), m.Threshold)
	}
	if maint := keep(m.Maintainers); len(maint) != len(m.Maintainers) {
		m.Maintainers = maint
		if len(maint) == 0 {
			m.Quorum, m.RejectQuorum = 0, 0
		} else {
			fixQuorums(m, prev, api.ManifestParams{Quorum: p.Quorum, RejectQuorum: p.RejectQuorum})
		}
	}
	return nil
}

// CosignManifest adds this node's association signature to a drafted
// manifest, or acknowledgement (cosignAck): a bare record, or a draft
// bundle (bundle.go), returned in the same form. The node judges the draft by its own state of the commons
// when that holds the draft's predecessors, else by the manifests the
// bundle carries: this node's key must be an association key of each
// predecessor, and a draft that could not take effect even with every
// signature is refused unless force.
func (n *Node) CosignManifest(ctx context.Context, raw []byte, force bool) ([]byte, error) {
	b, err := decodeBundle(raw)
	if err != nil {
		return nil, err
	}
	blk := b.draft
	m := blk.Record.Manifest()
	if protocol.Cosigned(blk.Record.Type()) && m == nil {
		var cerr error
		if err := n.do(ctx, func() {
			if blk.Record.Rotation() != nil {
				cerr = n.cosignRotation(blk, force)
			} else {
				cerr = n.cosignAct(blk, force)
			}
		}); err != nil {
			return nil, err
		}
		if cerr != nil {
			return nil, cerr
		}
	} else if m == nil {
		return nil, badRequest("draft %s is a %s, not a manifest or an act of the association (acknowledgement, resolution, certificate)", blk.CID, blk.Record.Type())
	} else if blk.Record.IsGenesis() {
		if !m.IsAssociation(n.self) {
			return nil, fmt.Errorf("%w: this node's key %s is not an association key of the drafted genesis %s", api.ErrForbidden, n.self, blk.CID)
		}
		err = n.judgeDraft(crdt.New(blk.CID), blk, force)
	} else if werr := checkDraftWork(n, blk, b.carried); werr != nil {
		return nil, werr
	} else {
		// The node's own state judges when it holds what the draft builds
		// on; else the manifests the draft carries, with the node's own
		// (a revocation it holds counts, whatever the file leaves out).
		var judged, replicated bool
		var own []*protocol.Block
		if err := n.do(ctx, func() {
			rep := n.commons[blk.Record.Commons]
			if rep == nil {
				return
			}
			replicated = true
			if knowsAll(rep.state, m.Prev) || len(b.carried) == 0 {
				judged, err = true, n.judgeDraft(rep.state, blk, force)
				return
			}
			own = authority(rep.state)
		}); err != nil {
			return nil, err
		}
		if !judged {
			if len(b.carried) == 0 && !replicated {
				return nil, fmt.Errorf("%w: commons %s is not replicated here, and the draft carries none of its manifests to judge it by: co-sign the draft file that manifest update --draft writes (it carries them), or join the commons first (commons join %s)",
					api.ErrUnknownCommons, blk.Record.Commons, blk.Record.Commons)
			}
			st, serr := bundle{draft: blk, carried: append(own, b.carried...)}.carriedState()
			if serr != nil {
				return nil, serr
			}
			err = n.judgeDraft(st, blk, force)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := protocol.Cosign(blk.Record, n.key); err != nil {
		return nil, badRequest("cosign: %w", err)
	}
	signed, err := protocol.NewBlock(blk.Record)
	if err != nil {
		return nil, badRequest("cosign: %w", err)
	}
	if !isCAR(raw) {
		return signed.Raw, nil
	}
	return encodeBundle(bundle{draft: signed, carried: b.carried})
}

// judgeDraft checks a drafted manifest against st, the state of its
// commons (or of itself, for a genesis): not on the chain already, its
// predecessors known there and each naming this node's key in its
// association, and able to take effect once fully signed (unless force).
// On the loop when st is a replica's.
func (n *Node) judgeDraft(st *crdt.State, blk *protocol.Block, force bool) error {
	m := blk.Record.Manifest()
	if st.OnChain(blk.CID) && !force {
		return badRequest("draft %s is already published and on the chain: co-signing it would make another record, a fork of the same update", blk.CID)
	}
	if miss := missingPrev(st, m.Prev); len(miss) > 0 {
		return fmt.Errorf("%w: the draft's predecessor %s is not a manifest known here: this node has not synced the commons yet (commons sync), or co-sign the draft file that manifest update --draft writes, which carries the manifests", api.ErrUnknownCommons, miss[0])
	}
	for _, p := range m.Prev {
		if !st.Manifest(p.Cid).Record.Manifest().IsAssociation(n.self) {
			return fmt.Errorf("%w: this node's key %s is not an association key of manifest %s", api.ErrForbidden, n.self, p.Cid)
		}
	}
	v, err := st.ClassifyDraft(blk)
	if err != nil {
		return fmt.Errorf("%w: record %s: %w", api.ErrBadRequest, blk.CID, err)
	}
	if v.Class == crdt.ClassInert && !force {
		return fmt.Errorf("%w: the commons would hold manifest %s inert even with every signature (%s); not co-signed (force co-signs it anyway)",
			api.ErrForbidden, blk.CID, v.Reason)
	}
	return nil
}

// Publish validates a record signed elsewhere (a co-signed manifest, a
// record from another tool), stores it and gossips it. A genesis manifest
// makes the node replicate its commons; any other record must belong to a
// commons replicated here. A record the commons would hold inert (a manifest
// update short of signatures, a review by a revoked key) is refused with
// the reason, unless force.
func (n *Node) Publish(ctx context.Context, raw []byte, force bool) (api.Published, error) {
	if isCAR(raw) { // a draft bundle: its draft, the root, and manifests only
		b, err := decodeBundle(raw)
		if err != nil {
			return api.Published{}, err
		}
		raw = b.draft.Raw
	}
	blk, err := n.parse(raw, cid.Undef)
	if err != nil {
		return api.Published{}, fmt.Errorf("%w: record: %w", api.ErrBadRequest, err)
	}
	return n.publishChecked(ctx, blk, forceIf(force), false)
}

// applyManifestParams overwrites m's fields with those given in p.
func applyManifestParams(m *protocol.Manifest, p api.ManifestParams) {
	if p.Name != nil {
		m.Name = *p.Name
	}
	if p.Licence != nil {
		m.Licence = *p.Licence
	}
	if p.Association != nil {
		m.Association = sortKeys(p.Association)
	}
	if p.Threshold != nil {
		m.Threshold = *p.Threshold
	}
	if p.Maintainers != nil {
		m.Maintainers = sortKeys(p.Maintainers)
		if p.Quorum == nil && m.Quorum == 0 && len(m.Maintainers) > 0 {
			m.Quorum = 1
		}
	}
	if p.Quorum != nil {
		m.Quorum = *p.Quorum
	}
	if p.RejectQuorum != nil {
		m.RejectQuorum = *p.RejectQuorum
	} else if m.RejectQuorum == 0 || m.RejectQuorum > uint64(len(m.Maintainers)) {
		m.RejectQuorum = m.Quorum
	}
	if len(m.Maintainers) == 0 && p.Quorum == nil && p.RejectQuorum == nil {
		m.Quorum, m.RejectQuorum = 0, 0
	}
	if p.Bootstrap != nil {
		m.Bootstrap = slices.Clone(p.Bootstrap)
	}
	m.Revoked = sortKeys(append(m.Revoked, p.Revoke...))
	if p.MaxBlobBytes != nil {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.MaxBlobBytes = *p.MaxBlobBytes
	}
	if p.Work != nil {
		if m.Policy == nil {
			m.Policy = &protocol.Policy{}
		}
		m.Policy.Work = *p.Work
	}
	if m.Policy != nil && *m.Policy == (protocol.Policy{}) {
		m.Policy = nil
	}
}

// fixQuorums keeps quorums valid when an update changes the maintainers
// without naming quorums: the old quorum, capped at the new number.
func fixQuorums(m, prev *protocol.Manifest, p api.ManifestParams) {
	k := uint64(len(m.Maintainers))
	if p.Quorum == nil {
		m.Quorum = min(max(prev.Quorum, 1), k)
	}
	if p.RejectQuorum == nil {
		m.RejectQuorum = min(max(prev.RejectQuorum, 1), k)
	}
}

func sortKeys(ks []protocol.PublicKey) []protocol.PublicKey {
	out := slices.Clone(ks)
	slices.SortFunc(out, protocol.PublicKey.Compare)
	return slices.Compact(out)
}

func compareBytes(a, b []byte) int { return slices.Compare(a, b) }

// Join makes the node replicate a commons: it is listed durably, its topic
// joined, and its records pulled from every connected peer.
func (n *Node) Join(ctx context.Context, commons string) error {
	c, err := commonsID(commons)
	if err != nil {
		return err
	}
	var jerr error
	if err := n.do(ctx, func() {
		if n.leaving[c] != nil {
			jerr = errBeingLeft(c)
			return
		}
		n.joining[c]++ // a Leave waits until the join is done
	}); err != nil || jerr != nil {
		return errors.Join(err, jerr)
	}
	defer func() {
		_ = n.do(context.Background(), func() {
			if n.joining[c]--; n.joining[c] == 0 {
				delete(n.joining, c)
			}
		})
	}()
	// Listed durably first, off the event loop; then replicated.
	if err := n.st.AddCommons(ctx, c); err != nil {
		return fmt.Errorf("node: join %s: %w", c, err)
	}
	if err := n.do(ctx, func() {
		if rep := n.commons[c]; rep != nil {
			rep.listed = true
			return
		}
		var rep *replica
		if rep, jerr = n.addReplica(c); jerr == nil {
			rep.listed = true
			n.afterJoin(c)
		}
	}); err != nil {
		return err
	}
	return jerr
}

// PutBlob stores a payload blob and returns its CID.
func (n *Node) PutBlob(ctx context.Context, data []byte) (string, error) {
	if uint64(len(data)) > api.MaxBlobSize {
		return "", badRequest("blob of %d bytes exceeds this node's limit of %d", len(data), api.MaxBlobSize)
	}
	if err := n.diskOK(); err != nil {
		return "", err
	}
	if err := n.putBlob(ctx, data); err != nil {
		return "", fmt.Errorf("node: store blob: %w", err)
	}
	return protocol.BlobCID(data).String(), nil
}

// Contribute publishes a contribution under the commons' current manifest.
func (n *Node) Contribute(ctx context.Context, p api.ContributeParams) (string, error) {
	payload := make([]protocol.PayloadRef, 0, len(p.Payload))
	var sizes []uint64
	for _, f := range p.Payload {
		c, err := cid.Decode(f.CID)
		if err != nil {
			return "", badRequest("payload %q is not a CID", f.CID)
		}
		_, size, err := n.st.ReadBlob(ctx, c, 0, nil) // its size only
		if errors.Is(err, store.ErrNotFound) {
			return "", badRequest("payload %s is not stored here; upload it first", f.CID)
		} else if err != nil {
			return "", fmt.Errorf("node: read blob: %w", err)
		}
		payload = append(payload, protocol.PayloadRef{CID: protocol.Link{Cid: c}, Name: f.Name, Size: uint64(size)})
		sizes = append(sizes, uint64(size))
	}
	pub, err := n.create(ctx, refuseInert, func() (*protocol.Record, error) {
		rep, err := n.replicaFor(p.Commons)
		if err != nil {
			return nil, err
		}
		headCID, head := rep.state.Head()
		if head == nil {
			return nil, fmt.Errorf("%w: the manifest of %s has not arrived yet", api.ErrUnknownCommons, p.Commons)
		}
		for i, s := range sizes {
			if s > head.BlobLimit() {
				return nil, badRequest("payload %s is %d bytes; the commons allows %d", p.Payload[i].CID, s, head.BlobLimit())
			}
		}
		c := &protocol.Contribution{
			Title: p.Title, Summary: p.Summary, Kind: p.Kind, Payload: payload,
			Licence: protocol.Link{Cid: headCID}, Provenance: protocol.ProvenanceVolunteer, Sponsor: p.Sponsor,
		}
		if p.Paid || p.Sponsor != nil {
			c.Provenance = protocol.ProvenancePaid
		}
		if p.Revises != "" {
			r, err := cid.Decode(p.Revises)
			if err != nil {
				return nil, badRequest("--revises %q is not a CID", p.Revises)
			}
			if _, ok := rep.state.Status(r); !ok {
				return nil, badRequest("--revises %s is not a contribution of this commons", p.Revises)
			}
			c.Revises = &protocol.Link{Cid: r}
		}
		return &protocol.Record{Commons: rep.id, Body: c}, nil
	})
	if err != nil {
		return "", err
	}
	return pub.CID, nil
}

// Review signs a maintainer's decision on a contribution, naming the
// manifest version under which it counts: the current one if it lists this
// node's key, else the latest that does and is the version the
// contribution assented to or a later one (crdt's ReviewUnder). With none,
// it is refused with the reason, unless p.Force (then it names the current
// version, and the commons holds it inert).
func (n *Node) Review(ctx context.Context, p api.ReviewParams) (api.Published, error) {
	target, err := cid.Decode(p.Target)
	if err != nil {
		return api.Published{}, badRequest("%q is not a CID", p.Target)
	}
	pub, err := n.create(ctx, forceIf(p.Force), func() (*protocol.Record, error) {
		var rep *replica
		for _, id := range n.order {
			if n.commons[id].state.Has(target) {
				rep = n.commons[id]
				break
			}
		}
		if rep == nil {
			return nil, fmt.Errorf("%w: no contribution %s here", api.ErrNotFound, p.Target)
		}
		if _, ok := rep.state.Status(target); !ok {
			typ, _ := rep.state.Type(target)
			return nil, badRequest("%s is a %s, not a contribution: only contributions are reviewed", p.Target, typ)
		}
		under, err := rep.state.ReviewUnder(target, n.self)
		if err != nil {
			if !p.Force {
				return nil, fmt.Errorf("%w: %w", api.ErrForbidden, err)
			}
			under, _ = rep.state.Head()
		}
		return &protocol.Record{Commons: rep.id, Body: &protocol.Review{
			Target: protocol.Link{Cid: target}, Decision: p.Decision, Rationale: p.Rationale, Under: protocol.Link{Cid: under},
		}}, nil
	})
	if err == nil {
		if info, serr := n.Show(ctx, p.Target); serr == nil && info.Status == string(crdt.StatusWithdrawn) {
			pub.Warnings = append(pub.Warnings, fmt.Sprintf("contribution %s is withdrawn by the association (resolution %s): no review decides it while the withdrawal binds", p.Target, info.WithdrawnBy))
		}
	}
	return pub, err
}
