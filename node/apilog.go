package node

import (
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// refusedLog logs the API's refusals (a wrong or missing token, a foreign
// Host header): the first at once, then at most one line every
// refusedEvery, counting the ones in between, so that a client that keeps
// failing cannot flood the log.
type refusedLog struct {
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex
	last time.Time
	held int // refusals not logged since last
}

const refusedEvery = 10 * time.Second

// wrap logs next's 401 answers: a missing or wrong token.
func (l *refusedLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == http.StatusUnauthorized {
			l.refused(r, "API request refused: missing or wrong token")
		}
	})
}

// foreignHost logs a request refused for its Host header (api.CheckHost).
func (l *refusedLog) foreignHost(r *http.Request) {
	l.refused(r, "API request refused: its Host header names none of the hosts the API answers for (api_hosts)")
}

func (l *refusedLog) refused(r *http.Request, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < refusedEvery {
		l.held++
		return
	}
	l.log.Warn(what, "from", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "host", r.Host, "refused_before_unlogged", l.held)
	l.last, l.held = now, 0
}

// statusWriter notes the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the live feed's streams flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (the live
// feed's direct writes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
