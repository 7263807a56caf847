package node

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
)

// junkBy returns count contributions by k, the first paid work naming
// sponsor when sponsor is set, and a review by k of the first.
func junkBy(t *testing.T, n *Node, k protocol.PrivateKey, id cid.Cid, count int, sponsor *protocol.PublicKey) []*protocol.Block {
	t.Helper()
	var out []*protocol.Block
	for i := range count {
		c := &protocol.Contribution{Title: fmt.Sprintf("junk %d", i), Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer}
		if i == 0 && sponsor != nil {
			c.Provenance, c.Sponsor = protocol.ProvenancePaid, sponsor
		}
		out = append(out, mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(n.nowMillis(), uint16(i)), Body: c}, k))
	}
	r := &protocol.Review{Target: protocol.Link{Cid: out[0].CID}, Under: protocol.Link{Cid: id}, Decision: protocol.DecisionAccept}
	return append(out, mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(n.nowMillis(), uint16(count)), Body: r}, k))
}

// DropDisownedRecords drops the bytes of a banned key's contributions and
// reviews, but not its paid work that names a sponsor, and nothing of
// anyone else's. The commons' state is unchanged, root included; reads of
// a dropped record say so, the feed and an export go without them, and
// the same records coming again are not stored again. A restart keeps all
// that. A start that derives the state again leaves them out, and a peer's
// copy takes them back.
func TestDropDisownedRecords(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, cs := startRepo(t, dir, key, nil)
	ctx := t.Context()
	id := foundTestCommons(t, n, n.Self())
	flooder := strangerKey(11)
	sponsor := strangerKey(12).Public()
	junk := junkBy(t, n, flooder, id, 5, &sponsor)
	if _, err := n.ingest(ctx, junk, false); err != nil {
		t.Fatal(err)
	}
	honest, err := n.Contribute(ctx, api.ContributeParams{Commons: id.String(), Title: "honest"})
	if err != nil {
		t.Fatal(err)
	}
	if records, _, err := n.DropDisownedRecords(ctx); records != 0 || err != nil {
		t.Fatalf("before any ban: %d dropped, %v", records, err)
	}
	ban(t, n, id, flooder.Public())
	want := settledStatus(t, n, id)
	var peer bytes.Buffer // a peer's copy, taken before the drop
	if err := n.Export(ctx, id.String(), &peer); err != nil {
		t.Fatal(err)
	}
	paidWork, dropped := junk[0], junk[1:] // four volunteer contributions and the review
	wantSize := int64(0)
	for _, b := range dropped {
		wantSize += int64(len(b.Raw))
	}
	waitSaved(t, cs, id) // only records the saved state reflects are dropped
	records, size, err := n.DropDisownedRecords(ctx)
	if records != len(dropped) || size != wantSize || err != nil {
		t.Fatalf("DropDisownedRecords = %d, %d bytes, %v; want %d, %d bytes", records, size, err, len(dropped), wantSize)
	}
	if again, _, err := n.DropDisownedRecords(ctx); again != 0 || err != nil {
		t.Fatalf("again: %d dropped, %v", again, err)
	}

	check := func(when string) {
		t.Helper()
		if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v; want the state as before, %+v", when, got, want)
		}
		for _, b := range dropped {
			if _, err := n.st.GetRecord(ctx, b.CID); !errors.Is(err, store.ErrDropped) {
				t.Errorf("%s: record %s: %v; want it dropped", when, b.CID, err)
			}
			_, err := n.Show(ctx, b.CID.String())
			if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "dropped") {
				t.Errorf("%s: show %s: %v; want not found, saying it was dropped", when, b.CID, err)
			}
		}
		if _, err := n.st.GetRecord(ctx, paidWork.CID); err != nil {
			t.Errorf("%s: the paid work naming a sponsor: %v; want it kept", when, err)
		}
		if _, err := n.Show(ctx, honest); err != nil {
			t.Errorf("%s: show the honest contribution: %v", when, err)
		}
		items, err := n.Feed(ctx, api.FeedQuery{Commons: id.String(), Limit: 1000})
		if err != nil || len(items) != want.Records-len(dropped) {
			t.Errorf("%s: the feed: %d items, %v; want %d", when, len(items), err, want.Records-len(dropped))
		}
		for i, since := 0, uint64(0); ; i++ { // a page of one at a time goes past the dropped ones
			page, err := n.Feed(ctx, api.FeedQuery{Commons: id.String(), Since: since, Limit: 1})
			if err != nil {
				t.Fatalf("%s: the feed since %d: %v", when, since, err)
			}
			if len(page) == 0 {
				if i != len(items) {
					t.Errorf("%s: the feed a record at a time ends after %d; want %d", when, i, len(items))
				}
				break
			}
			if i >= len(items) || page[0].CID != items[i].CID {
				t.Fatalf("%s: the feed a record at a time, record %d: %+v", when, i, page[0])
			}
			since = page[0].Cursor
		}
		var car bytes.Buffer
		if err := n.Export(ctx, id.String(), &car); err != nil {
			t.Fatalf("%s: export: %v", when, err)
		}
		in := carCIDs(t, car.Bytes())
		for _, b := range dropped {
			if slices.ContainsFunc(in, b.CID.Equals) {
				t.Errorf("%s: the export holds dropped record %s", when, b.CID)
			}
		}
		if !slices.ContainsFunc(in, paidWork.CID.Equals) || len(in) != want.Records-len(dropped) {
			t.Errorf("%s: the export holds %d records; want %d, the paid work among them", when, len(in), want.Records-len(dropped))
		}
	}
	check("dropped")

	// The same records, by gossip or by import, are not stored again.
	if _, err := n.ingest(ctx, junk, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Import(ctx, bytes.NewReader(peer.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	check("after the records came again")
	closeNode(t, n)

	var log logBuffer
	n, _ = startRepo(t, dir, key, &log)
	check("after a restart")
	if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("a restart warned:\n%s", log.String())
	}
	closeNode(t, n)

	// A start that derives the state again: the dropped records are left
	// out, as damaged ones are, until a peer's copy takes them back.
	writeDerived(t, dir, id, uint64(want.Records), store.Write{Key: versionKey, Value: []byte("layout 3, rules 3")})
	log = logBuffer{}
	n, _ = startRepo(t, dir, key, &log)
	defer func() { closeNode(t, n) }()
	if got := settledStatus(t, n, id); got.Records != want.Records-len(dropped) || got.LeftOut != len(dropped) {
		t.Errorf("derived again: %d records, %d left out; want %d, %d", got.Records, got.LeftOut, want.Records-len(dropped), len(dropped))
	}
	if !strings.Contains(log.String(), "whose bytes were dropped") {
		t.Errorf("the start did not say why the dropped records are left out:\n%s", log.String())
	}
	if _, err := n.Import(ctx, bytes.NewReader(peer.Bytes()), false); err != nil {
		t.Fatal(err)
	}
	if got := settledStatus(t, n, id); !reflect.DeepEqual(got, want) {
		t.Errorf("taken back: %+v; want %+v", got, want)
	}
	for _, b := range dropped {
		if raw, err := n.st.GetRecord(ctx, b.CID); err != nil || !bytes.Equal(raw, b.Raw) {
			t.Errorf("record %s taken back: %v", b.CID, err)
		}
	}
}
