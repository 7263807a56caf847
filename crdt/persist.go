package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// What a State keeps in its KV. Every key starts with a tag byte:
//
//	'e' cid                     a contribution's, review's or unknown record's entry,
//	                            or a stub: a CID not in the set that lists name
//	'm' cid                     a manifest of the set (manifests are kept in memory)
//	'n' cid                     an inert record that is not a manifest
//	'l' len licence cid         a contribution, by the manifest it assents to
//	't' len target cid          a review, by its target
//	'u' len under cid           a review, an acknowledgement, a resolution or a certificate,
//	                            by the manifest it names
//	'a' key cid                 a review or a rotation, by its author; an acknowledgement,
//	                            a resolution or a certificate, by each signer
//	'o' key cid                 a contribution, profile or sponsorship, by its author (for bans)
//	'p' key                     the key's latest profile: time, then CID (coalition.go)
//	'y' len con cid             a sponsorship that names con and its sponsor, once it counted
//	'q' key cid                 a paid contribution, by the sponsor it names (reciprocity.go)
//	'g' key cid                 a pledge, by its author
//	'f' len pledge cid          an acknowledgement, by the pledge it names
//	'b' cid                     a dispute (association.go)
//	'd' len subject cid         a dispute, by the record it names
//	'x' len dispute cid         a statement or a resolution, by the dispute it names
//	'z' len dispute cid         a resolution that stands or is suspended, by its dispute
//	'h' 0 key cid               a rotation, by its author
//	'h' 1 key cid               a rotation, by its successor
//	'h' 2 key / 'h' 3 key       the first two distinct successors / predecessors of key
//	'w' len on cid              a record waiting for on
//	'v' len con key ^time ^cid  a maintainer's eligible or suspended review of con (review.go)
//	'i' time digest             a record of the set, for the reconciliation index (index.go)
//	'j' time digest             a leaf of that index, by the bound its items are not below
//	                            (the first leaf's is all zeros) → its digest sum and count
//	's'                         the counts
//	'r' digest                  a record of the set (any kind), by its 32-byte digest
//	'k' depth prefix            a leaf of the root trie: uvarint(count), then its hash if known
//	'S' index                   a chunk of the start snapshot (snapshot.go)
//
// len is the length of the CID after it, as a uvarint. The 't' and 'w'
// lists of a CID that is not a manifest are read only when its entry (or
// stub) says they have members, so that a record's arrival costs one read
// of its own key, not a scan per list; the other lists are read only when
// a manifest's label moves.
//
// The 'r' and 'k' keys hold the root trie (root.go): a leaf at depth d (in
// nibbles, one byte) has the key 'k' d and its d nibbles packed two a
// byte, high first (the low nibble of an odd d's last byte is 0); its
// value is the number of digests it holds, as a uvarint, followed by its
// 32-byte hash once known (a value of only the count: not hashed yet). Its
// digests are the 'r' keys with its prefix. When a leaf splits, its key is
// deleted and its children's are written; the inner nodes are in memory
// only, rebuilt at Open from the 'k' keys, or read from a start snapshot.
const (
	tagEntry     = 'e'
	tagManifest  = 'm'
	tagInert     = 'n'
	tagLicence   = 'l'
	tagTarget    = 't'
	tagUnder     = 'u'
	tagAuthor    = 'a'
	tagOwner     = 'o'
	tagProfile   = 'p'
	tagSponsored = 'y'
	tagSponsor   = 'q'
	tagPledge    = 'g'
	tagAcks      = 'f'
	tagDispute   = 'b'
	tagDisputed  = 'd'
	tagResolved  = 'z'
	tagReplies   = 'x'
	tagRotation  = 'h'
	tagWait      = 'w'
	tagVote      = 'v'
	tagItem      = 'i'
	tagIdxLeaf   = 'j'
	tagCounts    = 's'
	tagRecord    = 'r'
	tagTrieLeaf  = 'k'
)

// ErrDamaged is wrapped by the errors of reads that find the derived state
// in a KV not as a State wrote it: a value that does not decode.
var ErrDamaged = errors.New("crdt: the derived state is damaged")

// entryFormat is the first byte of an encoded entry.
const entryFormat = 2

func cidKey(tag byte, c cid.Cid) []byte { return append([]byte{tag}, c.Bytes()...) }

// groupKey returns the prefix of a list: its tag and its group's CID.
func groupKey(tag byte, group cid.Cid) []byte {
	g := group.Bytes()
	k := binary.AppendUvarint([]byte{tag}, uint64(len(g)))
	return append(k, g...)
}

func authorGroup(k protocol.PublicKey) []byte { return append([]byte{tagAuthor}, k[:]...) }

func ownerGroup(k protocol.PublicKey) []byte { return append([]byte{tagOwner}, k[:]...) }

// op is a pending write: a value, or a deletion.
type op struct {
	v   []byte
	del bool
}

// overlay is the writes of the records added since the last Ready, besides
// the entries (State.ents): each key once, and per list prefix the keys
// written under it, for scans.
type overlay struct {
	ops    map[string]op
	groups map[string][]string
}

func (o *overlay) set(group []byte, key []byte, w op) {
	if o.ops == nil {
		o.ops, o.groups = map[string]op{}, map[string][]string{}
	}
	k := string(key)
	if _, ok := o.ops[k]; !ok {
		g := string(group)
		o.groups[g] = append(o.groups[g], k)
	}
	o.ops[k] = w
}

// Ready is what a batch of records implies for the KV: the writes to apply
// with the records. Writes are sorted by key, each key at most once.
type Ready struct {
	Writes []Write
	seq    uint64 // its number, from 1 (State.readySeq)
}

// scanReady calls fn with r's writes whose key starts with prefix.
func (r *Ready) scan(prefix []byte, fn func(w *Write)) {
	i := sort.Search(len(r.Writes), func(i int) bool { return bytes.Compare(r.Writes[i].Key, prefix) >= 0 })
	for ; i < len(r.Writes) && bytes.HasPrefix(r.Writes[i].Key, prefix); i++ {
		fn(&r.Writes[i])
	}
}

func (r *Ready) get(key []byte) (*Write, bool) {
	i := sort.Search(len(r.Writes), func(i int) bool { return bytes.Compare(r.Writes[i].Key, key) >= 0 })
	if i < len(r.Writes) && bytes.Equal(r.Writes[i].Key, key) {
		return &r.Writes[i], true
	}
	return nil, false
}

// fail records the first error of a read, after which the State is
// unusable: what it derived may rest on a read that did not happen.
func (s *State) fail(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("crdt: reading the derived state: %w", err)
	}
}

// Err returns the error of the first read that failed, after which the
// State must be discarded: what it answered or derived since may rest on
// the read that did not happen.
func (s *State) Err() error { return s.err }

// getKey returns the value of key: pending, in flight (Ready not Advanced
// yet) or in the KV; nil if none. Only keys whose writes Ready remembers
// are read through the cache (and kept in it): getKey reads others too,
// the trie leaves' summaries, which Ready does not remember.
func (s *State) getKey(key []byte) []byte {
	if v, ok := s.held(key); ok {
		return v
	}
	v, err := s.kv.Get(key)
	if err != nil {
		s.fail(err)
		return nil
	}
	if remembered(key) {
		s.remember(string(key), v)
	}
	return v
}

// held returns the value of key if the State has it without reading the
// KV: pending, in flight, or cached (nil if it is deleted or absent).
func (s *State) held(key []byte) (v []byte, ok bool) {
	if w, ok := s.ov.ops[string(key)]; ok {
		if w.del {
			return nil, true
		}
		return w.v, true
	}
	for i := len(s.flight) - 1; i >= 0; i-- {
		if w, ok := s.flight[i].get(key); ok {
			if w.Delete {
				return nil, true
			}
			return w.Value, true
		}
	}
	if c, ok := s.cache[string(key)]; ok && remembered(key) {
		return c.v, true
	}
	return nil, false
}

// getKeys is getKey of each key, in their order; those the State does not
// hold it reads with one GetMany, when the KV is a ManyKV.
func (s *State) getKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	var miss []int
	for i, k := range keys {
		if v, ok := s.held(k); ok {
			out[i] = v
		} else {
			miss = append(miss, i)
		}
	}
	many, ok := s.kv.(ManyKV)
	if !ok || len(miss) < 2 {
		for _, i := range miss {
			out[i] = s.getKey(keys[i])
		}
		return out
	}
	ask := make([][]byte, len(miss))
	for j, i := range miss {
		ask[j] = keys[i]
	}
	vs, err := many.GetMany(ask)
	if err == nil && len(vs) != len(ask) {
		err = fmt.Errorf("asked for %d keys, got %d values", len(ask), len(vs))
	}
	if err != nil {
		s.fail(err)
		return make([][]byte, len(keys))
	}
	for j, i := range miss {
		out[i] = vs[j]
		if remembered(keys[i]) {
			s.remember(string(keys[i]), vs[j])
		}
	}
	return out
}

// cached is a KV value as the State last read or wrote it; nil if absent.
type cached struct{ v []byte }

// cacheMax and cacheBytes bound the cache of KV values, in values and in
// their keys' and values' bytes: past either, the cache starts afresh. A
// State is the only writer of its KV, so what it cached stays true: Ready
// puts every entry it writes in the cache (the latest records are the
// likeliest to be read again: reviews name recent contributions).
const (
	cacheMax   = 1 << 16
	cacheBytes = 16 << 20
)

func (s *State) remember(k string, v []byte) {
	if s.cache == nil || len(s.cache) >= cacheMax || s.cacheSize >= cacheBytes {
		s.cache = make(map[string]cached, 1024)
		s.cacheSize = 0
	}
	s.cache[k] = cached{v: v}
	s.cacheSize += len(k) + len(v)
}

// scanGroup returns the keys under prefix (a list's, or a tag's), with
// what is pending or in flight applied, in ascending order.
func (s *State) scanGroup(prefix []byte) []string {
	var keys []string
	err := s.kv.Scan(prefix, nil, func(k, _ []byte) error {
		if len(k) > len(prefix) {
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		s.fail(err)
		return nil
	}
	pend := s.ov.groups[string(prefix)]
	if len(s.flight) == 0 && len(pend) == 0 {
		return keys
	}
	set := make(map[string]bool, len(keys)+len(pend))
	for _, k := range keys {
		set[k] = true
	}
	for _, r := range s.flight {
		r.scan(prefix, func(w *Write) {
			if len(w.Key) > len(prefix) {
				set[string(w.Key)] = !w.Delete
			}
		})
	}
	for _, k := range pend {
		set[k] = !s.ov.ops[k].del
	}
	out := keys[:0]
	for k, in := range set {
		if in {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// walk calls fn with the keys under prefix in ascending order, with what
// is pending or in flight applied, until fn returns false; it reads the
// KV only that far. fn must not keep the key.
func (s *State) walk(prefix []byte, fn func(key []byte) bool) { s.walkFrom(prefix, nil, fn) }

// walkFrom is walk from the first key not below from.
func (s *State) walkFrom(prefix, from []byte, fn func(key []byte) bool) {
	pend := map[string]bool{} // pending keys under prefix: true if deleted
	for _, r := range s.flight {
		r.scan(prefix, func(w *Write) { pend[string(w.Key)] = w.Delete })
	}
	for _, k := range s.ov.groups[string(prefix)] {
		pend[k] = s.ov.ops[k].del
	}
	keys := make([]string, 0, len(pend))
	for k := range pend {
		if k >= string(from) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	i, stopped := 0, false
	errStop := errors.New("stop")
	err := s.kv.Scan(prefix, from, func(k, _ []byte) error {
		ks := string(k)
		for ; i < len(keys) && keys[i] < ks; i++ {
			if !pend[keys[i]] && !fn([]byte(keys[i])) {
				return errStop
			}
		}
		if i < len(keys) && keys[i] == ks {
			i++
			if pend[ks] {
				return nil // deleted since
			}
		}
		if !fn(k) {
			return errStop
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		stopped = true
	case err != nil:
		s.fail(err)
		return
	}
	for ; !stopped && i < len(keys); i++ {
		if !pend[keys[i]] && !fn([]byte(keys[i])) {
			return
		}
	}
}

// list returns the CIDs of a list: the members after prefix.
func (s *State) list(prefix []byte) []cid.Cid {
	keys := s.scanGroup(prefix)
	out := make([]cid.Cid, 0, len(keys))
	for _, k := range keys {
		c, err := cid.Cast([]byte(k[len(prefix):]))
		if err != nil {
			s.fail(fmt.Errorf("key %x: %w", k, err))
			return nil
		}
		out = append(out, c)
	}
	return out
}

// listAdd adds member to the list at prefix.
func (s *State) listAdd(prefix []byte, member cid.Cid) {
	s.ov.set(prefix, append(slices.Clip(prefix), member.Bytes()...), op{v: []byte{}})
}

// Flags of an entry (or stub): which of its CID's lists have members.
const (
	flagTargeted = 1 << iota // its 't' list: reviews naming it as target
	flagWaited               // its 'w' list: records waiting for it
	flagDisputed             // its 'd' list: disputes naming it
)

// flagOf is the flag of a list tag that entries carry.
func flagOf(tag byte) uint8 {
	switch tag {
	case tagTarget:
		return flagTargeted
	case tagDisputed:
		return flagDisputed
	}
	return flagWaited
}

// listAddFor adds member to c's list tag ('t', 'w' or 'd'), and marks c's entry
// (or a stub, if c is not in the set) as having one. A manifest's lists
// are always read.
func (s *State) listAddFor(tag byte, c, member cid.Cid) {
	s.listAdd(groupKey(tag, c), member)
	if s.mfs[c] != nil {
		return
	}
	e := s.lookup(c)
	if e == nil {
		e = &entry{cid: c, stub: true}
		s.ents[c] = e
	}
	e.flags |= flagOf(tag)
}

// listFor returns the members of c's list tag ('t', 'w' or 'd').
func (s *State) listFor(tag byte, c cid.Cid) []cid.Cid {
	if s.mfs[c] == nil {
		if e := s.lookup(c); e == nil || e.flags&flagOf(tag) == 0 {
			return nil
		}
	}
	return s.list(groupKey(tag, c))
}

// clearFor empties c's list tag, whose members are members.
func (s *State) clearFor(tag byte, c cid.Cid, members []cid.Cid) {
	prefix := groupKey(tag, c)
	for _, m := range members {
		s.ov.set(prefix, append(slices.Clip(prefix), m.Bytes()...), op{del: true})
	}
	if e := s.lookup(c); e != nil && e.man == nil {
		e.flags &^= flagOf(tag)
	}
}

// has reports whether c is in the set.
func (s *State) has(c cid.Cid) bool {
	if s.mfs[c] != nil {
		return true
	}
	if e := s.ents[c]; e != nil {
		return !e.stub
	}
	raw := s.getKey(cidKey(tagEntry, c))
	return raw != nil && !isStub(raw)
}

// entry returns the entry of record c, or nil if c is not in the set.
// While records are being added, the entries read stay in State.ents,
// where they change, until Ready; otherwise an entry read is a copy.
func (s *State) entry(c cid.Cid) *entry {
	if e := s.lookup(c); e != nil && !e.stub {
		return e
	}
	return nil
}

// lookup returns the entry of c, or its stub, or nil.
func (s *State) lookup(c cid.Cid) *entry {
	if e := s.mfs[c]; e != nil {
		return e
	}
	if e := s.ents[c]; e != nil {
		return e
	}
	raw := s.getKey(cidKey(tagEntry, c))
	if raw == nil {
		return nil
	}
	e, err := decodeEntry(c, raw)
	if err != nil {
		s.fail(err)
		return nil
	}
	if s.adding {
		s.ents[c] = e
	}
	return e
}

// entries is entry of each of cs, in their order, reading those the State
// does not hold side by side (getKeys).
func (s *State) entries(cs []cid.Cid) []*entry {
	out := make([]*entry, len(cs))
	var miss []int
	var keys [][]byte
	for i, c := range cs {
		if e := s.mfs[c]; e != nil {
			out[i] = e
		} else if e := s.ents[c]; e != nil {
			out[i] = e
		} else {
			miss = append(miss, i)
			keys = append(keys, cidKey(tagEntry, c))
		}
	}
	for j, raw := range s.getKeys(keys) {
		if raw == nil {
			continue
		}
		c := cs[miss[j]]
		e, err := decodeEntry(c, raw)
		if err != nil {
			s.fail(err)
			return make([]*entry, len(cs))
		}
		if s.adding {
			s.ents[c] = e
		}
		out[miss[j]] = e
	}
	for i, e := range out {
		if e != nil && e.stub {
			out[i] = nil
		}
	}
	return out
}

// Ready returns the writes the records added since the previous Ready
// imply, and keeps reading them until Advance(r); nil when there are none.
// It returns the error of a read that failed since the State was made,
// after which the State must be discarded.
func (s *State) Ready() (*Ready, error) {
	if s.err != nil {
		return nil, s.err
	}
	ws := make([]Write, 0, len(s.ov.ops)+len(s.ents)+1)
	for k, w := range s.ov.ops {
		ws = append(ws, Write{Key: []byte(k), Value: w.v, Delete: w.del})
	}
	for c, e := range s.ents {
		if v := e.encode(); !bytes.Equal(v, e.raw) {
			ws = append(ws, Write{Key: cidKey(tagEntry, c), Value: v})
		}
	}
	ws = s.root.rootWrites(ws)
	if cs := s.encodeCounts(); !bytes.Equal(cs, s.countsRaw) {
		ws = append(ws, Write{Key: []byte{tagCounts}, Value: cs})
		s.countsRaw = cs
	}
	s.ov = overlay{}
	clear(s.ents)
	if len(ws) == 0 {
		return nil, nil
	}
	// The KV changes: a start snapshot there is of the state before
	// (snapshot.go).
	if s.snapHead {
		ws = append(ws, Write{Key: snapshotKey(0), Delete: true})
	}
	s.snapHead, s.snapHeld = false, false
	sortWrites(ws)
	for _, w := range ws {
		if !remembered(w.Key) {
			continue
		}
		if w.Delete {
			s.remember(string(w.Key), nil)
		} else {
			s.remember(string(w.Key), w.Value)
		}
	}
	s.readySeq++
	r := &Ready{Writes: ws, seq: s.readySeq}
	s.flight = append(s.flight, r)
	return r, nil
}

// remembered reports whether the cache holds key's value once read or
// written: entries, profiles and rotation summaries, which are read by key
// (lists are scanned, and the trie leaves' summaries are read by key
// seldom: once a node that Open took from a snapshot changes).
func remembered(key []byte) bool {
	return key[0] == tagEntry || key[0] == tagProfile || key[0] == tagRotation && len(key) > 1 && key[1] >= 2
}

func sortWrites(ws []Write) []Write {
	slices.SortFunc(ws, func(a, b Write) int { return bytes.Compare(a.Key, b.Key) })
	return ws
}

// Advance tells the State that r's writes are in its KV.
func (s *State) Advance(r *Ready) {
	if i := slices.Index(s.flight, r); i >= 0 {
		s.flight = slices.Delete(s.flight, i, i+1)
	}
}

// flushMem applies the pending writes of a State that keeps its KV in
// memory.
func (s *State) flushMem() error {
	r, err := s.Ready()
	if r != nil {
		s.mkv.Apply(r.Writes)
		s.Advance(r)
	}
	return err
}

func (s *State) encodeCounts() []byte {
	var b []byte
	for _, n := range []int{s.nRecs, s.counts[0], s.counts[1], s.counts[2], s.nWaiting, s.nHeld, s.nInert} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	if s.counts[3] > 0 { // withdrawals came later: a state without any reads as before
		b = binary.AppendUvarint(b, uint64(s.counts[3]))
	}
	return b
}

func (s *State) decodeCounts(b []byte) error {
	for i, p := range []*int{&s.nRecs, &s.counts[0], &s.counts[1], &s.counts[2], &s.nWaiting, &s.nHeld, &s.nInert, &s.counts[3]} {
		if i == 7 && len(b) == 0 {
			break // written before withdrawals: none
		}
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return fmt.Errorf("%w: the counts do not decode", ErrDamaged)
		}
		*p, b = int(n), b[k:]
	}
	return nil
}

// encode returns the entry's bytes (not its CID, which is its key).
func (e *entry) encode() []byte {
	if e.stub {
		return []byte{entryFormat, e.flags, 'S'}
	}
	b := []byte{entryFormat, e.flags, 'R'}
	b = appendString(b, string(e.typ))
	b = binary.BigEndian.AppendUint64(b, uint64(e.time))
	b = append(b, byte(e.cls))
	b = appendString(b, e.reason)
	b = binary.AppendUvarint(b, uint64(len(e.waitOn)))
	for _, c := range e.waitOn {
		b = appendString(b, c.KeyString())
	}
	switch {
	case e.con != nil:
		c := e.con
		b = append(b, 'c')
		b = append(b, c.author[:]...)
		b = appendString(b, c.licence.KeyString())
		b = append(b, byte(statusIndex(c.status)))
		b = append(b, boolByte(c.held))
		b = binary.AppendUvarint(b, uint64(len(c.voters)))
		for _, v := range c.voters {
			b = append(b, v.author[:]...)
			b = appendString(b, v.latest.cid.KeyString())
			b = binary.BigEndian.AppendUint64(b, uint64(v.latest.time))
		}
		if c.pos != 0 { // written only for a contribution added with a place (AddAt)
			b = binary.AppendUvarint(b, c.pos)
		}
	case e.rev != nil:
		r := e.rev
		b = append(b, 'r')
		b = append(b, r.author[:]...)
		b = appendString(b, r.target.KeyString())
		b = appendString(b, r.under.KeyString())
		b = appendString(b, r.decision)
		if r.slot != r.author { // written only for a review cast through a rotation
			b = append(b, r.slot[:]...)
		}
	case e.ext != nil:
		x := e.ext
		b = append(b, 'x')
		b = append(b, x.author[:]...)
		b = appendString(b, x.target.KeyString())
		b = appendString(b, x.under.KeyString())
		b = binary.AppendUvarint(b, x.amount)
		b = binary.AppendUvarint(b, uint64(len(x.cosigners)))
		for _, k := range x.cosigners {
			b = append(b, k[:]...)
		}
	default:
		b = append(b, '-')
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var statuses = [...]Status{StatusPending, StatusAccepted, StatusRejected, StatusWithdrawn}

// decoder reads an encoded entry; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errors.New("short")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.err = errors.New("short")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes(int(d.uvarint()))) }

func (d *decoder) u64() uint64 {
	b := d.bytes(8)
	if d.err != nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (d *decoder) cid() cid.Cid {
	raw := d.bytes(int(d.uvarint()))
	if d.err != nil {
		return cid.Undef
	}
	if len(raw) == 0 {
		return cid.Undef
	}
	c, err := cid.Cast(raw)
	if err != nil {
		d.err = err
	}
	return c
}

func (d *decoder) key() (k protocol.PublicKey) {
	copy(k[:], d.bytes(len(k)))
	return k
}

// isStub reports whether an encoded entry is a stub.
func isStub(raw []byte) bool { return len(raw) >= 3 && raw[2] == 'S' }

// decodeEntry decodes the entry of record c, or its stub.
func decodeEntry(c cid.Cid, raw []byte) (*entry, error) {
	d := &decoder{b: raw}
	if f := d.byte(); d.err == nil && f != entryFormat {
		return nil, fmt.Errorf("%w: the entry of %s has format %d, not %d", ErrDamaged, c, f, entryFormat)
	}
	e := &entry{cid: c, raw: raw, flags: d.byte()}
	if d.byte() == 'S' {
		e.stub = true
		if d.err == nil && len(d.b) != 0 {
			d.err = errors.New("trailing bytes")
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: the entry of %s: %w", ErrDamaged, c, d.err)
		}
		return e, nil
	}
	e.typ = internType(protocol.Type(d.string()))
	e.time = protocol.HLC(d.u64())
	e.cls = class(d.byte())
	e.reason = internReason(d.string())
	if n := d.uvarint(); n > 0 && d.err == nil {
		e.waitOn = make([]cid.Cid, 0, min(n, 16))
		for range n {
			if e.waitOn = append(e.waitOn, d.cid()); d.err != nil {
				break
			}
		}
	}
	switch d.byte() {
	case 'c':
		con := &conInfo{author: d.key()}
		con.licence = d.cid()
		if i := int(d.byte()); i < len(statuses) {
			con.status = statuses[i]
		} else {
			d.err = errors.New("bad status")
		}
		con.held = d.byte() == 1
		for n := d.uvarint(); n > 0 && d.err == nil; n-- {
			con.voters = append(con.voters, voter{author: d.key(), latest: ref{cid: d.cid(), time: protocol.HLC(d.u64())}})
		}
		if len(d.b) > 0 {
			if con.pos = d.uvarint(); con.pos == 0 && d.err == nil {
				d.err = errors.New("place 0")
			}
		}
		e.con = con
	case 'r':
		e.rev = &revInfo{author: d.key(), target: d.cid(), under: d.cid(), decision: internDecision(d.string())}
		e.rev.slot = e.rev.author
		if len(d.b) > 0 {
			e.rev.slot = d.key()
		}
	case 'x':
		x := &extInfo{author: d.key(), target: d.cid(), under: d.cid(), amount: d.uvarint()}
		for n := d.uvarint(); n > 0 && d.err == nil; n-- {
			x.cosigners = append(x.cosigners, d.key())
		}
		e.ext = x
	case '-':
	default:
		if d.err == nil {
			d.err = errors.New("bad kind")
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: the entry of %s: %w", ErrDamaged, c, d.err)
	}
	return e, nil
}

// reasons are the inert reasons, interned when an entry is decoded.
var reasons = map[string]string{}

func init() {
	for _, r := range []string{reasonUnknownType, reasonGenesisSigners, reasonNoPrev, reasonPrev, reasonVersion,
		reasonSigners, reasonPrevRejected, reasonSignersRevoked, reasonRevoked, reasonBanned, reasonBanContested, reasonUnderNotMan,
		reasonTargetNotCon, reasonUnderInert, reasonUnderContested, reasonSuspended, reasonNotMaintainer,
		reasonTargetInert, reasonUnderNotLater, reasonLicenceNotMan, reasonLicenceInert, reasonLicenceContested,
		reasonNoCoalition, reasonNotSponsor, reasonSelfSponsor, reasonNotPledge, reasonAckAmount, reasonNotBeneficiary, reasonNoUnder, reasonAckSigners, reasonAckOutsider, reasonAckNotLater, reasonBenCosigned,
		reasonNoAssociation, reasonSubjectType, reasonNotDispute, reasonEffectKey, reasonEffectFit, reasonReplaces,
		reasonResNotLater, reasonReleaseNotCon, reasonSetAside, reasonReplacesLater, reasonActSuspended, reasonSetAsideHeld, reasonRotatedTwice, reasonSuccessorTwice, reasonNoSuccessor} {
		reasons[r] = r
	}
}

func internReason(r string) string {
	if x, ok := reasons[r]; ok {
		return x
	}
	return r
}

// itemKey is the key of an index item, or of a leaf bound: tag, time as 8
// big-endian bytes, digest.
func itemKey(tag byte, it *Item) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{tag}, it.Time), it.Digest[:]...)
}

func parseItemKey(k []byte) (Item, bool) {
	if len(k) != 1+8+protocol.DigestSize {
		return Item{}, false
	}
	return Item{Time: binary.BigEndian.Uint64(k[1:]), Digest: protocol.Digest(k[9:])}, true
}

// indexStore is the leafStore of a State's Index: its KV.
type indexStore struct{ s *State }

func (x indexStore) items(lo Item, hi *Item, fn func(Item)) error {
	err := x.s.kv.Scan([]byte{tagItem}, itemKey(tagItem, &lo), func(k, _ []byte) error {
		it, ok := parseItemKey(k)
		if !ok {
			return fmt.Errorf("%w: index item key %x", ErrDamaged, k)
		}
		if hi != nil && !it.less(hi) {
			return errStopScan
		}
		fn(it)
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	return nil
}

var errStopScan = errors.New("stop")

func (x indexStore) putItem(it Item) {
	x.s.ov.set([]byte{tagItem}, itemKey(tagItem, &it), op{v: []byte{}})
}

func (x indexStore) delItem(it Item) {
	x.s.ov.set([]byte{tagItem}, itemKey(tagItem, &it), op{del: true})
}

func (x indexStore) putLeaf(lo Item, a Agg) {
	x.s.ov.set([]byte{tagIdxLeaf}, itemKey(tagIdxLeaf, &lo), op{v: a.put(nil)})
}

func (x indexStore) seqs() (gathering, unstored uint64) {
	gathering = x.s.readySeq + 1
	unstored = gathering
	for _, r := range x.s.flight {
		unstored = min(unstored, r.seq)
	}
	return gathering, unstored
}

func (x indexStore) fail(err error) { x.s.fail(err) }

// openIndex opens the reconciliation index from its leaves in the KV,
// checking that they add up to the set.
func (s *State) openIndex() error {
	leaves, n, err := readLeaves(s.kv)
	if err != nil {
		return err
	}
	if n != s.Len() {
		return fmt.Errorf("%w: the reconciliation index holds %d records; the set, %d", ErrDamaged, n, s.Len())
	}
	s.idx.open(indexStore{s}, leaves)
	return nil
}

// readLeaves reads the reconciliation index's leaves from kv, and the
// number of items they hold.
func readLeaves(kv KV) ([]*inode, int, error) {
	var leaves []*inode
	n := 0
	err := kv.Scan([]byte{tagIdxLeaf}, nil, func(k, v []byte) error {
		lo, ok := parseItemKey(k)
		var a Agg
		if ok {
			a, ok = parseAgg(v)
		}
		// A leaf may be empty: its items were removed.
		if !ok || a.Count < 0 || a.Count > leafMax || len(leaves) == 0 && lo != (Item{}) {
			return fmt.Errorf("%w: index leaf %x: %x", ErrDamaged, k, v)
		}
		leaves = append(leaves, &inode{lo: lo, a: a})
		n += a.Count
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("crdt: reading the reconciliation index: %w", err)
	}
	return leaves, n, nil
}
