package protocol

import (
	"bytes"
	"fmt"
	"math"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// SyncProtocol is the stream protocol of range-based set reconciliation
// (SPEC.md §11).
const SyncProtocol = "/commons/sync/1.0.0"

// Sync protocol limits (SPEC.md §11.2).
const (
	// MaxSyncMessage caps one control frame's CBOR bytes.
	MaxSyncMessage = 256 << 10
	// MaxSyncRanges caps the ranges of one control frame.
	MaxSyncRanges = 4096
	// MaxSyncIDs caps the digests of one ID list, and of one want list.
	MaxSyncIDs = 4096
	// FingerprintSize is the length of a range fingerprint.
	FingerprintSize = 16
	// DigestSize is the length of a record ID on the sync wire: the
	// sha2-256 digest of the record's bytes.
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
	ModeIDList      = 2 // Data is the sender's digests in the range, ascending
)

// Digest is a record's ID on the sync wire: the sha2-256 digest in its CID.
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

// SyncRange is one range of a reconciliation message: from the previous
// range's upper bound (or the lowest key, for the first) up to Upper,
// excluded. It is encoded as a CBOR array [time, prefix, mode, data].
type SyncRange struct {
	_      struct{} `cbor:",toarray"`
	Time   uint64
	Prefix []byte
	Mode   uint8
	Data   []byte
}

// Upper returns the range's upper bound.
func (r *SyncRange) Upper() Bound { return Bound{Time: r.Time, Prefix: r.Prefix} }

// SyncMsg is a control frame of the sync protocol: part of a turn's ranges
// and wants. Commons is set only in the session's first frame; End marks
// the last frame of a turn.
type SyncMsg struct {
	Commons *Link       `cbor:"commons,omitempty"`
	Ranges  []SyncRange `cbor:"ranges,omitempty"`
	Want    []byte      `cbor:"want,omitempty"`
	End     bool        `cbor:"end,omitempty"`
}

// EncodeSync encodes a control frame's message.
func EncodeSync(m *SyncMsg) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protocol: sync message: %w", err)
	}
	if len(b) > MaxSyncMessage {
		return nil, fmt.Errorf("protocol: sync message of %d bytes, limit %d", len(b), MaxSyncMessage)
	}
	return b, nil
}

// DecodeSync decodes and checks a control frame's message: sizes, modes,
// fingerprint and ID-list lengths. Bound order is the reconciler's to check.
func DecodeSync(b []byte) (*SyncMsg, error) {
	if len(b) > MaxSyncMessage {
		return nil, fmt.Errorf("protocol: sync message of %d bytes, limit %d", len(b), MaxSyncMessage)
	}
	var m SyncMsg
	if err := decMode.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("protocol: sync message: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *SyncMsg) check() error {
	if len(m.Ranges) > MaxSyncRanges {
		return fmt.Errorf("protocol: sync message with %d ranges, limit %d", len(m.Ranges), MaxSyncRanges)
	}
	if len(m.Want)%DigestSize != 0 || len(m.Want)/DigestSize > MaxSyncIDs {
		return fmt.Errorf("protocol: sync want list of %d bytes: not a multiple of %d or over %d digests", len(m.Want), DigestSize, MaxSyncIDs)
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
			if len(r.Data)%DigestSize != 0 || len(r.Data)/DigestSize > MaxSyncIDs {
				return fmt.Errorf("protocol: sync range %d: ID list of %d bytes: not a multiple of %d or over %d digests", i, len(r.Data), DigestSize, MaxSyncIDs)
			}
		default:
			return fmt.Errorf("protocol: sync range %d: unknown mode %d", i, r.Mode)
		}
	}
	return nil
}

// SyncFrames splits one turn's ranges and wants into control messages that
// each respect MaxSyncMessage, MaxSyncRanges and MaxSyncIDs, in order; the
// last has End set. commons, if not nil, goes in the first.
func SyncFrames(commons *Link, ranges []SyncRange, want []Digest) []*SyncMsg {
	const budget = MaxSyncMessage - 512 // room for the map, keys and headers
	var out []*SyncMsg
	cur := &SyncMsg{Commons: commons}
	size := 0
	flush := func() {
		out = append(out, cur)
		cur, size = &SyncMsg{}, 0
	}
	for i := range ranges {
		r := ranges[i]
		// array header, uint64, two byte-string headers, mode
		n := 1 + 9 + 5 + len(r.Prefix) + 1 + 5 + len(r.Data)
		if len(cur.Ranges) == MaxSyncRanges || size+n > budget {
			flush()
		}
		cur.Ranges = append(cur.Ranges, r)
		size += n
	}
	for len(want) > 0 {
		room := min((budget-size)/DigestSize, MaxSyncIDs)
		if room <= 0 {
			flush()
			continue
		}
		k := min(room, len(want))
		for _, d := range want[:k] {
			cur.Want = append(cur.Want, d[:]...)
		}
		size += k * DigestSize
		want = want[k:]
	}
	cur.End = true
	out = append(out, cur)
	return out
}
