package node

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// eventIDs returns the IDs of the events a subscription to commons id from
// position from (with filter) replays, read until none come for a while.
func eventIDs(t *testing.T, n *Node, id cid.Cid, from string, filter feed.EventFilter) []string {
	t.Helper()
	sub, err := n.Subscribe(t.Context(), id.String(), from, filter)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var out []string
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		evs, _ := sub.Next(ctx, 100)
		cancel()
		if len(evs) == 0 {
			return out
		}
		for _, e := range evs {
			line, _, _ := strings.Cut(string(e), "\n")
			out = append(out, strings.TrimPrefix(line, "id: "))
		}
	}
}

// After a drop, the views that list records answer from what is left: a
// subscription replaying the commons from the store passes every event it
// passed before but the dropped records' own (the status changes they
// caused included, and every one after them), also from a position at a
// dropped record and filtered by status; a feed page shows what it showed
// but the dropped records; the list of contributions marks the dropped
// ones, without their titles.
func TestDroppedRecordsInFeedAndLists(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	defer func() { closeNode(t, n) }()
	ctx := t.Context()
	m := strangerKey(13) // a maintainer, banned later
	id := foundTestCommons(t, n, n.Self(), m.Public())
	one, err := n.Contribute(ctx, api.ContributeParams{Commons: id.String(), Title: "one"})
	if err != nil {
		t.Fatal(err)
	}
	oneCID, _ := cid.Decode(one)
	r := &protocol.Review{Target: protocol.Link{Cid: oneCID}, Under: protocol.Link{Cid: id}, Decision: protocol.DecisionAccept}
	byM := mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(n.nowMillis(), 0), Body: r}, m)
	junk := junkBy(t, n, m, id, 3, nil)
	if _, err := n.ingest(ctx, append([]*protocol.Block{byM}, junk...), false); err != nil {
		t.Fatal(err)
	}
	two, err := n.Contribute(ctx, api.ContributeParams{Commons: id.String(), Title: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Review(ctx, api.ReviewParams{Target: two, Decision: protocol.DecisionAccept}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.UpdateManifest(ctx, id.String(), api.ManifestParams{Maintainers: []protocol.PublicKey{n.Self()}, Ban: []protocol.PublicKey{m.Public()}}); err != nil {
		t.Fatal(err)
	}
	waitSaved(t, cs, id)
	pending := feed.EventFilter{Status: "pending"}
	all, allPending := eventIDs(t, n, id, "", feed.EventFilter{}), eventIDs(t, n, id, "", pending)
	feedPage, err := n.st.Feed(ctx, id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	dropped := map[string]bool{}
	for _, b := range append([]*protocol.Block{byM}, junk...) {
		i := slices.IndexFunc(feedPage, func(s store.Stored) bool { return s.CID == b.CID })
		dropped[strconv.FormatUint(feedPage[i].Cursor, 10)] = true
	}
	pageBefore, err := n.Feed(ctx, api.FeedQuery{Commons: id.String(), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if k, _, err := n.DropDisownedRecords(ctx); k != len(dropped) || err != nil {
		t.Fatalf("DropDisownedRecords = %d, %v; want %d", k, err, len(dropped))
	}
	closeNode(t, n)
	n, _ = startRepo(t, dir, key, nil)

	without := func(ids []string) []string {
		return slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return dropped[s] })
	}
	if got := eventIDs(t, n, id, "", feed.EventFilter{}); !slices.Equal(got, without(all)) {
		t.Errorf("replayed after the drop:\n%v\nwant\n%v", got, without(all))
	}
	if got := eventIDs(t, n, id, "", pending); !slices.Equal(got, without(allPending)) {
		t.Errorf("replayed after the drop, pending only:\n%v\nwant\n%v", got, without(allPending))
	}
	for at := range dropped {
		i := slices.Index(all, at)
		if got, want := eventIDs(t, n, id, at, feed.EventFilter{}), without(all[i+1:]); !slices.Equal(got, want) {
			t.Errorf("replayed from dropped record %s:\n%v\nwant\n%v", at, got, want)
		}
	}

	got, err := n.Feed(ctx, api.FeedQuery{Commons: id.String(), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(pageBefore, func(it api.FeedItem) bool { return dropped[strconv.FormatUint(it.Cursor, 10)] })
	if !slices.EqualFunc(got, want, sameItem) {
		t.Errorf("feed page after the drop:\n%s\nwant the page before without the dropped records:\n%s", itemsText(got), itemsText(want))
	}
	checkFeedPages(t, n, id)

	page, err := n.Contributions(ctx, api.ContributionQuery{Commons: id.String(), Limit: 100})
	if err != nil {
		t.Fatalf("the contributions after the drop: %v", err)
	}
	if len(page.Contributions) != 5 {
		t.Fatalf("%d contributions listed; want 5", len(page.Contributions))
	}
	for _, c := range page.Contributions {
		isJunk := slices.ContainsFunc(junk, func(b *protocol.Block) bool { return b.CID.String() == c.CID })
		if c.Dropped != isJunk || isJunk != (c.Title == "") {
			t.Errorf("listed %+v; want the junk marked dropped, without title, and the rest whole", c)
		}
	}
	if _, err := n.Sponsor(ctx, api.SponsorParams{Target: junk[0].CID.String()}); err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Errorf("sponsoring a dropped contribution: %v; want it refused, saying why", err)
	}
}
