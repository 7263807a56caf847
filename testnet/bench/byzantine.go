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
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Byzantine measures propagation among honest nodes, first on their own
// and then with a fifth of the network hostile, in the same run: how long
// a new record takes to reach every honest node, whether every record and
// every payload blob reaches every honest node, and whether the honest
// nodes end with one state root and none of the forgeries.
//
// The hostile members are raw libp2p hosts, each linked to 6 honest
// nodes. Each one withholds (it joins the commons' topic and forwards
// nothing), publishes a validly signed contribution of its own every
// second, opens sync sessions to its honest neighbours and never says
// anything on them, and stalls on every sync and blob request it is sent
// (it reads the request and never answers). Half of them also flood the
// topic every second with a forged record (a broken signature), garbage
// and a record of another commons, which gets them banned; the other half
// break no rule a node can punish.
var Byzantine = &SimScenario{
	name:    "byzantine",
	nodes:   100,
	jitter:  60 * time.Millisecond,
	timeout: 10 * time.Minute,
	nodesOf: func(members int) int { return members - members/5 },
	run:     byzantine,
}

// byzantineDegree is the number of links of each member, honest or not.
const byzantineDegree = 6

func byzantine(t sim.T, n *sim.Net, o Options, res *Result, clock string) {
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	honest := n.Nodes()
	hostileCount := o.Nodes - len(honest)
	if hostileCount < 1 || len(honest) <= byzantineDegree {
		t.Fatalf("byzantine: %d members are too few (at least %d honest ones and one hostile)", o.Nodes, byzantineDegree+1)
	}
	id := meshCommons(t, n, sim.RandomEdges(len(honest), byzantineDegree, o.Seed))
	commons := cidOf(t, id)
	n.Settle(2 * time.Second) // the mesh settles
	rng := rand.New(rand.NewPCG(o.Seed, 0xb52))

	m := newRounds(t, ctx, n, id, honest)
	quiet := m.phase(rng, "quiet", o.Rounds)

	hostile := make([]*attacker, hostileCount)
	var edges [][2]int
	for k := range hostile {
		h := n.AddHost()
		hostile[k] = newAttacker(t, ctx, n, h, commons, k%2 == 0)
		for _, j := range rng.Perm(len(honest))[:byzantineDegree] {
			edges = append(edges, [2]int{honest[j], h})
		}
	}
	n.ConnectEdges(edges)
	var wg sync.WaitGroup
	for _, a := range hostile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.run(ctx)
		}()
	}
	n.Settle(5 * time.Second) // the attack is under way before the first round

	// The attackers stall every blob request they are sent meanwhile.
	attacked := m.phase(rng, "attacked", o.Rounds)
	linksLeft := map[bool]int{} // by whether the attacker forges
	for _, a := range hostile {
		linksLeft[a.forges] += len(n.Host(a.member).Network().Peers())
	}

	stop()
	wg.Wait()
	var junk int
	for _, a := range hostile {
		junk += a.junkSent()
	}
	convStart := time.Now()
	convErr := n.Poll(func() bool { ok, _ := n.Converged(id, honest...); return ok })
	convTook := time.Since(convStart)
	roots := map[string]bool{}
	for _, i := range honest {
		roots[n.MustCommons(i, id).StateRoot] = true
	}
	forged := 0
	for _, a := range hostile {
		for _, c := range a.forged {
			for _, i := range honest {
				if has, err := n.Store(i).HasRecord(context.Background(), c); err != nil || has {
					forged++
				}
			}
		}
	}

	report := func(label string, r phaseResult) {
		d := sortedDurations(r.delays)
		res.add(clock+": "+label+" p50", ms(percentile(d, 50)), "ms")
		res.add(clock+": "+label+" p99", ms(percentile(d, 99)), "ms")
		res.add(clock+": "+label+" deliveries missed", float64(r.missed), "")
		res.add(clock+": "+label+" every blob on every honest node", r.blobsTook.Seconds(), "s")
		if r.blobErr != nil {
			res.note("%s payload blobs: %v", label, r.blobErr)
		}
	}
	report("quiet", quiet)
	report("attacked", attacked)
	if q := percentile(sortedDurations(quiet.delays), 99); q > 0 {
		res.add(clock+": p99 attacked / quiet", float64(percentile(sortedDurations(attacked.delays), 99))/float64(q), "x")
	}
	if q := quiet.blobsTook; q > 0 {
		res.add(clock+": every blob attacked / quiet", float64(attacked.blobsTook)/float64(q), "x")
	}
	res.add("honest nodes", float64(len(honest)), "")
	res.add("links per member", byzantineDegree, "")
	res.add("hostile hosts", float64(len(hostile)), "")
	res.add("payload blobs missing on some honest node", float64(quiet.blobsMissing+attacked.blobsMissing), "")
	res.add("distinct state roots among honest nodes", float64(len(roots)), "")
	res.add(clock+": same root after the attack stopped", convTook.Seconds(), "s")
	res.add("forged records stored (node × record)", float64(forged), "")
	res.add("links to honest nodes left at the end, attackers that forge", float64(linksLeft[true]), "")
	res.add("links to honest nodes left at the end, attackers that do not", float64(linksLeft[false]), "")
	res.add("valid junk contributions sent", float64(junk), "")
	if convErr != nil {
		res.note("honest nodes not converged: %v", convErr)
	}
	res.note("%d rounds quiet, then %d attacked, every 4th with a 4 KiB payload blob; the goal: nothing missed, one root, no forgery stored, attacked p99 within 2x of quiet", o.Rounds, o.Rounds)
	res.note("the attackers' validly signed contributions are stored like any other record: this commons asks no proof of work (the flood scenario measures one that does)")
}

// phaseResult is what a phase of rounds measured: the arrival delays of
// its records at the honest nodes, how many arrivals did not happen
// within a minute, and how long until every payload blob of the phase was
// on every honest node (from the end of its last round), or how many were
// still missing when the Net's timeout ended the wait.
type phaseResult struct {
	delays       []time.Duration
	missed       int
	blobsTook    time.Duration
	blobsMissing int
	blobErr      error
}

// rounds has honest nodes publish records one at a time and times their
// arrival at the others. A record counts as arrived at a node when its CID
// is in the node's feed: other records (an attacker's) may come between.
type rounds struct {
	t       sim.T
	ctx     context.Context
	n       *sim.Net
	commons string
	honest  []int
	cursors []uint64
	cur     phaseResult
	noBlobs bool // no round carries a payload blob
}

func newRounds(t sim.T, ctx context.Context, n *sim.Net, commons string, honest []int) *rounds {
	m := &rounds{t: t, ctx: ctx, n: n, commons: commons, honest: honest, cursors: make([]uint64, len(honest))}
	for k, i := range honest {
		m.cursors[k] = uint64(n.MustCommons(i, commons).Records)
	}
	return m
}

// phase runs count rounds from random honest nodes, every 4th with a
// payload blob, and then waits for the blobs to reach every honest node.
func (m *rounds) phase(rng *rand.Rand, label string, count int) phaseResult {
	var blobs []cid.Cid
	for r := range count {
		withBlob := r%4 == 3 && !m.noBlobs
		if c := m.round(rng.IntN(len(m.honest)), fmt.Sprintf("%s round %d", label, r), withBlob); withBlob {
			blobs = append(blobs, c)
		}
	}
	res := m.cur
	m.cur = phaseResult{}
	start := time.Now()
	res.blobErr = m.n.Poll(func() bool { return m.missingBlobs(blobs) == 0 })
	res.blobsTook = time.Since(start)
	res.blobsMissing = m.missingBlobs(blobs)
	return res
}

// round has honest node p (an index into honest) contribute a record, with
// a new payload blob if withBlob, waits until it reached every other
// honest node or a minute passed, and returns the blob's CID.
func (m *rounds) round(p int, title string, withBlob bool) cid.Cid {
	nodes := make([]*node.Node, len(m.honest))
	for k, i := range m.honest {
		nodes[k] = m.n.Node(i)
	}
	var want string
	var blob cid.Cid
	ready := make(chan struct{})
	arrived := arrivals(len(nodes), p, func(k int) bool {
		<-ready
		return m.await(nodes[k], k, want)
	}, func() {
		defer close(ready)
		params := api.ContributeParams{Commons: m.commons, Title: title, Kind: "code"}
		if withBlob {
			data := make([]byte, 4<<10)
			_, _ = crand.Read(data)
			c, err := nodes[p].PutBlob(m.ctx, data)
			if err != nil {
				m.t.Fatal(err)
			}
			blob = cidOf(m.t, c)
			params.Payload = []api.PayloadParam{{CID: c, Name: "payload.bin"}}
		}
		var err error
		if want, err = nodes[p].Contribute(m.ctx, params); err != nil {
			m.t.Fatal(err)
		}
	})
	for k, d := range arrived {
		switch {
		case k == p:
		case d == 0:
			m.cur.missed++
		default:
			m.cur.delays = append(m.cur.delays, d)
		}
	}
	return blob
}

// await waits up to a minute for record c in node nd's feed, past its
// cursor, and reports whether it came.
func (m *rounds) await(nd *node.Node, k int, c string) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		items, err := nd.Feed(m.ctx, api.FeedQuery{Commons: m.commons, Since: m.cursors[k], Wait: time.Until(deadline)})
		if err != nil {
			return false
		}
		for _, it := range items {
			m.cursors[k] = max(m.cursors[k], it.Cursor)
			if it.CID == c {
				return true
			}
		}
	}
	return false
}

// missingBlobs counts the (honest node, blob) pairs not stored yet.
func (m *rounds) missingBlobs(blobs []cid.Cid) int {
	missing := 0
	for _, i := range m.honest {
		for _, b := range blobs {
			if has, err := m.n.Store(i).HasBlob(context.Background(), b); err != nil || !has {
				missing++
			}
		}
	}
	return missing
}

// attacker is a hostile raw host of the byzantine scenario.
type attacker struct {
	t       sim.T
	n       *sim.Net
	member  int
	key     protocol.PrivateKey
	commons cid.Cid
	topic   *pubsub.Topic
	forges  bool      // it floods invalid records too
	forged  []cid.Cid // their CIDs, which no honest node may store

	mu    sync.Mutex
	junk  int
	clock protocol.HLC // its last record time
}

// newAttacker sets member h up as an attacker: stalling sync and blob
// handlers, and a topic on which it forwards nothing; one that forges
// floods invalid records too.
func newAttacker(t sim.T, ctx context.Context, n *sim.Net, h int, commons cid.Cid, forges bool) *attacker {
	t.Helper()
	key, err := protocol.PrivateKeyFromLibp2p(n.Key(h))
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{t: t, n: n, member: h, key: key, commons: commons, forges: forges}
	host := n.Host(h)
	stall := func(s network.Stream) {
		buf := make([]byte, 64)
		_, _ = s.Read(buf) // the request's start, then nothing more
		<-ctx.Done()
		_ = s.Reset()
	}
	host.SetStreamHandler(protocol.SyncProtocol, stall)
	host.SetStreamHandler(protocol.BlobProtocol, stall)

	ps, err := recordGossip(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	name := protocol.Topic(commons)
	self := host.ID()
	// Withhold: nothing another peer sends is forwarded; its own
	// messages go out.
	err = ps.RegisterTopicValidator(name, func(_ context.Context, from peer.ID, _ *pubsub.Message) pubsub.ValidationResult {
		if from == self {
			return pubsub.ValidationAccept
		}
		return pubsub.ValidationIgnore
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.topic, err = ps.Join(name); err != nil {
		t.Fatal(err)
	}
	sub, err := a.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { // drain, so that the subscription never blocks
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()
	return a
}

// recordGossip starts gossipsub on a raw host as nodes run it for
// records (message IDs, no pubsub signatures, the size limit), for a
// hostile host to speak on commons topics.
func recordGossip(ctx context.Context, h host.Host) (*pubsub.PubSub, error) {
	return pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return protocol.MessageID(m.GetTopic(), m.Data) }),
		pubsub.WithMaxMessageSize(protocol.MaxRecordSize+4096))
}

// run floods and opens idle sync sessions until ctx ends.
func (a *attacker) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var sessions []network.Stream
	defer func() {
		for _, s := range sessions {
			_ = s.Reset()
		}
	}()
	for {
		msgs := [][]byte{a.junkRecord()}
		if a.forges {
			// New ones each time: gossipsub sends a message once.
			bad := a.invalidRecords()
			for _, raw := range bad {
				a.forged = append(a.forged, protocol.RecordCID(raw))
			}
			msgs = append(msgs, bad...)
		}
		for _, raw := range msgs {
			_ = a.topic.Publish(ctx, raw)
		}
		if len(sessions) < 64 {
			for _, p := range a.n.Host(a.member).Network().Peers() {
				s, err := a.n.Host(a.member).NewStream(ctx, p, protocol.SyncProtocol)
				if err == nil {
					sessions = append(sessions, s) // opened, and never a word on it
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// record signs body as the attacker, dated now (or just after its last).
func (a *attacker) record(commons cid.Cid, body protocol.Body) *protocol.Record {
	a.mu.Lock()
	a.clock = protocol.NextHLC(time.Now().UnixMilli(), a.clock)
	now := a.clock
	a.mu.Unlock()
	rec := &protocol.Record{Commons: commons, Time: now, Body: body}
	if err := protocol.Sign(rec, a.key); err != nil {
		a.t.Fatal(err)
	}
	return rec
}

func (a *attacker) encode(rec *protocol.Record) []byte {
	raw, _, err := protocol.Encode(rec)
	if err != nil {
		a.t.Fatal(err)
	}
	return raw
}

// invalidRecords returns new invalid records: a contribution with a broken
// signature, garbage bytes, and a valid genesis of another commons
// (invalid on this one's topic).
func (a *attacker) invalidRecords() [][]byte {
	forged := a.record(a.commons, &protocol.Contribution{Title: "forged", Kind: "code",
		Licence: protocol.Link{Cid: a.commons}, Provenance: protocol.ProvenanceVolunteer})
	forged.Sig[7] ^= 0x40
	garbage := make([]byte, 300)
	_, _ = crand.Read(garbage)
	other := a.record(cid.Undef, &protocol.Manifest{Name: "elsewhere", Licence: "MIT",
		Association: []protocol.PublicKey{a.key.Public()}, Threshold: 1})
	return [][]byte{a.encode(forged), garbage, a.encode(other)}
}

// junkRecord returns a new validly signed contribution of the attacker's.
func (a *attacker) junkRecord() []byte {
	a.mu.Lock()
	a.junk++
	k := a.junk
	a.mu.Unlock()
	return a.encode(a.record(a.commons, &protocol.Contribution{Title: fmt.Sprintf("junk %d", k), Kind: "code",
		Licence: protocol.Link{Cid: a.commons}, Provenance: protocol.ProvenanceVolunteer}))
}

func (a *attacker) junkSent() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.junk
}
