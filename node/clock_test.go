package node

import (
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// A record dated minutes ahead (within the protocol's skew, so stored)
// does not push the node's clock: the next local record is stamped by the
// wall clock, not after it. One dated less than maxClockStep ahead moves
// the clock past it, as a hybrid logical clock does.
func TestClockStepBounded(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	n, err := New(Config{Offline: true, Store: memstore.New(), Key: testKey(t), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := t.Context()
	id := foundTestCommons(t, n)
	other := strangerKey(1)
	publishAt := func(ms int64, title string) {
		t.Helper()
		blk := mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(ms, 0), Body: &protocol.Contribution{
			Title: title, Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer}}, other)
		if _, err := n.Publish(ctx, blk.Raw, false); err != nil {
			t.Fatal(err)
		}
	}
	stamp := func() protocol.HLC {
		t.Helper()
		c, err := n.Contribute(ctx, api.ContributeParams{Commons: id.String(), Title: "local"})
		if err != nil {
			t.Fatal(err)
		}
		info, err := n.Show(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return protocol.HLC(info.HLC)
	}

	ahead := now.UnixMilli() + 4*60*1000 + 50*1000 // 4 min 50 s ahead
	publishAt(ahead, "from the future")
	if got := stamp(); got.Millis() > now.UnixMilli()+maxClockStep {
		t.Fatalf("after a record dated 4 min 50 s ahead, a local record is stamped %d ms ahead of the wall clock", got.Millis()-now.UnixMilli())
	}

	near := now.UnixMilli() + 500
	publishAt(near, "a little ahead")
	if got := stamp(); got <= protocol.HLCFromMillis(near, 0) {
		t.Fatalf("after a record dated 500 ms ahead, a local record is stamped %v, not after it", got.Time())
	}
}
