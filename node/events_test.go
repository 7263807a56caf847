package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// drain reads every event of the subscription up to its commons' head
// when called, awaiting their publication.
func drain(t *testing.T, s *feed.Subscription) []feed.Event {
	t.Helper()
	var out []feed.Event
	head := s.Head()
	for !s.CaughtUp(head) {
		// Next returns once matching events are published; those that
		// follow, filtered out, move the position on without returning.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		frames, err := s.Next(ctx, 7)
		cancel()
		for _, f := range frames {
			out = append(out, parseFrame(t, f))
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next: %v", err)
		}
	}
	return out
}

func parseFrame(t *testing.T, f []byte) feed.Event {
	t.Helper()
	_, data, ok := strings.Cut(string(f), "\ndata: ")
	if !ok {
		t.Fatalf("frame %q has no data", f)
	}
	var ev feed.Event
	if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
		t.Fatalf("frame %q: %v", f, err)
	}
	return ev
}

func ids(evs []feed.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// TestEventsResume checks that the stream of w.commons is in order, has the
// status changes at their positions, and that resuming from any position
// gives exactly the rest.
func TestEventsResume(t *testing.T) {
	w := newWorld(t)
	sub := must[*feed.Subscription](t)(w.n.Subscribe(t.Context(), w.commons, "", feed.EventFilter{}))
	defer sub.Close()
	all := drain(t, sub)
	// 1 manifest, 2..4 contributions, 5 accept review (2 becomes accepted),
	// 6 reject review (3 becomes rejected).
	want := []string{"1", "2", "3", "4", "5", "5.1", "6", "6.1"}
	if !slices.Equal(ids(all), want) {
		t.Fatalf("ids = %v, want %v", ids(all), want)
	}
	if e := all[5]; e.Type != feed.EventStatus || e.CID != w.accepted || e.From != "pending" || e.Status != "accepted" || e.Cause != w.reviews[0] || e.Title != "to accept" {
		t.Errorf("status event = %+v", e)
	}
	if e := all[1]; e.Type != "contribution" || e.Status != "pending" || e.Kind != "text" || e.Author != w.self {
		t.Errorf("contribution event = %+v", e)
	}
	for i, from := range append([]string{""}, want...) {
		s := must[*feed.Subscription](t)(w.n.Subscribe(t.Context(), w.commons, from, feed.EventFilter{}))
		if got := ids(drain(t, s)); !slices.Equal(got, want[i:]) && !(len(got) == 0 && i == len(want)) {
			t.Errorf("resume after %q = %v, want %v", from, got, want[i:])
		}
		s.Close()
	}
	// Live: a review makes the pending contribution accepted.
	must[api.Published](t)(w.c.Review(t.Context(), api.ReviewParams{Target: w.pending, Decision: "accept"}))
	live := drain(t, sub)
	if !slices.Equal(ids(live), []string{"7", "7.1"}) || live[1].CID != w.pending || live[1].Status != "accepted" {
		t.Errorf("live events = %+v", live)
	}
}

func TestEventsFilter(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		f    feed.EventFilter
		want []string
	}{
		{feed.EventFilter{Type: "status"}, []string{"5.1", "6.1"}},
		{feed.EventFilter{Type: "review"}, []string{"5", "6"}},
		{feed.EventFilter{Status: "accepted"}, []string{"5.1"}},
		{feed.EventFilter{Status: "pending", Type: "contribution"}, []string{"2", "3", "4"}},
		{feed.EventFilter{Kind: "text"}, []string{"2", "5.1"}},
		{feed.EventFilter{Author: w.self.String()}, []string{"1", "2", "3", "4", "5", "5.1", "6", "6.1"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.f), func(t *testing.T) {
			s := must[*feed.Subscription](t)(w.n.Subscribe(t.Context(), w.commons, "", tt.f))
			defer s.Close()
			if got := ids(drain(t, s)); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEventsOverflow checks that a live subscriber that falls behind the
// buffer gets feed.ErrOverflow and resumes exactly from its position.
func TestEventsOverflow(t *testing.T) {
	n := startNode(t, Config{Offline: true, FeedBuffer: 4})
	c := serve(t, n).c
	ctx := t.Context()
	id := must[string](t)(c.CreateManifest(ctx, api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT")}))
	sub := must[*feed.Subscription](t)(n.Subscribe(ctx, id, "", feed.EventFilter{}))
	defer sub.Close()
	if got := ids(drain(t, sub)); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("ids = %v", got)
	}
	for i := range 10 {
		must[string](t)(c.Contribute(ctx, api.ContributeParams{Commons: id, Title: fmt.Sprint("c", i)}))
	}
	if _, err := sub.Next(ctx, 100); !errors.Is(err, feed.ErrOverflow) {
		t.Fatalf("Next after falling behind: %v, want feed.ErrOverflow", err)
	}
	if sub.Pos().String() != "1" {
		t.Errorf("resume position %v, want 1", sub.Pos())
	}
	again := must[*feed.Subscription](t)(n.Subscribe(ctx, id, sub.Pos().String(), feed.EventFilter{}))
	defer again.Close()
	if got := ids(drain(t, again)); !slices.Equal(got, []string{"2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}) {
		t.Errorf("after resume: %v", got)
	}
}

// TestEventsRestart checks that positions, status changes included, are
// the same after a restart.
func TestEventsRestart(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	open := func() *Node {
		st, err := badgerstore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{Store: st, Key: key, Offline: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open()
	ctx := t.Context()
	id := must[string](t)(n.CreateManifest(ctx, api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{n.Self()}}))
	c1 := must[string](t)(n.Contribute(ctx, api.ContributeParams{Commons: id, Title: "one"}))
	must[api.Published](t)(n.Review(ctx, api.ReviewParams{Target: c1, Decision: "accept"}))
	c2 := must[string](t)(n.Contribute(ctx, api.ContributeParams{Commons: id, Title: "two"}))
	must[api.Published](t)(n.Review(ctx, api.ReviewParams{Target: c2, Decision: "reject"}))
	sub := must[*feed.Subscription](t)(n.Subscribe(ctx, id, "", feed.EventFilter{}))
	before := drain(t, sub)
	sub.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = open()
	defer n.Close()
	for _, from := range []string{"", "3", "3.1", "4"} {
		sub = must[*feed.Subscription](t)(n.Subscribe(ctx, id, from, feed.EventFilter{}))
		after := drain(t, sub)
		sub.Close()
		i := slices.IndexFunc(before, func(e feed.Event) bool { return e.ID == from }) + 1
		b1, _ := json.Marshal(before[i:])
		b2, _ := json.Marshal(after)
		if string(b1) != string(b2) {
			t.Errorf("after restart, from %q:\n got %s\nwant %s", from, b2, b1)
		}
	}
}

// TestEventsSSE follows the feed over HTTP with the Client, drops the
// connection midway and checks every event arrives once, in order.
func TestEventsSSE(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	errc := make(chan error, 1)
	go func() {
		errc <- w.c.Events(ctx, w.commons, "3", feed.EventFilter{}, func(e feed.Event) error {
			got = append(got, e.ID)
			if e.ID == "7.1" {
				cancel()
			}
			return nil
		})
	}()
	must[api.Published](t)(w.c.Review(t.Context(), api.ReviewParams{Target: w.pending, Decision: "accept"}))
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event 7.1")
	}
	if want := []string{"4", "5", "5.1", "6", "6.1", "7", "7.1"}; !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestEventsHTTPErrors(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name, path, lastID string
		want               int
		wantErr            string
	}{
		{"bad commons", "/api/v1/commons/notacid/events", "", 400, "is not a CID"},
		{"unknown commons", "/api/v1/commons/" + absentCID + "/events", "", 404, "not replicated here"},
		{"bad type", "/api/v1/commons/" + w.commons + "/events?type=blob", "", 400, `type "blob"`},
		{"bad status", "/api/v1/commons/" + w.commons + "/events?status=done", "", 400, `status "done"`},
		{"bad author", "/api/v1/commons/" + w.commons + "/events?author=bob", "", 400, `author "bob"`},
		{"bad Last-Event-ID", "/api/v1/commons/" + w.commons + "/events", "x", 400, `event id "x"`},
		{"bad seq", "/api/v1/commons/" + w.commons + "/events", "3.0", 400, `event id "3.0"`},
		{"bad after", "/api/v1/commons/" + w.commons + "/events?after=-1", "", 400, `event id "-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", w.url+tt.path, nil)
			if tt.lastID != "" {
				req.Header.Set("Last-Event-ID", tt.lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tt.want || !strings.Contains(e.Error, tt.wantErr) {
				t.Errorf("= %d %q, want %d containing %q", resp.StatusCode, e.Error, tt.want, tt.wantErr)
			}
		})
	}
}

// follower reads a subscription in its own goroutine until its context
// ends, keeping the event ids.
type follower struct {
	filter   feed.EventFilter
	from     string
	cancel   context.CancelFunc
	done     chan struct{}
	progress chan struct{}
	mu       sync.Mutex
	got      []string
}

func follow(t *testing.T, n *Node, commons, from string, f feed.EventFilter) *follower {
	t.Helper()
	sub := must[*feed.Subscription](t)(n.Subscribe(t.Context(), commons, from, f))
	ctx, cancel := context.WithCancel(t.Context())
	fl := &follower{filter: f, from: from, cancel: cancel, done: make(chan struct{}), progress: make(chan struct{}, 1)}
	go func() {
		defer close(fl.done)
		defer sub.Close()
		for {
			frames, err := sub.Next(ctx, 100)
			fl.mu.Lock()
			for _, f := range frames {
				fl.got = append(fl.got, parseFrame(t, f).ID)
			}
			fl.mu.Unlock()
			select {
			case fl.progress <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return fl
}

// await waits until fl has n events and returns them.
func (fl *follower) await(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		fl.mu.Lock()
		got := slices.Clone(fl.got)
		fl.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-fl.progress:
		case <-timeout:
			t.Fatalf("filter %+v from %q: %d events after 10 s, want %d: %v", fl.filter, fl.from, len(got), n, got)
		}
	}
}

// TestEventsManySubscribers follows one commons with more subscribers than
// turns (feed_turns.go), with several filters (some subscribed only after
// the publications began, so not joined in their segments), from several
// positions, some leaving midway, and checks that each gets exactly the
// events a fresh replay of its filter gives, in order.
func TestEventsManySubscribers(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	filters := []feed.EventFilter{{}, {Type: "status"}, {Type: "contribution"}, {Kind: "text"}, {Status: "accepted"}}
	froms := []string{"", "3", "5.1", "6.1"}
	var fls []*follower
	for i := range 40 {
		fls = append(fls, follow(t, w.n, w.commons, froms[i%len(froms)], filters[i%len(filters)]))
	}
	var contribs []string
	for i := range 12 {
		kind := []string{"text", "code"}[i%2]
		contribs = append(contribs, must[string](t)(w.c.Contribute(ctx, api.ContributeParams{Commons: w.commons, Title: fmt.Sprint("live ", i), Kind: kind})))
		if i == 5 {
			// Leave while events flow, and join with new filters.
			for _, fl := range fls[:10] {
				fl.cancel()
				<-fl.done
			}
			fls = fls[10:]
			for i := range 10 {
				f := feed.EventFilter{Kind: "code", Type: []string{"contribution", "status"}[i%2]}
				fls = append(fls, follow(t, w.n, w.commons, froms[i%len(froms)], f))
			}
		}
	}
	for i, c := range contribs {
		if i%3 != 2 {
			must[api.Published](t)(w.c.Review(ctx, api.ReviewParams{Target: c, Decision: []string{"accept", "reject"}[i%3]}))
		}
	}
	for _, fl := range fls {
		ref := must[*feed.Subscription](t)(w.n.Subscribe(ctx, w.commons, fl.from, fl.filter))
		want := ids(drain(t, ref))
		ref.Close()
		if got := fl.await(t, len(want)); !slices.Equal(got, want) {
			t.Errorf("filter %+v from %q:\n got %v\nwant %v", fl.filter, fl.from, got, want)
		}
	}
	for _, fl := range fls {
		fl.cancel()
		<-fl.done
	}
	if n := w.n.feeds.Stats(); n.FreeTurns != n.Turns {
		t.Errorf("free turns after every subscriber left = %d, want %d", n.FreeTurns, n.Turns)
	}
}

// streamRecorder is a ResponseWriter whose body can be read while the
// handler writes.
type streamRecorder struct {
	block chan struct{} // if not nil, each Write waits for a receive
	mu    sync.Mutex
	hdr   http.Header
	code  int
	body  bytes.Buffer
}

func (r *streamRecorder) Header() http.Header { return r.hdr }
func (r *streamRecorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.code = code
}
func (r *streamRecorder) Write(p []byte) (int, error) {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(p)
}
func (r *streamRecorder) Flush() {}

func (r *streamRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.String()
}

// TestEventsKeepAlive checks, in a synctest bubble, that a silent stream
// gets a ": keep-alive" comment every feed.KeepAlive and that events put
// the next one off.
func TestEventsKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startOffline(t)
		h := api.Handler(n, testToken)
		id := must[string](t)(n.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("K"), Licence: ptr("MIT")}))
		ctx, cancel := context.WithCancel(t.Context())
		rec := &streamRecorder{hdr: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/api/v1/commons/"+id+"/events", nil))
		}()
		check := streamChecker(t, rec)
		check(0, 1, 0)
		check(feed.KeepAlive-time.Millisecond, 1, 0)
		check(feed.KeepAlive, 1, 1)
		check(2*feed.KeepAlive-time.Millisecond, 1, 1)
		check(2*feed.KeepAlive, 1, 2)
		const later = 5 * time.Second
		time.Sleep(later)
		must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id, Title: "breaks the silence"}))
		check(2*feed.KeepAlive+later, 2, 2)
		check(3*feed.KeepAlive, 2, 2) // counted from the event, not the last comment
		check(3*feed.KeepAlive+later-time.Millisecond, 2, 2)
		check(3*feed.KeepAlive+later, 2, 3)
		cancel()
		<-done
		if rec.code != http.StatusOK || rec.hdr.Get("Content-Type") != "text/event-stream" {
			t.Errorf("response %d %v", rec.code, rec.hdr)
		}
	})
}

// streamChecker returns a function that waits, in a synctest bubble, until
// at after now and checks that the stream's body has so many events and
// keep-alive comments.
func streamChecker(t *testing.T, stream fmt.Stringer) func(at time.Duration, wantEvents, wantKeepAlives int) {
	start := time.Now()
	return func(at time.Duration, wantEvents, wantKeepAlives int) {
		t.Helper()
		time.Sleep(at - time.Since(start))
		synctest.Wait()
		body := stream.String()
		if got := strings.Count(body, "\ndata: "); got != wantEvents {
			t.Errorf("at %v: %d events, want %d:\n%s", at, got, wantEvents, body)
		}
		if got := strings.Count(body, ": keep-alive\n\n"); got != wantKeepAlives {
			t.Errorf("at %v: %d keep-alives, want %d:\n%s", at, got, wantKeepAlives, body)
		}
	}
}

// TestEventsHTTPOverflow checks, in a synctest bubble, that an SSE stream
// whose writes stall while the ring moves past it ends with an overflow
// event naming the position to resume from, which resumes exactly.
func TestEventsHTTPOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := startNode(t, Config{Offline: true, FeedBuffer: 4})
		h := api.Handler(n, testToken)
		ctx := t.Context()
		id := must[string](t)(n.CreateManifest(ctx, api.ManifestParams{Name: ptr("O"), Licence: ptr("MIT")}))
		rec := &streamRecorder{hdr: http.Header{}, block: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/api/v1/commons/"+id+"/events", nil))
		}()
		write := func() { rec.block <- struct{}{} }
		write() // retry
		write() // event 1
		must[string](t)(n.Contribute(ctx, api.ContributeParams{Commons: id, Title: "stalls"}))
		time.Sleep(time.Second)
		synctest.Wait() // the handler is writing event 2
		for i := range 9 {
			must[string](t)(n.Contribute(ctx, api.ContributeParams{Commons: id, Title: fmt.Sprint("c", i)}))
		}
		time.Sleep(time.Second)
		write() // event 2: the ring now holds 8..11
		write() // the overflow event
		<-done
		body := rec.String()
		if want := "id: 2\nevent: overflow\ndata: {\"resume\":\"2\"}\n\n"; !strings.HasSuffix(body, want) || strings.Count(body, "\ndata: {\"id\"") != 2 {
			t.Fatalf("body:\n%s\nwant events 1 and 2, then %q", body, want)
		}
		sub := must[*feed.Subscription](t)(n.Subscribe(ctx, id, "2", feed.EventFilter{}))
		defer sub.Close()
		var got []string
		for len(got) < 9 {
			frames := must[[][]byte](t)(sub.Next(ctx, 100))
			for _, f := range frames {
				got = append(got, parseFrame(t, f).ID)
			}
		}
		if want := []string{"3", "4", "5", "6", "7", "8", "9", "10", "11"}; !slices.Equal(got, want) {
			t.Errorf("resumed = %v, want %v", got, want)
		}
	})
}
