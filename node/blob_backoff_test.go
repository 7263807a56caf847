package node

import (
	"testing"
	"time"
)

func TestBlobBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, 30 * time.Second},
		{2, time.Minute},
		{3, 2 * time.Minute},
		{7, 32 * time.Minute},
		{8, time.Hour},
		{100, time.Hour},
	}
	for _, tt := range tests {
		if got := blobBackoff(tt.failures); got != tt.want {
			t.Errorf("blobBackoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}
