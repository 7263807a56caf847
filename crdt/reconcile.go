package crdt

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/commons-p2p/commons/protocol"
)

// ErrSyncViolation is returned by Session.Receive and Session.Accept when
// the peer breaks the sync protocol (SPEC.md §11): the session must end.
var ErrSyncViolation = errors.New("crdt: sync protocol violation")

func violation(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSyncViolation, fmt.Sprintf(format, args...))
}

// SyncParams tune a reconciliation session. Zero values take the defaults.
type SyncParams struct {
	// Branch is how many sub-ranges a mismatched range is split into.
	// Default 16.
	Branch int
	// IDListMax: a mismatched range holding at most this many of our
	// records is answered with their ID list instead of being split.
	// Default 32.
	IDListMax int
	// MaxTurnRanges caps the ranges of one turn, sent or received.
	// Default 1<<18.
	MaxTurnRanges int
	// MaxTurnIDs caps the digests in one turn's ID lists and wants, sent
	// or received. Default 1<<18.
	MaxTurnIDs int
	// MaxTurns caps the turns received in one session. Default 64.
	MaxTurns int
}

func (p *SyncParams) fill() {
	if p.Branch < 2 {
		p.Branch = 16
	}
	if p.IDListMax <= 0 {
		p.IDListMax = 32
	}
	p.IDListMax = min(p.IDListMax, protocol.MaxSyncIDs)
	if p.MaxTurnRanges <= 0 {
		p.MaxTurnRanges = 1 << 18
	}
	p.MaxTurnRanges = max(p.MaxTurnRanges, 2*p.Branch+2)
	if p.MaxTurnIDs <= 0 {
		p.MaxTurnIDs = 1 << 18
	}
	p.MaxTurnIDs = max(p.MaxTurnIDs, 2*p.IDListMax)
	if p.MaxTurns <= 0 {
		p.MaxTurns = 64
	}
}

// Turn is what one side sends in one turn, besides records: ranges and the
// digests it wants. The node splits it into control frames.
type Turn struct {
	Ranges []protocol.SyncRange
	Want   []protocol.Digest
}

// Empty reports whether the turn asks nothing of the peer: no range other
// than skips and no wants. A side that sends or receives an empty turn is
// done.
func (t *Turn) Empty() bool {
	if len(t.Want) > 0 {
		return false
	}
	for i := range t.Ranges {
		if t.Ranges[i].Mode != protocol.ModeSkip {
			return false
		}
	}
	return true
}

// SyncStats count one side's work in a session.
type SyncStats struct {
	Turns          int // turns received
	RangesSent     int
	RangesReceived int
	IDsSent        int // digests in our ID lists
	IDsReceived    int // digests in the peer's ID lists
	Pushed         int // records we send: the peer lacks them
	Wanted         int // records we ask for: we lack them
	Expected       int // records received that we expected (Accept)
}

// Session is one side of a reconciliation session over an Index (SPEC.md
// §11): it answers the peer's turns with its own, says which of our
// records to send, and checks the records the peer sends. It performs no
// I/O; the caller frames and carries the turns and records. The Index may
// grow between turns (new records only make later answers more current),
// but not during a call.
type Session struct {
	idx   *Index
	p     SyncParams
	Stats SyncStats

	// Expectations set by our last turn, checked against the peer's next.
	listed    []span                              // ranges we sent as ID lists, ascending
	listedIDs map[protocol.Digest]*protocol.Block // digests we listed, with our blocks
	wanted    map[protocol.Digest]bool            // digests we asked for
}

type span struct{ lo, hi protocol.Bound }

// NewSession returns a session over idx.
func NewSession(idx *Index, p SyncParams) *Session {
	p.fill()
	return &Session{idx: idx, p: p}
}

// Begin returns the initiator's first turn: the whole key space, split
// into fingerprinted ranges, or as one ID list if we hold few records.
func (s *Session) Begin() Turn {
	s.reset()
	b := s.newBuilder()
	b.mismatch(protocol.Bound{}, protocol.Inf, 0, s.idx.Len())
	return b.turn()
}

func (s *Session) reset() {
	s.listed = s.listed[:0]
	s.listedIDs = make(map[protocol.Digest]*protocol.Block)
	s.wanted = make(map[protocol.Digest]bool)
}

// Accept checks a record the peer sent in its turn, before that turn's
// control frames reach Receive: it must be one we asked for, or lie in a
// range we sent as an ID list and not be in that list. Otherwise it
// returns ErrSyncViolation.
func (s *Session) Accept(t uint64, d protocol.Digest) error {
	if s.wanted[d] {
		delete(s.wanted, d)
		s.Stats.Expected++
		return nil
	}
	if _, ok := s.listedIDs[d]; ok {
		return violation("peer sent record %x, which we listed", d[:8])
	}
	// The first listed range whose upper bound is above the record.
	lo, hi := 0, len(s.listed)
	for lo < hi {
		m := (lo + hi) / 2
		if s.listed[m].hi.Below(t, &d) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo < len(s.listed) && !s.listed[lo].lo.Below(t, &d) {
		s.Stats.Expected++
		return nil
	}
	return violation("peer sent record %x, which is in no range we listed and was not asked for", d[:8])
}

// Receive processes the peer's turn and returns our answer and the blocks
// to send the peer (records it lacks), to be sent before the answer. A
// turn that breaks the protocol returns ErrSyncViolation. If the peer's
// turn is Empty, the session is over and the answer must not be sent.
func (s *Session) Receive(in Turn) (Turn, []*protocol.Block, error) {
	s.Stats.Turns++
	if s.Stats.Turns > s.p.MaxTurns {
		return Turn{}, nil, violation("more than %d turns", s.p.MaxTurns)
	}
	if len(in.Ranges) > s.p.MaxTurnRanges {
		return Turn{}, nil, violation("turn of %d ranges, limit %d", len(in.Ranges), s.p.MaxTurnRanges)
	}
	ids := len(in.Want)
	for i := range in.Ranges {
		if in.Ranges[i].Mode == protocol.ModeIDList {
			ids += len(in.Ranges[i].Data) / protocol.DigestSize
		}
	}
	if ids > s.p.MaxTurnIDs {
		return Turn{}, nil, violation("turn of %d digests, limit %d", ids, s.p.MaxTurnIDs)
	}
	s.Stats.RangesReceived += len(in.Ranges)
	var push []*protocol.Block
	for _, d := range in.Want {
		blk := s.listedIDs[d]
		if blk == nil {
			return Turn{}, nil, violation("peer wants %x, which we did not list (or wanted twice)", d[:8])
		}
		delete(s.listedIDs, d)
		push = append(push, blk)
	}
	s.reset()
	b := s.newBuilder()
	lo := protocol.Bound{}
	for i := range in.Ranges {
		r := &in.Ranges[i]
		hi := r.Upper()
		if hi.Compare(lo) <= 0 {
			return Turn{}, nil, violation("range %d: bounds not ascending", i)
		}
		if b.full(len(r.Data) / protocol.DigestSize) {
			// Too much for one turn: the rest as one fingerprint, to be
			// split in later turns.
			b.rest(lo)
			break
		}
		switch r.Mode {
		case protocol.ModeSkip:
			b.skip(hi)
		case protocol.ModeFingerprint:
			below, upto := s.idx.Below(lo), s.idx.Below(hi)
			a := upto
			a.subAgg(&below)
			if fp := a.Fingerprint(); bytes.Equal(fp[:], r.Data) {
				b.skip(hi)
			} else {
				b.mismatch(lo, hi, below.Count, upto.Count)
			}
		case protocol.ModeIDList:
			var err error
			if push, err = s.reconcileIDs(lo, hi, r.Data, b, push); err != nil {
				return Turn{}, nil, fmt.Errorf("range %d: %w", i, err)
			}
			b.skip(hi)
		}
		lo = hi
	}
	s.Stats.Pushed += len(push)
	return b.turn(), push, nil
}

// reconcileIDs compares the peer's ID list of [lo, hi) with our records
// there: ours that it lacks are pushed, its that we lack are wanted.
func (s *Session) reconcileIDs(lo, hi protocol.Bound, data []byte, b *builder, push []*protocol.Block) ([]*protocol.Block, error) {
	n := len(data) / protocol.DigestSize
	s.Stats.IDsReceived += n
	theirs := make(map[protocol.Digest]bool, n)
	for k := range n {
		var d protocol.Digest
		copy(d[:], data[k*protocol.DigestSize:])
		if _, dup := theirs[d]; dup {
			return push, violation("digest %x listed twice", d[:8])
		}
		theirs[d] = false
	}
	r0, r1 := s.idx.Below(lo).Count, s.idx.Below(hi).Count
	s.idx.Range(r0, r1, func(it *Item) bool {
		if _, ok := theirs[it.Digest]; ok {
			theirs[it.Digest] = true
		} else {
			push = append(push, it.Block)
		}
		return true
	})
	for k := range n {
		var d protocol.Digest
		copy(d[:], data[k*protocol.DigestSize:])
		if !theirs[d] && !s.wanted[d] {
			s.wanted[d] = true
			b.out.Want = append(b.out.Want, d)
			s.Stats.Wanted++
		}
	}
	return push, nil
}

// builder assembles our answer, range by range.
type builder struct {
	s   *Session
	out Turn
	ids int
}

func (s *Session) newBuilder() *builder { return &builder{s: s} }

// full reports whether answering one more range, carrying ids digests,
// could take the answer over the turn limits.
func (b *builder) full(ids int) bool {
	p := &b.s.p
	return len(b.out.Ranges)+p.Branch+1 > p.MaxTurnRanges || b.ids+len(b.out.Want)+max(p.IDListMax, ids) > p.MaxTurnIDs
}

func (b *builder) skip(hi protocol.Bound) {
	if k := len(b.out.Ranges); k > 0 && b.out.Ranges[k-1].Mode == protocol.ModeSkip {
		b.out.Ranges[k-1].Time, b.out.Ranges[k-1].Prefix = hi.Time, hi.Prefix
		return
	}
	b.out.Ranges = append(b.out.Ranges, protocol.SyncRange{Time: hi.Time, Prefix: hi.Prefix, Mode: protocol.ModeSkip})
}

// rest closes the turn with one fingerprint of everything from lo up.
func (b *builder) rest(lo protocol.Bound) {
	a := b.s.idx.All()
	below := b.s.idx.Below(lo)
	a.subAgg(&below)
	fp := a.Fingerprint()
	b.out.Ranges = append(b.out.Ranges, protocol.SyncRange{Time: protocol.Inf.Time, Mode: protocol.ModeFingerprint, Data: fp[:]})
}

// mismatch answers a range [lo, hi) whose fingerprints differ, holding our
// records of ranks r0 to r1-1: their ID list if few, else Branch
// fingerprinted sub-ranges of about equal counts.
func (b *builder) mismatch(lo, hi protocol.Bound, r0, r1 int) {
	s, n := b.s, r1-r0
	if n <= s.p.IDListMax {
		data := make([]byte, 0, n*protocol.DigestSize)
		s.idx.Range(r0, r1, func(it *Item) bool {
			data = append(data, it.Digest[:]...)
			s.listedIDs[it.Digest] = it.Block
			return true
		})
		s.listed = append(s.listed, span{lo, hi})
		b.ids += n
		s.Stats.IDsSent += n
		b.add(protocol.SyncRange{Time: hi.Time, Prefix: hi.Prefix, Mode: protocol.ModeIDList, Data: data})
		return
	}
	prev := s.idx.Prefix(r0)
	parts := min(s.p.Branch, n) // so that every part holds a record
	for k := 1; k <= parts; k++ {
		rk := r0 + n*k/parts
		ub := hi
		if k < parts {
			ub = between(s.idx.At(rk-1), s.idx.At(rk))
		}
		cur := s.idx.Prefix(rk)
		a := cur
		a.subAgg(&prev)
		prev = cur
		fp := a.Fingerprint()
		b.add(protocol.SyncRange{Time: ub.Time, Prefix: ub.Prefix, Mode: protocol.ModeFingerprint, Data: fp[:]})
	}
}

func (b *builder) add(r protocol.SyncRange) {
	b.out.Ranges = append(b.out.Ranges, r)
	b.s.Stats.RangesSent++
}

// turn returns the answer without trailing skips.
func (b *builder) turn() Turn {
	k := len(b.out.Ranges)
	for k > 0 && b.out.Ranges[k-1].Mode == protocol.ModeSkip {
		k--
	}
	b.out.Ranges = b.out.Ranges[:k]
	return b.out
}

// between returns the shortest bound above a and not above b (a < b).
func between(a, b *Item) protocol.Bound {
	if a.Time != b.Time {
		return protocol.Bound{Time: b.Time}
	}
	k := 0
	for k < protocol.DigestSize-1 && a.Digest[k] == b.Digest[k] {
		k++
	}
	return protocol.Bound{Time: b.Time, Prefix: bytes.Clone(b.Digest[:k+1])}
}
