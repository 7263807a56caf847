package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/store"
)

// Config configures a Node. Zero values take the documented defaults.
type Config struct {
	// Store persists records and blobs. Required. Close closes it.
	Store store.Store
	// Key is the node's ed25519 identity: it signs the node's records and,
	// when Host is nil, is the libp2p identity. Required unless Host is
	// set, in which case the host's own key is used.
	Key crypto.PrivKey
	// Host is the libp2p host to use. Nil: a host is built from Key and
	// Listen with go-libp2p's default transports (TCP, QUIC) and security,
	// and closed by Close. A given host is not closed by Close.
	Host host.Host
	// Listen are the multiaddrs to listen on when Host is nil.
	// Default repo.DefaultListen.
	Listen []string
	// Bootstrap are peers (multiaddrs ending in /p2p/<id>) to connect to at
	// start, besides those named in manifests.
	Bootstrap []string
	// FreeSpace returns the bytes free on the disk that holds the store
	// (nil: not checked), and DiskMargin how many the node keeps free: below
	// it, nothing is written (ErrDiskFull) until space returns. A store
	// that fills its disk fails in ways that stop the process (badger
	// writes through memory-mapped files).
	FreeSpace  func() (uint64, error)
	DiskMargin uint64
	// APIHosts are the host names the HTTP API answers besides loopback
	// names and IP addresses (ServeAPI, api.CheckHost).
	APIHosts []string
	// Offline runs without a host: no gossip, no sync. Records made
	// offline reach peers by sync when the daemon next runs.
	Offline bool
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
	// Now is the wall clock. Default time.Now.
	Now func() time.Time
	// ExchangeInterval is how often the node syncs (set reconciliation)
	// with one random peer, besides on every new connection. Default 30s
	// (repo.Defaults' SyncInterval).
	ExchangeInterval time.Duration
	// MaxBatch is the most records one ingest batch (one group commit)
	// holds. Default 512.
	MaxBatch int
	// FeedBuffer is how many events of a commons the node keeps in memory
	// for live feed subscribers; a subscriber further behind than this
	// has its stream ended with the position to resume from. Default 4096.
	FeedBuffer int
	// Network says how the node reaches peers across real networks: DHT,
	// mDNS, NAT traversal, relays, limits. The zero value is a plain host.
	Network NetworkConfig
	// Seed seeds the node's random choices (which peer to sync with).
	// Default 1.
	Seed uint64

	// blob bounds the blob exchange's memory (zero: the defaults; tests
	// make them small).
	blob blobBounds
}

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("node: config: Store is required")
	}
	if c.Key == nil && c.Host == nil && !c.Offline {
		return errors.New("node: config: Key or Host is required")
	}
	if c.Key == nil && c.Host != nil {
		c.Key = c.Host.Peerstore().PrivKey(c.Host.ID())
		if c.Key == nil {
			return errors.New("node: config: the host's peerstore has no private key for it")
		}
	}
	if c.Key == nil {
		return errors.New("node: config: Key is required")
	}
	if c.Key.Type() != crypto.Ed25519 {
		return fmt.Errorf("node: config: Key is %v; Commons identities are ed25519", c.Key.Type())
	}
	def := repo.Defaults(repo.ProfileDefault)
	if len(c.Listen) == 0 {
		c.Listen = def.Listen
	}
	for _, a := range c.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return fmt.Errorf("node: config: listen address %q: %w", a, err)
		}
	}
	for _, a := range c.Bootstrap {
		if _, err := repo.ParsePeerAddr(a); err != nil {
			return fmt.Errorf("node: config: bootstrap: %w", err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ExchangeInterval <= 0 {
		c.ExchangeInterval = def.SyncInterval
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.FeedBuffer <= 0 {
		c.FeedBuffer = 4096
	}
	if err := c.Network.validate(); err != nil {
		return err
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return nil
}

// ConfigFromSettings returns the Config a daemon runs with under a repo's
// settings: listen and bootstrap addresses, sync interval and network.
// The caller adds Store, Key and Logger.
func ConfigFromSettings(s repo.Settings) Config {
	return Config{
		Listen:           s.Listen,
		Bootstrap:        s.Bootstrap,
		APIHosts:         s.APIHosts,
		DiskMargin:       uint64(s.DiskMargin) << 20,
		ExchangeInterval: s.SyncInterval,
		Network: NetworkConfig{
			Announce:       s.Announce,
			DHT:            s.DHT,
			MDNS:           s.MDNS,
			AutoNATService: s.AutoNAT,
			RelayClient:    s.RelayClient,
			RelayService:   s.RelayService,
			HolePunching:   s.HolePunching,
			Reachability:   s.Reachability,
			ConnLow:        s.ConnLow,
			ConnHigh:       s.ConnHigh,
		},
	}
}
