package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// BenchmarkFeedSubscribers measures the live feed under load: one node
// ingests gossip-sized records one at a time at 1,000 records/s (a fifth of
// them reviews, each causing a status event), in phases alone, with N SSE
// subscribers on loopback, and with a raw TCP load standing for the
// delivery, alternating (alone, with, alone, raw, alone, with, …, alone)
// so that the machine's drift and its neighbours' load fall on every kind
// alike. The subscribers live in a separate OS process (this test binary,
// re-run as TestFeedClients), started afresh for each phase with them, so
// that their CPU use is the client process's, each on its own TCP
// connection: one thread polls every stream each millisecond, reads the
// raw bytes and looks only at the "id:" lines, checking that every
// record's event arrives once and in order. It runs at the lowest CPU
// priority (nice 19): the subscribers stand for clients on other machines,
// and on the shared cores the node comes first.
//
// The raw TCP phases are the reference: the same traffic without the
// node's part in it. Another process (runRawLoad) writes N loopback
// connections from one thread, as many bytes per record, as often as the
// node published during the phases with subscribers (or every
// COMMONS_FEED_BENCH_RAW_PERIOD), and reads them as the client process
// does, while the node ingests with no subscriber. What the raw load
// costs the node's ingestion is what that much loopback TCP on the same
// cores costs, whatever delivers it.
//
//	go test -run '^$' -bench FeedSubscribers -benchtime 1x ./node
//
// It reports:
//   - p50-ms, p99-ms, max-ms: the delay from handing a record to the node
//     (before validation) to a subscriber reading its event's bytes, over
//     every (record, subscriber) pair of every phase with subscribers;
//     delivered-fraction and order-errors, which must be 1 and 0;
//   - ingest-rec/s-alone, ingest-rec/s-with-subs and ingest-ratio: the
//     ingest path's rate, records per second of time spent inside
//     validate+ingest (which returns once the event loop has stored and
//     merged the record), at 1,000 records/s, over the phases without and
//     with the subscribers: how much serving them slows ingestion down;
//     ingest-p99-us-alone and -with-subs: the 99th percentile of one
//     record's validate+ingest;
//   - ingest-rec/s-raw-tcp and ingest-ratio-raw-tcp: the same over the raw
//     TCP phases; ingest-ratio-vs-raw-tcp: with subscribers against raw
//     TCP, the slowdown that is the node's own;
//   - publish-ms: the mean time between the node's publications (writes to
//     each subscriber) while it had subscribers; bytes/record: the stream
//     bytes per record and subscriber; both set the raw load;
//   - node-cpu-us/rec-alone, -with-subs and -raw-tcp: the node process's
//     CPU time (user+system, pacing and validation included) per ingested
//     record in each kind of phase, which counts the delivery work itself;
//     clients-cpu-cores and raw-tcp-cpu-cores: the client and raw load
//     processes' CPU use while they ran;
//     cores: runtime.NumCPU().
//
// COMMONS_FEED_BENCH_SECONDS sets each phase's length (default 1),
// COMMONS_FEED_BENCH_ROUNDS the number of phases with subscribers, and of
// raw TCP phases (default 4), COMMONS_FEED_BENCH_SUBSCRIBERS the number of
// subscribers (default 1000).
func BenchmarkFeedSubscribers(b *testing.B) {
	const rate = 1000
	subscribers, secs, rounds := 1000, 1, 4
	env := func(name string, v *int) {
		if s, err := strconv.Atoi(os.Getenv(name)); err == nil && s > 0 {
			*v = s
		}
	}
	env("COMMONS_FEED_BENCH_SUBSCRIBERS", &subscribers)
	env("COMMONS_FEED_BENCH_SECONDS", &secs)
	env("COMMONS_FEED_BENCH_ROUNDS", &rounds)
	rawPeriod, _ := time.ParseDuration(os.Getenv("COMMONS_FEED_BENCH_RAW_PERIOD"))
	per := secs * rate
	raws := benchSet(b)[:1+rate+(4*rounds+1)*per]
	for b.Loop() {
		fb := &feedBench{subscribers: subscribers, rate: rate, per: per, rawPeriod: rawPeriod}
		fb.run(b, raws, rounds)
		alone, loaded, raw, res := fb.alone, fb.loaded, fb.raw, fb.res
		if len(res.delays) == 0 {
			b.Fatal("no subscriber received any record's event")
		}
		slices.Sort(res.delays)
		q := func(f float64) float64 { return float64(res.delays[int(f*float64(len(res.delays)-1))]) / 1e6 }
		b.ReportMetric(q(0.5), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(q(1), "max-ms")
		b.ReportMetric(float64(len(res.delays))/float64(subscribers*per*rounds), "delivered-fraction")
		b.ReportMetric(float64(res.OrderErrors), "order-errors")
		b.ReportMetric(alone.rate(), "ingest-rec/s-alone")
		b.ReportMetric(loaded.rate(), "ingest-rec/s-with-subs")
		b.ReportMetric(loaded.rate()/alone.rate(), "ingest-ratio")
		b.ReportMetric(raw.rate(), "ingest-rec/s-raw-tcp")
		b.ReportMetric(raw.rate()/alone.rate(), "ingest-ratio-raw-tcp")
		b.ReportMetric(loaded.rate()/raw.rate(), "ingest-ratio-vs-raw-tcp")
		b.ReportMetric(fb.period().Seconds()*1e3, "publish-ms")
		b.ReportMetric(float64(fb.recordBytes()), "bytes/record")
		b.ReportMetric(alone.p99(), "ingest-p99-us-alone")
		b.ReportMetric(loaded.p99(), "ingest-p99-us-with-subs")
		b.ReportMetric(alone.cpuPerRecord(), "node-cpu-us/rec-alone")
		b.ReportMetric(loaded.cpuPerRecord(), "node-cpu-us/rec-with-subs")
		b.ReportMetric(raw.cpuPerRecord(), "node-cpu-us/rec-raw-tcp")
		b.ReportMetric(res.CPU/res.Wall, "clients-cpu-cores")
		b.ReportMetric(fb.rawRes.CPU/fb.rawRes.Wall, "raw-tcp-cpu-cores")
		b.ReportMetric(float64(runtime.NumCPU()), "cores")
	}
}

// feedBench is one run of BenchmarkFeedSubscribers.
type feedBench struct {
	subscribers, rate, per int
	rawPeriod              time.Duration // the raw load's, if set

	alone, loaded, raw ingestPhase // pooled by kind
	published          int64       // publications in the phases with subscribers
	res, rawRes        feedClientsResult
}

// run runs the benchmark's phases on a fresh node: a second of warm-up,
// then per records alone, and rounds times per records with the
// subscribers, alone, with the raw TCP load and alone again.
func (fb *feedBench) run(b *testing.B, raws [][]byte, rounds int) {
	n, err := New(Config{Store: memstore.New(), Key: testKeyB(b), Offline: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(api.Handler(n, "t"))
	defer srv.Close()
	sent := make([]atomic.Int64, len(raws)+1) // by cursor: when the record was handed over
	gb, _ := protocol.Validate(raws[0])
	if _, err := n.ingest(context.Background(), []*protocol.Block{gb}, true); err != nil {
		b.Fatal(err)
	}
	next := 1 // the next record of raws, at cursor next+1
	phaseOf := func(count int) ingestPhase {
		p := paceIngest(b, n, raws[next:next+count], sent, uint64(next+1), fb.rate)
		next += count
		return p
	}
	phase := func() ingestPhase { return phaseOf(fb.per) }
	phaseOf(fb.rate)
	fb.alone = phase()
	for range rounds {
		first, last := uint64(next+1), uint64(next+fb.per)
		cl := startFeedClients(b, strings.TrimPrefix(srv.URL, "http://"), gb.CID.String(), fb.subscribers, first, last)
		pub := n.feeds.Stats().Published
		fb.loaded = fb.loaded.pool(phase())
		fb.published += n.feeds.Stats().Published - pub
		r := cl.finish(b, sent[first:last+1])
		fb.res.delays = append(fb.res.delays, r.delays...)
		fb.res.OrderErrors += r.OrderErrors
		fb.res.CPU += r.CPU
		fb.res.Wall += r.Wall
		fb.res.Bytes += r.Bytes
		fb.alone = fb.alone.pool(phase())

		first, last = uint64(next+1), uint64(next+fb.per)
		period := fb.rawPeriod
		if period == 0 {
			period = fb.period()
		}
		rl := startRawLoad(b, fb.subscribers, first, last, fb.rate, period, fb.recordBytes())
		fb.raw = fb.raw.pool(phase())
		r = rl.finish(b, nil)
		if r.OrderErrors > 0 {
			b.Fatalf("raw TCP load: %d order errors", r.OrderErrors)
		}
		fb.rawRes.CPU += r.CPU
		fb.rawRes.Wall += r.Wall
		fb.alone = fb.alone.pool(phase())
	}
}

// period returns the mean time between publications in the phases with
// subscribers.
func (fb *feedBench) period() time.Duration {
	return fb.loaded.wall / time.Duration(max(fb.published, 1))
}

// recordBytes returns the stream bytes per record and subscriber in the
// phases with subscribers.
func (fb *feedBench) recordBytes() int {
	return int(fb.res.Bytes / int64(max(fb.loaded.records*fb.subscribers, 1)))
}

func testKeyB(b *testing.B) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// ingestPhase is what paceIngest measured.
type ingestPhase struct {
	records int
	wall    time.Duration   // the phase's length
	busy    time.Duration   // inside validate+ingest
	took    []time.Duration // each record's validate+ingest, sorted
	cpu     time.Duration   // the process's user+system time over the phase
}

// pool returns the measurements of p and q together.
func (p ingestPhase) pool(q ingestPhase) ingestPhase {
	p.records += q.records
	p.wall += q.wall
	p.busy += q.busy
	p.cpu += q.cpu
	p.took = append(slices.Clone(p.took), q.took...)
	slices.Sort(p.took)
	return p
}

func (p ingestPhase) rate() float64 { return float64(p.records) / p.busy.Seconds() }

func (p ingestPhase) p99() float64 {
	return float64(p.took[len(p.took)*99/100].Microseconds())
}

func (p ingestPhase) cpuPerRecord() float64 {
	return float64(p.cpu.Microseconds()) / float64(p.records)
}

// paceIngest validates and ingests records one at a time at rate per
// second, noting each one's hand-over time by cursor (from first).
func paceIngest(b *testing.B, n *Node, raws [][]byte, sent []atomic.Int64, first uint64, rate int) ingestPhase {
	p := ingestPhase{records: len(raws)}
	cpu0 := processCPU()
	start := time.Now()
	for i, raw := range raws {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		t0 := time.Now()
		sent[first+uint64(i)].Store(t0.UnixNano())
		blk, err := protocol.Validate(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.ingest(context.Background(), []*protocol.Block{blk}, false); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		p.busy += d
		p.took = append(p.took, d)
	}
	slices.Sort(p.took)
	p.cpu = processCPU() - cpu0
	p.wall = time.Since(start)
	return p
}

// processCPU returns the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// feedClients is the client process of BenchmarkFeedSubscribers.
type feedClients struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// feedClientsResult is the client process's report: CPU and wall time in
// seconds; delays (nanoseconds, one per record and subscriber that got it)
// come apart, as raw little-endian int64s after the report's line.
type feedClientsResult struct {
	Delays      int
	OrderErrors int
	CPU, Wall   float64
	Bytes       int64 // read, all streams together
	Err         string
	delays      []int64
}

const feedClientsMark = "feed-clients: "

// startFeedClients runs the test binary as TestFeedClients with n
// subscribers to commons at addr, resuming after record first-1, and waits
// until all are connected.
func startFeedClients(b *testing.B, addr, commons string, n int, first, last uint64) *feedClients {
	cmd := exec.Command("nice", "-n", "19", os.Args[0], "-test.run=^TestFeedClients$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), "COMMONS_FEED_CLIENTS="+fmt.Sprintf("%s %s %d %d %d", addr, commons, n, first, last))
	return startClientProcess(b, cmd)
}

// startClientProcess starts cmd, a client process, and waits until it is
// ready.
func startClientProcess(b *testing.B, cmd *exec.Cmd) *feedClients {
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &feedClients{cmd: cmd, in: in, out: bufio.NewReader(out)}
	if line := c.line(b); line != "ready" {
		b.Fatalf("client process: %s", line)
	}
	return c
}

// startRawLoad runs the test binary as TestFeedClients with the raw TCP
// load (runRawLoad) and waits until it is connected.
func startRawLoad(b *testing.B, n int, first, last uint64, rate int, period time.Duration, size int) *feedClients {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFeedClients$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("COMMONS_FEED_RAW=%d %d %d %d %s %d", n, first, last, rate, period, size))
	return startClientProcess(b, cmd)
}

func (c *feedClients) line(b *testing.B) string {
	for {
		l, err := c.out.ReadString('\n')
		if s, ok := strings.CutPrefix(l, feedClientsMark); ok {
			return strings.TrimSuffix(s, "\n")
		}
		if err != nil {
			b.Fatalf("client process ended: %v", err)
		}
	}
}

// finish sends the records' hand-over times to the client process and
// returns its report once every subscriber has the last record (or it gave
// up waiting).
func (c *feedClients) finish(b *testing.B, sent []atomic.Int64) feedClientsResult {
	buf := make([]byte, 8*len(sent))
	for i := range sent {
		binary.LittleEndian.PutUint64(buf[8*i:], uint64(sent[i].Load()))
	}
	if _, err := c.in.Write(buf); err != nil {
		b.Fatal(err)
	}
	c.in.Close()
	var res feedClientsResult
	if err := json.Unmarshal([]byte(c.line(b)), &res); err != nil {
		b.Fatal(err)
	}
	if res.Err == "" {
		res.delays = make([]int64, res.Delays)
		if err := binary.Read(c.out, binary.LittleEndian, res.delays); err != nil {
			b.Fatalf("client process's delays: %v", err)
		}
	}
	if err := c.cmd.Wait(); err != nil {
		b.Fatalf("client process: %v", err)
	}
	if res.Err != "" {
		b.Fatalf("client process: %s", res.Err)
	}
	return res
}
