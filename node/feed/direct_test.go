package feed

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// directStream is the byte stream of a direct subscription in a test. Its
// non-blocking writes (the notifier's) take, in turn, everything, half, or
// nothing, like a socket whose buffer fills (everything if roomy); its
// blocking writes (the reader's) take everything.
type directStream struct {
	roomy                   bool
	mu                      sync.Mutex
	buf                     bytes.Buffer
	calls                   int
	whole, partial, refused int
}

func (d *directStream) try(b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	n := len(b)
	switch {
	case d.roomy || d.calls%3 == 0:
		d.whole++
	case d.calls%3 == 1:
		n /= 2
		d.partial++
	default:
		n = 0
		d.refused++
	}
	d.buf.Write(b[:n])
	return n, nil
}

func (d *directStream) Write(b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.Write(b)
}

func (d *directStream) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.String()
}

// ids returns the ids of the stream's whole events, and whether it ends
// between two events.
func (d *directStream) ids(t *testing.T) ([]string, bool) {
	s := d.String()
	var out []string
	for {
		i := strings.Index(s, "\n\n")
		if i < 0 {
			return out, s == ""
		}
		out = append(out, parseFrame(t, []byte(s[:i+2])).ID)
		s = s[i+2:]
	}
}

// TestFeedDirect follows a commons with direct subscriptions (several per
// filter for some filters, one for others, and more filters than segments
// join, so that some subscribers are served by their readers only), whose
// notifier writes are taken whole, in part or not at all in turn, while
// records arrive one at a time. Each stream must carry exactly the events
// a fresh replay of its filter gives, in order, and the notifier must have
// written to them, whole and in part, but not to every one. It runs in a
// synctest bubble: records arrive one publication apart, in virtual time.
func TestFeedDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCommons(t, 1024)
		for i := range 3 {
			c.contribute(fmt.Sprint("before ", i), "text")
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		type follower struct {
			filter EventFilter
			from   string
			stream *directStream
			done   chan struct{}
		}
		filters := []EventFilter{{}, {}, {}, {Type: "status"}, {Type: "status"}, {Kind: "code"}, {Kind: "code"}, {Kind: "text"},
			{Type: "contribution"}, {Type: "review"}, {Status: "accepted"}, {Status: "pending"},
			{Type: "status", Status: "accepted"}, {Type: "contribution", Kind: "code"}}
		if n := len(slices.Compact(slices.Clone(filters))); n <= maxJoined {
			t.Fatalf("%d filters: want more than maxJoined (%d)", n, maxJoined)
		}
		var fls []*follower
		for i, f := range filters {
			fl := &follower{filter: f, from: []string{"", "4"}[i%2], stream: &directStream{}, done: make(chan struct{})}
			sub := c.subscribe(fl.from, f)
			sub.setDirect(fl.stream.try)
			go func() {
				defer close(fl.done)
				defer sub.Close()
				for {
					chunks, err := sub.read(ctx, 100, nil, nil)
					for _, c := range chunks {
						fl.stream.Write(c)
					}
					if err != nil {
						return
					}
				}
			}()
			fls = append(fls, fl)
		}
		for i := range 30 {
			id := c.contribute(fmt.Sprint("direct ", i), []string{"text", "code"}[i%2])
			if i%3 == 0 {
				c.review(id, "accept")
			}
			time.Sleep(feedCoalesce) // one publication each
		}
		time.Sleep(feedCoalesce)
		synctest.Wait()
		for _, fl := range fls {
			ref := c.subscribe(fl.from, fl.filter)
			want := ids(drain(t, ref))
			ref.Close()
			got, whole := fl.stream.ids(t)
			if !whole || !slices.Equal(got, want) {
				t.Errorf("filter %+v from %q:\n got %v (ends between events: %v)\nwant %v", fl.filter, fl.from, got, whole, want)
			}
		}
		cancel()
		var written, partial, unwritten int
		for _, fl := range fls {
			<-fl.done
			written += fl.stream.whole
			partial += fl.stream.partial
			if fl.stream.calls == 0 {
				unwritten++
			}
		}
		if written == 0 || partial == 0 {
			t.Errorf("the notifier wrote %d segments whole and %d in part: want some of each", written, partial)
		}
		if unwritten == 0 {
			t.Errorf("the notifier wrote to every stream: want those of the filters beyond maxJoined left to their readers")
		}
		if st := c.h.Stats(); st.FreeTurns != st.Turns || st.Subscribers != 0 {
			t.Errorf("after every subscriber left: %+v; want every turn free and no subscriber", st)
		}
	})
}

// TestFeedDirectKeepAlive checks, in a synctest bubble, that a direct
// stream gets a ": keep-alive" comment only after KeepAlive without a
// write, whether the notifier or the reader made the last one.
func TestFeedDirectKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCommons(t, 1024)
		ctx, cancel := context.WithCancel(t.Context())
		sub := c.subscribe("", EventFilter{})
		stream := &directStream{roomy: true}
		sub.setDirect(stream.try)
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer sub.Close()
			Serve(ctx, stream, func() error { return nil }, sub)
		}()
		check := streamChecker(t, stream)
		check(0, 1, 0) // the manifest, written by the reader
		const later = 10 * time.Second
		for i := range 3 { // events every 10 s, written by the notifier
			time.Sleep(later)
			c.contribute(fmt.Sprint("c", i), "")
		}
		check(3*later+KeepAlive-time.Millisecond, 4, 0)
		check(3*later+KeepAlive+feedCoalesce, 4, 1)
		check(3*later+2*KeepAlive+feedCoalesce, 4, 2)
		cancel()
		<-done
		if stream.whole < 3 {
			t.Errorf("the notifier wrote %d publications, want the 3 contributions' at least", stream.whole)
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
