package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
	"github.com/commons-p2p/commons/testnet/gen"
)

// importGen imports a generated commons of records records into n and
// returns its ID and the CIDs of its contributions.
func importGen(t *testing.T, n *Node, records int) (cid.Cid, []string) {
	t.Helper()
	g, err := gen.Generate(gen.Options{Records: records, Authors: 10, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	car, err := g.CAR()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := n.Import(t.Context(), bytes.NewReader(car))
	if err != nil || rep.Imported != records {
		t.Fatalf("import: %+v, %v", rep, err)
	}
	var cons []string
	for i, raw := range g.Records {
		if b, err := protocol.Parse(raw); err == nil && b.Record.Type() == protocol.TypeContribution {
			cons = append(cons, g.CIDs[i].String())
		}
	}
	return g.ID, cons
}

// Leaving a commons keeps its records unless purged; a restart does not
// replicate it again; joining it again takes up the same state, feed and
// root without deriving anything again; a purge deletes every record, and a
// commons joined after it starts empty.
func TestLeaveAndJoinAgain(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	n, _ := startRepo(t, dir, key, nil)
	id, cons := importGen(t, n, 600)
	before := commonsView(t, n, id, cons)

	ctx := t.Context()
	r, err := n.Leave(ctx, id.String(), false)
	if err != nil || r.Records != 600 || r.Purged {
		t.Fatalf("Leave = %+v, %v; want 600 records kept", r, err)
	}
	if _, err := n.Show(ctx, cons[0]); err == nil {
		t.Fatalf("Show of a record of a commons left: no error")
	}
	if _, err := n.Leave(ctx, id.String(), false); !errors.Is(err, api.ErrUnknownCommons) {
		t.Fatalf("Leave again = %v; want ErrUnknownCommons", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	log := &logBuffer{}
	n, _ = startRepo(t, dir, key, log)
	if st, err := n.Status(ctx); err != nil || len(st.Commons) != 0 {
		t.Fatalf("after a restart, the commons left is replicated: %+v, %v", st, err)
	}
	if err := n.Join(ctx, id.String()); err != nil {
		t.Fatal(err)
	}
	if after := commonsView(t, n, id, cons); after != before {
		t.Fatalf("joined again, the commons is not as it was:\n%s\nwant:\n%s", after, before)
	}
	if bytes.Contains([]byte(log.String()), []byte("deriving")) {
		t.Fatalf("joining again derived the state again:\n%s", log)
	}

	r, err = n.Leave(ctx, id.String(), true)
	if err != nil || r.Records != 600 || !r.Purged {
		t.Fatalf("Leave --purge = %+v, %v; want 600 records purged", r, err)
	}
	for _, c := range cons[:3] {
		if ok, err := n.st.HasRecord(ctx, cid.MustParse(c)); ok || err != nil {
			t.Fatalf("record %s after a purge: %v, %v", c, ok, err)
		}
	}
	if err := n.Join(ctx, id.String()); err != nil {
		t.Fatal(err)
	}
	st, err := n.Status(ctx)
	if err != nil || len(st.Commons) != 1 || st.Commons[0].Records != 0 {
		t.Fatalf("joined after a purge: %+v, %v; want it empty", st, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// failDrop is a store whose DropRecords fails having deleted nothing, as a
// purge cut short by a crash after the derived state was dropped. Closing
// it leaves the store open, for the next node.
type failDrop struct{ store.Store }

func (failDrop) Close() error { return nil }

func (failDrop) DropRecords(context.Context, cid.Cid) (int, error) {
	return 0, errors.New("disk gone")
}

// A purge cut short leaves records without their derived state: joining
// the commons then says so instead of replicating a state that does not
// reflect its records, and leave --purge finishes the purge.
func TestLeavePurgeCutShort(t *testing.T) {
	ms := memstore.New()
	n := startOn(t, &failDrop{Store: ms})
	ctx := t.Context()
	id, _ := importGen(t, n, 200)
	if _, err := n.Leave(ctx, id.String(), true); err == nil {
		t.Fatal("Leave --purge on a failing store: no error")
	}
	if _, err := n.Leave(ctx, id.String(), false); !errors.Is(err, api.ErrUnknownCommons) {
		t.Fatalf("Leave of a commons half purged, without --purge = %v; want ErrUnknownCommons", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = startOn(t, ms)
	defer n.Close()
	if err := n.Join(ctx, id.String()); err == nil || !strings.Contains(err.Error(), "derived again") {
		t.Fatalf("Join of a commons half purged = %v; want it to say its state must be derived again", err)
	}
	r, err := n.Leave(ctx, id.String(), true)
	if err != nil || !r.Purged || r.Records != 200 {
		t.Fatalf("Leave --purge to finish = %+v, %v", r, err)
	}
	if head, err := ms.FeedHead(ctx, id); head != 0 || err != nil {
		t.Fatalf("FeedHead after the purge finished = %d, %v", head, err)
	}
	if err := n.Join(ctx, id.String()); err != nil {
		t.Fatalf("Join after the purge finished: %v", err)
	}
	st, err := n.Status(ctx)
	if err != nil || len(st.Commons) != 1 || st.Commons[0].Records != 0 {
		t.Fatalf("joined after the purge: %+v, %v; want it empty", st, err)
	}
}

// Leave of a commons never replicated, or with a malformed ID, fails and
// names why.
func TestLeaveUnknown(t *testing.T) {
	n := startOffline(t)
	if _, err := n.Leave(t.Context(), absentCID, false); !errors.Is(err, api.ErrUnknownCommons) {
		t.Fatalf("Leave of an unknown commons = %v; want ErrUnknownCommons", err)
	}
	if _, err := n.Leave(t.Context(), "notacid", true); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("Leave of a malformed ID = %v; want ErrBadRequest", err)
	}
}
