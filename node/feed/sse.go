package feed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// KeepAlive is how long an SSE stream stays silent before the handler
// sends a comment line, so that proxies and clients see it is alive.
var KeepAlive = 15 * time.Second

// keepAliveFrame is the SSE comment sent after KeepAlive of silence.
var keepAliveFrame = []byte(": keep-alive\n\n")

// ServeConn serves an event stream on its own connection, taken from
// the HTTP server: the notifier writes the stream while sub is caught up
// (direct.go), and this goroutine writes it otherwise. The body ends
// when the connection closes.
func ServeConn(ctx context.Context, conn net.Conn, sub *Subscription) {
	defer conn.Close()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil || conn.SetDeadline(time.Time{}) != nil {
		return
	}
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 1000\n\n"
	if _, err := io.WriteString(conn, head); err != nil {
		return
	}
	// The server no longer watches the connection: a read ending (the
	// client hung up) ends the stream.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, conn)
		cancel()
	}()
	sub.setDirect(func(b []byte) (n int, err error) {
		werr := raw.Write(func(fd uintptr) bool {
			n, err = syscall.Write(int(fd), b)
			return true // one attempt: never wait for the socket
		})
		n = max(n, 0)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			err = nil
		}
		return n, cmp.Or(werr, err)
	})
	Serve(ctx, conn, func() error { return nil }, sub)
}

// Serve writes sub's stream to w, flushing after each write,
// whenever the notifier does not (direct.go): catching up, the rest of
// a write that would have blocked, keep-alives after KeepAlive without
// a write, and the end.
func Serve(ctx context.Context, w io.Writer, flush func() error, sub *Subscription) {
	idle := time.NewTimer(KeepAlive)
	defer idle.Stop()
	var chunks [][]byte
	var buf []byte
	var err error
	for {
		chunks, err = sub.read(ctx, 1024, idle.C, chunks[:0])
		if len(chunks) == 0 && err == nil {
			if d := sub.sinceDirect(); d < KeepAlive {
				idle.Reset(KeepAlive - d)
				continue
			}
			chunks = append(chunks, keepAliveFrame)
		}
		if errors.Is(err, ErrOverflow) {
			chunks = append(chunks, overflowFrame(sub.Pos()))
		}
		if buf, err = writeChunks(w, chunks, buf, err); err != nil || flush() != nil {
			return
		}
		idle.Reset(KeepAlive)
	}
}

// overflowFrame is the event that ends an overflowed stream, naming the
// position to resume from.
func overflowFrame(p Pos) []byte {
	return fmt.Appendf(nil, "id: %s\nevent: overflow\ndata: {\"resume\":%q}\n\n", p, p)
}

// writeChunks writes chunks to w, joined in buf (returned for reuse) when
// there are several, so that a wake-up costs one write. It returns rerr,
// or the write's error.
func writeChunks(w io.Writer, chunks [][]byte, buf []byte, rerr error) ([]byte, error) {
	const maxJoin = 256 << 10
	if len(chunks) == 1 {
		_, err := w.Write(chunks[0])
		return buf, cmp.Or(err, rerr)
	}
	buf = buf[:0]
	for i, c := range chunks {
		buf = append(buf, c...)
		if len(buf) >= maxJoin || i == len(chunks)-1 {
			if _, err := w.Write(buf); err != nil {
				return buf[:0], err
			}
			buf = buf[:0]
		}
	}
	if cap(buf) > maxJoin {
		buf = nil // a catch-up's buffer: do not keep it
	}
	return buf, rerr
}
