// Package testnet runs many Commons nodes at once, in process, for
// scenario tests.
//
// A Net is a set of members on go-libp2p's simulated network
// (x/simlibp2p, github.com/marcopolo/simnet): each member has a QUIC host
// on a simulated UDP endpoint with its own address, and is either a full
// node (node.Node on an in-memory store) or a raw host that a test drives
// by hand (a hostile peer, say). A Net must live inside a testing/synctest
// bubble (Run makes one), so that every timer is virtual: sleeps cost
// nothing, a run of minutes of protocol time takes milliseconds, and
// waiting for a condition never polls the wall clock.
//
// All randomness the harness controls comes from one seed: the members'
// keys, the nodes' own random choices, latency jitter, and (through
// testing/cryptotest) the process' cryptographic randomness, which QUIC
// and TLS draw on. The seed is logged at the start of every Net and again
// when the test fails; rerun with -testnet.seed to pick another.
// Goroutine scheduling is not under the seed's control, so two runs of one
// seed may interleave differently; tests assert outcomes (convergence,
// statuses, state roots), which must not depend on the interleaving.
//
// Faults: Partition splits members into groups (a connection gater
// refuses connections across groups and the existing ones are closed),
// Heal rejoins them and redials the links a test made; Stop and Start (or
// Restart) take a node down and bring it back on the same store.
//
// Real networks: Lab (netns.go) builds Linux network namespaces — a
// public segment on a bridge, NAT routers masquerading private LANs with
// nftables, hosts — and deletes them afterwards; TestNetns runs real
// commons daemons in them (a bootstrap node, peers behind two NATs) to
// check bootstrap, AutoNAT, relaying, hole punching, the DHT, mDNS and a
// partition's heal, and the NetnsFirstRecord and NetnsBootstrap50
// benchmarks measure them. They need root, ip and nft; under CI=true they
// fail without them rather than skip.
//
// Synthetic commons live in testnet/gen, which the "commons testnet gen"
// command shares. Benchmarks (Scenarios: ingest, join, repair, propagate,
// partition) live here too, so that tests, go test -bench and the
// "commons testnet bench" command share them.
//
// testnet may import every package of the module; outside tests, only the
// commons binary's testnet command imports it.
package testnet
