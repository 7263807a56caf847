package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/ipfs/go-cid"
)

// Proof of work (SPEC §7.4).
//
// A genesis may ask, in policy.work, that every other record of its
// commons carry that many bits of work: leading zero bits in the SHA-256
// of the record's signing bytes. The author searches for them by moving
// the record's time forward one step at a time (its logical counter
// first), then signs once; a receiver checks them with one hash, before
// any signature. The rule is read from the genesis alone, whose CID is the
// commons ID, so every node that holds the genesis decides it the same way.

// MaxWork is the most work a genesis may ask: 24 bits, about 16 million
// hashes a record, some seconds of one core.
const MaxWork = 24

var (
	// ErrNoWork: a record carries less proof of work than its commons'
	// genesis asks. Permanent: every node decides it the same way.
	ErrNoWork = errors.New("protocol: not enough proof of work")
	// ErrNoGenesis: the work a commons asks cannot be known yet, because
	// its genesis has not arrived. Like ErrFutureTime it only delays the
	// record.
	ErrNoGenesis = errors.New("protocol: the commons' genesis has not arrived")
)

// GenesisFunc returns the genesis manifest of the commons with ID
// commons, whose policy decides what its other records must carry (work,
// §7.4) and may hold (bans, §7.5), or an error wrapping ErrNoGenesis when
// its genesis is not at hand.
type GenesisFunc func(commons cid.Cid) (*Manifest, error)

// BansAllowed reports whether a genesis lets its commons' manifests ban
// keys (§7.5).
func (m *Manifest) BansAllowed() bool { return m != nil && m.Policy != nil && m.Policy.Bans }

// Coalition returns the version of the coalition's records a genesis lets
// its commons carry (§7.6): 0 for none.
func (m *Manifest) Coalition() int {
	if m == nil || m.Policy == nil {
		return 0
	}
	return int(m.Policy.Coalition)
}

// CoalitionOf returns the policy.coalition version that introduced records
// of type t, or 0 for the types every commons carries.
func CoalitionOf(t Type) int {
	switch t {
	case TypeProfile, TypeSponsorship, TypePledge, TypeAcknowledgement:
		return 1
	}
	return 0
}

// AssociationRecords returns the version of the association's records a
// genesis lets its commons carry (§7.7): 0 for none.
func (m *Manifest) AssociationRecords() int {
	if m == nil || m.Policy == nil {
		return 0
	}
	return int(m.Policy.Association)
}

// AssociationOf returns the policy.association version that introduced
// records of type t, or 0 for the types every commons carries.
func AssociationOf(t Type) int {
	switch t {
	case TypeDispute, TypeStatement, TypeResolution, TypeCertificate, TypeRotation:
		return 1
	}
	return 0
}

// WorkAsked returns the work a genesis asks of the other records of its
// commons: 0 for none.
func (m *Manifest) WorkAsked() int {
	if m == nil || m.Policy == nil {
		return 0
	}
	return int(m.Policy.Work)
}

// workOf returns the leading zero bits of SHA-256(signing).
func workOf(signing []byte) int {
	sum := sha256.Sum256(signing)
	n := 0
	for _, c := range sum {
		if c != 0 {
			return n + bits.LeadingZeros8(c)
		}
		n += 8
	}
	return n
}

// Work returns the proof of work the block carries (§7.4).
func (b *Block) Work() int { return workOf(b.SigningBytes()) }

// checkGenesis checks the block, with the given signing bytes, against
// the rules its commons' genesis decides (from the batch or from genesis):
// the work it carries (§7.4), and bans only where the genesis allows them
// (§7.5).
func checkGenesis(b *Block, signing []byte, genesis GenesisFunc) error {
	if b.Record.IsGenesis() {
		return nil
	}
	g, err := genesis(b.Record.Commons)
	if err != nil {
		return fieldErr("commons", ErrNoGenesis, "%v", err)
	}
	if m := b.Record.Manifest(); m != nil && len(m.Banned) > 0 && !g.BansAllowed() {
		return fieldErr("body.banned", ErrInvalid, "the genesis of commons %s does not let its manifests ban keys (policy.bans)", b.Record.Commons)
	}
	if v := CoalitionOf(b.Record.Type()); v > g.Coalition() {
		return fieldErr("type", ErrInvalid, "the genesis of commons %s does not let it carry %s records (policy.coalition %d, they need %d)", b.Record.Commons, b.Record.Type(), g.Coalition(), v)
	}
	if v := AssociationOf(b.Record.Type()); v > g.AssociationRecords() {
		return fieldErr("type", ErrInvalid, "the genesis of commons %s does not let it carry %s records (policy.association %d, they need %d)", b.Record.Commons, b.Record.Type(), g.AssociationRecords(), v)
	}
	want := g.WorkAsked()
	if want <= 0 {
		return nil
	}
	if got := workOf(signing); got < want {
		return fieldErr("record", ErrNoWork, "record %s carries %d bits of work; its commons asks %d", b.CID, got, want)
	}
	return nil
}

// SolveWork looks for a time at which r carries bits of work: r.Time, or
// one of the tries-1 timestamps after it, in order. It sets r.Time to the
// first that does and returns true, or leaves r unchanged and returns
// false. The work covers the signing bytes, so r's author must be set as
// Sign will set it, and r signed afterwards. Expect 2^bits tries.
func SolveWork(r *Record, bits int, tries uint64) (bool, error) {
	if bits <= 0 {
		return true, nil
	}
	start := r.Time
	msg, off, err := timeOffset(r)
	if err != nil {
		return false, err
	}
	for i := uint64(0); i < tries; i++ {
		t := start + HLC(i)
		if t < start {
			break // past the largest timestamp
		}
		if off < 0 {
			// The time's encoding changes length (a small time, in
			// tests): encode the record again for each try.
			r.Time = t
			if msg, err = r.signingBytes(); err != nil {
				r.Time = start
				return false, err
			}
		} else {
			binary.BigEndian.PutUint64(msg[off:], uint64(t))
		}
		if workOf(msg) >= bits {
			r.Time = t
			return true, nil
		}
	}
	r.Time = start
	return false, nil
}

// timeOffset returns r's signing bytes and where in them its time's eight
// bytes lie, or -1 when the time does not take eight bytes (below 2^32):
// it encodes r again with the time's counter flipped and finds the bytes
// that differ.
func timeOffset(r *Record) ([]byte, int, error) {
	a, err := r.signingBytes()
	if err != nil {
		return nil, 0, err
	}
	if r.Time < 1<<32 {
		return a, -1, nil
	}
	t := r.Time
	r.Time ^= 0xffff
	b, err := r.signingBytes()
	r.Time = t
	if err != nil || len(a) != len(b) {
		return a, -1, err
	}
	last := -1
	for i := range a {
		if a[i] != b[i] {
			last = i
		}
	}
	if off := last - 7; off >= 0 && binary.BigEndian.Uint64(a[off:]) == uint64(t) {
		return a, off, nil
	}
	return a, -1, nil
}
