package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// snapshot is everything the state derives, in a form that compares with
// reflect.DeepEqual.
type snapshot struct {
	Root     string
	Len      int
	Head     string
	Forks    []string
	OnChain  []string // sorted
	Revoked  []string // sorted hex
	Status   map[string]Status
	Counting map[string]bool // reviews that count
	Inert    map[string]string
	Waiting  int
	Counts   [3]int
}

func (a snapshot) diff(b snapshot) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, fmt.Sprintf("%s: %v != %v", va.Type().Field(i).Name, va.Field(i), vb.Field(i)))
		}
	}
	return strings.Join(out, "\n")
}

// snap reads a fast State through its public API only.
func snap(s *State) snapshot {
	out := snapshot{Root: s.Root().String(), Len: s.Len(), Status: map[string]Status{},
		Counting: map[string]bool{}, Inert: map[string]string{}, Waiting: s.Waiting()}
	if h, _ := s.Head(); h.Defined() {
		out.Head = h.String()
	}
	for _, f := range s.Forks() {
		out.Forks = append(out.Forks, f.String())
	}
	for _, v := range s.History() {
		out.OnChain = append(out.OnChain, v.CID.String())
	}
	sort.Strings(out.OnChain)
	for _, k := range s.Revoked() {
		out.Revoked = append(out.Revoked, k.Hex())
	}
	sort.Strings(out.Revoked)
	for _, c := range s.Contributions() {
		out.Status[c.CID.String()] = c.Status
		for _, r := range c.Reviews {
			if r.Counts {
				out.Counting[r.CID.String()] = true
			}
		}
	}
	for _, r := range s.Inert() {
		out.Inert[r.CID.String()] = r.Reason
	}
	out.Counts[0], out.Counts[1], out.Counts[2] = s.Counts()
	return out
}

// reference recomputes everything from the record set, by the rules in
// doc.go, as plainly as possible.
func reference(set map[cid.Cid]*protocol.Block) snapshot {
	out := snapshot{Len: len(set), Status: map[string]Status{}, Counting: map[string]bool{}, Inert: map[string]string{}}
	out.Root = refRoot(set)
	ch := refChain(set)
	for c, st := range ch.state {
		switch st {
		case "chain":
			out.OnChain = append(out.OnChain, c.String())
		case "wait":
			out.Waiting++
		default:
			out.Inert[c.String()] = st
		}
	}
	sort.Strings(out.OnChain)
	for k := range ch.revoked {
		out.Revoked = append(out.Revoked, k.Hex())
	}
	sort.Strings(out.Revoked)
	if len(ch.heads) > 0 {
		out.Head = ch.heads[0].String()
	}
	if len(ch.heads) > 1 {
		for _, h := range ch.heads {
			out.Forks = append(out.Forks, h.String())
		}
	}
	// Reviews.
	eligible := map[cid.Cid][]*protocol.Block{} // by target
	for c, b := range set {
		if b.Record.Review() == nil {
			continue
		}
		switch st := refReview(set, ch, b); st {
		case "ok":
			t := b.Record.Review().Target.Cid
			eligible[t] = append(eligible[t], b)
		case "wait":
			out.Waiting++
		default:
			out.Inert[c.String()] = st
		}
	}
	// Contributions.
	for c, b := range set {
		con := b.Record.Contribution()
		if con == nil {
			continue
		}
		// Which reviews count does not depend on the licence.
		decided := refDecide(set, eligible[c], out.Counting)
		st := StatusPending
		lic, ok := set[con.Licence.Cid]
		switch {
		case !ok:
			out.Waiting++
		case lic.Record.Manifest() == nil:
			out.Inert[c.String()] = reasonLicenceNotMan
		case ch.state[con.Licence.Cid] == "wait":
			out.Waiting++
		case ch.state[con.Licence.Cid] != "chain":
			out.Inert[c.String()] = reasonLicenceInert
		default:
			st = decided
		}
		out.Status[c.String()] = st
		out.Counts[map[Status]int{StatusPending: 0, StatusAccepted: 1, StatusRejected: 2}[st]]++
	}
	return out
}

func refRoot(set map[cid.Cid]*protocol.Block) string {
	var ds [][]byte
	for c := range set {
		b := c.Bytes()
		ds = append(ds, b[len(b)-32:]) // the sha2-256 digest
	}
	sort.Slice(ds, func(i, j int) bool { return bytes.Compare(ds[i], ds[j]) < 0 })
	top := refTrieHash(ds, 0)
	h := sha256.New()
	h.Write([]byte("commons/crdt/root/v2\n"))
	h.Write(binary.AppendUvarint(nil, uint64(len(ds))))
	h.Write(top)
	return hex.EncodeToString(h.Sum(nil))
}

// refTrieHash hashes sorted digests as the trie node at depth (in nibbles)
// would: a leaf of up to 64, else 16 children by the depth-th nibble.
func refTrieHash(ds [][]byte, depth int) []byte {
	h := sha256.New()
	if len(ds) <= 64 || depth >= 63 {
		h.Write([]byte{0})
		h.Write(binary.AppendUvarint(nil, uint64(len(ds))))
		for _, d := range ds {
			h.Write(d)
		}
		return h.Sum(nil)
	}
	groups := make([][][]byte, 16)
	for _, d := range ds {
		n := d[depth/2] >> 4
		if depth%2 == 1 {
			n = d[depth/2] & 0x0f
		}
		groups[n] = append(groups[n], d)
	}
	h.Write([]byte{1})
	for _, g := range groups {
		if len(g) == 0 {
			h.Write(make([]byte, 32))
			continue
		}
		h.Write(refTrieHash(g, depth+1))
	}
	return h.Sum(nil)
}

type refChainResult struct {
	state   map[cid.Cid]string // "chain", "wait" or an inert reason
	revoked map[protocol.PublicKey]bool
	heads   []cid.Cid // resolved first
}

func refChain(set map[cid.Cid]*protocol.Block) refChainResult {
	res := refChainResult{state: map[cid.Cid]string{}, revoked: map[protocol.PublicKey]bool{}}
	var classify func(c cid.Cid) string
	var lineage func(c cid.Cid) map[protocol.PublicKey]bool
	lineage = func(c cid.Cid) map[protocol.PublicKey]bool {
		m := set[c].Record.Manifest()
		out := map[protocol.PublicKey]bool{}
		for _, k := range m.Revoked {
			out[k] = true
		}
		for _, p := range m.Prev {
			for k := range lineage(p.Cid) {
				out[k] = true
			}
		}
		return out
	}
	signers := func(r *protocol.Record, assoc []protocol.PublicKey, revoked map[protocol.PublicKey]bool) uint64 {
		seen := map[protocol.PublicKey]bool{}
		for _, k := range r.Signers() {
			for _, a := range assoc {
				if a == k && !revoked[k] {
					seen[k] = true
				}
			}
		}
		return uint64(len(seen))
	}
	classify = func(c cid.Cid) string {
		if st, ok := res.state[c]; ok {
			return st
		}
		r := set[c].Record
		m := r.Manifest()
		st := func() string {
			if !r.Commons.Defined() {
				if signers(r, m.Association, nil) >= m.Threshold {
					return "chain"
				}
				return reasonGenesisSigners
			}
			if len(m.Prev) == 0 {
				return reasonNoPrev
			}
			for _, p := range m.Prev {
				pb, ok := set[p.Cid]
				if !ok {
					continue
				}
				if pb.Record.Manifest() == nil {
					return reasonPrev
				}
				if s := classify(p.Cid); s != "chain" && s != "wait" {
					return reasonPrev
				}
			}
			for _, p := range m.Prev {
				if _, ok := set[p.Cid]; !ok || classify(p.Cid) == "wait" {
					return "wait"
				}
			}
			for _, p := range m.Prev {
				if m.Version <= set[p.Cid].Record.Manifest().Version {
					return reasonVersion
				}
			}
			for _, p := range m.Prev {
				pm := set[p.Cid].Record.Manifest()
				if signers(r, pm.Association, lineage(p.Cid)) < pm.Threshold {
					return reasonSigners
				}
			}
			return "chain"
		}()
		res.state[c] = st
		return st
	}
	for c, b := range set {
		if b.Record.Manifest() != nil {
			classify(c)
		}
	}
	named := map[cid.Cid]bool{}
	for c, st := range res.state {
		if st == "chain" {
			for _, p := range set[c].Record.Manifest().Prev {
				named[p.Cid] = true
			}
			for _, k := range set[c].Record.Manifest().Revoked {
				res.revoked[k] = true
			}
		}
	}
	for c, st := range res.state {
		if st == "chain" && !named[c] {
			res.heads = append(res.heads, c)
		}
	}
	sort.Slice(res.heads, func(i, j int) bool {
		vi := set[res.heads[i]].Record.Manifest().Version
		vj := set[res.heads[j]].Record.Manifest().Version
		if vi != vj {
			return vi > vj
		}
		return bytes.Compare(res.heads[i].Bytes(), res.heads[j].Bytes()) < 0
	})
	return res
}

// refReview returns "ok", "wait" or an inert reason.
func refReview(set map[cid.Cid]*protocol.Block, ch refChainResult, b *protocol.Block) string {
	r := b.Record
	v := r.Review()
	under, hasUnder := set[v.Under.Cid]
	target, hasTarget := set[v.Target.Cid]
	switch {
	case ch.revoked[r.Author]:
		return reasonRevoked
	case hasUnder && under.Record.Manifest() == nil:
		return reasonUnderNotMan
	case hasTarget && target.Record.Contribution() == nil:
		return reasonTargetNotCon
	case hasUnder && ch.state[v.Under.Cid] != "chain" && ch.state[v.Under.Cid] != "wait":
		return reasonUnderInert
	case hasUnder && ch.state[v.Under.Cid] == "chain" && !under.Record.Manifest().IsMaintainer(r.Author):
		return reasonNotMaintainer
	case !hasUnder || ch.state[v.Under.Cid] == "wait" || !hasTarget:
		return "wait"
	}
	return "ok"
}

// refDecide picks each maintainer's latest eligible review, marks it in
// counting, and tallies the votes per version.
func refDecide(set map[cid.Cid]*protocol.Block, reviews []*protocol.Block, counting map[string]bool) Status {
	latest := map[protocol.PublicKey]*protocol.Block{}
	for _, b := range reviews {
		cur, ok := latest[b.Record.Author]
		if !ok || b.Record.Time > cur.Record.Time ||
			b.Record.Time == cur.Record.Time && bytes.Compare(b.CID.Bytes(), cur.CID.Bytes()) > 0 {
			latest[b.Record.Author] = b
		}
	}
	accepts, rejects := map[cid.Cid]uint64{}, map[cid.Cid]uint64{}
	for _, b := range latest {
		counting[b.CID.String()] = true
		v := b.Record.Review()
		switch v.Decision {
		case protocol.DecisionAccept:
			accepts[v.Under.Cid]++
		case protocol.DecisionReject:
			rejects[v.Under.Cid]++
		}
	}
	for u, n := range rejects {
		if q := set[u].Record.Manifest().RejectQuorum; q > 0 && n >= q {
			return StatusRejected
		}
	}
	for u, n := range accepts {
		if q := set[u].Record.Manifest().Quorum; q > 0 && n >= q {
			return StatusAccepted
		}
	}
	return StatusPending
}
