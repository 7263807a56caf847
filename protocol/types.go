package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PublicKeySize and SignatureSize are the ed25519 sizes in bytes.
const (
	PublicKeySize = ed25519.PublicKeySize
	SignatureSize = ed25519.SignatureSize
)

// PublicKey is a raw 32-byte ed25519 public key: a record's author, a
// maintainer, an association member. The same key is a libp2p peer identity,
// so it has a peer ID form (String) that users see and type.
type PublicKey [PublicKeySize]byte

// Signature is a raw 64-byte ed25519 signature.
type Signature [SignatureSize]byte

// PeerID returns the libp2p peer ID of the key.
func (k PublicKey) PeerID() peer.ID {
	pk, err := crypto.UnmarshalEd25519PublicKey(k[:])
	if err != nil {
		// Unreachable: any 32 bytes unmarshal as an ed25519 key.
		panic(fmt.Sprintf("protocol: ed25519 public key: %v", err))
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		panic(fmt.Sprintf("protocol: peer id: %v", err))
	}
	return id
}

// String returns the key as a peer ID (base58), the form users see.
func (k PublicKey) String() string { return k.PeerID().String() }

// Hex returns the raw key bytes in hex.
func (k PublicKey) Hex() string { return hex.EncodeToString(k[:]) }

// Compare orders keys by their bytes.
func (k PublicKey) Compare(o PublicKey) int { return bytes.Compare(k[:], o[:]) }

// MarshalText encodes the key as a peer ID.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a peer ID or 64 hex digits.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// ParsePublicKey parses a key given as a peer ID of an ed25519 identity
// (12D3KooW…) or as 64 hex digits.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if len(s) == 2*PublicKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			copy(k[:], b)
			return k, nil
		}
	}
	id, err := peer.Decode(s)
	if err != nil {
		return k, fmt.Errorf("protocol: %q is neither a peer ID nor a hex ed25519 key: %w", s, err)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return k, fmt.Errorf("protocol: peer ID %s does not embed its public key: %w", s, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return k, fmt.Errorf("protocol: peer ID %s is not an ed25519 key", s)
	}
	raw, err := pk.Raw()
	if err != nil {
		return k, fmt.Errorf("protocol: peer ID %s: %w", s, err)
	}
	copy(k[:], raw)
	return k, nil
}

// PublicKeyFromPeerID returns the ed25519 key embedded in a peer ID.
func PublicKeyFromPeerID(id peer.ID) (PublicKey, error) { return ParsePublicKey(id.String()) }

// PrivateKey is an ed25519 signing key.
type PrivateKey ed25519.PrivateKey

// NewPrivateKeyFromSeed derives a key from a 32-byte seed.
func NewPrivateKeyFromSeed(seed []byte) PrivateKey {
	return PrivateKey(ed25519.NewKeyFromSeed(seed))
}

// PrivateKeyFromLibp2p converts a libp2p ed25519 private key.
func PrivateKeyFromLibp2p(k crypto.PrivKey) (PrivateKey, error) {
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("protocol: identity key is %v, want ed25519", k.Type())
	}
	raw, err := k.Raw()
	if err != nil {
		return nil, fmt.Errorf("protocol: identity key: %w", err)
	}
	if len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("protocol: identity key has %d bytes, want %d", len(raw), ed25519.PrivateKeySize)
	}
	return PrivateKey(raw), nil
}

// Public returns the key's public half.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p[:], ed25519.PrivateKey(k).Public().(ed25519.PublicKey))
	return p
}

// LogValue keeps private keys out of logs.
func (k PrivateKey) String() string { return "protocol.PrivateKey(REDACTED)" }

// HLC is a hybrid logical clock timestamp: the upper 48 bits are Unix time in
// milliseconds, the lower 16 bits a logical counter that orders events within
// one millisecond. Comparing two HLCs as integers orders them in time.
type HLC uint64

// HLCFromMillis builds a timestamp from Unix milliseconds and a counter.
func HLCFromMillis(ms int64, counter uint16) HLC {
	if ms < 0 {
		ms = 0
	}
	return HLC(uint64(ms)<<16 | uint64(counter))
}

// Millis returns the physical part: Unix time in milliseconds.
func (h HLC) Millis() int64 { return int64(h >> 16) }

// Time returns h's wall-clock part as a time, in UTC.
func (h HLC) Time() time.Time { return time.UnixMilli(h.Millis()).UTC() }

// Counter returns the logical part.
func (h HLC) Counter() uint16 { return uint16(h) }

// NextHLC returns the timestamp for a new local event, given the wall clock
// reading nowMillis and the latest timestamp this node has issued or seen.
// The result is greater than last and never behind the wall clock.
func NextHLC(nowMillis int64, last HLC) HLC {
	phys := HLCFromMillis(nowMillis, 0)
	if phys > last {
		return phys
	}
	return last + 1
}
