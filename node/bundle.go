package node

import (
	"bytes"
	"errors"
	"io"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// A draft bundle is how a drafted manifest travels between association
// members: a CAR file whose root is the draft, which comes first, followed
// by every manifest of its commons that the drafting node held. A member
// whose node does not replicate the commons, or has not synced it yet, can
// then judge the draft (who may sign it, whether it could take effect)
// from the manifests it carries, which are signed records like any other.

// maxBundle bounds a bundle's records: a commons' manifests on the chain
// are few.
const maxBundle = 4096

// authority returns the manifests of st that bear on who may sign what:
// those on the chain and the contested ones (a rejected or waiting
// manifest revokes nothing). Loop only, for a replica's state.
func authority(st *crdt.State) []*protocol.Block {
	var out []*protocol.Block
	for _, b := range st.ManifestRecords() {
		if st.OnChain(b.CID) || st.Contested(b.CID) {
			out = append(out, b)
		}
	}
	return out
}

// bundle is a draft and the manifests it carries.
type bundle struct {
	draft   *protocol.Block
	carried []*protocol.Block
}

// encodeBundle writes b as a CAR file.
func encodeBundle(b bundle) ([]byte, error) {
	size := len(b.draft.Raw)
	for _, m := range b.carried {
		size += len(m.Raw)
	}
	if len(b.carried)+1 > maxBundle || size > api.MaxDraftSize-64<<10 {
		return nil, badRequest("the commons has %d manifests on its chain (%d bytes), more than a draft file carries: co-sign the bare record from nodes that replicate the commons", len(b.carried), size)
	}
	var buf bytes.Buffer
	w, err := protocol.NewCARWriter(&buf, b.draft.CID)
	if err != nil {
		return nil, err
	}
	if err := w.Put(b.draft.CID, b.draft.Raw); err != nil {
		return nil, err
	}
	for _, m := range b.carried {
		if !m.CID.Equals(b.draft.CID) {
			if err := w.Put(m.CID, m.Raw); err != nil {
				return nil, err
			}
		}
	}
	return buf.Bytes(), nil
}

// isCAR reports whether raw looks like a CAR file rather than a bare
// record: a record is a CBOR map, whose first byte has major type 5; a CAR
// file starts with the varint length of its header.
func isCAR(raw []byte) bool { return len(raw) > 0 && raw[0]>>5 != 5 }

// decodeBundle reads a draft bundle: its root, then the manifests it
// carries, each validated (CID, encoding, signatures) and of the draft's
// commons. A bare record is a bundle that carries nothing.
func decodeBundle(raw []byte) (bundle, error) {
	if !isCAR(raw) {
		blk, err := protocol.ValidateDraft(raw)
		if err != nil {
			return bundle{}, badRequest("draft: %w", err)
		}
		return bundle{draft: blk}, nil
	}
	br, err := carv2.NewBlockReader(bytes.NewReader(raw), carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return bundle{}, badRequest("draft: neither a record nor a CAR file: %w", err)
	}
	if len(br.Roots) != 1 {
		return bundle{}, badRequest("draft: a CAR file with %d roots; a draft has one, the drafted manifest", len(br.Roots))
	}
	var b bundle
	for n := 0; ; n++ {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bundle{}, badRequest("draft: damaged after %d records: %w", n, err)
		}
		if n == maxBundle {
			return bundle{}, badRequest("draft: more than %d records", maxBundle)
		}
		validate := protocol.Validate
		if n == 0 {
			validate = protocol.ValidateDraft // its signers have not finished
		}
		r, err := validate(blk.RawData())
		if err != nil {
			return bundle{}, badRequest("draft: record %d: %w", n, err)
		}
		if !r.CID.Equals(blk.Cid()) {
			return bundle{}, badRequest("draft: record %d is %s, not %s as the file says", n, r.CID, blk.Cid())
		}
		if n == 0 {
			if !r.CID.Equals(br.Roots[0]) {
				return bundle{}, badRequest("draft: the first record is %s, not the root %s", r.CID, br.Roots[0])
			}
			b.draft = r
			continue
		}
		if r.Record.Manifest() == nil {
			return bundle{}, badRequest("draft: record %s is a %s, not a manifest: a draft carries only manifests after its first record; a commons export is read with commons import", r.CID, r.Record.Type())
		}
		if !r.CommonsID().Equals(b.draft.CommonsID()) {
			return bundle{}, badRequest("draft: record %s is not a manifest of commons %s", r.CID, b.draft.CommonsID())
		}
		b.carried = append(b.carried, r)
	}
	if b.draft == nil {
		return bundle{}, badRequest("draft: an empty CAR file")
	}
	return b, nil
}

// carriedState is the authority of the draft's commons as the manifests a
// bundle carries give it: a state of those manifests alone.
func (b bundle) carriedState() (*crdt.State, error) {
	st := crdt.New(b.draft.CommonsID())
	if _, err := st.AddBatch(b.carried); err != nil {
		return nil, badRequest("draft: the manifests it carries: %w", err)
	}
	return st, nil
}

// knowsAll reports whether st holds every manifest in cs.
func knowsAll(st *crdt.State, cs []protocol.Link) bool {
	for _, p := range cs {
		if st.Manifest(p.Cid) == nil {
			return false
		}
	}
	return true
}

// missingPrev names the predecessors of a draft that st does not hold.
func missingPrev(st *crdt.State, cs []protocol.Link) []cid.Cid {
	var out []cid.Cid
	for _, p := range cs {
		if st.Manifest(p.Cid) == nil {
			out = append(out, p.Cid)
		}
	}
	return out
}
