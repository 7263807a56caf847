package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

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
	// MaxTurnIDs caps the short IDs in one turn's ID lists and its wants,
	// sent or received. Default 1<<18.
	MaxTurnIDs int
	// MaxTurnPush caps the records one answer pushes for the peer's ID
	// lists: a range holding more of ours is answered in parts over later
	// turns. Default 1<<18.
	MaxTurnPush int
	// MaxTurns caps the turns received in one session. Default 64.
	MaxTurns int
	// MaxPasses caps the passes of a session: a pass starts again from
	// the whole key space, under a new salt, when the two sets still
	// differ after the previous one. Default 4.
	MaxPasses int

	// Test hooks, to force collisions: the short ID width in bytes (1 to
	// protocol.MaxShortIDSize; default protocol.ShortIDSize), and if
	// above 0, the bits of range fingerprints kept (the rest zeroed).
	idBytes int
	fpBits  int
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
	if p.MaxTurnPush <= 0 {
		p.MaxTurnPush = 1 << 18
	}
	p.MaxTurnPush = max(p.MaxTurnPush, p.IDListMax+1)
	if p.MaxTurns <= 0 {
		p.MaxTurns = 64
	}
	if p.MaxPasses <= 0 {
		p.MaxPasses = 4
	}
	if p.idBytes <= 0 || p.idBytes > protocol.MaxShortIDSize {
		p.idBytes = protocol.ShortIDSize
	}
}

// Turn is what one side sends in one turn, besides records. The node
// splits it into control frames.
type Turn struct {
	Salt   []byte // the session salt: the initiator's first turn only
	Pass   int    // above 0 on a turn that starts pass Pass
	Ranges []protocol.SyncRange
	Want   []int  // indices into the short IDs the peer listed in its previous turn
	Check  []byte // the fingerprint of the sender's whole set, records of this turn included
}

// Empty reports whether the turn asks nothing of the peer and carries no
// check: no range other than skips, no wants. A side that sends or
// receives an empty turn is done.
func (t *Turn) Empty() bool { return t.Check == nil && !t.asks() }

// asks reports whether the turn has a range other than skips, or wants.
func (t *Turn) asks() bool {
	if len(t.Want) > 0 {
		return true
	}
	for i := range t.Ranges {
		if t.Ranges[i].Mode != protocol.ModeSkip {
			return true
		}
	}
	return false
}

// Msg returns the turn as one control message, to be split by
// protocol.SyncFrames.
func (t *Turn) Msg() *protocol.SyncMsg {
	return &protocol.SyncMsg{Salt: t.Salt, Pass: uint64(t.Pass), Ranges: t.Ranges, Want: t.Want, Check: t.Check}
}

// AddMsg appends a control message's contents to the turn.
func (t *Turn) AddMsg(m *protocol.SyncMsg) {
	if m.Salt != nil {
		t.Salt = m.Salt
	}
	if m.Pass != 0 {
		t.Pass = int(min(m.Pass, 1<<20))
	}
	if m.Check != nil {
		t.Check = m.Check
	}
	t.Ranges = append(t.Ranges, m.Ranges...)
	t.Want = append(t.Want, m.Want...)
}

// TurnReader gathers a peer's turn from its control frames, and refuses a
// frame that would take the turn past the limits Session.Receive checks
// (ranges, wants, short IDs), as the frame comes: reading a turn never
// holds more than a session would accept.
type TurnReader struct {
	Turn Turn
	p    SyncParams
	ids  int // short IDs in Turn's ID lists
}

// NewTurnReader returns a TurnReader for a session with parameters p.
func NewTurnReader(p SyncParams) *TurnReader {
	p.fill()
	return &TurnReader{p: p}
}

// Add appends a control frame's contents to the turn, or returns an error
// wrapping ErrSyncViolation, and appends nothing, if the turn would then
// exceed the session's limits.
func (r *TurnReader) Add(m *protocol.SyncMsg) error {
	t := &r.Turn
	if len(t.Ranges)+len(m.Ranges) > r.p.MaxTurnRanges {
		return violation("turn of over %d ranges", r.p.MaxTurnRanges)
	}
	ids := r.ids + shortIDs(m.Ranges, r.p.idBytes)
	if ids+len(t.Want)+len(m.Want) > r.p.MaxTurnIDs {
		return violation("turn of over %d short IDs and wants", r.p.MaxTurnIDs)
	}
	r.ids = ids
	t.AddMsg(m)
	return nil
}

// shortIDs counts the short IDs, of idBytes each, in the ID lists of rs.
func shortIDs(rs []protocol.SyncRange, idBytes int) int {
	n := 0
	for i := range rs {
		if rs[i].Mode == protocol.ModeIDList {
			n += len(rs[i].Data) / idBytes
		}
	}
	return n
}

// SyncStats count one side's work in a session.
type SyncStats struct {
	Turns          int // turns received
	Passes         int // passes started after the first
	RangesSent     int
	RangesReceived int
	IDsSent        int  // short IDs in our ID lists
	IDsReceived    int  // short IDs in the peer's ID lists
	Pushed         int  // records we send: the peer lacks them
	Wanted         int  // records we ask for: we lack them
	Expected       int  // records received that we expected (Accept)
	Verified       bool // the peer's check matched ours
	GaveUp         bool // the checks still differed after the last pass
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

	salt []byte // nil until Begin, or the peer's first turn
	pass int

	// Expectations set by our last turn, checked against the peer's next.
	listed    []span                       // ranges we sent as ID lists, ascending
	items     []protocol.Digest            // our records in them, in list order
	listedSet map[protocol.Digest]struct{} // their digests
	wanted    map[uint64]int               // short IDs we asked for (this pass), with counts
}

type span struct{ lo, hi protocol.Bound }

// NewSession returns a session over idx.
func NewSession(idx *Index, p SyncParams) *Session {
	p.fill()
	return &Session{idx: idx, p: p}
}

// Begin returns the initiator's first turn: the whole key space, split
// into fingerprinted ranges, or as one ID list if we hold few records.
// salt (protocol.SaltSize bytes) keys the session's range fingerprints and
// short IDs; it should be unpredictable to third parties.
func (s *Session) Begin(salt []byte) Turn {
	s.salt = bytes.Clone(salt)
	s.reset()
	t := s.whole()
	t.Salt = s.salt
	t.Check = s.check()
	return t
}

// whole returns the turn that starts a pass: the whole key space as one ID
// list if we hold few records, else split into up to Branch² fingerprinted
// ranges (as many as make ranges of about IDListMax records, if fewer), so
// that a large set needs one turn less than splitting by Branch.
func (s *Session) whole() Turn {
	b := s.newBuilder()
	n := s.idx.Len()
	parts := min(s.p.Branch*s.p.Branch, (n+s.p.IDListMax-1)/s.p.IDListMax, s.p.MaxTurnRanges-1)
	b.split(protocol.Bound{}, protocol.Inf, 0, n, max(parts, 2))
	return b.turn()
}

func (s *Session) reset() {
	s.listed = s.listed[:0]
	s.items = s.items[:0]
	s.listedSet = make(map[protocol.Digest]struct{})
	s.wanted = make(map[uint64]int)
}

func (s *Session) check() []byte {
	a := s.idx.All()
	c := a.Fingerprint()
	return c[:]
}

func (s *Session) shortID(d *protocol.Digest) uint64 {
	return ShortID(d, s.salt, s.pass, s.p.idBytes)
}

func (s *Session) fingerprint(a *Agg) [protocol.FingerprintSize]byte {
	fp := a.RangeFingerprint(s.salt, s.pass)
	if k := s.p.fpBits; k > 0 && k < 8*protocol.FingerprintSize {
		v := binary.BigEndian.Uint32(fp[:]) &^ (1<<(32-k) - 1)
		binary.BigEndian.PutUint32(fp[:], v)
	}
	return fp
}

// Accept checks a record the peer sent in its turn, before that turn's
// control frames reach Receive: its short ID must be one we asked for, or
// it must lie in a range we sent as an ID list and not be a record we
// listed. Otherwise it returns ErrSyncViolation.
func (s *Session) Accept(t uint64, d protocol.Digest) error {
	if len(s.wanted) > 0 {
		if sid := s.shortID(&d); s.wanted[sid] > 0 {
			s.wanted[sid]--
			s.Stats.Expected++
			return nil
		}
	}
	if _, ok := s.listedSet[d]; ok {
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

// Receive processes the peer's turn and returns our answer and the
// digests of the records to send the peer (records it lacks, in the order
// to send them), to be sent before the answer; the caller fetches their
// bytes (Digest.CID names each). A turn that breaks the protocol returns
// ErrSyncViolation. If the peer's turn is Empty, the session is over and
// Receive must not be called; if our answer is Empty, the session is over
// once it is sent.
func (s *Session) Receive(in Turn) (Turn, []protocol.Digest, error) {
	if err := s.admit(&in); err != nil {
		return Turn{}, nil, err
	}
	var push []protocol.Digest
	for k, w := range in.Want {
		if w < 0 || w >= len(s.items) || (k > 0 && w <= in.Want[k-1]) {
			return Turn{}, nil, violation("want %d: not an ascending index below %d", w, len(s.items))
		}
		push = append(push, s.items[w])
	}
	s.reset()
	if in.Check != nil && bytes.Equal(in.Check, s.check()) {
		// The sets are equal: nothing left to do.
		s.Stats.Verified = true
		return Turn{}, nil, nil
	}
	b := s.newBuilder()
	if err := s.answerRanges(in.Ranges, b); err != nil {
		return Turn{}, nil, err
	}
	push = append(push, b.push...)
	out := b.turn()
	if !out.asks() && !in.asks() {
		// The peer asked nothing and its check differs from ours: a
		// collision, or records that were refused or arrived meanwhile.
		if s.pass+1 >= s.p.MaxPasses {
			s.Stats.GaveUp = true
			return Turn{}, push, nil // a later session completes it
		}
		s.pass++
		s.Stats.Passes++
		out = s.whole()
		out.Pass = s.pass
	}
	out.Check = s.check()
	s.Stats.Pushed += len(push)
	return out, push, nil
}

// admit checks a turn's limits, salt and pass, and counts it.
func (s *Session) admit(in *Turn) error {
	s.Stats.Turns++
	if s.Stats.Turns > s.p.MaxTurns {
		return violation("more than %d turns", s.p.MaxTurns)
	}
	if len(in.Ranges) > s.p.MaxTurnRanges {
		return violation("turn of %d ranges, limit %d", len(in.Ranges), s.p.MaxTurnRanges)
	}
	if ids := len(in.Want) + shortIDs(in.Ranges, s.p.idBytes); ids > s.p.MaxTurnIDs {
		return violation("turn of %d short IDs and wants, limit %d", ids, s.p.MaxTurnIDs)
	}
	switch {
	case s.salt == nil && len(in.Salt) != protocol.SaltSize:
		return violation("the session's first turn has no salt")
	case s.salt == nil:
		s.salt = bytes.Clone(in.Salt)
	case in.Salt != nil:
		return violation("salt after the first turn")
	}
	if in.Pass != 0 {
		if in.Pass != s.pass+1 || in.Pass >= s.p.MaxPasses {
			return violation("pass %d after pass %d (at most %d passes)", in.Pass, s.pass, s.p.MaxPasses)
		}
		s.pass = in.Pass
	}
	s.Stats.RangesReceived += len(in.Ranges)
	return nil
}

// answerRanges answers the peer's ranges, in order, into b.
func (s *Session) answerRanges(rs []protocol.SyncRange, b *builder) error {
	lo := protocol.Bound{}
	for i := range rs {
		r := &rs[i]
		hi := r.Upper()
		if hi.Compare(lo) <= 0 {
			return violation("range %d: bounds not ascending", i)
		}
		ids := 0
		if r.Mode == protocol.ModeIDList {
			ids = len(r.Data) / s.p.idBytes
		}
		if b.full(ids) {
			// Too much for one turn: the rest as one fingerprint, to be
			// split in later turns.
			b.rest(lo)
			return nil
		}
		switch r.Mode {
		case protocol.ModeSkip:
			b.skip(hi)
		case protocol.ModeFingerprint:
			below, upto := s.idx.Below(lo), s.idx.Below(hi)
			a := upto
			a.subAgg(&below)
			if fp := s.fingerprint(&a); bytes.Equal(fp[:], r.Data) {
				b.skip(hi)
			} else {
				b.mismatch(lo, hi, below.Count, upto.Count)
			}
		case protocol.ModeIDList:
			more, err := s.reconcileIDs(lo, hi, r.Data, b)
			if err != nil {
				return fmt.Errorf("range %d: %w", i, err)
			}
			if !more {
				return nil // the turn's pushes are spent: the rest later
			}
		}
		lo = hi
	}
	return nil
}

// reconcileIDs compares the peer's ID list of [lo, hi), short IDs in key
// order, with our records there: ours whose short ID it did not list are
// pushed, its short IDs that match none of ours are wanted. Two records
// that share a short ID may both be missed here; the check at the end of
// the pass finds that out.
//
// The answer pushes at most MaxTurnPush records (§11.5). Where the range
// holds more of ours: if the peer listed none, the first of them are
// pushed and the answer ends with a fingerprint of the rest, from the
// bound after them up (more is false: the caller answers no more ranges);
// else the range is split, as if its fingerprints differed, and nothing
// is pushed for it now. A range that does not fit what is left of the
// turn's pushes ends the answer the same way, from lo.
func (s *Session) reconcileIDs(lo, hi protocol.Bound, data []byte, b *builder) (more bool, err error) {
	w := s.p.idBytes
	if len(data)%w != 0 || len(data)/w > protocol.MaxSyncIDs {
		return false, violation("ID list of %d bytes: not a multiple of %d or over %d IDs", len(data), w, protocol.MaxSyncIDs)
	}
	n := len(data) / w
	r0, r1 := s.idx.Below(lo).Count, s.idx.Below(hi).Count
	room := s.p.MaxTurnPush - len(b.push)
	switch {
	case r1-r0 <= room:
	case n == 0 && len(b.push) == 0:
		// Push the first room of ours, the rest later.
		s.idx.Range(r0, r0+room, func(it *Item) bool {
			b.push = append(b.push, it.Digest)
			return true
		})
		bound := between(s.idx.At(r0+room-1), s.idx.At(r0+room))
		b.skip(bound)
		b.rest(bound)
		return false, nil
	case r1-r0 > s.p.MaxTurnPush:
		b.mismatch(lo, hi, r0, r1)
		s.Stats.IDsReceived += n
		b.listedBase += n
		return true, nil
	default:
		b.rest(lo)
		return false, nil
	}
	s.Stats.IDsReceived += n
	base := b.listedBase
	b.listedBase += n
	if n == 0 {
		s.idx.Range(r0, r1, func(it *Item) bool {
			b.push = append(b.push, it.Digest)
			return true
		})
		b.skip(hi)
		return true, nil
	}
	theirs := make(map[uint64]bool, n) // short ID: matched by one of ours
	for k := range n {
		theirs[readSID(data[k*w:], w)] = false
	}
	s.idx.Range(r0, r1, func(it *Item) bool {
		sid := s.shortID(&it.Digest)
		if _, ok := theirs[sid]; ok {
			theirs[sid] = true
		} else {
			b.push = append(b.push, it.Digest)
		}
		return true
	})
	for k := range n {
		if sid := readSID(data[k*w:], w); !theirs[sid] {
			s.wanted[sid]++
			b.out.Want = append(b.out.Want, base+k)
			s.Stats.Wanted++
		}
	}
	b.skip(hi)
	return true, nil
}

func readSID(b []byte, w int) uint64 {
	var v uint64
	for _, c := range b[:w] {
		v = v<<8 | uint64(c)
	}
	return v
}

// builder assembles our answer, range by range.
type builder struct {
	s          *Session
	out        Turn
	ids        int
	push       []protocol.Digest // records found for the peer in its ID lists
	listedBase int               // short IDs of the peer's turn's ID lists so far
}

func (s *Session) newBuilder() *builder { return &builder{s: s} }

// full reports whether answering one more range, carrying ids short IDs,
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
	fp := b.s.fingerprint(&a)
	b.add(protocol.SyncRange{Time: protocol.Inf.Time, Mode: protocol.ModeFingerprint, Data: fp[:]})
}

// mismatch answers a range [lo, hi) whose fingerprints differ, holding our
// records of ranks r0 to r1-1: split into Branch parts.
func (b *builder) mismatch(lo, hi protocol.Bound, r0, r1 int) {
	b.split(lo, hi, r0, r1, b.s.p.Branch)
}

// list answers a range [lo, hi) holding our records of ranks r0 to r1-1
// with their short IDs.
func (b *builder) list(lo, hi protocol.Bound, r0, r1 int) {
	s, n, w := b.s, r1-r0, b.s.p.idBytes
	data := make([]byte, 0, n*w)
	s.idx.Range(r0, r1, func(it *Item) bool {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], s.shortID(&it.Digest))
		data = append(data, buf[8-w:]...)
		s.items = append(s.items, it.Digest)
		s.listedSet[it.Digest] = struct{}{}
		return true
	})
	s.listed = append(s.listed, span{lo, hi})
	b.ids += n
	s.Stats.IDsSent += n
	b.add(protocol.SyncRange{Time: hi.Time, Prefix: hi.Prefix, Mode: protocol.ModeIDList, Data: data})
}

// split answers a range [lo, hi) holding our records of ranks r0 to r1-1:
// their ID list if few, else parts fingerprinted sub-ranges of about equal
// counts (as many as records if fewer).
func (b *builder) split(lo, hi protocol.Bound, r0, r1, parts int) {
	s, n := b.s, r1-r0
	if n <= s.p.IDListMax {
		b.list(lo, hi, r0, r1)
		return
	}
	prev := s.idx.Prefix(r0)
	parts = min(parts, n) // so that every part holds a record
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
		fp := s.fingerprint(&a)
		b.add(protocol.SyncRange{Time: ub.Time, Prefix: ub.Prefix, Mode: protocol.ModeFingerprint, Data: fp[:]})
	}
}

func (b *builder) add(r protocol.SyncRange) {
	b.out.Ranges = append(b.out.Ranges, r)
	b.s.Stats.RangesSent++
}

// turn returns the answer without trailing skips; the records found for
// the peer stay in b.push.
func (b *builder) turn() Turn {
	k := len(b.out.Ranges)
	for k > 0 && b.out.Ranges[k-1].Mode == protocol.ModeSkip {
		k--
	}
	b.out.Ranges = b.out.Ranges[:k]
	return b.out
}

// between returns a bound above a and not above b (a < b), short on the
// wire: if their times differ, the time in (a.Time, b.Time] with the most
// trailing zero bits and no prefix; else b's time and the shortest prefix
// of b's digest that a's does not start with.
func between(a, b *Item) protocol.Bound {
	if a.Time != b.Time {
		k := bits.Len64(a.Time^b.Time) - 1 // the highest bit where they differ: set in b
		return protocol.Bound{Time: b.Time &^ (1<<k - 1)}
	}
	k := 0
	for k < protocol.DigestSize-1 && a.Digest[k] == b.Digest[k] {
		k++
	}
	return protocol.Bound{Time: b.Time, Prefix: bytes.Clone(b.Digest[:k+1])}
}
