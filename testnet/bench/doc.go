// Package bench holds the benchmark scenarios that "commons testnet bench"
// runs and package testnet's Go benchmarks share. Each reports its figures
// together with a baseline measured in the same run (Result):
//
//   - Ingest: import N records into a node on badger, against a bare
//     ed25519.Verify loop.
//   - Join: a fresh node syncs N records from one peer over loopback TCP,
//     against a local import of the same CAR; bytes on the wire against
//     the records' size.
//   - Repair: two nodes each missing 1% / 0.01% of the other's records;
//     bytes on the wire against the missing records' size.
//   - Propagate: time for a record to reach every node of a simulated
//     network (p50, p99), against raw gossipsub on the same network.
//   - Partition: two halves write apart, then heal: time to one state
//     root, records missing.
//
// Propagate and Partition are SimScenarios on a simulated network
// (testnet/sim): the binary runs them in real time with a T of its own
// (runner.go); package testnet runs the same bodies in virtual time inside
// a testing/synctest bubble.
//
// bench is linked into the commons binary, so it must not import testing
// (directly or through another package), testing/synctest,
// testing/cryptotest, go-libp2p's x/simlibp2p, testify, or package
// testnet.
package bench
