package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Flood measures what a flood of validly signed junk does to honest
// gossip, with and without proof of work (SPEC §7.4), in one run on the
// same honest nodes. They replicate two commons: one whose genesis asks no
// work, one that asks floodWork bits. On each, honest nodes first publish
// records alone (quiet), then while floodHosts raw hosts publish junk
// contributions on its topic, Options.Rate a second in all (default
// 1,000) (flooded); each
// phase times how long an honest record takes to reach every honest node
// (from just before its author's node makes it, the work included).
//
// On the commons without work the junk is valid: every node verifies,
// stores and forwards it. On the other it carries no work, as a flooder
// cannot afford at that rate (floodWork bits cost about 16 ms of one core
// a record): every node refuses it with one hash, before any signature,
// and bans its sender (but for the one record in 2^floodWork that carries
// the work by chance, valid there as anywhere, and counted apart); a banned flooder comes back (floodSpares times)
// as a new peer, with a new key, linked to honest nodes of its own
// choosing.
var Flood = &SimScenario{
	name:    "flood",
	nodes:   20,
	jitter:  20 * time.Millisecond,
	timeout: 5 * time.Minute,
	run:     flood,
}

const (
	floodWork  = 16 // bits asked by the commons that asks any
	floodHosts = 10 // flooders at a time
	floodLinks = 4  // honest nodes each flooder links to
	// floodSpares is how many times each flooder comes back with a new
	// identity once cut off; the spares are linked from the start and
	// silent until used.
	floodSpares = 3
)

func flood(t sim.T, n *sim.Net, o Options, res *Result, clock string) {
	honest := n.Nodes()
	if len(honest) <= floodLinks {
		t.Fatalf("flood: %d nodes are too few (at least %d)", len(honest), floodLinks+1)
	}
	plain := meshCommons(t, n, sim.RandomEdges(len(honest), 6, o.Seed))
	worked := foundCommonsWork(t, n, 0, floodWork)
	n.WaitConverged(worked)
	n.WaitTopicPeers(worked, 2)
	n.Settle(2 * time.Second) // the meshes settle
	rng := rand.New(rand.NewPCG(o.Seed, 0xf100d))

	type outcome struct {
		quiet, flooded phaseResult
		junkSent       int
		junkLucky      int
		junkStored     int
		identities     int
	}
	measure := func(id string) outcome {
		var out outcome
		m := newRounds(t, context.Background(), n, id, honest)
		m.noBlobs = true
		out.quiet = m.phase(rng, "quiet", o.Rounds)
		before := 0
		for _, i := range honest {
			before += n.MustCommons(i, id).Records
		}
		ctx, stop := context.WithCancel(t.Context())
		f := &flooder{n: n, rate: o.Rate, commons: cidOf(t, id), honest: honest, rng: rand.New(rand.NewPCG(o.Seed, 0xf1))}
		// Every identity is made here, before the flood: the Net is not
		// safe for concurrent use, and the rounds use it meanwhile.
		pools := make([][]*floodHost, floodHosts)
		for k := range pools {
			for range 1 + floodSpares {
				fh, err := f.newHost(ctx)
				if err != nil {
					t.Fatalf("flood: %v", err)
				}
				pools[k] = append(pools[k], fh)
			}
		}
		var wg sync.WaitGroup
		for _, pool := range pools {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.run(ctx, pool)
			}()
		}
		n.Settle(2 * time.Second) // the flood is under way before the first round
		out.flooded = m.phase(rng, "flooded", o.Rounds)
		stop()
		wg.Wait()
		if f.err != nil {
			t.Fatalf("flood: %v", f.err)
		}
		out.junkSent, out.junkLucky, out.identities = f.sent, f.lucky, f.identities
		after := 0
		for _, i := range honest {
			after += n.MustCommons(i, id).Records
		}
		out.junkStored = after - before - o.Rounds*len(honest) // the honest rounds' records, on every node
		return out
	}
	without := measure(plain)
	with := measure(worked)

	for _, c := range []struct {
		label string
		out   outcome
	}{{"no work", without}, {fmt.Sprintf("%d bits of work", floodWork), with}} {
		q, f := sortedDurations(c.out.quiet.delays), sortedDurations(c.out.flooded.delays)
		res.add(clock+": "+c.label+": quiet p50", ms(percentile(q, 50)), "ms")
		res.add(clock+": "+c.label+": quiet p99", ms(percentile(q, 99)), "ms")
		res.add(clock+": "+c.label+": flooded p50", ms(percentile(f, 50)), "ms")
		res.add(clock+": "+c.label+": flooded p99", ms(percentile(f, 99)), "ms")
		if p := percentile(q, 99); p > 0 {
			res.add(clock+": "+c.label+": p99 flooded / quiet", float64(percentile(f, 99))/float64(p), "x")
		}
		res.add(clock+": "+c.label+": deliveries missed", float64(c.out.quiet.missed+c.out.flooded.missed), "")
		res.add(clock+": "+c.label+": junk records sent", float64(c.out.junkSent), "")
		res.add(clock+": "+c.label+": junk records carrying the work by chance", float64(c.out.junkLucky), "")
		res.add(clock+": "+c.label+": junk records stored (node × record)", float64(c.out.junkStored), "")
		res.add(clock+": "+c.label+": flooder identities used", float64(c.out.identities), "")
	}
	res.add("honest nodes", float64(len(honest)), "")
	res.note("%d rounds quiet, then %d flooded, on each commons; %d flooders at a time send %d junk records a second in all, each linked to %d honest nodes; the goal: flooded p99 within 2x of quiet on the commons that asks work", o.Rounds, o.Rounds, floodHosts, o.Rate, floodLinks)
}

// flooder runs the flooding hosts of a phase: each a raw host with a key
// of its own, on the commons' topic, linked to floodLinks honest nodes,
// publishing a new junk contribution every floodHosts/rate seconds.
// A host that every honest node has cut off is replaced by a new one.
type flooder struct {
	n       *sim.Net
	commons cid.Cid
	honest  []int

	rate       int   // junk records a second, all flooders together
	err        error // the first error of a flooder goroutine
	mu         sync.Mutex
	rng        *rand.Rand
	sent       int
	lucky      int // junk records that carried floodWork bits by chance
	identities int
}

// run is one flooder slot: the identities of pool one at a time, each
// until every honest node has cut it off, until ctx ends.
func (f *flooder) run(ctx context.Context, pool []*floodHost) {
	for _, fh := range pool {
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		f.identities++
		f.mu.Unlock()
		if err := f.flood(ctx, fh); err != nil {
			if ctx.Err() == nil {
				f.fail(err)
			}
			return
		}
	}
}

// fail keeps the first error of a flooder goroutine, for the scenario to
// report (Fatal belongs to the scenario's goroutine).
func (f *flooder) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// floodHost is one flooding identity.
type floodHost struct {
	host  host.Host
	key   protocol.PrivateKey
	topic *pubsub.Topic
	clock protocol.HLC
}

func (f *flooder) newHost(ctx context.Context) (*floodHost, error) {
	links := f.rng.Perm(len(f.honest))[:floodLinks]
	h := f.n.AddHost()
	host := f.n.Host(h)
	key, err := protocol.PrivateKeyFromLibp2p(f.n.Key(h))
	if err != nil {
		return nil, err
	}
	ps, err := recordGossip(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("flooder gossipsub: %w", err)
	}
	topic, err := ps.Join(protocol.Topic(f.commons))
	if err != nil {
		return nil, fmt.Errorf("flooder topic: %w", err)
	}
	var edges [][2]int
	for _, k := range links {
		edges = append(edges, [2]int{f.honest[k], h})
	}
	f.n.ConnectEdges(edges)
	return &floodHost{host: host, key: key, topic: topic}, nil
}

// flood publishes junk from fh until ctx ends or no honest node is
// connected to it any more.
func (f *flooder) flood(ctx context.Context, fh *floodHost) error {
	defer func() { _ = fh.topic.Close() }()
	tick := time.NewTicker(time.Second * floodHosts / time.Duration(f.rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if len(fh.host.Network().Peers()) == 0 {
			return nil // banned everywhere: a new identity (the Net closes this one at the end)
		}
		if len(fh.topic.ListPeers()) == 0 {
			continue // the subscriptions are not known yet
		}
		fh.clock = protocol.NextHLC(time.Now().UnixMilli(), fh.clock)
		f.mu.Lock()
		f.sent++
		k := f.sent
		f.mu.Unlock()
		rec := &protocol.Record{Commons: f.commons, Time: fh.clock, Body: &protocol.Contribution{Title: fmt.Sprintf("junk %d", k),
			Kind: "code", Licence: protocol.Link{Cid: f.commons}, Provenance: protocol.ProvenanceVolunteer}}
		if err := protocol.Sign(rec, fh.key); err != nil {
			return err
		}
		b, err := protocol.NewBlock(rec)
		if err != nil {
			return err
		}
		if b.Work() >= floodWork {
			// One junk record in 2^floodWork carries the work by chance,
			// as if its flooder had paid for it: it is valid on either
			// commons, and counted apart.
			f.mu.Lock()
			f.lucky++
			f.mu.Unlock()
		}
		_ = fh.topic.Publish(ctx, b.Raw)
	}
}
