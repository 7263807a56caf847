package crdt

import (
	"bytes"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// byBytes sorts CIDs by their binary form, written out here rather than
// through compareCID, so that the tests do not borrow the order they check.
func byBytes(cs []cid.Cid) []cid.Cid {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b cid.Cid) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return out
}

// A contested manifest attacked by more than MaxAttackedBy manifests lists
// the MaxAttackedBy with the lowest CIDs, in CID order, and counts them all;
// ContestedManifests and ContestedCIDs list the contest in their orders.
func TestAttackedByListsLowestCIDs(t *testing.T) {
	const n = MaxAttackedBy + 4
	g := genesisBlock(t, manifest([]int{0, 2}, 1, []int{4}, 1, 1), 0)
	hm := manifest([]int{0}, 1, []int{4}, 1, 1)
	hm.Revoked = pubs(2)
	h := update(t, g.CID, 20, hm, 1, []cid.Cid{g.CID}, 0)
	s := New(g.CID)
	mustAdd(t, s, g, h)
	var thieves []cid.Cid
	for i := range n {
		am := manifest([]int{2}, 1, []int{3}, 1, 1)
		am.Revoked = pubs(0)
		a := update(t, g.CID, protocol.HLC(21+i), am, 1, []cid.Cid{g.CID}, 2)
		mustAdd(t, s, a)
		thieves = append(thieves, a.CID)
	}

	all := byBytes(append(slices.Clone(thieves), h.CID))
	if got := s.ContestedCIDs(); !slices.Equal(got, all) {
		t.Fatalf("ContestedCIDs %v, want %v", got, all)
	}
	cm := s.ContestedManifests()
	var got []cid.Cid
	for _, v := range cm {
		got = append(got, v.CID)
	}
	if !slices.Equal(got, all) { // every version is 1: by CID
		t.Fatalf("ContestedManifests %v, want %v", got, all)
	}
	for _, v := range cm {
		want, wantN := []cid.Cid{h.CID}, 1
		if v.CID == h.CID {
			want, wantN = byBytes(thieves)[:MaxAttackedBy], n
		}
		if !v.Contested || v.Head || !slices.Equal(v.AttackedBy, want) || v.Attackers != wantN {
			t.Fatalf("%s: contested %v, head %v, attacked by %d %v; want %d %v", v.CID, v.Contested, v.Head, v.Attackers, v.AttackedBy, wantN, want)
		}
	}
	if hs := s.History(); len(hs) != 1 || hs[0].CID != g.CID || !hs[0].Head || hs[0].AttackedBy != nil || hs[0].Attackers != 0 {
		t.Fatalf("history %+v, want the genesis alone, a head attacked by nothing", hs)
	}
}
