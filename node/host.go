package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
)

// DHTPrefix is the protocol prefix of the Commons DHT: its protocol is
// /commons/kad/1.0.0, apart from the IPFS DHT.
const DHTPrefix = "/commons"

// MDNSService is the service name under which nodes find each other on
// the local network.
const MDNSService = "commons"

// NetworkConfig says how a node reaches peers across real networks. The
// zero value is a plain host: no DHT, no mDNS, no relay, no hole punching,
// reachability learnt by AutoNAT — what in-process tests want. A daemon
// takes its values from the repo's Settings (ConfigFromSettings).
type NetworkConfig struct {
	// Announce replaces the addresses the host announces (a bootstrap
	// node's public addresses). Empty: the detected ones.
	Announce []string
	// DHT runs the Kademlia DHT: "auto", "client", "server"; "" or "off":
	// none.
	DHT string
	// MDNS finds peers on the local network.
	MDNS bool
	// AutoNATService answers other peers' dial-back requests.
	AutoNATService bool
	// RelayClient reserves a slot on a circuit relay when the node is not
	// publicly reachable.
	RelayClient bool
	// RelayService offers circuit relay v2 to others.
	RelayService bool
	// HolePunching upgrades relayed connections (DCUtR).
	HolePunching bool
	// Reachability: "public" or "private" assume it; "" or "auto" learn it.
	Reachability string
	// ConnLow and ConnHigh bound the connection manager; 0: the default
	// profile's conn_low and conn_high (repo.Defaults: 100 and 400).
	ConnLow, ConnHigh int
	// DiscoveryInterval is how often the node looks for each commons' peers
	// in the DHT once it has some; 0: 5 minutes.
	DiscoveryInterval time.Duration
}

func (c *NetworkConfig) validate() error {
	def := repo.Defaults(repo.ProfileDefault)
	if c.ConnLow <= 0 {
		c.ConnLow = def.ConnLow
	}
	if c.ConnHigh <= 0 {
		c.ConnHigh = max(def.ConnHigh, c.ConnLow)
	}
	if c.ConnHigh < c.ConnLow {
		return fmt.Errorf("node: config: ConnHigh %d is below ConnLow %d", c.ConnHigh, c.ConnLow)
	}
	if c.DiscoveryInterval <= 0 {
		c.DiscoveryInterval = 5 * time.Minute
	}
	switch c.DHT {
	case "", "off", "auto", "client", "server":
	default:
		return fmt.Errorf("node: config: DHT mode %q: want auto, client, server or off", c.DHT)
	}
	switch c.Reachability {
	case "", "auto", "public", "private":
	default:
		return fmt.Errorf("node: config: reachability %q: want auto, public or private", c.Reachability)
	}
	for _, a := range c.Announce {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return fmt.Errorf("node: config: announce address %q: %w", a, err)
		}
	}
	return nil
}

func (c NetworkConfig) dhtOn() bool { return c.DHT != "" && c.DHT != "off" }

// netState is what the node knows of its place in the network. Its fields
// are safe for concurrent use.
type netState struct {
	dht          *dht.IpfsDHT
	reachability atomic.Value // string: unknown, public, private
	mdns         mdns.Service
}

// hostOptions are the libp2p options of a host the node builds itself:
// identity, listen addresses and limits, then the addresses to announce,
// NAT traversal, relaying and the DHT as NetworkConfig asks.
func (n *Node) hostOptions() ([]libp2p.Option, error) {
	nc := n.cfg.Network
	if err := probeListen(n.cfg.Listen); err != nil {
		return nil, err
	}
	opts, err := n.baseHostOptions()
	if err != nil {
		return nil, err
	}
	announce, err := announceOptions(nc.Announce)
	if err != nil {
		return nil, err
	}
	opts = append(opts, announce...)
	opts = append(opts, natOptions(nc)...)
	opts = append(opts, n.relayOptions(nc)...)
	if nc.dhtOn() {
		opts = append(opts, n.dhtRouting())
	}
	return opts, nil
}

// baseHostOptions are what every host the node builds has: its identity,
// listen addresses, connection and resource managers sized by
// ConnLow and ConnHigh, and user agent.
func (n *Node) baseHostOptions() ([]libp2p.Option, error) {
	nc := n.cfg.Network
	cm, err := connmgr.NewConnManager(nc.ConnLow, nc.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	rm, err := resourceManager(nc.ConnHigh)
	if err != nil {
		return nil, err
	}
	return []libp2p.Option{
		libp2p.Identity(n.cfg.Key),
		libp2p.ListenAddrStrings(n.cfg.Listen...),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.UserAgent("commons"),
	}, nil
}

// probeListen binds, and lets go at once, the port of each listen address
// that names an IP and a port, so that the node refuses to start on a port
// another program holds. libp2p alone would not: its TCP transport binds
// with SO_REUSEPORT (to dial from the listening port, which NAT traversal
// needs), so a second daemon on a TCP port shares it without an error and
// the kernel hands each connection to either; and it starts when any one
// address works, so a QUIC port taken elsewhere goes unsaid. The probe
// binds without SO_REUSEPORT, which fails while any socket listens there.
func probeListen(addrs []string) error {
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("node: listen address %q: %w", s, err)
		}
		network, hostPort, ok := portOf(m)
		if !ok {
			continue
		}
		var c io.Closer
		if network == "tcp" {
			c, err = net.Listen("tcp", hostPort)
		} else {
			c, err = net.ListenPacket("udp", hostPort)
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("node: listen on %s: %w (another program, perhaps another commons daemon, listens there; choose another port with --listen)", s, syscall.EADDRINUSE)
		}
		if err != nil {
			return fmt.Errorf("node: listen on %s: %w", s, err)
		}
		_ = c.Close()
	}
	return nil
}

// portOf returns the network ("tcp" or "udp") and host:port an address
// binds, when it names an IP address and a port other than 0.
func portOf(m ma.Multiaddr) (network, hostPort string, ok bool) {
	ip, err := m.ValueForProtocol(ma.P_IP4)
	if err != nil {
		if ip, err = m.ValueForProtocol(ma.P_IP6); err != nil {
			return "", "", false
		}
	}
	for _, p := range []struct {
		code    int
		network string
	}{{ma.P_TCP, "tcp"}, {ma.P_UDP, "udp"}} {
		if port, err := m.ValueForProtocol(p.code); err == nil && port != "0" {
			return p.network, net.JoinHostPort(ip, port), true
		}
	}
	return "", "", false
}

// announceOptions make the host announce the given addresses instead of
// the detected ones, keeping relayed addresses; none without any.
func announceOptions(addrs []string) ([]libp2p.Option, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	announce := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("node: announce address %q: %w", a, err)
		}
		announce = append(announce, m)
	}
	return []libp2p.Option{libp2p.AddrsFactory(func(detected []ma.Multiaddr) []ma.Multiaddr {
		// Keep relayed addresses: they are how a private node is reached.
		out := slices.Clone(announce)
		for _, a := range detected {
			if isRelayed(a) {
				out = append(out, a)
			}
		}
		return out
	})}, nil
}

// natOptions answer other peers' AutoNAT dial-back requests and force the
// reachability when NetworkConfig assumes one.
func natOptions(nc NetworkConfig) []libp2p.Option {
	var opts []libp2p.Option
	if nc.AutoNATService {
		opts = append(opts, libp2p.EnableNATService(), libp2p.EnableAutoNATv2())
	}
	switch nc.Reachability {
	case "public":
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case "private":
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	return opts
}

// relayOptions offer circuit relay v2 to others, reserve a slot on a relay
// when this node is not publicly reachable, and upgrade relayed
// connections by hole punching, as NetworkConfig asks.
func (n *Node) relayOptions(nc NetworkConfig) []libp2p.Option {
	var opts []libp2p.Option
	if nc.RelayService {
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(relayResources(nc.ConnHigh))))
	}
	if nc.RelayClient {
		// One relay candidate is enough (a commons may have a single
		// bootstrap node); libp2p's default waits minutes for four.
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates,
			autorelay.WithMinCandidates(1), autorelay.WithBootDelay(0)))
	}
	if nc.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	return opts
}

// relayResources are the relay service's limits: reservations scale with
// the connection limits, like connections per IP (peers behind one NAT
// share an address).
func relayResources(connHigh int) relayv2.Resources {
	r := relayv2.DefaultResources()
	r.MaxReservations = max(r.MaxReservations, connHigh/2)
	r.MaxReservationsPerIP = max(r.MaxReservationsPerIP, perIPLimit(connHigh))
	r.MaxReservationsPerASN = max(r.MaxReservationsPerASN, 4*perIPLimit(connHigh))
	return r
}

// dhtRouting makes the host route through the Commons DHT, which the node
// keeps in n.net.dht.
func (n *Node) dhtRouting() libp2p.Option {
	return libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
		d, err := n.newDHT(h)
		n.net.dht = d
		return d, err
	})
}

// resourceManager scales libp2p's default limits to the machine, then
// raises the connection limits to what the connection manager allows.
func resourceManager(connHigh int) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.AutoScale()
	conns := rcmgr.LimitVal(2 * connHigh)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: conns, ConnsInbound: conns, ConnsOutbound: conns,
			Streams: rcmgr.LimitVal(16 * connHigh), StreamsInbound: rcmgr.LimitVal(8 * connHigh), StreamsOutbound: rcmgr.LimitVal(8 * connHigh),
			FD: conns,
		},
		Transient: rcmgr.ResourceLimits{Conns: conns, ConnsInbound: conns, ConnsOutbound: conns},
	}
	// libp2p allows 8 connections per IPv4 address by default; behind a
	// carrier-grade NAT many peers share one. Scale it with the limits.
	perIP := perIPLimit(connHigh)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaled)),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: perIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: perIP}, {PrefixLength: 48, ConnCount: 8 * perIP}},
		))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}

// perIPLimit is how many connections (and relay reservations) one IP
// address may hold.
func perIPLimit(connHigh int) int { return max(8, connHigh/32) }

func (n *Node) newDHT(h host.Host) (*dht.IpfsDHT, error) {
	mode := dht.ModeAuto
	switch n.cfg.Network.DHT {
	case "client":
		mode = dht.ModeClient
	case "server":
		mode = dht.ModeServer
	}
	d, err := dht.New(h,
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTPrefix),
		dht.DisableValues(),
		dht.BootstrapPeersFunc(func() []peer.AddrInfo {
			infos := n.bootstrapInfos()
			for i := range infos {
				infos[i] = preferQUIC(infos[i]) // see dialBootstrap
			}
			return infos
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("node: start DHT: %w", err)
	}
	return d, nil
}

// bootstrapInfos are the configured bootstrap peers and those the
// manifests of the replicated commons name.
func (n *Node) bootstrapInfos() []peer.AddrInfo {
	addrs := slices.Clone(n.cfg.Bootstrap)
	_ = n.do(n.ctx, func() {
		for _, id := range n.order {
			if _, m := n.commons[id].state.Head(); m != nil {
				addrs = append(addrs, m.Bootstrap...)
			}
		}
	})
	return n.groupPeerAddrs(addrs)
}

// relayCandidates feeds AutoRelay: the bootstrap peers, then connected
// peers; AutoRelay itself checks which offer the relay service.
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, num)
	go func() {
		defer close(ch)
		seen := map[peer.ID]bool{}
		send := func(ai peer.AddrInfo) bool {
			if seen[ai.ID] || len(seen) >= num {
				return len(seen) < num
			}
			seen[ai.ID] = true
			select {
			case ch <- ai:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if n.host == nil {
			return
		}
		for _, ai := range n.bootstrapInfos() {
			if !send(ai) {
				return
			}
		}
		for _, p := range n.host.Network().Peers() {
			if !send(peer.AddrInfo{ID: p, Addrs: n.host.Peerstore().Addrs(p)}) {
				return
			}
		}
	}()
	return ch
}

// startDiscovery tracks reachability and runs mDNS and the DHT's
// announcing and finding of each commons' peers.
func (n *Node) startDiscovery() error {
	r := "unknown"
	switch n.cfg.Network.Reachability {
	case "public", "private":
		r = n.cfg.Network.Reachability
	}
	n.net.reachability.Store(r)
	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtLocalAddressesUpdated)})
	if err != nil {
		return fmt.Errorf("node: subscribe to host events: %w", err)
	}
	addrsChanged := make(chan struct{}, 1)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e := <-sub.Out():
				switch e := e.(type) {
				case event.EvtLocalReachabilityChanged:
					r := strings.ToLower(e.Reachability.String())
					n.net.reachability.Store(r)
					n.log.Info("reachability", "now", r)
				case event.EvtLocalAddressesUpdated:
					select {
					case addrsChanged <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	if n.cfg.Network.MDNS {
		n.net.mdns = mdns.NewMdnsService(n.host, MDNSService, mdnsNotifee{n})
		if err := n.net.mdns.Start(); err != nil {
			return fmt.Errorf("node: start mDNS: %w", err)
		}
	}
	if n.net.dht != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.runDHT(addrsChanged)
		}()
	}
	punch := map[peer.ID]*retry{} // owned by maintainConnections
	n.goEvery(maintainInterval, func() { n.maintainConnections(punch) })
	return nil
}

// maintainInterval is how often the node redials lost bootstrap peers and
// retries hole punching to peers it reaches only through a relay.
const maintainInterval = 10 * time.Second

// maintainConnections keeps the node connected: it redials bootstrap peers
// (config and manifests) it has lost, so that a healed link or a restarted
// bootstrap node is used again within seconds, and retries hole punching
// for peers reached only through a relay (punch: their backoffs).
func (n *Node) maintainConnections(punch map[peer.ID]*retry) {
	for _, ai := range n.bootstrapInfos() {
		if n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		err := n.dialBootstrap(ai)
		n.log.Debug("redial bootstrap peer", "peer", ai.ID, "err", err)
	}
	if n.cfg.Network.HolePunching {
		n.repunch(punch)
	}
}

// retry is a backoff: the next attempt and the wait after it.
type retry struct {
	next time.Time
	wait time.Duration
}

// repunch retries hole punching with peers reached only through a relay
// for a while: the first attempt fails when it starts before one side
// knows its public address, and libp2p does not try again on that
// connection. Closing the relayed connection and dialling the peer again
// through the relay makes the other side start hole punching anew.
// Attempts back off from 30 s to 10 minutes per peer.
func (n *Node) repunch(state map[peer.ID]*retry) {
	now := time.Now()
	for p := range state {
		if n.host.Network().Connectedness(p) != network.Limited {
			delete(state, p) // direct now, or gone
		}
	}
	for _, p := range n.host.Network().Peers() {
		if n.host.Network().Connectedness(p) != network.Limited {
			continue
		}
		conns := n.host.Network().ConnsToPeer(p)
		young := slices.ContainsFunc(conns, func(c network.Conn) bool { return now.Sub(c.Stat().Opened) < 20*time.Second })
		r := state[p]
		if r == nil {
			r = &retry{wait: 30 * time.Second}
			state[p] = r
		}
		if young || now.Before(r.next) {
			continue
		}
		r.next, r.wait = now.Add(r.wait), min(2*r.wait, 10*time.Minute)
		addrs := n.host.Peerstore().Addrs(p)
		_ = n.host.Network().ClosePeer(p)
		ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(n.ctx, "hole punching"), maintainInterval)
		err := n.host.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs})
		cancel()
		n.log.Debug("relayed peer redialled for hole punching", "peer", p, "err", err)
	}
}

type mdnsNotifee struct{ n *Node }

// HandlePeerFound connects to a peer found on the local network; the
// connection starts a sync of every commons both replicate.
func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 15*time.Second)
	defer cancel()
	if err := n.host.Connect(ctx, ai); err != nil {
		n.log.Debug("mDNS peer", "peer", ai.ID, "err", err)
		return
	}
	n.log.Info("found peer on the local network", "peer", ai.ID)
}

// runDHT announces this node as a provider of each commons it replicates
// (keyed by the commons ID) and connects to the other providers: soon
// after start, whenever this node's addresses change (a relay reservation,
// a new observed address), when a commons is joined, and then every
// DiscoveryInterval.
func (n *Node) runDHT(addrsChanged <-chan struct{}) {
	d := n.net.dht
	if err := d.Bootstrap(n.ctx); err != nil {
		n.log.Warn("DHT bootstrap", "err", err)
	}
	provided := map[cid.Cid]time.Time{}
	const reprovide = 12 * time.Hour
	// Quick rounds at first: the routing table fills as connections come.
	delay := 2 * time.Second
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-addrsChanged:
			clear(provided) // peers must learn the new addresses
		case <-n.joined:
		case <-t.C:
		}
		for _, id := range n.commonsIDs() {
			if d.RoutingTable().Size() == 0 {
				break
			}
			if at, ok := provided[id]; !ok || time.Since(at) > reprovide {
				ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
				err := d.Provide(ctx, id, true)
				cancel()
				if err != nil {
					n.log.Debug("DHT provide", "commons", id, "err", err)
				} else {
					provided[id] = time.Now()
				}
			}
			n.findProviders(id)
		}
		delay = min(2*delay, n.cfg.Network.DiscoveryInterval)
		t.Reset(delay)
	}
}

// findProviders connects to the peers the DHT names as replicating a
// commons.
func (n *Node) findProviders(id cid.Cid) {
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	for ai := range n.net.dht.FindProvidersAsync(ctx, id, 20) {
		if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		if err := n.host.Connect(cctx, ai); err != nil {
			n.log.Debug("DHT provider", "commons", id, "peer", ai.ID, "err", err)
		} else {
			n.log.Info("found peer through the DHT", "commons", id, "peer", ai.ID)
		}
		ccancel()
	}
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// Reachability is how others reach this node: public, private or unknown
// (AutoNAT has not decided yet); "offline" without a host.
func (n *Node) Reachability() string {
	if n.host == nil {
		return "offline"
	}
	if r, ok := n.net.reachability.Load().(string); ok {
		return r
	}
	return "unknown"
}

// ListenAddrs are the addresses the node's host listens on, as bound: a
// port 0 is the port chosen, and an unspecified IP (0.0.0.0, ::) stays,
// for every interface. Each ends in /p2p/ and the peer ID. None offline.
func (n *Node) ListenAddrs() []string {
	if n.host == nil {
		return nil
	}
	var out []string
	for _, a := range n.host.Network().ListenAddresses() {
		if !isRelayed(a) { // the relay transport's /p2p-circuit binds nothing
			out = append(out, fmt.Sprintf("%s/p2p/%s", a, n.host.ID()))
		}
	}
	return out
}

// closeDiscovery stops mDNS and the DHT.
func (n *Node) closeDiscovery() {
	if n.net.mdns != nil {
		_ = n.net.mdns.Close()
	}
	if n.net.dht != nil {
		_ = n.net.dht.Close()
	}
}

func (n *Node) dhtInfo() *api.DHTInfo {
	d := n.net.dht
	if d == nil {
		return nil
	}
	// In auto mode the DHT serves only once the node is publicly
	// reachable: it then handles the DHT protocol.
	mode := "client"
	if slices.Contains(n.host.Mux().Protocols(), protocol.ID(DHTPrefix+"/kad/1.0.0")) {
		mode = "server"
	}
	return &api.DHTInfo{Mode: mode, RoutingTable: d.RoutingTable().Size()}
}
