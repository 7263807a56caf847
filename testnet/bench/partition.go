package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Partition splits the nodes into two halves that both write, heals the
// partition and measures how long until every node shows the same state
// root, and whether any record is missing.
var Partition = &SimScenario{
	name:    "partition",
	records: 200,
	nodes:   10,
	jitter:  20 * time.Millisecond,
	timeout: 30 * time.Minute,
	run:     partition,
}

// partition splits the nodes into halves, writes o.Records records (half
// on each side), heals, and times the wait for one state root everywhere.
func partition(t sim.T, n *sim.Net, o Options, res *Result, label string) {
	ctx := context.Background()
	nodes := n.Nodes()
	id := foundCommons(t, n, 0)
	n.ConnectEdges(sim.RandomEdges(len(nodes), 4, o.Seed))
	n.WaitConverged(id)
	n.WaitTopicPeers(id, 1)
	half := len(nodes) / 2
	left, right := nodes[:half], nodes[half:]
	n.Partition(left, right)
	rng := rand.New(rand.NewPCG(o.Seed, 0x9a7))
	perSide := o.Records / 2
	for k := range perSide {
		for _, side := range [][]int{left, right} {
			i := side[rng.IntN(len(side))]
			if _, err := n.Node(i).Contribute(ctx, api.ContributeParams{Commons: id, Title: fmt.Sprintf("side write %d", k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.WaitRecords(id, 1+perSide, left...)
	n.WaitRecords(id, 1+perSide, right...)
	rootsApart := n.MustCommons(left[0], id).StateRoot != n.MustCommons(right[0], id).StateRoot
	start := time.Now()
	n.Heal()
	want := 1 + 2*perSide
	err := n.Poll(func() bool {
		ok, _ := n.Converged(id)
		return ok && n.MustCommons(nodes[0], id).Records == want
	})
	took := time.Since(start)
	missing := 0
	roots := map[string]bool{}
	for _, i := range nodes {
		st := n.MustCommons(i, id)
		missing = max(missing, want-st.Records)
		roots[st.StateRoot] = true
	}
	res.add("heal to same root ("+label+")", took.Seconds(), "s")
	res.add("records per side", float64(perSide), "")
	res.add("records missing on some node", float64(missing), "")
	res.add("distinct state roots after heal", float64(len(roots)), "")
	if !rootsApart {
		res.note("the two sides had the same root before healing: the partition leaked")
	}
	if err != nil {
		res.note("not converged: %v", err)
	}
	res.note("baseline: none in-run; the goal is every record on every node and one root")
}
