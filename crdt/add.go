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
	return s.AddBatch([]*protocol.Block{b})
}

// AddAt adds b as Add does, at the caller's place pos (a position in a
// log of its own; 0 for none, as Add). A contribution keeps its place, and every
// Change of its status gives it back (Change.Pos): the caller can keep
// what it derives of statuses under its own positions, and find it again
// from a change. The place is not part of the set: the state's root and
// every view are as Add leaves them.
func (s *State) AddAt(b *protocol.Block, pos uint64) ([]Change, error) {
	s.pos = pos
	defer func() { s.pos = 0 }()
	return s.AddBatch([]*protocol.Block{b})
}

// Place gives contribution c the caller's place pos, as AddAt would have,
// if it has none (added by Add, or read from a state written before places
// were kept), and returns its status now and the place it keeps: pos, or
// the place it had already. ok is false, and nothing changes, if c is no
// contribution of the set. Its later changes give the place back
// (Change.Pos); the root and the views stay as they were. The next Ready
// writes the place.
func (s *State) Place(c cid.Cid, pos uint64) (status Status, at uint64, ok bool, err error) {
	if s.err != nil {
		return "", 0, false, s.err
	}
	if pos == 0 {
		return "", 0, false, fmt.Errorf("crdt: place 0 is no place")
	}
	s.adding = true // the entry read stays in ents, where the place changes
	e := s.entry(c)
	s.adding = false
	if e == nil || e.con == nil {
		return "", 0, false, s.err
	}
	if e.con.pos == 0 {
		e.con.pos = pos
	}
	if s.mkv != nil {
		if err := s.flushMem(); err != nil {
			return "", 0, false, err
		}
	}
	return e.con.status, e.con.pos, true, s.err
}

// AddBatch adds every block as Add does and returns the net changes: From is
// a contribution's status before the batch, To after it, and contributions
// whose status ended where it started are omitted (new contributions are
// always listed, with From == ""). If any block belongs to another commons
// or is nil, AddBatch returns the error and adds nothing.
func (s *State) AddBatch(bs []*protocol.Block) ([]Change, error) {
	if s.err != nil {
		return nil, s.err
	}
	for _, b := range bs {
		if err := s.check(b); err != nil {
			return nil, err
		}
	}
	s.adding = true
	for _, b := range bs {
		s.add(b)
		s.settle()
	}
	ch := s.changes()
	s.adding = false
	if s.err != nil {
		return nil, s.err
	}
	if s.mkv != nil {
		if err := s.flushMem(); err != nil {
			return nil, err
		}
	}
	return ch, nil
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
	if s.has(b.CID) || s.err != nil {
		return
	}
	if b.Record.Type() == protocol.TypeManifest {
		s.addManifest(b)
		return
	}
	e := newEntry(b)
	if stub := s.lookup(b.CID); stub != nil {
		e.flags, e.raw = stub.flags, stub.raw
	}
	s.ents[b.CID] = e
	var conflicts [][]byte // rotation lists a rotation put in conflict
	firstOfPair := false
	switch {
	case e.con != nil:
		e.con.pos = s.pos
		s.tx[b.CID] = ""
		s.listAdd(groupKey(tagLicence, e.con.licence), b.CID)
		s.listAdd(ownerGroup(e.con.author), b.CID)
		if sp := b.Record.Contribution().Sponsor; sp != nil {
			// Under the overlay's 'q' group: Reciprocity walks them all.
			s.ov.set([]byte{tagSponsor}, append(sponsorGroup(*sp), b.CID.Bytes()...), op{v: []byte{}})
		}
	case e.rev != nil:
		s.listAddFor(tagTarget, e.rev.target, b.CID)
		s.listAdd(groupKey(tagUnder, e.rev.under), b.CID)
		s.listAdd(authorGroup(e.rev.author), b.CID)
	case e.ext != nil:
		s.listAdd(ownerGroup(e.ext.author), b.CID)
		switch e.typ {
		case protocol.TypeProfile:
			s.noteProfile(e)
		case protocol.TypePledge:
			// Under the overlay's 'g' group: Reciprocity walks them all.
			s.ov.set([]byte{tagPledge}, append(append([]byte{tagPledge}, e.ext.author[:]...), b.CID.Bytes()...), op{v: []byte{}})
		case protocol.TypeAcknowledgement:
			s.listAdd(groupKey(tagAcks, e.ext.target), b.CID)
			if e.ext.under.Defined() {
				s.listAdd(groupKey(tagUnder, e.ext.under), b.CID)
			}
			for _, k := range append([]protocol.PublicKey{e.ext.author}, e.ext.cosigners...) {
				s.listAdd(authorGroup(k), b.CID) // revocations move its count
			}
		case protocol.TypeDispute:
			s.ov.set(disputeGroup, cidKey(tagDispute, b.CID), op{v: []byte{}})
			if e.ext.target.Defined() {
				s.listAddFor(tagDisputed, e.ext.target, b.CID)
			}
		case protocol.TypeStatement:
			s.listAdd(groupKey(tagReplies, e.ext.target), b.CID)
		case protocol.TypeResolution, protocol.TypeCertificate:
			if e.typ == protocol.TypeResolution {
				s.listAdd(groupKey(tagReplies, e.ext.target), b.CID)
			}
			s.listAdd(groupKey(tagUnder, e.ext.under), b.CID)
			for _, k := range append([]protocol.PublicKey{e.ext.author}, e.ext.cosigners...) {
				s.listAdd(authorGroup(k), b.CID) // revocations move its count
			}
		case protocol.TypeRotation:
			conflicts, firstOfPair = s.addRotation(e)
			s.listAdd(authorGroup(e.ext.author), b.CID) // its revocation makes it inert
		}
	}
	if s.mem != nil {
		s.mem[b.CID] = b
	}
	s.nRecs++
	s.index(b.CID, b.Record.Time)
	s.reclassify(e)
	if e.typ == protocol.TypeRotation {
		s.rotationArrived(e, conflicts)
		if firstOfPair && e.cls == clsOK {
			s.rotationMoved(e)
		}
	}
	s.arrived(b.CID)
}

// addManifest inserts a manifest and classifies it and the reviews that
// target it.
func (s *State) addManifest(b *protocol.Block) {
	e := newEntry(b)
	if s.mem != nil {
		s.mem[b.CID] = b
	}
	if !s.quiet && s.lookup(b.CID) != nil { // a stub: a manifest's lists are read whole
		delete(s.ents, b.CID)
		s.ov.set([]byte{tagEntry}, cidKey(tagEntry, b.CID), op{del: true})
	}
	s.mfs[b.CID] = e
	if !s.quiet {
		s.ov.set([]byte{tagManifest}, cidKey(tagManifest, b.CID), op{v: []byte{}})
		s.index(b.CID, b.Record.Time)
	}
	s.reclassify(e)
	s.arrived(b.CID)
}

// arrived re-examines the reviews naming c, which just arrived, as their
// target, and queues c's waiters.
func (s *State) arrived(c cid.Cid) {
	if !s.quiet {
		for _, r := range s.listFor(tagTarget, c) {
			if e := s.entry(r); e != nil {
				s.reclassifyReview(e)
			}
		}
	}
	s.queue = append(s.queue, c)
}

// settle re-examines the records waiting for whatever arrived or resolved,
// until nothing more moves, then labels the manifest chain anew if a
// candidate arrived, carrying the new labels through.
func (s *State) settle() {
	for i := 0; i < len(s.queue) && s.err == nil; i++ {
		x := s.queue[i]
		deps := s.listFor(tagWait, x)
		if len(deps) > 0 {
			s.clearFor(tagWait, x, deps)
		}
		for _, d := range deps {
			e := s.entry(d)
			if e == nil || s.quiet && e.man == nil {
				continue
			}
			if unwait(e, x) {
				s.reclassify(e)
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
	case e.ext != nil:
		s.reclassifyExt(e)
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
		con := s.entry(c).con
		if from == "" || from != con.status {
			out = append(out, Change{Contribution: c, From: from, To: con.status, Pos: con.pos})
		}
	}
	clear(s.tx)
	slices.SortFunc(out, func(a, b Change) int {
		return strings.Compare(a.Contribution.KeyString(), b.Contribution.KeyString())
	})
	return out
}
