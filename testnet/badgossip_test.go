package testnet

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commons-p2p/commons/protocol"
)

// Bad input through gossip, one message each from a new peer on the
// commons' topic: every malformed record vector, and messages wrong in
// each way listed. The node's validator judges each one (rejected, or
// ignored for a record that may be valid later), stores none, and
// keeps its records.
func TestGossipBadInputs(t *testing.T) {
	logs := newLogCounter()
	Run(t, Options{Nodes: 1, ExchangeInterval: time.Hour, Logger: slog.New(logs)}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, []int{0}, 1)
		type badMessage struct {
			name string
			data []byte
		}
		evil0 := n.AddHost()
		other := hostileRecords(t, n, evil0, id)
		cases := []badMessage{
			{"empty message", []byte{}},
			{"a record with a bad signature", other[0]},
			{"random bytes", other[1]},
			{"a record of another commons", other[2]},
			{"over the record size limit", make([]byte, protocol.MaxRecordSize+1)},
			{"a record dated an hour ahead", futureRecord(t, n, evil0, id, time.Hour)},
		}
		for _, v := range malformedVectors(t) {
			cases = append(cases, badMessage{"record: " + v.name, v.raw})
		}
		before := n.MustCommons(0, id).Records
		rejected := func() int { return logs.count("gossip record rejected") }
		ignored := func() int { return logs.count("gossip record delayed") }
		for _, tc := range cases {
			evil := n.AddHost()
			topic := joinTopic(t, n, evil, id)
			n.Connect(evil, 0)
			n.WaitFor(tc.name+": the node in the peer's topic", func() bool { return slices.Contains(topic.ListPeers(), n.ID(0)) })
			n.Settle(2 * time.Second) // a heartbeat: the node in the peer's mesh
			wasR, wasI := rejected(), ignored()
			if err := topic.Publish(t.Context(), tc.data); err != nil {
				t.Fatalf("%s: publish: %v", tc.name, err)
			}
			n.WaitFor(tc.name+": the node judges the message", func() bool { return rejected() > wasR || ignored() > wasI })
			// A record of a type this version does not know, or dated
			// ahead, may be valid later: ignored, its sender not punished.
			later := strings.Contains(tc.name, "unknown type") || strings.Contains(tc.name, "ahead")
			r, i := rejected()-wasR, ignored()-wasI
			if later && (r != 0 || i != 1) {
				t.Errorf("%s: %d rejected, %d ignored; want it ignored", tc.name, r, i)
			} else if !later && (r != 1 || i != 0) {
				t.Errorf("%s: %d rejected, %d ignored; want it rejected", tc.name, r, i)
			}
			if has, err := n.Store(0).HasRecord(t.Context(), protocol.RecordCID(tc.data)); err != nil || has {
				t.Errorf("%s: the node stored it (%v)", tc.name, err)
			}
			_ = topic.Close()
		}
		if got := n.MustCommons(0, id).Records; got != before {
			t.Errorf("the node holds %d records after the bad messages; want %d", got, before)
		}
		t.Logf("%d bad messages: %d rejected, %d ignored for now", len(cases), logs.count("gossip record rejected"), logs.count("gossip record delayed"))
	})
}

// futureRecord is a contribution to commons signed by host evil, dated
// ahead of now.
func futureRecord(t *testing.T, n *Net, evil int, commons string, ahead time.Duration) []byte {
	t.Helper()
	key, err := protocol.PrivateKeyFromLibp2p(n.Key(evil))
	if err != nil {
		t.Fatal(err)
	}
	rec := &protocol.Record{Commons: mustCID(t, commons), Time: protocol.HLCFromMillis(time.Now().Add(ahead).UnixMilli(), 0), Body: &protocol.Contribution{
		Title: "from the future", Kind: "code", Licence: protocol.Link{Cid: mustCID(t, commons)}, Provenance: protocol.ProvenanceVolunteer,
	}}
	if err := protocol.Sign(rec, key); err != nil {
		t.Fatal(err)
	}
	raw, _, err := protocol.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
