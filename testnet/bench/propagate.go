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
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Propagate measures how long a new record takes to reach every node of a
// simulated network (20–80 ms per packet), against raw gossipsub with a
// message of the same size on the same network, in the same run.
var Propagate = &SimScenario{
	name:    "propagate",
	nodes:   50,
	jitter:  60 * time.Millisecond,
	timeout: 2 * time.Minute,
	run:     propagate,
}

// propagate times o.Rounds records, each from a random node, until they
// reach every other node: on the commons, and on raw gossipsub linked the
// same way with a message of the record's size.
func propagate(t sim.T, n *sim.Net, o Options, res *Result, clock string) {
	ctx := t.Context() // stops the raw pubsub instances
	edges := sim.RandomEdges(len(n.Nodes()), 6, o.Seed)
	id := meshCommons(t, n, edges)
	raw := meshRawGossip(t, ctx, n, edges)
	n.Settle(2 * time.Second) // meshes settle

	m := newPropagation(t, ctx, n, id, raw)
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e0))
	for r := range o.Rounds {
		p := rng.IntN(len(m.cursors))
		size := m.commonsRound(p, r)
		m.rawRound(p, size)
	}
	m.report(res, clock)
	res.note("records: one contribution per round, %d rounds; latency 20-80 ms per packet, 100 Mbit/s links, about 6 links per node", o.Rounds)
}

// meshCommons founds a commons on node 0, links the nodes along edges, and
// waits until they all hold it and each has 2 peers in its topic.
func meshCommons(t sim.T, n *sim.Net, edges [][2]int) string {
	t.Helper()
	id := foundCommons(t, n, 0) // before connecting: each link's first sync brings the genesis
	n.ConnectEdges(edges)
	n.WaitConverged(id)
	n.WaitTopicPeers(id, 2)
	return id
}

// rawGossip is propagate's baseline: plain gossipsub on raw hosts, one
// per node, linked as the nodes are. Entry k stands for node k.
type rawGossip struct {
	topics []*pubsub.Topic
	subs   []*pubsub.Subscription
}

// meshRawGossip adds a raw host per node, joins each to one gossipsub
// topic, links them along edges, and waits until each has 2 topic peers.
func meshRawGossip(t sim.T, ctx context.Context, n *sim.Net, edges [][2]int) *rawGossip {
	t.Helper()
	hosts := make([]int, len(n.Nodes()))
	for k := range hosts {
		hosts[k] = n.AddHost()
	}
	g := &rawGossip{topics: make([]*pubsub.Topic, len(hosts)), subs: make([]*pubsub.Subscription, len(hosts))}
	for k, h := range hosts {
		g.topics[k], g.subs[k] = joinRawTopic(t, ctx, n.Host(h))
	}
	n.ConnectEdges(shift(edges, hosts[0]))
	n.WaitFor("raw gossipsub mesh", func() bool {
		for _, tp := range g.topics {
			if len(tp.ListPeers()) < 2 {
				return false
			}
		}
		return true
	})
	return g
}

// joinRawTopic starts gossipsub on h as the nodes configure theirs (no
// signing; the message ID is the data's CID) and subscribes to a topic.
func joinRawTopic(t sim.T, ctx context.Context, h host.Host) (*pubsub.Topic, *pubsub.Subscription) {
	t.Helper()
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return string(protocol.BlobCID(m.Data).Bytes()) }))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join("bench")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	return topic, sub
}

// propagation runs propagate's rounds and keeps their delays.
type propagation struct {
	t       sim.T
	ctx     context.Context
	n       *sim.Net
	commons string
	raw     *rawGossip
	cursors []uint64 // per node: its feed's position before this round's record

	commonsDelays, rawDelays []time.Duration
	missed                   int // commons records that did not reach a node
}

func newPropagation(t sim.T, ctx context.Context, n *sim.Net, commons string, raw *rawGossip) *propagation {
	m := &propagation{t: t, ctx: ctx, n: n, commons: commons, raw: raw, cursors: make([]uint64, len(n.Nodes()))}
	for k := range m.cursors {
		m.cursors[k] = uint64(n.MustCommons(k, commons).Records)
	}
	return m
}

// commonsRound has node p contribute a record, times its arrival in every
// other node's feed, and returns its size in bytes.
func (m *propagation) commonsRound(p, round int) int {
	nodes := make([]*node.Node, len(m.cursors))
	for k := range nodes {
		nodes[k] = m.n.Node(k)
	}
	var c string
	arrived := arrivals(len(nodes), p, func(k int) bool { return m.inFeed(nodes[k], k) }, func() {
		var err error
		c, err = nodes[p].Contribute(m.ctx, api.ContributeParams{Commons: m.commons, Title: fmt.Sprintf("propagate round %d", round), Kind: "code"})
		if err != nil {
			m.t.Fatal(err)
		}
	})
	for k, d := range arrived {
		m.cursors[k]++
		switch {
		case k == p:
		case d == 0:
			m.missed++
		default:
			m.commonsDelays = append(m.commonsDelays, d)
		}
	}
	return m.recordSize(p, c)
}

// inFeed waits up to a minute for a record past node k's cursor in its
// feed, and reports whether one came.
func (m *propagation) inFeed(nd *node.Node, k int) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		items, err := nd.Feed(m.ctx, api.FeedQuery{Commons: m.commons, Since: m.cursors[k], Wait: time.Minute})
		if err != nil {
			return false
		}
		if len(items) > 0 {
			return true
		}
	}
	return false
}

// recordSize returns the size of record c in node p's store, or 300 bytes
// if the store does not have it.
func (m *propagation) recordSize(p int, c string) int {
	b, err := m.n.Store(p).GetRecord(m.ctx, cidOf(m.t, c))
	if err != nil {
		return 300
	}
	return len(b)
}

// rawRound has raw host p publish a random message of size bytes and
// times its arrival at every other raw host.
func (m *propagation) rawRound(p, size int) {
	msg := make([]byte, size)
	_, _ = crand.Read(msg)
	receive := func(k int) bool {
		ctx, cancel := context.WithTimeout(m.ctx, time.Minute)
		defer cancel()
		_, err := m.raw.subs[k].Next(ctx)
		return err == nil
	}
	arrived := arrivals(len(m.raw.subs), p, receive, func() {
		if err := m.raw.topics[p].Publish(m.ctx, msg); err != nil {
			m.t.Fatal(err)
		}
		if _, err := m.raw.subs[p].Next(m.ctx); err != nil { // its own copy
			m.t.Fatal(err)
		}
	})
	for k, d := range arrived {
		if k != p && d > 0 {
			m.rawDelays = append(m.rawDelays, d)
		}
	}
}

// arrivals calls publish, which has member p send something, on the
// calling goroutine, and waits until each other member of count has it or
// gave up: arrived(k) blocks until then and reports whether it came. It
// returns each member's delay from just before publish; 0 for p and for
// the members it did not reach.
func arrivals(count, p int, arrived func(k int) bool, publish func()) []time.Duration {
	delays := make([]time.Duration, count)
	var wg sync.WaitGroup
	start := time.Now()
	for k := range count {
		if k == p {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if arrived(k) {
				delays[k] = time.Since(start)
			}
		}()
	}
	publish()
	wg.Wait()
	return delays
}

// report adds the delays' percentiles, labelled with clock, to res.
func (m *propagation) report(res *Result, clock string) {
	cd, rd := sortedDurations(m.commonsDelays), sortedDurations(m.rawDelays)
	res.add(clock+": commons p50", ms(percentile(cd, 50)), "ms")
	res.add(clock+": commons p99", ms(percentile(cd, 99)), "ms")
	res.add(clock+": baseline raw gossipsub p50", ms(percentile(rd, 50)), "ms")
	res.add(clock+": baseline raw gossipsub p99", ms(percentile(rd, 99)), "ms")
	if len(rd) > 0 && percentile(rd, 99) > 0 {
		res.add(clock+": p99 commons / raw", float64(percentile(cd, 99))/float64(percentile(rd, 99)), "x")
	}
	res.add(clock+": deliveries missed", float64(m.missed), "")
}

func cidOf(t sim.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
