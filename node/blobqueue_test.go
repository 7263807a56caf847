package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
	"pgregory.net/rapid"

	"github.com/commons-p2p/commons/protocol"
)

func queueKey(i int) protocol.PublicKey { return protocol.PublicKey{byte(i + 1)} }

func queueCID(i int) cid.Cid { return protocol.BlobCID([]byte(fmt.Sprint("blob ", i))) }

// A flooder's claims queued first delay another author's blob by one
// fetch, not by the flood; when the queue is full, the other author takes
// a place from the flooder, the flooder none from anyone holding fewer.
func TestFairQueueFlood(t *testing.T) {
	b := &blobState{}
	b.init(blobBounds{queue: 8})
	flooder, honest, other := queueKey(0), queueKey(1), queueKey(2)
	for i := range 20 {
		ok, _ := b.enqueue(queueCID(i), flooder)
		if want := i < 8; ok != want {
			t.Fatalf("flood claim %d queued %v, want %v (queue of 8, no other author)", i, ok, want)
		}
	}
	ok, evicted := b.enqueue(queueCID(100), honest)
	if !ok || !evicted || b.queue.len() != 8 {
		t.Fatalf("honest blob in a full queue: queued %v, evicted %v, %d queued; want a flood claim evicted", ok, evicted, b.queue.len())
	}
	if _, ok := b.queued[queueCID(7)]; ok {
		t.Fatal("the flooder's last claim kept its place")
	}
	c, a, _ := b.queue.pop()
	if c != queueCID(0) || a != flooder {
		t.Fatalf("first fetch %s by %s, want the flooder's first", c, a)
	}
	if c, a, _ := b.queue.pop(); c != queueCID(100) || a != honest {
		t.Fatalf("second fetch %s by %s, want the honest blob", c, a)
	}
	// The queue has room again; fill it with the other author's, which
	// then take places until they hold about as many as the flooder.
	held := map[protocol.PublicKey]int{}
	for i := range 10 {
		b.enqueue(queueCID(200+i), other)
	}
	for _, k := range b.queue.turn {
		held[k] = len(b.queue.byAuthor[k])
	}
	if held[flooder] > held[other]+1 || held[other] > held[flooder]+1 || b.queue.len() != 8 {
		t.Fatalf("after the other author's claims: %d places for the flooder, %d for the other, %d in all; want them shared", held[flooder], held[other], b.queue.len())
	}
	if ok, _ := b.enqueue(queueCID(300), flooder); ok {
		t.Fatal("the flooder took a place from an author holding as many")
	}
}

// The fair queue, driven by any sequence of queueing, fetching, putting
// back and ending fetches: every blob queued is fetched once or given up (only to make
// room for an author holding fewer), each author's blobs in the order they
// were queued; an author is never served while another with blobs queued
// has fewer fetches running; and no author waits more than one turn of
// those with as many fetches running or more: between two fetches of one
// author, another with blobs queued the whole time is served before it
// is served twice while the other has as few fetches running.
func TestFairQueueProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := &blobState{}
		capacity := rapid.IntRange(1, 12).Draw(t, "cap")
		b.init(blobBounds{queue: capacity})
		next := 0
		queuedFor := map[cid.Cid]protocol.PublicKey{}
		order := map[protocol.PublicKey][]cid.Cid{} // each author's blobs queued and not yet fetched or evicted
		servedSince := map[protocol.PublicKey]map[protocol.PublicKey]int{}
		type fetch struct {
			a protocol.PublicKey
			c cid.Cid
		}
		var running []fetch // the fetches popped and not yet ended
		putBacks := 0
		runs := func(a protocol.PublicKey) int {
			n := 0
			for _, f := range running {
				if f.a == a {
					n++
				}
			}
			return n
		}
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			op := rapid.IntRange(0, 5).Draw(t, "op")
			if op >= 4 && len(running) > 0 {
				i := rapid.IntRange(0, len(running)-1).Draw(t, "ended")
				f := running[i]
				if op == 5 && b.queue.len() > 0 {
					// Put back in the queue (blobState.putBack) while it
					// still counts as running, then ended.
					b.queued[f.c] = f.a
					b.queue.push(f.a, f.c)
					order[f.a] = append(order[f.a], f.c)
					putBacks++
				}
				b.queue.done(f.a)
				running = slices.Delete(running, i, i+1)
			}
			if len(running) == 0 && len(b.queue.running) != 0 {
				t.Fatalf("no fetch running, the queue counts %v", b.queue.running)
			}
			if op >= 4 {
				continue
			}
			if op > 1 {
				a := queueKey(rapid.IntRange(0, 4).Draw(t, "author"))
				c := queueCID(next)
				next++
				before := map[protocol.PublicKey]int{}
				for k, cs := range order {
					before[k] = len(cs)
				}
				ok, evicted := b.enqueue(c, a)
				if !ok {
					if len(queuedFor) < capacity {
						t.Fatalf("refused with %d of %d places taken", len(queuedFor), capacity)
					}
					for k, n := range before {
						if k != a && n > before[a]+1 {
							t.Fatalf("refused for an author holding %d while another holds %d", before[a], n)
						}
					}
					continue
				}
				if evicted {
					var gone []cid.Cid
					for k, cs := range order {
						cs = slices.DeleteFunc(slices.Clone(cs), func(x cid.Cid) bool {
							_, still := b.queued[x]
							if !still {
								gone = append(gone, x)
								if before[k] <= before[a]+1 {
									t.Fatalf("evicted from an author holding %d for one holding %d", before[k], before[a])
								}
							}
							return !still
						})
						order[k] = cs
					}
					if len(gone) != 1 {
						t.Fatalf("%d blobs evicted for one, want 1", len(gone))
					}
				}
				queuedFor[c] = a
				order[a] = append(order[a], c)
				if servedSince[a] == nil {
					servedSince[a] = map[protocol.PublicKey]int{}
				}
			} else {
				c, a, ok := b.queue.pop()
				if !ok {
					if len(b.queue.turn) != 0 || b.queue.len() != 0 {
						t.Fatalf("empty pop with %d authors and %d blobs", len(b.queue.turn), b.queue.len())
					}
					continue
				}
				if len(order[a]) == 0 || order[a][0] != c {
					t.Fatalf("fetched %s for %s, want its first queued of %v", c, a, order[a])
				}
				order[a] = order[a][1:]
				delete(b.queued, c)
				for k := range servedSince {
					if k == a || len(order[k]) == 0 {
						continue
					}
					if runs(k) < runs(a) {
						t.Fatalf("author %s served with %d fetches running while %s waited with %d", a, runs(a), k, runs(k))
					}
					if runs(k) <= runs(a) {
						servedSince[k][a]++
						if servedSince[k][a] > 1 {
							t.Fatalf("author %s served twice while %s waited with blobs queued and as few fetches running", a, k)
						}
					}
				}
				servedSince[a] = map[protocol.PublicKey]int{}
				running = append(running, fetch{a, c})
			}
			total := 0
			for _, cs := range order {
				total += len(cs)
			}
			if total != b.queue.len() || total > capacity+putBacks {
				t.Fatalf("%d blobs held, the queue says %d (cap %d, %d put back)", total, b.queue.len(), capacity, putBacks)
			}
		}
	})
}
