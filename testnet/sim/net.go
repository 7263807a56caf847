package sim

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
)

// Mbps is one megabit per second, in the bits per second of
// Options.Bandwidth.
const Mbps = 1_000_000

// Options configures a Net. Zero values take the documented defaults.
type Options struct {
	// Nodes is how many Commons nodes the Net starts, members 0 to Nodes-1.
	// Default 3.
	Nodes int
	// Seed seeds every random choice of the harness. Default 1 (package
	// testnet's Run takes its default from the -testnet.seed flag).
	Seed uint64
	// Latency is the one-way latency of every packet. Default 5ms.
	Latency time.Duration
	// Jitter, if positive, adds to each packet's latency a uniformly random
	// extra delay in [0, Jitter), drawn from the seed; packets may then be
	// reordered.
	Jitter time.Duration
	// Bandwidth is every member's uplink and downlink in bits per second.
	// Default 100 Mbit/s.
	Bandwidth int
	// ExchangeInterval is the nodes' periodic full exchange interval
	// (node.Config.ExchangeInterval). Default: the node's default, 30s.
	ExchangeInterval time.Duration
	// Timeout bounds every WaitFor, in the Net's time (virtual inside a
	// synctest bubble). Default 10 minutes.
	Timeout time.Duration
	// Logger receives the nodes' logs, each with a "node" attribute.
	// Default: discard.
	Logger *slog.Logger
	// Configure, if set, may change each node's config before the node is
	// built (on every start, so also after a Restart). i is the member
	// index.
	Configure func(i int, cfg *node.Config)
}

func (o *Options) validate() {
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Latency <= 0 {
		o.Latency = 5 * time.Millisecond
	}
	if o.Bandwidth <= 0 {
		o.Bandwidth = 100 * Mbps
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// T is what the harness needs of its caller: a *testing.T, or outside a
// test binary a runner of one's own (testnet/bench has the one that
// "commons testnet bench" uses). Fatal and Fatalf must stop the calling
// goroutine (panic or runtime.Goexit) after recording the failure;
// Cleanup functions run, last added first, when the run ends.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Failed() bool
	Name() string
	Context() context.Context
}

// Net is a simulated network of Commons nodes and raw hosts. Its methods
// must be called from the goroutine of its T (inside the bubble it was
// made in, if any).
type Net struct {
	t       T
	opts    Options
	sim     *simnet.Simnet
	link    simnet.NodeBiDiLinkSettings
	members []*member

	mu     sync.Mutex // guards groups and jitter; the gaters read them
	groups map[peer.ID]int
	jitter *rand.Rand

	links map[[2]int]bool // connections the test asked for, i < j
}

// member is one participant of the network.
type member struct {
	idx   int
	key   crypto.PrivKey
	id    peer.ID
	addr  ma.Multiaddr
	store *memstore.Store // nil for a raw host
	host  host.Host
	node  *node.Node // nil for a raw host, or while stopped
}

// New makes a Net of opts.Nodes started nodes, none connected, and
// registers its shutdown with t.Cleanup. Inside a testing/synctest bubble
// its time is virtual; elsewhere it runs in real time.
func New(t T, opts Options) *Net {
	t.Helper()
	opts.validate()
	n := &Net{
		t:      t,
		opts:   opts,
		groups: map[peer.ID]int{},
		jitter: rand.New(rand.NewPCG(opts.Seed, 0x6a09e667f3bcc908)),
		links:  map[[2]int]bool{},
		link: simnet.NodeBiDiLinkSettings{
			Downlink: simnet.LinkSettings{BitsPerSecond: opts.Bandwidth},
			Uplink:   simnet.LinkSettings{BitsPerSecond: opts.Bandwidth},
		},
	}
	n.sim = &simnet.Simnet{LatencyFunc: n.latency, Logger: opts.Logger.With("component", "simnet")}
	n.sim.Start()
	t.Cleanup(n.close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sim: FAILED with seed %d", opts.Seed)
		}
	})
	for range opts.Nodes {
		m := n.addMember(memstore.New())
		n.Start(m.idx)
	}
	return n
}

func (n *Net) latency(*simnet.Packet) time.Duration {
	if n.opts.Jitter <= 0 {
		return n.opts.Latency
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.opts.Latency + time.Duration(n.jitter.Int64N(int64(n.opts.Jitter)))
}

// Seed returns the Net's seed.
func (n *Net) Seed() uint64 { return n.opts.Seed }

// Len returns the number of members: nodes and raw hosts.
func (n *Net) Len() int { return len(n.members) }

// Nodes returns the indexes of the members that are nodes, running or not.
func (n *Net) Nodes() []int {
	var out []int
	for _, m := range n.members {
		if m.store != nil {
			out = append(out, m.idx)
		}
	}
	return out
}

// Running returns the indexes of the running nodes.
func (n *Net) Running() []int {
	var out []int
	for _, m := range n.members {
		if m.node != nil {
			out = append(out, m.idx)
		}
	}
	return out
}

// addMember makes a member with the next index and a key from the seed.
// st is nil for a raw host.
func (n *Net) addMember(st *memstore.Store) *member {
	idx := len(n.members)
	var seed [ed25519.SeedSize]byte
	binary.LittleEndian.PutUint64(seed[:], n.opts.Seed)
	binary.LittleEndian.PutUint64(seed[8:], uint64(idx))
	copy(seed[16:], "commons-testnet!")
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		n.t.Fatalf("sim: key of member %d: %v", idx, err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		n.t.Fatalf("sim: peer ID of member %d: %v", idx, err)
	}
	addr := ma.StringCast(fmt.Sprintf("/ip4/%s/udp/4040/quic-v1", simnet.IntToPublicIPv4(idx)))
	m := &member{idx: idx, key: key, id: id, addr: addr, store: st}
	n.members = append(n.members, m)
	return m
}

// newHost starts a libp2p host for m on the simulated network: QUIC only,
// m's key and address, the Net's connection gater.
func (n *Net) newHost(m *member) host.Host {
	h, err := libp2p.New(
		libp2p.Identity(m.key),
		libp2p.ListenAddrs(m.addr),
		libp2p.Transport(libp2pquic.NewTransport),
		quicOnSimnet(n.sim, n.link),
		// Identify's address discovery stalls synctest (go-libp2p's
		// x/simlibp2p says so too).
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
		libp2p.DisableRelay(),
		libp2p.ConnectionGater(&gater{net: n, self: m.id}),
	)
	if err != nil {
		n.t.Fatalf("sim: host of member %d: %v", m.idx, err)
	}
	return h
}

// AddHost adds a raw libp2p host to the network, with the next member
// index and a key from the seed, and returns its index. The test drives
// it by hand (Host); the Net closes it at the end.
func (n *Net) AddHost() int {
	m := n.addMember(nil)
	m.host = n.newHost(m)
	return m.idx
}

func (n *Net) member(i int) *member {
	n.t.Helper()
	if i < 0 || i >= len(n.members) {
		n.t.Fatalf("sim: no member %d (have %d)", i, len(n.members))
	}
	return n.members[i]
}

func (n *Net) nodeMember(i int) *member {
	n.t.Helper()
	m := n.member(i)
	if m.store == nil {
		n.t.Fatalf("sim: member %d is a raw host, not a node", i)
	}
	return m
}

// Node returns member i's node. It fails the test if i is not a running
// node.
func (n *Net) Node(i int) *node.Node {
	n.t.Helper()
	m := n.nodeMember(i)
	if m.node == nil {
		n.t.Fatalf("sim: node %d is stopped", i)
	}
	return m.node
}

// Host returns member i's current libp2p host (nil for a stopped node).
func (n *Net) Host(i int) host.Host { return n.member(i).host }

// ID returns member i's peer ID, stable across restarts.
func (n *Net) ID(i int) peer.ID { return n.member(i).id }

// Key returns member i's private key, stable across restarts: the node
// signs its records with it.
func (n *Net) Key(i int) crypto.PrivKey { return n.member(i).key }

// Store returns node i's store. It outlives the node's Close: the Net
// closes it at the end.
func (n *Net) Store(i int) store.Store { return n.nodeMember(i).store }

// keptStore is a store whose Close is a no-op, so that a node can be closed
// and started again on the same data; the Net closes the real store.
type keptStore struct{ store.Store }

func (keptStore) Close() error { return nil }

// Start starts node i (a new host with the same key and address, a new
// node on the same store). The node is not connected to anyone. It fails
// the test if the node is already running.
func (n *Net) Start(i int) {
	n.t.Helper()
	m := n.nodeMember(i)
	if m.node != nil {
		n.t.Fatalf("sim: node %d is already running", i)
	}
	m.host = n.newHost(m)
	cfg := node.Config{
		Store:            keptStore{m.store},
		Host:             m.host,
		Logger:           n.opts.Logger.With("node", i),
		ExchangeInterval: n.opts.ExchangeInterval,
		Seed:             n.opts.Seed*1_000_003 + uint64(i) + 1,
	}
	if n.opts.Configure != nil {
		n.opts.Configure(i, &cfg)
	}
	nd, err := node.New(cfg)
	if err != nil {
		n.t.Fatalf("sim: node %d: %v", i, err)
	}
	if err := nd.Start(context.Background()); err != nil {
		_ = m.host.Close()
		m.host = nil
		n.t.Fatalf("sim: start node %d: %v", i, err)
	}
	m.node = nd
}

// Stop closes node i and its host; its store keeps its data. Its peers see
// the connections close.
func (n *Net) Stop(i int) {
	n.t.Helper()
	m := n.nodeMember(i)
	if m.node == nil {
		n.t.Fatalf("sim: node %d is not running", i)
	}
	err := m.node.Close()
	if herr := m.host.Close(); err == nil {
		err = herr
	}
	m.node, m.host = nil, nil
	if err != nil {
		n.t.Errorf("sim: stop node %d: %v", i, err)
	}
}

// Restart stops node i, starts it again on the same store and redials the
// links the test made to it (Connect), except across a partition.
func (n *Net) Restart(i int) {
	n.t.Helper()
	n.Stop(i)
	n.Start(i)
	n.redial(func(a, b int) bool { return a == i || b == i })
}

// close stops everything, in the bubble, so that no goroutine outlives it.
func (n *Net) close() {
	for _, m := range n.members {
		switch {
		case m.node != nil:
			n.Stop(m.idx)
		case m.host != nil:
			_ = m.host.Close()
			m.host = nil
		}
	}
	n.sim.Close()
	for _, m := range n.members {
		if m.store != nil {
			_ = m.store.Close()
		}
	}
}
