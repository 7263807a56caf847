package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// Records returns the raw records of a commons held by node nd, in its
// feed (arrival) order, read through node.Export.
func Records(ctx context.Context, nd *node.Node, commons string) ([][]byte, error) {
	var buf bytes.Buffer
	if err := nd.Export(ctx, commons, &buf); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	br, err := carv2.NewBlockReader(&buf)
	if err != nil {
		return nil, fmt.Errorf("read CAR: %w", err)
	}
	var out [][]byte
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read CAR: %w", err)
		}
		out = append(out, b.RawData())
	}
}

// CAR returns a CARv1 file holding the given records, in the given order.
// The CID of each is computed from its bytes, whatever they are, so
// invalid records can be written too.
func CAR(raws ...[]byte) ([]byte, error) {
	var buf bytes.Buffer
	root := protocol.RecordCID(nil)
	if len(raws) > 0 {
		root = protocol.RecordCID(raws[0])
	}
	w, err := storage.NewWritable(&buf, []cid.Cid{root}, carv2.WriteAsCarV1(true))
	if err != nil {
		return nil, fmt.Errorf("start CAR: %w", err)
	}
	for _, raw := range raws {
		if err := w.Put(context.Background(), protocol.RecordCID(raw).KeyString(), raw); err != nil {
			return nil, fmt.Errorf("write CAR: %w", err)
		}
	}
	if err := w.Finalize(); err != nil {
		return nil, fmt.Errorf("finish CAR: %w", err)
	}
	return buf.Bytes(), nil
}

// Deliver hands records to node nd in the given order, as one import
// (node.Import of a CAR file): the way to inject records a test made by
// hand, or to replay another node's records in an order of its choosing.
func Deliver(ctx context.Context, nd *node.Node, raws ...[]byte) (api.ImportReport, error) {
	car, err := CAR(raws...)
	if err != nil {
		return api.ImportReport{}, err
	}
	return nd.Import(ctx, bytes.NewReader(car), true)
}
