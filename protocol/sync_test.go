package protocol

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"testing"
)

func syncTestMsg() *SyncMsg {
	return &SyncMsg{
		Salt: bytes.Repeat([]byte{7}, SaltSize),
		Pass: 2,
		Ranges: []SyncRange{
			{Time: 0, Mode: ModeSkip},
			{Time: 1 << 40, Prefix: []byte{0x9d}, Mode: ModeFingerprint, Data: []byte{1, 2, 3, 4}},
			{Time: 1<<40 + 3<<35, Mode: ModeIDList, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
			{Time: 1<<40 + 3<<35, Prefix: bytes.Repeat([]byte{0xff}, DigestSize), Mode: ModeIDList},
			{Time: math.MaxUint64, Mode: ModeFingerprint, Data: []byte{9, 9, 9, 9}},
		},
		Want:  []int{0, 1, 5, 300, 70000},
		Check: bytes.Repeat([]byte{3}, CheckSize),
		End:   true,
	}
}

// Every message the encoder gives decodes to itself.
func TestSyncRoundTrip(t *testing.T) {
	for name, m := range map[string]*SyncMsg{
		"full":  syncTestMsg(),
		"end":   {End: true},
		"empty": {},
		"shift cap": {Ranges: []SyncRange{
			{Time: 1 << 50, Mode: ModeSkip},
			{Time: 1<<50 + 1<<45, Mode: ModeSkip},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := EncodeSync(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeSync(b)
			if err != nil {
				t.Fatalf("decode %x: %v", b, err)
			}
			if !reflect.DeepEqual(norm(got), norm(m)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
		})
	}
}

// norm makes empty slices nil, for comparison.
func norm(m *SyncMsg) *SyncMsg {
	c := *m
	c.Ranges = nil
	for _, r := range m.Ranges {
		if len(r.Prefix) == 0 {
			r.Prefix = nil
		}
		if len(r.Data) == 0 {
			r.Data = nil
		}
		c.Ranges = append(c.Ranges, r)
	}
	if len(c.Want) == 0 {
		c.Want = nil
	}
	return &c
}

// The packed ranges of a message are as SPEC.md §11.2 says.
func TestSyncPackedRanges(t *testing.T) {
	rs := []SyncRange{
		{Time: 3 << 33, Mode: ModeFingerprint, Data: []byte{1, 2, 3, 4}},                  // z 33 capped at 31: q = 12
		{Time: 3<<33 + 5<<20, Prefix: []byte{0xab}, Mode: ModeIDList, Data: []byte{0xcc}}, // z 20, q 5
	}
	b, err := appendRanges(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	want := "f9" + "0c" + "01020304" + "a6" + "05" + "01ab" + "01cc"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("packed %s, want %s", got, want)
	}
}

// Messages that break the encoding rules are refused.
func TestSyncDecodeRejects(t *testing.T) {
	enc := func(w syncWire) []byte {
		b, err := encMode.Marshal(&w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"mode 3":            enc(syncWire{Ranges: []byte{0x03, 0x01}}),
		"shift of a zero":   enc(syncWire{Ranges: []byte{0x08, 0x00}}),
		"shift not minimal": enc(syncWire{Ranges: []byte{0x00, 0x02}}),
		"varint too long":   enc(syncWire{Ranges: []byte{0x00, 0x81, 0x00}}),
		"time overflow":     enc(syncWire{Ranges: []byte{0xf8, 0xff, 0xff, 0xff, 0xff, 0x3f}}),
		"time sum overflow": enc(syncWire{Ranges: []byte{0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f}}),
		"empty prefix":      enc(syncWire{Ranges: []byte{0x04, 0x01, 0x00}}),
		"prefix of 33":      enc(syncWire{Ranges: append([]byte{0x04, 0x01, 33}, make([]byte, 33)...)}),
		"short fingerprint": enc(syncWire{Ranges: []byte{0x01, 0x01, 1, 2, 3}}),
		"ID list cut":       enc(syncWire{Ranges: []byte{0x02, 0x01, 0x05, 1, 2}}),
		"want varint cut":   enc(syncWire{Want: []byte{0x80}}),
		"salt of 3":         enc(syncWire{Salt: []byte{1, 2, 3}}),
		"check of 3":        enc(syncWire{Check: []byte{1, 2, 3}}),
		"empty ranges key":  {0xa1, 0x66, 'r', 'a', 'n', 'g', 'e', 's', 0x40},
		"trailing bytes":    append(enc(syncWire{End: true}), 0),
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := DecodeSync(b); err == nil {
				t.Fatalf("accepted: %+v", m)
			}
		})
	}
}

// SyncFrames keeps every frame within the limits, in order, with the
// header fields first and Check and End last.
func TestSyncFrames(t *testing.T) {
	m := &SyncMsg{Salt: bytes.Repeat([]byte{1}, SaltSize), Check: bytes.Repeat([]byte{2}, CheckSize)}
	tm := uint64(1 << 50)
	for i := range 200_000 {
		tm += uint64(i%7+1) << 33
		r := SyncRange{Time: tm, Mode: ModeFingerprint, Data: []byte{1, 2, 3, 4}}
		if i%5 == 0 {
			r = SyncRange{Time: tm, Mode: ModeIDList, Data: bytes.Repeat([]byte{5}, 60)}
		}
		m.Ranges = append(m.Ranges, r)
	}
	for i := range 100_000 {
		m.Want = append(m.Want, 3*i)
	}
	frames := SyncFrames(m)
	var back SyncMsg
	for i, f := range frames {
		b, err := EncodeSync(f)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		g, err := DecodeSync(b)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if (g.Salt != nil) != (i == 0) || (g.Check != nil) != (i == len(frames)-1) || g.End != (i == len(frames)-1) {
			t.Fatalf("frame %d of %d: salt %v check %v end %v", i, len(frames), g.Salt != nil, g.Check != nil, g.End)
		}
		back.Ranges = append(back.Ranges, g.Ranges...)
		back.Want = append(back.Want, g.Want...)
	}
	if !reflect.DeepEqual(back.Ranges, m.Ranges) || !reflect.DeepEqual(back.Want, m.Want) {
		t.Fatalf("frames do not carry the turn")
	}
	t.Logf("%d frames", len(frames))
}

// FuzzDecodeSync: DecodeSync never panics, and every message it accepts
// encodes back to the same bytes.
func FuzzDecodeSync(f *testing.F) {
	for _, m := range []*SyncMsg{syncTestMsg(), {End: true}} {
		b, err := EncodeSync(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeSync(raw)
		if err != nil {
			return
		}
		again, err := EncodeSync(m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("accepted input is not canonical:\n in  %x\n out %x", raw, again)
		}
	})
}
