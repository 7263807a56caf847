package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/protocol"
)

// A peer that gossips invalid records is banned by the honest nodes that
// receive them: disconnected within seconds, and disconnected again when
// it comes back. Honest work goes on.
func TestInvalidGossipBans(t *testing.T) {
	Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		honest := n.Nodes()
		n.ConnectAll()
		id := found(t, n, 0, []int{0}, 1)
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 2)

		evil := n.AddHost()
		topic := joinTopic(t, n, evil, id)
		n.ConnectStar(evil, honest...)
		n.WaitFor("the hostile host sees every honest node in the topic", func() bool { return len(topic.ListPeers()) == len(honest) })
		for _, raw := range hostileRecords(t, n, evil, id) {
			if err := topic.Publish(ctx, raw); err != nil {
				t.Fatal(err)
			}
		}
		n.WaitFor("every honest node disconnects the host that gossiped invalid records", func() bool {
			for _, i := range honest {
				if n.Host(i).Network().Connectedness(n.ID(evil)) == network.Connected {
					return false
				}
			}
			return true
		})
		// It is refused when it comes back.
		_ = n.Host(evil).Connect(ctx, n.Host(0).Peerstore().PeerInfo(n.ID(0)))
		time.Sleep(time.Second)
		if n.Host(0).Network().Connectedness(n.ID(evil)) == network.Connected {
			t.Errorf("a banned peer reconnected")
		}
		x := contribute(t, n, 1, id, "honest work")
		n.WaitStatus(x, "pending")
	})
}

// A peer that serves invalid records in syncStrikes sessions is banned:
// the honest node stops syncing with it, and disconnects it.
func TestSyncViolatorBanned(t *testing.T) {
	Run(t, Options{Nodes: 1, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, []int{0}, 1)
		evil := n.AddHost()
		bad := hostileRecords(t, n, evil, id)
		n.Host(evil).SetStreamHandler(protocol.SyncProtocol, serveHostileSync(bad, n.Seed()))
		n.Connect(0, evil)
		for i := 0; i < 6 && n.Host(0).Network().Connectedness(n.ID(evil)) == network.Connected; i++ {
			_, _ = n.Node(0).Sync(ctx, n.ID(evil).String())
		}
		if n.Host(0).Network().Connectedness(n.ID(evil)) == network.Connected {
			t.Fatal("still connected to a peer that served invalid records in 6 sessions")
		}
		if _, err := n.Node(0).Sync(ctx, n.ID(evil).String()); err == nil {
			t.Fatal("a sync with a banned peer ran")
		}
	})
}
