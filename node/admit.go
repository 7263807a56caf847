package node

import (
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// The way in.
//
// Every record enters through the functions below, whatever brought it:
// gossip (network.go), sync (sync.go), a CAR import (car.go), a record
// posted to the API or made here (actions.go). They apply the stateless
// rules of protocol.Admit and count every refusal in
// commons_records_rejected_total by reason. What they admit goes to ingest
// (ingest.go), which stores it and applies it to the commons' state.
//
// The proof of work a commons asks (SPEC §7.4) is checked with the rest,
// before any signature, from the commons' genesis (genesisOf). A record of a
// commons whose genesis is not stored here, nor in the same batch, is
// delayed (protocol.ErrNoGenesis): gossip ignores it, sync and import
// look again once the batches before it are stored, and a later sync
// fetches it again.

// parse decodes bytes a peer or a file claims to be a record, and counts a
// failure. claimed, if defined, is the CID the bytes were delivered under
// (a CAR section); bytes that hash to another CID are refused.
func (n *Node) parse(raw []byte, claimed cid.Cid) (*protocol.Block, error) {
	if claimed.Defined() && !protocol.RecordCID(raw).Equals(claimed) {
		var err error = errCIDMismatch{}
		n.metrics.Rejected(err)
		return nil, err
	}
	b, err := protocol.Parse(raw)
	if err != nil {
		n.metrics.Rejected(err)
	}
	return b, err
}

// admit applies the stateless rules to parsed blocks (signatures verified
// in one batch) for commons, when defined. It returns the admitted blocks
// and calls refused with each other one and why, after counting it.
func (n *Node) admit(blocks []*protocol.Block, commons cid.Cid, refused func(*protocol.Block, error)) []*protocol.Block {
	return n.admitted(blocks, protocol.AdmitBatch(blocks, commons, n.nowMillis(), n.genesisOf), refused)
}

// admitted is admit with protocol.AdmitBatch's verdicts given (errs),
// for callers that verify elsewhere, such as in parallel.
func (n *Node) admitted(blocks []*protocol.Block, errs []error, refused func(*protocol.Block, error)) []*protocol.Block {
	good := blocks[:0:0]
	for i, b := range blocks {
		if errs[i] != nil {
			n.metrics.Rejected(errs[i])
			refused(b, errs[i])
			continue
		}
		good = append(good, b)
	}
	return good
}

// admitRaw is parse and admit for one record's bytes.
func (n *Node) admitRaw(raw []byte, commons cid.Cid) (*protocol.Block, error) {
	b, err := protocol.Admit(raw, commons, n.nowMillis(), n.genesisOf)
	if err != nil {
		n.metrics.Rejected(err)
	}
	return b, err
}

// genesisOf returns the genesis manifest of commons
// (protocol.GenesisFunc), whose policy decides the work its other records
// carry and whether its manifests may ban keys; read from the store once
// and remembered: a genesis never changes. An error, when the genesis is
// not stored, delays the records that asked.
func (n *Node) genesisOf(commons cid.Cid) (*protocol.Manifest, error) {
	if g, ok := n.geneses.Load(commons); ok {
		return g.(*protocol.Manifest), nil
	}
	raw, err := n.st.GetRecord(n.ctx, commons)
	if err != nil {
		return nil, fmt.Errorf("genesis %s: %w", commons, err)
	}
	b, err := protocol.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("genesis %s: %w", commons, err)
	}
	if !b.Record.IsGenesis() {
		return nil, fmt.Errorf("record %s is a %s, not a genesis: no commons has that ID", commons, b.Record.Type())
	}
	g := b.Record.Manifest()
	n.geneses.Store(commons, g)
	return g, nil
}

// workOf returns the work the genesis of commons asks of its other records
// (genesisOf).
func (n *Node) workOf(commons cid.Cid) (int, error) {
	g, err := n.genesisOf(commons)
	if err != nil {
		return 0, err
	}
	return g.WorkAsked(), nil
}

// errCIDMismatch: bytes delivered under a CID they do not hash to.
type errCIDMismatch struct{}

func (errCIDMismatch) Error() string { return "bytes do not match the CID (tampered or corrupt)" }
func (errCIDMismatch) Unwrap() error { return protocol.ErrMalformed }
