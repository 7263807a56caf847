package testnet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// workBits is what the commons of these tests asks of each record.
const workBits = 12

// foundWithWork founds, on node i, a commons whose genesis asks workBits
// of proof of work, with node i its only maintainer.
func foundWithWork(t *testing.T, n *Net, i int) string {
	t.Helper()
	id, err := n.Node(i).CreateManifest(context.Background(), api.ManifestParams{Name: ptr("costly junk"), Licence: ptr("MIT"),
		Maintainers: keys(n, []int{i}), Quorum: ptr[uint64](1), Work: ptr[uint64](workBits)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// unworked returns count validly signed contributions by host evil to
// commons, each short of the work the commons asks.
func unworked(t *testing.T, n *Net, evil int, commons string, count int) [][]byte {
	t.Helper()
	key, err := protocol.PrivateKeyFromLibp2p(n.Key(evil))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	tm := protocol.HLCFromMillis(time.Now().UnixMilli(), 0)
	for len(out) < count {
		tm++
		rec := &protocol.Record{Commons: mustCID(t, commons), Time: tm, Body: &protocol.Contribution{
			Title: fmt.Sprintf("junk %d", len(out)), Licence: protocol.Link{Cid: mustCID(t, commons)}, Provenance: protocol.ProvenanceVolunteer,
		}}
		if err := protocol.Sign(rec, key); err != nil {
			t.Fatal(err)
		}
		b, err := protocol.NewBlock(rec)
		if err != nil {
			t.Fatal(err)
		}
		if b.Work() < workBits {
			out = append(out, b.Raw)
		}
	}
	return out
}

// A peer that gossips validly signed records short of the work their
// commons asks is refused like a forger: none is stored, and every honest
// node disconnects it. The honest nodes' own records carry the work, and
// a node that joins later syncs them all.
func TestWorkGossipFloodRefused(t *testing.T) {
	Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		honest := []int{0, 1}
		n.Connect(0, 1)
		id := foundWithWork(t, n, 0)
		n.Node(1).Join(ctx, id)
		n.WaitConverged(id, honest...)
		n.WaitTopicPeers(id, 1, honest...)

		evil := n.AddHost()
		topic := joinTopic(t, n, evil, id)
		n.ConnectStar(evil, honest...)
		n.WaitFor("the hostile host sees the honest nodes in the topic", func() bool { return len(topic.ListPeers()) == len(honest) })
		junk := unworked(t, n, evil, id, 50)
		for _, raw := range junk {
			if err := topic.Publish(ctx, raw); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond) // 100 a second: a burst all at once reaches only some peers
		}
		n.WaitFor("every honest node disconnects the host that gossiped records short of work", func() bool {
			for _, i := range honest {
				if n.Host(i).Network().Connectedness(n.ID(evil)) == network.Connected {
					return false
				}
			}
			return true
		})
		for _, i := range honest {
			for _, raw := range junk {
				if _, err := n.Node(i).Show(ctx, protocol.RecordCID(raw).String()); err == nil {
					t.Fatalf("node %d stored a record short of work", i)
				}
			}
		}
		x := contribute(t, n, 1, id, "honest work")
		n.WaitStatus(x, "pending", honest...)
		info, err := n.Node(0).Show(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		if info.CID != x {
			t.Fatalf("show %s: %+v", x, info)
		}
		// A node that joins now syncs the commons, genesis first.
		n.Connect(2, 0)
		n.Node(2).Join(ctx, id)
		n.Node(2).Sync(ctx, n.ID(0).String())
		n.WaitConverged(id, 0, 1, 2)
	})
}

// A peer that serves records short of work by sync is banned like one
// that serves forgeries.
func TestWorkSyncViolatorBanned(t *testing.T) {
	Run(t, Options{Nodes: 1, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := foundWithWork(t, n, 0)
		evil := n.AddHost()
		junk := unworked(t, n, evil, id, 3)
		n.Host(evil).SetStreamHandler(protocol.SyncProtocol, serveHostileSync(junk, n.Seed()))
		n.Connect(0, evil)
		for i := 0; i < 6 && n.Host(0).Network().Connectedness(n.ID(evil)) == network.Connected; i++ {
			_, _ = n.Node(0).Sync(ctx, n.ID(evil).String())
		}
		if n.Host(0).Network().Connectedness(n.ID(evil)) == network.Connected {
			t.Fatal("still connected to a peer that served records short of work in 6 sessions")
		}
		for _, raw := range junk {
			if _, err := n.Node(0).Show(ctx, protocol.RecordCID(raw).String()); err == nil {
				t.Fatal("a record short of work was stored")
			}
		}
		if st := n.MustCommons(0, id); st.Records != 1 {
			t.Fatalf("%d records; want the genesis alone", st.Records)
		}
	})
}
