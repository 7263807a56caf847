package node

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// Export writes every record of a commons, in feed order, as a CARv1 file
// whose root is the commons ID, in memory that does not grow with it.
func (n *Node) Export(ctx context.Context, commons string, w io.Writer) error {
	id, err := n.replicated(ctx, commons)
	if err != nil {
		return err
	}
	car, err := protocol.NewCARWriter(w, id)
	if err != nil {
		return fmt.Errorf("node: start CAR: %w", err)
	}
	var after uint64
	for {
		page, err := n.st.Feed(ctx, id, after, 4096)
		if err != nil {
			return fmt.Errorf("node: read feed: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			if err := car.Put(s.CID, s.Raw); err != nil {
				return fmt.Errorf("node: write CAR: %w", err)
			}
			after = s.Cursor
		}
	}
	return nil
}

// importBatch is how many records an import verifies and commits at once.
const importBatch = 256

// Import reads a CAR file of records, validates every one (CID, encoding,
// signatures, clock), and stores the valid ones, replicating their commons.
// Every rejected record is listed with its reason; the rest are imported.
// A CAR damaged part way keeps the records before the damage and returns
// ErrBadRequest.
func (n *Node) Import(ctx context.Context, r io.Reader) (api.ImportReport, error) {
	rep := api.ImportReport{Rejected: []api.RejectedRecord{}, Commons: []string{}}
	br, err := carv2.NewBlockReader(r, carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return rep, badRequest("not a CAR file: %w", err)
	}
	seenCommons := map[cid.Cid]bool{}
	var batch []*protocol.Block
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		good := n.admit(batch, cid.Undef, func(b *protocol.Block, err error) {
			rep.Rejected = append(rep.Rejected, api.RejectedRecord{CID: b.CID.String(), Reason: err.Error()})
		})
		batch = batch[:0]
		if len(good) == 0 {
			return nil
		}
		res, err := n.ingest(ctx, good, true)
		if err != nil {
			return err
		}
		for i, b := range good {
			if res.added[i] {
				rep.Imported++
			} else {
				rep.Duplicates++
			}
			if id := b.CommonsID(); !seenCommons[id] {
				seenCommons[id] = true
				rep.Commons = append(rep.Commons, id.String())
			}
		}
		return nil
	}
	for {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// Keep the records read so far, as earlier batches were kept.
			read := rep.Imported + rep.Duplicates + len(rep.Rejected) + len(batch)
			if ferr := flush(); ferr != nil {
				return rep, ferr
			}
			return rep, badRequest("CAR file is damaged after %d records: %w", read, err)
		}
		c := blk.Cid()
		b, err := n.parse(blk.RawData(), c)
		if err != nil {
			rep.Rejected = append(rep.Rejected, api.RejectedRecord{CID: c.String(), Reason: err.Error()})
			continue
		}
		batch = append(batch, b)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return rep, err
			}
		}
	}
	return rep, flush()
}
