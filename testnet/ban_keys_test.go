package testnet

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// The association bans a key that flooded the commons: on every node, the
// key's contributions stop counting (an accepted one goes back to
// pending) and the nodes converge on one state; the flooder's later
// records are neither taken nor forwarded by gossip; lifting the ban gives
// the contribution its status back everywhere.
func TestBanReachesEveryNode(t *testing.T) {
	Run(t, Options{Nodes: 3}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll()
		id := found(t, n, 0, []int{0}, 1)
		n.JoinAll(id)
		n.WaitConverged(id)
		evil := n.AddHost()
		key, err := protocol.PrivateKeyFromLibp2p(n.Key(evil))
		if err != nil {
			t.Fatal(err)
		}
		flooder := key.Public()
		junk := func(title string) *protocol.Block {
			r := &protocol.Record{Commons: mustCID(t, id), Time: protocol.HLCFromMillis(time.Now().UnixMilli(), 0), Body: &protocol.Contribution{
				Title: title, Licence: protocol.Link{Cid: mustCID(t, id)}, Provenance: protocol.ProvenanceVolunteer}}
			if err := protocol.Sign(r, key); err != nil {
				t.Fatal(err)
			}
			b, err := protocol.NewBlock(r)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		first := junk("junk")
		deliver(t, n, 1, [][]byte{first.Raw})
		c := first.CID.String()
		n.WaitStatus(c, "pending")
		review(t, n, 0, c, "accept")
		n.WaitStatus(c, "accepted")

		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Ban: []protocol.PublicKey{flooder}}); err != nil {
			t.Fatal(err)
		}
		n.WaitStatus(c, "pending")
		st := converged(t, n, id)
		for i := range 3 {
			info, err := n.Node(i).Show(ctx, c)
			if err != nil || info.Inert != "author: key is banned" {
				t.Fatalf("node %d: the banned key's contribution: inert %q, %v", i, info.Inert, err)
			}
			m, err := n.Node(i).Manifest(ctx, id)
			if err != nil || len(m.Banned) != 1 || m.Banned[0] != flooder {
				t.Fatalf("node %d: banned %v, %v; want the flooder", i, m.Banned, err)
			}
		}
		if st.Accepted != 0 {
			t.Errorf("converged with %d accepted, want 0 once the ban holds", st.Accepted)
		}

		// The flooder goes on, by gossip: held back, not stored.
		topic := joinTopic(t, n, evil, id)
		n.Connect(evil, 0)
		n.WaitFor("node 0 in the flooder's topic", func() bool { return slices.Contains(topic.ListPeers(), n.ID(0)) })
		n.Settle(2 * time.Second) // a heartbeat: node 0 in the flooder's mesh
		more := junk("more junk")
		if err := topic.Publish(ctx, more.Raw); err != nil {
			t.Fatal(err)
		}
		n.WaitFor("the banned key's gossip held back", func() bool { return metric(t, n, 0, "commons_gossip_banned_total") > 0 })
		n.Settle(10 * time.Second)
		if has, err := n.Store(0).HasRecord(ctx, more.CID); err != nil || has {
			t.Errorf("node 0 took the banned key's gossip (%v)", err)
		}

		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Unban: []protocol.PublicKey{flooder}}); err != nil {
			t.Fatal(err)
		}
		n.WaitStatus(c, "accepted")
		converged(t, n, id)
	})
}
