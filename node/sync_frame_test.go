package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/memstore"
)

// TestKindFrameLimits checks each frame kind against its own limit: control
// frames may be larger than records (a turn at 100k records needs them to be).
func TestKindFrameLimits(t *testing.T) {
	tests := []struct {
		name string
		kind byte
		size int
		ok   bool
	}{
		{"control, large", protocol.SyncFrameControl, 200 << 10, true},
		{"control, at limit", protocol.SyncFrameControl, protocol.MaxSyncMessage, true},
		{"control, over limit", protocol.SyncFrameControl, protocol.MaxSyncMessage + 1, false},
		{"record, at limit", protocol.SyncFrameRecord, protocol.MaxRecordSize, true},
		{"record, over limit", protocol.SyncFrameRecord, protocol.MaxRecordSize + 1, false},
		{"unknown kind", 7, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeKindFrame(&buf, tt.kind, make([]byte, tt.size)); err != nil {
				t.Fatal(err)
			}
			kind, body, err := readKindFrame(bufio.NewReader(&buf))
			if tt.ok {
				if err != nil || kind != tt.kind || len(body) != tt.size {
					t.Fatalf("read = kind %d, %d bytes, %v", kind, len(body), err)
				}
				return
			}
			if !errors.Is(err, crdt.ErrSyncViolation) {
				t.Fatalf("read = %v, want a sync violation", err)
			}
		})
	}
}

// bufStream is a sync stream that keeps what is written to it.
type bufStream struct {
	network.Stream
	buf bytes.Buffer
}

func (s *bufStream) Write(p []byte) (int, error)      { return s.buf.Write(p) }
func (s *bufStream) SetWriteDeadline(time.Time) error { return nil }

// TestWriteTurnSendsStoredRecords answers a peer that holds nothing: every
// record the session pushes goes out as a record frame carrying the exact
// bytes of the record's block, in digest order, read from the store, then
// the turn's control frames. A record the session pushes
// that the store lacks, or whose stored bytes are not the record's, fails
// the turn with an error naming it, and nothing of it is sent.
func TestWriteTurnSendsStoredRecords(t *testing.T) {
	fs := &flipStore{Store: memstore.New()}
	n := startOn(t, fs)
	defer n.Close()
	ctx := t.Context()
	id := foundTestCommons(t, n)
	for i := range 3 {
		if err := n.commit(ctx, contribBlock(t, n, id, fmt.Sprint("c", i)), false); err != nil {
			t.Fatal(err)
		}
	}
	unstored := contribBlock(t, n, id, "not stored")

	peer := crdt.NewSession(&crdt.Index{}, crdt.SyncParams{})
	in := peer.Begin(make([]byte, protocol.SaltSize))
	var sess *crdt.Session
	var turn crdt.Turn
	var push []protocol.Digest
	var want [][]byte           // the bytes of each pushed record's block, in digest order
	var given []protocol.Digest // push in the session's order
	var rerr error
	if err := n.do(ctx, func() {
		st := n.commons[id].state
		sess = crdt.NewSession(st.Index(), crdt.SyncParams{})
		turn, push, rerr = sess.Receive(in)
		given = slices.Clone(push)
		// writeTurn sends in the session's order.
		for _, d := range push {
			// Record parses what it reads and checks its CID: these are
			// the bytes of the record with that digest.
			b, err := st.Record(d.CID())
			if err != nil || b == nil {
				rerr = fmt.Errorf("record %s: %v, %v", d.CID(), b, err)
				return
			}
			want = append(want, b.Raw)
		}
	}); err != nil || rerr != nil {
		t.Fatal(err, rerr)
	}
	if len(push) != 4 {
		t.Fatalf("the session pushes %d records to an empty peer, want 4", len(push))
	}

	t.Run("sent", func(t *testing.T) {
		s := &bufStream{}
		sc := n.openSync(s, &api.SyncSession{})
		sc.sess = sess
		streamed := n.streamed.Load()
		if err := sc.writeTurn(ctx, nil, turn, given); err != nil {
			t.Fatal(err)
		}
		if sc.rep.Sent != len(push) {
			t.Errorf("reported %d records sent, want %d", sc.rep.Sent, len(push))
		}
		// Read in bulk, for the daemon's reads ahead (pages.go).
		if got := n.streamed.Load() - streamed; got != int64(len(push)) {
			t.Errorf("%d records counted as read in bulk, want the %d sent", got, len(push))
		}
		r := bufio.NewReader(&s.buf)
		for i := range want {
			kind, body, err := readKindFrame(r)
			if err != nil || kind != protocol.SyncFrameRecord || !bytes.Equal(body, want[i]) {
				t.Fatalf("frame %d: kind %d, %d bytes, %v; want the %d bytes of record %s", i, kind, len(body), err, len(want[i]), push[i].CID())
			}
		}
		for i, m := range protocol.SyncFrames(turn.Msg()) {
			wantCtl, err := protocol.EncodeSync(m)
			if err != nil {
				t.Fatal(err)
			}
			kind, body, err := readKindFrame(r)
			if err != nil || kind != protocol.SyncFrameControl || !bytes.Equal(body, wantCtl) {
				t.Fatalf("control frame %d: kind %d, %x, %v; want %x", i, kind, body, err, wantCtl)
			}
		}
		if r.Buffered() != 0 {
			t.Errorf("%d bytes after the turn's last frame", r.Buffered())
		}
	})

	t.Run("missing from the store", func(t *testing.T) {
		d, _ := protocol.RecordDigest(unstored.CID)
		sc := n.openSync(&bufStream{}, &api.SyncSession{})
		sc.sess = sess
		err := sc.writeTurn(ctx, nil, turn, append(slices.Clone(push), d))
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), unstored.CID.String()) {
			t.Fatalf("writeTurn = %v, want store.ErrNotFound naming %s", err, unstored.CID)
		}
	})

	// A record whose stored bytes do not hash to its CID is not sent, and
	// the turn goes on without it: the peer forgets a want not met at the
	// end of the turn (SPEC §11.4), and takes the record from another.
	t.Run("corrupt in the store", func(t *testing.T) {
		bad := push[len(push)-1].CID()
		fs.flip.Store(&bad)
		defer fs.flip.Store(nil)
		s := &bufStream{}
		sc := n.openSync(s, &api.SyncSession{})
		sc.sess = sess
		if err := sc.writeTurn(ctx, nil, turn, push); err != nil {
			t.Fatalf("writeTurn = %v, want the turn sent without the corrupt record", err)
		}
		if sc.rep.Sent != len(push)-1 {
			t.Errorf("reported %d records sent, want %d", sc.rep.Sent, len(push)-1)
		}
		r := bufio.NewReader(&s.buf)
		for i := range len(push) - 1 {
			if kind, body, err := readKindFrame(r); err != nil || kind != protocol.SyncFrameRecord || !bytes.Equal(body, want[i]) {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if kind, _, err := readKindFrame(r); err != nil || kind != protocol.SyncFrameControl {
			t.Fatalf("after the whole records: kind %d, %v; want the turn's control frames, the corrupt record not sent", kind, err)
		}
	})
}

// flipStore is a store that returns record flip's bytes with one bit
// flipped, as a corrupt disk would.
type flipStore struct {
	store.Store
	flip atomic.Pointer[cid.Cid]
}

func (s *flipStore) GetRecord(ctx context.Context, c cid.Cid) ([]byte, error) {
	raw, err := s.Store.GetRecord(ctx, c)
	if err == nil {
		s.corrupt(c, raw)
	}
	return raw, err
}

func (s *flipStore) GetRecords(ctx context.Context, cs []cid.Cid) ([][]byte, error) {
	raws, err := s.Store.GetRecords(ctx, cs)
	for i := range raws {
		s.corrupt(cs[i], raws[i])
	}
	return raws, err
}

// corrupt flips a bit of raw (a copy the store returned) if c is flip.
func (s *flipStore) corrupt(c cid.Cid, raw []byte) {
	if f := s.flip.Load(); f != nil && *f == c {
		raw[len(raw)/2] ^= 1
	}
}
