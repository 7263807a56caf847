package node

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// claims returns count contributions by k that claim blob p (of size).
func claims(t *testing.T, n *Node, k protocol.PrivateKey, id, p cid.Cid, size uint64, count int) []*protocol.Block {
	t.Helper()
	out := make([]*protocol.Block, count)
	for i := range out {
		r := &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(n.nowMillis(), uint16(i)), Body: &protocol.Contribution{
			Title: fmt.Sprintf("junk %d", i), Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer,
			Payload: []protocol.PayloadRef{{CID: protocol.Link{Cid: p}, Size: size}}}}
		out[i] = mustBlock(t, r, k)
	}
	return out
}

func ban(t *testing.T, n *Node, id cid.Cid, k protocol.PublicKey) {
	t.Helper()
	if _, err := n.UpdateManifest(t.Context(), id.String(), api.ManifestParams{Ban: []protocol.PublicKey{k}}); err != nil {
		t.Fatal(err)
	}
}

// storeJunk stores data as a blob on n and returns its CID.
func storeJunk(t *testing.T, n *Node, data []byte) cid.Cid {
	t.Helper()
	if _, err := n.PutBlob(t.Context(), data); err != nil {
		t.Fatal(err)
	}
	return protocol.BlobCID(data)
}

// A restart remembers the bans: the payload only a banned key claims is
// served no more after it than before, and gossip still holds the key's
// records back.
func TestDisownedAfterRestart(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id := foundTestCommons(t, n, n.Self())
	flooder := strangerKey(11)
	junk := []byte("junk of a flooder")
	j := storeJunk(t, n, junk)
	if _, err := n.ingest(t.Context(), claims(t, n, flooder, id, j, uint64(len(junk)), 1), false); err != nil {
		t.Fatal(err)
	}
	ban(t, n, id, flooder.Public())
	if got := askBlob(t, n, j); got != nil {
		t.Fatal("the disowned payload is served")
	}
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)
	defer closeNode(t, n)
	if !n.bannedIn(id, flooder.Public()) {
		t.Error("after a restart, gossip takes the banned key's records again")
	}
	if _, disowned, err := n.claim(t.Context(), j, 0); !disowned || err != nil {
		t.Errorf("after a restart: disowned %v, %v", disowned, err)
	}
	if got := askBlob(t, n, j); got != nil {
		t.Fatal("after a restart, the disowned payload is served again")
	}
}

// A banned key cannot make its junk owned by naming it as the licence
// text of a manifest of its own (inert: not the association's), nor by
// claiming it more often than a request reads: a fetch reads every claim.
// A blob that an honest record claims stays owned, however many claims a
// banned key adds before it.
func TestDisownedClaims(t *testing.T) {
	n := startOffline(t)
	id := foundTestCommons(t, n, n.Self())
	flooder := strangerKey(11)
	ban(t, n, id, flooder.Public())

	text := []byte("junk as a licence text")
	l := storeJunk(t, n, text)
	m := &protocol.Manifest{Name: "x", Licence: "MIT", Association: []protocol.PublicKey{flooder.Public()}, Threshold: 1,
		Prev: []protocol.Link{{Cid: id}}, Version: 9, LicenceText: &protocol.Link{Cid: l}}
	blk := mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(n.nowMillis(), 0), Body: m}, flooder)
	if _, err := n.ingest(t.Context(), []*protocol.Block{blk}, false); err != nil {
		t.Fatal(err)
	}
	if ref, disowned, err := n.claim(t.Context(), l, 0); !ref || !disowned || err != nil {
		t.Errorf("a banned key's licence text: referenced %v, disowned %v, %v; want disowned", ref, disowned, err)
	}
	if got := askBlob(t, n, l); got != nil {
		t.Error("a banned key's licence text is served")
	}

	many := []byte("junk claimed many times")
	j := storeJunk(t, n, many)
	if _, err := n.ingest(t.Context(), claims(t, n, flooder, id, j, uint64(len(many)), servedClaims+refChunk+1), false); err != nil {
		t.Fatal(err)
	}
	if _, disowned, err := n.claim(t.Context(), j, 0); !disowned || err != nil {
		t.Errorf("junk claimed %d times: disowned %v, %v; want disowned", servedClaims+refChunk+1, disowned, err)
	}
	_, err := n.GetBlob(t.Context(), j.String()) // stored: returned
	if err != nil {
		t.Fatal(err)
	}
	if got := askBlob(t, n, j); !bytes.Equal(got, many) {
		t.Error("junk claimed more often than a request reads: not served (a request reads at most servedClaims)")
	}

	honest := []byte("an honest payload the flooder claims too")
	h := storeJunk(t, n, honest)
	if _, err := n.ingest(t.Context(), claims(t, n, flooder, id, h, uint64(len(honest)), refChunk+1), false); err != nil {
		t.Fatal(err)
	}
	if _, disowned, _ := n.claim(t.Context(), h, 0); !disowned {
		t.Fatal("claimed by the banned key alone: not disowned")
	}
	c, err := n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: "honest", Payload: []api.PayloadParam{{CID: h.String(), Name: "h"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ref, disowned, err := n.claim(t.Context(), h, 0); !ref || disowned || err != nil {
		t.Errorf("claimed by %s too: referenced %v, disowned %v, %v; want owned", c, ref, disowned, err)
	}
	if got := askBlob(t, n, h); !bytes.Equal(got, honest) {
		t.Error("an honest payload a banned key claims too is not served")
	}
}

// A fetch that found a blob disowned is final, unless a record not
// disowned claimed the blob, or a ban was lifted, while the fetch ran:
// then it is tried again.
func TestDisownedClaimedAgain(t *testing.T) {
	n := startOffline(t)
	c := protocol.BlobCID([]byte("claimed again"))
	b := &n.blobs
	b.queued[c] = protocol.PublicKey{}
	n.fetched(c, errDisowned)
	if b.retry[c] != nil {
		t.Fatal("a disowned blob is tried again")
	}
	b.queued[c] = protocol.PublicKey{}
	b.again[c] = true
	n.fetched(c, fmt.Errorf("wrapped: %w", errDisowned))
	if b.retry[c] == nil || len(b.again) != 0 || len(b.queued) != 0 {
		t.Fatalf("a blob claimed again while found disowned: retry %v, again %v, queued %v", b.retry[c], b.again, b.queued)
	}
	// A ban lifted while a fetch finds its blob disowned.
	d := protocol.BlobCID([]byte("its ban lifted"))
	b.queued[d] = protocol.PublicKey{}
	if err := n.do(t.Context(), n.bansLifted); err != nil {
		t.Fatal(err)
	}
	n.fetched(d, errDisowned)
	if b.retry[d] == nil {
		t.Fatal("a blob whose ban was lifted while it was fetched is not tried again")
	}
}

// DropDisowned deletes the payloads only a banned key claims, and nothing
// an honest record claims too; a second call finds nothing more.
func TestDropDisowned(t *testing.T) {
	n := startOffline(t)
	id := foundTestCommons(t, n, n.Self())
	flooder := strangerKey(11)
	junk, honest := []byte("junk of a flooder"), []byte("an honest payload the flooder claims too")
	j, h := storeJunk(t, n, junk), storeJunk(t, n, honest)
	if _, err := n.ingest(t.Context(), append(claims(t, n, flooder, id, j, uint64(len(junk)), 3), claims(t, n, flooder, id, h, uint64(len(honest)), 1)...), false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Contribute(t.Context(), api.ContributeParams{Commons: id.String(), Title: "honest", Payload: []api.PayloadParam{{CID: h.String(), Name: "h"}}}); err != nil {
		t.Fatal(err)
	}
	if blobs, _, err := n.DropDisowned(t.Context()); blobs != 0 || err != nil {
		t.Fatalf("before any ban: %d dropped, %v", blobs, err)
	}
	ban(t, n, id, flooder.Public())
	blobs, size, err := n.DropDisowned(t.Context())
	if blobs != 1 || size != int64(len(junk)) || err != nil {
		t.Fatalf("DropDisowned = %d blobs, %d bytes, %v; want the junk alone (%d bytes)", blobs, size, err, len(junk))
	}
	if has, _ := n.st.HasBlob(t.Context(), j); has {
		t.Error("the junk is still stored")
	}
	if has, _ := n.st.HasBlob(t.Context(), h); !has {
		t.Error("the honest payload was deleted")
	}
	if blobs, _, err := n.DropDisowned(t.Context()); blobs != 0 || err != nil {
		t.Fatalf("again: %d dropped, %v", blobs, err)
	}
}

// DropDisowned deletes nothing while a commons left without purge holds
// records: one of them may be the only honest claim on a payload.
func TestDropDisownedLeftCommons(t *testing.T) {
	n := startOffline(t)
	mine := foundTestCommons(t, n, n.Self())
	data := []byte("my payload, which a flooder claims elsewhere")
	p := storeJunk(t, n, data)
	if _, err := n.Contribute(t.Context(), api.ContributeParams{Commons: mine.String(), Title: "mine", Payload: []api.PayloadParam{{CID: p.String(), Name: "p"}}}); err != nil {
		t.Fatal(err)
	}
	other, err := n.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("other"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(other)
	flooder := strangerKey(11)
	if _, err := n.ingest(t.Context(), claims(t, n, flooder, id, p, uint64(len(data)), 1), false); err != nil {
		t.Fatal(err)
	}
	ban(t, n, id, flooder.Public())
	if _, err := n.Leave(t.Context(), mine.String(), false); err != nil {
		t.Fatal(err)
	}
	blobs, _, err := n.DropDisowned(t.Context())
	if err == nil || blobs != 0 || !strings.Contains(err.Error(), mine.String()) {
		t.Fatalf("DropDisowned with a commons left, its records kept: %d deleted, %v; want it refused, naming the commons", blobs, err)
	}
	if has, _ := n.st.HasBlob(t.Context(), p); !has {
		t.Fatal("the payload of a commons left was deleted")
	}
	if _, err := n.Leave(t.Context(), mine.String(), true); err != nil {
		t.Fatal(err)
	}
	if blobs, _, err := n.DropDisowned(t.Context()); blobs != 1 || err != nil {
		t.Fatalf("once the commons is purged: %d deleted, %v; want the payload", blobs, err)
	}
}
