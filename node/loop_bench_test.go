package node

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/testnet/gen"
)

// BenchmarkLoopDuringIngest measures how long the event loop takes to run
// a no-op (what every read through n.do waits for: status, show, sync's
// turns) while the node ingests 50,000 records on badger in batches of 64,
// as gossip and sync deliver them. Each iteration is one whole ingest;
// reported: the probes' latency percentiles and the ingest rate.
//
//	go test -run '^$' -bench LoopDuringIngest -benchtime 3x ./node
func BenchmarkLoopDuringIngest(b *testing.B) {
	raws := benchSet(b)
	var lat []time.Duration
	var rate float64
	for range b.N {
		n := benchNode(b, badgerFactory(b)())
		if _, err := n.ingest(context.Background(), mustParse(b, raws[:1]), true); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			ingestAll(b, n, raws[1:], 64)
		}()
		for probing := true; probing; {
			select {
			case <-done:
				probing = false
			case <-time.After(time.Millisecond):
				t := time.Now()
				if err := n.do(context.Background(), func() {}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
		}
		rate += float64(len(raws)-1) / time.Since(start).Seconds()
		n.Close()
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(rate/float64(b.N), "records/s")
}

// BenchmarkHeapPerRecord imports a synthetic commons into a node on badger
// in two halves and reports the live heap per record: what the second half
// added (heap-B/record: the growth with the commons' history, with badger's
// caches and buffers, bounded but not full yet at this size), what both
// halves hold (total-heap-B/record), and what the node still holds once its
// store is closed (state-B/record: its own per-record state, badger's
// memory released). The goal is nothing but bounded caches: a state of 0.
// COMMONS_HEAP_RECORDS sets the number of records (50,000).
//
//	go test -run '^$' -bench HeapPerRecord -benchtime 1x ./node
func BenchmarkHeapPerRecord(b *testing.B) {
	records := 50_000
	if v := os.Getenv("COMMONS_HEAP_RECORDS"); v != "" {
		var err error
		if records, err = strconv.Atoi(v); err != nil || records < 2 {
			b.Fatalf("COMMONS_HEAP_RECORDS=%q: want a number of records ≥ 2", v)
		}
	}
	g, err := gen.Generate(gen.Options{Records: records, Authors: 200, NoPayloads: true})
	if err != nil {
		b.Fatal(err)
	}
	half := len(g.Records) / 2
	cars := make([][]byte, 2)
	for i, part := range [][2]int{{0, half}, {half, len(g.Records)}} {
		var buf bytes.Buffer
		car, err := protocol.NewCARWriter(&buf, g.ID)
		if err != nil {
			b.Fatal(err)
		}
		for j := part[0]; j < part[1]; j++ {
			if err := car.Put(g.CIDs[j], g.Records[j]); err != nil {
				b.Fatal(err)
			}
		}
		cars[i] = buf.Bytes()
	}
	n1, n2 := half, len(g.Records)-half
	g = nil
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for range b.N {
		before := heap()
		n := benchNode(b, badgerFactory(b)())
		var mid uint64
		for i, car := range cars {
			if _, err := n.Import(context.Background(), bytes.NewReader(car), true); err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				mid = heap()
			}
		}
		after := heap()
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		state := heap()
		runtime.KeepAlive(n)
		b.ReportMetric((float64(after)-float64(mid))/float64(n2), "heap-B/record")
		b.ReportMetric((float64(after)-float64(before))/float64(n1+n2), "total-heap-B/record")
		b.ReportMetric((float64(state)-float64(before))/float64(n1+n2), "state-B/record")
	}
}

// BenchmarkStart imports a synthetic commons into a repo on badger, then
// measures opening it: a node on the store, started until it answers
// (start-s), and records loaded per second. COMMONS_START_RECORDS sets the
// number of records (100,000).
//
//	go test -run '^$' -bench Start -benchtime 3x ./node
func BenchmarkStart(b *testing.B) {
	records := 100_000
	if v := os.Getenv("COMMONS_START_RECORDS"); v != "" {
		var err error
		if records, err = strconv.Atoi(v); err != nil || records < 1 {
			b.Fatalf("COMMONS_START_RECORDS=%q: want a number of records ≥ 1", v)
		}
	}
	var car bytes.Buffer
	if _, err := gen.WriteCAR(gen.Options{Records: records, Authors: 200, NoPayloads: true}, &car); err != nil {
		b.Fatal(err)
	}
	dir, key := b.TempDir(), testKeyB(b)
	open := func() *Node {
		st, err := badgerstore.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := New(Config{Store: st, Key: key, Offline: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		return n
	}
	n := open()
	if _, err := n.Import(context.Background(), &car, true); err != nil {
		b.Fatal(err)
	}
	if err := n.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		t := time.Now()
		n := open()
		total += time.Since(t)
		b.StopTimer()
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "start-s")
	b.ReportMetric(float64(records)*float64(b.N)/total.Seconds(), "records/s")
}
