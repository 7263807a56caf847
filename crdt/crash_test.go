package crdt

import (
	"slices"
	"testing"

	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"
)

// TestCrashReplay drives a State as a node does, with everything that can
// go wrong between the records' commit and the derived state's: records
// are added one by one (the node's apply); now and then a save takes
// Ready; a save may fail (its Ready stays in flight and goes with the next
// one, in order) or succeed (the Readies it carries are applied to the KV
// and Advanced, oldest first); the cache may be evicted at any moment; and
// the process may crash at any moment: the Readies not applied are lost,
// the State is opened anew from the KV and the records not reflected there
// are added again, in the order they first came (the node's replay after
// its applied cursor). After every step the State must equal the
// reference derivation of the records, and the KV must be coherent (see
// checkKV).
func TestCrashReplay(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id, bs := drawHistory(t)
		if rapid.Bool().Draw(t, "permute") {
			// Records before what they name: stubs, waiters and flags.
			bs = rapid.Permutation(bs).Draw(t, "perm")
		}
		raw := rawRecords{}
		kv := &MemKV{}
		s := open(t, id, kv, raw)
		type saved struct {
			r    *Ready
			recs []*protocol.Block
		}
		var flight []saved            // Readies taken and not applied, oldest first
		var unsaved []*protocol.Block // records added since the last Ready
		set := map[cid.Cid]*protocol.Block{}
		take := func() { // a save takes the state's writes
			r, err := s.Ready()
			if err != nil {
				t.Fatalf("ready: %v", err)
			}
			if r != nil {
				flight = append(flight, saved{r, unsaved})
				unsaved = nil
			}
		}
		check := func(when string) {
			want, got := reference(set), snap(s)
			if d := got.diff(want); d != "" {
				t.Fatalf("%s, after %d records, state != reference:\n%s", when, len(set), d)
			}
		}
		for len(bs) > 0 {
			b := bs[0]
			bs = bs[1:]
			raw[b.CID] = b.Raw
			if _, err := s.Add(b); err != nil {
				t.Fatalf("add: %v", err)
			}
			set[b.CID] = b
			unsaved = append(unsaved, b)
			if rapid.IntRange(0, 4).Draw(t, "evict") == 0 {
				s.cache = nil
			}
			switch rapid.IntRange(0, 5).Draw(t, "step") {
			case 0, 1: // a save that succeeds
				take()
				for _, f := range flight {
					kv.Apply(f.r.Writes)
				}
				for _, f := range flight {
					s.Advance(f.r)
				}
				flight = nil
			case 2: // a save that fails: its Ready stays in flight
				take()
			case 3: // a crash: what is not applied is lost, then Open and replay
				var replay []*protocol.Block
				for _, f := range flight {
					replay = append(replay, f.recs...)
				}
				replay = append(replay, unsaved...)
				flight, unsaved = nil, nil
				s = open(t, id, kv, raw)
				for _, b := range replay {
					if _, err := s.Add(b); err != nil {
						t.Fatalf("replay: %v", err)
					}
				}
				unsaved = replay
			}
			check("live")
		}
		// A clean stop: save everything, then open again.
		r, err := s.Ready()
		if err != nil {
			t.Fatalf("ready: %v", err)
		}
		for _, f := range flight {
			kv.Apply(f.r.Writes)
		}
		if r != nil {
			kv.Apply(r.Writes)
		}
		s = open(t, id, kv, raw)
		check("reopened")
		checkKV(t, kv)
	})
}

// checkKV checks that a KV's lists can be found again: every member of a
// 't' list of a CID that is not a manifest is reachable only if that
// CID's entry (or stub) has flagTargeted; a 'w' member that still waits
// for the CID needs flagWaited.
func checkKV(t *rapid.T, kv *MemKV) {
	entryFlags := func(c cid.Cid) (uint8, bool) {
		v, _ := kv.Get(cidKey(tagEntry, c))
		if v == nil {
			return 0, false
		}
		return v[1], true
	}
	isMan := func(c cid.Cid) bool {
		v, _ := kv.Get(cidKey(tagManifest, c))
		return v != nil
	}
	for _, tag := range []byte{tagTarget, tagWait} {
		_ = kv.Scan([]byte{tag}, nil, func(k, _ []byte) error {
			rest := k[1:]
			n, w := uvarint(rest)
			group, err := cid.Cast(rest[w : w+int(n)])
			if err != nil {
				t.Fatalf("key %x: %v", k, err)
			}
			member, err := cid.Cast(rest[w+int(n):])
			if err != nil {
				t.Fatalf("key %x: %v", k, err)
			}
			if isMan(group) {
				return nil
			}
			if tag == tagWait {
				v, _ := kv.Get(cidKey(tagEntry, member))
				if v == nil {
					return nil
				}
				e, err := decodeEntry(member, v)
				if err != nil {
					t.Fatalf("%v", err)
				}
				if !slices.Contains(e.waitOn, group) {
					return nil // stale
				}
			}
			f, ok := entryFlags(group)
			if !ok || f&flagOf(tag) == 0 {
				t.Fatalf("%c list of %s has member %s, but its entry (present %v) has flags %b", tag, group, member, ok, f)
			}
			return nil
		})
	}
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			return x | uint64(c)<<s, i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

// TestContributionsBeforeReady: a State opened over a KV lists the
// contributions added since its last Ready (a node's save is with the
// committer, or failed) as it lists the others.
func TestContributionsBeforeReady(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1}, 1, 1), 0)
	s, err := Open(g.CID, &MemKV{}, memRecords{})
	if err != nil {
		t.Fatal(err)
	}
	recs := memRecords{g.CID: g}
	s.src = recs
	c := contribution(t, g.CID, g.CID, 2, 2, "c")
	recs[c.CID] = c
	mustAdd(t, s, g, c)
	if vs := viewsOf(t, s); len(vs) != 1 {
		t.Fatalf("Contributions lists %d contributions before Ready, want 1", len(vs))
	}
}

// TestReviewWriteBounded: what a review's arrival writes does not grow
// with how many reviews its author already made of the same contribution.
// A contribution's entry holds every eligible review of each maintainer
// (conInfo.voters), so one maintainer key that keeps reviewing one
// contribution makes each save rewrite (and each read decode) an entry
// that grows by ~45 bytes per review: quadratic writes.
func TestReviewWriteBounded(t *testing.T) {
	g := genesisBlock(t, manifest([]int{0}, 1, []int{1}, 1, 1), 0)
	kv := &MemKV{}
	recs := memRecords{}
	s, err := Open(g.CID, kv, recs)
	if err != nil {
		t.Fatal(err)
	}
	c := contribution(t, g.CID, g.CID, 2, 2, "c")
	recs[g.CID], recs[c.CID] = g, c
	mustAdd(t, s, g, c)
	size := func() int {
		r, err := s.Ready()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, w := range r.Writes {
			n += len(w.Key) + len(w.Value)
		}
		kv.Apply(r.Writes)
		s.Advance(r)
		return n
	}
	size()
	var first, last int
	const n = 400
	for i := range n {
		d := protocol.DecisionAccept
		if i%2 == 1 {
			d = protocol.DecisionReject
		}
		r := review(t, g.CID, c.CID, g.CID, protocol.HLC(3+i), 1, d)
		recs[r.CID] = r
		mustAdd(t, s, r)
		sz := size()
		if i == 0 {
			first = sz
		}
		last = sz
	}
	if last > 2*first {
		t.Fatalf("the first review of a contribution by its maintainer wrote %d bytes, the %dth %d bytes", first, n, last)
	}
}
