package crdt

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// Status is a contribution's standing in the commons.
type Status string

// Contribution statuses.
const (
	StatusPending  Status = "pending"
	StatusAccepted Status = "accepted"
	StatusRejected Status = "rejected"
)

// ErrWrongCommons is returned by Add and AddBatch for a record that belongs
// to another commons (or a genesis manifest other than this commons').
var ErrWrongCommons = errors.New("crdt: record belongs to another commons")

// ErrNilBlock is returned by Add and AddBatch for a nil block or a block
// without a decoded record.
var ErrNilBlock = errors.New("crdt: nil block or record")

// Change is one contribution's status change caused by Add or AddBatch.
// From is "" for a contribution that was not in the set before.
type Change struct {
	Contribution cid.Cid
	From, To     Status
	// Pos is the place the caller gave the contribution when it added it
	// (AddAt), 0 if none.
	Pos uint64
}

// class is where a record stands in the derivation.
type class uint8

const (
	clsNone      class = iota // not classified yet
	clsWaiting                // waits for a missing or unresolved record
	clsOK                     // accepted (manifest), eligible (review), live (contribution)
	clsInert                  // carries no authority (for good, or until what it depends on moves)
	clsContested              // a contested manifest (SPEC §12.6)
	clsSuspended              // a review held by a contest: an undecided vote (SPEC §12.4)
)

// entry is one record of the set with its derived standing. It holds what
// the rules read of the record, not the record: a contribution's or a
// review's bytes are read through Records when a view needs them. A
// manifest is held whole (manInfo.blk), in memory: the chain is labelled
// from them. Other entries live in the KV (persist.go).
type entry struct {
	cid    cid.Cid
	time   protocol.HLC
	typ    protocol.Type
	cls    class
	reason string    // why inert
	waitOn []cid.Cid // the records this entry waits for (its 'w' lists)
	man    *manInfo
	con    *conInfo
	rev    *revInfo
	ext    *extInfo // a profile or a sponsorship (coalition.go)
	raw    []byte   // the bytes it was read from, if it was
	flags  uint8    // which of its lists have members (flagTargeted, flagWaited)
	stub   bool     // not a record of the set: only flags, for lists naming it
}

// newEntry returns the entry of a record not classified yet.
func newEntry(b *protocol.Block) *entry {
	r := b.Record
	e := &entry{cid: b.CID, time: r.Time, typ: internType(r.Type())}
	switch body := r.Body.(type) {
	case *protocol.Manifest:
		e.man = &manInfo{m: body, blk: b}
	case *protocol.Contribution:
		e.con = &conInfo{author: r.Author, licence: body.Licence.Cid}
	case *protocol.Review:
		e.rev = &revInfo{author: r.Author, target: body.Target.Cid, under: body.Under.Cid, decision: internDecision(body.Decision), slot: r.Author}
	case *protocol.Profile:
		e.ext = &extInfo{author: r.Author}
	case *protocol.Sponsorship:
		e.ext = &extInfo{author: r.Author, target: body.Target.Cid}
	case *protocol.Pledge:
		e.ext = &extInfo{author: r.Author}
	case *protocol.Acknowledgement:
		e.ext = &extInfo{author: r.Author, target: body.Pledge.Cid, amount: body.Amount}
		if body.Under != nil {
			e.ext.under = body.Under.Cid
		}
	case *protocol.Dispute:
		e.ext = &extInfo{author: r.Author, under: body.Under.Cid}
		if body.Subject != nil {
			e.ext.target = body.Subject.Cid
		}
	case *protocol.Statement:
		e.ext = &extInfo{author: r.Author, target: body.Dispute.Cid}
	case *protocol.Resolution:
		e.ext = &extInfo{author: r.Author, target: body.Dispute.Cid, under: body.Under.Cid}
	case *protocol.Certificate:
		e.ext = &extInfo{author: r.Author, under: body.Under.Cid}
	case *protocol.Rotation:
		e.ext = &extInfo{author: r.Author} // its co-signer is its successor
	}
	if e.ext != nil {
		e.ext.blk = b
		for _, c := range r.Cosigs {
			e.ext.cosigners = append(e.ext.cosigners, c.Key)
		}
	}
	return e
}

// internType returns t, sharing the constant's bytes when it is a known
// type, so that an entry does not keep the decoded record's string alive.
func internType(t protocol.Type) protocol.Type {
	for _, k := range [...]protocol.Type{protocol.TypeManifest, protocol.TypeContribution, protocol.TypeReview,
		protocol.TypeProfile, protocol.TypeSponsorship, protocol.TypePledge, protocol.TypeAcknowledgement,
		protocol.TypeDispute, protocol.TypeStatement, protocol.TypeResolution, protocol.TypeCertificate, protocol.TypeRotation} {
		if t == k {
			return k
		}
	}
	return t
}

// internDecision does for a review's decision what internType does for a
// type.
func internDecision(d string) string {
	for _, k := range [...]string{protocol.DecisionAccept, protocol.DecisionReject, protocol.DecisionRetract} {
		if d == k {
			return k
		}
	}
	return d
}

// revInfo is what the review rules read of a review.
type revInfo struct {
	author        protocol.PublicKey
	target, under cid.Cid
	decision      string
	// slot is the maintainer whose vote it casts: its author, or a key
	// its author stands for through rotations (SPEC §12.14), once it
	// counts; the author until then.
	slot protocol.PublicKey
}

type manInfo struct {
	m   *protocol.Manifest
	blk *protocol.Block // the manifest record, kept for its signers and views
	st  manState

	// Set when the manifest becomes a candidate:
	ord      int                  // its index in State.mans
	preds    []int                // its predecessors' ordinals
	anc      bitset               // the ordinals of its past, itself included
	depth    int                  // the number of manifests in its past
	reqs     []req                // per predecessor: its signers there, and the threshold
	keys     []protocol.PublicKey // every signer some req counts
	children []int                // the candidates naming it in Prev
}

type conInfo struct {
	author  protocol.PublicKey
	licence cid.Cid // the manifest it assents to
	status  Status
	held    bool    // pending because undecided votes could go either way
	pos     uint64  // the caller's place of it (AddAt), 0 if none
	voters  []voter // the maintainers with eligible or suspended reviews of it ('v' keys), by key, with their latest
}

// State is the state of one commons: a grow-only set of records and what
// follows from it. The zero value is not usable; call New, NewWith or Open.
// A State is not safe for concurrent use.
type State struct {
	id cid.Cid

	kv        KV
	mkv       *MemKV                // the KV of a State made by New or NewWith, written at the end of each Add
	ents      map[cid.Cid]*entry    // the entries read or made since the last Ready (not manifests)
	mfs       map[cid.Cid]*entry    // the manifests of the set
	ov        overlay               // the other writes since the last Ready
	flight    []*Ready              // writes handed out and not Advanced yet, oldest first
	err       error                 // the first failed read
	cache     map[string]cached     // KV values read or written, bounded (cacheMax)
	resFacts  map[cid.Cid]*resFacts // what outcomes read of resolutions, bounded (resFactsMax)
	cacheSize int                   // bytes of the cache's keys and values
	adding    bool                  // records are being added: entries read stay in ents
	quiet     bool                  // Open is labelling the stored manifests: derive nothing else

	queue []cid.Cid // CIDs that arrived or resolved, whose waiters to re-examine

	// Counts of the records that are not manifests, kept in the KV.
	nRecs      int
	nWaiting   int
	nHeld      int // contributions a contest holds pending
	nInert     int
	counts     [4]int // pending, accepted, rejected, withdrawn
	disputeGen uint64 // moves with every dispute's or resolution's standing: see DisputeGeneration
	countsRaw  []byte // the counts as last written

	manWaiting int                  // manifests waiting
	manInert   map[cid.Cid]struct{} // inert manifests

	mans      []*entry     // the candidate manifests, by ordinal
	g         graph        // the candidates' labelling data and labels, by ordinal
	fresh     []int        // candidates not labelled yet
	heads     map[int]bool // the heads' ordinals
	headOrder []int        // the heads' ordinals, resolved first

	deferring bool                            // a relabel is carrying its changes: recount once, at the end
	deferred  map[*entry]struct{}             // contributions to recount then
	revoked   map[protocol.PublicKey]struct{} // keys revoked by accepted manifests
	suspended map[protocol.PublicKey]struct{} // keys revoked by contested manifests only
	banned    map[protocol.PublicKey]struct{} // keys banned by a head
	banSusp   map[protocol.PublicKey]struct{} // keys banned by contested manifests and by no head
	nHeadBans map[protocol.PublicKey]int      // per key, the heads banning it
	nContBans map[protocol.PublicKey]int      // per key, the contested candidates banning it

	tx map[cid.Cid]Status // status before the current Add/AddBatch, "" for new
	// pos is the place AddAt gives the record being added.
	pos uint64

	root     rootCache
	idx      Index  // the records by (time, digest), for set reconciliation
	readySeq uint64 // Readies handed out

	// The start snapshot's keys in the KV (snapshot.go): the chunk
	// indexes below snapEnd, and snapOdd, keys under its tag of another
	// length; snapHead: its head is there, for the next writes to delete;
	// snapHeld: they hold a snapshot of this state; snapTaken: Open took
	// one.
	snapEnd   uint32
	snapOdd   [][]byte
	snapHead  bool
	snapHeld  bool
	snapTaken bool

	src Records    // where views read records
	mem memRecords // the records, for a State made by New; nil otherwise
}

// Records reads the records of the set by CID. The rules read only what a
// State keeps of each record; views (Contribution, Record) read a
// contribution's or a review's record through Records. A node passes its
// store, which holds every record before it is added (NewWith); New keeps
// the records in memory.
type Records interface {
	// Record returns the record c, which the set holds; an error wrapping
	// ErrDropped if its holder dropped its bytes (State.Droppable).
	Record(c cid.Cid) (*protocol.Block, error)
}

// ErrDropped is wrapped by the errors of Records for a record whose bytes
// its holder dropped, as State.Droppable allows: the rules never need them
// (the one rule that reads such a record, a sponsorship's, decides the same
// without it), and views go without them.
var ErrDropped = errors.New("crdt: the record's bytes were dropped here")

// memRecords is the Records of a State made by New.
type memRecords map[cid.Cid]*protocol.Block

func (m memRecords) Record(c cid.Cid) (*protocol.Block, error) {
	if b := m[c]; b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("crdt: record %s is not held", c)
}

// New returns an empty state for the commons whose ID (genesis manifest CID)
// is commons. It keeps the records it is given in memory.
func New(commons cid.Cid) *State {
	m := memRecords{}
	s := NewWith(commons, m)
	s.mem = m
	return s
}

// NewWith returns an empty state for the commons whose ID is commons, which
// reads records through recs: every record added must be readable there by
// the time Add returns, for as long as the State is used. It keeps its
// derived state in memory.
func NewWith(commons cid.Cid, recs Records) *State {
	s := newState(commons, &MemKV{}, recs)
	s.mkv = s.kv.(*MemKV)
	return s
}

func newState(commons cid.Cid, kv KV, recs Records) *State {
	s := &State{
		src:      recs,
		id:       commons,
		kv:       kv,
		ents:     make(map[cid.Cid]*entry),
		mfs:      make(map[cid.Cid]*entry),
		manInert: make(map[cid.Cid]struct{}),
		heads:    make(map[int]bool),
		deferred: make(map[*entry]struct{}),
		g: graph{revokers: map[protocol.PublicKey][]int{}, needers: map[protocol.PublicKey][]int{},
			nAccepted: map[protocol.PublicKey]int{}, nLive: map[protocol.PublicKey]int{}},
		revoked:   make(map[protocol.PublicKey]struct{}),
		suspended: make(map[protocol.PublicKey]struct{}),
		banned:    make(map[protocol.PublicKey]struct{}),
		banSusp:   make(map[protocol.PublicKey]struct{}),
		nHeadBans: make(map[protocol.PublicKey]int),
		nContBans: make(map[protocol.PublicKey]int),
		tx:        make(map[cid.Cid]Status),
	}
	s.idx.st = indexStore{s}
	return s
}

// Open returns the state of the commons whose ID is commons that kv holds
// (an empty one if kv holds none), reading records through recs. It reads
// the counts and the manifests, and labels the chain again in memory; the
// standing of every other record is read from kv when needed. The caller
// applies the writes of each Ready to kv, with the records they come from,
// and then calls Advance.
func Open(commons cid.Cid, kv KV, recs Records) (*State, error) {
	s := newState(commons, kv, recs)
	if raw, err := kv.Get([]byte{tagCounts}); err != nil {
		return nil, fmt.Errorf("crdt: reading the counts: %w", err)
	} else if raw != nil {
		if err := s.decodeCounts(raw); err != nil {
			return nil, err
		}
		s.countsRaw = raw
	}
	var mans []cid.Cid
	err := kv.Scan([]byte{tagManifest}, nil, func(k, _ []byte) error {
		c, err := cid.Cast(k[1:])
		mans = append(mans, c)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("crdt: listing the manifests: %w", err)
	}
	s.quiet, s.adding = true, true
	for _, c := range mans {
		b, err := readRecord(recs, c)
		if err != nil {
			return nil, err
		}
		s.addManifest(b)
		s.settle()
	}
	s.quiet, s.adding = false, false
	s.ov = overlay{}
	clear(s.ents)
	clear(s.tx)
	took, err := s.openSnapshot()
	if err != nil {
		return nil, err
	}
	if !took {
		if err := s.openRoot(s.Len()); err != nil {
			return nil, err
		}
		if err := s.openIndex(); err != nil {
			return nil, err
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// index adds a record to the root trie and the reconciliation index.
func (s *State) index(c cid.Cid, t protocol.HLC) {
	s.indexRoot(c)
	if d, ok := protocol.RecordDigest(c); ok {
		s.idx.Insert(Item{Time: uint64(t), Digest: d})
	}
}

// ID returns the commons ID.
func (s *State) ID() cid.Cid { return s.id }

// Index returns the records ordered by (time, digest) with cached range
// sums, for set reconciliation (NewSession). It is kept as records are
// added; the caller must not use it concurrently with Add.
func (s *State) Index() *Index { return &s.idx }

// Has reports whether the record c is in the set. A failed read reports
// false and makes the State unusable (Ready returns the error).
func (s *State) Has(c cid.Cid) bool { return s.has(c) }

// Len returns the number of records in the set.
func (s *State) Len() int { return s.nRecs + len(s.mfs) }

// Record returns the record c, or nil if it is not in the set. A manifest
// is held in memory; any other record is read through Records, whose error
// it returns.
func (s *State) Record(c cid.Cid) (*protocol.Block, error) {
	e := s.entry(c)
	switch {
	case s.err != nil:
		return nil, s.err
	case e == nil:
		return nil, nil
	case e.man != nil:
		return e.man.blk, nil
	}
	return s.read(c)
}

// read reads the record c, held in the set, through Records.
func (s *State) read(c cid.Cid) (*protocol.Block, error) { return readRecord(s.src, c) }

// readRecord reads the record c through recs, and checks that it is c.
func readRecord(recs Records, c cid.Cid) (*protocol.Block, error) {
	b, err := recs.Record(c)
	if err != nil {
		return nil, fmt.Errorf("crdt: reading record %s: %w", c, err)
	}
	if b == nil || b.CID != c {
		return nil, fmt.Errorf("crdt: reading record %s: got another record", c)
	}
	return b, nil
}

// Manifest returns the manifest record c, or nil if c is not a manifest in
// the set (on the chain or not).
func (s *State) Manifest(c cid.Cid) *protocol.Block {
	if e := s.mfs[c]; e != nil {
		return e.man.blk
	}
	return nil
}

// ManifestRecords returns every manifest record of the set (on the chain
// or not), by CID: what a node needs to judge the commons' authority, with
// nothing else of it.
func (s *State) ManifestRecords() []*protocol.Block {
	out := make([]*protocol.Block, 0, len(s.mfs))
	for _, e := range s.mfs {
		out = append(out, e.man.blk)
	}
	slices.SortFunc(out, func(a, b *protocol.Block) int { return strings.Compare(a.CID.KeyString(), b.CID.KeyString()) })
	return out
}

// Type returns the type of the record c; false if c is not in the set.
func (s *State) Type(c cid.Cid) (protocol.Type, bool) {
	if e := s.entry(c); e != nil {
		return e.typ, true
	}
	return "", false
}

// Waiting returns the number of records waiting for a missing or unresolved
// dependency.
func (s *State) Waiting() int { return s.nWaiting + s.manWaiting }

// Held returns how many contributions a contest holds pending (SPEC §12.5).
func (s *State) Held() int { return s.nHeld }

// Counts returns how many contributions are pending (including inert and
// waiting ones), accepted and rejected.
func (s *State) Counts() (pending, accepted, rejected int) {
	return s.counts[0], s.counts[1], s.counts[2]
}

// Withdrawn returns how many contributions are withdrawn by an upheld
// dispute (SPEC §12.12).
func (s *State) Withdrawn() int { return s.counts[3] }

// Status returns the status of a contribution; false if c is not a
// contribution in the set.
func (s *State) Status(c cid.Cid) (Status, bool) {
	e := s.entry(c)
	if e == nil || e.con == nil {
		return "", false
	}
	return e.con.status, true
}

// OnChain reports whether c is a manifest on the chain (accepted).
func (s *State) OnChain(c cid.Cid) bool {
	e := s.mfs[c]
	return e != nil && e.cls == clsOK
}

// Contested reports whether c is a contested manifest (SPEC §12.6).
func (s *State) Contested(c cid.Cid) bool {
	e := s.mfs[c]
	return e != nil && e.cls == clsContested
}

// Genesis returns the genesis manifest, or nil if it is absent. It is
// returned even when it is inert (short of its threshold).
func (s *State) Genesis() *protocol.Manifest {
	if e := s.mfs[s.id]; e != nil {
		return e.man.m
	}
	return nil
}

// Head returns the resolved head of the manifest chain: the current
// manifest. It returns cid.Undef, nil while no manifest is on the chain.
func (s *State) Head() (cid.Cid, *protocol.Manifest) {
	if len(s.headOrder) == 0 {
		return cid.Undef, nil
	}
	h := s.mans[s.headOrder[0]]
	return h.cid, h.man.m
}

// Forks returns the heads of the manifest chain (accepted manifests that no
// accepted manifest names in Prev), when there is more than one, in the
// order that resolves the fork: most manifests in their past first, then
// lowest CID, so the resolved head comes first; nil otherwise.
func (s *State) Forks() []cid.Cid {
	if len(s.headOrder) < 2 {
		return nil
	}
	out := make([]cid.Cid, len(s.headOrder))
	for i, h := range s.headOrder {
		out[i] = s.mans[h].cid
	}
	return out
}

// setClass moves e to class c, keeping the waiting and inert counts and
// lists.
func (s *State) setClass(e *entry, c class, reason string) {
	man := e.man != nil
	// A review set aside for sure (clsOK with a reason: it counts as a
	// retraction) is shown, listed and counted inert.
	listed := func(c class, reason string) bool { return c == clsInert || c == clsOK && reason != "" }
	wasListed := listed(e.cls, e.reason)
	switch e.cls {
	case clsWaiting:
		if man {
			s.manWaiting--
		} else {
			s.nWaiting--
		}
	case clsInert:
		if man {
			delete(s.manInert, e.cid)
		}
	}
	if !man && wasListed && !listed(c, reason) {
		s.ov.set([]byte{tagInert}, cidKey(tagInert, e.cid), op{del: true})
		s.nInert--
	}
	switch {
	case e.typ == protocol.TypeDispute && (e.cls != c || e.reason != reason),
		e.typ == protocol.TypeResolution && e.cls != c && (votes(e.cls) || votes(c)): // an outcome reads only these
		s.disputeGen++
	}
	e.cls, e.reason = c, reason
	switch c {
	case clsWaiting:
		if man {
			s.manWaiting++
		} else {
			s.nWaiting++
		}
	case clsInert:
		if man {
			s.manInert[e.cid] = struct{}{}
		}
	}
	if !man && !wasListed && listed(c, reason) {
		s.ov.set([]byte{tagInert}, cidKey(tagInert, e.cid), op{v: []byte{}})
		s.nInert++
	}
}

// wait registers e to be re-examined when on arrives or resolves; with on
// undefined, e waits for nothing here (a review's target is tracked through
// its 't' list instead).
func (s *State) wait(e *entry, on cid.Cid) {
	var one [1]cid.Cid
	ons := one[:0]
	if on.Defined() {
		ons = append(ons, on)
	}
	s.waitAll(e, ons)
}

// waitAll registers e to be re-examined when any of ons arrives or
// resolves, and forgets its other registrations (their list entries go
// stale and are skipped).
func (s *State) waitAll(e *entry, ons []cid.Cid) {
	if slices.Equal(e.waitOn, ons) {
		return
	}
	for _, on := range ons {
		if !slices.Contains(e.waitOn, on) {
			s.listAddFor(tagWait, on, e.cid)
		}
	}
	e.waitOn = append(e.waitOn[:0:0], ons...)
}

// unwait removes x from e's registrations; false if e was not (or no
// longer) registered on x.
func unwait(e *entry, x cid.Cid) bool {
	i := slices.Index(e.waitOn, x)
	if i < 0 {
		return false
	}
	e.waitOn = slices.Delete(slices.Clone(e.waitOn), i, i+1)
	return true
}

// setStatus records a contribution's new status, noting the old one for the
// change list of the current Add.
func (s *State) setStatus(e *entry, st Status) {
	old := e.con.status
	if old == st {
		return
	}
	if _, ok := s.tx[e.cid]; !ok {
		s.tx[e.cid] = old
	}
	if old != "" {
		s.counts[statusIndex(old)]--
	}
	s.counts[statusIndex(st)]++
	e.con.status = st
}

func statusIndex(st Status) int {
	switch st {
	case StatusAccepted:
		return 1
	case StatusRejected:
		return 2
	case StatusWithdrawn:
		return 3
	}
	return 0
}
