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
// # Authority
//
// The rules are those of protocol/SPEC.md §12, which gives their reasoning
// and the threat model: an attacker who holds some keys, forks from any
// manifest, and picks any version and time. In short:
//
//   - A manifest is a candidate when its chain is well formed and it is
//     signed by every predecessor's threshold of association keys; that
//     depends on its ancestors only, so it is decided once. Otherwise it is
//     inert for good, or waits for a missing predecessor.
//   - A candidate R attacks a candidate M when R revokes a key M counts
//     toward a predecessor's threshold and M is not in R's past (R and
//     everything reachable through Prev).
//   - The chain is the grounded labelling of the candidates: accepted once
//     every predecessor is accepted and the threshold holds without the keys
//     of every attacker not rejected; rejected once a predecessor is
//     rejected or the threshold fails without the keys of the accepted
//     attackers; contested if neither ever applies. [State.OnChain] and
//     [State.History] give the accepted manifests, [State.Contested] and
//     [State.ContestedManifests] the contested ones; rejected ones are
//     inert.
//   - The heads are the accepted manifests no accepted manifest names in
//     Prev; the resolved head ([State.Head]) is the one with the largest
//     past, then the lowest CID. Versions decide nothing.
//   - The revoked keys are those listed by accepted manifests; their
//     reviews count nowhere. Keys listed only by contested manifests are
//     suspended ([State.Suspended]).
//   - The banned keys are those listed in Banned by the heads; their
//     contributions and reviews are inert, whenever they were made
//     ([State.Banned]). Keys banned by contested manifests and by no head
//     are ban-suspended ([State.BanSuspended]): their contributions are
//     held, their reviews suspended. Keys banned only by rejected manifests
//     are not banned.
//   - A contribution is live when its licence is accepted; a review is
//     eligible when its Under is accepted, lists its author as a
//     maintainer, and has the contribution's licence in its past; it is
//     suspended instead when its Under is contested or its author
//     suspended. The latest eligible or suspended review per (maintainer,
//     contribution) is that maintainer's vote, definite or undecided. A
//     contribution is rejected when some version's reject quorum is met by
//     definite rejects naming it, else accepted when some version's quorum
//     is met by definite accepts naming it and no reject quorum could be
//     met with the undecided rejects added, else pending; held
//     ([ContributionView.Held]) when the undecided votes could decide it.
//
// The entrepreneurial coalition's records (SPEC §12.9) carry no
// authority: a profile counts for its author, the latest by (time, CID)
// ([State.Profile]); a sponsorship confirms the paid contribution that
// names its author as sponsor ([State.Sponsorship]). Either is inert when
// its author is banned or ban-suspended, or the genesis does not set
// policy.coalition, and waits for the genesis (and a sponsorship for its
// target); nothing else moves them (coalition.go). A pledge stands as a
// profile does; an acknowledgement of one counts when its pledge's
// beneficiary signed it, or, for a pledge to the association, when a
// threshold of an accepted manifest's association keys, neither revoked
// nor suspended, did (SPEC §12.11): it moves with that manifest's label
// and with revocations, as a review does. [State.Reciprocity] reports, for
// a period, who declared a use of the commons, confirmed paid work or
// pledged, what of that work was accepted and what of those pledges was
// acknowledged (SPEC §12.10).
//
// The for-benefit association's records (SPEC §12.12–§12.14;
// association.go): a dispute and a statement carry no authority. A
// resolution and a certificate are the association's acts: their signers
// must be in the association of an accepted manifest they name, at least
// its threshold of them not revoked (suspended when only suspended keys
// make the threshold, or the manifest is contested). A dispute's outcome
// ([State.DisputeOutcome]) is decided by its counting resolutions: those
// that stand and that no resolution replaces (naming a copy of it) or
// supersedes (under a later version); upholding wins among the rest. An
// upheld dispute's effect ([State.Effect]) binds its record for sure, or
// could bind it when a contest holds a resolution: a contribution is
// withdrawn ([StatusWithdrawn]) or held pending, a review counts as its
// maintainer's retraction or is suspended, a sponsorship confirms
// nothing, a pledge is reported unmet. A resolution's change of standing
// re-examines its dispute's record, which a flag on the record's entry
// marks as disputed, so that records nobody disputed pay nothing.
// Rotations hand a key's identity on (two summary keys per key hold its
// first two successors and predecessors, so a conflict is found in O(1));
// a review votes in the slot of the nearest key its author stands for that
// the version it names lists ([revInfo.slot], kept with the review's
// entry), and a rotation's change of standing re-examines what the keys
// after it signed. [State.CheckCertificate] says whether a certificate
// holds at a moment the caller gives.
//
// [State.Classify] answers, without adding anything, how a record would
// stand if added now (what a node asks before it signs or publishes), and
// [State.ReviewUnder] which manifest a maintainer's review must name to
// count.
//
// # How the chain is kept
//
// Each candidate gets an ordinal in arrival order (a predecessor always
// before its successors), its past as a bitset of ordinals, what it needs
// of each predecessor (its signers there and the threshold) and its
// children. Ordinals only name candidates internally; no result depends on
// them. No attack is stored: per key, the state keeps the candidates that
// revoke it and those that count it, and how many of the revokers are
// accepted and how many are not rejected, so that "is this key revoked
// against this candidate" is mostly answered by a zero. When candidates
// arrive, only those whose label may depend on theirs are labelled again:
// the forward closure of the new ones over children and revoked keys
// (grounded labels depend only on what precedes or attacks a candidate),
// with a work list that examines a candidate again when a predecessor, or
// a revoker of one of its keys, is decided. The labels that moved are
// carried through: the heads when an accepted candidate moved, the revoked
// and suspended keys when a revoking one did, the contributions naming a
// moved manifest as licence, the reviews naming it as Under, the reviews
// of a contribution whose standing moved, the reviews by a key whose
// revocation came or went, and the contributions and reviews by a key whose
// ban came, went or was contested (each kind is indexed by author). Each
// contribution keeps, per maintainer, their eligible and suspended reviews
// latest first.
//
// Records that wait are kept and re-examined when what they wait for
// arrives; nothing is dropped for arriving early, and the final state does
// not depend on arrival order. [State.Waiting] counts them and
// [State.Inert] lists the inert records with a reason. A contribution's
// Revises link is not a dependency. Inert and waiting contributions report
// [StatusPending] (and [ContributionView.Inert] says why an inert one does
// not move).
//
// # Order
//
// Every list the state returns comes in the fixed order its doc comment
// gives, a function of the set alone: CIDs compare by their binary form,
// keys by their bytes, times and versions as numbers. No order depends on
// arrival, and ties never fall to it.
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
// records (up to SHA-256 collisions). (The empty set's top hash is 32 zero
// bytes.) Hashes are cached per node and only the paths of records added
// since the last call are hashed again, so the root costs time in
// proportion to what changed, not to the set's size.
//
// The trie's leaves are in the KV (persist.go): each digest under its own
// key, and each leaf's count and hash under the leaf's key; memory holds
// the inner nodes, with each leaf child's count and hash, so its size
// grows with the number of leaves (a few per hundred records), not with
// the digests. Open rebuilds the inner nodes from the leaves' keys alone.
// A leaf's digests are read back (one scan) only when it splits or when
// its hash is needed and not known: it grew since, or it was written
// before its hash was computed. A leaf's hash that Root computed goes to
// the KV with a later Ready: the summaries of the leaves that changed go
// with the records that changed them, and of those only hashed since, at
// most 16,384 a Ready (after a large import Root hashes every leaf, about
// a million at 10,000,000 records); TrieUnsaved says whether any is left.
//
// # Shrinking the set
//
// The root trie and the reconciliation index can take records out as well
// as in (removeDigest, Index.Remove): an inner node left with 64 digests or
// fewer merges back into one leaf, so the shape stays that of the set
// alone, and the index keeps an emptied leaf for the items to come. The
// State never calls them: the set only grows. They are there for a root
// that would leave out a banned key's records, so that nodes that know the
// ban need not sync them. That needs more than the two structures: every
// rule must then treat those records as absent, on a node that holds them
// as on one that never had them. A rule that only asks whether a record is
// there (a resolution whose dispute a banned key filed, a review or a
// sponsorship naming a banned key's contribution, an update whose prev
// names one) would otherwise decide differently on the two nodes while
// their roots agree, and the records that name a left-out record would
// wait for it for good on a node that never had it.
//
// What a node may drop instead is a disowned record's bytes, keeping its
// place: its entry, its digest in the root and the index. Droppable names
// the records whose bytes no rule reads again, whatever arrives later and
// whichever bans come or go: a banned key's reviews, and its contributions
// that name no paid sponsor (a sponsorship's rule reads a contribution's
// sponsor, and finds none in those). Records then reports them with
// ErrDropped, and the rules, the root and every node's decisions are the
// same as with the bytes (drop_test.go).
//
// # Cost
//
// Adding a contribution or review touches only that contribution's status.
// A manifest re-examines the records waiting for it; a new candidate costs
// the labelling of its forward closure, usually itself alone. A key holder
// can still make that closure large: the benchmarks in attack_bench_test.go
// measure the shapes that cost most (forks that revoke their own key,
// thousands of children of a rejected fork, updates naming many versions
// and revoking many keys, suspended reviews by many maintainers); each grows
// about quadratically with the attack's size. The past of a candidate is a
// bitset over all earlier candidates, so their memory grows with the
// square of their number.
//
// In the KV, a record costs one read of its own key (an entry, or a stub
// whose flags say which of its lists have members) and a few writes: its
// entry, its list memberships, its digest's key and its trie leaf's
// summary (a leaf that splits reads its 65 digests once), its index key
// and its index leaf's summary. A manifest whose arrival or label moves
// reads and rewrites every record waiting for it or naming it, within one
// batch: until the caller takes them (Ready), they are all in memory, so
// such a batch's memory grows with them.
//
// # Set reconciliation
//
// [State.Index] keeps the records ordered by (time, digest) in a B+tree
// whose inner nodes cache each child's count and digest sum modulo 2^256,
// updated as records are added, so that the fingerprint of any range costs
// O(log n). It holds each record's time and digest only, not its bytes.
//
// The index lives in the KV: one key per record (its time and digest) and
// one per leaf of up to 128 of them (its lower bound, count and sum).
// Memory holds the inner nodes and each leaf's bound, count and sum, about
// 250 bytes per leaf (a leaf not in memory holds no room for items or
// children: 360 bytes when it did), and the items of the 1,024 leaves
// read or changed last (5 MB). Records arrive mostly in time order (an
// import, a join, gossip), so a leaf that splits as the newest record
// arrives keeps 7/8 of its items rather than half: leaves filled in time
// order hold 112 records, not 64, and the index's part of memory that
// grows is 2.3 bytes a record, not 6.8 (BenchmarkStoredIndexMemory; 3.2 in
// random order); a leaf changed since its writes were last
// stored stays in memory until they are. Open reads the leaves' keys, not
// the records'. Kept whole in memory instead, the index held 65 bytes per
// record (BenchmarkIndexMemory): 650 MB at 10,000,000 records, beyond what
// a laptop's daemon may hold. The price is paid by sessions, which read
// the leaves they need: BenchmarkSessionStoredIndex, two sets of 200,000
// records differing by 100 on each side, took 1.5 ms with the index in
// memory and 15 ms with its leaves in a KV in memory, reading 535 leaves;
// a store's leaf read costs tens of microseconds more. Measured during an
// import of 8.3M records (heap profiles, the leaves changed since the last
// save still held), the index's part of memory was 52 MB, about 6 bytes a
// record, before leaves split at the edge kept 7/8, and the root trie's inner nodes 56 MB: the trie's grow in steps,
// a level at a time (about 70,000 nodes from 4.2M records to 67M), and
// each held its leaf children's hashes, 512 bytes, which the KV holds
// too, and room for 16 inner children, 128 bytes. A node made by a split
// now holds no leaf hashes until a root is computed under it (an import
// computes none until it ends), and gives them up once records have come
// under all of its leaves; a node with no inner child (most of them:
// those of the deepest level) holds no room for them. An import's trie
// holds 0.77 bytes a record at 500,000 records, against 6.3, and a trie
// opened from its leaves' summaries 5.0, against 6.0 (BenchmarkTrieMemory).
// Once more than trieHashesMax (4,096) nodes hold them, a save takes the
// leaves' hashes from the nodes whose own hash is known and whose leaves'
// summaries in the KV hold them; a record that comes under such a node
// later has its leaves' hashes read back, one key each, by the next root.
// Before, a daemon kept them for every node a record had come under since
// it started. A trie of 5,000,000 digests opened from its leaves'
// summaries, then given 20,000 digests one at a time, each followed by a
// root and a save (BenchmarkTrieDaemonMemory): 558 of its 64,621 inner
// nodes hold leaf hashes, and the trie takes 5.7 MiB, against 63,284 nodes
// and 36.4 MiB. A
// [Session] runs one side of range-based set reconciliation over it
// (protocol/SPEC.md §11): it answers the peer's turns of fingerprinted
// ranges and ID lists, names by digest the records of ours the peer lacks,
// says which of its records we want, and checks every record the peer
// sends against what our previous turn asked for. An answer names at most
// MaxTurnPush records for the peer's ID lists, the rest in later turns
// (§11.5), so that a turn's work and memory stay bounded however large
// the commons, even for a joining peer's one empty ID list over
// everything. It does no I/O; package node reads the records it names
// from its store and carries turns and records over a stream.
//
// # State on disk
//
// A State keeps what it derives of each contribution and review in a [KV]
// (its time, links, author and decision, its class and why, a
// contribution's status and votes), and the lists that find records again
// (reviews by target, by Under and by author, contributions by licence,
// records by what they wait for), the inert records and the counts; the
// key layout is in persist.go. It reads the KV through a narrow
// interface and never writes it: adding records accumulates the writes
// they imply, [State.Ready] hands them to the caller, who applies them
// (package node commits them to its store, with the feed cursor they
// reflect) and then calls [State.Advance]. Until then the State reads its
// pending writes first, so the caller may commit in the background. This
// is the shape of etcd's raft: a pure state machine that says what to
// persist. A read that fails makes the State unusable (Add and Ready
// return the error), since what it would derive next could rest on it.
// Where it needs several keys it can name before reading any (the entries
// of a contribution's reviews, for [State.Standing]), it asks a KV that
// is a [ManyKV] for them at once: a store on a disk the page cache does
// not hold serves them side by side (package node's does), in about the
// time of one.
//
// Memory holds the manifests (the chain is labelled from them, in memory,
// again at each [Open]; they are few), the entries read or changed since
// the last Ready, a bounded cache of what was last read or written (a
// State is its KV's only writer, so the cache stays true), the inner nodes
// of the state root's trie (its leaves are in the KV) and the
// reconciliation index's inner nodes and leaf summaries. Open reads the
// manifests and the two structures' leaf keys, not every record's; or,
// after a clean stop, a start snapshot of those two structures in their
// place ([State.Snapshot]: 256-byte chunks, a few bytes a record, instead
// of a key per 40 to 100 records), encoded as it is written and handed to
// the caller a megabyte at a time with its head last (at 10,000,000
// records it is about 11 MB), which the first writes after it delete, and
// which Open takes only if it is whole and of the counts beside it. A snapshot holds the hash of each trie node hashed before
// it, and then not its leaves' hashes, which memory holds again only for
// the nodes that records reach after the start (their leaves' summaries
// or records are read to hash them), and, once saved, for at most
// trieHashesMax of them: at 10,000,000 records, the trie's inner nodes
// took about 15 MB after a start rather than 50, before a node held room
// for inner children only once it had one (a daemon started on such a
// repo now holds 40 MB of anonymous memory, against 56, with the index's
// smaller leaves). Views
// that show a record's content
// ([State.Contribution], [State.Record]) read the record through the
// [Records] the State was made with: the node's store, which holds every
// record before it is added. [New] and [NewWith] keep the KV in memory
// and apply the writes themselves at the end of each Add, for tests and
// tools.
//
// # Purity
//
// This package performs no I/O of its own (it reads records only through
// the Records it is given, and its derived state only through the KV),
// reads no clock, draws no random numbers,
// starts no goroutines and takes no locks. A State is not safe for
// concurrent use, not even for reads: Root and CIDs update a cache. It may
// import only the standard library's pure packages, go-cid and package
// protocol; never os, net, time, math/rand, log, badger, libp2p's p2p
// packages or pubsub (deps_test.go enforces this).
package crdt
