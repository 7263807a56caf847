package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// blobData returns size deterministic bytes.
func blobData(size int, salt byte) []byte {
	out := make([]byte, size)
	for i := range out {
		out[i] = byte(i*31) ^ salt
	}
	return out
}

// contributeBlob stores data on node i and contributes it as a payload.
func contributeBlob(t *testing.T, n *Net, i int, commons string, data []byte) (contribution, blob string) {
	t.Helper()
	ctx := context.Background()
	b, err := n.Node(i).PutBlob(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Node(i).Contribute(ctx, api.ContributeParams{Commons: commons, Title: "with payload", Payload: []api.PayloadParam{{CID: b, Name: "data.bin"}}})
	if err != nil {
		t.Fatalf("node %d: contribute: %v", i, err)
	}
	return c, b
}

// copyRecords gives node to every record node from holds of a commons, as
// a file would (import): not over the network.
func copyRecords(t *testing.T, n *Net, from, to int, commons string) {
	t.Helper()
	raws, err := sim.Records(context.Background(), n.Node(from), commons)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, n, to, raws)
}

func hasBlob(n *Net, i int, c string, t *testing.T) bool {
	ok, err := n.Store(i).HasBlob(context.Background(), mustCID(t, c))
	return err == nil && ok
}

// A payload contributed on node 0 of a ring reaches node 3 by itself: the
// contribution arrives by gossip and node 3 fetches the missing blob in the
// background. A node that learns of a contribution while alone fetches the
// payload on demand (GetBlob) once it has a peer.
func TestBlobFetched(t *testing.T) {
	Run(t, Options{Nodes: 5}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.ConnectRing(0, 1, 2, 3)
		id := found(t, n, 0, nil, 0)
		n.JoinAll(id, 1, 2, 3)
		n.WaitConverged(id, 0, 1, 2, 3)
		n.WaitTopicPeers(id, 2, 0, 1, 2, 3)

		data := blobData(300_000, 1)
		c, b := contributeBlob(t, n, 0, id, data)
		n.WaitStatus(c, "pending", 0, 1, 2, 3)
		n.WaitFor("every node holds the payload", func() bool {
			for i := range 4 {
				if !hasBlob(n, i, b, t) {
					return false
				}
			}
			return true
		})
		got, err := n.Node(3).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node 3: GetBlob: %d bytes, %v", len(got), err)
		}

		// Node 4 gets the records while alone: the background fetch finds
		// no peer. Connected, GetBlob fetches at once.
		copyRecords(t, n, 0, 4, id)
		n.Settle(time.Second)
		if _, err := n.Node(4).GetBlob(ctx, b); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob with no peer: %v, want ErrNotFound", err)
		}
		n.Connect(4, 2)
		start := time.Now()
		got, err = n.Node(4).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node 4: GetBlob on demand: %d bytes, %v", len(got), err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GetBlob on demand took %v", d)
		}
		if !hasBlob(n, 4, b, t) {
			t.Error("the fetched blob was not stored")
		}
		// An unreferenced blob is neither served nor fetched.
		if _, err := n.Node(4).GetBlob(ctx, protocol.BlobCID([]byte("nobody references this")).String()); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("GetBlob of an unreferenced blob: %v, want ErrNotFound", err)
		}
	})
}

// readBlobRequest reads a blob request off s, as a hostile peer's handler
// does before it answers; false, with s reset, if none comes.
func readBlobRequest(s network.Stream) bool {
	r := bufio.NewReader(s)
	size, err := binary.ReadUvarint(r)
	if err != nil || size > 1024 {
		_ = s.Reset()
		return false
	}
	if _, err := io.ReadFull(r, make([]byte, size)); err != nil {
		_ = s.Reset()
		return false
	}
	return true
}

// writeTestFrame writes a varint-length-prefixed frame.
func writeTestFrame(w io.Writer, b []byte) {
	var hdr [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(hdr[:], uint64(len(b)))
	_, _ = w.Write(hdr[:k])
	_, _ = w.Write(b)
}

// A peer that serves bytes that do not match the CID is caught; the blob
// is then fetched from an honest peer, and the bad bytes are never stored.
func TestBlobWrongBytes(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		data := blobData(50_000, 2)
		_, b := contributeBlob(t, n, 0, id, data)

		evil := n.AddHost()
		var served atomic.Int32
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			if !readBlobRequest(s) {
				return
			}
			served.Add(1)
			sz := uint64(len(data))
			resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &sz})
			writeTestFrame(s, resp)
			_, _ = s.Write(blobData(len(data), 99))
		})

		copyRecords(t, n, 0, 1, id)
		n.Connect(1, evil)
		if _, err := n.Node(1).GetBlob(ctx, b); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob from a lying peer only: %v, want ErrNotFound", err)
		}
		if served.Load() == 0 {
			t.Fatal("the lying peer was never asked")
		}
		if hasBlob(n, 1, b, t) {
			t.Fatal("bad bytes were stored")
		}
		n.Connect(1, 0)
		got, err := n.Node(1).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetBlob with an honest peer too: %d bytes, %v", len(got), err)
		}
	})
}

// forgeContribution signs, with member i's key, a contribution whose
// payload entry states the given size, whatever the blob's real size.
func forgeContribution(t *testing.T, n *Net, i int, commons, licence, blob string, size uint64) []byte {
	t.Helper()
	key, err := protocol.PrivateKeyFromLibp2p(n.Key(i))
	if err != nil {
		t.Fatal(err)
	}
	rec := &protocol.Record{
		Commons: mustCID(t, commons),
		Time:    protocol.HLCFromMillis(time.Now().UnixMilli(), 7),
		Body: &protocol.Contribution{
			Title:      "understated payload",
			Payload:    []protocol.PayloadRef{{CID: protocol.Link{Cid: mustCID(t, blob)}, Size: size}},
			Licence:    protocol.Link{Cid: mustCID(t, licence)},
			Provenance: protocol.ProvenanceVolunteer,
		},
	}
	if err := protocol.Sign(rec, key); err != nil {
		t.Fatal(err)
	}
	blk, err := protocol.NewBlock(rec)
	if err != nil {
		t.Fatal(err)
	}
	return blk.Raw
}

// Blobs over the limit of the commons' current manifest are not fetched,
// and a peer announcing more bytes than the record states is refused.
func TestBlobOversize(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		_, big := contributeBlob(t, n, 0, id, blobData(2000, 3))
		pub, err := n.Node(0).UpdateManifest(ctx, id, api.ManifestParams{MaxBlobBytes: ptr[uint64](1000)})
		v1 := pub.CID
		if err != nil {
			t.Fatal(err)
		}
		small, err := n.Node(0).PutBlob(ctx, blobData(500, 4))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Deliver(ctx, n.Node(0), forgeContribution(t, n, 0, id, v1, small, 100)); err != nil {
			t.Fatal(err)
		}
		copyRecords(t, n, 0, 1, id)
		n.Connect(1, 0)
		n.Settle(time.Minute) // background fetches and a retry
		for _, b := range []string{big, small} {
			if _, err := n.Node(1).GetBlob(ctx, b); !errors.Is(err, node.ErrBlobTooLarge) {
				t.Errorf("GetBlob %s: %v, want ErrBlobTooLarge", b, err)
			}
			if hasBlob(n, 1, b, t) {
				t.Errorf("blob %s over its limit was stored", b)
			}
		}
	})
}

// A node restarted after it stored a payload still serves it: what a blob
// is referenced by is stored with the commons' derived state, not only
// learnt when records arrive. Node 1 got the records while alone, so the
// payload can come from node 0 only.
func TestBlobServedAfterRestart(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		data := blobData(100_000, 5)
		_, b := contributeBlob(t, n, 0, id, data)
		n.Restart(0)

		copyRecords(t, n, 0, 1, id)
		n.Connect(1, 0)
		got, err := n.Node(1).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node 1: GetBlob from the restarted node 0: %d bytes, %v", len(got), err)
		}
	})
}

// A node that received a contribution while alone, and so could not fetch
// its payload, fetches it in the background after a restart once it has a
// peer: a start looks for the missing payloads of the records it holds.
func TestBlobFetchedInBackgroundAfterRestart(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		_, b := contributeBlob(t, n, 0, id, blobData(80_000, 6))
		copyRecords(t, n, 0, 1, id)
		n.Settle(time.Second) // the background fetch finds no peer
		if hasBlob(n, 1, b, t) {
			t.Fatal("node 1 holds the payload while alone")
		}
		n.Restart(1)
		n.Connect(1, 0)
		n.WaitFor("node 1 fetches the payload in the background", func() bool { return hasBlob(n, 1, b, t) })
	})
}

// GetBlob fetches on demand, after a restart, a payload that a record
// stored before the restart references.
func TestBlobOnDemandAfterRestart(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		data := blobData(60_000, 7)
		_, b := contributeBlob(t, n, 0, id, data)
		copyRecords(t, n, 0, 1, id)
		n.Restart(1)
		n.Connect(1, 0)
		start := time.Now()
		got, err := n.Node(1).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("node 1: GetBlob after a restart: %d bytes, %v", len(got), err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GetBlob on demand took %v", d)
		}
	})
}
