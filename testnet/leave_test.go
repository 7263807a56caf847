package testnet

import (
	"context"
	"testing"
	"time"
)

// A node that leaves a commons stops receiving it: a contribution made
// after it left is neither gossiped to it nor synced. Joining again (its
// gossip topic again) brings what it missed; after a purge, joining again
// fetches the whole commons back.
func TestLeaveThenJoinAgain(t *testing.T) {
	Run(t, Options{Nodes: 2, ExchangeInterval: 30 * time.Second}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.Connect(0, 1)
		id := found(t, n, 0, []int{0}, 1)
		if err := n.Node(1).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		contribute(t, n, 0, id, "before")
		n.WaitConverged(id, 0, 1)

		r, err := n.Node(1).Leave(ctx, id, false)
		if err != nil || r.Records != 2 || r.Purged {
			t.Fatalf("Leave = %+v, %v", r, err)
		}
		missed := contribute(t, n, 0, id, "while away")
		time.Sleep(2 * time.Minute) // gossip, and several sync intervals
		if ok, err := n.Store(1).HasRecord(ctx, mustCID(t, missed)); ok || err != nil {
			t.Fatalf("a node that left the commons stored a record of it: %v, %v", ok, err)
		}

		if err := n.Node(1).Join(ctx, id); err != nil {
			t.Fatalf("join again: %v", err)
		}
		n.WaitConverged(id, 0, 1)
		show(t, n, 1, missed)

		if r, err := n.Node(1).Leave(ctx, id, true); err != nil || r.Records != 3 || !r.Purged {
			t.Fatalf("Leave --purge = %+v, %v", r, err)
		}
		if err := n.Node(1).Join(ctx, id); err != nil {
			t.Fatalf("join after a purge: %v", err)
		}
		n.WaitConverged(id, 0, 1)
		show(t, n, 1, missed)
	})
}
