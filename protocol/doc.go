// Package protocol defines the Commons wire format: the signed record
// envelope and its three first body types (manifest, contribution, review),
// their canonical DAG-CBOR encoding, content identifiers, ed25519 signatures
// under one pinned validity rule (ZIP-215), stateless validation, and the
// names of pubsub topics and stream protocols.
//
// Every record is a single DAG-CBOR block. Its CID is a CIDv1 with the
// dag-cbor codec and a sha2-256 multihash over the exact bytes, signature
// included. A decoder accepts only bytes that re-encode to themselves, so a
// record has exactly one valid encoding and one CID.
//
// Validation here is stateless: it needs nothing but the bytes (and, for the
// one clock-dependent check, a time supplied by the caller). Whether a record
// carries authority — a maintainer's review, an association's manifest
// update — is decided by package crdt from the whole record set.
//
// The full specification, with test vectors, is SPEC.md in this directory.
//
// This package performs no I/O and reads no clock. It may import only the
// standard library, go-cid, go-multihash, fxamacker/cbor, curve25519-voi and
// the libp2p core/crypto and core/peer packages.
package protocol
