package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/commons-p2p/commons/protocol"
)

// synthItem makes the i-th item of a family: a digest from (seed, i) and a
// time in [0, spread) (small spreads force equal times).
func synthItem(seed uint64, i int, spread uint64) Item {
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:], seed)
	binary.LittleEndian.PutUint64(buf[8:], uint64(i))
	d := protocol.Digest(sha256.Sum256(buf[:]))
	t := binary.LittleEndian.Uint64(d[24:]) % spread
	return Item{Time: 1_700_000_000_000<<16 + t, Digest: d}
}

// simResult is what one simulated session did.
type simResult struct {
	turns     int                     // turns sent, both sides
	gotA      map[protocol.Digest]int // records A received, by digest
	gotB      map[protocol.Digest]int
	maxFrames int // most control frames in one turn
	maxRanges int
	bytes     int // control frame bytes, both directions
	pushed    int
	maxPush   int // most records pushed in one turn
	passes    int // passes started after the first, both sides
}

// simulate runs a session between a (initiator) and b in memory, carrying
// every turn through the wire encoding, and delivers pushed records (into
// the receiver's index).
func simulate(t fataler, a, b *Index, p SyncParams) simResult {
	t.Helper()
	sides := [2]*Session{NewSession(a, p), NewSession(b, p)}
	res := simResult{gotA: map[protocol.Digest]int{}, gotB: map[protocol.Digest]int{}}
	got := [2]map[protocol.Digest]int{res.gotA, res.gotB}
	times := map[protocol.Digest]uint64{}
	for _, x := range []*Index{a, b} {
		x.Range(0, x.Len(), func(it *Item) bool { times[it.Digest] = it.Time; return true })
	}
	turn, push := sides[0].Begin(testSalt), []protocol.Digest(nil)
	from := 0
	for {
		res.turns++
		to := 1 - from
		for _, d := range push {
			tm, ok := times[d]
			if !ok {
				t.Fatalf("pushed record %x is on neither side", d[:4])
			}
			if err := sides[to].Accept(tm, d); err != nil {
				t.Fatalf("turn %d: side %d rejects pushed record: %v", res.turns, to, err)
			}
			got[to][d]++
			// As a node does: received records are ingested before the
			// turn's control frames are answered.
			[2]*Index{a, b}[to].Insert(Item{Time: tm, Digest: d})
		}
		res.pushed += len(push)
		res.maxPush = max(res.maxPush, len(push))
		turn = wire(t, turn, &res)
		if turn.Empty() {
			break
		}
		if res.turns > 100000 {
			t.Fatalf("no end after %d turns", res.turns)
		}
		var err error
		turn, push, err = sides[to].Receive(turn)
		if err != nil {
			t.Fatalf("turn %d: side %d: %v", res.turns, to, err)
		}
		from = to
	}
	res.passes = sides[0].Stats.Passes + sides[1].Stats.Passes
	return res
}

var testSalt = []byte("0123456789abcdef")

// wire encodes a turn into frames and decodes it back.
func wire(t fataler, turn Turn, res *simResult) Turn {
	t.Helper()
	frames := protocol.SyncFrames(turn.Msg())
	res.maxFrames = max(res.maxFrames, len(frames))
	res.maxRanges = max(res.maxRanges, len(turn.Ranges))
	var back Turn
	for _, f := range frames {
		raw, err := protocol.EncodeSync(f)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		res.bytes += len(raw) + 4
		m, err := protocol.DecodeSync(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		back.AddMsg(m)
	}
	return back
}

// checkDiff checks that each side received exactly what it lacked, once.
func checkDiff(t fataler, a, b []Item, res simResult) {
	t.Helper()
	keys := func(items []Item) map[protocol.Digest]bool {
		m := map[protocol.Digest]bool{}
		for _, it := range items {
			m[it.Digest] = true
		}
		return m
	}
	ka, kb := keys(a), keys(b)
	for _, c := range [2]struct {
		got       map[protocol.Digest]int
		mine, oth map[protocol.Digest]bool
		name      string
	}{{res.gotA, ka, kb, "A"}, {res.gotB, kb, ka, "B"}} {
		want := 0
		for k := range c.oth {
			if !c.mine[k] {
				want++
				if c.got[k] != 1 {
					t.Fatalf("%s received a record it lacked %d times, want once", c.name, c.got[k])
				}
			}
		}
		if len(c.got) != want {
			t.Fatalf("%s received %d distinct records, lacked %d", c.name, len(c.got), want)
		}
	}
}

func index(items []Item) *Index {
	var x Index
	for _, it := range items {
		x.Insert(it)
	}
	return &x
}

// After a session, each side has received exactly the records it lacked,
// each once; messages respect the frame limits; the number of turns grows
// with the logarithm of the set size. With short IDs of one or two bytes
// and range fingerprints cut to a few bits, collisions are frequent: the
// check at the end of a pass finds the records they hid, and later passes
// (under new salts) deliver them.
func TestReconcileProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		shared := rapid.IntRange(0, 3000).Draw(t, "shared")
		onlyA := rapid.IntRange(0, 200).Draw(t, "onlyA")
		onlyB := rapid.IntRange(0, 200).Draw(t, "onlyB")
		spread := rapid.SampledFrom([]uint64{1, 3, 100, 1 << 40}).Draw(t, "spread")
		small := rapid.Bool().Draw(t, "smallParams")
		collide := rapid.Bool().Draw(t, "collide")
		var p SyncParams
		if small {
			p = SyncParams{
				Branch:        rapid.IntRange(2, 5).Draw(t, "branch"),
				IDListMax:     rapid.IntRange(1, 6).Draw(t, "idlist"),
				MaxTurnRanges: rapid.IntRange(1, 40).Draw(t, "maxRanges"),
				MaxTurnIDs:    rapid.IntRange(1, 40).Draw(t, "maxIDs"),
				MaxTurnPush:   rapid.IntRange(1, 300).Draw(t, "maxPush"),
				MaxTurns:      100000,
			}
		}
		if collide {
			p.idBytes = rapid.IntRange(1, 2).Draw(t, "idBytes")
			p.fpBits = rapid.SampledFrom([]int{0, 2, 4, 8}).Draw(t, "fpBits")
			p.MaxPasses, p.MaxTurns = 1000, 100000
		}
		var a, b []Item
		for i := range shared {
			it := synthItem(seed, i, spread)
			a, b = append(a, it), append(b, it)
		}
		for i := range onlyA {
			a = append(a, synthItem(seed, shared+i, spread))
		}
		for i := range onlyB {
			b = append(b, synthItem(seed, shared+onlyA+i, spread))
		}
		res := simulate(t, index(a), index(b), p)
		checkDiff(t, a, b, res)
		if !small && !collide {
			n := float64(max(len(a), len(b), 1))
			limit := 2*int(math.Ceil(max(0, math.Log(n/32)/math.Log(16)))) + 5
			if res.turns > limit {
				t.Fatalf("%d turns for %d records, limit %d", res.turns, int(n), limit)
			}
		}
		p.fill()
		if res.maxRanges > p.MaxTurnRanges {
			t.Fatalf("a turn of %d ranges, limit %d", res.maxRanges, p.MaxTurnRanges)
		}
		// Pushes for ID lists are capped; wants (at most MaxTurnIDs) come on top.
		if res.maxPush > p.MaxTurnPush+p.MaxTurnIDs {
			t.Fatalf("a turn pushed %d records, limit %d and %d wanted", res.maxPush, p.MaxTurnPush, p.MaxTurnIDs)
		}
	})
}

// Short IDs of one byte over ranges of many records collide often: the
// sessions still deliver exactly what each side lacked, over more passes.
func TestReconcileShortIDCollisions(t *testing.T) {
	var a, b []Item
	for i := range 4000 {
		it := synthItem(11, i, 1<<40)
		switch i % 40 {
		case 0:
			a = append(a, it)
		case 1:
			b = append(b, it)
		default:
			a, b = append(a, it), append(b, it)
		}
	}
	res := simulate(t, index(a), index(b), SyncParams{IDListMax: 64, MaxPasses: 100, idBytes: 1})
	checkDiff(t, a, b, res)
	if res.turns <= 8 {
		t.Errorf("%d turns: expected collisions to need more than one pass", res.turns)
	}
	t.Logf("%d turns", res.turns)
}

// Repair at scale: 100k shared records, 10 or 1000 missing on each side.
// Logs the turns and control bytes.
func TestReconcileRepair(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	for _, miss := range []int{10, 1000} {
		var a, b []Item
		for i := range n {
			it := synthItem(7, i, 1<<40)
			if i < miss {
				a = append(a, it)
			} else if i < 2*miss {
				b = append(b, it)
			} else {
				a, b = append(a, it), append(b, it)
			}
		}
		res := simulate(t, index(a), index(b), SyncParams{})
		checkDiff(t, a, b, res)
		rt := (res.turns + 1) / 2
		t.Logf("n=%d, %d missing each side: %d turns (%d round trips), %d control bytes (%.0f per missing record), %d records pushed",
			n, miss, res.turns, rt, res.bytes, float64(res.bytes)/float64(2*miss), res.pushed)
		if rt > 6 {
			t.Errorf("%d round trips, want at most 6", rt)
		}
		if res.passes != 0 {
			t.Errorf("%d passes after the first, want none", res.passes)
		}
	}
}

// Join: an empty initiator gets everything in one round trip (and
// confirms with an empty turn), and a full initiator sends everything to
// an empty peer in its second turn.
func TestReconcileJoin(t *testing.T) {
	var all []Item
	for i := range 5000 {
		all = append(all, synthItem(3, i, 1<<40))
	}
	res := simulate(t, index(nil), index(all), SyncParams{})
	checkDiff(t, nil, all, res)
	if res.turns != 3 {
		t.Errorf("empty initiator: %d turns, want 3", res.turns)
	}
	res = simulate(t, index(all), index(nil), SyncParams{})
	checkDiff(t, all, nil, res)
	if res.turns != 4 {
		t.Errorf("empty responder: %d turns, want 4", res.turns)
	}
	res = simulate(t, index(all), index(all), SyncParams{})
	checkDiff(t, all, all, res)
	if res.turns != 2 {
		t.Errorf("equal sets: %d turns, want 2", res.turns)
	}
	// With a turn's pushes capped, the records come in parts, each turn
	// within the cap, both ways.
	for _, p := range []SyncParams{{MaxTurnPush: 700}, {MaxTurnPush: 700, IDListMax: 4}} {
		for _, empty := range []bool{true, false} {
			a, b := index(nil), index(all)
			if !empty {
				a, b = b, a
			}
			res = simulate(t, a, b, p)
			if empty {
				checkDiff(t, nil, all, res)
			} else {
				checkDiff(t, all, nil, res)
			}
			if res.maxPush > 700 {
				t.Errorf("%+v, empty initiator %v: a turn pushed %d records; want at most 700", p, empty, res.maxPush)
			}
			if least := 2*len(all)/700 - 1; res.turns < least {
				t.Errorf("%+v, empty initiator %v: %d turns; want at least %d for parts of 700", p, empty, res.turns, least)
			}
		}
	}
}

// A hostile peer's turns (random bounds, modes, data, wants) never panic
// the session; they are answered or refused with ErrSyncViolation, and the
// answer stays within the limits.
func TestReconcileHostileTurns(t *testing.T) {
	var mine []Item
	for i := range 500 {
		mine = append(mine, synthItem(9, i, 50))
	}
	x := index(mine)
	rapid.Check(t, func(t *rapid.T) {
		s := NewSession(x, SyncParams{MaxTurnRanges: 64, MaxTurnIDs: 64, MaxTurns: 4})
		begun := rapid.Bool().Draw(t, "begin")
		if begun {
			s.Begin(testSalt)
		}
		for k := range rapid.IntRange(1, 6).Draw(t, "turns") {
			var in Turn
			if (k == 0 && !begun) || rapid.Bool().Draw(t, "salt") {
				in.Salt = rapid.SliceOfN(rapid.Byte(), 15, 17).Draw(t, "salt")
			}
			in.Pass = rapid.IntRange(0, 5).Draw(t, "pass")
			if rapid.Bool().Draw(t, "check") {
				in.Check = rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "checkBytes")
			}
			in.Want = rapid.SliceOfN(rapid.IntRange(-1, 20), 0, 5).Draw(t, "want")
			for range rapid.IntRange(0, 80).Draw(t, "ranges") {
				r := protocol.SyncRange{
					Time:   1_700_000_000_000<<16 + rapid.Uint64Range(0, 60).Draw(t, "time"),
					Prefix: rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "prefix"),
					Mode:   uint8(rapid.IntRange(0, 2).Draw(t, "mode")),
				}
				switch r.Mode {
				case protocol.ModeFingerprint:
					r.Data = rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "fp")
				case protocol.ModeIDList:
					for range rapid.IntRange(0, 4).Draw(t, "ids") {
						d := mine[rapid.IntRange(0, len(mine)-1).Draw(t, "id")].Digest
						if rapid.Bool().Draw(t, "foreign") {
							d[0] ^= 1
						}
						sid := ShortID(&d, testSalt, 0, protocol.ShortIDSize)
						r.Data = binary.BigEndian.AppendUint32(r.Data, uint32(sid))
					}
					if rapid.Bool().Draw(t, "ragged") {
						r.Data = append(r.Data, 1)
					}
				}
				in.Ranges = append(in.Ranges, r)
			}
			if rapid.Bool().Draw(t, "sorted") {
				slices.SortFunc(in.Ranges, func(a, b protocol.SyncRange) int { return a.Upper().Compare(b.Upper()) })
			}
			out, _, err := s.Receive(in)
			if err != nil {
				if !errors.Is(err, ErrSyncViolation) {
					t.Fatalf("error %v is not ErrSyncViolation", err)
				}
				return
			}
			if len(out.Ranges) > 64 {
				t.Fatalf("answer of %d ranges, limit 64", len(out.Ranges))
			}
			if rapid.Bool().Draw(t, "stray") {
				it := synthItem(99, 0, 50)
				if err := s.Accept(it.Time, it.Digest); err == nil {
					// Only acceptable inside a range we listed.
					ok := false
					for _, sp := range s.listed {
						ok = ok || (!sp.lo.Below(it.Time, &it.Digest) && sp.hi.Below(it.Time, &it.Digest))
					}
					if !ok {
						t.Fatalf("stray record accepted outside every listed range")
					}
				}
			}
		}
	})
}

// The index's range sums match a slow recount, whatever the insertion
// order.
// TestIndexSums checks the index's counts, sums, ranks and ranges against
// a sorted list, however it was built.
func TestIndexSums(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seed := rapid.Uint64().Draw(t, "seed")
		n := rapid.IntRange(0, 3000).Draw(t, "n")
		spread := rapid.SampledFrom([]uint64{1, 5, 1 << 40}).Draw(t, "spread")
		items := make([]Item, n)
		for i := range items {
			items[i] = synthItem(seed, i, spread)
		}
		// Some items loaded in bulk (as Open does), the rest inserted.
		var x Index
		order := rapid.Permutation(seqInts(n)).Draw(t, "order")
		loaded := rapid.IntRange(0, n).Draw(t, "loaded")
		bulk := make([]Item, loaded)
		for k, i := range order[:loaded] {
			bulk[k] = items[i]
		}
		slices.SortFunc(bulk, func(a, b Item) int { return a.compare(&b) })
		x.load(bulk)
		for _, i := range order[loaded:] {
			if !x.Insert(items[i]) {
				t.Fatalf("item %d not new", i)
			}
		}
		if n > 0 && x.Insert(items[0]) {
			t.Fatalf("duplicate inserted")
		}
		slices.SortFunc(items, func(a, b Item) int {
			if a.less(&b) {
				return -1
			}
			return 1
		})
		checkIndex(t, &x, items)
	})
}

// checkIndex checks x's ranks, prefix sums, bounds and ranges against
// items, sorted.
func checkIndex(t *rapid.T, x *Index, items []Item) {
	n := len(items)
	if x.Len() != n {
		t.Fatalf("Len %d, want %d", x.Len(), n)
	}
	for k := 0; k < 20 && n > 0; k++ {
		r := rapid.IntRange(0, n-1).Draw(t, "rank")
		if got := x.At(r); got.Digest != items[r].Digest {
			t.Fatalf("At(%d) wrong", r)
		}
		var want Agg
		for i := range r {
			want.addItem(&items[i])
		}
		if got := x.Prefix(r); got != want {
			t.Fatalf("Prefix(%d) = %v, want %v", r, got, want)
		}
		b := protocol.Bound{Time: items[r].Time, Prefix: items[r].Digest[:rapid.IntRange(0, 32).Draw(t, "plen")]}
		var wb Agg
		for i := range items {
			if b.Below(items[i].Time, &items[i].Digest) {
				wb.addItem(&items[i])
			}
		}
		if got := x.Below(b); got != wb {
			t.Fatalf("Below wrong: %v, want %v", got, wb)
		}
		var seen int
		x.Range(r, n, func(it *Item) bool {
			if it.Digest != items[r+seen].Digest {
				t.Fatalf("Range out of order")
			}
			seen++
			return true
		})
		if seen != n-r {
			t.Fatalf("Range visited %d, want %d", seen, n-r)
		}
	}
}

func seqInts(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// Sums wrap modulo 2^256.
func TestSumWraps(t *testing.T) {
	var s Sum
	var ff protocol.Digest
	for i := range ff {
		ff[i] = 0xff
	}
	s.add(&ff)
	var one protocol.Digest
	one[0] = 1
	s.add(&one)
	if s != (Sum{}) {
		t.Fatalf("2^256-1 + 1 = %v, want 0", s)
	}
}

// A record the receiver refuses to store (one from the future, say) keeps
// the checks apart: the session makes its passes, then gives up with an
// empty turn instead of running to the turn limit.
func TestReconcileGivesUp(t *testing.T) {
	var a, b []Item
	for i := range 2000 {
		it := synthItem(13, i, 1<<40)
		a = append(a, it)
		if i != 7 {
			b = append(b, it)
		}
	}
	refused := a[7].Digest
	xa, xb := index(a), index(b)
	sa, sb := NewSession(xa, SyncParams{}), NewSession(xb, SyncParams{})
	turn := sa.Begin(testSalt)
	sides, turns, pushes := [2]*Session{sb, sa}, 1, 0
	for ; !turn.Empty(); turns++ {
		if turns > 64 {
			t.Fatal("no end after 64 turns")
		}
		out, push, err := sides[(turns+1)%2].Receive(turn)
		if err != nil {
			t.Fatalf("turn %d: %v", turns, err)
		}
		for _, d := range push {
			if d != refused {
				t.Fatalf("pushed %x, want only the refused record", d[:4])
			}
			pushes++
		}
		turn = out
	}
	p := SyncParams{}
	p.fill()
	if !sb.Stats.GaveUp && !sa.Stats.GaveUp {
		t.Errorf("neither side gave up")
	}
	if got := sa.Stats.Passes + sb.Stats.Passes + 1; got != p.MaxPasses {
		t.Errorf("%d passes, want %d", got, p.MaxPasses)
	}
	if pushes != p.MaxPasses {
		t.Errorf("refused record pushed %d times, want once per pass (%d)", pushes, p.MaxPasses)
	}
	t.Logf("%d turns", turns)
}

// Two replicas, each missing ten of the other's records, reconcile: turns
// go back and forth until one is empty, and the records each answer
// pushes are stored by the peer before it answers in turn. (A node also
// checks each record with Accept and validates it before storing it.)
func ExampleSession() {
	var a, b Index
	times := map[protocol.Digest]uint64{}
	for i := range 1010 {
		it := synthItem(1, i, 1<<40)
		times[it.Digest] = it.Time
		if i >= 10 {
			b.Insert(it)
		}
		if i < 1000 {
			a.Insert(it)
		}
	}
	sides := [2]*Session{NewSession(&b, SyncParams{}), NewSession(&a, SyncParams{})}
	stores := [2]*Index{&a, &b} // where the records pushed by sides[k] go
	turn := sides[1].Begin([]byte("sixteen bytes!!!"))
	k := 0
	for ; !turn.Empty(); k++ {
		out, push, err := sides[k%2].Receive(turn)
		if err != nil {
			panic(err)
		}
		for _, d := range push {
			stores[k%2].Insert(Item{Time: times[d], Digest: d})
		}
		turn = out
	}
	fmt.Println(a.Len(), b.Len(), a.All() == b.All(), k+1, "turns")
	// Output: 1010 1010 true 5 turns
}

// A TurnReader takes frames while the turn stays within the session's
// limits and refuses, appending nothing, the first frame that would take
// it past one; what it holds is then always a turn the session admits.
func TestTurnReaderLimits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := SyncParams{MaxTurnRanges: rapid.IntRange(34, 200).Draw(t, "ranges"), MaxTurnIDs: rapid.IntRange(64, 2000).Draw(t, "ids")}
		r := NewTurnReader(p)
		ranges, ids := 0, 0
		for range rapid.IntRange(1, 30).Draw(t, "frames") {
			m := &protocol.SyncMsg{}
			frameIDs := 0
			for range rapid.IntRange(0, 20).Draw(t, "frame ranges") {
				rg := protocol.SyncRange{Mode: protocol.ModeFingerprint, Data: make([]byte, protocol.FingerprintSize)}
				if rapid.Bool().Draw(t, "id list") {
					k := rapid.IntRange(0, 100).Draw(t, "list")
					rg = protocol.SyncRange{Mode: protocol.ModeIDList, Data: make([]byte, k*protocol.ShortIDSize+rapid.IntRange(0, protocol.ShortIDSize-1).Draw(t, "odd bytes"))}
					frameIDs += k
				}
				m.Ranges = append(m.Ranges, rg)
			}
			m.Want = make([]int, rapid.IntRange(0, 50).Draw(t, "wants"))
			frameIDs += len(m.Want)
			before := len(r.Turn.Ranges)
			err := r.Add(m)
			over := ranges+len(m.Ranges) > r.p.MaxTurnRanges || ids+frameIDs > r.p.MaxTurnIDs
			if over != (err != nil) {
				t.Fatalf("frame of %d ranges, %d IDs and wants onto %d, %d (limits %d, %d): %v", len(m.Ranges), frameIDs, ranges, ids, r.p.MaxTurnRanges, r.p.MaxTurnIDs, err)
			}
			if err != nil {
				if !errors.Is(err, ErrSyncViolation) || len(r.Turn.Ranges) != before {
					t.Fatalf("refused frame: %v, ranges %d → %d", err, before, len(r.Turn.Ranges))
				}
				continue
			}
			ranges += len(m.Ranges)
			ids += frameIDs
		}
		if len(r.Turn.Ranges) != ranges || len(r.Turn.Want)+shortIDs(r.Turn.Ranges, protocol.ShortIDSize) != ids {
			t.Fatalf("turn holds %d ranges and %d IDs and wants; want %d, %d", len(r.Turn.Ranges), len(r.Turn.Want)+shortIDs(r.Turn.Ranges, protocol.ShortIDSize), ranges, ids)
		}
	})
}
