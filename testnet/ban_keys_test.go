package testnet

import (
	"context"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// The association bans a key that flooded the commons: on every node, the
// key's contributions stop counting (an accepted one goes back to
// pending), the nodes converge on one state, and lifting the ban gives the
// contribution its status back everywhere.
func TestBanReachesEveryNode(t *testing.T) {
	Run(t, Options{Nodes: 4}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll()
		id := found(t, n, 0, []int{0}, 1)
		n.JoinAll(id)
		n.WaitConverged(id)
		junk := contribute(t, n, 3, id, "junk")
		n.WaitStatus(junk, "pending")
		review(t, n, 0, junk, "accept")
		n.WaitStatus(junk, "accepted")

		flooder, err := protocol.PublicKeyFromPeerID(n.ID(3))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Ban: []protocol.PublicKey{flooder}}); err != nil {
			t.Fatal(err)
		}
		n.WaitStatus(junk, "pending")
		st := converged(t, n, id)
		for i := range 4 {
			info, err := n.Node(i).Show(ctx, junk)
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

		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Unban: []protocol.PublicKey{flooder}}); err != nil {
			t.Fatal(err)
		}
		n.WaitStatus(junk, "accepted")
		converged(t, n, id)
	})
}
