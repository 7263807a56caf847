package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// badRequest is an api.ErrBadRequest saying what is wrong; error
// arguments formatted with %w keep their chain.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{api.ErrBadRequest}, args...)...)
}

// Node is a Commons node. Create it with New, run it with Start, stop it
// with Close.
type Node struct {
	cfg  Config
	log  *slog.Logger
	key  protocol.PrivateKey
	self protocol.PublicKey
	st   store.Store
	// damagedRecords are the records found damaged in the store while the
	// state holds them (recordDamaged), at most maxDamagedRecords.
	damagedMu      sync.Mutex
	damagedRecords map[cid.Cid]bool

	disk    diskGuard // whether the store's disk has room (disk.go)
	pen     penalties // banned peers, and sync strikes (penalty.go)
	geneses sync.Map  // commons ID → its genesis manifest (genesisOf)
	banKeys sync.Map  // commons ID → the keys its heads ban, map[protocol.PublicKey]bool (noteBans)

	// statusLog logs contributions' status changes, summed up while many
	// arrive.
	statusLog statusLog

	host    host.Host
	ownHost bool
	ps      *pubsub.PubSub

	work      chan func()
	ingestCh  chan *ingestReq
	toCommit  chan *batch // loop → committer
	committed chan *batch // committer → loop
	stopped   chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	stopPages func() // stops the release of the store's pages (pages.go)
	// stored counts the records the committer has stored, and streamed
	// the records and keys read in bulk (sent by sync, exported, replayed
	// at a start or to a live feed, backfilled, a blob sweep's references,
	// a dropped state's keys). pages.go reads them: while they grow fast,
	// a daemon's releases keep their priority, and its store's files are
	// read around each page read.
	stored   atomic.Int64
	streamed atomic.Int64
	// loaded is set once Start has opened the replicated commons' states,
	// which reads each one's stored state in order.
	loaded atomic.Bool
	wg     sync.WaitGroup
	// rowsMu is held while the feed's summary rows of saved records are
	// written or deleted (backfill.go, dropdisowned.go): each reads the
	// records, then stores or deletes their rows.
	rowsMu sync.Mutex
	// backfilled is closed when the daemon's first pass of the backfill
	// ends (nil offline); rejoined wakes it for a commons joined again
	// whose rows are not all written; and backfillPassed takes a word at
	// the end of each later pass, for tests to wait on (backfill.go).
	backfilled, rejoined, backfillPassed chan struct{}
	// lifeMu guards closing, which Close sets before it waits for wg:
	// goroutines the node did not start (stream handlers, the host's
	// notifications) count themselves in wg through track, never after.
	lifeMu  sync.Mutex
	closing bool

	blobs blobState // blob exchange (blob.go)
	net   netState  // DHT, mDNS, reachability (host.go)

	joined chan struct{} // a commons was joined (wakes DHT discovery)

	feeds   *feed.Hub // live feed
	metrics *Metrics  // Prometheus metrics (metrics.go)

	exMu       sync.Mutex
	exInFlight map[string]*syncRun     // sync sessions running, by peer and commons
	served     map[string][]*servedRun // sessions being served, by peer and commons
	syncSem    chan struct{}           // sessions served (guarded by exMu)
	servedBy   map[peer.ID]int         // sessions served, by peer (guarded by exMu)
	overShare  map[peer.ID]*overShare  // refusals over a peer's share (guarded by exMu)
	syncAgain  map[string]bool         // sessions asked for while one ran: run another after it
	syncEnded  chan struct{}           // closed, and replaced, whenever a session ends (guarded by exMu)
	// syncWaiting adds up, for each Sync waiting on a peer and commons,
	// the sessions over them that end (guarded by exMu).
	syncWaiting map[string][]*api.SyncSession

	// Owned by the event loop.
	commons  map[cid.Cid]*replica
	order    []cid.Cid // commons in the order they were added
	hlc      protocol.HLC
	inFlight map[cid.Cid]bool // records in batches with the committer
	batches  int              // batches with the committer
	// savingNow: a save of derived state is with the committer (at most
	// one is); after a failed one, the next waits until saveRetry.
	savingNow bool
	saveRetry time.Time
	// toHash holds the replicas whose saved records changed their state
	// root's trie since it was last hashed; hashIdle hashes them at
	// hashAt, once no batch has come for idleHashDelay.
	toHash map[*replica]bool
	// leaving holds the commons a Leave is taking away (leave.go): until
	// it is done, no record of theirs is stored and they cannot be joined.
	leaving map[cid.Cid]*leave
	joining map[cid.Cid]int // Joins in progress, by commons (a Leave waits for them)
	hashAt  time.Time
	// hashDue: hashIdle runs by then even without a pause, when no batch
	// is with the committer (hashDeferMax after toHash was last empty).
	hashDue time.Time
	// sweepAfterSave: blobs newly referenced did not fit in the fetch
	// queue; the save that stores their references starts a sweep.
	sweepAfterSave bool
	// damagedSeen holds the commons whose derived state was marked
	// damaged (damaged), each once.
	damagedSeen sync.Map
	savedHook   func(error) // tests: called on the loop when a save is done
	rng         *rand.Rand
}

// storeRecords reads records from the store for a commons' crdt.State,
// which keeps only what its rules read of each record. Records are stored
// before they are added to the state, so the record is there.
type storeRecords struct{ st store.Store }

func (r storeRecords) Record(c cid.Cid) (*protocol.Block, error) {
	return readRecord(context.Background(), r.st, c)
}

// readRecord reads and parses the record c from st, its error wrapping
// crdt.ErrDropped if st dropped its bytes.
func readRecord(ctx context.Context, st store.Store, c cid.Cid) (*protocol.Block, error) {
	raw, err := st.GetRecord(ctx, c)
	if errors.Is(err, store.ErrDropped) {
		return nil, fmt.Errorf("%w: %w", crdt.ErrDropped, err)
	}
	if err != nil {
		return nil, err
	}
	return protocol.ParseStored(c, raw)
}

// readAheadMax is the most records a lookup reads side by side before
// it needs them (readRecords): with records of up to 64 KiB, each held
// with what was decoded of it, at most about 8 MiB at once.
const readAheadMax = 64

// readRecords reads the records cs side by side (sideBySide) and returns
// them, with the blocks in have, as the Records of a view's Fill, which
// reads any other from st.
func readRecords(ctx context.Context, st store.Store, cs []cid.Cid, have ...*protocol.Block) crdt.Records {
	reads := make([]recordRead, len(cs))
	var failed atomic.Bool
	sideBySide(len(cs), func(i int) {
		if failed.Load() {
			return // Fill stops at the first error, and reads the rest again
		}
		reads[i].err = guard(func() (err error) {
			reads[i].b, err = readRecord(ctx, st, cs[i])
			return err
		})
		if reads[i].err != nil && !errors.Is(reads[i].err, crdt.ErrDropped) {
			failed.Store(true)
		}
	})
	got := readAhead{st: st, reads: make(map[cid.Cid]recordRead, len(cs)+len(have))}
	for i, c := range cs {
		if reads[i].b != nil || reads[i].err != nil {
			got.reads[c] = reads[i]
		}
	}
	for _, b := range have {
		got.reads[b.CID] = recordRead{b: b}
	}
	return got
}

// readAhead is the Records readRecords returns. It hands each record out
// once, and forgets it.
type readAhead struct {
	st    store.Store
	reads map[cid.Cid]recordRead
}

// recordRead is a record read, or the error of its read.
type recordRead struct {
	b   *protocol.Block
	err error
}

func (r readAhead) Record(c cid.Cid) (*protocol.Block, error) {
	if x, ok := r.reads[c]; ok {
		delete(r.reads, c)
		return x.b, x.err
	}
	return storeRecords{r.st}.Record(c)
}

// guard calls f, and returns its error, or the panic of a read that
// panicked (badger panics on some damaged blocks) as an error: in a
// goroutine of its own, it would stop the daemon, where a request's
// handler fails alone.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("node: a read of the store failed: %v", p)
		}
	}()
	return f()
}

// closeHashLeaves is the most trie leaves whose hashes Close looks up to
// hash a state's trie that nothing else asked to hash (a leaf whose hash
// is not stored costs a read of its records: at 10,000,000 records, a
// trie derived again after a crash has a million leaves, and a stop is
// not to take a minute).
var closeHashLeaves = 4096 // a variable for tests

// replica is one replicated commons.
type replica struct {
	id    cid.Cid
	state *crdt.State
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	// stopTopic ends the goroutine watching the topic's peers, which closes
	// topicWatched once it has cancelled its event handler (leaveTopic).
	stopTopic    context.CancelFunc
	topicWatched chan struct{}
	dials        map[string]bool // manifest bootstrap addresses already dialled
	// listed: the store lists the commons as replicated (store.AddCommons).
	listed bool
	// batches counts the batches in flight that store or list for it.
	batches int
	// unsaved is the derived state not committed yet (derived.go).
	unsaved unsaved
	kv      *storeKV // what state reads its derived state through
	root    rootCache
	// leftNow counts the records this start's replay left out as damaged
	// (leftout.go), until the start has named them.
	leftNow int
	// leftOut counts the records left out as damaged (leftout.go).
	leftOut int
	// report is the last reciprocity report computed (coalition.go).
	report *cachedReport
	// disputes is its count of open disputes (openDisputes).
	disputes *cachedCount
}

// New returns a node for cfg. It does no I/O.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key, err := protocol.PrivateKeyFromLibp2p(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n := &Node{
		cfg:            cfg,
		log:            cfg.Logger.With("component", "node"),
		key:            key,
		self:           key.Public(),
		st:             cfg.Store,
		work:           make(chan func()),
		ingestCh:       make(chan *ingestReq, 1024),
		toCommit:       make(chan *batch, maxInFlight+1), // and a save
		committed:      make(chan *batch, maxInFlight+1),
		inFlight:       make(map[cid.Cid]bool),
		toHash:         make(map[*replica]bool),
		leaving:        make(map[cid.Cid]*leave),
		joining:        make(map[cid.Cid]int),
		stopped:        make(chan struct{}),
		exInFlight:     make(map[string]*syncRun),
		served:         make(map[string][]*servedRun),
		syncEnded:      make(chan struct{}),
		commons:        make(map[cid.Cid]*replica),
		damagedRecords: make(map[cid.Cid]bool),
		joined:         make(chan struct{}, 1),
		rng:            rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}
	n.blobs.init(cfg.blob)
	n.metrics = newMetrics(n)
	n.feeds = feed.New(cfg.FeedBuffer, feedLog{cfg.Store, n}, n.metrics.feedCounters)
	n.feeds.OnDamaged(n.damaged)
	return n, nil
}

// Self returns the node's public key.
func (n *Node) Self() protocol.PublicKey { return n.self }

// Host returns the libp2p host, or nil when offline or not started.
func (n *Node) Host() host.Host { return n.host }

// Start loads the replicated commons from the store, starts networking
// (unless offline) and the event loop. ctx bounds only the start itself.
func (n *Node) Start(ctx context.Context) error {
	if err := n.checkFormat(ctx); err != nil {
		return err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.stopPages = n.startReleasingPages()
	if err := n.start(ctx); err != nil {
		n.stopPages()
		return err
	}
	return nil
}

// start is Start once the node's context is made.
func (n *Node) start(ctx context.Context) error {
	ids, err := n.st.Commons(ctx)
	if err != nil {
		return fmt.Errorf("node: list commons: %w", err)
	}
	for _, id := range ids {
		rep, err := n.loadReplica(ctx, id)
		if err != nil {
			return err
		}
		if err := n.noteRules(ctx, rep); err != nil {
			return err
		}
		n.noteBans(id, rep.state.Banned())
		n.commons[id] = rep
		n.order = append(n.order, id)
	}
	if len(ids) > 0 {
		// Loading read every stored entry once: give the memory that took
		// back to the system now, not minutes later.
		debug.FreeOSMemory()
	}
	n.loaded.Store(true)
	if !n.cfg.Offline {
		if err := n.startNetwork(ctx); err != nil {
			n.cancel()
			return err
		}
		// Before the loop, which wakes the backfill (wakeBackfill).
		n.backfilled = make(chan struct{})
		n.rejoined, n.backfillPassed = make(chan struct{}, 1), make(chan struct{}, 1)
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.feeds.Run(n.ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.loop()
	}()
	go func() {
		defer n.wg.Done()
		n.committer()
	}()
	n.goEvery(time.Second, func() { n.statusLog.flushDue(n.log, n.cfg.Now()) })
	if !n.cfg.Offline {
		n.startBackground()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.backfill()
		}()
	}
	return nil
}

// loadReplica opens a commons' derived state and feed from the store, and
// applies the records stored after the cursor they reflect: none after a
// clean stop, those of the last moments after a crash, every record of a
// repo written before the derived state was stored (a migration, with a
// progress line). Stored records were validated on the way in, so
// signatures are not checked again. A goroutine reads and parses the next
// page of the feed log, on every core, while the state merges the last
// one.
func (n *Node) loadReplica(ctx context.Context, id cid.Cid) (*replica, error) {
	applied, err := n.st.Applied(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("node: load commons %s: %w", id, err)
	}
	head, err := n.st.FeedHead(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("node: load commons %s: %w", id, err)
	}
	mark, err := n.st.GetDerived(ctx, id, damagedKey)
	if err != nil {
		return nil, fmt.Errorf("node: load commons %s: %w", id, err)
	}
	if mark != nil {
		n.log.Warn("the derived state of a commons was found damaged: deriving it again from the records", "commons", id, "found", string(mark))
		if err := n.dropDerived(ctx, id); err != nil {
			return nil, err
		}
		applied = 0
	}
	if applied > 0 {
		ok, err := n.derivedCurrent(ctx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			if err := n.dropDerived(ctx, id); err != nil {
				return nil, err
			}
			applied = 0
		}
	}
	rep, err := n.openReplica(ctx, id, applied, head)
	if isDamaged(err) {
		// The records are whole (each is checked against its CID when
		// read): derive the state again from them.
		n.log.Warn("the derived state of a commons is damaged: deriving it again from the records", "commons", id, "err", err)
		n.feeds.Unload(id)
		if err := n.dropDerived(ctx, id); err != nil {
			return nil, err
		}
		rep, err = n.openReplica(ctx, id, 0, head)
	}
	if err != nil {
		return nil, err
	}
	n.log.Info("loaded commons", "commons", id, "records", rep.state.Len())
	return rep, nil
}

// isDamaged reports whether err says the derived state is not as the
// node wrote it (not that a read failed).
func isDamaged(err error) bool {
	return errors.Is(err, crdt.ErrDamaged) || errors.Is(err, feed.ErrDamaged)
}

// openReplica opens a commons' derived state, which reflects its records
// through cursor applied, and applies the records after it, up to head.
func (n *Node) openReplica(ctx context.Context, id cid.Cid, applied, head uint64) (*replica, error) {
	st, kv, err := n.openDerived(id, applied)
	if err != nil {
		return nil, fmt.Errorf("node: load commons %s: %w", id, err)
	}
	rep := &replica{id: id, state: st, kv: kv, dials: map[string]bool{}, listed: true}
	rep.unsaved.applied = applied
	if head > applied {
		if err := n.replay(ctx, rep, applied, head); err != nil {
			return nil, err
		}
	}
	if err := n.applyLeftOut(ctx, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// replay applies a commons' records after cursor from, up to head, and
// stores what they imply as it goes.
func (n *Node) replay(ctx context.Context, rep *replica, from, head uint64) error {
	id := rep.id
	what := "applying the records stored after the derived state of a commons"
	if from == 0 {
		what = "deriving the state of a commons from its records (once: later starts read it)"
	}
	// A derivation takes about as long as an import: said at Warn, so that
	// a command opening the repo shows why it waits, and how far it is.
	say := n.log.Info
	if from == 0 {
		say = n.log.Warn
	}
	say(what, "commons", id, "records", head-from)
	began := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan loadPage, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(pages)
		after := from
		for {
			stored, damaged, next, err := n.replayPage(ctx, id, after, loadPageSize)
			if err == nil && next == after {
				return
			}
			p := loadPage{err: err}
			if err == nil {
				p = parsePage(stored)
				p.damaged, after = damaged, next
			}
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	last, saved := time.Now(), from
	for p := range pages {
		if p.err != nil {
			return fmt.Errorf("node: load commons %s: %w", id, p.err)
		}
		if len(p.blocks) > 0 {
			done, err := n.apply(rep, p.blocks, p.cursors, false)
			if err != nil {
				return fmt.Errorf("node: load commons %s: %w", id, err)
			}
			n.feeds.Added(rep.id, done, false)
		}
		for _, dmg := range p.damaged {
			n.leaveOut(rep, dmg)
		}
		switch err := n.saveNow(ctx, rep); {
		case err == nil:
			saved = rep.unsaved.applied
		case errors.Is(err, api.ErrDiskFull) && rep.unsaved.applied-saved <= replayUnsavedMax:
			// The disk filled: what these records imply stays in memory,
			// saved once there is room, or derived again at the next start,
			// so that reads go on. Records stored just before the disk
			// filled are few; a whole derivation would hold the commons.
		default:
			return fmt.Errorf("node: load commons %s: %w", id, err)
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			at := rep.unsaved.applied
			say(what, "commons", id, "done", at-from, "of", head-from,
				"per_second", int(float64(at-from)/time.Since(began).Seconds()))
		}
	}
	if err := ctx.Err(); err != nil {
		// The reader stopped early: what is loaded is not the whole commons.
		return fmt.Errorf("node: load commons %s: %w", id, err)
	}
	return nil
}

// replayUnsavedMax is how many records' derived state replay holds in
// memory, unsaved, while the disk is full.
var replayUnsavedMax = uint64(16 * loadPageSize)

// loadPageSize is how many records start reads and parses at once: at most
// three pages are in memory (one merging, one waiting, one being parsed).
const loadPageSize = 1024

// loadPage is a page of a commons' feed log, parsed.
type loadPage struct {
	blocks  []*protocol.Block
	cursors []uint64
	damaged []unreadable // records among blocks' cursors stored damaged or dropped, left out
	err     error
}

// parsePage parses stored records on every core.
func parsePage(stored []store.Stored) loadPage {
	p := loadPage{blocks: make([]*protocol.Block, len(stored)), cursors: make([]uint64, len(stored))}
	workers := min(runtime.GOMAXPROCS(0), len(stored))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(stored); i += workers {
				b, err := protocol.ParseStored(stored[i].CID, stored[i].Raw)
				if err != nil {
					errs[w] = fmt.Errorf("stored record %s: %w", stored[i].CID, err)
					return
				}
				p.blocks[i], p.cursors[i] = b, stored[i].Cursor
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			p.err = err
			break
		}
	}
	return p
}

// Close stops the node: it cancels every goroutine, waits for them, closes
// the host if the node built it, and then closes the store.
func (n *Node) Close() error {
	if n.cancel == nil {
		return n.closeStore()
	}
	if !n.ownHost && n.host != nil {
		// The caller's host outlives the node: it stops handing the
		// node's protocols to it.
		n.host.RemoveStreamHandler(protocol.SyncProtocol)
		n.host.RemoveStreamHandler(protocol.BlobProtocol)
	}
	n.lifeMu.Lock()
	n.closing = true
	n.lifeMu.Unlock()
	n.cancel()
	n.closeDiscovery()
	var errs []error
	if n.ownHost && n.host != nil {
		errs = append(errs, n.host.Close())
	}
	n.wg.Wait()
	n.statusLog.flush(n.log, n.cfg.Now())
	for _, rep := range n.commons {
		if rep.sub != nil {
			rep.sub.Cancel()
		}
	}
	// The loop has stopped: the states are ours to read. Hash what changed
	// since the last pause (hashIdle), so that a start finds the hashes;
	// and the trie since the start, when that reads at most
	// closeHashLeaves leaves, so that the snapshot holds the trie's inner
	// nodes' hashes rather than their leaves' (crdt's Snapshot), a third
	// of its size and of the memory it takes after the next start (a trie
	// opened from its leaves, with their hashes stored, is hashed without
	// a read). Save too the hashes a status computed since (after a
	// crash, or once the state was derived again, the leaves' hashes are
	// not stored), so that nothing is pending for the snapshot.
	for _, id := range n.order {
		rep := n.commons[id]
		if rep == nil {
			continue
		}
		if n.toHash[rep] || !rep.unsaved.empty() || rep.state.RootLeaves() <= closeHashLeaves {
			rep.hashRoot()
		}
		if rep.state.TrieUnsaved() {
			rep.unsaved.pending = true
		}
	}
	if err := n.saveNow(context.Background()); err != nil {
		errs = append(errs, err)
	} else {
		n.snapshotStates()
	}
	for _, rep := range n.commons {
		if err := n.recordDerived(context.Background(), rep); err != nil {
			errs = append(errs, err)
		}
	}
	n.stopPages()
	errs = append(errs, n.closeStore())
	return errors.Join(errs...)
}

// loop is the event loop: it owns the fields marked so in Node. It never
// waits for the disk: batches go to the committer (ingest.go), and it takes
// new ingest requests only while fewer than maxInFlight are there. When the
// node stops, it waits for the batches the committer holds and answers
// their requests before it returns.
func (n *Node) loop() {
	defer close(n.stopped)
	for {
		ingest := n.ingestCh
		if n.batches >= maxInFlight {
			ingest = nil
		}
		var retry <-chan time.Time // a failed save, tried again when idle
		if !n.saveRetry.IsZero() && !n.savingNow {
			retry = time.After(time.Until(n.saveRetry))
		}
		var hash <-chan time.Time // trie hashes to store, once idle
		if len(n.toHash) > 0 && n.batches == 0 {
			at := n.hashAt
			if n.hashDue.Before(at) {
				at = n.hashDue
			}
			hash = time.After(time.Until(at))
		}
		select {
		case <-retry:
			n.save()
		case <-hash:
			n.hashIdle()
		case fn := <-n.work:
			fn()
		case req := <-ingest:
			n.batches++
			n.toCommit <- n.prepare(n.takeRequests(req)) // never blocks: fewer than maxInFlight are out
		case b := <-n.committed:
			n.batches--
			n.committedBatch(b)
			n.save()
		case <-n.ctx.Done():
			// Answer what is with the committer with its real outcome,
			// then let the committer go. Close saves what is left.
			for ; n.batches > 0; n.batches-- {
				n.committedBatch(<-n.committed)
			}
			close(n.toCommit)
			return
		}
	}
}

// committedBatch takes a batch back from the committer. Loop only.
func (n *Node) committedBatch(b *batch) {
	n.hashAt = time.Now().Add(idleHashDelay)
	if b.save {
		n.saved(b)
		if b.err == nil {
			for _, sv := range b.saves {
				// A save of the backfill's rows alone changes no root.
				if n.commons[sv.rep.id] == sv.rep && len(sv.state) > 0 {
					if len(n.toHash) == 0 {
						n.hashDue = time.Now().Add(hashDeferMax)
					}
					n.toHash[sv.rep] = true
				}
			}
		}
	} else {
		n.finish(b)
	}
	if len(n.leaving) > 0 {
		n.tryLeaves()
	}
}

// save hands the derived state not committed yet to the committer, unless
// a save is there already. Loop only.
func (n *Node) save() {
	if n.savingNow || time.Now().Before(n.saveRetry) || n.ctx.Err() != nil {
		return
	}
	if b := n.saveBatch(); b != nil {
		n.savingNow = true
		n.batches++
		n.toCommit <- b // never blocks: room for maxInFlight and a save
	}
}

// do runs fn on the event loop and waits for it.
func (n *Node) do(ctx context.Context, fn func()) error {
	if n.ctx == nil {
		return api.ErrClosed
	}
	done := make(chan struct{})
	var serr error
	select {
	case n.work <- func() { fn(); serr = n.checkStates(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return api.ErrClosed
	}
	select {
	case <-done:
		return serr
	case <-n.stopped:
		select {
		case <-done: // fn ran, and the loop stopped after it (checkStates)
			return serr
		default:
			return api.ErrClosed
		}
	}
}

// checkStates returns the error of a commons' state whose read failed
// (crdt.State.Err), after it stopped the node (unreadable): what fn read
// of it may be wrong. Loop only.
func (n *Node) checkStates() error {
	for _, id := range n.order {
		if rep := n.commons[id]; rep != nil {
			if err := rep.state.Err(); err != nil {
				n.unreadable(id, err)
				return fmt.Errorf("node: the derived state of commons %s cannot be read: %w", id, err)
			}
		}
	}
	return nil
}

func (n *Node) nowMillis() int64 { return n.cfg.Now().UnixMilli() }

// nextTime issues a timestamp for a local record. Loop only.
func (n *Node) nextTime() protocol.HLC {
	n.hlc = protocol.NextHLC(n.nowMillis(), n.hlc)
	return n.hlc
}

// replicaFor returns the replica of a commons by its string ID. Loop only.
func (n *Node) replicaFor(id string) (*replica, error) {
	c, err := cid.Decode(id)
	if err != nil {
		return nil, badRequest("commons ID %q is not a CID", id)
	}
	rep := n.commons[c]
	if rep == nil {
		return nil, fmt.Errorf("%w: %s is not replicated here (commons join %s)", api.ErrUnknownCommons, id, id)
	}
	return rep, nil
}

// replicated returns the ID of a commons replicated here, given as a
// string (replicaFor, on the event loop).
func (n *Node) replicated(ctx context.Context, commons string) (cid.Cid, error) {
	var id cid.Cid
	var ierr error
	if err := n.do(ctx, func() {
		rep, err := n.replicaFor(commons)
		if err == nil {
			id = rep.id
		}
		ierr = err
	}); err != nil {
		return id, err
	}
	return id, ierr
}

// track counts one more goroutine in wg, for one the node did not start
// (a stream handler, a host notification) or one such a goroutine starts,
// and reports whether it did: not once Close has begun, which then waits
// for those it counted. A goroutine tracked calls wg.Done when it ends.
func (n *Node) track() bool {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.closing {
		return false
	}
	n.wg.Add(1)
	return true
}

// goEvery runs fn every d on a goroutine of the node's until it stops.
func (n *Node) goEvery(d time.Duration, fn func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// ServeAPI serves the HTTP API on addr (host:port; port 0 picks one) until
// the node stops. It returns the address it listens on.
func (n *Node) ServeAPI(addr, token string) (net.Addr, error) {
	if n.ctx == nil {
		return nil, api.ErrClosed
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: API listen on %s: %w", addr, err)
	}
	rl := &refusedLog{log: n.log, now: n.cfg.Now}
	h := api.CheckHost(rl.wrap(api.Handler(n, token)), n.cfg.APIHosts, rl.foreignHost)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("API server", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		<-n.ctx.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	return ln.Addr(), nil
}
