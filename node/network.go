package node

import (
	"context"
	"errors"

	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/protocol"
)

// startNetwork builds the host (unless given) and gossipsub. Before the loop
// runs, so it may touch loop-owned state.
func (n *Node) startNetwork(ctx context.Context) error {
	if n.cfg.Host != nil {
		n.host = n.cfg.Host
	} else {
		opts, err := n.hostOptions()
		if err != nil {
			return err
		}
		h, err := libp2p.New(opts...)
		if err != nil {
			return fmt.Errorf("node: start libp2p host on %v: %w", n.cfg.Listen, err)
		}
		n.host, n.ownHost = h, true
	}
	if n.cfg.Host != nil && n.cfg.Network.dhtOn() {
		d, err := n.newDHT(n.host)
		if err != nil {
			return err
		}
		n.net.dht = d
	}
	if err := n.startDiscovery(); err != nil {
		return err
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return protocol.MessageID(m.GetTopic(), m.Data) }),
		pubsub.WithMaxMessageSize(protocol.MaxRecordSize+4096),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithPeerScoreInspect(n.inspectScores, time.Second),
		pubsub.WithLogger(n.cfg.Logger.With("component", "pubsub")),
	)
	if err != nil {
		return fmt.Errorf("node: start gossipsub: %w", err)
	}
	n.ps = ps
	n.host.SetStreamHandler(protocol.SyncProtocol, n.serveSync)
	for _, id := range n.order {
		if err := n.joinTopic(n.commons[id]); err != nil {
			return err
		}
	}
	return nil
}

// startBackground starts the goroutines that keep the node connected and in
// sync: sync on every new connection, periodic sync, bootstrap.
func (n *Node) startBackground() {
	// The notifiee first: the blob workers and the sweeper wait for a peer
	// to connect, and one connecting before would not wake them.
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if n.banned(c.RemotePeer()) {
				go func() { _ = c.Close() }()
				return
			}
			n.blobs.peerJoined(c.RemotePeer(), n.cfg.Now())
			// A relayed connection is limited in time and bytes: it
			// serves hole punching, not sync. The direct connection
			// that follows starts the sync.
			if !c.Stat().Limited {
				n.onConnected(c.RemotePeer())
			}
		},
	})
	n.startBlobs()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.connectAll(n.cfg.Bootstrap)
	}()
	n.goEvery(n.cfg.ExchangeInterval, n.periodicSync)
}

// commonsIDs returns the replicated commons; nil once the node stops.
func (n *Node) commonsIDs() []cid.Cid {
	var ids []cid.Cid
	_ = n.do(n.ctx, func() { ids = append(ids, n.order...) })
	return ids
}

// joinTopic joins a commons' gossip topic with its validator and starts the
// goroutine that ingests what arrives.
func (n *Node) joinTopic(rep *replica) error {
	name := protocol.Topic(rep.id)
	if err := n.ps.RegisterTopicValidator(name, n.validator(rep.id)); err != nil {
		return fmt.Errorf("node: register validator for %s: %w", name, err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		return fmt.Errorf("node: join topic %s: %w", name, err)
	}
	if err := t.SetScoreParams(topicScoreParams()); err != nil {
		return fmt.Errorf("node: topic score params: %w", err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(4096))
	if err != nil {
		return fmt.Errorf("node: subscribe %s: %w", name, err)
	}
	events, err := t.EventHandler()
	if err != nil {
		return fmt.Errorf("node: topic events %s: %w", name, err)
	}
	ctx, stop := context.WithCancel(n.ctx)
	watched := make(chan struct{})
	rep.topic, rep.sub, rep.stopTopic, rep.topicWatched = t, sub, stop, watched
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.readTopic(sub)
	}()
	go func() {
		defer n.wg.Done()
		defer close(watched)
		n.watchTopicPeers(ctx, events, rep.id)
	}()
	return nil
}

// watchTopicPeers syncs a commons with every peer that joins its topic: a
// peer that shares the commons has appeared (a new connection, a healed
// partition, a peer that joined the commons later than it connected).
func (n *Node) watchTopicPeers(ctx context.Context, events *pubsub.TopicEventHandler, id cid.Cid) {
	defer events.Cancel()
	for {
		ev, err := events.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin && n.host.ID() < ev.Peer {
			n.goSync(ev.Peer, id)
		}
	}
}

func (n *Node) readTopic(sub *pubsub.Subscription) {
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		b, ok := msg.ValidatorData.(*protocol.Block)
		if !ok || msg.Local {
			continue
		}
		select {
		case n.ingestCh <- &ingestReq{blocks: []*protocol.Block{b}}:
		case <-n.ctx.Done():
			return
		}
	}
}

// validator is the inline gossipsub validator of a commons' topic: full
// stateless validation before anything is delivered or forwarded. Invalid
// records are rejected (the sender's score drops); records from the future
// are ignored, to be fetched again by a later sync.
func (n *Node) validator(id cid.Cid) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		defer n.metrics.ValidationTook(time.Now())
		if !protocol.RecordCID(msg.Data).Equals(id) {
			// Before the genesis is here, the work its records must carry
			// is unknown: ignored at the cost of a hash, to come again
			// by sync, rather than checked down to their signatures.
			if _, err := n.workOf(id); err != nil {
				n.log.Debug("gossip record delayed", "from", from, "err", err)
				return pubsub.ValidationIgnore
			}
		}
		b, err := n.admitRaw(msg.Data, id)
		if err != nil {
			// A record of a type this version does not know may be valid
			// to a newer node: ignored, so that its sender is not banned.
			if !protocol.Permanent(err) || errors.Is(err, protocol.ErrUnknownType) {
				n.log.Debug("gossip record delayed", "from", from, "err", err)
				return pubsub.ValidationIgnore
			}
			n.log.Warn("gossip record rejected", "from", from, "err", err)
			return pubsub.ValidationReject
		}
		if b.Record.Type() != protocol.TypeManifest && n.bannedIn(id, b.Record.Author) {
			// Inert wherever the ban is known: not worth a hop, nor a
			// place in the mesh. Not the sender's fault either (it may not
			// know the ban yet): ignored, and the record comes by sync.
			n.metrics.BannedGossip()
			return pubsub.ValidationIgnore
		}
		msg.ValidatorData = b
		return pubsub.ValidationAccept
	}
}

// noteBans keeps the keys a commons' heads ban for the gossip validator,
// which runs outside the loop. Loop only.
func (n *Node) noteBans(id cid.Cid, banned []protocol.PublicKey) {
	if len(banned) == 0 {
		n.banKeys.Delete(id)
		return
	}
	m := make(map[protocol.PublicKey]bool, len(banned))
	for _, k := range banned {
		m[k] = true
	}
	n.banKeys.Store(id, m)
}

// bansIn reports whether a head of commons id bans some key.
func (n *Node) bansIn(id cid.Cid) bool {
	_, ok := n.banKeys.Load(id)
	return ok
}

// bannedIn reports whether a head of commons id bans key k.
func (n *Node) bannedIn(id cid.Cid, k protocol.PublicKey) bool {
	m, ok := n.banKeys.Load(id)
	return ok && m.(map[protocol.PublicKey]bool)[k]
}

// publish sends a locally made record to a commons' topic.
func (n *Node) publish(id cid.Cid, raw []byte) {
	var t *pubsub.Topic
	_ = n.do(n.ctx, func() {
		if rep := n.commons[id]; rep != nil {
			t = rep.topic
		}
	})
	if t == nil {
		return
	}
	if err := t.Publish(n.ctx, raw); err != nil && n.ctx.Err() == nil {
		n.log.Warn("publish", "commons", id, "err", err)
	}
}

// dialManifestPeers connects to the bootstrap peers a commons' manifest
// names, once each. Loop only.
func (n *Node) dialManifestPeers(rep *replica) {
	if n.host == nil {
		return
	}
	_, m := rep.state.Head()
	if m == nil {
		return
	}
	var addrs []string
	for _, a := range m.Bootstrap {
		if !rep.dials[a] {
			rep.dials[a] = true
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.connectAll(addrs)
	}()
}

// connectAll dials peers given as multiaddrs with /p2p/.
func (n *Node) connectAll(addrs []string) {
	for _, ai := range n.groupPeerAddrs(addrs) {
		if n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		if err := n.dialBootstrap(ai); err != nil && n.ctx.Err() == nil {
			n.log.Warn("cannot reach bootstrap peer", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
		}
	}
}

// dialBootstrap connects to a bootstrap peer over QUIC when it has QUIC
// addresses, and over any of its addresses when that fails. Peers behind
// NAT learn their public address (as the bootstrap peer observes it) only
// for the transport they reach it by, and hole punching between two of
// them works only when both know it for the same transport: left to
// libp2p's dial race, one would get QUIC and the other TCP.
func (n *Node) dialBootstrap(ai peer.AddrInfo) error {
	if q := preferQUIC(ai); len(q.Addrs) < len(ai.Addrs) {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		err := n.host.Connect(ctx, q)
		cancel()
		if err == nil {
			return nil
		}
		n.log.Debug("bootstrap peer over QUIC", "peer", ai.ID, "err", err)
	}
	ctx, cancel := context.WithTimeout(n.ctx, 15*time.Second)
	defer cancel()
	return n.host.Connect(ctx, ai)
}

// preferQUIC keeps a peer's QUIC addresses, or all if it has none.
func preferQUIC(ai peer.AddrInfo) peer.AddrInfo {
	var q []ma.Multiaddr
	for _, a := range ai.Addrs {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil && !isRelayed(a) {
			q = append(q, a)
		}
	}
	if len(q) == 0 {
		return ai
	}
	return peer.AddrInfo{ID: ai.ID, Addrs: q}
}

// groupPeerAddrs parses multiaddrs with /p2p/ into one AddrInfo per peer,
// in the order peers first appear, leaving out this node and bad addresses.
func (n *Node) groupPeerAddrs(addrs []string) []peer.AddrInfo {
	var out []peer.AddrInfo
	at := map[peer.ID]int{}
	for _, a := range addrs {
		ai, err := repo.ParsePeerAddr(a)
		if err != nil {
			n.log.Debug("bootstrap address", "addr", a, "err", err)
			continue
		}
		if ai.ID == n.host.ID() {
			continue
		}
		if i, ok := at[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		at[ai.ID] = len(out)
		out = append(out, *ai)
	}
	return out
}

// peerScoreParams penalise peers that send invalid records (P4) and little
// else: Commons topics are low-rate.
func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:           map[string]*pubsub.TopicScoreParams{},
		AppSpecificScore: func(peer.ID) float64 { return 0 },
		DecayInterval:    time.Second,
		DecayToZero:      0.01,
		RetainScore:      10 * time.Minute,
		TopicScoreCap:    100,
	}
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                  1,
		TimeInMeshWeight:             0.01,
		TimeInMeshQuantum:            time.Second,
		TimeInMeshCap:                10,
		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:    50,
		// One invalid record puts a peer below the graylist threshold
		// (the counter is squared): it is then banned (inspectScores).
		InvalidMessageDeliveriesWeight: -2000,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             -100,
		PublishThreshold:            -500,
		GraylistThreshold:           -1000,
		AcceptPXThreshold:           10,
		OpportunisticGraftThreshold: 5,
	}
}
