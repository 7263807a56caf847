package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// BenchmarkFeedSubscribers measures the live feed under load: one node
// ingests gossip-sized records one at a time at 1,000 records/s, first with
// no subscribers, then with 1,000 SSE subscribers on loopback. It reports
// the p50/p99/max delay from handing a record to the node to its event
// reaching a subscriber's reader, and the node's ingest rate (records per
// second of time spent validating and ingesting, validation included) with
// and without the subscribers. Everything shares the machine's cores, the
// subscribers' HTTP clients included.
//
//	go test -run '^$' -bench FeedSubscribers -benchtime 1x ./node
//
// COMMONS_FEED_BENCH_SECONDS sets each phase's length (default 3),
// COMMONS_FEED_BENCH_SUBSCRIBERS the number of subscribers (default 1000).
func BenchmarkFeedSubscribers(b *testing.B) {
	const rate = 1000
	subscribers, secs := 1000, 3
	if s, err := strconv.Atoi(os.Getenv("COMMONS_FEED_BENCH_SUBSCRIBERS")); err == nil && s > 0 {
		subscribers = s
	}
	if s, err := strconv.Atoi(os.Getenv("COMMONS_FEED_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	per := secs * rate
	raws := benchSet(b)[:1+2*per]
	for b.Loop() {
		st := memstore.New()
		n, err := New(Config{Store: st, Key: testKeyB(b), Offline: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(Handler(n, "t"))
		sent := make([]atomic.Int64, len(raws)+1) // by cursor: when the record was handed over
		gb, _ := protocol.Validate(raws[0])
		if _, err := n.ingest(context.Background(), []*protocol.Block{gb}, true); err != nil {
			b.Fatal(err)
		}
		commons := gb.CID.String()

		base := paceIngest(b, n, raws[1:1+per], sent, 2, rate)

		ctx, cancel := context.WithCancel(context.Background())
		subs := startSubscribers(b, ctx, srv.URL+"/api/v1/commons/"+commons+"/events", strconv.Itoa(1+per), subscribers, sent)
		loaded := paceIngest(b, n, raws[1+per:], sent, uint64(2+per), rate)
		time.Sleep(200 * time.Millisecond)
		cancel()
		delays, received := subs.wait()
		srv.Close()
		n.Close()

		slices.Sort(delays)
		q := func(f float64) float64 {
			if len(delays) == 0 {
				return 0
			}
			return float64(delays[int(f*float64(len(delays)-1))]) / 1e6
		}
		b.ReportMetric(q(0.5), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(q(1), "max-ms")
		b.ReportMetric(float64(received)/float64(subscribers*per), "delivered-fraction")
		b.ReportMetric(base, "ingest-rec/s-alone")
		b.ReportMetric(loaded, "ingest-rec/s-with-subs")
		b.ReportMetric(loaded/base, "ingest-ratio")
	}
}

func testKeyB(b *testing.B) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// paceIngest validates and ingests records one at a time at rate per
// second, noting each one's hand-over time by cursor (from first), and
// returns records per second of time spent inside validate+ingest.
func paceIngest(b *testing.B, n *Node, raws [][]byte, sent []atomic.Int64, first uint64, rate int) float64 {
	var busy time.Duration
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
		busy += time.Since(t0)
	}
	return float64(len(raws)) / busy.Seconds()
}

type subscriberSet struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	delays   []int64
	received int
}

// startSubscribers opens n SSE streams after event id from and waits until
// all are connected.
func startSubscribers(b *testing.B, ctx context.Context, url, from string, n int, sent []atomic.Int64) *subscriberSet {
	s := &subscriberSet{}
	var ready sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr}
	for range n {
		s.wg.Add(1)
		ready.Add(1)
		go func() {
			defer s.wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Last-Event-ID", from)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				ready.Done()
				return
			}
			defer resp.Body.Close()
			ready.Done()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			delays := make([]int64, 0, len(sent))
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					break
				}
				id, ok := bytes.CutPrefix(line, []byte("id: "))
				if !ok {
					continue
				}
				c, err := strconv.ParseUint(string(bytes.TrimSpace(id)), 10, 64)
				if err != nil {
					continue // a status change
				}
				if t := sent[c].Load(); t != 0 {
					delays = append(delays, time.Now().UnixNano()-t)
				}
			}
			s.mu.Lock()
			s.delays = append(s.delays, delays...)
			s.received += len(delays)
			s.mu.Unlock()
		}()
	}
	ready.Wait()
	return s
}

func (s *subscriberSet) wait() ([]int64, int) {
	s.wg.Wait()
	return s.delays, s.received
}
