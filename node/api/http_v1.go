package api

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
)

// Streamer is what the routes beyond API need: the live feed, contribution
// lists, raw records and metrics. *Node implements it.
type Streamer interface {
	Subscribe(ctx context.Context, commons, from string, filter feed.EventFilter) (*feed.Subscription, error)
	Contributions(ctx context.Context, q ContributionQuery) (ContributionPage, error)
	RawRecord(ctx context.Context, c string) ([]byte, error)
	// MetricsHandler serves the node's metrics in Prometheus' text format.
	MetricsHandler() http.Handler
}

// ContributionQuery selects a commons' contributions, in arrival order.
// Empty fields match everything.
type ContributionQuery struct {
	Commons string
	Status  string
	Kind    string
	Author  string    // peer ID or hex key
	Since   time.Time // record time at or after
	Until   time.Time // record time before
	After   uint64    // feed cursor: list contributions that arrived after it
	Limit   int       // default DefaultFeedLimit, at most MaxFeedLimit
}

// ContributionItem is one contribution in a list.
type ContributionItem struct {
	Cursor uint64             `json:"cursor"`
	CID    string             `json:"cid"`
	Title  string             `json:"title"`
	Kind   string             `json:"kind,omitempty"`
	Author protocol.PublicKey `json:"author"`
	Time   time.Time          `json:"time"`
	Status string             `json:"status"`
	// Dropped says that this node dropped the contribution's bytes, its
	// author's key being banned (commons repo compact --disowned): its
	// title is not known here.
	Dropped bool `json:"dropped,omitempty"`
}

// ContributionPage is a page of contributions. Next, when not 0, is the
// cursor to pass as after for the next page.
type ContributionPage struct {
	Contributions []ContributionItem `json:"contributions"`
	Next          uint64             `json:"next,omitempty"`
}

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI document (JSON), served at
// /api/v1/openapi.json.
func OpenAPI() []byte { return bytes.Clone(openAPIDoc) }

//go:embed web
var webFS embed.FS

// registerV1 adds the routes of the live feed, contribution lists, the
// OpenAPI document, metrics and the web explorer.
func registerV1(mux *http.ServeMux, h *handler) {
	mux.HandleFunc("GET /api/v1/commons/{id}/events", h.events)
	mux.HandleFunc("GET /api/v1/commons/{id}/contributions", h.contributions)
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDoc)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.streamer(w)
		if ok {
			s.MetricsHandler().ServeHTTP(w, r)
		}
	})
	sub, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(sub)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET /web/", http.StripPrefix("/web/", files))
}

func (h *handler) streamer(w http.ResponseWriter) (Streamer, bool) {
	s, ok := h.api.(Streamer)
	if !ok {
		writeError(w, http.StatusNotImplemented, errors.New("this API serves no live feed"))
	}
	return s, ok
}

// wantsCBOR reports whether a record request asks for raw DAG-CBOR, by
// ?format=cbor or an Accept header naming only DAG-CBOR; an unknown format
// is an error.
func wantsCBOR(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "cbor", "dag-cbor":
		return true, nil
	case "json":
		return false, nil
	case "":
		return r.Header.Get("Accept") == MediaTypeCBOR, nil
	default:
		return false, fmt.Errorf("format %q: want json or cbor", f)
	}
}

// showRaw answers GET /records/{cid} with the record's bytes, or reports a
// bad format; it returns false when the caller should answer with JSON.
func (h *handler) showRaw(w http.ResponseWriter, r *http.Request) bool {
	raw, err := wantsCBOR(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return true
	}
	if !raw {
		return false
	}
	s, ok := h.streamer(w)
	if !ok {
		return true
	}
	b, err := s.RawRecord(r.Context(), r.PathValue("cid"))
	if err != nil {
		fail(w, err)
		return true
	}
	writeRecord(w, b)
	return true
}

func (h *handler) contributions(w http.ResponseWriter, r *http.Request) {
	s, ok := h.streamer(w)
	if !ok {
		return
	}
	v := r.URL.Query()
	q := ContributionQuery{Commons: r.PathValue("id"), Status: v.Get("status"), Kind: v.Get("kind"), Author: v.Get("author")}
	var err error
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(p.name); s != "" {
			if *p.t, err = time.Parse(time.RFC3339, s); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("%s %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", p.name, s))
				return
			}
		}
	}
	if a := v.Get("after"); a != "" {
		if q.After, err = strconv.ParseUint(a, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("after %q is not a cursor (a whole number)", a))
			return
		}
	}
	if l := v.Get("limit"); l != "" {
		if q.Limit, err = strconv.Atoi(l); err != nil || q.Limit < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q is not a positive whole number", l))
			return
		}
	}
	if page, err := s.Contributions(r.Context(), q); err != nil {
		fail(w, err)
	} else {
		writeJSON(w, http.StatusOK, page)
	}
}

// events serves a commons' live feed as Server-Sent Events. It resumes
// after the Last-Event-ID header (or the after query parameter, for the
// first connection). Each wake-up's events go out in one write and one
// flush; a stream silent for feedKeepAlive gets a ": keep-alive" comment.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	s, ok := h.streamer(w)
	if !ok {
		return
	}
	v := r.URL.Query()
	filter := feed.EventFilter{Type: v.Get("type"), Status: v.Get("status"), Kind: v.Get("kind"), Author: v.Get("author")}
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = v.Get("after")
	}
	sub, err := s.Subscribe(r.Context(), r.PathValue("id"), from, filter)
	if err != nil {
		fail(w, err)
		return
	}
	defer sub.Close()
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		feed.ServeConn(r.Context(), conn, sub)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	// No chunking: the body ends when the connection closes, as the SSE
	// specification suggests, and a write is one system call, not three.
	hd.Set("Transfer-Encoding", "identity")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := w.Write([]byte("retry: 1000\n\n")); err != nil || rc.Flush() != nil {
		return
	}
	feed.Serve(r.Context(), w, rc.Flush, sub)
}
