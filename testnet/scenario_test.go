package testnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// A contribution made on one node of a ring of 8 reaches all 8 by gossip,
// forwarded hop by hop, in well under one exchange interval.
func TestContributionReachesAll(t *testing.T) {
	Run(t, Options{Nodes: 8, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, func(t *testing.T, n *Net) {
		n.ConnectRing()
		id := found(t, n, 0, nil, 0)
		n.JoinAll(id)
		n.WaitConverged(id) // the genesis spreads by sync
		n.WaitTopicPeers(id, 2)
		time.Sleep(2 * time.Second) // gossipsub's heartbeats graft the meshes

		start := time.Now()
		c := contribute(t, n, 5, id, "hello, ring")
		n.WaitStatus(c, "pending")
		elapsed := time.Since(start)
		t.Logf("contribution reached all 8 nodes in %v (virtual)", elapsed)
		if elapsed > 5*time.Second {
			t.Errorf("took %v: gossip should deliver within seconds, not wait for the periodic exchange", elapsed)
		}
		st := converged(t, n, id)
		if st.Records != 2 || st.Pending != 1 {
			t.Errorf("converged on %d records, %d pending; want 2 and 1", st.Records, st.Pending)
		}
	})
}

// With 3 maintainers and quorum 2, one accept leaves a contribution pending
// everywhere and the second accepts it everywhere, with one state root.
func TestAcceptanceByQuorum(t *testing.T) {
	Run(t, Options{Nodes: 5}, func(t *testing.T, n *Net) {
		n.ConnectAll()
		id := found(t, n, 0, []int{1, 2, 3}, 2)
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 4)

		x := contribute(t, n, 4, id, "feature X")
		n.WaitStatus(x, "pending")

		review(t, n, 1, x, protocol.DecisionAccept)
		n.WaitRecords(id, 3)
		n.WaitConverged(id)
		if info := sameEverywhere(t, n, x); info.Status != "pending" || countingReviews(info) != 1 {
			t.Fatalf("after one accept: %s with %d counting reviews; want pending with 1", info.Status, countingReviews(info))
		}

		review(t, n, 2, x, protocol.DecisionAccept)
		n.WaitStatus(x, "accepted")
		st := converged(t, n, id)
		if info := sameEverywhere(t, n, x); countingReviews(info) != 2 {
			t.Errorf("after two accepts: %d counting reviews, want 2", countingReviews(info))
		}
		if st.Accepted != 1 || st.Pending != 0 || st.Records != 4 {
			t.Errorf("status %+v; want 4 records, 1 accepted, 0 pending", st)
		}
	})
}

// A manifest update that replaces maintainer 1 by maintainer 3: reviews
// count only toward the version they name. Maintainer 1's accepts under v0
// of work made under v0 still count toward v0; its review naming v1 is
// inert, and its node refuses to review work made under v1; maintainer 3's
// review under v1 counts.
func TestMaintainerChange(t *testing.T) {
	Run(t, Options{Nodes: 5, ExchangeInterval: 10 * time.Second}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll()
		id := found(t, n, 0, []int{1, 2}, 2)
		v0 := id
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 4)

		x := contribute(t, n, 4, id, "X")
		y := contribute(t, n, 4, id, "Y")
		n.WaitStatus(y, "pending")
		review(t, n, 1, x, protocol.DecisionAccept) // under v0
		review(t, n, 1, y, protocol.DecisionAccept) // under v0
		n.WaitRecords(id, 5)
		n.WaitConverged(id)

		// Maintainer 2 is cut off and misses the update: its head stays v0.
		n.Partition([]int{2})
		pub, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Maintainers: keys(n, []int{2, 3}), Quorum: ptr[uint64](2)})
		v1 := pub.CID
		if err != nil {
			t.Fatalf("update manifest: %v", err)
		}
		n.WaitFor("v1 is the head of nodes 0,1,3,4", func() bool {
			for _, i := range []int{0, 1, 3, 4} {
				if c, ok := n.Commons(i, id); !ok || c.ManifestHead != v1 {
					return false
				}
			}
			return true
		})
		// Removal is not retroactive: maintainer 1 may still review X,
		// made under v0, and its node names v0. It binds new work: Z,
		// made under v1, is refused.
		r1x := review(t, n, 1, x, protocol.DecisionAccept)
		if u := show(t, n, 1, r1x).Review.Under.String(); u != v0 {
			t.Fatalf("removed maintainer reviewed X under %s, want v0 %s", u, v0)
		}
		z := contribute(t, n, 4, id, "Z")
		n.WaitFor("node 1 has Z", func() bool { return n.Status(1, z) == "pending" })
		if _, err := n.Node(1).Review(ctx, api.ReviewParams{Target: z, Decision: protocol.DecisionAccept}); !errors.Is(err, api.ErrForbidden) {
			t.Fatalf("review of new work by a removed maintainer: err %v, want ErrForbidden", err)
		}
		// Maintainer 2 accepts Y under v0, the version it still sees.
		r2y := review(t, n, 2, y, protocol.DecisionAccept)
		if u := show(t, n, 2, r2y).Review.Under.String(); u != v0 {
			t.Fatalf("partitioned maintainer reviewed under %s, want v0 %s", u, v0)
		}
		n.Heal()
		n.WaitConverged(id)
		// Y: maintainer 1's earlier accept and maintainer 2's, both naming
		// v0, reach v0's quorum, though v1 no longer lists maintainer 1.
		n.WaitStatus(y, "accepted")
		sameEverywhere(t, n, y)

		// X: maintainer 1 signs an accept naming v1 (its node refuses, so
		// the record is made by hand); it is stored and spread but inert.
		forged := forgeReview(t, n, 1, id, x, v1, protocol.DecisionAccept)
		if rep, err := sim.Deliver(ctx, n.Node(1), forged); err != nil || rep.Imported != 1 {
			t.Fatalf("import forged review: %+v, %v", rep, err)
		}
		review(t, n, 2, x, protocol.DecisionAccept) // under v1
		n.WaitRecords(id, 11)
		n.WaitConverged(id)
		info := sameEverywhere(t, n, x)
		if info.Status != "pending" {
			t.Fatalf("X is %s with maintainer 1 (removed) and 2 accepting under v1; want pending", info.Status)
		}
		for _, r := range info.Reviews {
			if r.CID == protocol.RecordCID(forged).String() && (r.Counts || r.Inert == "") {
				t.Errorf("forged review by a removed maintainer: counts %v, inert %q; want inert", r.Counts, r.Inert)
			}
		}
		// The new maintainer's accept under v1 makes the quorum of v1.
		review(t, n, 3, x, protocol.DecisionAccept)
		n.WaitStatus(x, "accepted")
		st := converged(t, n, id)
		if st.Accepted != 2 || st.Records != 12 || st.ManifestHead != v1 {
			t.Errorf("status %+v; want 12 records, 2 accepted, head v1", st)
		}
	})
}

// Records built on one isolated node and delivered to others one at a
// time in reverse (reviews before their contributions, an update before its
// predecessor) and in a seeded random order give the same view and root.
// The genesis comes first: it is the commons' identity and sets the proof
// of work its records must carry (SPEC §7.4), so a record that comes before
// it is delayed, not stored, and is taken once the genesis is here.
func TestOutOfOrderDelivery(t *testing.T) {
	Run(t, Options{Nodes: 3}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, []int{0}, 1)
		c1 := contribute(t, n, 0, id, "one")
		review(t, n, 0, c1, protocol.DecisionAccept)
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Maintainers: keys(n, []int{0, 1}), Quorum: ptr[uint64](1)}); err != nil {
			t.Fatal(err)
		}
		c2 := contribute(t, n, 0, id, "two")
		review(t, n, 0, c2, protocol.DecisionReject)
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("renamed")}); err != nil {
			t.Fatal(err)
		}
		c3 := contribute(t, n, 0, id, "three")
		raws, err := sim.Records(ctx, n.Node(0), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(raws) != 8 {
			t.Fatalf("node 0 holds %d records, want 8", len(raws))
		}
		want := n.MustCommons(0, id)
		gi := slices.IndexFunc(raws, func(raw []byte) bool { return protocol.RecordCID(raw).String() == id })
		if gi < 0 {
			t.Fatal("no genesis among the records")
		}
		genesis := raws[gi]
		rest := slices.Delete(slices.Clone(raws), gi, gi+1)

		// Before the genesis: delayed, not stored.
		rep, err := sim.Deliver(ctx, n.Node(1), rest[len(rest)-1])
		if err != nil || rep.Imported != 0 || rep.RejectedTotal != 1 || !strings.Contains(rep.Rejected[0].Reason, "genesis") {
			t.Fatalf("a record before its genesis: %+v, %v; want it delayed, naming the genesis", rep, err)
		}

		reversed := slices.Clone(rest)
		slices.Reverse(reversed)
		shuffled := slices.Clone(rest)
		rng := rand.New(rand.NewPCG(n.Seed(), 4))
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })

		for i, order := range [][][]byte{1: reversed, 2: shuffled} {
			if order == nil {
				continue
			}
			order = append([][]byte{genesis}, order...)
			for k, raw := range order {
				rep, err := sim.Deliver(ctx, n.Node(i), raw)
				if err != nil || rep.Imported != 1 {
					t.Fatalf("node %d: deliver record %d: %+v, %v", i, k, rep, err)
				}
				if i == 1 && k == len(order)-2 {
					// In reverse, the first contribution comes last: its
					// review waits for it.
					if st := n.MustCommons(i, id); st.Waiting == 0 {
						t.Errorf("before the first contribution arrives: nothing waits; want its review to")
					}
				}
			}
			got := n.MustCommons(i, id)
			if got.StateRoot != want.StateRoot || got.Records != want.Records || got.ManifestHead != want.ManifestHead ||
				got.Waiting != 0 || got.Accepted != want.Accepted || got.Rejected != want.Rejected {
				t.Errorf("node %d after out-of-order delivery: %+v\nwant %+v", i, got, want)
			}
		}
		for _, c := range []string{c1, c2, c3} {
			if s0, s1 := n.Status(0, c), n.Status(1, c); s0 != s1 {
				t.Errorf("%s: node 0 says %s, node 1 says %s", c, s0, s1)
			}
		}
		// Once connected, nothing moves.
		n.ConnectAll()
		n.Settle(time.Minute)
		if st := converged(t, n, id); st.StateRoot != want.StateRoot {
			t.Errorf("root changed after connecting: %s, want %s", st.StateRoot, want.StateRoot)
		}
	})
}

// A node that joins after 50 records exist gets all of them from the
// exchange it runs on connecting (gossip only carries new records, and the
// periodic exchange is set far beyond the test's reach).
func TestLateJoiner(t *testing.T) {
	Run(t, Options{Nodes: 4, ExchangeInterval: time.Hour, Timeout: 5 * time.Minute}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll(0, 1, 2)
		id := found(t, n, 0, []int{0, 1}, 1)
		// Nodes 1 and 2 join while connected: the exchange on join brings
		// the genesis from node 0.
		n.JoinAll(id, 1, 2)
		n.WaitConverged(id, 0, 1, 2)
		n.WaitTopicPeers(id, 2, 0, 1, 2)
		var cons []string
		for k := 0; len(cons)+1 < 35; k++ {
			cons = append(cons, contribute(t, n, k%3, id, fmt.Sprintf("c%d", k)))
		}
		n.WaitRecords(id, 35, 0, 1, 2)
		for k := 0; k < 15; k++ {
			review(t, n, k%2, cons[k], []string{protocol.DecisionAccept, protocol.DecisionReject}[k%3%2])
		}
		n.WaitRecords(id, 50, 0, 1, 2)
		n.WaitConverged(id, 0, 1, 2)
		want := n.MustCommons(0, id)
		if want.Records != 50 {
			t.Fatalf("%d records, want 50", want.Records)
		}

		if err := n.Node(3).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n.Connect(3, 1)
		n.WaitConverged(id)
		t.Logf("late joiner caught up on 50 records in %v (virtual)", time.Since(start))
		if got := n.MustCommons(3, id); got.StateRoot != want.StateRoot || got.Records != 50 {
			t.Errorf("late joiner: %+v, want root %s", got, want.StateRoot)
		}
	})
}

// A node closed and started again on the same store loses nothing, shows
// the same root at once, and catches up on what it missed while down.
func TestRestart(t *testing.T) {
	Run(t, Options{Nodes: 4}, func(t *testing.T, n *Net) {
		n.ConnectAll()
		id := found(t, n, 0, []int{0, 1}, 1)
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 3)
		for k := range 6 {
			c := contribute(t, n, k%4, id, fmt.Sprintf("before %d", k))
			if k%2 == 0 {
				n.WaitStatus(c, "pending", 0)
				review(t, n, 0, c, protocol.DecisionAccept)
			}
		}
		n.WaitRecords(id, 10)
		before := converged(t, n, id)

		n.Stop(3)
		for k := range 5 {
			c := contribute(t, n, k%3, id, fmt.Sprintf("while down %d", k))
			n.WaitStatus(c, "pending", 1)
			review(t, n, 1, c, protocol.DecisionReject)
		}
		n.WaitRecords(id, 20, 0, 1, 2)
		n.Start(3)
		if got := n.MustCommons(3, id); got.StateRoot != before.StateRoot || got.Records != before.Records || got.Accepted != before.Accepted {
			t.Fatalf("after restart, before reconnecting: %+v\nwant %+v", got, before)
		}
		n.Connect(3, 0)
		n.WaitConverged(id)
		if got := n.MustCommons(3, id); got.Records != 20 {
			t.Fatalf("after catching up: %d records, want 20", got.Records)
		}

		// The restarted node publishes again, and Restart redials its links.
		n.WaitTopicPeers(id, 1, 3)
		c := contribute(t, n, 3, id, "after restart")
		n.WaitStatus(c, "pending")
		n.Restart(2)
		review(t, n, 0, c, protocol.DecisionAccept)
		n.WaitStatus(c, "accepted")
		if st := converged(t, n, id); st.Records != 22 {
			t.Errorf("%d records, want 22", st.Records)
		}
	})
}

// Two halves of a partition go on working apart (contributions, reviews,
// a manifest update on one side); once healed, both converge on the union.
func TestPartitionHeal(t *testing.T) {
	Run(t, Options{Nodes: 6, Jitter: 3 * time.Millisecond}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll()
		id := found(t, n, 0, []int{0, 3}, 1)
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 5)

		n.Partition([]int{0, 1, 2}, []int{3, 4, 5})
		a := contribute(t, n, 1, id, "left")
		b := contribute(t, n, 4, id, "right")
		n.WaitStatus(a, "pending", 0, 1, 2)
		n.WaitStatus(b, "pending", 3, 4, 5)
		review(t, n, 0, a, protocol.DecisionAccept)
		review(t, n, 3, b, protocol.DecisionReject)
		pub, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("left renamed it")})
		v1 := pub.CID
		if err != nil {
			t.Fatal(err)
		}
		n.WaitConverged(id, 0, 1, 2)
		n.WaitConverged(id, 3, 4, 5)
		if l, r := n.MustCommons(0, id), n.MustCommons(3, id); l.StateRoot == r.StateRoot || l.Records != 4 || r.Records != 3 {
			t.Fatalf("partition leaked: left %+v, right %+v", l, r)
		}
		if s := n.Status(3, a); s != "absent" {
			t.Fatalf("right side sees left's contribution: %s", s)
		}

		n.Heal()
		st := converged(t, n, id)
		n.WaitStatus(a, "accepted")
		n.WaitStatus(b, "rejected")
		if st.Records != 6 || st.ManifestHead != v1 {
			t.Errorf("after healing: %+v; want 6 records, head %s", st, v1)
		}
	})
}
