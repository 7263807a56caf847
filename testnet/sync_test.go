package testnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/sim"
)

// source makes a commons with k contributions on node i, alone, and
// returns its ID and every record's bytes (the genesis first).
func source(t *testing.T, n *Net, i, k int) (string, [][]byte) {
	t.Helper()
	id := found(t, n, i, []int{i}, 1)
	for c := range k {
		contribute(t, n, i, id, fmt.Sprintf("record %d", c))
	}
	raws, err := sim.Records(context.Background(), n.Node(i), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(raws) != k+1 {
		t.Fatalf("source holds %d records, want %d", len(raws), k+1)
	}
	return id, raws
}

// bytesOf is the records' size.
func bytesOf(raws [][]byte) int {
	size := 0
	for _, r := range raws {
		size += len(r)
	}
	return size
}

func deliver(t *testing.T, n *Net, i int, raws [][]byte) {
	t.Helper()
	if _, err := sim.Deliver(context.Background(), n.Node(i), raws...); err != nil {
		t.Fatalf("deliver to node %d: %v", i, err)
	}
}

func syncOnce(t *testing.T, n *Net, from, to int) api.SyncSession {
	t.Helper()
	rep, err := n.Node(from).Sync(context.Background(), n.ID(to).String())
	if err != nil || len(rep.Sessions) != 1 || rep.Sessions[0].Error != "" {
		t.Fatalf("sync %d with %d: %+v, %v", from, to, rep, err)
	}
	return rep.Sessions[0]
}

// Two connected nodes sharing 200 records, each holding 20 the other
// lacks (imported, so not gossiped): one on-demand sync repairs both sides
// in a few round trips, and a second finds nothing to do in one.
func TestSyncRepairBothWays(t *testing.T) {
	Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id, raws := source(t, n, 0, 240)
		shared, onlyA, onlyB := raws[:201], raws[201:221], raws[221:]
		deliver(t, n, 1, shared)
		deliver(t, n, 2, shared)
		n.Connect(1, 2)
		n.Settle(time.Second) // the sync on connecting finds nothing
		deliver(t, n, 1, onlyA)
		deliver(t, n, 2, onlyB)

		s := syncOnce(t, n, 1, 2)
		t.Logf("repair of 20+20 in 240: %+v", s)
		if s.Received != 20 || s.Sent != 20 {
			t.Errorf("received %d, sent %d; want 20 and 20", s.Received, s.Sent)
		}
		if s.RoundTrips > 3 {
			t.Errorf("%d round trips, want at most 3", s.RoundTrips)
		}
		n.WaitConverged(id, 0, 1, 2)
		if st := n.MustCommons(2, id); st.Records != 241 {
			t.Errorf("%d records, want 241", st.Records)
		}
		// Node 2 may still be ending the session it served: a sync
		// that waits for one counts what it did.
		n.Settle(time.Second)
		again := syncOnce(t, n, 2, 1)
		if again.Received != 0 || again.Sent != 0 || again.RoundTrips != 1 {
			t.Errorf("second sync: %+v; want nothing moved, in one round trip", again)
		}
	})
}

// A fresh node joining a commons of 300 records gets all of them from one
// peer on connecting; a sync afterwards has nothing to do.
func TestSyncJoin(t *testing.T) {
	Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id, raws := source(t, n, 0, 300)
		size := bytesOf(raws)
		deliver(t, n, 1, raws)
		if err := n.Node(2).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		n.Connect(1, 2)
		n.WaitConverged(id, 0, 1, 2)
		s := syncOnce(t, n, 2, 1)
		if s.Received != 0 || s.RoundTrips != 1 {
			t.Errorf("sync after join: %+v, want nothing to do in one round trip", s)
		}
		t.Logf("commons of %d records, %d bytes", len(raws), size)
	})
}

// A peer that stops answering mid-session: the session ends at the idle
// deadline with an error, and a sync with an honest peer meanwhile
// completes at once. No goroutine outlives the test (synctest checks).
func TestSyncStalledPeer(t *testing.T) {
	Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id, raws := source(t, n, 0, 50)
		deliver(t, n, 1, raws[:1])
		deliver(t, n, 2, raws)
		evil := n.AddHost()
		n.Host(evil).SetStreamHandler(protocol.SyncProtocol, func(s network.Stream) {
			// Read the first frame, then nothing more: stall.
			_, _, _ = readRawFrame(bufio.NewReader(s))
			_, _ = io.Copy(io.Discard, s)
			_ = s.Reset()
		})
		n.Connect(1, evil)
		type result struct {
			rep     api.SyncReport
			err     error
			elapsed time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			rep, err := n.Node(1).Sync(context.Background(), n.ID(evil).String())
			done <- result{rep, err, time.Since(start)}
		}()
		n.Connect(1, 2)
		// (The sync on connecting may be the one that stores the records.)
		syncOnce(t, n, 1, 2)
		if st := n.MustCommons(1, id); st.Records != 51 {
			t.Errorf("after an honest sync during the stall: %d records, want 51", st.Records)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("honest sync took %v beside a stalled one", el)
		}
		r := <-done
		if r.err != nil || len(r.rep.Sessions) != 1 || r.rep.Sessions[0].Error == "" {
			t.Fatalf("stalled sync: %+v, %v; want a session error", r.rep, r.err)
		}
		if r.elapsed < 25*time.Second || r.elapsed > 2*time.Minute {
			t.Errorf("stalled sync ended after %v, want about the 30s idle deadline", r.elapsed)
		}
		t.Logf("stalled session ended after %v: %s", r.elapsed, r.rep.Sessions[0].Error)
	})
}

// A session cut midway (the link drops while records stream) leaves a
// partial, valid set; the next session completes it, with nothing lost or
// duplicated.
func TestSyncInterruptedResumes(t *testing.T) {
	opts := Options{Nodes: 3, ExchangeInterval: time.Hour, Bandwidth: 1 << 20}
	Run(t, opts, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id, raws := source(t, n, 0, 2500) // more than two of the batches a session stores at once
		deliver(t, n, 2, raws)
		deliver(t, n, 1, raws[:1])
		n.Connect(1, 2)
		n.WaitFor("node 1 has some records", func() bool {
			st, ok := n.Commons(1, id)
			return ok && st.Records > 60
		})
		n.Disconnect(1, 2)
		part := n.MustCommons(1, id).Records
		if part >= len(raws) {
			t.Fatalf("the sync finished (%d records) before the cut", part)
		}
		t.Logf("cut after %d of %d records", part, len(raws))
		n.Connect(1, 2)
		n.WaitConverged(id, 0, 1, 2)
		got, err := sim.Records(ctx, n.Node(1), id)
		if err != nil {
			t.Fatal(err)
		}
		feed, err := n.Node(1).Feed(ctx, api.FeedQuery{Commons: id, Limit: api.MaxFeedLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(raws) || len(feed) != len(raws) {
			t.Errorf("after resuming: %d records, %d feed entries; want %d", len(got), len(feed), len(raws))
		}
	})
}

// A healed partition converges through the one link that crosses it, in
// seconds, not at the next periodic sync: a node that receives records by
// sync reconciles with its other peers at once, and they with theirs.
// Nodes 0-3 and 4-7 are lines joined by the link 3-4; the periodic sync
// is an hour away.
func TestHealSpreadsBySync(t *testing.T) {
	Run(t, Options{Nodes: 8, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		for i := range 7 {
			n.Connect(i, i+1)
		}
		id := found(t, n, 0, nil, 0)
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 2, 1, 2, 3, 4, 5, 6)
		time.Sleep(3 * time.Second) // gossipsub heartbeats graft the meshes
		n.Partition([]int{0, 1, 2, 3}, []int{4, 5, 6, 7})
		for k := range 20 {
			contribute(t, n, k%4, id, fmt.Sprintf("left %d", k))
			contribute(t, n, 4+k%4, id, fmt.Sprintf("right %d", k))
		}
		n.WaitRecords(id, 21, 0, 1, 2, 3)
		n.WaitRecords(id, 21, 4, 5, 6, 7)
		start := time.Now()
		n.Heal()
		n.WaitRecords(id, 41)
		n.WaitConverged(id)
		took := time.Since(start)
		t.Logf("healed in %v (virtual)", took)
		if took > time.Minute {
			t.Errorf("heal took %v: the far ends waited for a periodic sync", took)
		}
	})
}

// A join from the command line asks for a sync at once, while the session
// the join started in the background runs: the two do not run side by
// side, each carrying every record (which made such a join take twice as
// long), but one after the other, and the records cross the wire once.
// The sync's report counts the background session it waited for.
func TestSyncBesideJoinCarriesRecordsOnce(t *testing.T) {
	Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		id, raws := source(t, n, 0, 1500)
		size := bytesOf(raws)
		deliver(t, n, 1, raws)
		n.Connect(1, 2)
		n.Settle(time.Second) // node 2 replicates nothing yet
		before := metric(t, n, 1, `commons_sync_bytes_total{direction="out"}`)
		if err := n.Node(2).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		rep, err := n.Node(2).Sync(ctx, n.ID(1).String(), id)
		if err != nil || len(rep.Sessions) != 1 || rep.Sessions[0].Error != "" {
			t.Fatalf("sync beside the join: %+v, %v", rep, err)
		}
		if got := n.MustCommons(2, id).Records; got != len(raws) {
			t.Errorf("after the sync returned: %d records, want %d", got, len(raws))
		}
		if s := rep.Sessions[0]; s.Received != len(raws) {
			t.Errorf("the sync reports %d records received, want %d (those of the session it waited for too)", s.Received, len(raws))
		}
		n.Settle(time.Second)
		out := metric(t, n, 1, `commons_sync_bytes_total{direction="out"}`) - before
		t.Logf("%d records of %d bytes; node 1 sent %.0f bytes by sync", len(raws), size, out)
		if out < float64(size) || out > 1.25*float64(size) {
			t.Errorf("node 1 sent %.0f bytes by sync for %d bytes of records, want them sent once", out, size)
		}
	})
}

// A node that joins a commons starts a session with each connected peer,
// and a peer that replicates the commons starts one as it sees the node
// in the commons' topic: the two cross, and the records would cross the
// wire twice. Of two crossing sessions the one started by the lower peer
// ID goes on and the other ends. Run with each of the two nodes joining,
// so that the joining one has the lower ID in one run and the higher in
// the other.
func TestJoinCrossingSessionsCarryRecordsOnce(t *testing.T) {
	for _, holder := range []int{1, 2} {
		joiner := 3 - holder
		t.Run(fmt.Sprintf("node%djoins", joiner), func(t *testing.T) {
			Run(t, Options{Nodes: 3, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
				id, raws := source(t, n, 0, 1500)
				size := bytesOf(raws)
				deliver(t, n, holder, raws)
				n.Connect(1, 2)
				n.Settle(time.Second)
				before := metric(t, n, holder, `commons_sync_bytes_total{direction="out"}`)
				if err := n.Node(joiner).Join(context.Background(), id); err != nil {
					t.Fatal(err)
				}
				n.WaitFor("the joining node holds every record", func() bool {
					st, ok := n.Commons(joiner, id)
					return ok && st.Records == len(raws)
				})
				n.Settle(time.Second)
				out := metric(t, n, holder, `commons_sync_bytes_total{direction="out"}`) - before
				t.Logf("joining node's ID lower: %v; %d bytes of records, %.0f sent by sync", n.ID(joiner) < n.ID(holder), size, out)
				if out < float64(size) || out > 1.25*float64(size) {
					t.Errorf("node %d sent %.0f bytes by sync for %d bytes of records, want them sent once", holder, out, size)
				}
			})
		})
	}
}
