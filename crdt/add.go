package crdt

import (
	"fmt"
	"slices"
	"strings"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Add merges one validated block (signatures already checked by the caller)
// into the set. It is idempotent. It returns the status changes the block
// caused, sorted by contribution CID bytes: a new contribution appears with
// From == "", and existing contributions whose status moved appear with
// their old and new status. A block of another commons returns
// ErrWrongCommons, a nil block ErrNilBlock; either changes nothing.
func (s *State) Add(b *protocol.Block) ([]Change, error) {
	if err := s.check(b); err != nil {
		return nil, err
	}
	s.add(b)
	s.settle()
	return s.changes(), nil
}

// AddBatch adds every block as Add does and returns the net changes: From is
// a contribution's status before the batch, To after it, and contributions
// whose status ended where it started are omitted (new contributions are
// always listed, with From == ""). If any block belongs to another commons
// or is nil, AddBatch returns the error and adds nothing.
func (s *State) AddBatch(bs []*protocol.Block) ([]Change, error) {
	for _, b := range bs {
		if err := s.check(b); err != nil {
			return nil, err
		}
	}
	for _, b := range bs {
		s.add(b)
		s.settle()
	}
	return s.changes(), nil
}

// check verifies that b belongs to this commons.
func (s *State) check(b *protocol.Block) error {
	if b == nil || b.Record == nil || b.Record.Body == nil {
		return ErrNilBlock
	}
	r := b.Record
	if !r.Commons.Defined() {
		if r.Type() != protocol.TypeManifest || b.CID != s.id {
			return fmt.Errorf("%w: %s is a genesis manifest, not %s", ErrWrongCommons, b.CID, s.id)
		}
		return nil
	}
	if r.Commons != s.id {
		return fmt.Errorf("%w: %s names commons %s, not %s", ErrWrongCommons, b.CID, r.Commons, s.id)
	}
	return nil
}

// add inserts b and classifies it and the reviews that target it.
func (s *State) add(b *protocol.Block) {
	if _, ok := s.recs[b.CID]; ok {
		return
	}
	e := newEntry(b)
	s.share(e)
	switch {
	case e.con != nil:
		s.tx[b.CID] = ""
		s.byLicence[e.con.licence] = append(s.byLicence[e.con.licence], e)
	case e.rev != nil:
		s.byTarget[e.rev.target] = append(s.byTarget[e.rev.target], e)
		s.byUnder[e.rev.under] = append(s.byUnder[e.rev.under], e)
		s.byAuthor[e.rev.author] = append(s.byAuthor[e.rev.author], e)
	}
	if s.mem != nil {
		s.mem[b.CID] = b
	}
	s.recs[b.CID] = e
	s.root.add(b.CID)
	if d, ok := protocol.RecordDigest(b.CID); ok {
		s.idx.Insert(Item{Time: uint64(b.Record.Time), Digest: d})
	}
	s.reclassify(e)
	for _, r := range s.byTarget[b.CID] {
		s.reclassifyReview(r)
	}
	s.queue = append(s.queue, b.CID)
}

// share makes e's links use the CIDs of the records they name, when those
// are here, so that the decoded record's copies can be freed.
func (s *State) share(e *entry) {
	same := func(c *cid.Cid) {
		if x := s.recs[*c]; x != nil {
			*c = x.cid
		}
	}
	switch {
	case e.con != nil:
		same(&e.con.licence)
	case e.rev != nil:
		same(&e.rev.target)
		same(&e.rev.under)
	}
}

// settle re-examines the records waiting for whatever arrived or resolved,
// until nothing more moves, then labels the manifest chain anew if a
// candidate arrived, carrying the new labels through.
func (s *State) settle() {
	for i := 0; i < len(s.queue); i++ {
		x := s.queue[i]
		deps := s.waitingOn[x]
		if deps == nil {
			continue
		}
		delete(s.waitingOn, x)
		for _, d := range deps {
			if unwait(d, x) {
				s.reclassify(d)
			}
		}
	}
	s.queue = s.queue[:0]
	if len(s.fresh) > 0 {
		s.relabel()
	}
}

// reclassify re-derives e's standing from the current set.
func (s *State) reclassify(e *entry) {
	switch {
	case e.man != nil:
		s.reclassifyManifest(e)
	case e.con != nil:
		s.reclassifyContribution(e)
	case e.rev != nil:
		s.reclassifyReview(e)
	default:
		s.setClass(e, clsInert, reasonUnknownType)
	}
}

// changes returns the status changes of the current Add and resets them.
func (s *State) changes() []Change {
	if len(s.tx) == 0 {
		return nil
	}
	var out []Change
	for c, from := range s.tx {
		to := s.recs[c].con.status
		if from == "" || from != to {
			out = append(out, Change{Contribution: c, From: from, To: to})
		}
	}
	clear(s.tx)
	slices.SortFunc(out, func(a, b Change) int {
		return strings.Compare(a.Contribution.KeyString(), b.Contribution.KeyString())
	})
	return out
}
