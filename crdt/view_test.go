package crdt

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// Merge of states of different commons panics, as its doc comment says,
// whichever side is empty, and leaves both states as they were: nothing of
// one commons reaches the other.
func TestMergeOfAnotherCommons(t *testing.T) {
	f := newFx(t, 1, 1)
	c := f.con("here")
	f.add(c, f.rev(c, f.g, 11, 1, protocol.DecisionAccept))
	og := genesisBlock(t, manifest([]int{1}, 1, []int{2}, 1, 1), 1)
	o := New(og.CID)
	oc := contribution(t, og.CID, og.CID, 5, 3, "elsewhere")
	mustAdd(t, o, og, oc, review(t, og.CID, oc.CID, og.CID, 6, 2, protocol.DecisionReject))
	before, obefore := snap(f.s), snap(o)

	for _, tc := range []struct {
		name string
		a, b *State
	}{
		{"ours then theirs", f.s, o},
		{"theirs then ours", o, f.s},
		{"an empty state of another commons", f.s, New(og.CID)},
		{"into an empty state of another commons", New(og.CID), f.s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m *State
			p := func() (p any) {
				defer func() { p = recover() }()
				m = merge(t, tc.a, tc.b)
				return nil
			}()
			if msg := fmt.Sprint(p); p == nil || !strings.Contains(msg, "different commons") {
				t.Fatalf("Merge returned %v (panic %v), want a panic about different commons", m, p)
			}
			if d := snap(f.s).diff(before); d != "" {
				t.Fatalf("our state changed:\n%s", d)
			}
			if d := snap(o).diff(obefore); d != "" {
				t.Fatalf("their state changed:\n%s", d)
			}
			for _, x := range o.CIDs() {
				if f.s.Has(x) {
					t.Fatalf("their record %s is in our state", x)
				}
			}
		})
	}
}

// protocol forbids a zero quorum in a manifest with maintainers, and a
// manifest without maintainers has both quorums 0 and decides nothing.
// crdt does not validate (the caller does, doc.go), so a zero quorum can
// only reach it in a block whose validation was skipped; it decides
// nothing there either (SPEC §12.5: a version without maintainers never
// accepts or rejects).
func TestZeroQuorum(t *testing.T) {
	t.Run("protocol refuses it", func(t *testing.T) {
		for _, tc := range []struct {
			field string
			q, rq uint64
		}{{"body.quorum", 0, 1}, {"body.reject_quorum", 1, 0}} {
			g := genesisBlock(t, manifest([]int{0}, 1, nil, 0, 0), 0)
			r := &protocol.Record{Commons: g.CID, Time: 2, Body: manifest([]int{0}, 1, []int{1, 2}, tc.q, tc.rq)}
			r.Manifest().Prev, r.Manifest().Version = links(g.CID), 1
			err := protocol.Sign(r, key(0))
			var fe *protocol.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("quorum %d, reject quorum %d: sign gave %v, want invalid %s", tc.q, tc.rq, err, tc.field)
			}
		}
	})
	t.Run("no maintainers decide nothing", func(t *testing.T) {
		g := genesisBlock(t, manifest([]int{0}, 1, nil, 0, 0), 0)
		c := contribution(t, g.CID, g.CID, 10, 5, "c")
		acc := review(t, g.CID, c.CID, g.CID, 11, 0, protocol.DecisionAccept) // an association key
		rej := review(t, g.CID, c.CID, g.CID, 12, 1, protocol.DecisionReject)
		scenario{g.CID, []*protocol.Block{g, c, acc, rej}}.check(t, func(s *State) {
			wantStatus(t, s, c, StatusPending)
			wantInert(t, s, acc.CID, reasonNotMaintainer)
			wantInert(t, s, rej.CID, reasonNotMaintainer)
			if v, _ := viewOf(t, s, c.CID); v.Held || v.Inert != "" || len(v.Reviews) != 2 || v.Reviews[0].Counts || v.Reviews[1].Counts {
				t.Fatalf("view %+v", v)
			}
			if p, a, r := s.Counts(); p != 1 || a != 0 || r != 0 {
				t.Fatalf("counts %d %d %d", p, a, r)
			}
		})
	})
	t.Run("unvalidated zero quorums decide nothing", func(t *testing.T) {
		g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 2}, 1, 1), 0)
		m := g.Record.Manifest()
		m.Quorum, m.RejectQuorum = 0, 0 // after signing: what validation would refuse
		acc := contribution(t, g.CID, g.CID, 10, 5, "accepted by one")
		rej := contribution(t, g.CID, g.CID, 10, 5, "rejected by one")
		bs := []*protocol.Block{g, acc, rej,
			review(t, g.CID, acc.CID, g.CID, 11, 1, protocol.DecisionAccept),
			review(t, g.CID, rej.CID, g.CID, 11, 2, protocol.DecisionReject)}
		scenario{g.CID, bs}.check(t, func(s *State) {
			for _, c := range []*protocol.Block{acc, rej} {
				v, _ := viewOf(t, s, c.CID)
				if v.Status != StatusPending || v.Held || len(v.Reviews) != 1 || !v.Reviews[0].Counts {
					t.Fatalf("%s: %+v, want pending, its review counting", c.Record.Contribution().Title, v)
				}
			}
		})
	})
}

// revision signs a contribution to id under lic that revises revises.
func revision(tb fataler, id, lic, revises cid.Cid, t protocol.HLC, author int, title string) *protocol.Block {
	tb.Helper()
	return seal(tb, &protocol.Record{Commons: id, Time: t, Body: &protocol.Contribution{
		Title: title, Licence: protocol.Link{Cid: lic}, Revises: &protocol.Link{Cid: revises},
		Provenance: protocol.ProvenanceVolunteer,
	}}, author)
}

// A contribution's Revises link is shown as it is (Body.Revises) and is no
// dependency (doc.go, SPEC §12.4): a revision of a missing record does not
// wait, one of a manifest is not inert, and a revision neither inherits
// the status or reviews of what it revises nor changes them.
func TestRevises(t *testing.T) {
	f := newFx(t, 1, 1)
	orig := f.con("orig")
	accOrig := f.rev(orig, f.g, 11, 1, protocol.DecisionAccept)
	rev := revision(t, f.id, f.id, orig.CID, 12, 4, "revises the accepted one")
	missing := f.con("never added")
	ofMissing := revision(t, f.id, f.id, missing.CID, 12, 4, "revises a missing record")
	accMissing := f.rev(ofMissing, f.g, 13, 2, protocol.DecisionAccept)
	ofManifest := revision(t, f.id, f.id, f.id, 12, 4, "revises a manifest")
	rejManifest := f.rev(ofManifest, f.g, 13, 3, protocol.DecisionReject)
	sc := scenario{f.id, []*protocol.Block{f.g, orig, accOrig, rev, ofMissing, accMissing, ofManifest, rejManifest}}
	sc.check(t, func(s *State) {
		if s.Waiting() != 0 || len(inertOf(t, s)) != 0 {
			t.Fatalf("waiting %d, inert %v: a Revises link is no dependency", s.Waiting(), inertOf(t, s))
		}
		for _, tc := range []struct {
			c       *protocol.Block
			revises cid.Cid
			status  Status
			reviews []cid.Cid
		}{
			{orig, cid.Undef, StatusAccepted, []cid.Cid{accOrig.CID}},
			{rev, orig.CID, StatusPending, nil},
			{ofMissing, missing.CID, StatusAccepted, []cid.Cid{accMissing.CID}},
			{ofManifest, f.id, StatusRejected, []cid.Cid{rejManifest.CID}},
		} {
			v, ok := viewOf(t, s, tc.c.CID)
			var revises cid.Cid
			if v.Body != nil && v.Body.Revises != nil {
				revises = v.Body.Revises.Cid
			}
			var reviews []cid.Cid
			for _, r := range v.Reviews {
				reviews = append(reviews, r.CID)
			}
			if !ok || revises != tc.revises || v.Status != tc.status || v.Inert != "" || !slices.Equal(reviews, tc.reviews) {
				t.Fatalf("%s: revises %s, %s, inert %q, reviews %v; want revises %s, %s, reviews %v",
					tc.c.Record.Contribution().Title, revises, v.Status, v.Inert, reviews, tc.revises, tc.status, tc.reviews)
			}
		}
	})
	// The revised record arriving later changes nothing of its revision.
	s := New(f.id)
	mustAdd(t, s, sc.recs...)
	ch, err := s.Add(missing)
	if err != nil || !slices.Equal(ch, []Change{{Contribution: missing.CID, To: StatusPending}}) {
		t.Fatalf("adding the revised record: changes %v, %v", ch, err)
	}
	wantStatus(t, s, ofMissing, StatusAccepted)
}

// Every list comes in its documented order, whatever the arrival order,
// with ties in time broken by CID: Contributions and each contribution's
// Reviews by (time, CID), Inert by CID, Revoked by key bytes, History by
// (version, CID). The random histories check the same against the
// reference (TestReference); this one does not depend on what they draw.
func TestListOrder(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1, 2}, 2, 2), 0)
	vm := manifest([]int{0}, 1, []int{1, 2}, 2, 2)
	vm.Revoked = pubs(3, 4, 5)
	v1 := update(t, g.CID, 2, vm, 1, []cid.Cid{g.CID}, 0)
	fork := update(t, g.CID, 3, manifest([]int{0}, 1, []int{1, 2}, 2, 2), 1, []cid.Cid{g.CID}, 0)
	var cons, inert []*protocol.Block
	for i, tm := range []protocol.HLC{10, 5, 10, 5, 10} {
		cons = append(cons, contribution(t, g.CID, g.CID, tm, 5, fmt.Sprint("c", i)))
	}
	c := cons[0]
	var revs []*protocol.Block
	for i, tm := range []protocol.HLC{12, 11, 12, 11} {
		d := []string{protocol.DecisionAccept, protocol.DecisionReject}[i/2]
		revs = append(revs, review(t, g.CID, c.CID, g.CID, tm, 1+i%2, d))
	}
	for i := range 3 { // licensed under a contribution: inert
		inert = append(inert, contribution(t, g.CID, c.CID, 7, 5, fmt.Sprint("i", i)))
	}
	inert = append(inert, review(t, g.CID, c.CID, g.CID, 12, 3, protocol.DecisionReject)) // revoked, no maintainer
	recs := append(append(append([]*protocol.Block{g, v1, fork}, cons...), revs...), inert...)

	byTime := func(bs []*protocol.Block) []cid.Cid {
		bs = slices.Clone(bs)
		slices.SortFunc(bs, func(a, b *protocol.Block) int {
			if a.Record.Time != b.Record.Time {
				return cmp.Compare(a.Record.Time, b.Record.Time)
			}
			return bytes.Compare(a.CID.Bytes(), b.CID.Bytes())
		})
		var out []cid.Cid
		for _, b := range bs {
			out = append(out, b.CID)
		}
		return out
	}
	wantCons := byTime(append(slices.Clone(cons), inert[:3]...))
	wantRevs := byTime(append(slices.Clone(revs), inert[3]))
	var wantInert []cid.Cid
	for _, b := range inert {
		wantInert = append(wantInert, b.CID)
	}
	wantInert = byBytes(wantInert)
	var wantRevoked []protocol.PublicKey
	for _, i := range []int{5, 3, 4} {
		wantRevoked = append(wantRevoked, key(i).Public())
	}
	slices.SortFunc(wantRevoked, func(a, b protocol.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	wantHistory := append([]cid.Cid{g.CID}, byBytes([]cid.Cid{v1.CID, fork.CID})...)

	for _, order := range [][]*protocol.Block{recs, reversed(recs), rotated(recs, 5), reversed(rotated(recs, 9))} {
		s := New(g.CID)
		mustAdd(t, s, order...)
		var gotCons, gotRevs, gotInert, gotHistory []cid.Cid
		for _, v := range viewsOf(t, s) {
			gotCons = append(gotCons, v.CID)
		}
		v, _ := viewOf(t, s, c.CID)
		for _, r := range v.Reviews {
			gotRevs = append(gotRevs, r.CID)
		}
		for _, r := range inertOf(t, s) {
			gotInert = append(gotInert, r.CID)
		}
		for _, v := range s.History() {
			gotHistory = append(gotHistory, v.CID)
		}
		for _, l := range []struct {
			name      string
			got, want []cid.Cid
		}{{"Contributions", gotCons, wantCons}, {"Reviews", gotRevs, wantRevs}, {"Inert", gotInert, wantInert}, {"History", gotHistory, wantHistory}} {
			if !slices.Equal(l.got, l.want) {
				t.Fatalf("%s %v, want %v", l.name, l.got, l.want)
			}
		}
		if got := s.Revoked(); !slices.Equal(got, wantRevoked) {
			t.Fatalf("Revoked %v, want %v", got, wantRevoked)
		}
	}
}

func reversed(bs []*protocol.Block) []*protocol.Block {
	out := slices.Clone(bs)
	slices.Reverse(out)
	return out
}

func rotated(bs []*protocol.Block, i int) []*protocol.Block {
	return append(slices.Clone(bs[i:]), bs[:i]...)
}

// TestViewsReadThroughRecords checks that a State made by NewWith reads a
// contribution's and a review's record through its Records, and returns the
// error of a read that fails instead of a view without them; manifests are
// held, and the rules need no read.
func TestViewsReadThroughRecords(t *testing.T) {
	f := newFx(t, 1, 1)
	c := f.con("a")
	r := f.rev(c, f.g, 5, 1, protocol.DecisionAccept)
	raw := rawRecords{}
	for _, b := range []*protocol.Block{f.g, c, r} {
		raw[b.CID] = b.Raw
	}
	s := NewWith(f.id, raw)
	mustAdd(t, s, f.g, c, r)
	v, ok := viewOf(t, s, c.CID)
	if !ok || v.Body.Title != "a" || len(v.Reviews) != 1 || !v.Reviews[0].Counts || v.Status != StatusAccepted {
		t.Fatalf("view %+v", v)
	}
	if b := recordOf(t, s, r.CID); b == nil || b.CID != r.CID || b == r {
		t.Fatalf("Record(%s) = %v: want the review, parsed anew", r.CID, b)
	}

	delete(raw, r.CID)
	if _, _, err := s.Contribution(c.CID); !errors.Is(err, errNotHeld) {
		t.Fatalf("Contribution with a review unreadable: %v, want errNotHeld", err)
	}
	if _, err := s.Contributions(); !errors.Is(err, errNotHeld) {
		t.Fatalf("Contributions with a review unreadable: %v, want errNotHeld", err)
	}
	if _, err := s.Record(r.CID); !errors.Is(err, errNotHeld) {
		t.Fatalf("Record of an unreadable review: %v, want errNotHeld", err)
	}
	delete(raw, f.g.CID)
	if b, err := s.Record(f.g.CID); err != nil || b != f.g {
		t.Fatalf("Record of the genesis: %v, %v: want it from memory", b, err)
	}
	if st, _ := s.Status(c.CID); st != StatusAccepted {
		t.Fatalf("status %s after the records became unreadable, want accepted", st)
	}
}
