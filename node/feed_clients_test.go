package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFeedClients is the client process of BenchmarkFeedSubscribers, run
// by it with COMMONS_FEED_CLIENTS="ADDR COMMONS N FIRST LAST"; otherwise it
// is skipped. It opens N event streams of COMMONS after record FIRST-1,
// prints "ready", and notes when each record's event arrives on each
// stream until every stream has record LAST. Then it reads the records'
// hand-over times (LAST-FIRST+1 little-endian int64 nanoseconds) from
// stdin and prints the delays' quantiles as JSON.
func TestFeedClients(t *testing.T) {
	env := os.Getenv("COMMONS_FEED_CLIENTS")
	if env == "" {
		t.Skip("the client process of BenchmarkFeedSubscribers")
	}
	if v := os.Getenv("NICE"); v != "" {
		nv, _ := strconv.Atoi(v)
		syscall.Setpriority(syscall.PRIO_PROCESS, 0, nv)
	}
	res := runFeedClients(env)
	out, _ := json.Marshal(res)
	fmt.Printf("%s%s\n", feedClientsMark, out)
}

func runFeedClients(env string) feedClientsResult {
	var addr, commons string
	var n int
	var first, last uint64
	if _, err := fmt.Sscan(env, &addr, &commons, &n, &first, &last); err != nil {
		return feedClientsResult{Err: "COMMONS_FEED_CLIENTS: " + err.Error()}
	}
	streams := make([]*feedStream, n)
	var ready, done sync.WaitGroup
	errs := make(chan error, n)
	for i := range streams {
		s := &feedStream{first: first, last: last, next: first, recv: make([]int64, last-first+1)}
		streams[i] = s
		ready.Add(1)
		done.Go(func() {
			if err := s.run(addr, commons, ready.Done); err != nil {
				errs <- err
			}
		})
	}
	ready.Wait()
	select {
	case err := <-errs:
		return feedClientsResult{Err: err.Error()}
	default:
	}
	cpu0, start := processCPU(), time.Now()
	fmt.Printf("%sready\n", feedClientsMark)

	sent := make([]int64, last-first+1)
	if err := binary.Read(os.Stdin, binary.LittleEndian, sent); err != nil {
		return feedClientsResult{Err: "read hand-over times: " + err.Error()}
	}
	// Every stream should have the last record within a second of its
	// ingestion; cut the stragglers after 10 s.
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		for _, s := range streams {
			s.close()
		}
		<-finished
	}
	res := feedClientsResult{CPU: (processCPU() - cpu0).Seconds(), Wall: time.Since(start).Seconds()}
	var delays []int64
	for _, s := range streams {
		res.OrderErrors += s.orderErrors
		for i, r := range s.recv {
			if r != 0 {
				delays = append(delays, r-sent[i])
			}
		}
	}
	res.Received = len(delays)
	if len(delays) > 0 {
		slices.Sort(delays)
		q := func(f float64) int64 { return delays[int(f*float64(len(delays)-1))] }
		res.P50, res.P99, res.Max = q(0.5), q(0.99), q(1)
	}
	return res
}

// feedStream is one subscriber of the client process.
type feedStream struct {
	first, last uint64
	recv        []int64 // by record cursor - first: when its event was read

	next        uint64 // the record event expected next
	seq         int    // the last status event's seq, of record next-1
	orderErrors int

	mu   sync.Mutex
	conn net.Conn
}

func (s *feedStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
	}
}

// run opens the stream, calls ready once it is open (or failed), and reads
// it until the last record's event or an error.
func (s *feedStream) run(addr, commons string, ready func()) error {
	err := s.read(addr, commons, ready)
	if s.next > s.last {
		return nil
	}
	return err
}

func (s *feedStream) read(addr, commons string, ready func()) error {
	defer s.close()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		ready()
		return err
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/commons/"+commons+"/events", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(s.first-1, 10))
	req.Header.Set("Accept", "text/event-stream")
	if err := req.Write(conn); err != nil {
		ready()
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), req)
	ready()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET events: HTTP %d", resp.StatusCode)
	}
	buf := make([]byte, 32<<10)
	var part []byte // a line cut by the end of a read
	for s.next <= s.last {
		m, err := resp.Body.Read(buf)
		now := time.Now().UnixNano()
		data := buf[:m]
		if len(part) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				part = append(part, data...)
				continue
			}
			part = append(part, data[:i+1]...)
			s.line(part, now)
			part, data = part[:0], data[i+1:]
		}
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				part = append(part, data...)
				break
			}
			s.line(data[:i], now)
			data = data[i+1:]
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("stream ended")
			}
			return err
		}
	}
	return nil
}

// line notes one SSE line read at now: only "id: C" and "id: C.k" count.
func (s *feedStream) line(l []byte, now int64) {
	id, ok := bytes.CutPrefix(l, []byte("id: "))
	if !ok {
		return
	}
	id = bytes.TrimRight(id, "\r\n")
	c, k, status := bytes.Cut(id, []byte("."))
	cur, err := strconv.ParseUint(string(c), 10, 64)
	if err != nil {
		s.orderErrors++
		return
	}
	if !status {
		if cur != s.next {
			s.orderErrors++
			return
		}
		s.recv[cur-s.first] = now
		s.next, s.seq = cur+1, 0
		return
	}
	seq, err := strconv.Atoi(string(k))
	if err != nil || cur != s.next-1 || seq != s.seq+1 {
		s.orderErrors++
		return
	}
	s.seq = seq
}
