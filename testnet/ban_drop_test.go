package testnet

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// A node that dropped the bytes of a banned key's records (repo compact
// --disowned) keeps its state root: a sync with a peer that holds them
// carries no record either way, and the records do not come back into its
// store. A fresh node that syncs with it alone gets every other record and
// no error; from a peer that kept them, it gets them too, and converges.
func TestDroppedRecordsSync(t *testing.T) {
	Run(t, Options{Nodes: 4, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll(0, 1, 2)
		id := found(t, n, 0, []int{0}, 1)
		n.JoinAll(id, 0, 1, 2)
		n.WaitConverged(id, 0, 1, 2)
		key, err := protocol.PrivateKeyFromLibp2p(n.Key(n.AddHost()))
		if err != nil {
			t.Fatal(err)
		}
		const junkCount = 30
		var raws [][]byte
		var junk []*protocol.Block
		for i := range junkCount {
			r := &protocol.Record{Commons: mustCID(t, id), Time: protocol.HLCFromMillis(time.Now().UnixMilli(), uint16(i)), Body: &protocol.Contribution{
				Title: fmt.Sprintf("junk %d", i), Licence: protocol.Link{Cid: mustCID(t, id)}, Provenance: protocol.ProvenanceVolunteer}}
			if err := protocol.Sign(r, key); err != nil {
				t.Fatal(err)
			}
			b, err := protocol.NewBlock(r)
			if err != nil {
				t.Fatal(err)
			}
			junk, raws = append(junk, b), append(raws, b.Raw)
		}
		deliver(t, n, 1, raws) // not gossiped: a sync spreads it
		syncOnce(t, n, 0, 1)
		syncOnce(t, n, 2, 1)
		for i := range 5 {
			if _, err := n.Node(2).Contribute(ctx, api.ContributeParams{Commons: id, Title: fmt.Sprintf("honest %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Ban: []protocol.PublicKey{key.Public()}}); err != nil {
			t.Fatal(err)
		}
		n.WaitConverged(id, 0, 1, 2)
		want := n.MustCommons(0, id)
		if want.Records != junkCount+7 {
			t.Fatalf("converged on %d records; want the genesis, the junk, 5 contributions and the ban", want.Records)
		}

		dropped := 0 // only records node 0's saved state reflects are dropped: its next saves bring the rest
		n.WaitFor("node 0 to drop the banned key's records", func() bool {
			k, _, err := n.Node(0).DropDisownedRecords(ctx)
			if err != nil {
				t.Fatal(err)
			}
			dropped += k
			return dropped == junkCount
		})
		if got := n.MustCommons(0, id); got.StateRoot != want.StateRoot || got.Records != want.Records {
			t.Fatalf("node 0 after the drop: %+v; want %+v", got, want)
		}
		gone := func(when string) {
			t.Helper()
			for _, b := range junk {
				if _, err := n.Store(0).GetRecord(ctx, b.CID); !errors.Is(err, store.ErrDropped) {
					t.Fatalf("%s: node 0 holds junk %s: %v; want it dropped", when, b.CID, err)
				}
			}
		}
		gone("after the drop")

		for _, peer := range []int{1, 2} {
			s := syncOnce(t, n, 0, peer)
			if s.Received != 0 || s.Sent != 0 {
				t.Errorf("sync of node 0 with node %d, which holds the junk: %+v; want nothing carried", peer, s)
			}
		}
		gone("after syncs with peers that hold it")

		// A fresh node that reaches node 0 alone.
		n.Connect(3, 0)
		n.JoinAll(id, 3)
		s := syncOnce(t, n, 3, 0)
		n.WaitRecords(id, want.Records-junkCount, 3)
		if got := n.MustCommons(3, id); got.Records != want.Records-junkCount {
			t.Errorf("the fresh node, from node 0 alone: %d records; want %d (%+v)", got.Records, want.Records-junkCount, s)
		}
		if s := syncOnce(t, n, 3, 0); s.Error != "" || s.Received != 0 {
			t.Errorf("the fresh node syncing again with node 0: %+v; want no error and nothing new", s)
		}
		// From a peer that kept them, it has them too.
		n.Connect(3, 1)
		syncOnce(t, n, 3, 1)
		n.WaitConverged(id)
		if got := n.MustCommons(3, id); got.StateRoot != want.StateRoot {
			t.Errorf("the fresh node after a sync with node 1: %+v; want %+v", got, want)
		}
		gone("after the fresh node converged")
	})
}
