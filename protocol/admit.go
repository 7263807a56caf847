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
// it stores or forwards a record: Parse and Verify (Validate), the commons
// when commons is defined, and the clock at nowMillis (CheckTime). An error
// for which Permanent is false (ErrFutureTime) only delays the record.
func Admit(raw []byte, commons cid.Cid, nowMillis int64) (*Block, error) {
	b, err := Validate(raw)
	if err != nil {
		return nil, err
	}
	if err := admitted(b, commons, nowMillis); err != nil {
		return nil, err
	}
	return b, nil
}

// AdmitBatch is Admit for blocks already parsed, with their signatures
// verified together (VerifyBatch). errs[i] is nil when blocks[i] is
// admitted.
func AdmitBatch(blocks []*Block, commons cid.Cid, nowMillis int64) (errs []error) {
	errs = VerifyBatch(blocks)
	for i, b := range blocks {
		if errs[i] == nil {
			errs[i] = admitted(b, commons, nowMillis)
		}
	}
	return errs
}

// admitted applies the rules of Admit that follow signature verification.
func admitted(b *Block, commons cid.Cid, nowMillis int64) error {
	if commons.Defined() && !b.CommonsID().Equals(commons) {
		return fieldErr("commons", ErrWrongCommons, "record %s belongs to commons %s, not %s", b.CID, b.CommonsID(), commons)
	}
	return CheckTime(b.Record, nowMillis)
}
