package testnet

import (
	"flag"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"testing/cryptotest"
	"testing/synctest"

	"github.com/commons-p2p/commons/testnet/sim"
)

var seedFlag = flag.Uint64("testnet.seed", 1, "seed of every testnet.Run whose Options.Seed is 0")

// Net and Options are the simulated network's (testnet/sim): aliases, so
// that the scenario tests here name them as before the network moved out
// of this package.
type (
	Net     = sim.Net
	Options = sim.Options
)

// Run runs fn in a new synctest bubble with a Net made from opts, and
// closes the Net when fn returns. An Options.Seed of 0 takes the
// -testnet.seed flag. Run makes the process' cryptographic randomness,
// which QUIC and TLS draw on, deterministic for the seed
// (testing/cryptotest), so the test must not be parallel. With the race
// detector on, it runs the bubble with GOMAXPROCS 1: concurrent bubble
// timers corrupt the race detector's state
// (https://github.com/golang/go/issues/78156).
func Run(t *testing.T, opts Options, fn func(t *testing.T, n *Net)) {
	t.Helper()
	if opts.Seed == 0 {
		opts.Seed = *seedFlag
	}
	if raceEnabled {
		prev := runtime.GOMAXPROCS(1)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	synctest.Test(t, func(t *testing.T) {
		t.Logf("testnet: seed %d (rerun: go test -run '%s' -testnet.seed %d)", opts.Seed, runPattern(t.Name()), opts.Seed)
		cryptotest.SetGlobalRandom(t, opts.Seed)
		fn(t, sim.New(t, opts))
	})
}

// runPattern is a go test -run pattern that selects exactly the test name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
