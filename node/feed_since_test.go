package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// TestFeedSincePastTheEnd: a cursor past the end of the feed names no
// record: the feed refuses it, saying where the end is, rather than list
// nothing (or, waiting, skip the records that arrive first). At the end, it
// lists nothing, or waits.
func TestFeedSincePastTheEnd(t *testing.T) {
	w := newWorld(t) // w.commons ends at cursor 6, w.open at 2
	tests := []struct {
		name string
		q    api.FeedQuery
		raw  string
		want string // "": no error
	}{
		{"one commons", api.FeedQuery{Commons: w.commons, Since: 7}, "commons=" + w.commons + "&since=7",
			"cursor 7 is past the end of the feed of commons " + w.commons + ", which ends at cursor 6"},
		{"one commons, waiting", api.FeedQuery{Commons: w.open, Since: 3, Wait: time.Minute}, "commons=" + w.open + "&since=3&wait=1m",
			"cursor 3 is past the end of the feed of commons " + w.open + ", which ends at cursor 2"},
		{"every commons", api.FeedQuery{Since: 99}, "since=99",
			"cursor 99 is past the end of the feed of every commons here (the longest ends at cursor 6)"},
		{"past the end of one commons only", api.FeedQuery{Since: 5}, "since=5", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/client", func(t *testing.T) {
			_, err := w.c.Feed(t.Context(), tt.q)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Feed = %v", err)
				}
				return
			}
			if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Feed = %v, want ErrBadRequest saying %q", err, tt.want)
			}
		})
		t.Run(tt.name+"/raw", func(t *testing.T) {
			code, b := w.raw(t, "GET", "/api/v1/feed?"+tt.raw, noAuth, nil)
			if tt.want == "" && code != 200 || tt.want != "" && (code != 400 || !strings.Contains(string(b), tt.want)) {
				t.Errorf("GET feed?%s = %d %s", tt.raw, code, b)
			}
		})
	}
}
