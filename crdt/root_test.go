package crdt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
)

// TestRootLargeSets exercises the root trie where leaves split (thousands
// of records): any insertion order gives the reference root, after every
// batch, and CIDs stays sorted and complete.
func TestRootLargeSets(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1}, 1, 1), 0)
	id := g.CID
	var blocks []*protocol.Block
	for i := range 3000 {
		r := &protocol.Record{Commons: id, Time: protocol.HLC(1000 + i), Body: &protocol.Contribution{
			Title: fmt.Sprint("contribution ", i), Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer,
		}}
		r.Author = key(4).Public()
		blk, err := protocol.NewBlock(r)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, blk)
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			order := slices.Clone(blocks)
			rand.New(rand.NewPCG(seed, 0)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			s := New(id)
			mustAdd(t, s, g)
			set := map[cid.Cid]*protocol.Block{g.CID: g}
			for k := 0; k < len(order); k += 700 {
				batch := order[k:min(len(order), k+700)]
				mustAdd(t, s, batch...)
				for _, b := range batch {
					set[b.CID] = b
				}
				if got, want := s.Root().String(), refRoot(set); got != want {
					t.Fatalf("after %d records: root %s, reference %s", len(set), got, want)
				}
			}
			cs := s.CIDs()
			if len(cs) != len(set) || !slices.IsSortedFunc(cs, compareCID) {
				t.Fatalf("CIDs: %d, sorted %v; want %d sorted", len(cs), slices.IsSortedFunc(cs, compareCID), len(set))
			}
		})
	}
	// One record fewer gives another root.
	a, b := New(id), New(id)
	mustAdd(t, a, append([]*protocol.Block{g}, blocks...)...)
	mustAdd(t, b, append([]*protocol.Block{g}, blocks[1:]...)...)
	if a.Root() == b.Root() {
		t.Fatal("different sets, same root")
	}
}
