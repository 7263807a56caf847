package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// SyncProtocol is the stream protocol of range-based set reconciliation
// (SPEC.md §11).
const SyncProtocol = "/commons/sync/2.0.0"

// Sync protocol limits and sizes (SPEC.md §11.2).
const (
	// MaxSyncMessage caps one control frame's CBOR bytes.
	MaxSyncMessage = 256 << 10
	// MaxSyncRanges caps the ranges of one control frame.
	MaxSyncRanges = 1 << 16
	// MaxSyncIDs caps the short IDs of one ID list.
	MaxSyncIDs = 4096
	// MaxSyncWants caps the wants of one control frame.
	MaxSyncWants = 1 << 16
	// FingerprintSize is the length of a range fingerprint.
	FingerprintSize = 4
	// CheckSize is the length of a turn's check: the fingerprint of the
	// sender's whole set.
	CheckSize = 16
	// SaltSize is the length of the session salt the initiator picks.
	SaltSize = 16
	// ShortIDSize is the length of a record's short ID in ID lists.
	ShortIDSize = 4
	// MaxShortIDSize bounds the short ID width an ID list may use.
	MaxShortIDSize = 8
	// DigestSize is the length of a record digest: the sha2-256 digest of
	// the record's bytes, inside its CID.
	DigestSize = 32
)

// Sync frame kinds: the first byte of every sync frame.
const (
	SyncFrameControl = 0 // a SyncMsg
	SyncFrameRecord  = 1 // a record's exact bytes
)

// Range modes.
const (
	ModeSkip        = 0 // nothing to do for this range
	ModeFingerprint = 1 // Data is the sender's fingerprint of the range
	ModeIDList      = 2 // Data is the sender's short IDs in the range, in key order
)

// Digest is a record's digest: the sha2-256 digest in its CID.
type Digest [DigestSize]byte

// RecordDigest returns the digest of a record CID (CIDv1, dag-cbor,
// sha2-256); false for any other CID.
func RecordDigest(c cid.Cid) (Digest, bool) {
	var d Digest
	k := c.KeyString()
	// CIDv1 dag-cbor sha2-256: 0x01 0x71 0x12 0x20 and 32 bytes.
	if len(k) != 4+DigestSize || k[0] != 1 || k[1] != CodecDagCBOR || k[2] != 0x12 || k[3] != DigestSize {
		return d, false
	}
	copy(d[:], k[4:])
	return d, true
}

// CID returns the record CID with digest d.
func (d Digest) CID() cid.Cid {
	h, err := mh.Encode(d[:], mh.SHA2_256)
	if err != nil {
		panic(err) // unreachable: a 32-byte sha2-256 digest
	}
	return cid.NewCidV1(CodecDagCBOR, h)
}

// Bound is the upper end of a sync range: records ordered by (Time, Digest)
// below the bound are in the range. Prefix is compared with a digest
// bytewise, so a bound with a short Prefix sits before every digest that
// begins with it. The bound with Time math.MaxUint64 and an empty Prefix
// is infinity, above every record.
type Bound struct {
	Time   uint64
	Prefix []byte
}

// Inf is the bound above every record.
var Inf = Bound{Time: math.MaxUint64}

// IsInf reports whether b is infinity.
func (b Bound) IsInf() bool { return b.Time == math.MaxUint64 && len(b.Prefix) == 0 }

// Compare orders two bounds: negative if b < o, 0 if equal, positive if
// b > o.
func (b Bound) Compare(o Bound) int {
	switch bi, oi := b.IsInf(), o.IsInf(); {
	case bi && oi:
		return 0
	case bi:
		return 1
	case oi:
		return -1
	}
	if b.Time != o.Time {
		if b.Time < o.Time {
			return -1
		}
		return 1
	}
	return bytes.Compare(b.Prefix, o.Prefix)
}

// Below reports whether the record (t, d) sorts below the bound b.
func (b Bound) Below(t uint64, d *Digest) bool {
	if b.IsInf() {
		return true
	}
	if t != b.Time {
		return t < b.Time
	}
	return bytes.Compare(d[:], b.Prefix) < 0
}

// SyncRange is one range of a reconciliation turn: from the previous
// range's upper bound (or the lowest key, for the first) up to Upper,
// excluded.
type SyncRange struct {
	Time   uint64
	Prefix []byte
	Mode   uint8
	Data   []byte
}

// Upper returns the range's upper bound.
func (r *SyncRange) Upper() Bound { return Bound{Time: r.Time, Prefix: r.Prefix} }

// SyncMsg is a control frame of the sync protocol: part of a turn. Commons
// and Salt are set only in the session's first frame, Pass only in the
// first frame of a turn that starts a new pass; Check and End only in the
// last frame of a turn.
type SyncMsg struct {
	Commons *Link
	Salt    []byte
	Pass    uint64
	Ranges  []SyncRange
	// Want lists indices into the short IDs of the receiver's previous
	// turn's ID lists (counted over the whole turn), ascending.
	Want  []int
	Check []byte
	End   bool
}

// syncWire is a SyncMsg as it is encoded: ranges and wants packed into
// byte strings (SPEC.md §11.2).
type syncWire struct {
	Commons *Link  `cbor:"commons,omitempty"`
	Salt    []byte `cbor:"salt,omitempty"`
	Pass    uint64 `cbor:"pass,omitempty"`
	Ranges  []byte `cbor:"ranges,omitempty"`
	Want    []byte `cbor:"want,omitempty"`
	Check   []byte `cbor:"check,omitempty"`
	End     bool   `cbor:"end,omitempty"`
}

// EncodeSync encodes a control frame's message.
func EncodeSync(m *SyncMsg) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	w := syncWire{Commons: m.Commons, Salt: m.Salt, Pass: m.Pass, Check: m.Check, End: m.End}
	var err error
	if w.Ranges, err = appendRanges(nil, m.Ranges); err != nil {
		return nil, err
	}
	if w.Want, err = appendWants(nil, m.Want); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("protocol: sync message: %w", err)
	}
	if len(b) > MaxSyncMessage {
		return nil, fmt.Errorf("protocol: sync message of %d bytes, limit %d", len(b), MaxSyncMessage)
	}
	return b, nil
}

// DecodeSync decodes and checks a control frame's message: canonical
// encoding, sizes, modes, fingerprint lengths. Bound order (beyond times
// not decreasing within the frame), ID widths and want indices are the
// reconciler's to check.
func DecodeSync(b []byte) (*SyncMsg, error) {
	if len(b) > MaxSyncMessage {
		return nil, fmt.Errorf("protocol: sync message of %d bytes, limit %d", len(b), MaxSyncMessage)
	}
	var w syncWire
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("protocol: sync message: %w", err)
	}
	if again, err := encMode.Marshal(&w); err != nil || !bytes.Equal(again, b) {
		return nil, errors.New("protocol: sync message is not canonical DAG-CBOR")
	}
	m := &SyncMsg{Commons: w.Commons, Salt: w.Salt, Pass: w.Pass, Check: w.Check, End: w.End}
	var err error
	if m.Ranges, err = readRanges(w.Ranges); err != nil {
		return nil, err
	}
	if m.Want, err = readWants(w.Want); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *SyncMsg) check() error {
	if m.Salt != nil && len(m.Salt) != SaltSize {
		return fmt.Errorf("protocol: sync salt of %d bytes, want %d", len(m.Salt), SaltSize)
	}
	if m.Check != nil && len(m.Check) != CheckSize {
		return fmt.Errorf("protocol: sync check of %d bytes, want %d", len(m.Check), CheckSize)
	}
	if len(m.Ranges) > MaxSyncRanges {
		return fmt.Errorf("protocol: sync message with %d ranges, limit %d", len(m.Ranges), MaxSyncRanges)
	}
	if len(m.Want) > MaxSyncWants {
		return fmt.Errorf("protocol: sync message with %d wants, limit %d", len(m.Want), MaxSyncWants)
	}
	for i := range m.Ranges {
		r := &m.Ranges[i]
		if len(r.Prefix) > DigestSize {
			return fmt.Errorf("protocol: sync range %d: bound prefix of %d bytes", i, len(r.Prefix))
		}
		switch r.Mode {
		case ModeSkip:
			if len(r.Data) != 0 {
				return fmt.Errorf("protocol: sync range %d: skip with data", i)
			}
		case ModeFingerprint:
			if len(r.Data) != FingerprintSize {
				return fmt.Errorf("protocol: sync range %d: fingerprint of %d bytes, want %d", i, len(r.Data), FingerprintSize)
			}
		case ModeIDList:
			if len(r.Data) > MaxSyncIDs*MaxShortIDSize {
				return fmt.Errorf("protocol: sync range %d: ID list of %d bytes, limit %d", i, len(r.Data), MaxSyncIDs*MaxShortIDSize)
			}
		default:
			return fmt.Errorf("protocol: sync range %d: unknown mode %d", i, r.Mode)
		}
	}
	return nil
}

// maxShift is the largest power of two a range's time delta is scaled by.
const maxShift = 31

// appendRanges packs ranges (SPEC.md §11.2): per range a head byte (mode
// in bits 0–1, bit 2 set if a prefix follows, the time delta's shift z in
// bits 3–7), the varint q of the time delta from the previous range's
// bound (0 for the first) divided by 2^z, the prefix (a length byte and
// its bytes) if any, then the data: a fingerprint, or for an ID list a
// varint length and its bytes.
func appendRanges(b []byte, rs []SyncRange) ([]byte, error) {
	prev := uint64(0)
	for i := range rs {
		r := &rs[i]
		if r.Time < prev {
			return nil, fmt.Errorf("protocol: sync range %d: time below the previous range's", i)
		}
		b = appendRange(b, r, prev)
		prev = r.Time
	}
	return b, nil
}

func appendRange(b []byte, r *SyncRange, prev uint64) []byte {
	delta := r.Time - prev
	z := 0
	if delta != 0 {
		z = min(bits.TrailingZeros64(delta), maxShift)
	}
	h := r.Mode | byte(z)<<3
	if len(r.Prefix) > 0 {
		h |= 4
	}
	b = append(b, h)
	b = binary.AppendUvarint(b, delta>>z)
	if len(r.Prefix) > 0 {
		b = append(b, byte(len(r.Prefix)))
		b = append(b, r.Prefix...)
	}
	switch r.Mode {
	case ModeFingerprint:
		b = append(b, r.Data...)
	case ModeIDList:
		b = binary.AppendUvarint(b, uint64(len(r.Data)))
		b = append(b, r.Data...)
	}
	return b
}

// rangeSize is the packed size of r after a bound of time prev.
func rangeSize(r *SyncRange, prev uint64) int {
	var buf [3 * binary.MaxVarintLen64]byte
	head := appendRange(buf[:0], &SyncRange{Time: r.Time, Mode: ModeSkip}, prev)
	n := len(head)
	if len(r.Prefix) > 0 {
		n += 1 + len(r.Prefix)
	}
	switch r.Mode {
	case ModeFingerprint:
		n += len(r.Data)
	case ModeIDList:
		n += uvarintLen(uint64(len(r.Data))) + len(r.Data)
	}
	return n
}

func uvarintLen(v uint64) int { return max(1, (bits.Len64(v)+6)/7) }

var errPacked = errors.New("protocol: sync message: malformed packed ranges or wants")

// readUvarint reads a minimal unsigned varint.
func readUvarint(b []byte) (uint64, []byte, error) {
	v, k := binary.Uvarint(b)
	if k <= 0 || (k > 1 && b[k-1] == 0) {
		return 0, nil, errPacked
	}
	return v, b[k:], nil
}

// readRanges unpacks ranges, accepting only the encoding appendRanges
// gives.
func readRanges(b []byte) ([]SyncRange, error) {
	var out []SyncRange
	prev := uint64(0)
	for len(b) > 0 {
		if len(out) == MaxSyncRanges {
			return nil, fmt.Errorf("protocol: sync message with over %d ranges", MaxSyncRanges)
		}
		h := b[0]
		mode, hasPrefix, z := h&3, h&4 != 0, int(h>>3)
		q, rest, err := readUvarint(b[1:])
		if err != nil {
			return nil, err
		}
		b = rest
		// The shift is the delta's trailing zeros, capped: q is odd unless
		// the shift is the cap; a zero delta has no shift.
		if (q == 0 && z != 0) || (q != 0 && q&1 == 0 && z != maxShift) || bits.Len64(q)+z > 64 {
			return nil, errPacked
		}
		t, carry := bits.Add64(prev, q<<z, 0)
		if carry != 0 {
			return nil, errPacked
		}
		r := SyncRange{Time: t, Mode: mode}
		if hasPrefix {
			if len(b) < 1 || b[0] == 0 || int(b[0]) > DigestSize || len(b) < 1+int(b[0]) {
				return nil, errPacked
			}
			r.Prefix, b = b[1:1+b[0]], b[1+b[0]:]
		}
		switch mode {
		case ModeSkip:
		case ModeFingerprint:
			if len(b) < FingerprintSize {
				return nil, errPacked
			}
			r.Data, b = b[:FingerprintSize], b[FingerprintSize:]
		case ModeIDList:
			n, rest, err := readUvarint(b)
			if err != nil || n > uint64(len(rest)) {
				return nil, errPacked
			}
			r.Data, b = rest[:n], rest[n:]
		default:
			return nil, fmt.Errorf("protocol: sync range %d: unknown mode %d", len(out), mode)
		}
		out = append(out, r)
		prev = t
	}
	return out, nil
}

// appendWants packs ascending indices: the first as a varint, each next
// one as a varint of its gap to the previous less one.
func appendWants(b []byte, want []int) ([]byte, error) {
	prev := -1
	for _, w := range want {
		if w <= prev || w > math.MaxInt32 {
			return nil, fmt.Errorf("protocol: sync wants not ascending or over 2^31")
		}
		b = binary.AppendUvarint(b, uint64(w-prev-1))
		prev = w
	}
	return b, nil
}

func readWants(b []byte) ([]int, error) {
	var out []int
	prev := -1
	for len(b) > 0 {
		if len(out) == MaxSyncWants {
			return nil, fmt.Errorf("protocol: sync message with over %d wants", MaxSyncWants)
		}
		gap, rest, err := readUvarint(b)
		if err != nil || gap > math.MaxInt32 || int64(prev)+1+int64(gap) > math.MaxInt32 {
			return nil, errPacked
		}
		prev += 1 + int(gap)
		out = append(out, prev)
		b = rest
	}
	return out, nil
}

// SyncFrames splits one turn, given as a single message, into control
// messages that each respect MaxSyncMessage, MaxSyncRanges and
// MaxSyncWants, in order. Commons, Salt and Pass go in the first, Check
// and End (set) in the last.
func SyncFrames(m *SyncMsg) []*SyncMsg {
	const budget = MaxSyncMessage - 512 // room for the map, keys, salt, check, headers
	var out []*SyncMsg
	cur := &SyncMsg{Commons: m.Commons, Salt: m.Salt, Pass: m.Pass}
	size, prev := 0, uint64(0)
	flush := func() {
		out = append(out, cur)
		cur, size, prev = &SyncMsg{}, 0, 0
	}
	for i := range m.Ranges {
		r := &m.Ranges[i]
		n := rangeSize(r, prev)
		if len(cur.Ranges) == MaxSyncRanges || size+n > budget {
			flush()
			n = rangeSize(r, prev)
		}
		cur.Ranges = append(cur.Ranges, *r)
		size += n
		prev = r.Time
	}
	last := -1
	for _, w := range m.Want {
		n := uvarintLen(uint64(w - last - 1))
		if len(cur.Want) == MaxSyncWants || size+n > budget {
			flush()
			last = -1
			n = uvarintLen(uint64(w))
		}
		cur.Want = append(cur.Want, w)
		size += n
		last = w
	}
	cur.Check, cur.End = m.Check, true
	out = append(out, cur)
	return out
}
