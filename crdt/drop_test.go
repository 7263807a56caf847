package crdt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
)

// droppingRecords is a holder's records less those it dropped: reading one
// of those fails with ErrDropped, as a node's store does.
type droppingRecords struct {
	raw     rawRecords
	dropped map[cid.Cid]bool
}

func (r droppingRecords) Record(c cid.Cid) (*protocol.Block, error) {
	if r.dropped[c] {
		return nil, fmt.Errorf("record %s: %w", c, ErrDropped)
	}
	return r.raw.Record(c)
}

// decisions is what the rules decided of every record in s, read without
// any record's bytes: each verdict, each contribution's status and
// confirming sponsorship, the counts and the root.
func decisions(t *testing.T, s *State) map[string]string {
	t.Helper()
	out := map[string]string{"root": s.Root().String()}
	p, a, r := s.Counts()
	out["counts"] = fmt.Sprint(p, a, r, s.Held(), s.Waiting(), s.NumInert(), s.Len())
	for _, c := range s.CIDs() {
		v, _ := s.Verdict(c)
		st, _ := s.Status(c)
		sp, _ := s.Sponsorship(c)
		out[c.String()] = fmt.Sprint(v.Class, " ", v.Reason, " ", st, " ", sp)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the state failed: %v", err)
	}
	return out
}

// A holder that dropped every record State.Droppable let it drop decides
// everything as one that kept them, as records arrive that name the dropped
// ones (sponsorships of the banned key's contributions, by their named
// sponsor and by others, reviews of them) and as the ban lifts; and it
// never needed the bytes of a record it dropped. What it may not drop: a
// paid contribution that names a sponsor, the banned key's profile, its
// manifests, and everything by keys not banned.
func TestDroppedRecordsDecideAlike(t *testing.T) {
	m := manifest([]int{0}, 1, []int{1}, 1, 1)
	m.Policy = &protocol.Policy{Bans: true, Coalition: 1}
	g := genesisBlock(t, m, 0)
	junk := contribution(t, g.CID, g.CID, 3, 5, "junk")
	paidJunk := paid(t, g.CID, g.CID, 4, 5, 3, "paid junk, sponsor named")
	selfPaid := paid(t, g.CID, g.CID, 5, 5, 5, "paid junk, self as sponsor")
	junkReview := review(t, g.CID, junk.CID, g.CID, 6, 5, protocol.DecisionAccept)
	honest := contribution(t, g.CID, g.CID, 7, 2, "honest")
	reviewOfHonest := review(t, g.CID, honest.CID, g.CID, 8, 5, protocol.DecisionReject)
	prof := profile(t, g.CID, 9, 5, "flooder")
	own := update(t, g.CID, 9, manifest([]int{5}, 1, nil, 0, 0), 1, []cid.Cid{g.CID}, 5) // not the association's
	bm := manifest([]int{0}, 1, []int{1}, 1, 1)
	bm.Banned = pubs(5)
	ban := update(t, g.CID, 10, bm, 1, []cid.Cid{g.CID}, 0)
	before := []*protocol.Block{g, junk, paidJunk, selfPaid, junkReview, honest, reviewOfHonest, prof, own, ban}
	wantDrop := map[cid.Cid]bool{junk.CID: true, junkReview.CID: true, reviewOfHonest.CID: true}

	// Records that arrive after the drop: every one reaches a dropped
	// record, or changes what the dropped records are.
	later := [][]*protocol.Block{
		{sponsorship(t, g.CID, junk.CID, 11, 3)},     // names a dropped contribution that names no sponsor
		{sponsorship(t, g.CID, selfPaid.CID, 12, 5)}, // of one kept, by its author, banned
		{sponsorship(t, g.CID, paidJunk.CID, 13, 3)}, // the named sponsor's, of one kept
		{sponsorship(t, g.CID, selfPaid.CID, 14, 2)}, // someone else's
		{review(t, g.CID, junk.CID, g.CID, 15, 1, protocol.DecisionAccept)},
		{review(t, g.CID, honest.CID, g.CID, 16, 1, protocol.DecisionAccept)},
		{update(t, g.CID, 20, manifest([]int{0}, 1, []int{1}, 1, 1), 2, []cid.Cid{ban.CID}, 0)}, // lifts the ban
		{sponsorship(t, g.CID, junk.CID, 21, 1)},
	}

	kept := New(g.CID)
	raw := rawRecords{}
	holder := droppingRecords{raw: raw, dropped: map[cid.Cid]bool{}}
	dropper := NewWith(g.CID, holder)
	add := func(bs ...*protocol.Block) {
		for _, b := range bs {
			raw[b.CID] = b.Raw
		}
		mustAdd(t, kept, bs...)
		mustAdd(t, dropper, bs...)
	}
	add(before...)
	for _, b := range before {
		if got := dropper.Droppable(b); got != wantDrop[b.CID] {
			t.Errorf("Droppable(%s %s by key %d) = %v, want %v", b.Record.Type(), b.CID, keyIndex(b.Record.Author), got, wantDrop[b.CID])
		}
		if dropper.Droppable(b) {
			holder.dropped[b.CID] = true
		}
	}
	if len(holder.dropped) != len(wantDrop) {
		t.Fatalf("dropped %d records, want %d", len(holder.dropped), len(wantDrop))
	}
	if d, k := decisions(t, dropper), decisions(t, kept); !maps.Equal(d, k) {
		t.Fatalf("right after the drop:\n%v\nwant\n%v", d, k)
	}
	for i, bs := range later {
		add(bs...)
		if d, k := decisions(t, dropper), decisions(t, kept); !maps.Equal(d, k) {
			t.Fatalf("after later record %d:\n%v\nwant\n%v", i, d, k)
		}
	}
	// Once the ban lifts, nothing is droppable, and the views of the
	// contributions go without the dropped reviews' rationales.
	for _, b := range before {
		if dropper.Droppable(b) {
			t.Errorf("Droppable(%s) after the ban lifted", b.CID)
		}
	}
	v, ok, err := dropper.Standing(honest.CID)
	if err != nil || !ok {
		t.Fatalf("Standing(honest) = %v, %v", ok, err)
	}
	if err := v.Fill(holder); err != nil {
		t.Fatalf("Fill with a dropped review: %v", err)
	}
	i := slices.IndexFunc(v.Reviews, func(r ReviewView) bool { return r.CID == reviewOfHonest.CID })
	if i < 0 || !v.Reviews[i].Dropped || v.Reviews[i].Rationale != "" {
		t.Fatalf("the dropped review in the view: %+v", v.Reviews)
	}
	for _, r := range v.Reviews {
		if r.CID != reviewOfHonest.CID && r.Dropped {
			t.Fatalf("a kept review marked dropped: %+v", r)
		}
	}
	v, _, _ = dropper.Standing(junk.CID)
	if err := v.Fill(holder); !errors.Is(err, ErrDropped) {
		t.Fatalf("Fill of a dropped contribution: %v, want ErrDropped", err)
	}
}
