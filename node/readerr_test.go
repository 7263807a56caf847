package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
)

// failRead is a store whose GetRecord fails for one CID once armed.
type failRead struct {
	store.Store
	fail atomic.Pointer[cid.Cid]
}

func (f *failRead) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	if p := f.fail.Load(); p != nil && *p == c {
		return nil, errors.New("injected read error")
	}
	return f.Store.GetRecord(ctx, c)
}

// TestApplyGoesOnWhenASubjectCannotBeRead ingests a review that accepts a
// contribution whose record then cannot be read (for the status event's
// title), followed by a new contribution: both are applied, the status
// change is published without the title, and nothing after it is lost.
func TestApplyGoesOnWhenASubjectCannotBeRead(t *testing.T) {
	disk := &failRead{Store: memstore.New()}
	n := startOn(t, disk)
	defer n.Close()
	ctx := t.Context()
	id := foundTestCommons(t, n, n.Self())
	c1 := contribBlock(t, n, id, "one")
	if err := n.commit(ctx, c1, false); err != nil {
		t.Fatal(err)
	}
	rev, err := n.sign(ctx, func() (*protocol.Record, error) {
		return &protocol.Record{Commons: id, Body: &protocol.Review{Target: protocol.Link{Cid: c1.CID}, Decision: protocol.DecisionAccept, Under: protocol.Link{Cid: id}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c2 := contribBlock(t, n, id, "two")
	disk.fail.Store(&c1.CID)
	_, err = n.ingest(ctx, []*protocol.Block{rev, c2}, false)
	disk.fail.Store(nil)
	if err != nil {
		t.Fatal(err)
	}
	var has bool
	var st1 string
	_ = n.do(ctx, func() {
		has = n.commons[id].state.Has(c2.CID)
		s, _ := n.commons[id].state.Status(c1.CID)
		st1 = string(s)
	})
	if !has || st1 != "accepted" {
		t.Fatalf("after the failed read: %s in the state %v, %s %s; want it there and the first accepted", c2.CID, has, c1.CID, st1)
	}
	if got := n.feeds.Head(id).Cursor; got != 4 {
		t.Fatalf("feed head at cursor %d, want 4 (manifest, two contributions, review)", got)
	}
}

// TestLoadReplicaCancelledFails cancels a start while the feed log is read:
// it must fail, never return part of the commons as if it were all of it.
func TestLoadReplicaCancelledFails(t *testing.T) {
	mem := memstore.New()
	n := startOn(t, keepOpen{mem})
	ctx := t.Context()
	id := foundTestCommons(t, n)
	for i := range 5 {
		if err := n.commit(ctx, contribBlock(t, n, id, fmt.Sprint("c", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		wrap := &cancelAfterFeed{Store: mem}
		m, err := New(Config{Offline: true, Store: wrap, Key: testKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		lctx, cancel := context.WithCancel(ctx)
		wrap.cancel = cancel
		rep, err := m.loadReplica(lctx, id)
		if err == nil && rep.state.Len() != 6 {
			t.Fatalf("load %d: cancelled, it returned %d of 6 records and no error", i, rep.state.Len())
		}
	}
}

// cancelAfterFeed cancels a context once Feed has returned a page.
type cancelAfterFeed struct {
	store.Store
	cancel func()
}

func (c *cancelAfterFeed) Feed(ctx context.Context, id cid.Cid, after uint64, limit int) ([]store.Stored, error) {
	p, err := c.Store.Feed(ctx, id, after, limit)
	c.cancel()
	return p, err
}
