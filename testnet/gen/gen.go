package gen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/protocol"
)

// Options configures Generate. Zero values take the documented defaults.
type Options struct {
	// Records is how many records the commons holds, genesis included.
	// Default 1000.
	Records int
	// Authors is how many contributor keys write contributions. Default 50.
	Authors int
	// Maintainers is how many maintainers the manifest lists at a time
	// (updates rotate one out and a new one in). Default 5.
	Maintainers int
	// Seed makes the commons: the same options give the same bytes.
	// Default 1.
	Seed uint64
	// StartMillis is the genesis time, Unix milliseconds; later records
	// follow 1 ms to 60 s apart, or closer for more than about 2,100,000
	// records, so that they span about two years (a node refuses records
	// dated in its future). Default 1700000000000 (November 2023).
	StartMillis int64
	// NoPayloads leaves payload references out. By default about one
	// contribution in four names 1 to 3 payload blobs, whose bytes do not
	// exist: nodes would try to fetch them.
	NoPayloads bool
}

func (o *Options) validate() error {
	if o.Records == 0 {
		o.Records = 1000
	}
	if o.Authors == 0 {
		o.Authors = 50
	}
	if o.Maintainers == 0 {
		o.Maintainers = 5
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.StartMillis == 0 {
		o.StartMillis = 1_700_000_000_000
	}
	switch {
	case o.Records < 1:
		return fmt.Errorf("gen: %d records, want at least 1", o.Records)
	case o.Authors < 1:
		return fmt.Errorf("gen: %d authors, want at least 1", o.Authors)
	case o.Maintainers < 1 || o.Maintainers > protocol.MaxKeys/2:
		return fmt.Errorf("gen: %d maintainers, want 1 to %d", o.Maintainers, protocol.MaxKeys/2)
	}
	return nil
}

// Summary says what a generator made.
type Summary struct {
	// ID is the commons ID: the genesis manifest's CID.
	ID cid.Cid
	// Records is how many records, Bytes their total size.
	Records, Bytes int
	// Contributions, Reviews and Manifests count the records by type.
	Contributions, Reviews, Manifests int
}

// Generated is a synthetic commons held in memory (Generate); Stream and
// WriteCAR make the same records without holding them.
type Generated struct {
	Summary
	// Records are the records' bytes in the order they were made (every
	// record after the records it links to); CIDs are their CIDs.
	Records [][]byte
	CIDs    []cid.Cid
}

// Bytes returns the total size of the records.
func (g *Generated) Bytes() int { return g.Summary.Bytes }

// WriteCAR writes the records as a CARv1 file whose root is the commons ID.
func (g *Generated) WriteCAR(w io.Writer) error {
	car, err := protocol.NewCARWriter(w, g.ID)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	for i, raw := range g.Records {
		if err := car.Put(g.CIDs[i], raw); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	return nil
}

// CAR returns the records as CARv1 bytes.
func (g *Generated) CAR() ([]byte, error) {
	var buf bytes.Buffer
	err := g.WriteCAR(&buf)
	return buf.Bytes(), err
}

// Generate makes the commons Stream makes and keeps it in memory.
func Generate(opts Options) (*Generated, error) {
	g := &Generated{}
	sum, err := Stream(opts, func(b *protocol.Block) error {
		g.Records = append(g.Records, b.Raw)
		g.CIDs = append(g.CIDs, b.CID)
		return nil
	})
	g.Summary = sum
	return g, err
}

// WriteCAR streams the commons Stream makes to w as a CARv1 file whose
// root is the commons ID, in memory that does not grow with its size.
func WriteCAR(opts Options, w io.Writer) (Summary, error) {
	var car *protocol.CARWriter
	return Stream(opts, func(b *protocol.Block) error {
		if car == nil { // the genesis comes first: its CID is the root
			var err error
			if car, err = protocol.NewCARWriter(w, b.CID); err != nil {
				return fmt.Errorf("gen: %w", err)
			}
		}
		if err := car.Put(b.CID, b.Raw); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		return nil
	})
}

// genChunk is how many records are planned, then signed in parallel, at
// once. A record links only to records of earlier chunks, so a chunk's
// records can be signed in any order; the plan, drawn sequentially from the
// seed, fixes the bytes.
const genChunk = 256

// generator holds the state of one Generate run.
type generator struct {
	opts  Options
	rng   *rand.Rand
	assoc protocol.PrivateKey
	pool  []protocol.PrivateKey // maintainer keys, current and future
	maint []int                 // indexes into pool of the current maintainers
	auth  []protocol.PrivateKey
	out   Summary
	emit  func(*protocol.Block) error

	head     cid.Cid // current manifest head
	manifest protocol.Manifest
	next     int // index into pool of the next maintainer to add

	open    []*genTarget // contributions still under review
	done    []cid.Cid    // contributions that may be revised
	updates map[int]bool // record indexes that are manifest updates
	now     int64
	gap     int64 // records follow 1 ms to gap ms apart
}

// genSpan is about the longest time a commons' records span, in
// milliseconds: two years, so that from the default start they all lie in
// the past.
var genSpan int64 = 2 * 365 * 24 * 3600 * 1000

// genTarget is a contribution the maintainers review.
type genTarget struct {
	cid      cid.Cid
	accept   bool        // where the maintainers lean
	reviewed map[int]int // pool index → reviews made
}

// genKey derives a key from the seed, a role and an index.
func genKey(seed uint64, role string, i int) protocol.PrivateKey {
	h := sha256.New()
	_ = binary.Write(h, binary.LittleEndian, seed)
	h.Write([]byte(role))
	_ = binary.Write(h, binary.LittleEndian, uint64(i))
	return protocol.NewPrivateKeyFromSeed(h.Sum(nil))
}

// Stream makes a valid, realistic commons, deterministic for its options,
// and hands each record to emit in order (every record after those it
// links to): a genesis manifest, manifest updates that rotate maintainers,
// contributions from many authors (some with payloads, some paid, some
// revising earlier ones) and reviews (accept, reject, retract) from the
// maintainers of the time, some reaching quorum. Signing runs on every
// core. It holds only what planning needs (the contributions under
// review), not the records.
func Stream(opts Options, emit func(*protocol.Block) error) (Summary, error) {
	if err := opts.validate(); err != nil {
		return Summary{}, err
	}
	g := &generator{
		opts:    opts,
		rng:     rand.New(rand.NewPCG(opts.Seed, 0xc0ffee)),
		assoc:   genKey(opts.Seed, "association", 0),
		emit:    emit,
		updates: map[int]bool{},
		now:     opts.StartMillis,
		gap:     min(60_000, max(1, 2*genSpan/int64(opts.Records))),
	}
	nUpdates := 0
	if opts.Records >= 50 {
		nUpdates = min(max(opts.Records/5000, 1), 8)
	}
	for k := 1; k <= nUpdates; k++ {
		g.updates[k*opts.Records/(nUpdates+1)] = true
	}
	g.pool = make([]protocol.PrivateKey, opts.Maintainers+nUpdates)
	g.auth = make([]protocol.PrivateKey, opts.Authors)
	parallel(len(g.pool), func(i int) { g.pool[i] = genKey(opts.Seed, "maintainer", i) })
	parallel(len(g.auth), func(i int) { g.auth[i] = genKey(opts.Seed, "author", i) })
	for i := range opts.Maintainers {
		g.maint = append(g.maint, i)
	}
	g.next = opts.Maintainers

	if err := g.genesis(); err != nil {
		return g.out, err
	}
	for g.out.Records < opts.Records {
		i := g.out.Records
		if g.updates[i] {
			if err := g.update(); err != nil {
				return g.out, err
			}
			continue
		}
		end := min(opts.Records, i+genChunk)
		for k := i + 1; k < end; k++ {
			if g.updates[k] {
				end = k
				break
			}
		}
		if err := g.chunk(end - i); err != nil {
			return g.out, err
		}
	}
	return g.out, nil
}

// genItem is one planned record: its signer and its content.
type genItem struct {
	key protocol.PrivateKey
	rec *protocol.Record
	blk *protocol.Block
	err error
}

func (g *generator) tick() protocol.HLC {
	g.now += 1 + g.rng.Int64N(g.gap)
	return protocol.HLCFromMillis(g.now, 0)
}

func (g *generator) maintainerKeys() []protocol.PublicKey {
	ks := make([]protocol.PublicKey, len(g.maint))
	for i, m := range g.maint {
		ks[i] = g.pool[m].Public()
	}
	slices.SortFunc(ks, protocol.PublicKey.Compare)
	return ks
}

func (g *generator) genesis() error {
	n := uint64(len(g.maint))
	g.manifest = protocol.Manifest{
		Name:        fmt.Sprintf("Synthetic commons %d", g.opts.Seed),
		Licence:     "CC-BY-SA-4.0",
		Association: []protocol.PublicKey{g.assoc.Public()},
		Threshold:   1,
		Maintainers: g.maintainerKeys(),
		Quorum:      min(2, n),
		Bootstrap:   []string{"/dns4/bootstrap.example.org/tcp/4040/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"},
	}
	g.manifest.RejectQuorum = g.manifest.Quorum
	m := g.manifest
	rec := &protocol.Record{Time: protocol.HLCFromMillis(g.now, 0), Body: &m}
	return g.commitOne(rec)
}

// update rotates one maintainer out and a new one in.
func (g *generator) update() error {
	out := g.rng.IntN(len(g.maint))
	g.maint = append(g.maint[:out], g.maint[out+1:]...)
	g.maint = append(g.maint, g.next)
	g.next++
	m := g.manifest
	m.Maintainers = g.maintainerKeys()
	m.Prev = []protocol.Link{{Cid: g.head}}
	m.Version++
	if m.Version%2 == 0 {
		m.Policy = &protocol.Policy{MaxBlobBytes: 32 << 20}
	}
	g.manifest = m
	rec := &protocol.Record{Commons: g.out.ID, Time: g.tick(), Body: &m}
	return g.commitOne(rec)
}

func (g *generator) commitOne(rec *protocol.Record) error {
	it := &genItem{key: g.assoc, rec: rec}
	it.sign()
	if it.err != nil {
		return it.err
	}
	if !g.out.ID.Defined() {
		g.out.ID = it.blk.CID
	}
	g.head = it.blk.CID
	g.out.Manifests++
	return g.add(it.blk)
}

func (g *generator) add(b *protocol.Block) error {
	g.out.Records++
	g.out.Bytes += len(b.Raw)
	return g.emit(b)
}

func (it *genItem) sign() {
	if it.err = protocol.Sign(it.rec, it.key); it.err != nil {
		return
	}
	it.blk, it.err = protocol.NewBlock(it.rec)
}

var genKinds = []string{"code", "code", "code", "docs", "translation", "design", "data", "test"}

// chunk plans k records that link only to earlier chunks, signs them in
// parallel and appends them in plan order.
func (g *generator) chunk(k int) error {
	items := make([]*genItem, k)
	contribs := make([]bool, k)
	var fresh []*genTarget
	for i := range items {
		if len(g.open) > 0 && g.rng.IntN(100) < 45 {
			items[i] = g.planReview()
		}
		if items[i] == nil {
			items[i] = g.planContribution()
			contribs[i] = true
		}
	}
	parallel(k, func(i int) { items[i].sign() })
	for i, it := range items {
		if it.err != nil {
			return fmt.Errorf("gen: record %d: %w", g.out.Records, it.err)
		}
		if err := g.add(it.blk); err != nil {
			return err
		}
		if contribs[i] {
			g.out.Contributions++
			if g.rng.IntN(100) < 30 {
				fresh = append(fresh, &genTarget{cid: it.blk.CID, accept: g.rng.IntN(100) < 70, reviewed: map[int]int{}})
			} else if len(g.done) < 4096 {
				g.done = append(g.done, it.blk.CID)
			}
		} else {
			g.out.Reviews++
		}
	}
	g.open = append(g.open, fresh...)
	return nil
}

func (g *generator) planContribution() *genItem {
	// A few authors write most contributions.
	a := int(float64(g.opts.Authors) * g.rng.Float64() * g.rng.Float64())
	n := g.out.Records
	c := &protocol.Contribution{
		Title:      fmt.Sprintf("Contribution %d: %s", n, genTitles[g.rng.IntN(len(genTitles))]),
		Kind:       genKinds[g.rng.IntN(len(genKinds))],
		Licence:    protocol.Link{Cid: g.head},
		Provenance: protocol.ProvenanceVolunteer,
	}
	if g.rng.IntN(100) < 60 {
		c.Summary = genSummary[:40+g.rng.IntN(len(genSummary)-40)]
	}
	if !g.opts.NoPayloads && g.rng.IntN(100) < 25 {
		for j := range 1 + g.rng.IntN(3) {
			seed := fmt.Sprintf("payload %d/%d/%d", g.opts.Seed, n, j)
			c.Payload = append(c.Payload, protocol.PayloadRef{
				CID:  protocol.Link{Cid: protocol.BlobCID([]byte(seed))},
				Name: fmt.Sprintf("file-%d.txt", j),
				Size: uint64(1 + g.rng.IntN(4<<20)),
			})
		}
	}
	if g.rng.IntN(100) < 20 {
		c.Provenance = protocol.ProvenancePaid
		if g.rng.IntN(2) == 0 {
			s := genKey(g.opts.Seed, "sponsor", g.rng.IntN(8)).Public()
			c.Sponsor = &s
		}
	}
	if len(g.done) > 0 && g.rng.IntN(100) < 5 {
		c.Revises = &protocol.Link{Cid: g.done[g.rng.IntN(len(g.done))]}
	}
	return &genItem{key: g.auth[a], rec: &protocol.Record{Commons: g.out.ID, Time: g.tick(), Body: c}}
}

// planReview has a current maintainer review an open contribution, or
// returns nil when none can.
func (g *generator) planReview() *genItem {
	// Mostly the oldest open contributions: a review queue.
	i := int(float64(len(g.open)) * g.rng.Float64() * g.rng.Float64())
	t := g.open[i]
	var cand []int
	for _, m := range g.maint {
		if t.reviewed[m] == 0 {
			cand = append(cand, m)
		}
	}
	decision := protocol.DecisionReject
	if t.accept {
		decision = protocol.DecisionAccept
	}
	var m int
	switch {
	case len(t.reviewed) > 0 && g.rng.IntN(100) < 4:
		// A maintainer withdraws an earlier decision.
		for _, x := range g.maint {
			if t.reviewed[x] > 0 {
				cand = []int{x}
				break
			}
		}
		decision = protocol.DecisionRetract
		if t.reviewed[cand[0]] == 0 {
			return nil
		}
		m = cand[0]
	case len(cand) == 0:
		g.close(i)
		return nil
	default:
		m = cand[g.rng.IntN(len(cand))]
		if g.rng.IntN(100) < 15 {
			// Maintainers disagree.
			decision = map[bool]string{true: protocol.DecisionReject, false: protocol.DecisionAccept}[t.accept]
		}
	}
	t.reviewed[m]++
	if len(t.reviewed) >= int(g.manifest.Quorum)+g.rng.IntN(2) {
		g.close(i)
	}
	v := &protocol.Review{Target: protocol.Link{Cid: t.cid}, Decision: decision, Under: protocol.Link{Cid: g.head}}
	if g.rng.IntN(100) < 50 {
		v.Rationale = genRationales[g.rng.IntN(len(genRationales))]
	}
	return &genItem{key: g.pool[m], rec: &protocol.Record{Commons: g.out.ID, Time: g.tick(), Body: v}}
}

// close ends the review of open contribution i.
func (g *generator) close(i int) {
	if len(g.done) < 4096 {
		g.done = append(g.done, g.open[i].cid)
	}
	g.open = append(g.open[:i], g.open[i+1:]...)
}

// parallel runs fn(0..n-1) on every core.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for w := range workers {
		lo, hi := w*per, min(n, (w+1)*per)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

var genTitles = []string{
	"fix off-by-one in feed paging", "translate the README into Portuguese", "add a dark theme",
	"document the licence manifest", "speed up CID hashing", "new logo sketches", "dataset of street trees",
	"refactor the review view", "accessibility audit", "tests for the import path", "update dependencies",
	"clarify the contribution guide",
}

const genSummary = "This change follows the discussion on the mailing list. It keeps the public " +
	"interface as it is, adds tests for the edge cases we found, and updates the documentation. " +
	"Reviewers may want to look at the second commit first: it carries the substance, the rest is " +
	"mechanical renaming."

var genRationales = []string{
	"looks good, thanks", "needs tests", "duplicate of an earlier contribution", "out of scope for this commons",
	"great work", "licence of the payload is unclear", "please split into smaller pieces",
}

// NodeKey returns a libp2p identity derived from a seed and an index, for
// nodes a benchmark or tool builds outside a simulated network.
func NodeKey(seed uint64, i int) crypto.PrivKey {
	k, err := crypto.UnmarshalEd25519PrivateKey(genKey(seed, "node", i))
	if err != nil {
		panic(err) // unreachable: a 64-byte ed25519 key
	}
	return k
}
