package crdt_test

import (
	"bytes"
	"fmt"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/protocol"
)

func exampleKey(b byte) protocol.PrivateKey {
	return protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{b}, 32))
}

// sign signs and encodes a record, panicking on error (examples only).
func sign(r *protocol.Record, k protocol.PrivateKey) *protocol.Block {
	if err := protocol.Sign(r, k); err != nil {
		panic(err)
	}
	b, err := protocol.NewBlock(r)
	if err != nil {
		panic(err)
	}
	return b
}

// founding returns a genesis manifest: foundation key 1, maintainers 2 and
// 3, one accept or reject decides.
func founding() *protocol.Block {
	ks := []protocol.PublicKey{exampleKey(2).Public(), exampleKey(3).Public()}
	if ks[0].Compare(ks[1]) > 0 {
		ks[0], ks[1] = ks[1], ks[0]
	}
	return sign(&protocol.Record{Time: protocol.HLCFromMillis(1_700_000_000_000, 0), Body: &protocol.Manifest{
		Name: "Example commons", Licence: "CC-BY-SA-4.0",
		Association: []protocol.PublicKey{exampleKey(1).Public()}, Threshold: 1,
		Maintainers: ks, Quorum: 1, RejectQuorum: 1,
	}}, exampleKey(1))
}

func contribute(g *protocol.Block, title string) *protocol.Block {
	return sign(&protocol.Record{Commons: g.CID, Time: g.Record.Time + 1, Body: &protocol.Contribution{
		Title: title, Licence: protocol.Link{Cid: g.CID}, Provenance: protocol.ProvenanceVolunteer,
	}}, exampleKey(9))
}

func decide(g, c *protocol.Block, by byte, decision string) *protocol.Block {
	return sign(&protocol.Record{Commons: g.CID, Time: c.Record.Time + 1, Body: &protocol.Review{
		Target: protocol.Link{Cid: c.CID}, Decision: decision, Under: protocol.Link{Cid: g.CID},
	}}, exampleKey(by))
}

// must panics on error (examples only).
func must(_ []crdt.Change, err error) {
	if err != nil {
		panic(err)
	}
}

func ExampleState_Add() {
	g := founding()
	s := crdt.New(g.CID)
	c := contribute(g, "Translate the README")
	for _, b := range []*protocol.Block{g, c, decide(g, c, 2, protocol.DecisionAccept)} {
		changes, err := s.Add(b)
		if err != nil {
			panic(err)
		}
		for _, ch := range changes {
			fmt.Printf("%q -> %q\n", ch.From, ch.To)
		}
	}
	fmt.Println(s.Counts())
	// Output:
	// "" -> "pending"
	// "pending" -> "accepted"
	// 0 1 0
}

// Records may arrive in any order: a review before its contribution waits.
func ExampleState_Waiting() {
	g := founding()
	c := contribute(g, "Fix a typo")
	s := crdt.New(g.CID)
	must(s.AddBatch([]*protocol.Block{decide(g, c, 3, protocol.DecisionReject), g}))
	fmt.Println("waiting:", s.Waiting())
	must(s.Add(c))
	st, _ := s.Status(c.CID)
	fmt.Println("waiting:", s.Waiting(), "status:", st)
	// Output:
	// waiting: 1
	// waiting: 0 status: rejected
}

// A review by a key that is no maintainer stays in the set, inert.
func ExampleState_Inert() {
	g := founding()
	c := contribute(g, "Add a logo")
	s := crdt.New(g.CID)
	must(s.AddBatch([]*protocol.Block{g, c, decide(g, c, 9, protocol.DecisionAccept)}))
	inert, err := s.Inert()
	if err != nil {
		panic(err)
	}
	for _, r := range inert {
		fmt.Println(r.Type, "-", r.Reason)
	}
	// Output:
	// review - author: not a maintainer under that manifest
}

func ExampleMerge() {
	g := founding()
	c := contribute(g, "Write the guide")
	a, b := crdt.New(g.CID), crdt.New(g.CID)
	must(a.AddBatch([]*protocol.Block{g, c}))
	must(b.AddBatch([]*protocol.Block{g, decide(g, c, 2, protocol.DecisionAccept)}))
	m, err := crdt.Merge(a, b)
	if err != nil {
		panic(err)
	}
	m2, err := crdt.Merge(b, a)
	if err != nil {
		panic(err)
	}
	st, _ := m.Status(c.CID)
	fmt.Println(a.Len(), b.Len(), m.Len(), st, m.Root() == m2.Root())
	// Output:
	// 2 2 3 accepted true
}

func ExampleState_Head() {
	g := founding()
	s := crdt.New(g.CID)
	h, m := s.Head()
	fmt.Println(h.Defined(), m == nil)
	must(s.Add(g))
	h, m = s.Head()
	fmt.Println(h == g.CID, m.Name)
	// Output:
	// false true
	// true Example commons
}

// A node asks before it publishes: an update signed by a key the
// association has revoked would be inert, whatever version it claims.
func ExampleState_Classify() {
	g := founding()
	revoke := &protocol.Manifest{
		Name: "Example commons", Licence: "CC-BY-SA-4.0",
		Association: []protocol.PublicKey{exampleKey(1).Public()}, Threshold: 1,
		Revoked: []protocol.PublicKey{exampleKey(2).Public()},
		Prev:    []protocol.Link{{Cid: g.CID}}, Version: 1,
	}
	r := sign(&protocol.Record{Commons: g.CID, Time: g.Record.Time + 1, Body: revoke}, exampleKey(1))
	s := crdt.New(g.CID)
	must(s.AddBatch([]*protocol.Block{g, r}))
	c := contribute(g, "Plant the seeds")
	must(s.Add(c))
	v, _ := s.Classify(decide(g, c, 2, protocol.DecisionAccept))
	fmt.Println(v.Class, "-", v.Reason)
	v, _ = s.Classify(decide(g, c, 3, protocol.DecisionAccept))
	fmt.Println(v.Class)
	// Output:
	// inert - author: key is revoked
	// effective
}
