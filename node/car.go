package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"

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
	bw := bufio.NewWriterSize(w, 64<<10)
	car, err := protocol.NewCARWriter(bw, id)
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
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("node: write CAR: %w", err)
	}
	return nil
}

// importBatch is how many records an import verifies and commits at once.
const importBatch = 256

// Import reads a CAR file of records, validates every one (CID, encoding,
// signatures, clock), and stores the valid ones of the commons replicated
// here; with join, it replicates the others too, else it counts their
// records as skipped.
// Every rejected record is listed with its reason; the rest are imported.
// A CAR damaged part way keeps the records before the damage and returns
// ErrBadRequest.
//
// It streams: batches are verified in the background, on every core, while
// earlier ones are stored in order; at most a few batches are held at once,
// whatever the file's size.
func (n *Node) Import(ctx context.Context, r io.Reader, join bool) (api.ImportReport, error) {
	rep := api.ImportReport{Rejected: []api.RejectedRecord{}, Commons: []string{}, NotReplicated: []string{}}
	br, err := carv2.NewBlockReader(r, carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return rep, badRequest("not a CAR file: %w", err)
	}
	im := &importer{n: n, ctx: ctx, join: join, rep: &rep, seen: map[cid.Cid]bool{}, skipped: map[cid.Cid]bool{}, queue: make(chan *importItem, runtime.GOMAXPROCS(0)), done: make(chan error, 1)}
	go func() { im.done <- im.store() }()
	item := &importItem{}
	for {
		blk, rerr := br.Next()
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			// Keep the records read so far, as earlier batches were kept.
			im.send(item)
			if err := im.finish(); err != nil {
				return rep, err
			}
			read := rep.Imported + rep.Duplicates + rep.RejectedTotal
			return rep, badRequest("CAR file is damaged after %d records: %w", read, rerr)
		}
		c := blk.Cid()
		if b, err := n.parse(blk.RawData(), c); err != nil {
			item.refused = append(item.refused, api.RejectedRecord{CID: c.String(), Reason: err.Error()})
		} else {
			item.blocks = append(item.blocks, b)
		}
		if len(item.blocks) == importBatch {
			if err := im.dropHeld(item); err != nil {
				_ = im.finish()
				return rep, err
			}
			if !im.send(item) {
				err := im.finish() // store failed: its error
				return rep, err
			}
			item = &importItem{}
		}
	}
	if err := im.dropHeld(item); err != nil {
		_ = im.finish()
		return rep, err
	}
	im.send(item)
	err = im.finish()
	return rep, err
}

// dropHeld takes out of item the records this node holds already, before
// they are verified again (importing a file twice, or again after an
// interruption, costs little), and counts them.
func (im *importer) dropHeld(item *importItem) error {
	return im.n.do(im.ctx, func() {
		kept := item.blocks[:0]
		viewing := map[*replica]bool{}
		defer func() {
			for rep := range viewing {
				rep.kv.end()
			}
		}()
		for _, b := range item.blocks {
			rep := im.n.commons[b.CommonsID()]
			if rep != nil && !viewing[rep] {
				viewing[rep] = true
				rep.kv.begin() // the Has below read through one view
			}
			if rep != nil && rep.state.Has(b.CID) {
				item.held = append(item.held, b)
				continue
			}
			kept = append(kept, b)
		}
		item.blocks = kept
	})
}

// importer is one Import's pipeline: the reading goroutine sends batches,
// each verified by a goroutine of its own, and store takes them in order.
type importer struct {
	n       *Node
	ctx     context.Context
	join    bool              // replicate the commons the file's records belong to
	skipped map[cid.Cid]bool  // commons listed in rep.NotReplicated
	rep     *api.ImportReport // written by store alone until finish
	seen    map[cid.Cid]bool  // commons listed in rep
	queue   chan *importItem
	done    chan error // store's end
	failed  bool       // store ended early
}

// importItem is a batch of an import.
type importItem struct {
	blocks  []*protocol.Block
	held    []*protocol.Block    // records read with the batch that this node holds already
	refused []api.RejectedRecord // records read with the batch that did not parse
	errs    chan []error         // the blocks' admission verdicts, once verified
}

// send starts verifying item and queues it for store; it returns false
// when store has ended early (an error) and the import should stop.
func (im *importer) send(item *importItem) bool {
	if im.failed || len(item.blocks) == 0 && len(item.refused) == 0 && len(item.held) == 0 {
		return !im.failed
	}
	select {
	case err := <-im.done: // store has ended: verify nothing more
		im.done <- err // for finish
		im.failed = true
		return false
	default:
	}
	item.errs = make(chan []error, 1)
	go func(blocks []*protocol.Block, now int64) {
		item.errs <- protocol.AdmitBatch(blocks, cid.Undef, now)
	}(item.blocks, im.n.nowMillis())
	select {
	case im.queue <- item:
		return true
	case err := <-im.done:
		im.done <- err // for finish
		im.failed = true
		return false
	}
}

// finish waits for store to take every queued batch.
func (im *importer) finish() error {
	close(im.queue)
	return <-im.done
}

// store takes the verified batches in order: it reports the refused
// records, and stores and applies the rest (ingest), until the queue
// closes or a batch cannot be stored.
func (im *importer) store() error {
	for item := range im.queue {
		for _, r := range item.refused {
			im.rep.Reject(r)
		}
		im.rep.Duplicates += len(item.held)
		for _, b := range item.held {
			im.noteCommons(b)
		}
		good := im.n.admitted(item.blocks, <-item.errs, func(b *protocol.Block, err error) {
			im.rep.Reject(api.RejectedRecord{CID: b.CID.String(), Reason: err.Error()})
		})
		if len(good) == 0 {
			continue
		}
		res, err := im.n.ingest(im.ctx, good, im.join)
		if err != nil {
			return err // send sees it, and the reader stops
		}
		for i, b := range good {
			if res.skipped[i] {
				im.rep.Skipped++
				if id := b.CommonsID(); !im.skipped[id] {
					im.skipped[id] = true
					im.rep.NotReplicated = append(im.rep.NotReplicated, id.String())
				}
				continue
			}
			if res.added[i] {
				im.rep.Imported++
			} else {
				im.rep.Duplicates++
			}
			im.noteCommons(b)
		}
	}
	return nil
}

// noteCommons lists b's commons in the report, once.
func (im *importer) noteCommons(b *protocol.Block) {
	if id := b.CommonsID(); !im.seen[id] {
		im.seen[id] = true
		im.rep.Commons = append(im.rep.Commons, id.String())
	}
}
