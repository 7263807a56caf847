package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

func ptr[T any](v T) *T { return &v }

// found makes a commons on node i with the given maintainers and quorum,
// and returns its ID.
func found(t *testing.T, n *Net, i int, maintainers []int, quorum uint64) string {
	t.Helper()
	p := api.ManifestParams{Name: ptr("testnet commons"), Licence: ptr("CC-BY-SA-4.0")}
	if len(maintainers) > 0 {
		p.Maintainers = keys(n, maintainers)
		p.Quorum = ptr(quorum)
	}
	id, err := n.Node(i).CreateManifest(context.Background(), p)
	if err != nil {
		t.Fatalf("node %d: create manifest: %v", i, err)
	}
	return id
}

func keys(n *Net, members []int) []protocol.PublicKey {
	out := make([]protocol.PublicKey, len(members))
	for k, i := range members {
		out[k] = publicKey(n, i)
	}
	return out
}

func publicKey(n *Net, i int) protocol.PublicKey {
	k, err := protocol.PrivateKeyFromLibp2p(n.Key(i))
	if err != nil {
		panic(err)
	}
	return k.Public()
}

func contribute(t *testing.T, n *Net, i int, commons, title string) string {
	t.Helper()
	c, err := n.Node(i).Contribute(context.Background(), api.ContributeParams{Commons: commons, Title: title, Kind: "code"})
	if err != nil {
		t.Fatalf("node %d: contribute %q: %v", i, title, err)
	}
	return c
}

func review(t *testing.T, n *Net, i int, target, decision string) string {
	t.Helper()
	c, err := n.Node(i).Review(context.Background(), api.ReviewParams{Target: target, Decision: decision, Rationale: "testnet"})
	if err != nil {
		t.Fatalf("node %d: review %s: %v", i, target, err)
	}
	return c.CID
}

// forgeReview signs, with member i's key, a review naming the given
// manifest version, bypassing the node's own checks.
func forgeReview(t *testing.T, n *Net, i int, commons, target, under, decision string) []byte {
	t.Helper()
	return sealRecord(t, n, i, &protocol.Record{Commons: mustCID(t, commons), Body: &protocol.Review{
		Target: protocol.Link{Cid: mustCID(t, target)}, Decision: decision,
		Rationale: "forged", Under: protocol.Link{Cid: mustCID(t, under)},
	}})
}

// sealRecord signs rec with member i's key (stamping it now if it has no
// time) and returns its bytes.
func sealRecord(t *testing.T, n *Net, i int, rec *protocol.Record) []byte {
	t.Helper()
	key, err := protocol.PrivateKeyFromLibp2p(n.Key(i))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Time == 0 {
		rec.Time = protocol.HLCFromMillis(time.Now().UnixMilli(), 0)
	}
	if err := protocol.Sign(rec, key); err != nil {
		t.Fatalf("sign: %v", err)
	}
	blk, err := protocol.NewBlock(rec)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return blk.Raw
}

func mustCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatalf("cid %q: %v", s, err)
	}
	return c
}

// show returns node i's view of record c.
func show(t *testing.T, n *Net, i int, c string) api.RecordInfo {
	t.Helper()
	info, err := n.Node(i).Show(context.Background(), c)
	if err != nil {
		t.Fatalf("node %d: show %s: %v", i, c, err)
	}
	return info
}

// sameEverywhere fails unless every running node reports the same status
// and the same counting reviews for contribution c.
func sameEverywhere(t *testing.T, n *Net, c string) api.RecordInfo {
	t.Helper()
	var first api.RecordInfo
	for k, i := range n.Running() {
		info := show(t, n, i, c)
		if k == 0 {
			first = info
			continue
		}
		if info.Status != first.Status || countingReviews(info) != countingReviews(first) || len(info.Reviews) != len(first.Reviews) {
			t.Fatalf("node %d sees %s as %s with %d/%d counting reviews; node %d: %s with %d/%d",
				i, c, info.Status, countingReviews(info), len(info.Reviews), n.Running()[0], first.Status, countingReviews(first), len(first.Reviews))
		}
	}
	return first
}

func countingReviews(info api.RecordInfo) int {
	k := 0
	for _, r := range info.Reviews {
		if r.Counts {
			k++
		}
	}
	return k
}

// converged fails the test unless the nodes have converged.
func converged(t *testing.T, n *Net, commons string) api.CommonsStatus {
	t.Helper()
	n.WaitConverged(commons)
	return n.MustCommons(n.Running()[0], commons)
}
