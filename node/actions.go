package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// create builds a record on the event loop (where the views and the clock
// live), signs it, stores it, merges it and publishes it.
func (n *Node) create(ctx context.Context, build func() (*protocol.Record, error)) (*protocol.Block, error) {
	blk, err := n.sign(ctx, build)
	if err != nil {
		return nil, err
	}
	return blk, n.commit(ctx, blk, true)
}

// sign builds a record on the event loop, stamps it with the clock and
// signs it with the node's key, without storing it.
func (n *Node) sign(ctx context.Context, build func() (*protocol.Record, error)) (*protocol.Block, error) {
	var rec *protocol.Record
	var berr error
	if err := n.do(ctx, func() {
		if rec, berr = build(); berr == nil {
			rec.Time = n.nextTime()
		}
	}); err != nil {
		return nil, err
	}
	if berr != nil {
		return nil, berr
	}
	if err := protocol.Sign(rec, n.key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	blk, err := protocol.NewBlock(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return blk, nil
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
		return fmt.Errorf("%w: record %s belongs to commons %s, which is not replicated here", ErrUnknownCommons, blk.CID, commonsOf(blk))
	}
	if n.ps != nil {
		id := commonsOf(blk)
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
func (n *Node) CreateManifest(ctx context.Context, p ManifestParams) (string, error) {
	if p.Name == nil || p.Licence == nil {
		return "", badRequest("a manifest needs a name and a licence")
	}
	if len(p.Revoke) > 0 {
		return "", badRequest("a new commons has no keys to revoke")
	}
	m := &protocol.Manifest{Association: []protocol.PublicKey{n.self}, Threshold: 1}
	applyManifestParams(m, p)
	if !m.IsAssociation(n.self) {
		return "", badRequest("this node's key %s must be one of the association keys: it signs the genesis manifest", n.self)
	}
	if m.Threshold > 1 {
		return "", badRequest("a genesis signed by one key needs threshold 1; raise the threshold in a manifest update")
	}
	blk, err := n.create(ctx, func() (*protocol.Record, error) {
		return &protocol.Record{Body: m}, nil
	})
	if err != nil {
		return "", err
	}
	return blk.CID.String(), nil
}

// UpdateManifest publishes a new manifest version on top of every current
// head (so it also merges a fork). Parameters not given keep their values.
// It needs a predecessor whose threshold this node's key meets alone; for a
// higher threshold use DraftManifest and CosignManifest.
func (n *Node) UpdateManifest(ctx context.Context, commons string, p ManifestParams) (string, error) {
	blk, err := n.create(ctx, func() (*protocol.Record, error) { return n.buildUpdate(commons, p, true) })
	if err != nil {
		return "", err
	}
	return blk.CID.String(), nil
}

// DraftManifest is UpdateManifest without publishing: it returns the new
// version signed by this node alone, for other association keys to
// co-sign (CosignManifest) before anyone publishes it (Publish).
func (n *Node) DraftManifest(ctx context.Context, commons string, p ManifestParams) ([]byte, error) {
	blk, err := n.sign(ctx, func() (*protocol.Record, error) { return n.buildUpdate(commons, p, false) })
	if err != nil {
		return nil, err
	}
	return blk.Raw, nil
}

// buildUpdate makes the next manifest version of a commons. Loop only.
func (n *Node) buildUpdate(commons string, p ManifestParams, alone bool) (*protocol.Record, error) {
	rep, err := n.replicaFor(commons)
	if err != nil {
		return nil, err
	}
	headCID, head := rep.state.Head()
	if head == nil {
		return nil, fmt.Errorf("%w: the genesis manifest of %s has not arrived yet", ErrUnknownCommons, commons)
	}
	heads := rep.state.Forks()
	if len(heads) == 0 {
		heads = []cid.Cid{headCID}
	}
	m := *head
	m.Prev, m.Version, m.Revoked = nil, 0, slices.Clone(head.Revoked)
	for _, h := range heads {
		hm := rep.state.Block(h).Record.Manifest()
		if !hm.IsAssociation(n.self) {
			return nil, fmt.Errorf("%w: this node's key %s is not an association key of manifest %s", ErrForbidden, n.self, h)
		}
		if alone && hm.Threshold > 1 {
			return nil, fmt.Errorf("%w: manifest %s needs %d association signatures: draft the update, have it co-signed, then publish it", ErrForbidden, h, hm.Threshold)
		}
		m.Prev = append(m.Prev, protocol.Link{Cid: h})
		m.Version = max(m.Version, hm.Version+1)
		m.Revoked = append(m.Revoked, hm.Revoked...)
	}
	slices.SortFunc(m.Prev, func(a, b protocol.Link) int { return compareBytes(a.Bytes(), b.Bytes()) })
	applyManifestParams(&m, p)
	if p.Maintainers != nil {
		fixQuorums(&m, head, p)
	}
	return &protocol.Record{Commons: rep.id, Body: &m}, nil
}

// CosignManifest adds this node's signature to a drafted manifest update
// and returns the new bytes. The key must be an association key of every
// predecessor the draft names.
func (n *Node) CosignManifest(ctx context.Context, raw []byte) ([]byte, error) {
	blk, err := protocol.Validate(raw)
	if err != nil {
		return nil, badRequest("draft: %v", err)
	}
	m := blk.Record.Manifest()
	if m == nil || blk.Record.IsGenesis() {
		return nil, badRequest("draft %s is a %s, not a manifest update", blk.CID, blk.Record.Type())
	}
	var ferr error
	if err := n.do(ctx, func() {
		rep := n.commons[blk.Record.Commons]
		if rep == nil {
			ferr = fmt.Errorf("%w: %s is not replicated here", ErrUnknownCommons, blk.Record.Commons)
			return
		}
		for _, p := range m.Prev {
			b := rep.state.Block(p.Cid)
			if b == nil || b.Record.Manifest() == nil {
				ferr = fmt.Errorf("%w: the draft's predecessor %s is not a manifest known here", ErrUnknownCommons, p.Cid)
				return
			}
			if !b.Record.Manifest().IsAssociation(n.self) {
				ferr = fmt.Errorf("%w: this node's key %s is not an association key of manifest %s", ErrForbidden, n.self, p.Cid)
				return
			}
		}
	}); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	if err := protocol.Cosign(blk.Record, n.key); err != nil {
		return nil, badRequest("cosign: %v", err)
	}
	out, _, err := protocol.Encode(blk.Record)
	if err != nil {
		return nil, badRequest("cosign: %v", err)
	}
	return out, nil
}

// Publish validates a record signed elsewhere (a co-signed manifest, a
// record from another tool), stores it and gossips it. A genesis manifest
// makes the node replicate its commons; any other record must belong to a
// commons replicated here.
func (n *Node) Publish(ctx context.Context, raw []byte) (string, error) {
	blk, err := protocol.Validate(raw)
	if err != nil {
		return "", badRequest("record: %v", err)
	}
	if err := protocol.CheckTime(blk.Record, n.nowMillis()); err != nil {
		return "", badRequest("record: %v", err)
	}
	if err := n.checkThreshold(ctx, blk); err != nil {
		return "", err
	}
	if err := n.commit(ctx, blk, blk.Record.IsGenesis()); err != nil {
		return "", err
	}
	return blk.CID.String(), nil
}

// checkThreshold refuses to publish a manifest update that has fewer
// association signatures than a predecessor known here needs: stored, it
// would only be inert.
func (n *Node) checkThreshold(ctx context.Context, blk *protocol.Block) error {
	m := blk.Record.Manifest()
	if m == nil || blk.Record.IsGenesis() {
		return nil
	}
	var terr error
	err := n.do(ctx, func() {
		rep := n.commons[blk.Record.Commons]
		if rep == nil {
			return
		}
		for _, p := range m.Prev {
			b := rep.state.Block(p.Cid)
			if b == nil || b.Record.Manifest() == nil {
				continue
			}
			pm := b.Record.Manifest()
			have := 0
			for _, k := range blk.Record.Signers() {
				if pm.IsAssociation(k) {
					have++
				}
			}
			if uint64(have) < pm.Threshold {
				terr = badRequest("manifest update %s has %d of the %d association signatures manifest %s needs; co-sign it first", blk.CID, have, pm.Threshold, p.Cid)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return terr
}

// applyManifestParams overwrites m's fields with those given in p.
func applyManifestParams(m *protocol.Manifest, p ManifestParams) {
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
		if *p.MaxBlobBytes == 0 {
			m.Policy = nil
		} else {
			m.Policy = &protocol.Policy{MaxBlobBytes: *p.MaxBlobBytes}
		}
	}
}

// fixQuorums keeps quorums valid when an update changes the maintainers
// without naming quorums: the old quorum, capped at the new number.
func fixQuorums(m, prev *protocol.Manifest, p ManifestParams) {
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
	c, err := cid.Decode(commons)
	if err != nil {
		return badRequest("commons ID %q is not a CID: %v", commons, err)
	}
	if c.Version() != 1 || c.Type() != protocol.CodecDagCBOR {
		return badRequest("commons ID %s is not a dag-cbor CIDv1 (a genesis manifest's CID)", commons)
	}
	var jerr error
	if err := n.do(ctx, func() {
		if n.commons[c] != nil {
			return
		}
		if _, jerr = n.addReplica(c); jerr == nil {
			n.afterJoin(c)
		}
	}); err != nil {
		return err
	}
	return jerr
}

// PutBlob stores a payload blob and returns its CID.
func (n *Node) PutBlob(ctx context.Context, data []byte) (string, error) {
	if uint64(len(data)) > MaxBlobSize {
		return "", badRequest("blob of %d bytes exceeds this node's limit of %d", len(data), MaxBlobSize)
	}
	c, err := n.st.PutBlob(ctx, data)
	if err != nil {
		return "", fmt.Errorf("node: store blob: %w", err)
	}
	return c.String(), nil
}

// MaxBlobSize is the largest blob a node stores, whatever a manifest allows.
const MaxBlobSize = 1 << 30

// Contribute publishes a contribution under the commons' current manifest.
func (n *Node) Contribute(ctx context.Context, p ContributeParams) (string, error) {
	payload := make([]protocol.PayloadRef, 0, len(p.Payload))
	var sizes []uint64
	for _, f := range p.Payload {
		c, err := cid.Decode(f.CID)
		if err != nil {
			return "", badRequest("payload %q is not a CID: %v", f.CID, err)
		}
		data, err := n.st.GetBlob(ctx, c)
		if errors.Is(err, store.ErrNotFound) {
			return "", badRequest("payload %s is not stored here; upload it first", f.CID)
		} else if err != nil {
			return "", fmt.Errorf("node: read blob: %w", err)
		}
		payload = append(payload, protocol.PayloadRef{CID: protocol.Link{Cid: c}, Name: f.Name, Size: uint64(len(data))})
		sizes = append(sizes, uint64(len(data)))
	}
	blk, err := n.create(ctx, func() (*protocol.Record, error) {
		rep, err := n.replicaFor(p.Commons)
		if err != nil {
			return nil, err
		}
		headCID, head := rep.state.Head()
		if head == nil {
			return nil, fmt.Errorf("%w: the manifest of %s has not arrived yet", ErrUnknownCommons, p.Commons)
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
				return nil, badRequest("--revises %q is not a CID: %v", p.Revises, err)
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
	return blk.CID.String(), nil
}

// Review signs a maintainer's decision on a contribution under the
// commons' current manifest.
func (n *Node) Review(ctx context.Context, p ReviewParams) (string, error) {
	target, err := cid.Decode(p.Target)
	if err != nil {
		return "", badRequest("%q is not a CID: %v", p.Target, err)
	}
	blk, err := n.create(ctx, func() (*protocol.Record, error) {
		var rep *replica
		for _, id := range n.order {
			if _, ok := n.commons[id].state.Status(target); ok {
				rep = n.commons[id]
				break
			}
		}
		if rep == nil {
			return nil, fmt.Errorf("%w: no contribution %s here", ErrNotFound, p.Target)
		}
		headCID, head := rep.state.Head()
		if head == nil || !head.IsMaintainer(n.self) {
			return nil, fmt.Errorf("%w: this node's key %s is not a maintainer under the current manifest %s", ErrForbidden, n.self, headCID)
		}
		return &protocol.Record{Commons: rep.id, Body: &protocol.Review{
			Target: protocol.Link{Cid: target}, Decision: p.Decision, Rationale: p.Rationale, Under: protocol.Link{Cid: headCID},
		}}, nil
	})
	if err != nil {
		return "", err
	}
	return blk.CID.String(), nil
}
