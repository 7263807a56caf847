// Package testnet runs many Commons nodes at once, for scenario tests.
//
// In process: the simulated network of testnet/sim (Net, Options; the
// aliases here keep the tests' names short) inside a testing/synctest
// bubble, which Run makes, so that every timer is virtual: sleeps cost
// nothing, a run of minutes of protocol time takes milliseconds, and
// waiting for a condition never polls the wall clock.
//
// All randomness the harness controls comes from one seed: the members'
// keys, the nodes' own random choices, latency jitter, and (through
// testing/cryptotest) the process' cryptographic randomness, which QUIC
// and TLS draw on. Run logs the seed at the start of every Net and again
// when the test fails; rerun with -testnet.seed to pick another.
// Goroutine scheduling is not under the seed's control, so two runs of one
// seed may interleave differently; tests assert outcomes (convergence,
// statuses, state roots), which must not depend on the interleaving.
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
// What the commons binary offers lives in subpackages that import no
// testing, so that the binary links no test machinery: testnet/gen (the
// synthetic commons of "commons testnet gen"), testnet/bench (the
// scenarios of "commons testnet bench") and testnet/sim (the simulated
// network the propagate and partition scenarios run on, in real time
// there). This package's Go benchmarks run the same scenarios, propagate
// and partition in virtual time.
//
// testnet may import every package of the module, and testing; nothing
// outside tests imports it.
package testnet
