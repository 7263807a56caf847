package node

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

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

// BenchmarkHeapPerRecord imports a synthetic commons of 50,000 records into
// a node on badger and reports the live heap it then holds, per record:
// what memory grows by with the commons' history (the goal: nothing but
// bounded caches).
//
//	go test -run '^$' -bench HeapPerRecord -benchtime 1x ./node
func BenchmarkHeapPerRecord(b *testing.B) {
	const records = 50_000
	g, err := gen.Generate(gen.Options{Records: records, Authors: 200, NoPayloads: true})
	if err != nil {
		b.Fatal(err)
	}
	car, err := g.CAR()
	if err != nil {
		b.Fatal(err)
	}
	g = nil
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n := benchNode(b, badgerFactory(b)())
		if _, err := n.Import(context.Background(), bytes.NewReader(car)); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/records, "heap-B/record")
		n.Close()
	}
}
