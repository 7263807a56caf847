package node

import (
	"crypto/rand"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/store/memstore"
)

// TestConfigDefaultsFromRepo: a zero Config takes the defaults the repo's
// default profile gives a daemon.
func TestConfigDefaultsFromRepo(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Store: memstore.New(), Key: key}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	d := repo.Defaults(repo.ProfileDefault)
	if !slices.Equal(c.Listen, d.Listen) || c.ExchangeInterval != d.SyncInterval ||
		c.Network.ConnLow != d.ConnLow || c.Network.ConnHigh != d.ConnHigh {
		t.Errorf("defaults: listen %v, exchange %v, conns %d-%d; repo says %v, %v, %d-%d",
			c.Listen, c.ExchangeInterval, c.Network.ConnLow, c.Network.ConnHigh,
			d.Listen, d.SyncInterval, d.ConnLow, d.ConnHigh)
	}
}

// TestConfigFromSettings: every setting a node uses reaches its Config.
func TestConfigFromSettings(t *testing.T) {
	s := repo.Settings{
		Listen:       []string{"/ip4/127.0.0.1/tcp/1"},
		Announce:     []string{"/ip4/203.0.113.7/tcp/4040"},
		Bootstrap:    []string{"/ip4/7.0.0.2/tcp/4040/p2p/12D3KooWHHzSeKaY8xuZVzkLbKFfvNgPPeKhFBGrMbNzbm5akpqu"},
		MDNS:         true,
		DHT:          "server",
		AutoNAT:      true,
		RelayClient:  true,
		RelayService: true,
		HolePunching: true,
		Reachability: "public",
		ConnLow:      7,
		ConnHigh:     9,
		SyncInterval: 42 * time.Second,
	}
	got := ConfigFromSettings(s)
	want := Config{
		Listen: s.Listen, Bootstrap: s.Bootstrap, ExchangeInterval: 42 * time.Second,
		Network: NetworkConfig{
			Announce: s.Announce, DHT: "server", MDNS: true, AutoNATService: true,
			RelayClient: true, RelayService: true, HolePunching: true,
			Reachability: "public", ConnLow: 7, ConnHigh: 9,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigFromSettings = %+v\nwant %+v", got, want)
	}
}
