package crdt

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"sync"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// fataler is what the builders need of a *testing.T, *testing.B or
// *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// nKeys is the number of keys generators draw identities from; targeted
// tests may use the pool's others too.
const nKeys = 6

var (
	keysOnce sync.Once
	keyPool  [10]protocol.PrivateKey
)

// key returns the i-th test key (deterministic seeds).
func key(i int) protocol.PrivateKey {
	keysOnce.Do(func() {
		for j := range keyPool {
			keyPool[j] = protocol.NewPrivateKeyFromSeed(bytes.Repeat([]byte{byte(j + 1)}, 32))
		}
	})
	return keyPool[i]
}

// keyIndex returns the index of the test key whose public half is p.
func keyIndex(p protocol.PublicKey) int {
	for i := range len(keyPool) {
		if key(i).Public() == p {
			return i
		}
	}
	panic("not a test key")
}

// pubs returns the public keys of the given key indexes, sorted by bytes.
func pubs(idx ...int) []protocol.PublicKey {
	var out []protocol.PublicKey
	for _, i := range idx {
		out = append(out, key(i).Public())
	}
	slices.SortFunc(out, protocol.PublicKey.Compare)
	return slices.CompactFunc(out, func(a, b protocol.PublicKey) bool { return a == b })
}

// links turns CIDs into a sorted, duplicate-free Prev list.
func links(cs ...cid.Cid) []protocol.Link {
	slices.SortFunc(cs, compareCID)
	cs = slices.Compact(cs)
	out := make([]protocol.Link, len(cs))
	for i, c := range cs {
		out[i] = protocol.Link{Cid: c}
	}
	return out
}

// seal signs r by key author, co-signs it by the others, and encodes it.
func seal(tb fataler, r *protocol.Record, author int, cosigners ...int) *protocol.Block {
	tb.Helper()
	if err := protocol.Sign(r, key(author)); err != nil {
		tb.Fatalf("sign: %v", err)
	}
	done := map[int]bool{author: true}
	for _, c := range cosigners {
		if done[c] {
			continue
		}
		done[c] = true
		if err := protocol.Cosign(r, key(c)); err != nil {
			tb.Fatalf("cosign: %v", err)
		}
	}
	b, err := protocol.NewBlock(r)
	if err != nil {
		tb.Fatalf("new block: %v", err)
	}
	return b
}

// manifest returns a manifest body with the given association (threshold t)
// and maintainers (quorums q, rq).
func manifest(assoc []int, t uint64, maint []int, q, rq uint64) *protocol.Manifest {
	return &protocol.Manifest{
		Name: "Test commons", Licence: "CC-BY-SA-4.0",
		Association: pubs(assoc...), Threshold: t,
		Maintainers: pubs(maint...), Quorum: q, RejectQuorum: rq,
	}
}

// genesisBlock signs m as a genesis manifest.
func genesisBlock(tb fataler, m *protocol.Manifest, author int, cosigners ...int) *protocol.Block {
	tb.Helper()
	return seal(tb, &protocol.Record{Time: 1, Body: m}, author, cosigners...)
}

// update signs m as an update of the commons id naming prev.
func update(tb fataler, id cid.Cid, t protocol.HLC, m *protocol.Manifest, version uint64, prev []cid.Cid, author int, cosigners ...int) *protocol.Block {
	tb.Helper()
	m.Prev, m.Version = links(prev...), version
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: m}, author, cosigners...)
}

// contribution signs a contribution to id licensed under lic.
func contribution(tb fataler, id, lic cid.Cid, t protocol.HLC, author int, title string) *protocol.Block {
	tb.Helper()
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: &protocol.Contribution{
		Title: title, Licence: protocol.Link{Cid: lic}, Provenance: protocol.ProvenanceVolunteer,
	}}, author)
}

// paid signs a paid contribution naming sponsor.
func paid(tb fataler, id, lic cid.Cid, t protocol.HLC, author, sponsor int, title string) *protocol.Block {
	tb.Helper()
	k := key(sponsor).Public()
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: &protocol.Contribution{
		Title: title, Licence: protocol.Link{Cid: lic}, Provenance: protocol.ProvenancePaid, Sponsor: &k,
	}}, author)
}

// profile signs a profile.
func profile(tb fataler, id cid.Cid, t protocol.HLC, author int, name string) *protocol.Block {
	tb.Helper()
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: &protocol.Profile{Name: name}}, author)
}

// sponsorship signs a sponsorship of target.
func sponsorship(tb fataler, id, target cid.Cid, t protocol.HLC, author int) *protocol.Block {
	tb.Helper()
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: &protocol.Sponsorship{Target: protocol.Link{Cid: target}}}, author)
}

// review signs a review of target under the manifest under.
func review(tb fataler, id, target, under cid.Cid, t protocol.HLC, author int, decision string) *protocol.Block {
	tb.Helper()
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: &protocol.Review{
		Target: protocol.Link{Cid: target}, Decision: decision, Under: protocol.Link{Cid: under},
	}}, author)
}

// mustAdd adds blocks one by one and fails the test on error.
func mustAdd(tb fataler, s *State, bs ...*protocol.Block) {
	tb.Helper()
	for _, b := range bs {
		if _, err := s.Add(b); err != nil {
			tb.Fatalf("add %s: %v", b.CID, err)
		}
	}
}

// viewOf returns s.Contribution(c), failing t if a read fails.
func viewOf(t fataler, s *State, c cid.Cid) (ContributionView, bool) {
	t.Helper()
	v, ok, err := s.Contribution(c)
	if err != nil {
		t.Fatalf("Contribution(%s): %v", c, err)
	}
	return v, ok
}

// viewsOf returns s.Contributions(), failing t if a read fails.
func viewsOf(t fataler, s *State) []ContributionView {
	t.Helper()
	vs, err := s.Contributions()
	if err != nil {
		t.Fatalf("Contributions: %v", err)
	}
	return vs
}

// recordOf returns s.Record(c), failing t if a read fails.
func recordOf(t fataler, s *State, c cid.Cid) *protocol.Block {
	t.Helper()
	b, err := s.Record(c)
	if err != nil {
		t.Fatalf("Record(%s): %v", c, err)
	}
	return b
}

// merge returns Merge(a, b), failing t if a read fails.
func merge(t fataler, a, b *State) *State {
	t.Helper()
	m, err := Merge(a, b)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	return m
}

// rawRecords holds records as bytes and parses them anew at every read, as
// a node's store does: a State reading through it shares no decoded record
// with the blocks it was given.
type rawRecords map[cid.Cid][]byte

func (r rawRecords) Record(c cid.Cid) (*protocol.Block, error) {
	raw, ok := r[c]
	if !ok {
		return nil, errNotHeld
	}
	return protocol.Parse(raw)
}

var errNotHeld = errors.New("not held")

// inertOf returns s.Inert(), failing t if a read fails.
func inertOf(t fataler, s *State) []InertRecord {
	out, err := s.Inert()
	if err != nil {
		t.Fatalf("Inert: %v", err)
	}
	return out
}

// liveHeap returns the bytes of heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
