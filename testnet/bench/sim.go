package bench

import (
	"context"
	"strings"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/testnet/sim"
)

// A SimScenario is a benchmark on a simulated network (sim.Net). The
// commons binary runs it in real time (RealTime, in Scenarios), where CPU
// costs count. Package testnet's benchmarks run it in virtual time inside
// a testing/synctest bubble, where only the network's delays count:
//
//	o, res, net := bench.Propagate.Prepare(o)
//	testnet.Run(t, net, func(t *testing.T, n *testnet.Net) {
//		bench.Propagate.Run(t, n, o, res, "virtual")
//	})
type SimScenario struct {
	name           string
	records, nodes int           // defaults of Options.Records and Options.Nodes
	jitter         time.Duration // at most this much, at random, on top of every packet's 20ms
	timeout        time.Duration // bounds every wait on the network
	// nodesOf, if set, returns how many of Options.Nodes members are
	// nodes; the scenario adds the others itself (byzantine's attackers).
	nodesOf func(members int) int
	run     func(t sim.T, n *sim.Net, o Options, res *Result, clock string)
}

// Name returns the scenario's name, its key in Scenarios.
func (s *SimScenario) Name() string { return s.name }

// Prepare fills o's defaults and returns them, with the result that Run
// fills and the network to run on.
func (s *SimScenario) Prepare(o Options) (Options, *Result, sim.Options) {
	o.fill(s.records, s.nodes)
	records := o.Records
	if s.records == 0 {
		records = o.Rounds // a scenario of no commons size times Rounds records
	}
	res := newResult(s.name, records)
	res.Nodes = o.Nodes
	nodes := o.Nodes
	if s.nodesOf != nil {
		nodes = s.nodesOf(o.Nodes)
	}
	net := sim.Options{Nodes: nodes, Seed: o.Seed, Latency: 20 * time.Millisecond, Jitter: s.jitter,
		Timeout: s.timeout, Logger: o.Logger}
	return o, res, net
}

// Run runs the scenario on n, made from Prepare's network options, and
// adds its figures to res, labelled with clock ("real time", "virtual").
// It fails t if the network cannot be set up.
func (s *SimScenario) Run(t sim.T, n *sim.Net, o Options, res *Result, clock string) {
	t.Helper()
	s.run(t, n, o, res, clock)
}

// RealTime runs the scenario on a network of its own in real time, with a
// T of its own, and returns a failure as an error. It is the scenario's
// entry in Scenarios.
func (s *SimScenario) RealTime(ctx context.Context, o Options) (*Result, error) {
	o, res, net := s.Prepare(o)
	if err := standalone(ctx, s.name, o.Logger, func(t sim.T) {
		s.Run(t, sim.New(t, net), o, res, "real time")
	}); err != nil {
		return nil, err
	}
	bench := strings.ToUpper(s.name[:1]) + s.name[1:]
	res.note("real time: CPU costs count; in virtual time (network delays only): go test -run '^$' -bench %s -benchtime 1x -v ./testnet", bench)
	return res, nil
}

// foundCommons makes a commons on node i and hands its genesis to every
// other node (as an import), so that no node waits for a sync to get it.
func foundCommons(t sim.T, n *sim.Net, i int) string { return foundCommonsWork(t, n, i, 0) }

// foundCommonsWork is foundCommons for a commons that asks work bits of
// proof of work of its records (0: none).
func foundCommonsWork(t sim.T, n *sim.Net, i int, work uint64) string {
	t.Helper()
	ctx := context.Background()
	name, licence := "bench", "CC-BY-SA-4.0"
	p := api.ManifestParams{Name: &name, Licence: &licence}
	if work > 0 {
		p.Work = &work
	}
	id, err := n.Node(i).CreateManifest(ctx, p)
	if err != nil {
		t.Fatalf("create manifest: %v", err)
	}
	raws, err := sim.Records(ctx, n.Node(i), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range n.Running() {
		if k == i {
			continue
		}
		if _, err := sim.Deliver(ctx, n.Node(k), raws...); err != nil {
			t.Fatalf("node %d: import genesis: %v", k, err)
		}
	}
	return id
}

// shift returns the edges with offset added to both ends.
func shift(edges [][2]int, offset int) [][2]int {
	out := make([][2]int, len(edges))
	for k, e := range edges {
		out[k] = [2]int{e[0] + offset, e[1] + offset}
	}
	return out
}
