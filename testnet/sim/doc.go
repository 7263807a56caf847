// Package sim runs many Commons nodes at once, in process, on a simulated
// network (github.com/marcopolo/simnet).
//
// A Net is a set of members: each has a QUIC host on a simulated UDP
// endpoint with its own address, and is either a full node (node.Node on
// an in-memory store) or a raw host that its caller drives by hand (a
// hostile peer, a baseline). Faults: Partition splits members into groups
// (a connection gater refuses connections across groups and the existing
// ones are closed), Heal rejoins them and redials the links made with
// Connect; Stop and Start (or Restart) take a node down and bring it back
// on the same store. WaitFor, WaitConverged and the other waits poll the
// nodes' status until a condition holds.
//
// A Net runs on whatever clock its goroutine has. Inside a
// testing/synctest bubble (package testnet's Run makes one, with the
// process' randomness tied to the seed) every timer is virtual: sleeps
// cost nothing, minutes of protocol time take milliseconds, and a wait
// never polls the wall clock. Outside one (the benchmarks of
// "commons testnet bench") it runs in real time, where CPU costs count.
//
// The harness draws the members' keys, the nodes' own random choices and
// latency jitter from one seed (Options.Seed).
//
// sim is linked into the commons binary, so it must not import testing,
// testing/synctest, testing/cryptotest, go-libp2p's x/simlibp2p or
// testify; it builds its QUIC-over-simnet hosts itself (quic.go) and takes
// a T interface instead of a *testing.T.
package sim
