package testnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/protocol"
)

// One peer opening many sync sessions and holding them cannot take every
// slot a node serves: an honest peer's sync with that node still runs, and
// the node disconnects the peer that keeps asking for more than its share.
func TestSyncSlotsPerPeer(t *testing.T) {
	Run(t, Options{Nodes: 2, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		ctx := context.Background()
		n.Connect(0, 1)
		id := found(t, n, 0, []int{0}, 1)
		if err := n.Node(1).Join(ctx, id); err != nil {
			t.Fatal(err)
		}
		n.WaitConverged(id, 0, 1)

		evil := n.AddHost()
		n.Connect(evil, 0)
		var held []network.Stream
		for range 40 {
			s, err := n.Host(evil).NewStream(ctx, n.ID(0), protocol.SyncProtocol)
			if err != nil {
				t.Fatalf("hostile stream: %v", err)
			}
			if _, err := s.Write([]byte{0x05}); err != nil { // the start of a frame, never finished
				t.Fatalf("hostile write: %v", err)
			}
			held = append(held, s)
		}
		time.Sleep(time.Second) // the node takes them all up
		contribute(t, n, 0, id, "while the slots are held")
		s := syncOnce(t, n, 1, 0)
		t.Logf("honest sync while a peer holds %d sessions: %+v", len(held), s)
		if c := n.Host(0).Network().Connectedness(n.ID(evil)); c == network.Connected {
			t.Errorf("the node is still connected to the peer that asked for %d sessions at once", len(held))
		}
		for _, s := range held {
			_ = s.Reset()
		}
	})
}

// A peer that opens a sync session and then drips control frames, each
// well within the wait for the next frame, never ending its turn, holds
// its slot for about a minute, not for the 30 minutes a session may
// last: a session must move bytes.
func TestSyncDripEnds(t *testing.T) {
	Run(t, Options{Nodes: 1, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, []int{0}, 1)
		s := hostileSync(t, n)
		defer s.Reset()
		frame := func(m *protocol.SyncMsg) error { return controlFrame(t, s, m) }
		if err := frame(&protocol.SyncMsg{Commons: &protocol.Link{Cid: cid.MustParse(id)}, Salt: make([]byte, protocol.SaltSize)}); err != nil {
			t.Fatalf("opening frame: %v", err)
		}
		ended := make(chan time.Duration, 1)
		start := time.Now()
		go func() {
			_, _ = io.Copy(io.Discard, s) // until the node ends the stream
			ended <- time.Since(start)
		}()
		tick := time.NewTicker(20 * time.Second)
		defer tick.Stop()
		for {
			select {
			case took := <-ended:
				t.Logf("the node ended the dripping session after %v", took)
				if took > 2*time.Minute {
					t.Errorf("the dripping session lasted %v; want about a minute", took)
				}
				return
			case <-tick.C:
				if time.Since(start) > 35*time.Minute {
					t.Fatal("the dripping session outlasted a session's longest life")
				}
				_ = frame(&protocol.SyncMsg{})
			}
		}
	})
}

// hostileSync opens a sync stream to node 0 from a new host.
func hostileSync(t *testing.T, n *Net) network.Stream {
	evil := n.AddHost()
	n.Connect(evil, 0)
	s, err := n.Host(evil).NewStream(context.Background(), n.ID(0), protocol.SyncProtocol)
	if err != nil {
		t.Fatalf("hostile stream: %v", err)
	}
	return s
}

// controlFrame writes m to s as a sync control frame.
func controlFrame(t *testing.T, s network.Stream, m *protocol.SyncMsg) error {
	b, err := protocol.EncodeSync(m)
	if err != nil {
		t.Fatal(err)
	}
	hdr := binary.AppendUvarint(nil, uint64(len(b)+1))
	_, err = s.Write(append(append(hdr, protocol.SyncFrameControl), b...))
	return err
}

// A peer that asks a node for every record of a commons in one turn and
// then reads the answer a trickle at a time (8 KiB/s, each write of it
// ending within the wait for a write) holds its slot for about two
// minutes, not until it has read it all: waiting on a peer
// that reads costs the session's credit as waiting on one that writes.
func TestSyncSlowReaderEnds(t *testing.T) {
	Run(t, Options{Nodes: 1, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, []int{0}, 1)
		for i := range 6000 { // about 2 MB of records
			contribute(t, n, 0, id, fmt.Sprintf("contribution %d, with a title long enough to weigh a little", i))
		}
		s := hostileSync(t, n)
		defer s.Reset()
		all := &protocol.SyncMsg{Commons: &protocol.Link{Cid: cid.MustParse(id)}, Salt: make([]byte, protocol.SaltSize),
			Ranges: []protocol.SyncRange{{Time: protocol.Inf.Time, Mode: protocol.ModeIDList}}, End: true}
		if err := controlFrame(t, s, all); err != nil {
			t.Fatalf("opening turn: %v", err)
		}
		start := time.Now()
		buf := make([]byte, 4096)
		read := 0
		for {
			k, err := s.Read(buf)
			read += k
			if err != nil {
				took := time.Since(start)
				t.Logf("the node ended the session after %v; %d bytes read", took, read)
				if took > 3*time.Minute {
					t.Errorf("a peer reading 8 KiB a second held the session for %v; want about two minutes", took)
				}
				return
			}
			if time.Since(start) > 35*time.Minute {
				t.Fatal("the session outlasted a session's longest life")
			}
			time.Sleep(500 * time.Millisecond) // 8 KiB/s: each chunk of records within the wait for a write
		}
	})
}

// A peer cannot make a node hold a turn larger than a session accepts: a
// turn of full ID lists, a control frame at a time, never ended, is
// refused at the frame that takes it past the turn's short IDs (2^18),
// about 1 MiB in, not after 2^18 ranges of 32 KiB each (8 GiB held).
func TestSyncTurnBoundedAsRead(t *testing.T) {
	Run(t, Options{Nodes: 1, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, []int{0}, 1)
		s := hostileSync(t, n)
		defer s.Reset()
		ended := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, s) // until the node ends the stream
			close(ended)
		}()
		// Each frame: 7 ranges, each an ID list of the most bytes a range
		// may hold (8,192 short IDs of 4 bytes), under the frame's 256 KiB.
		full := make([]byte, protocol.MaxSyncIDs*protocol.MaxShortIDSize)
		frame := &protocol.SyncMsg{Commons: &protocol.Link{Cid: cid.MustParse(id)}, Salt: make([]byte, protocol.SaltSize)}
		var time0 uint64
		sent := 0
	send:
		for sent < 64 { // 16 MiB
			select {
			case <-ended:
				break send
			default:
			}
			frame.Ranges = frame.Ranges[:0]
			for range 7 {
				time0++
				frame.Ranges = append(frame.Ranges, protocol.SyncRange{Time: time0, Mode: protocol.ModeIDList, Data: full})
			}
			if controlFrame(t, s, frame) != nil {
				break
			}
			frame.Commons, frame.Salt = nil, nil
			sent++
		}
		select {
		case <-ended:
		case <-time.After(time.Minute):
			t.Fatalf("the node still reads a turn of %d frames of full ID lists (%d short IDs)", sent, sent*7*protocol.MaxSyncIDs*protocol.MaxShortIDSize/protocol.ShortIDSize)
		}
		t.Logf("the node ended the session after %d frames of full ID lists were sent", sent)
		if sent > 8 {
			t.Errorf("the node read %d frames of full ID lists (%d short IDs) before it ended the session; want it ended at the fifth", sent, sent*7*protocol.MaxSyncIDs*protocol.MaxShortIDSize/protocol.ShortIDSize)
		}
	})
}

// A peer that keeps opening sessions over a commons, each idle until the
// node ends it, does not hold an explicit sync with it: the sync waits for
// the sessions that ran when it was asked for, not for those opened after.
func TestSyncNotHeldByOpenedSessions(t *testing.T) {
	Run(t, Options{Nodes: 2, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, []int{0}, 1)
		evil := n.AddHost()
		n.Connect(evil, 0)
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				if s, err := n.Host(evil).NewStream(context.Background(), n.ID(0), protocol.SyncProtocol); err == nil {
					_ = controlFrame(t, s, &protocol.SyncMsg{Commons: &protocol.Link{Cid: cid.MustParse(id)}, Salt: make([]byte, protocol.SaltSize)})
					go func() { _, _ = io.Copy(io.Discard, s); _ = s.Reset() }()
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Second):
				}
			}
		}()
		time.Sleep(time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		start := time.Now()
		rep, err := n.Node(0).Sync(ctx, n.ID(evil).String(), id)
		took := time.Since(start)
		close(stop)
		<-done
		t.Logf("sync beside sessions opened every 10 s: %v, %+v, %v", took, rep, err)
		if took > 3*time.Minute {
			t.Errorf("the sync was held %v", took)
		}
	})
}
