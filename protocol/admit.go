package protocol

import (
	"errors"

	"github.com/ipfs/go-cid"
)

// ErrWrongCommons: a record reached a node for one commons (its gossip
// topic, a sync session) but belongs to another. Every node decides it the
// same way for the same channel, so it is permanent.
var ErrWrongCommons = errors.New("protocol: record of another commons")

// CommonsID returns the commons a record belongs to: its commons field, or
// for a genesis manifest its own CID.
func (b *Block) CommonsID() cid.Cid {
	if b.Record.IsGenesis() {
		return b.CID
	}
	return b.Record.Commons
}

// Admit checks raw bytes against every stateless rule a node applies before
// it stores or forwards a record: Parse, the commons when commons is
// defined, the rules its commons' genesis decides (genesis: the work, §7.4,
// checked before any signature, and bans, §7.5; nil: no work is asked and
// no ban allowed), the signatures (Verify) and the
// clock at nowMillis (CheckTime). An error for which Permanent is false
// (ErrFutureTime, ErrNoGenesis) only delays the record.
func Admit(raw []byte, commons cid.Cid, nowMillis int64, genesis GenesisFunc) (*Block, error) {
	b, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if err := AdmitBatch([]*Block{b}, commons, nowMillis, genesis)[0]; err != nil {
		return nil, err
	}
	return b, nil
}

// AdmitBatch is Admit for blocks already parsed, with their signatures
// verified together (VerifyBatch). A genesis in the batch that is itself
// admitted sets the work its commons asks of the others. errs[i] is nil
// when blocks[i] is admitted.
func AdmitBatch(blocks []*Block, commons cid.Cid, nowMillis int64, genesis GenesisFunc) (errs []error) {
	var geneses, others []int
	for i, b := range blocks {
		if b.Record.IsGenesis() {
			geneses = append(geneses, i)
		} else {
			others = append(others, i)
		}
	}
	if len(geneses) == 0 {
		return admitBatch(blocks, commons, nowMillis, genesis)
	}
	errs = make([]error, len(blocks))
	known := map[cid.Cid]*Manifest{}
	for j, err := range admitBatch(pick(blocks, geneses), commons, nowMillis, nil) {
		i := geneses[j]
		if errs[i] = err; err == nil {
			known[blocks[i].CID] = blocks[i].Record.Manifest()
		}
	}
	asked := func(c cid.Cid) (*Manifest, error) {
		if g, ok := known[c]; ok {
			return g, nil
		}
		if genesis == nil {
			return nil, nil
		}
		return genesis(c)
	}
	for j, err := range admitBatch(pick(blocks, others), commons, nowMillis, asked) {
		errs[others[j]] = err
	}
	return errs
}

// pick returns blocks[i] for each i of idx.
func pick(blocks []*Block, idx []int) []*Block {
	out := make([]*Block, len(idx))
	for j, i := range idx {
		out[j] = blocks[i]
	}
	return out
}

// admitBatch is AdmitBatch with genesis the whole rule for the blocks'
// commons.
func admitBatch(blocks []*Block, commons cid.Cid, nowMillis int64, genesis GenesisFunc) (errs []error) {
	errs = make([]error, len(blocks))
	signing := make([][]byte, len(blocks))
	delayed := make([]error, len(blocks)) // the genesis is not at hand: checked last, to name a permanent fault first
	asked := func(c cid.Cid) (*Manifest, error) {
		if genesis == nil {
			return nil, nil
		}
		return genesis(c)
	}
	for i, b := range blocks {
		var err error
		if signing[i], err = b.signing(); err != nil {
			errs[i] = fieldErr("record", ErrMalformed, "%v", err)
		} else if commons.Defined() && !b.CommonsID().Equals(commons) {
			errs[i] = fieldErr("commons", ErrWrongCommons, "record %s belongs to commons %s, not %s", b.CID, b.CommonsID(), commons)
		} else if err := checkGenesis(b, signing[i], asked); errors.Is(err, ErrNoGenesis) {
			delayed[i] = err
		} else {
			errs[i] = err
		}
	}
	verifyBatchWith(blocks, signing, errs)
	for i, b := range blocks {
		if errs[i] == nil {
			errs[i] = delayed[i]
		}
		if errs[i] == nil {
			errs[i] = CheckTime(b.Record, nowMillis)
		}
	}
	return errs
}
