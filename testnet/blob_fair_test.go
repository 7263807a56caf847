package testnet

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// One author's flood of payload claims does not starve another's blob: a
// key claims 200 payloads that two peers announce and then stall on, and
// those claims are queued first; an honest contribution's payload, which
// an honest peer holds, still arrives in the background within about one
// stall of the flood, not after the flood's 200 stalls (50 rounds of the
// node's four fetchers, 20 s each), nor after the stalls of the claims
// that wait for a stalled peer (a fetcher waiting for one puts its claim
// back and takes the next).
func TestBlobFloodClaimsDoNotStarve(t *testing.T) {
	const junk = 200
	Run(t, Options{Nodes: 3}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id := found(t, n, 0, nil, 0)
		copyRecords(t, n, 0, 1, id)
		junkSize := uint64(64)
		for i := range junk {
			data := []byte(fmt.Sprintf("%064d", i))[:junkSize]
			contributeBlob(t, n, 1, id, data)
		}
		flood, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}
		honestData := blobData(4_000, 9)
		copyRecords(t, n, 0, 2, id)
		_, honest := contributeBlob(t, n, 2, id, honestData)

		// Two peers announce every blob of the flood's size and then stall;
		// the honest blob they say they do not have.
		for range 2 {
			evil := n.AddHost()
			n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
				defer s.Close()
				req, ok := readRequest(s)
				if !ok {
					return
				}
				if req.CID.Cid.String() == honest {
					resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Missing: true})
					writeTestFrame(s, resp)
					return
				}
				sz := junkSize
				resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &sz})
				writeTestFrame(s, resp)
				_, _ = s.Write(make([]byte, 8))
				_, _ = io.Copy(io.Discard, s) // and nothing more, until the fetcher gives up
			})
			n.Connect(0, evil)
		}
		deliver(t, n, 0, flood)
		n.Settle(time.Second) // the flood's claims are queued and being fetched

		n.Connect(0, 2)
		start := time.Now()
		copyRecords(t, n, 2, 0, id)
		n.WaitFor("the honest payload on node 0", func() bool { return hasBlob(n, 0, honest, t) })
		took := time.Since(start)
		t.Logf("the honest payload arrived %v after its record, behind %d claims that stall", took, junk)
		if took > 30*time.Second {
			t.Fatalf("the honest payload took %v: a flood of claims starved it", took)
		}
		if got, err := n.Node(0).GetBlob(ctx, honest); err != nil || string(got) != string(honestData) {
			t.Fatalf("the honest payload: %d bytes, %v", len(got), err)
		}
	})
}

// readRequest reads a blob request from s.
func readRequest(s network.Stream) (*protocol.BlobRequest, bool) {
	r := bufio.NewReader(s)
	size, err := binary.ReadUvarint(r)
	if err != nil || size > protocol.MaxBlobMessage {
		_ = s.Reset()
		return nil, false
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		_ = s.Reset()
		return nil, false
	}
	req, err := protocol.DecodeBlobRequest(buf)
	if err != nil {
		_ = s.Reset()
		return nil, false
	}
	return req, true
}
