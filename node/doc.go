// Package node is the running Commons daemon: the libp2p host, one
// gossipsub topic per commons, set-reconciliation sync and blob exchange,
// the one way records come in, and the loop that applies them. It is split
// by job:
//
//   - node (this package): the host and discovery (host.go), gossip
//     (network.go), sync (sync.go), blobs (blob.go: the exchange;
//     blobrefs.go: which blobs the records reference, stored as derived
//     state; blobsweep.go: finding the missing ones), CAR import and
//     export (car.go), local actions (actions.go), views (views.go),
//     metrics, and the store's mapped pages (pages.go: when they are
//     handed back, and whether the kernel reads them a page at a time).
//   - node/feed: the live feed: events, positions, subscribers, SSE.
//   - node/api: the API interface and types, HTTP handlers, client,
//     OpenAPI document and the explorer's files.
//   - node/repo: the repo on disk and its typed settings, where every
//     default is written once (ConfigFromSettings turns them into a
//     Config).
//
// # The way in
//
// Every record, whatever brings it, takes the same hops:
//
//  1. admission (admit.go): parse, then protocol.Admit's stateless rules
//     (signatures, commons, clock), each refusal counted by reason;
//  2. ingest (ingest.go): the event loop batches admitted records and
//     leaves out those already held or in flight;
//  3. the committer goroutine stores the batch with one group commit;
//  4. back on the loop, apply adds the records to their commons' crdt
//     state and returns what changed, which the feed (node/feed) publishes;
//  5. the requests are answered, and local records gossiped;
//  6. what the batch implies for the derived state (crdt's writes, the
//     feed's rows, the blob references) goes back to the committer as a
//     save, committed with the feed cursor it reflects (derived.go).
//
// A start opens each commons' derived state and feed from the store and
// applies only the records stored after the cursor they reflect: none
// after a clean stop. Online, once a peer is connected, it then sweeps the
// stored blob references for the payloads it lacks, and fetches them in
// the background (blobsweep.go); memory holds a bounded queue of them, never one entry
// per record, served in turn by the authors of the records that claim them,
// first to those with the fewest fetches running (blobqueue.go), so that
// one key's flood of claims starves nobody else's.
// A sweep pauses while every connected peer has lately lacked the payloads
// asked of it (blob.go: lackState), rather than read each claiming record
// to ask them in vain.
//
// Records this node makes, or is given to publish, are first classified by
// crdt (Classify) and refused if the commons would hold them inert: node/
// keeps no copy of any governance rule.
//
// Node owns every goroutine of the daemon. One event loop owns the mutable
// state (the commons views and the hybrid logical clock); everything else
// hands it work over channels, and it never waits for the disk. New does no
// I/O; Start launches the goroutines; Close stops them, waits, and only then
// closes the store.
//
// The same Node also runs offline (Config.Offline): no host, no gossip, just
// the store and the views, which is how the CLI acts on a repo whose daemon
// is not running.
package node
