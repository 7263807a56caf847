package testnet

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// runT runs fn as a test of its own (testing.RunTests), so that scenarios
// that need a *testing.T (a synctest bubble) run from go test -bench. Only
// inside a test binary (testing.Testing); elsewhere see standalone.
func runT(name string, fn func(t *testing.T)) error {
	if !testing.Testing() {
		return fmt.Errorf("%s needs a test binary: go test -run '^$' -bench . ./testnet", name)
	}
	ran := false
	ok := testing.RunTests(func(string, string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: name, F: func(t *testing.T) { ran = true; fn(t) }}})
	if !ran {
		return fmt.Errorf("%s did not run", name)
	}
	if !ok {
		return fmt.Errorf("%s failed (see the log above)", name)
	}
	return nil
}

// runReal runs fn in real time: as a test inside a test binary, else with
// a standalone T (the commons binary, where no *testing.T exists).
func runReal(name string, log *slog.Logger, fn func(t sim.T)) error {
	if testing.Testing() {
		return runT(name, func(t *testing.T) { fn(t) })
	}
	return standalone(name, log, fn)
}

// runner is the T of standalone: Fatal ends the run with an error, Cleanup
// functions run at its end, logs go to the logger.
type runner struct {
	name     string
	log      *slog.Logger
	ctx      context.Context
	cleanups []func()
	errs     []string
}

// runnerFatal is the panic with which a runner's Fatal unwinds.
type runnerFatal struct{ msg string }

func (r *runner) Helper()                         {}
func (r *runner) Logf(format string, args ...any) { r.log.Info(fmt.Sprintf(format, args...)) }
func (r *runner) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *runner) Fatal(args ...any) { panic(runnerFatal{fmt.Sprint(args...)}) }
func (r *runner) Fatalf(format string, args ...any) {
	panic(runnerFatal{fmt.Sprintf(format, args...)})
}
func (r *runner) Cleanup(f func())         { r.cleanups = append(r.cleanups, f) }
func (r *runner) Failed() bool             { return len(r.errs) > 0 }
func (r *runner) Name() string             { return r.name }
func (r *runner) Context() context.Context { return r.ctx }

// standalone runs fn with a runner, on the calling goroutine (Fatal must be
// called there, as with testing.T), and reports its failure as an error.
func standalone(name string, log *slog.Logger, fn func(t sim.T)) (err error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{name: name, log: log, ctx: ctx}
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(runnerFatal)
			if !ok {
				panic(p)
			}
			r.errs = append(r.errs, f.msg)
		}
		cancel() // as testing does, before the cleanups
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
		if len(r.errs) > 0 {
			err = fmt.Errorf("%s: %s", name, strings.Join(r.errs, "; "))
		}
	}()
	fn(r)
	return nil
}

// foundCommons makes a commons on node i and hands its genesis to every
// other node (as an import), so that no node waits for a sync to get it.
func foundCommons(t sim.T, n *Net, i int) string {
	t.Helper()
	ctx := context.Background()
	name, licence := "bench", "CC-BY-SA-4.0"
	id, err := n.Node(i).CreateManifest(ctx, node.ManifestParams{Name: &name, Licence: &licence})
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

// BenchPropagate measures how long a new record takes to reach every node
// of a simulated network (20–80 ms per packet), against raw gossipsub with
// a message of the same size on the same network, in the same run: once in
// real time (CPU costs count) and once under testing/synctest (virtual
// time: network delays only).
func BenchPropagate(_ context.Context, o BenchOptions) (*BenchResult, error) {
	o.fill(0, 50)
	res := newResult("propagate", o.Rounds)
	res.Nodes = o.Nodes
	opts := sim.Options{Nodes: o.Nodes, Seed: o.Seed, Latency: 20 * time.Millisecond, Jitter: 60 * time.Millisecond,
		Timeout: 2 * time.Minute, Logger: o.Logger}
	if err := runReal("propagate/realtime", o.Logger, func(t sim.T) {
		propagate(t, sim.New(t, opts), o, res, "real time")
	}); err != nil {
		return nil, err
	}
	if !testing.Testing() {
		res.note("the virtual-time run (testing/synctest) needs a test binary: go test -run '^$' -bench Propagate -benchtime 1x -v ./testnet")
	} else if err := runT("propagate/synctest", func(t *testing.T) {
		Run(t, opts, func(t *testing.T, n *sim.Net) { propagate(t, n, o, res, "virtual") })
	}); err != nil {
		return nil, err
	}
	res.note("records: one contribution per round, %d rounds; latency 20-80 ms per packet, 100 Mbit/s links, about 6 links per node", o.Rounds)
	return res, nil
}

func propagate(t sim.T, n *Net, o BenchOptions, res *BenchResult, label string) {
	ctx := t.Context() // stops the raw pubsub instances
	nodes := n.Nodes()
	edges := sim.RandomEdges(len(nodes), 6, o.Seed)
	id := foundCommons(t, n, 0) // before connecting: each link's first sync brings the genesis
	n.ConnectEdges(edges)
	n.WaitConverged(id)
	n.WaitTopicPeers(id, 2)

	// Raw gossipsub on as many raw hosts, linked the same way.
	raw := make([]int, len(nodes))
	subs := make([]*pubsub.Subscription, len(nodes))
	topics := make([]*pubsub.Topic, len(nodes))
	for k := range nodes {
		raw[k] = n.AddHost()
	}
	for k := range nodes {
		ps, err := pubsub.NewGossipSub(ctx, n.Host(raw[k]),
			pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
			pubsub.WithMessageIdFn(func(m *pb.Message) string { return string(protocol.BlobCID(m.Data).Bytes()) }))
		if err != nil {
			t.Fatal(err)
		}
		if topics[k], err = ps.Join("bench"); err != nil {
			t.Fatal(err)
		}
		if subs[k], err = topics[k].Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	n.ConnectEdges(shift(edges, raw[0]))
	n.WaitFor("raw gossipsub mesh", func() bool {
		for _, tp := range topics {
			if len(tp.ListPeers()) < 2 {
				return false
			}
		}
		return true
	})
	n.Settle(2 * time.Second) // meshes settle

	cursors := make([]uint64, len(nodes))
	for k := range nodes {
		cursors[k] = uint64(n.MustCommons(k, id).Records)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e0))
	var commonsDelays, rawDelays []time.Duration
	missed := 0
	for r := range o.Rounds {
		p := rng.IntN(len(nodes))
		// Commons: a contribution, seen in each node's feed.
		nds := make([]*node.Node, len(nodes))
		for k := range nodes {
			nds[k] = n.Node(k)
		}
		arrivals := make([]time.Duration, len(nodes))
		var wg sync.WaitGroup
		start := time.Now()
		for k := range nodes {
			if k == p {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				nd := nds[k]
				for time.Since(start) < time.Minute {
					items, err := nd.Feed(ctx, node.FeedQuery{Commons: id, Since: cursors[k], Wait: time.Minute})
					if err != nil {
						return
					}
					if len(items) > 0 {
						arrivals[k] = time.Since(start)
						return
					}
				}
			}()
		}
		c, err := n.Node(p).Contribute(ctx, node.ContributeParams{Commons: id, Title: fmt.Sprintf("propagate round %d", r), Kind: "code"})
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		size := 300
		if b, err := n.Store(p).GetRecord(ctx, cidOf(t, c)); err == nil {
			size = len(b)
		}
		for k := range nodes {
			cursors[k]++
			if k == p {
				continue
			}
			if arrivals[k] == 0 {
				missed++
				continue
			}
			commonsDelays = append(commonsDelays, arrivals[k])
		}

		// Raw gossipsub: a message of the same size.
		msg := make([]byte, size)
		_, _ = crand.Read(msg)
		rawArrivals := make([]time.Duration, len(nodes))
		start = time.Now()
		for k := range nodes {
			if k == p {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				mctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if _, err := subs[k].Next(mctx); err == nil {
					rawArrivals[k] = time.Since(start)
				}
			}()
		}
		if err := topics[p].Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := subs[p].Next(ctx); err != nil { // its own copy
			t.Fatal(err)
		}
		wg.Wait()
		for k := range nodes {
			if k != p && rawArrivals[k] > 0 {
				rawDelays = append(rawDelays, rawArrivals[k])
			}
		}
	}
	cd, rd := sortedDurations(commonsDelays), sortedDurations(rawDelays)
	res.add(label+": commons p50", ms(percentile(cd, 50)), "ms")
	res.add(label+": commons p99", ms(percentile(cd, 99)), "ms")
	res.add(label+": baseline raw gossipsub p50", ms(percentile(rd, 50)), "ms")
	res.add(label+": baseline raw gossipsub p99", ms(percentile(rd, 99)), "ms")
	if len(rd) > 0 && percentile(rd, 99) > 0 {
		res.add(label+": p99 commons / raw", float64(percentile(cd, 99))/float64(percentile(rd, 99)), "x")
	}
	res.add(label+": deliveries missed", float64(missed), "")
}

func cidOf(t sim.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchPartition splits the nodes into two halves that both write, heals
// the partition and measures (in virtual time) how long until every node
// shows the same state root, and whether any record is missing.
func BenchPartition(_ context.Context, o BenchOptions) (*BenchResult, error) {
	o.fill(200, 10)
	res := newResult("partition", o.Records)
	res.Nodes = o.Nodes
	opts := sim.Options{Nodes: o.Nodes, Seed: o.Seed, Latency: 20 * time.Millisecond, Jitter: 20 * time.Millisecond,
		Timeout: 30 * time.Minute, Logger: o.Logger}
	if !testing.Testing() {
		// No synctest bubble outside a test binary: run in real time.
		if err := standalone("partition", o.Logger, func(t sim.T) { partition(t, sim.New(t, opts), o, res, "real time") }); err != nil {
			return nil, err
		}
		return res, nil
	}
	if err := runT("partition", func(t *testing.T) {
		Run(t, opts, func(t *testing.T, n *sim.Net) { partition(t, n, o, res, "virtual") })
	}); err != nil {
		return nil, err
	}
	return res, nil
}

func partition(t sim.T, n *Net, o BenchOptions, res *BenchResult, label string) {
	ctx := context.Background()
	nodes := n.Nodes()
	id := foundCommons(t, n, 0)
	n.ConnectEdges(sim.RandomEdges(len(nodes), 4, o.Seed))
	n.WaitConverged(id)
	n.WaitTopicPeers(id, 1)
	half := len(nodes) / 2
	left, right := nodes[:half], nodes[half:]
	n.Partition(left, right)
	rng := rand.New(rand.NewPCG(o.Seed, 0x9a7))
	perSide := o.Records / 2
	for k := range perSide {
		for _, side := range [][]int{left, right} {
			i := side[rng.IntN(len(side))]
			if _, err := n.Node(i).Contribute(ctx, node.ContributeParams{Commons: id, Title: fmt.Sprintf("side write %d", k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.WaitRecords(id, 1+perSide, left...)
	n.WaitRecords(id, 1+perSide, right...)
	rootsApart := n.MustCommons(left[0], id).StateRoot != n.MustCommons(right[0], id).StateRoot
	start := time.Now()
	n.Heal()
	want := 1 + 2*perSide
	err := n.Poll(func() bool {
		ok, _ := n.Converged(id)
		return ok && n.MustCommons(nodes[0], id).Records == want
	})
	took := time.Since(start)
	missing := 0
	roots := map[string]bool{}
	for _, i := range nodes {
		st := n.MustCommons(i, id)
		missing = max(missing, want-st.Records)
		roots[st.StateRoot] = true
	}
	res.add("heal to same root ("+label+")", took.Seconds(), "s")
	res.add("records per side", float64(perSide), "")
	res.add("records missing on some node", float64(missing), "")
	res.add("distinct state roots after heal", float64(len(roots)), "")
	if !rootsApart {
		res.note("the two sides had the same root before healing: the partition leaked")
	}
	if err != nil {
		res.note("not converged: %v", err)
	}
	res.note("baseline: none in-run; the goal is every record on every node and one root")
}

// shift returns the edges with offset added to both ends.
func shift(edges [][2]int, offset int) [][2]int {
	out := make([][2]int, len(edges))
	for k, e := range edges {
		out[k] = [2]int{e[0] + offset, e[1] + offset}
	}
	return out
}
