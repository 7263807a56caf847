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
	"runtime"
	"strconv"
	"sync/atomic"
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
// stdin, and prints its report as JSON and then the delays.
//
// The subscribers stand for clients on other machines, so the process
// keeps its own work small: one thread reads every stream, polling them
// (epoll) once per feedClientPoll rather than being woken by each write.
// An event counts as arrived when that thread reads it, so the wait until
// the next poll is part of the delays.
//
// With COMMONS_FEED_RAW instead, it is the benchmark's raw TCP load
// (runRawLoad).
func TestFeedClients(t *testing.T) {
	var res feedClientsResult
	switch {
	case os.Getenv("COMMONS_FEED_CLIENTS") != "":
		res = runFeedClients(os.Getenv("COMMONS_FEED_CLIENTS"))
	case os.Getenv("COMMONS_FEED_RAW") != "":
		res = runRawLoad(os.Getenv("COMMONS_FEED_RAW"))
	default:
		t.Skip("the client process of BenchmarkFeedSubscribers")
	}
	out, _ := json.Marshal(res)
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "%s%s\n", feedClientsMark, out)
	binary.Write(w, binary.LittleEndian, res.delays)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// feedClientPoll is how often the client process reads its streams.
var feedClientPoll = time.Millisecond

func runFeedClients(env string) feedClientsResult {
	var addr, commons string
	var n int
	var first, last uint64
	if _, err := fmt.Sscan(env, &addr, &commons, &n, &first, &last); err != nil {
		return feedClientsResult{Err: "COMMONS_FEED_CLIENTS: " + err.Error()}
	}
	if v, err := time.ParseDuration(os.Getenv("COMMONS_FEED_CLIENTS_POLL")); err == nil {
		feedClientPoll = v
	}
	streams := make([]*feedStream, n)
	for i := range streams {
		s := &feedStream{first: first, last: last, next: first, recv: make([]int64, last-first+1)}
		if err := s.open(addr, commons); err != nil {
			return feedClientsResult{Err: err.Error()}
		}
		defer s.f.Close()
		streams[i] = s
	}
	r, err := startReading(streams)
	if err != nil {
		return feedClientsResult{Err: err.Error()}
	}
	sent := make([]int64, last-first+1)
	if err := binary.Read(os.Stdin, binary.LittleEndian, sent); err != nil {
		return feedClientsResult{Err: "read hand-over times: " + err.Error()}
	}
	// Every stream should have the last record within a second of its
	// ingestion; cut the stragglers after 10 s.
	cut := time.AfterFunc(10*time.Second, func() { r.stop.Store(true) })
	res := r.finish(nil)
	cut.Stop()
	for _, s := range streams {
		for i, r := range s.recv {
			if r != 0 {
				res.delays = append(res.delays, r-sent[i])
			}
		}
	}
	res.Delays = len(res.delays)
	return res
}

// pollStreams returns an epoll instance watching every stream for input,
// each by its index.
func pollStreams(streams []*feedStream) (int, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("epoll: %w", err)
	}
	for i, s := range streams {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			syscall.Close(ep)
			return 0, fmt.Errorf("epoll: %w", err)
		}
	}
	return ep, nil
}

// runRawLoad is the benchmark's raw TCP load, run with
// COMMONS_FEED_RAW="N FIRST LAST RATE PERIOD SIZE": the traffic of the
// feed's delivery without the node. It opens N loopback TCP connections
// to itself. One thread, at normal priority like the node, numbers
// records from FIRST at RATE a second (up to LAST) and, once every PERIOD,
// writes the new ones to every connection, one write each, each record an
// SSE frame of SIZE bytes with its "id:" line; another, at nice 19 like
// the client process, reads every connection as that process does
// (readStreams). It prints "ready" when connected and runs until its
// stdin closes, then reports, with no delays.
func runRawLoad(env string) feedClientsResult {
	var n, rate, size int
	var first, last uint64
	var period time.Duration
	var ps string
	if _, err := fmt.Sscan(env, &n, &first, &last, &rate, &ps, &size); err != nil {
		return feedClientsResult{Err: "COMMONS_FEED_RAW: " + err.Error()}
	}
	period, err := time.ParseDuration(ps)
	if err != nil || period <= 0 || rate <= 0 {
		return feedClientsResult{Err: fmt.Sprintf("COMMONS_FEED_RAW: bad rate %d or period %q", rate, ps)}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return feedClientsResult{Err: err.Error()}
	}
	defer ln.Close()
	streams := make([]*feedStream, n)
	far := make([]int, n) // the written ends
	for i := range streams {
		s := &feedStream{first: first, last: last, next: first, recv: make([]int64, last-first+1)}
		w, err := s.dialRaw(ln)
		if err != nil {
			return feedClientsResult{Err: err.Error()}
		}
		defer w.Close()
		defer s.f.Close()
		streams[i], far[i] = s, int(w.Fd())
	}
	r, err := startReading(streams)
	if err != nil {
		return feedClientsResult{Err: err.Error()}
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		r.stop.Store(true)
	}()
	werr := writeRaw(far, first, last, rate, period, size, &r.stop)
	r.stop.Store(true)
	return r.finish(werr)
}

// reading is a client process's reading thread (readStreams) at work.
type reading struct {
	streams []*feedStream
	ep      int
	stop    atomic.Bool
	done    chan error
	cpu0    time.Duration
	start   time.Time
}

// startReading starts reading streams and prints "ready".
func startReading(streams []*feedStream) (*reading, error) {
	ep, err := pollStreams(streams)
	if err != nil {
		return nil, err
	}
	r := &reading{streams: streams, ep: ep, done: make(chan error, 1), cpu0: processCPU(), start: time.Now()}
	go func() { r.done <- readStreams(ep, streams, &r.stop) }()
	fmt.Printf("%sready\n", feedClientsMark)
	return r, nil
}

// finish waits until the reading ends (every stream has its last record, or
// r.stop is set) and returns the report without delays, with err too.
func (r *reading) finish(err error) feedClientsResult {
	err = errors.Join(err, <-r.done)
	syscall.Close(r.ep)
	res := feedClientsResult{CPU: (processCPU() - r.cpu0).Seconds(), Wall: time.Since(r.start).Seconds()}
	if err != nil {
		res.Err = err.Error()
	}
	for _, s := range r.streams {
		res.OrderErrors += s.orderErrors
		res.Bytes += s.bytes
	}
	return res
}

// dialRaw connects s to ln, returning the accepted end, in blocking mode,
// for writing; s reads its end without blocking.
func (s *feedStream) dialRaw(ln net.Listener) (*os.File, error) {
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if s.f, err = c.(*net.TCPConn).File(); err != nil {
		return nil, err
	}
	s.fd = int(s.f.Fd())
	w, err := a.(*net.TCPConn).File()
	if err == nil {
		err = errors.Join(syscall.SetNonblock(s.fd, true), syscall.SetNonblock(int(w.Fd()), false))
	}
	return w, err
}

// writeRaw is runRawLoad's writing thread.
func writeRaw(fds []int, first, last uint64, rate int, period time.Duration, size int, stop *atomic.Bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	next := first
	var buf []byte
	for k := 1; !stop.Load(); k++ {
		upto := min(last, first+uint64(time.Since(start).Seconds()*float64(rate)))
		buf = buf[:0]
		for ; next <= upto; next++ {
			buf = appendRawFrame(buf, next, size)
		}
		for _, fd := range fds {
			for b := buf; len(b) > 0; {
				m, err := syscall.Write(fd, b)
				if err != nil && !errors.Is(err, syscall.EINTR) {
					return fmt.Errorf("raw write: %w", err)
				}
				b = b[max(m, 0):]
			}
		}
		time.Sleep(time.Until(start.Add(time.Duration(k) * period)))
	}
	return nil
}

// appendRawFrame appends record c's frame of about size bytes: an SSE
// event with its "id:" line, padded in its data line.
func appendRawFrame(b []byte, c uint64, size int) []byte {
	n := len(b)
	b = append(b, "event: record\nid: "...)
	b = strconv.AppendUint(b, c, 10)
	b = append(b, "\ndata: "...)
	for len(b)-n < size-2 {
		b = append(b, 'x')
	}
	return append(b, "\n\n"...)
}

// readStreams reads the streams on one thread, once per feedClientPoll,
// until each has its last record or stop is set.
func readStreams(ep int, streams []*feedStream, stop *atomic.Bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Clients come after the node (and the raw load's writer) on the
	// shared cores.
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	pause := syscall.NsecToTimespec(feedClientPoll.Nanoseconds())
	open := 0
	for _, s := range streams {
		if s.next <= s.last {
			open++
		}
	}
	for open > 0 && !stop.Load() {
		n, err := syscall.EpollWait(ep, events, 100)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("epoll: %w", err)
		}
		now := time.Now().UnixNano()
		for _, ev := range events[:max(n, 0)] {
			s := streams[ev.Fd]
			m, err := syscall.Read(s.fd, buf)
			if m > 0 {
				s.feed(buf[:m], now)
			}
			if s.next > s.last {
				syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, s.fd, nil)
				open--
				continue
			}
			if m == 0 {
				return fmt.Errorf("stream %d ended", ev.Fd)
			}
			if err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR) {
				return fmt.Errorf("stream %d: %w", ev.Fd, err)
			}
		}
		if feedClientPoll > 0 {
			syscall.Nanosleep(&pause, nil)
		}
	}
	return nil
}

// feedStream is one subscriber of the client process.
type feedStream struct {
	first, last uint64
	recv        []int64 // by record cursor - first: when its event was read

	next        uint64 // the record event expected next
	seq         int    // the last status event's seq, of record next-1
	orderErrors int

	f     *os.File // the connection, read without blocking
	fd    int
	bytes int64  // read so far
	part  []byte // a line cut by the end of a read
}

// open opens the stream after record s.first-1 and reads the response's
// head; the body is read from s.fd.
func (s *feedStream) open(addr, commons string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/commons/"+commons+"/events", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(s.first-1, 10))
	req.Header.Set("Accept", "text/event-stream")
	if err := req.Write(conn); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET events: HTTP %d", resp.StatusCode)
	}
	if s.f, err = conn.(*net.TCPConn).File(); err != nil {
		return err
	}
	s.fd = int(s.f.Fd())
	if err := syscall.SetNonblock(s.fd, true); err != nil {
		return err
	}
	head, _ := br.Peek(br.Buffered())
	s.feed(head, time.Now().UnixNano())
	return nil
}

// feed parses bytes read from the stream at now.
func (s *feedStream) feed(data []byte, now int64) {
	s.bytes += int64(len(data))
	if len(s.part) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			s.part = append(s.part, data...)
			return
		}
		s.part = append(s.part, data[:i+1]...)
		s.line(s.part, now)
		s.part, data = s.part[:0], data[i+1:]
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			s.part = append(s.part, data...)
			return
		}
		s.line(data[:i], now)
		data = data[i+1:]
	}
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
