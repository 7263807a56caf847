package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
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
	// The genesis first, so that an import knows the work its commons
	// asks (SPEC §7.4) before the other records.
	switch genesis, err := n.st.GetRecord(ctx, id); {
	case errors.Is(err, store.ErrNotFound): // not arrived yet
	case err != nil:
		return fmt.Errorf("node: read the genesis of %s: %w", id, err)
	default:
		if err := car.Put(id, genesis); err != nil {
			return fmt.Errorf("node: write CAR: %w", err)
		}
	}
	var after uint64
	for {
		page, err := n.readFeed(ctx, id, after, 4096)
		if err != nil {
			return fmt.Errorf("node: read feed: %w", err)
		}
		n.streamed.Add(int64(len(page)))
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			after = s.Cursor
			if s.CID.Equals(id) {
				continue
			}
			if err := car.Put(s.CID, s.Raw); err != nil {
				return fmt.Errorf("node: write CAR: %w", err)
			}
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
// It streams: the reading goroutine cuts the file into batches; each
// batch is parsed and verified by a goroutine of its own, on every core,
// while earlier ones are stored in order, several in flight; at most a few
// batches are held at once, whatever the file's size.
func (n *Node) Import(ctx context.Context, r io.Reader, join bool) (api.ImportReport, error) {
	rep := api.ImportReport{Rejected: []api.RejectedRecord{}, Commons: []string{}, NotReplicated: []string{}}
	br, err := carv2.NewBlockReader(bufio.NewReaderSize(r, 256<<10), carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
	if err != nil {
		return rep, badRequest("not a CAR file: %w", err)
	}
	im := &importer{n: n, ctx: ctx, join: join, rep: &rep, seen: map[cid.Cid]bool{}, geneses: map[cid.Cid]readGenesis{}, skipped: map[cid.Cid]bool{}, queue: make(chan *importItem, runtime.GOMAXPROCS(0)), done: make(chan error, 1)}
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
		item.raw = append(item.raw, rawBlock{blk.Cid(), blk.RawData()})
		if len(item.raw) == importBatch {
			if !im.send(item) {
				err := im.finish() // store failed: its error
				return rep, err
			}
			item = &importItem{seq: item.seq + 1}
		}
	}
	im.send(item)
	err = im.finish()
	return rep, err
}

// prepare parses item's records, takes out those this node holds already
// (importing a file twice, or again after an interruption, costs little)
// and verifies the rest. It runs on a goroutine of item's own. Once a
// batch holds nothing this node has, the rest of the file is taken as
// new and not looked up twice (ingest leaves out what is held anyway).
func (im *importer) prepare(item *importItem, now int64) {
	defer close(item.ready)
	for _, r := range item.raw {
		if b, err := im.n.parse(r.data, r.c); err != nil {
			item.refused = append(item.refused, api.RejectedRecord{CID: r.c.String(), Reason: err.Error()})
		} else {
			item.blocks = append(item.blocks, b)
		}
	}
	item.raw = nil
	if !im.fresh.Load() {
		if item.err = im.dropHeld(item); item.err != nil {
			return
		}
		if len(item.held) == 0 {
			im.fresh.Store(true)
		}
	}
	item.errs = protocol.AdmitBatch(item.blocks, cid.Undef, now, im.genesisOf(item))
	for i, b := range item.blocks {
		if b.Record.IsGenesis() && item.errs[i] == nil { // a genesis refused vouches for nothing
			im.genMu.Lock()
			if g, ok := im.geneses[b.CID]; !ok || item.seq < g.seq {
				im.geneses[b.CID] = readGenesis{item.seq, b.Record.Manifest()}
			}
			im.genMu.Unlock()
		}
	}
}

// readGenesis is a genesis an import read: in which batch, and the
// manifest.
type readGenesis struct {
	seq     int
	genesis *protocol.Manifest
}

// genesisOf is the genesis rule of an import for item's records (SPEC
// §7.4, §7.5): a genesis read before them in the file, or in the same
// batch, decides for its commons; the store for the others
// (Node.genesisOf). A genesis read
// later does not count, so that the outcome does not depend on which
// batches were prepared first.
func (im *importer) genesisOf(item *importItem) protocol.GenesisFunc {
	return func(commons cid.Cid) (*protocol.Manifest, error) {
		im.genMu.Lock()
		g, ok := im.geneses[commons]
		im.genMu.Unlock()
		if ok && g.seq <= item.seq {
			return g.genesis, nil
		}
		return im.n.genesisOf(commons)
	}
}

// recheck admits again the records of item that were delayed because
// their commons' genesis was not at hand when item was prepared, in
// parallel with the batches before it. Every earlier batch is prepared by
// now: a genesis read in any of them counts.
func (im *importer) recheck(item *importItem) {
	var idx []int
	var again []*protocol.Block
	for i, err := range item.errs {
		if errors.Is(err, protocol.ErrNoGenesis) {
			idx = append(idx, i)
			again = append(again, item.blocks[i])
		}
	}
	if len(again) == 0 {
		return
	}
	for j, err := range protocol.AdmitBatch(again, cid.Undef, im.n.nowMillis(), im.genesisOf(item)) {
		item.errs[idx[j]] = err
	}
}

// dropHeld takes out of item the records this node holds already, before
// they are verified, and lists them in item.held.
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
// each prepared by a goroutine of its own, and store takes them in order.
type importer struct {
	n       *Node
	ctx     context.Context
	join    bool              // replicate the commons the file's records belong to
	skipped map[cid.Cid]bool  // commons listed in rep.NotReplicated
	rep     *api.ImportReport // written by store alone until finish
	seen    map[cid.Cid]bool  // commons listed in rep
	queue   chan *importItem
	done    chan error  // store's end
	failed  bool        // store ended early
	fresh   atomic.Bool // a batch held no record this node has: dropHeld is skipped
	genMu   sync.Mutex
	geneses map[cid.Cid]readGenesis // the geneses read in the file (genesisOf)
	// preparing counts the prepare goroutines: finish waits for them, so
	// that none outlives the import when store ends early.
	preparing sync.WaitGroup
}

// rawBlock is a record as read from the file.
type rawBlock struct {
	c    cid.Cid
	data []byte
}

// importItem is a batch of an import. The reader fills raw; prepare the
// rest, before it closes ready.
type importItem struct {
	seq     int // its place in the file: 0, 1, ...
	raw     []rawBlock
	blocks  []*protocol.Block
	held    []*protocol.Block    // records read with the batch that this node holds already
	refused []api.RejectedRecord // records read with the batch that did not parse
	errs    []error              // the blocks' admission verdicts
	err     error                // prepare could not finish (the import was cancelled, the node stopped)
	ready   chan struct{}
}

// importInFlight is how many batches an import has with the event loop
// at once: while one is committed, the next is applied, and those waiting
// together are committed together. More is not faster: the derived state
// the loop saves after a commit then covers more records, and a save too
// large for one badger transaction goes through the store's journal,
// which writes it twice over. Importing 1,000,000 records (2 cores) took
// 113 and 115 s with one batch in flight, 104 and 105 s with four, and
// 159 s with eight, where the journal took 4% of the import's CPU time
// and saves twice as much of it a record.
const importInFlight = 4

// send starts preparing item and queues it for store; it returns false
// when store has ended early (an error) and the import should stop.
func (im *importer) send(item *importItem) bool {
	if im.failed || len(item.raw) == 0 {
		return !im.failed
	}
	select {
	case err := <-im.done: // store has ended: verify nothing more
		im.done <- err // for finish
		im.failed = true
		return false
	default:
	}
	item.ready = make(chan struct{})
	now := im.n.nowMillis()
	im.preparing.Go(func() { im.prepare(item, now) })
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
	err := <-im.done
	im.preparing.Wait()
	return err
}

// submitted is a batch handed to the event loop, not yet answered.
type submitted struct {
	req  *ingestReq
	good []*protocol.Block
}

// store takes the prepared batches in order: it reports the refused
// records, and hands the rest to the event loop to store and apply, up to
// importInFlight batches at once, until the queue closes or a batch
// cannot be stored. After an error it hands over no more, but still waits
// for (and counts) those handed over before it.
func (im *importer) store() error {
	var flight []submitted
	failed := im.handOver(&flight)
	for _, s := range flight {
		if err := im.answered(s); err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

// handOver is store's first part: it takes the batches and hands them
// over, and returns at the first error or once the queue closes, leaving
// in flight those not answered yet.
func (im *importer) handOver(flight *[]submitted) error {
	for item := range im.queue {
		<-item.ready
		if item.err != nil {
			return item.err
		}
		im.recheck(item)
		for _, r := range item.refused {
			im.rep.Reject(r)
		}
		im.rep.Duplicates += len(item.held)
		for _, b := range item.held {
			im.noteCommons(b)
		}
		good := im.n.admitted(item.blocks, item.errs, func(b *protocol.Block, err error) {
			im.rep.Reject(api.RejectedRecord{CID: b.CID.String(), Reason: err.Error()})
		})
		if len(good) == 0 {
			continue
		}
		req, err := im.n.submit(im.ctx, good, im.join)
		if err != nil {
			return err
		}
		*flight = append(*flight, submitted{req, good})
		if len(*flight) == importInFlight {
			s := (*flight)[0]
			*flight = (*flight)[1:]
			if err := im.answered(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// answered waits for a submitted batch and counts its records.
func (im *importer) answered(s submitted) error {
	res, err := im.n.await(s.req)
	if err != nil {
		return err
	}
	for i, b := range s.good {
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
	return nil
}

// noteCommons lists b's commons in the report, once.
func (im *importer) noteCommons(b *protocol.Block) {
	if id := b.CommonsID(); !im.seen[id] {
		im.seen[id] = true
		im.rep.Commons = append(im.rep.Commons, id.String())
	}
}
