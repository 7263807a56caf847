package crdt

import (
	"testing"

	"github.com/commons-p2p/commons/protocol"
)

// coalitionGenesis founds a commons with key 0 as association and key 1
// as maintainer, carrying the coalition's records unless off.
func coalitionGenesis(t *testing.T, on bool) *protocol.Block {
	t.Helper()
	m := manifest([]int{0}, 1, []int{1}, 1, 1)
	if on {
		m.Policy = &protocol.Policy{Coalition: 1}
	}
	return genesisBlock(t, m, 0)
}

func TestProfileLatestCounts(t *testing.T) {
	g := coalitionGenesis(t, true)
	s := New(g.CID)
	p1 := profile(t, g.CID, 5, 3, "first")
	p2 := profile(t, g.CID, 7, 3, "second")
	mustAdd(t, s, p2, g, p1)
	got, ok := s.Profile(key(3).Public())
	if !ok || got != p2.CID {
		t.Fatalf("Profile = %s, %v; want the later %s", got, ok, p2.CID)
	}
	if v, _ := s.Verdict(p1.CID); v.Class != ClassEffective {
		t.Errorf("earlier profile: %+v", v)
	}
}
