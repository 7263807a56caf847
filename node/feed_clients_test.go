package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
func TestFeedClients(t *testing.T) {
	env := os.Getenv("COMMONS_FEED_CLIENTS")
	if env == "" {
		t.Skip("the client process of BenchmarkFeedSubscribers")
	}
	res := runFeedClients(env)
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
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return feedClientsResult{Err: "epoll: " + err.Error()}
	}
	defer syscall.Close(ep)
	for i, s := range streams {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			return feedClientsResult{Err: "epoll: " + err.Error()}
		}
	}
	cpu0, start := processCPU(), time.Now()
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() { done <- readStreams(ep, streams, &stop) }()
	fmt.Printf("%sready\n", feedClientsMark)

	sent := make([]int64, last-first+1)
	if err := binary.Read(os.Stdin, binary.LittleEndian, sent); err != nil {
		return feedClientsResult{Err: "read hand-over times: " + err.Error()}
	}
	// Every stream should have the last record within a second of its
	// ingestion; cut the stragglers after 10 s.
	cut := time.AfterFunc(10*time.Second, func() { stop.Store(true) })
	err = <-done
	cut.Stop()
	res := feedClientsResult{CPU: (processCPU() - cpu0).Seconds(), Wall: time.Since(start).Seconds()}
	if err != nil {
		res.Err = err.Error()
	}
	for _, s := range streams {
		res.OrderErrors += s.orderErrors
		for i, r := range s.recv {
			if r != 0 {
				res.delays = append(res.delays, r-sent[i])
			}
		}
	}
	res.Delays = len(res.delays)
	return res
}

// readStreams reads the streams on one thread, once per feedClientPoll,
// until each has its last record or stop is set.
func readStreams(ep int, streams []*feedStream, stop *atomic.Bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
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

	f    *os.File // the connection, read without blocking
	fd   int
	part []byte // a line cut by the end of a read
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
