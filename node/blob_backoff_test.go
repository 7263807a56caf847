package node

import (
	"testing"
	"time"
)

func TestBlobBackoff(t *testing.T) {
	tests := []struct {
		first    time.Duration
		failures int
		want     time.Duration
	}{
		{time.Second, 1, time.Second},
		{time.Second, 2, 2 * time.Second},
		{time.Second, 3, 4 * time.Second},
		{time.Second, 12, 2048 * time.Second},
		{time.Second, 13, time.Hour},
		{30 * time.Second, 1, 30 * time.Second},
		{30 * time.Second, 7, 32 * time.Minute},
		{30 * time.Second, 8, time.Hour},
		{30 * time.Second, 100, time.Hour},
	}
	for _, tt := range tests {
		if got := blobBackoff(tt.first, tt.failures); got != tt.want {
			t.Errorf("blobBackoff(%v, %d) = %v, want %v", tt.first, tt.failures, got, tt.want)
		}
	}
}

// TestBlobPlanAccepts: a fetch accepts an announced size that a
// referencing record states, within the limit; when one of the records
// states no size (a licence text), any size within the limit, so that a
// record naming the licence text with a wrong size cannot make it
// unfetchable.
func TestBlobPlanAccepts(t *testing.T) {
	for _, c := range []struct {
		name string
		plan blobPlan
		size uint64
		want bool
	}{
		{"a stated size", blobPlan{limit: 100, sizes: []uint64{10, 40}}, 40, true},
		{"a size no record states", blobPlan{limit: 100, sizes: []uint64{10, 40}}, 50, false},
		{"no size stated", blobPlan{limit: 100}, 50, true},
		{"no size stated, over the limit", blobPlan{limit: 100}, 101, false},
		{"a licence text another record sizes wrongly", blobPlan{limit: 100, sizes: []uint64{10}, unknown: true}, 50, true},
		{"a licence text over the limit", blobPlan{limit: 100, sizes: []uint64{10}, unknown: true}, 101, false},
	} {
		if got := c.plan.accepts(c.size); got != c.want {
			t.Errorf("%s: accepts(%d) = %v, want %v", c.name, c.size, got, c.want)
		}
	}
}
