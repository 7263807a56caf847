package testnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// A peer that announces a blob and then sends nothing more holds a fetch
// for the stall limit (20 s), not the whole attempt's 2 minutes, and
// counts against it: the blob then comes from an honest peer.
func TestBlobStallingPeer(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		data := blobData(50_000, 3)
		_, b := contributeBlob(t, n, 0, id, data)

		evil := n.AddHost()
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			if !readBlobRequest(s) {
				return
			}
			sz := uint64(len(data))
			resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &sz})
			writeTestFrame(s, resp)
			_, _ = s.Write(data[:100])
			_, _ = io.Copy(io.Discard, s) // and nothing more, until the fetcher gives up
		})

		copyRecords(t, n, 0, 1, id)
		n.Connect(1, evil)
		start := time.Now()
		if _, err := n.Node(1).GetBlob(ctx, b); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("GetBlob from a stalling peer only: %v, want ErrNotFound", err)
		}
		if took := time.Since(start); took > time.Minute {
			t.Fatalf("a stalling peer held the fetch %v", took)
		}
		n.Connect(1, 0)
		got, err := n.Node(1).GetBlob(ctx, b)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetBlob with an honest peer too: %d bytes, %v", len(got), err)
		}
	})
}
