package testnet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/commons-p2p/commons/protocol"
)

// Bad input through the sync protocol, one session each, from a new peer
// each time: every malformed record vector as a record frame, and frames
// broken in each way listed. The node ends every such session within the
// wait a session allows a silent peer, stores nothing of it, and goes on
// syncing with an honest peer.
func TestSyncBadInputs(t *testing.T) {
	Run(t, Options{Nodes: 2, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id := found(t, n, 0, []int{0}, 1)
		commons := &protocol.Link{Cid: cid.MustParse(id)}
		salt := make([]byte, protocol.SaltSize)
		opening := encodeSync(t, &protocol.SyncMsg{Commons: commons, Salt: salt})
		control := func(b []byte) []byte { return frameBytes(protocol.SyncFrameControl, b) }
		record := func(b []byte) []byte { return frameBytes(protocol.SyncFrameRecord, b) }
		good := mustRecord(t, n, contribute(t, n, 0, id, "stored before"))

		type badSession struct {
			name string
			data []byte // written after the stream opens
			bad  []byte // a record that must not be stored, if any
			// silent: the input leaves the node waiting for more, so the
			// session ends when the wait for the peer runs out;
			// any other ends at once.
			silent bool
		}
		var cases []badSession
		for _, v := range malformedVectors(t) {
			cases = append(cases, badSession{name: "record: " + v.name, data: append(control(opening), record(v.raw)...), bad: v.raw})
		}
		other := hostileRecords(t, n, 0, id)
		sum, _ := mh.Sum([]byte("raw"), mh.SHA2_256, -1)
		withCheck := encodeSync(t, &protocol.SyncMsg{Commons: commons, Salt: salt, Check: make([]byte, protocol.CheckSize), End: true})
		fp := encodeSync(t, &protocol.SyncMsg{Commons: commons, Salt: salt, Ranges: []protocol.SyncRange{{Time: protocol.Inf.Time, Mode: protocol.ModeFingerprint, Data: []byte{1, 2, 3, 4}}}, End: true})
		cases = append(cases,
			badSession{name: "frame of length 0", data: []byte{0}},
			badSession{name: "frame of 1 GiB announced", data: append(binary.AppendUvarint(nil, 1<<30), 0, 1, 2)},
			badSession{name: "frame length of 2^63", data: binary.AppendUvarint(nil, 1<<63)},
			badSession{name: "frame cut short, then silence", data: append(binary.AppendUvarint(nil, 100), 0, 1, 2), silent: true},
			badSession{name: "unknown frame kind", data: frameBytes(7, []byte{1, 2, 3})},
			badSession{name: "control frame of garbage", data: control([]byte{0xff, 0xfe, 0x00})},
			badSession{name: "control frame: a CBOR array", data: control([]byte{0x80})},
			badSession{name: "control frame: a CBOR text", data: control([]byte{0x63, 'a', 'b', 'c'})},
			badSession{name: "control frame: an empty map", data: control([]byte{0xa0})},
			badSession{name: "control frame: an unknown key", data: control([]byte{0xa1, 0x63, 'f', 'o', 'o', 0x01})},
			badSession{name: "first frame a record", data: record(good), bad: nil},
			badSession{name: "commons not replicated here", data: control(encodeSync(t, &protocol.SyncMsg{Commons: &protocol.Link{Cid: protocol.RecordCID([]byte("nobody's"))}, Salt: salt}))},
			badSession{name: "commons as a raw CID", data: control(encodeSync(t, &protocol.SyncMsg{Commons: &protocol.Link{Cid: cid.NewCidV1(cid.Raw, sum)}, Salt: salt}))},
			badSession{name: "no salt", data: control(encodeSync(t, &protocol.SyncMsg{Commons: commons, End: true}))},
			badSession{name: "salt of 15 bytes", data: control(shortenBytes(t, opening, salt))},
			badSession{name: "check of 15 bytes", data: control(shortenBytes(t, withCheck, make([]byte, protocol.CheckSize)))},
			badSession{name: "range of an unknown mode", data: control(setMode(t, fp, 3))},
			badSession{name: "commons named twice", data: append(control(opening), control(opening)...)},
			badSession{name: "pass 9", data: control(encodeSync(t, &protocol.SyncMsg{Commons: commons, Salt: salt, Pass: 9, End: true}))},
			badSession{name: "want in the first turn", data: control(encodeSync(t, &protocol.SyncMsg{Commons: commons, Salt: salt, Want: []int{1000}, End: true}))},
			badSession{name: "record with a bad signature, unasked", data: append(control(opening), record(other[0])...), bad: other[0]},
			badSession{name: "record frame of random bytes", data: append(control(opening), record(other[1])...), bad: other[1]},
			badSession{name: "record of another commons", data: append(control(opening), record(other[2])...), bad: other[2]},
			badSession{name: "record the node holds, unasked", data: append(control(opening), record(good)...)},
		)

		before := n.MustCommons(0, id).Records
		for _, tc := range cases {
			s := hostileSync(t, n)
			ended := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, s) // until the node ends the stream
				close(ended)
			}()
			start := time.Now()
			_, _ = s.Write(tc.data)
			select {
			case <-ended:
				if took := time.Since(start); !tc.silent && took > time.Second {
					t.Errorf("%s: the node ended the session after %v; want at once", tc.name, took)
				}
			case <-time.After(3 * time.Minute):
				t.Errorf("%s: the node still holds the session after 3 minutes", tc.name)
			}
			_ = s.Reset()
			if tc.bad != nil {
				if has, err := n.Store(0).HasRecord(t.Context(), protocol.RecordCID(tc.bad)); err != nil || has {
					t.Errorf("%s: the node stored the bad record (%v)", tc.name, err)
				}
			}
		}
		if got := n.MustCommons(0, id).Records; got != before {
			t.Errorf("the node holds %d records after the bad sessions; want %d", got, before)
		}
		// An honest peer still syncs.
		n.Connect(0, 1)
		if err := n.Node(1).Join(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		contribute(t, n, 0, id, "after the bad sessions")
		syncOnce(t, n, 1, 0)
		n.WaitConverged(id, 0, 1)
		t.Logf("%d bad sessions, each ended; the honest peer converged", len(cases))
	})
}

type malformedVector struct {
	name string
	raw  []byte
}

// malformedVectors reads protocol's malformed record vectors.
func malformedVectors(t *testing.T) []malformedVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "protocol", "testdata", "malformed.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct{ Name, Record string }
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	out := make([]malformedVector, len(vs))
	for i, v := range vs {
		raw, err := hex.DecodeString(v.Record)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = malformedVector{v.Name, raw}
	}
	if len(out) < 30 {
		t.Fatalf("%d malformed record vectors; the table wants at least 30", len(out))
	}
	return out
}

func encodeSync(t *testing.T, m *protocol.SyncMsg) []byte {
	t.Helper()
	b, err := protocol.EncodeSync(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frameBytes is a sync frame: its length, its kind, its body.
func frameBytes(kind byte, body []byte) []byte {
	return append(append(binary.AppendUvarint(nil, uint64(len(body)+1)), kind), body...)
}

// shortenBytes returns msg with the CBOR byte string holding field (16
// bytes) one byte shorter.
func shortenBytes(t *testing.T, msg, field []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, append([]byte{0x40 | byte(len(field))}, field...))
	if i < 0 || len(field) != 16 {
		t.Fatal("field not found in the message")
	}
	out := append(bytes.Clone(msg[:i]), 0x40|byte(len(field)-1))
	out = append(out, field[1:]...)
	return append(out, msg[i+1+len(field):]...)
}

// setMode returns msg, whose one range is a fingerprint, with that range's
// mode bits set to mode.
func setMode(t *testing.T, msg []byte, mode byte) []byte {
	t.Helper()
	i := bytes.Index(msg, []byte("ranges"))
	if i < 0 {
		t.Fatal("no ranges in the message")
	}
	out := bytes.Clone(msg)
	head := i + len("ranges") + 1 // past the key and the byte string's header
	if out[head]&3 != protocol.ModeFingerprint {
		t.Fatalf("byte %#x is not the range's head", out[head])
	}
	out[head] = out[head]&^3 | mode
	return out
}

// mustRecord returns the bytes of a record node 0 holds.
func mustRecord(t *testing.T, n *Net, c string) []byte {
	t.Helper()
	raw, err := n.Store(0).GetRecord(t.Context(), cid.MustParse(c))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
