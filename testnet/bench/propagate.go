package bench

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Propagate measures how long a new record takes to reach every node of a
// simulated network (20–80 ms per packet), against raw gossipsub with a
// message of the same size on the same network, in the same run.
var Propagate = &SimScenario{
	name:  "propagate",
	nodes: 50,
	net: func(o Options) sim.Options {
		return sim.Options{Nodes: o.Nodes, Seed: o.Seed, Latency: 20 * time.Millisecond, Jitter: 60 * time.Millisecond,
			Timeout: 2 * time.Minute, Logger: o.Logger}
	},
	run: propagate,
}

func propagate(t sim.T, n *sim.Net, o Options, res *Result, label string) {
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
	res.note("records: one contribution per round, %d rounds; latency 20-80 ms per packet, 100 Mbit/s links, about 6 links per node", o.Rounds)
}

func cidOf(t sim.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
