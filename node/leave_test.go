package node

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	libp2pprotocol "github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
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
	rep, err := n.Import(t.Context(), bytes.NewReader(car), true)
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
	// The failed Join listed it; leave (without purge) takes it off the
	// list, so that a restart does not replicate it.
	if _, err := n.Leave(ctx, id.String(), false); err != nil {
		t.Fatalf("Leave of a commons whose join failed: %v", err)
	}
	if listed, err := n.listed(ctx, id); listed || err != nil {
		t.Fatalf("after leave, listed = %v, %v", listed, err)
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

// A live feed stream open when its commons is left ends, saying so,
// instead of waiting for events that will never come.
func TestLeaveEndsFeedStreams(t *testing.T) {
	n := startOn(t, memstore.New())
	defer n.Close()
	ctx := t.Context()
	id, _ := importGen(t, n, 50)
	sub, err := n.Subscribe(ctx, id.String(), "50", feed.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := n.Leave(ctx, id.String(), false); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := sub.Next(wait, 10); !errors.Is(err, feed.ErrGone) {
		t.Fatalf("a stream open when its commons was left: %v; want feed.ErrGone", err)
	}
}

// slowAdd returns from AddCommons a while after it listed the commons, as
// an fsync slow to return would.
type slowAdd struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (s *slowAdd) AddCommons(ctx context.Context, c cid.Cid) error {
	err := s.Store.AddCommons(ctx, c)
	if s.entered != nil {
		s.entered <- struct{}{}
		<-s.release
	}
	return err
}

// A Leave while a Join of the same commons is under way is refused, so
// that the two cannot both succeed and leave the commons replicated but
// not listed (or the reverse).
func TestLeaveDuringJoin(t *testing.T) {
	st := &slowAdd{Store: memstore.New()}
	n := startOn(t, st)
	defer n.Close()
	ctx := t.Context()
	id := foundTestCommons(t, n).String()
	st.entered, st.release = make(chan struct{}), make(chan struct{})
	joined := make(chan error, 1)
	go func() { joined <- n.Join(ctx, id) }()
	<-st.entered
	_, lerr := n.Leave(ctx, id, false)
	close(st.release)
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if lerr == nil || !strings.Contains(lerr.Error(), "being joined") {
		t.Fatalf("Leave during a Join: %v; want it refused", lerr)
	}
	listed, err := n.listed(ctx, cid.MustParse(id))
	var inMem bool
	_ = n.do(ctx, func() { inMem = n.commons[cid.MustParse(id)] != nil })
	if err != nil || !listed || !inMem {
		t.Fatalf("after the Join: listed %v, replicated %v, %v", listed, inMem, err)
	}
}

// A node started on the caller's host leaves the host without its
// protocols when it closes: a stream opened to the host afterwards is
// refused rather than handed to a closed node.
func TestCloseRemovesHandlersFromCallersHost(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Store: memstore.New(), Key: testKey(t), Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ours := []libp2pprotocol.ID{protocol.SyncProtocol, protocol.BlobProtocol}
	for _, p := range ours {
		if !slices.Contains(h.Mux().Protocols(), p) {
			t.Fatalf("a running node does not serve %s on its host: %v", p, h.Mux().Protocols())
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range ours {
		if slices.Contains(h.Mux().Protocols(), p) {
			t.Errorf("the host still hands %s to the closed node", p)
		}
	}
}
