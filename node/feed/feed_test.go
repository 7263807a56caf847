package feed

import (
	"fmt"
	"slices"
	"testing"
)

// TestJoinedFilters checks which filters a segment joins its events for:
// every subscriber's, or the maxJoined most subscribed.
func TestJoinedFilters(t *testing.T) {
	kinds := func(counts ...int) map[EventFilter]int {
		m := map[EventFilter]int{}
		for i, n := range counts {
			m[EventFilter{Kind: fmt.Sprint(i)}] = n
		}
		return m
	}
	tests := []struct {
		name   string
		filter map[EventFilter]int
		want   []string // kinds, in any order
	}{
		{"none", kinds(), nil},
		{"every filter", kinds(1, 2, 1, 3), []string{"0", "1", "2", "3"}},
		{"the most subscribed", kinds(2, 9, 3, 4, 5, 6, 7, 8, 10, 11), []string{"1", "3", "4", "5", "6", "7", "8", "9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &commonsFeed{filter: tt.filter}
			var got []string
			for _, fl := range f.joinedFilters() {
				got = append(got, fl.Kind)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("joined = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTurns checks that turns go to queued subscriptions in order, at most
// free at once, and come back when a holder is done or a queued one
// leaves.
func TestTurns(t *testing.T) {
	subs := make([]*Subscription, 5)
	for i := range subs {
		subs[i] = &Subscription{turn: make(chan struct{}, 1)}
	}
	has := func() (got []int) {
		for i, s := range subs {
			select {
			case <-s.turn:
				got = append(got, i)
				s.holding = true
			default:
			}
		}
		return got
	}
	tr := &turns{free: 2}
	tr.enqueue(subs)
	if got := has(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("first turns to %v, want [0 1]", got)
	}
	tr.done(subs[3]) // leaves while queued: skipped
	tr.done(subs[0])
	if got := has(); !slices.Equal(got, []int{2}) {
		t.Fatalf("after 0 is done, turn to %v, want [2]", got)
	}
	tr.done(subs[1])
	tr.done(subs[2])
	if got := has(); !slices.Equal(got, []int{4}) {
		t.Fatalf("after 1 and 2 are done, turns to %v, want [4]", got)
	}
	tr.done(subs[4])
	if tr.free != 2 || len(tr.queue) != 0 {
		t.Errorf("at rest: %d free, %d queued; want 2 and 0", tr.free, len(tr.queue))
	}
}
