package testnet

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node"
)

// Nodes that know only one peer (a DHT server) find the other peers of a
// commons through provider records keyed by the commons ID, connect to
// them directly and keep converging without the peer they started from.
// Without the DHT the same nodes stay strangers: the control shows the DHT
// made the difference.
func TestDHTFindsCommonsPeers(t *testing.T) {
	for _, dht := range []bool{true, false} {
		name := map[bool]string{true: "dht", false: "no dht"}[dht]
		t.Run(name, func(t *testing.T) {
			opts := Options{Nodes: 4, Configure: func(i int, cfg *node.Config) {
				if !dht {
					return
				}
				cfg.Network.DHT = "client"
				if i == 0 {
					cfg.Network.DHT = "server"
				}
				cfg.Network.DiscoveryInterval = 30 * time.Second
			}}
			Run(t, opts, func(t *testing.T, n *Net) {
				n.ConnectStar(0)
				id := found(t, n, 0, nil, 0)
				n.JoinAll(id)
				n.WaitConverged(id)
				linked := func() bool {
					for i := 1; i < 4; i++ {
						for j := i + 1; j < 4; j++ {
							if n.Host(i).Network().Connectedness(n.ID(j)) != network.Connected {
								return false
							}
						}
					}
					return true
				}
				if !dht {
					time.Sleep(3 * time.Minute)
					if linked() {
						t.Fatal("without the DHT, the nodes found each other anyway: the DHT test proves nothing")
					}
					return
				}
				start := time.Now()
				n.WaitFor("nodes 1-3 connected to each other", linked)
				t.Logf("peers found through the DHT in %v (virtual)", time.Since(start))
				if st, err := n.Node(1).Status(t.Context()); err != nil || st.DHT == nil || st.DHT.Mode != "client" {
					t.Errorf("node 1 status DHT = %+v, %v; want client mode", st.DHT, err)
				}

				// The node they started from goes away; the others still
				// converge.
				n.Stop(0)
				c := contribute(t, n, 3, id, "without the bootstrap node")
				n.WaitStatus(c, "pending", 1, 2, 3)
				n.WaitConverged(id, 1, 2, 3)
			})
		})
	}
}
