package testnet

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Members of the stolen-key tests: 0 is the honest association member
// (H1), 1 a maintainer, 2 a contributor, 3 the node of the attacker who
// stole association key A2 (also a maintainer key), 4 a maintainer the
// association removes, who then tries to decide new work anyway.
const (
	memberH1, memberMaint, memberContrib, memberThief, memberRemoved = 0, 1, 2, 3, 4
)

var honestMembers = []int{memberH1, memberMaint, memberContrib}

// forgeFork signs, with member i's key, a manifest update naming prev,
// with any version, appointing maintainers and revoking keys.
func forgeFork(t *testing.T, n *Net, i int, commons, prev string, version uint64, maintainers, revoked []int) []byte {
	t.Helper()
	m := &protocol.Manifest{
		Name: "taken over", Licence: "MIT", Association: keys(n, []int{i}), Threshold: 1,
		Maintainers: sortedKeys(keys(n, maintainers)), Quorum: 1, RejectQuorum: 1,
		Revoked: sortedKeys(keys(n, revoked)), Prev: []protocol.Link{{Cid: mustCID(t, prev)}}, Version: version,
	}
	return sealRecord(t, n, i, &protocol.Record{Commons: mustCID(t, commons), Body: m})
}

func sortedKeys(ks []protocol.PublicKey) []protocol.PublicKey {
	slices.SortFunc(ks, protocol.PublicKey.Compare)
	return ks
}

// forgeContribution signs, with member i's key, a contribution under the
// given manifest.
func forgeContributionUnder(t *testing.T, n *Net, i int, commons, licence, title string) []byte {
	t.Helper()
	return sealRecord(t, n, i, &protocol.Record{Commons: mustCID(t, commons), Body: &protocol.Contribution{
		Title: title, Licence: protocol.Link{Cid: mustCID(t, licence)}, Provenance: protocol.ProvenanceVolunteer,
	}})
}

// stolenKeyHistory is the honest history the attacks run against, and the
// attacker's records.
type stolenKeyHistory struct {
	id, v1     string // the genesis (commons ID) and the update that revokes A2 and removes member 4
	c0, c1, c2 string // decided before the compromise; accepted under v1; left pending under v1
	fork, max  string // the thief's forks from the genesis: version 1000, and 2^64-1
	attack     [][]byte
	inert      map[string]string // attacker's record → the reason every node must give
}

// setUp founds the commons (association {H1, A2}, threshold 1; maintainers
// 1, 3 and 4), has work decided, then revokes A2 and removes maintainer 4
// (v1) and has more work done; it then forges the attacker's records:
// forks from the genesis with version 1000 and 2^64-1 that take the
// association, revoke H1 and the honest maintainer and appoint the thief;
// the thief's rejects of accepted work under a fork and under the genesis
// (a revoked key's review); a contribution under a fork and its acceptance;
// and the removed maintainer's accept and veto of work made after the
// removal, naming the genesis and dated ahead.
func setUp(t *testing.T, n *Net) stolenKeyHistory {
	t.Helper()
	ctx := context.Background()
	var h stolenKeyHistory
	id, err := n.Node(memberH1).CreateManifest(ctx, api.ManifestParams{
		Name: ptr("stolen keys"), Licence: ptr("CC-BY-SA-4.0"),
		Association: keys(n, []int{memberH1, memberThief}), Threshold: ptr[uint64](1),
		Maintainers: keys(n, []int{memberMaint, memberThief, memberRemoved}), Quorum: ptr[uint64](1),
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	h.id = id
	n.JoinAll(id)
	n.WaitConverged(id)
	n.WaitTopicPeers(id, len(n.Running())-1)
	h.c0 = contribute(t, n, memberContrib, id, "decided before the theft")
	n.WaitStatus(h.c0, "pending")
	review(t, n, memberMaint, h.c0, protocol.DecisionAccept)
	n.WaitStatus(h.c0, "accepted")

	// v1 is signed by H1 and co-signed with A2, before the theft is known
	// (as the association signs its updates): a later revocation of H1 by
	// the thief cannot reach it, since A2's signature counts in v1's own
	// past. Signed by H1 alone, it would be contested (see
	// TestMutualRevocationContested).
	draft, err := n.Node(memberH1).DraftManifest(ctx, id, api.ManifestParams{
		Association: keys(n, []int{memberH1}), Maintainers: keys(n, []int{memberMaint}),
		Revoke: keys(n, []int{memberThief}),
	})
	if err != nil {
		t.Fatalf("draft v1: %v", err)
	}
	cosigned, err := n.Node(memberThief).CosignManifest(ctx, draft, false)
	if err != nil {
		t.Fatalf("co-sign v1 with A2: %v", err)
	}
	pub, err := n.Node(memberH1).Publish(ctx, cosigned, false)
	if err != nil || pub.Class != "effective" {
		t.Fatalf("revoke A2: %+v, %v", pub, err)
	}
	h.v1 = pub.CID
	n.WaitFor("v1 is every node's head", func() bool {
		for _, i := range n.Running() {
			if c, ok := n.Commons(i, id); !ok || c.ManifestHead != h.v1 {
				return false
			}
		}
		return true
	})
	h.c1 = contribute(t, n, memberContrib, id, "accepted after the revocation")
	h.c2 = contribute(t, n, memberContrib, id, "pending after the removal")
	n.WaitStatus(h.c2, "pending")
	review(t, n, memberMaint, h.c1, protocol.DecisionAccept)
	n.WaitStatus(h.c1, "accepted")
	n.WaitConverged(id)

	h.inert = map[string]string{}
	add := func(raw []byte, reason string) string {
		h.attack = append(h.attack, raw)
		c := protocol.RecordCID(raw).String()
		h.inert[c] = reason
		return c
	}
	const shortOfSigners = "signers: short of a predecessor's threshold without keys revoked"
	fork := forgeFork(t, n, memberThief, id, id, 1000, []int{memberThief}, []int{memberH1, memberMaint})
	h.fork = add(fork, shortOfSigners)
	h.max = add(forgeFork(t, n, memberThief, id, id, math.MaxUint64, []int{memberThief}, []int{memberH1}), shortOfSigners)
	add(forgeReview(t, n, memberThief, id, h.c1, h.fork, protocol.DecisionReject), "author: key is revoked")
	add(forgeReview(t, n, memberThief, id, h.c0, id, protocol.DecisionReject), "author: key is revoked")
	own := add(forgeContributionUnder(t, n, memberThief, id, h.fork, "the thief's own"), "licence: manifest is not on the chain")
	add(forgeReview(t, n, memberThief, id, own, h.fork, protocol.DecisionAccept), "author: key is revoked")
	ahead := protocol.HLCFromMillis(time.Now().Add(4*time.Minute).UnixMilli(), 0)
	for _, d := range []string{protocol.DecisionAccept, protocol.DecisionReject} {
		raw := sealRecord(t, n, memberRemoved, &protocol.Record{Commons: mustCID(t, id), Time: ahead, Body: &protocol.Review{
			Target: protocol.Link{Cid: mustCID(t, h.c2)}, Decision: d, Under: protocol.Link{Cid: mustCID(t, id)},
		}})
		add(raw, "under: neither the version the contribution assented to nor a later one")
		ahead++
	}
	return h
}

// check asserts the honest outcome on every running node: the honest head,
// the honest statuses, no contest, only A2 revoked, every attacker's record
// stored and inert with its reason, one state root; and that the honest
// side can still act.
func (h stolenKeyHistory) check(t *testing.T, n *Net) {
	t.Helper()
	ctx := context.Background()
	n.WaitFor("every node holds the attacker's records", func() bool {
		for _, i := range n.Running() {
			for _, raw := range h.attack {
				if ok, _ := n.Store(i).HasRecord(ctx, protocol.RecordCID(raw)); !ok {
					return false
				}
			}
		}
		return true
	})
	n.WaitConverged(h.id)
	st := converged(t, n, h.id)
	for _, i := range n.Running() {
		cs := n.MustCommons(i, h.id)
		info, err := n.Node(i).Manifest(ctx, h.id)
		if err != nil {
			t.Fatalf("node %d: manifest: %v", i, err)
		}
		t.Logf("node %d: head %s, %d accepted, %d rejected, %d pending, %d inert, contested %v, revoked %v, root %s",
			i, cs.ManifestHead, cs.Accepted, cs.Rejected, cs.Pending, cs.Inert, cs.Contested, info.Revoked, cs.StateRoot)
		if cs.ManifestHead != h.v1 || len(cs.Contested) != 0 || len(cs.Forks) != 0 {
			t.Errorf("node %d: head %s (want v1 %s), contested %v, forks %v", i, cs.ManifestHead, h.v1, cs.Contested, cs.Forks)
		}
		if !slices.Equal(info.Revoked, keys(n, []int{memberThief})) || len(info.Suspended) != 0 {
			t.Errorf("node %d: revoked %v, suspended %v; want only A2 revoked", i, info.Revoked, info.Suspended)
		}
		for c, want := range map[string]string{h.c0: "accepted", h.c1: "accepted", h.c2: "pending"} {
			if got := n.Status(i, c); got != want {
				t.Errorf("node %d: contribution %s is %s, want %s", i, c, got, want)
			}
		}
		for c, reason := range h.inert {
			if got := show(t, n, i, c); !strings.HasPrefix(got.Inert, reason) {
				t.Errorf("node %d: attacker's %s %s: inert %q, want %q", i, got.Type, c, got.Inert, reason)
			}
		}
	}
	if st.Accepted != 2 {
		t.Errorf("converged status %+v, want 2 accepted", st)
	}
	// The honest side acts as before the attack.
	pub, err := n.Node(memberH1).UpdateManifest(ctx, h.id, api.ManifestParams{Name: ptr("still ours")})
	if err != nil || pub.Class != "effective" {
		t.Fatalf("H1's update after the attack: %+v, %v", pub, err)
	}
	review(t, n, memberMaint, h.c2, protocol.DecisionAccept)
	n.WaitStatus(h.c2, "accepted")
	n.WaitFor("H1's update is every node's head", func() bool {
		for _, i := range n.Running() {
			if c, ok := n.Commons(i, h.id); !ok || c.ManifestHead != pub.CID {
				return false
			}
		}
		return true
	})
}

// joinTopic makes a raw host of the Net a gossip peer of a commons, and
// returns its topic handle.
func joinTopic(t *testing.T, n *Net, host int, commons string) *pubsub.Topic {
	t.Helper()
	ps, err := pubsub.NewGossipSub(t.Context(), n.Host(host),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return string(protocol.RecordCID(m.Data).Bytes()) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(protocol.Topic(mustCID(t, commons)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	return topic
}

// TestStolenKeys runs the attacks of a thief holding a revoked association
// key, and of a removed maintainer, against the honest nodes, delivering the
// attacker's records through each way records travel: gossip from a raw
// peer, sync from the thief's own node after a partition heals, the thief's
// node's API (publishing with force, which then gossips), and a CAR import
// on an honest node. Every node ends with the honest head, the honest
// statuses and one state root, and the honest side can still act.
func TestStolenKeys(t *testing.T) {
	for _, via := range []string{"gossip", "sync", "api", "import"} {
		t.Run(via, func(t *testing.T) {
			Run(t, Options{Nodes: 5, ExchangeInterval: 10 * time.Second}, func(t *testing.T, n *Net) {
				ctx := context.Background()
				n.ConnectAll()
				evil := n.AddHost()
				h := setUp(t, n)
				switch via {
				case "gossip":
					topic := joinTopic(t, n, evil, h.id)
					n.ConnectStar(evil, n.Nodes()...)
					n.WaitFor("the raw host sees the nodes in the topic", func() bool { return len(topic.ListPeers()) == len(n.Nodes()) })
					for _, raw := range h.attack {
						if err := topic.Publish(ctx, raw); err != nil {
							t.Fatalf("gossip: %v", err)
						}
					}
				case "sync":
					n.Partition([]int{memberThief})
					if rep, err := sim.Deliver(ctx, n.Node(memberThief), h.attack...); err != nil || rep.Imported != len(h.attack) {
						t.Fatalf("thief's node: import %+v, %v", rep, err)
					}
					n.Settle(time.Second)
					n.Heal()
				case "api":
					for _, raw := range h.attack {
						if _, err := n.Node(memberThief).Publish(ctx, raw, false); !errors.Is(err, api.ErrForbidden) {
							t.Fatalf("thief's node published an inert record unforced: %v", err)
						}
						pub, err := n.Node(memberThief).Publish(ctx, raw, true)
						if err != nil || pub.Class != "inert" {
							t.Fatalf("thief's node, forced: %+v, %v", pub, err)
						}
					}
				case "import":
					if rep, err := sim.Deliver(ctx, n.Node(memberContrib), h.attack...); err != nil || rep.Imported != len(h.attack) {
						t.Fatalf("import on node 2: %+v, %v", rep, err)
					}
				}
				h.check(t, n)
			})
		})
	}
}

// TestInertRefused: nodes refuse, with crdt's reason, to publish what the
// commons would hold inert, and store nothing.
func TestInertRefused(t *testing.T) {
	Run(t, Options{Nodes: 5}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll()
		h := setUp(t, n)
		cases := []struct {
			name string
			try  func() (string, error)
			want string
		}{
			{"thief updates the manifest", func() (string, error) {
				p, err := n.Node(memberThief).UpdateManifest(ctx, h.id, api.ManifestParams{Name: ptr("mine")})
				return p.CID, err
			}, "not an association key"},
			{"thief reviews old work", func() (string, error) {
				p, err := n.Node(memberThief).Review(ctx, api.ReviewParams{Target: h.c0, Decision: protocol.DecisionReject})
				return p.CID, err
			}, "author: key is revoked"},
			{"removed maintainer reviews new work", func() (string, error) {
				p, err := n.Node(memberRemoved).Review(ctx, api.ReviewParams{Target: h.c2, Decision: protocol.DecisionAccept})
				return p.CID, err
			}, "is not a maintainer in manifest"},
			{"honest node publishes the thief's fork", func() (string, error) {
				p, err := n.Node(memberH1).Publish(ctx, h.attack[0], false)
				return p.CID, err
			}, "signers: short of a predecessor's threshold"},
		}
		before, _ := n.Commons(memberH1, h.id)
		for _, c := range cases {
			cid, err := c.try()
			if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v; want ErrForbidden naming %q", c.name, err, c.want)
			}
			if cid != "" {
				for _, i := range n.Running() {
					if ok, _ := n.Store(i).HasRecord(ctx, mustCID(t, cid)); ok {
						t.Errorf("%s: node %d stored the refused record", c.name, i)
					}
				}
			}
		}
		n.Settle(time.Second)
		if after := n.MustCommons(memberH1, h.id); after.Records != before.Records {
			t.Errorf("records %d after the refusals, %d before", after.Records, before.Records)
		}
	})
}

// TestMutualRevocationContested: two keys of a 1-of-3 association revoke
// each other (the thief's fork arrives by gossip from a raw peer). Every
// node shows both updates as contested, keeps the genesis as head and the
// work decided before; the third key, which the thief did not revoke,
// revokes the thief's key and decides the contest; an update then merges
// the heads.
func TestMutualRevocationContested(t *testing.T) {
	Run(t, Options{Nodes: 4}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectAll()
		evil := n.AddHost()
		id, err := n.Node(memberH1).CreateManifest(ctx, api.ManifestParams{
			Name: ptr("contested"), Licence: ptr("MIT"),
			Association: keys(n, []int{memberH1, memberContrib, memberThief}), Threshold: ptr[uint64](1),
			Maintainers: keys(n, []int{memberMaint}), Quorum: ptr[uint64](1),
		})
		if err != nil {
			t.Fatal(err)
		}
		n.JoinAll(id)
		n.WaitTopicPeers(id, 3)
		c0 := contribute(t, n, memberContrib, id, "before")
		n.WaitStatus(c0, "pending")
		review(t, n, memberMaint, c0, protocol.DecisionAccept)
		n.WaitStatus(c0, "accepted")
		topic := joinTopic(t, n, evil, id)
		n.ConnectStar(evil, n.Nodes()...)
		n.WaitFor("the raw host sees the nodes in the topic", func() bool { return len(topic.ListPeers()) == len(n.Nodes()) })

		// The thief, from the genesis, revokes H1; H1, from the genesis,
		// revokes A2.
		fork := forgeFork(t, n, memberThief, id, id, 1, []int{memberThief}, []int{memberH1})
		if err := topic.Publish(ctx, fork); err != nil {
			t.Fatal(err)
		}
		n.WaitRecords(id, 4)
		// Until revoked, the thief's key acts for the association: its
		// update is the head, and H1 cannot build on it.
		if cs := n.MustCommons(memberH1, id); cs.ManifestHead != protocol.RecordCID(fork).String() {
			t.Fatalf("head %s before H1 answers, want the thief's update", cs.ManifestHead)
		}
		if _, err := n.Node(memberH1).UpdateManifest(ctx, id, api.ManifestParams{Revoke: keys(n, []int{memberThief})}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "--on") {
			t.Fatalf("H1's update on the thief's head: %v; want refused, naming --on", err)
		}
		pub, err := n.Node(memberH1).UpdateManifest(ctx, id, api.ManifestParams{On: []string{id}, Revoke: keys(n, []int{memberThief})})
		if err != nil || pub.Class != "contested" {
			t.Fatalf("H1's revocation: %+v, %v; want published and contested", pub, err)
		}
		n.WaitRecords(id, 5)
		n.WaitConverged(id)
		for _, i := range n.Nodes() {
			cs := n.MustCommons(i, id)
			t.Logf("node %d: head %s, contested %v, %d accepted, root %s", i, cs.ManifestHead, cs.Contested, cs.Accepted, cs.StateRoot)
			want := []string{pub.CID, protocol.RecordCID(fork).String()}
			if cs.ManifestHead != id || len(cs.Contested) != 2 || !slices.Contains(cs.Contested, want[0]) || !slices.Contains(cs.Contested, want[1]) {
				t.Errorf("node %d: head %s, contested %v; want the genesis and %v", i, cs.ManifestHead, cs.Contested, want)
			}
			if n.Status(i, c0) != "accepted" {
				t.Errorf("node %d: work decided before the contest is %s", i, n.Status(i, c0))
			}
		}
		// Member 2 holds the third key, which the thief did not revoke.
		rec, err := n.Node(memberContrib).UpdateManifest(ctx, id, api.ManifestParams{Revoke: keys(n, []int{memberThief})})
		if err != nil || rec.Class != "effective" {
			t.Fatalf("third key's revocation: %+v, %v", rec, err)
		}
		n.WaitRecords(id, 6)
		n.WaitConverged(id)
		for _, i := range n.Nodes() {
			cs := n.MustCommons(i, id)
			if len(cs.Contested) != 0 || len(cs.Forks) != 2 {
				t.Errorf("node %d after the third key's revocation: contested %v, forks %v", i, cs.Contested, cs.Forks)
			}
		}
		merge, err := n.Node(memberH1).UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("merged")})
		if err != nil || merge.Class != "effective" {
			t.Fatalf("merge: %+v, %v", merge, err)
		}
		n.WaitFor("the merge is every node's head", func() bool {
			for _, i := range n.Nodes() {
				if c, ok := n.Commons(i, id); !ok || c.ManifestHead != merge.CID || len(c.Forks) != 0 {
					return false
				}
			}
			return true
		})
		converged(t, n, id)
	})
}
