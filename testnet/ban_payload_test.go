package testnet

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Once the association bans a flooder, the payloads only the flooder's
// contributions claim cost the other nodes nothing: they are not fetched
// (in the background, by a node that learns of the ban before or after the
// claims, nor on demand) and not served. A payload an honest contribution
// claims too is fetched and served as before: claiming an honest payload
// and getting banned does not make it disappear. Lifting the ban fetches
// the flooder's payloads.
func TestBannedPayloadsNotFetched(t *testing.T) {
	Run(t, Options{Nodes: 4}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		copyRecords(t, n, 0, 1, id)
		copyRecords(t, n, 0, 2, id)
		junkData, honestData := blobData(3_000, 1), blobData(5_000, 2)
		_, junk := contributeBlob(t, n, 1, id, junkData)
		_, honest := contributeBlob(t, n, 1, id, honestData) // the flooder claims an honest payload too
		contributeBlob(t, n, 2, id, honestData)
		flood, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}

		// Only a host that counts its requests holds the junk payload.
		var asked atomic.Int32
		evil := n.AddHost()
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			req, ok := readRequest(s)
			if !ok {
				return
			}
			if req.CID.Cid.String() != junk {
				resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Missing: true})
				writeTestFrame(s, resp)
				return
			}
			asked.Add(1)
			sz := uint64(len(junkData))
			resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &sz})
			writeTestFrame(s, resp)
			_, _ = s.Write(junkData)
		})

		// Node 0 has the claims before the ban: the junk payload is queued,
		// and fails while no peer holds it.
		n.Connect(0, 2)
		deliver(t, n, 0, flood)
		copyRecords(t, n, 2, 0, id)
		n.WaitFor("the honest payload on node 0", func() bool { return hasBlob(n, 0, honest, t) })
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Ban: []protocol.PublicKey{publicKey(n, 1)}}); err != nil {
			t.Fatal(err)
		}
		n.Connect(0, evil)
		n.Settle(3 * time.Minute) // retries, and a sweep's back-off
		if hasBlob(n, 0, junk, t) || asked.Load() != 0 {
			t.Fatalf("node 0 asked %d times for the banned key's payload after the ban (stored: %v)", asked.Load(), hasBlob(n, 0, junk, t))
		}
		_, err = n.Node(0).GetBlob(ctx, junk)
		if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "banned key") {
			t.Fatalf("GetBlob of the banned key's payload: %v, want not found, naming the ban", err)
		}
		if asked.Load() != 0 {
			t.Fatal("GetBlob asked a peer for the banned key's payload")
		}

		// Node 3 learns of the ban with the claims: it fetches only the
		// honest payload.
		n.Connect(3, 2)
		n.Connect(3, evil)
		copyRecords(t, n, 0, 3, id)
		n.WaitFor("the honest payload on node 3", func() bool { return hasBlob(n, 3, honest, t) })
		n.Settle(3 * time.Minute)
		if asked.Load() != 0 {
			t.Fatalf("node 3 asked %d times for the banned key's payload", asked.Load())
		}

		// Node 0 remembers the ban across a restart (its sweep at start
		// finds the junk missing and leaves it).
		n.Restart(0)
		n.Connect(0, evil)
		n.Connect(0, 2)
		n.Settle(3 * time.Minute)
		if asked.Load() != 0 {
			t.Fatalf("after a restart, node 0 asked %d times for the banned key's payload", asked.Load())
		}

		// The flooder's own node, once it knows of the ban, serves its junk
		// no more, and the honest payload still.
		copyRecords(t, n, 0, 1, id)
		n.Connect(evil, 1)
		if resp := askBlob(t, n, evil, 1, junk); !resp.Missing {
			t.Fatalf("node 1 answered %+v for the banned key's payload, want missing", resp)
		}
		if resp := askBlob(t, n, evil, 1, honest); resp.Size == nil || *resp.Size != uint64(len(honestData)) {
			t.Fatalf("node 1 answered %+v for the honest payload, want its size", resp)
		}

		// Lifted, the ban's payloads are fetched.
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Unban: []protocol.PublicKey{publicKey(n, 1)}}); err != nil {
			t.Fatal(err)
		}
		n.WaitFor("the payload of a lifted ban on node 0", func() bool { return hasBlob(n, 0, junk, t) })
	})
}

// askBlob has host from ask node to for blob c, and returns the answer.
func askBlob(t *testing.T, n *Net, from, to int, c string) *protocol.BlobResponse {
	t.Helper()
	s, err := n.Host(from).NewStream(context.Background(), n.ID(to), protocol.BlobProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req, err := protocol.EncodeBlobRequest(&protocol.BlobRequest{CID: protocol.Link{Cid: mustCID(t, c)}})
	if err != nil {
		t.Fatal(err)
	}
	writeTestFrame(s, req)
	r := bufio.NewReader(s)
	size, err := binary.ReadUvarint(r)
	if err != nil || size > protocol.MaxBlobMessage {
		t.Fatalf("node %d's answer: frame of %d bytes, %v", to, size, err)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	resp, err := protocol.DecodeBlobResponse(buf)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// heldSaves fails every save of the derived state while held is set, as a
// disk that refuses writes for a while would: the references of records
// applied meanwhile are not stored yet.
type heldSaves struct {
	store.Store
	held *atomic.Bool
}

func (s heldSaves) CommitDerived(ctx context.Context, ds []store.Derived) error {
	if s.held.Load() {
		return errors.New("saves held by the test")
	}
	return s.Store.CommitDerived(ctx, ds)
}

// A ban lifted while the references of the banned key's claims are not
// saved yet still fetches their payloads, once they are: a sweep follows
// the next save.
func TestLiftedBanFetchesUnsavedClaims(t *testing.T) {
	var held atomic.Bool
	opts := Options{Nodes: 2, Configure: func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Store = heldSaves{Store: cfg.Store, held: &held}
		}
	}}
	Run(t, opts, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		copyRecords(t, n, 0, 1, id)
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Ban: []protocol.PublicKey{publicKey(n, 1)}}); err != nil {
			t.Fatal(err)
		}
		_, junk := contributeBlob(t, n, 1, id, blobData(3_000, 7)) // node 1 has not heard of the ban
		recs, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}
		held.Store(true)
		deliver(t, n, 0, recs)
		if _, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{Unban: []protocol.PublicKey{publicKey(n, 1)}}); err != nil {
			t.Fatal(err)
		}
		n.Settle(time.Minute) // the sweep the lifted ban starts, which cannot see the claims
		held.Store(false)
		n.Connect(0, 1)
		n.WaitFor("the payload of a lifted ban on node 0", func() bool { return hasBlob(n, 0, junk, t) })
	})
}
