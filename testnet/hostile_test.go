package testnet

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/protocol"
)

// A raw host publishes invalid records on the commons topic (a bad
// signature, garbage bytes, a valid record of another commons) and serves
// them, and plain garbage, on the sync protocol; it also sends garbage
// requests. Honest nodes never store any of it and stay converged.
func TestHostilePeer(t *testing.T) {
	logs := newLogCounter()
	opts := Options{Nodes: 4, ExchangeInterval: 10 * time.Second, Logger: slog.New(logs)}
	Run(t, opts, func(t *testing.T, n *Net) {
		ctx := t.Context()
		honest := n.Nodes()
		n.ConnectAll()
		id := found(t, n, 0, []int{0}, 1)
		n.JoinAll(id)
		n.WaitConverged(id)
		n.WaitTopicPeers(id, 3)

		evil := n.AddHost()
		bad := hostileRecords(t, n, evil, id)
		n.Host(evil).SetStreamHandler(protocol.SyncProtocol, serveHostileSync(bad, n.Seed()))
		topic := joinTopic(t, n, evil, id)
		// Honest nodes sync with the hostile host on connecting (those with
		// the lower peer ID) and periodically.
		n.ConnectStar(evil, honest...)
		n.WaitFor("the hostile host sees every honest node in the topic", func() bool { return len(topic.ListPeers()) == len(honest) })
		for _, raw := range bad {
			if err := topic.Publish(ctx, raw); err != nil {
				t.Fatalf("hostile publish: %v", err)
			}
		}
		// Garbage requests on the sync protocol.
		for _, i := range honest {
			s, err := n.Host(evil).NewStream(ctx, n.ID(i), protocol.SyncProtocol)
			if err != nil {
				t.Fatalf("hostile stream to %d: %v", i, err)
			}
			_, _ = s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3})
			_ = s.Close()
		}

		// Honest work goes on.
		x := contribute(t, n, 1, id, "honest work")
		n.WaitStatus(x, "pending")
		review(t, n, 0, x, protocol.DecisionAccept)
		n.WaitStatus(x, "accepted")
		n.Settle(time.Minute) // periodic syncs, some with the hostile host
		st := converged(t, n, id)
		if st.Records != 3 {
			t.Errorf("honest nodes hold %d records, want 3", st.Records)
		}
		for _, i := range honest {
			for k, raw := range bad {
				c := protocol.RecordCID(raw)
				if has, err := n.Store(i).HasRecord(context.Background(), c); err != nil || has {
					t.Errorf("node %d stored hostile record %d (%s): %v %v", i, k, c, has, err)
				}
			}
		}
		for _, msg := range []string{"gossip record rejected", "sync: invalid record from peer"} {
			if logs.count(msg) == 0 {
				t.Errorf("no node logged %q: the attack did not reach them", msg)
			}
		}
		t.Logf("honest logs: %v", logs.snapshot())
	})
}

// hostileRecords returns records no honest node may store: a contribution
// with a broken signature, garbage bytes, and a valid genesis of another
// commons (invalid on this commons' topic and in its sync).
func hostileRecords(t *testing.T, n *Net, evil int, commons string) [][]byte {
	t.Helper()
	key, err := protocol.PrivateKeyFromLibp2p(n.Key(evil))
	if err != nil {
		t.Fatal(err)
	}
	now := protocol.HLCFromMillis(time.Now().UnixMilli(), 0)
	rec := &protocol.Record{Commons: mustCID(t, commons), Time: now, Body: &protocol.Contribution{
		Title: "forged", Kind: "code", Licence: protocol.Link{Cid: mustCID(t, commons)}, Provenance: protocol.ProvenanceVolunteer,
	}}
	if err := protocol.Sign(rec, key); err != nil {
		t.Fatal(err)
	}
	rec.Sig[7] ^= 0x40
	badSig, _, err := protocol.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.Validate(badSig); err == nil {
		t.Fatal("tampered record still validates")
	}
	garbage := make([]byte, 300)
	rng := rand.New(rand.NewPCG(n.Seed(), 7))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	other := &protocol.Record{Time: now, Body: &protocol.Manifest{
		Name: "elsewhere", Licence: "MIT", Association: []protocol.PublicKey{key.Public()}, Threshold: 1,
	}}
	if err := protocol.Sign(other, key); err != nil {
		t.Fatal(err)
	}
	foreign, _, err := protocol.Encode(other)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{badSig, garbage, foreign}
}

// serveHostileSync answers sync sessions alternately by the book, sending
// the bad records (starting with a different one each time) as records the
// initiator lacks, and with random bytes.
func serveHostileSync(bad [][]byte, seed uint64) network.StreamHandler {
	var calls atomic.Uint64
	return func(s network.Stream) {
		defer s.Close()
		r := bufio.NewReader(s)
		call := calls.Add(1)
		if call%2 == 0 {
			rng := rand.New(rand.NewPCG(seed, call))
			junk := make([]byte, 2048)
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			_, _ = s.Write(junk)
			return
		}
		// Read the initiator's first turn.
		for {
			kind, b, err := readRawFrame(r)
			if err != nil {
				return
			}
			if kind != protocol.SyncFrameControl {
				continue
			}
			m, err := protocol.DecodeSync(b)
			if err != nil || m.End {
				break
			}
		}
		for k := range bad {
			if writeRawFrame(s, protocol.SyncFrameRecord, bad[(k+int(call/2))%len(bad)]) != nil {
				return
			}
		}
		end, _ := protocol.EncodeSync(&protocol.SyncMsg{End: true})
		_ = writeRawFrame(s, protocol.SyncFrameControl, end)
	}
}

func readRawFrame(r *bufio.Reader) (byte, []byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if size == 0 || size > protocol.MaxSyncMessage+1 {
		return 0, nil, io.ErrShortBuffer
	}
	b := make([]byte, size)
	if _, err = io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

func writeRawFrame(w io.Writer, kind byte, b []byte) error {
	frame := binary.AppendUvarint(nil, uint64(len(b)+1))
	frame = append(frame, kind)
	_, err := w.Write(append(frame, b...))
	return err
}

// logCounter is a slog handler that counts records by message.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newLogCounter() *logCounter { return &logCounter{counts: map[string]int{}} }

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[r.Message]++
	return nil
}

func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }

func (c *logCounter) WithGroup(string) slog.Handler { return c }

func (c *logCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[msg]
}

func (c *logCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

var _ slog.Handler = (*logCounter)(nil)
