package testnet

import (
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/commons-p2p/commons/protocol"
)

// A hostile pair of hosts sends valid records of commons B on commons A's
// topic to a node V that replicates both (V refuses them there: another
// commons), and publishes the same records on B through an honest node H.
// Gossipsub remembers message IDs across topics and scores a duplicate of a
// refused message as an invalid delivery by whoever forwards it: were the
// ID the record's CID alone, H would be graylisted by V for forwarding
// them, and H's honest work would stop reaching V by gossip. The ID holds
// the topic, so H's records still arrive, whether or not the bait was sent
// (the control).
func TestWrongTopicBaitDoesNotPoisonHonestPeers(t *testing.T) {
	for _, bait := range []bool{false, true} {
		t.Run(fmt.Sprint("bait=", bait), func(t *testing.T) {
			Run(t, Options{Nodes: 2, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
				ctx := t.Context()
				const V, H = 0, 1
				n.ConnectAll()
				a := found(t, n, V, nil, 0)
				b := found(t, n, H, nil, 0)
				n.JoinAll(a, V)
				n.JoinAll(b, V, H)
				n.WaitConverged(b)
				n.WaitTopicPeers(b, 1)

				topic := func(h int, c string) *pubsub.Topic {
					ps, err := pubsub.NewGossipSub(ctx, n.Host(h), pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
						pubsub.WithMessageIdFn(func(m *pb.Message) string { return protocol.MessageID(m.GetTopic(), m.Data) }))
					if err != nil {
						t.Fatal(err)
					}
					tp, err := ps.Join(protocol.Topic(mustCID(t, c)))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := tp.Subscribe(); err != nil {
						t.Fatal(err)
					}
					return tp
				}
				onA, onB := n.AddHost(), n.AddHost()
				ta, tb := topic(onA, a), topic(onB, b)
				n.Connect(onA, V)
				n.Connect(onB, H)
				n.WaitFor("the hosts see V on A and H on B", func() bool { return len(ta.ListPeers()) == 1 && len(tb.ListPeers()) == 1 })

				for k := range 6 {
					raw := sealRecord(t, n, onA, &protocol.Record{Commons: mustCID(t, b), Body: &protocol.Contribution{
						Title: fmt.Sprint("bait ", k), Licence: protocol.Link{Cid: mustCID(t, b)}, Provenance: protocol.ProvenanceVolunteer,
					}})
					if bait {
						if err := ta.Publish(ctx, raw); err != nil {
							t.Fatal(err)
						}
						n.Settle(50 * time.Millisecond)
					}
					if err := tb.Publish(ctx, raw); err != nil {
						t.Fatal(err)
					}
					n.Settle(200 * time.Millisecond)
				}
				n.Settle(2 * time.Second)
				x := contribute(t, n, H, b, "honest work")
				n.Settle(30 * time.Second)
				if got := n.Status(V, x); got == "absent" {
					t.Errorf("H's honest contribution did not reach V by gossip within 30 s")
				}
			})
		})
	}
}
