// Package crdt holds the state of one commons as a deterministic function of
// a grow-only set of records.
//
// The replicated data type is the set itself: a [State] holds the valid
// records (manifests, contributions, reviews) of one commons, and merging two
// replicas is set union ([Merge]), which is commutative, associative and
// idempotent. Everything else — the manifest chain, who may review, which
// contributions are accepted, the state root — is derived from the set alone,
// so two replicas holding the same records report the same state whatever
// order the records arrived in. The caller checks signatures and the other
// stateless rules (package protocol) before adding a record; this package
// decides what authority each record carries.
//
// # Commons ID
//
// The commons ID is the CID of the genesis manifest (a manifest with no
// Commons field). A State is created for one ID; every other record it
// accepts has Commons equal to that ID, and the only genesis it accepts is
// the one whose CID is the ID. Adding anything else fails with
// [ErrWrongCommons] and changes nothing.
//
// # Manifest chain
//
// The genesis is on the chain if it is present and its distinct signers (the
// author and the co-signers) include at least Threshold keys of its own
// Association. An update (a manifest with Commons set) is classified by
// looking at its Prev list, in this order:
//
//  1. If Prev is empty, or names a present record that is not a manifest, or
//     a manifest that is inert, the update is inert.
//  2. Otherwise, if some predecessor is missing or still waiting, the update
//     waits.
//  3. Otherwise it is on the chain iff its Version is greater than every
//     predecessor's Version and, for EVERY predecessor P, its distinct signers
//     that are in P.Association and are not revoked in P's lineage number at
//     least P.Threshold. P's lineage is P and all its ancestors; the keys
//     revoked in it are the union of their Revoked lists. If not, it is inert.
//
// Whether a manifest is on the chain depends only on its ancestors, which
// are fixed by content addressing, so the answer never changes once all of
// them are present: a manifest goes from waiting to on-chain or inert, and
// stays there.
//
// The heads are the on-chain manifests that no on-chain manifest names in
// Prev. More than one head is a fork, visible through [State.Forks]. The
// resolved head — the current manifest, [State.Head] — is the head with the
// highest Version, then the lowest CID (comparing the CIDs' binary forms). An
// update that names several heads in Prev (and is signed for each) merges
// them. [State.History] lists every on-chain manifest and marks every head.
//
// # Revocation
//
// The revoked set is the union of Revoked over all on-chain manifests,
// forks included. Revocation is retroactive: a revoked key's reviews count
// nowhere, whenever they were made. A key revoked in one manifest also stops
// counting towards the association threshold for updates of that manifest
// and its descendants (rule 3 above).
//
// # Reviews
//
// A review is classified by the first rule that applies:
//
//  1. its author is in the revoked set: inert;
//  2. its Under is present but not a manifest: inert;
//  3. its Target is present but not a contribution: inert;
//  4. its Under is an inert manifest: inert;
//  5. its Under is on the chain and does not list the author among its
//     Maintainers: inert;
//  6. its Under is missing or waiting, or its Target is missing: waiting;
//  7. otherwise it is eligible.
//
// For each (maintainer, contribution) pair only the latest eligible review
// counts, ordering reviews by record Time and then by CID bytes (the greater
// wins). A latest review with decision retract means that maintainer
// currently casts no vote. A review counts only toward the manifest version it
// names in Under. Removing a maintainer in a later version is not
// retroactive: their review under the older version still counts toward the
// older version.
//
// # Contributions
//
// A contribution whose Licence names a present record that is not a
// manifest, or an inert manifest, is inert: it stays in the set and is never
// accepted. If its Licence is missing or waiting, the contribution waits and
// is pending. Otherwise its status is:
//
//   - rejected if for some on-chain version V the counting reviews with
//     decision reject and Under == V number at least V.RejectQuorum;
//   - else accepted if for some on-chain version V the counting reviews with
//     decision accept and Under == V number at least V.Quorum;
//   - else pending.
//
// A version with a zero quorum (no maintainers) never accepts or rejects.
// When both quorums are met, rejection wins: maintainers guard the commons'
// integrity, so a sufficient objection outweighs acceptance. Lowering a
// quorum in a later version does not turn old reviews into an acceptance,
// since they count only toward the version they name. Inert and waiting
// contributions report [StatusPending] (and [ContributionView.Inert] says
// why an inert one will never move). A contribution's Revises link is not a
// dependency: a missing revised contribution makes nothing wait.
//
// Records that wait are kept and re-examined when what they wait for
// arrives; nothing is dropped for arriving early, and the final state does
// not depend on arrival order. [State.Waiting] counts them and
// [State.Inert] lists the inert records with a reason.
//
// # State root
//
// The state root hashes the set of record digests (the sha2-256 inside each
// record CID; every record CID is CIDv1, dag-cbor, sha2-256) through a
// canonical 16-ary hash trie. A trie node at depth d (in nibbles) holding
// the digests that share its prefix is a leaf if it holds at most 64 of
// them (or d is 63), hashed as SHA-256 over the byte 0x00, their count as
// an unsigned LEB128 varint and the digests in ascending order; otherwise
// it is an inner node, hashed as SHA-256 over the byte 0x01 and, for each
// value 0 to 15 of the digest's nibble d (high nibble of byte d/2 first),
// the hash of the child holding those digests, or 32 zero bytes where there
// are none. The root is SHA-256 over the ASCII prefix
// "commons/crdt/root/v2\n", the number of records as a varint, and the
// hash of the trie's top node. The shape of the trie depends only on the
// set, so two states have equal roots exactly when they hold the same
// records (up to SHA-256 collisions). Hashes are cached per node and only
// the paths of records added since the last call are hashed again, so the
// root costs time in proportion to what changed, not to the set's size.
//
// # Cost
//
// Indexes are kept incrementally: adding a contribution or review touches
// only that contribution's status; a manifest re-examines only the records
// waiting for it, and a new revocation re-examines every review once.
//
// # Set reconciliation
//
// [State.Index] keeps the records ordered by (time, digest) in a B+tree
// whose inner nodes cache each child's count and digest sum modulo 2^256,
// updated as records are added, so that the fingerprint of any range costs
// O(log n). A [Session] runs one side of range-based set reconciliation
// over it (protocol/SPEC.md §11): it answers the peer's turns of
// fingerprinted ranges and ID lists, says which of our records the peer
// lacks and which of its records we want, and checks every record the peer
// sends against what our previous turn asked for. It does no I/O; package
// node carries turns and records over a stream.
//
// # Purity
//
// This package performs no I/O, reads no clock, draws no random numbers,
// starts no goroutines and takes no locks. A State is not safe for
// concurrent use, not even for reads: Root and CIDs update a cache. It may
// import only the standard library's pure packages, go-cid and package
// protocol; never os, net, time, math/rand, log, badger, libp2p's p2p
// packages or pubsub (deps_test.go enforces this).
package crdt
