package testnet

import (
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/protocol"
)

// A peer that announces, for any blob, a size no record states does not
// make the node give up a payload that a record references: the
// background fetch is retried, and the payload arrives once a peer that
// holds it is connected.
func TestBlobWrongAnnouncementNotFinal(t *testing.T) {
	Run(t, Options{Nodes: 2}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, nil, 0)
		_, b := contributeBlob(t, n, 0, id, blobData(80_000, 8))

		evil := n.AddHost()
		var asked atomic.Int32
		n.Host(evil).SetStreamHandler(protocol.BlobProtocol, func(s network.Stream) {
			defer s.Close()
			if !readBlobRequest(s) {
				return
			}
			asked.Add(1)
			one := uint64(1)
			resp, _ := protocol.EncodeBlobResponse(&protocol.BlobResponse{Size: &one})
			writeTestFrame(s, resp)
			_, _ = s.Write([]byte{0})
		})

		n.Connect(1, evil)
		copyRecords(t, n, 0, 1, id)
		n.WaitFor("the lying peer is asked", func() bool { return asked.Load() > 0 })
		n.Connect(1, 0)
		n.WaitFor("node 1 fetches the payload from node 0 in the background", func() bool { return hasBlob(n, 1, b, t) })
	})
}
