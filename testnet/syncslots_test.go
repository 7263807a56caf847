package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/protocol"
)

// One peer opening many sync sessions and holding them cannot take every
// slot a node serves: an honest peer's sync with that node still runs, and
// the node disconnects the peer that keeps asking for more than its share.
func TestSyncSlotsPerPeer(t *testing.T) {
	Run(t, Options{Nodes: 2, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.Connect(0, 1)
		id := found(t, n, 0, []int{0}, 1)
		if err := n.Node(1).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		n.WaitConverged(id, 0, 1)

		evil := n.AddHost()
		n.Connect(evil, 0)
		var held []network.Stream
		for range 40 {
			s, err := n.Host(evil).NewStream(ctx, n.ID(0), protocol.SyncProtocol)
			if err != nil {
				t.Fatalf("hostile stream: %v", err)
			}
			if _, err := s.Write([]byte{0x05}); err != nil { // the start of a frame, never finished
				t.Fatalf("hostile write: %v", err)
			}
			held = append(held, s)
		}
		time.Sleep(time.Second) // the node takes them all up
		contribute(t, n, 0, id, "while the slots are held")
		s := syncOnce(t, n, 1, 0)
		t.Logf("honest sync while a peer holds %d sessions: %+v", len(held), s)
		if c := n.Host(0).Network().Connectedness(n.ID(evil)); c == network.Connected {
			t.Errorf("the node is still connected to the peer that asked for %d sessions at once", len(held))
		}
		for _, s := range held {
			_ = s.Reset()
		}
	})
}
