// Package node is the running Commons daemon: the libp2p host, one
// gossipsub topic per commons, set-reconciliation sync and blob exchange, the
// ingest pipeline (decode, verify, store with group commit, merge into the
// CRDT view), and the HTTP API on loopback that the CLI talks to. The repo
// on disk and its typed settings are package node/repo, which node reads
// its defaults from (ConfigFromSettings turns a repo's settings into a
// Config).
//
// Node owns every goroutine of the daemon. One event loop owns the mutable
// state (the commons views and the hybrid logical clock); everything else
// hands it work over channels. New does no I/O; Start launches the
// goroutines; Close stops them, waits, and only then closes the store.
//
// The same Node also runs offline (Config.Offline): no host, no gossip, just
// the store and the views, which is how the CLI acts on a repo whose daemon
// is not running.
package node
