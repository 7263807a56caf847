package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/gen"
)

// logCapture is a slog handler that keeps the level and message of every
// record.
type logCapture struct {
	mu    sync.Mutex
	lines []string // "INFO contribution status"
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, r.Level.String()+" "+r.Message)
	return nil
}

// count returns how many lines start with prefix.
func (c *logCapture) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func changes(n int, to crdt.Status) []feed.Applied {
	out := make([]feed.Applied, n)
	for i := range out {
		c := protocol.RecordCID([]byte{byte(i), byte(i >> 8)})
		out[i].Changes = []feed.Change{{Change: crdt.Change{Contribution: c, From: crdt.StatusPending, To: to}}}
	}
	return out
}

func TestStatusLog(t *testing.T) {
	var c logCapture
	log := slog.New(&c)
	id := protocol.RecordCID([]byte("commons"))
	var s statusLog
	now := time.Unix(1000, 0)

	// A lone change is said at once, with its contribution.
	s.add(log, id, changes(1, crdt.StatusAccepted), now)
	if c.count("INFO contribution status") != 1 || c.count("DEBUG contribution status") != 1 {
		t.Fatalf("after one change, the log is %q", c.lines)
	}
	// Thousands within a few seconds: each at Debug, at Info a summary
	// per statusLogEvery.
	for i := range 100 {
		s.add(log, id, changes(100, crdt.StatusRejected), now.Add(time.Duration(i)*100*time.Millisecond))
		s.flushDue(log, now.Add(time.Duration(i)*100*time.Millisecond))
	}
	if got := c.count("INFO"); got != 2 { // the lone one, and one at 5 s
		t.Errorf("10,000 changes over 10 s wrote %d Info lines, want 2", got)
	}
	if got := c.count("DEBUG contribution status"); got != 10001 {
		t.Errorf("%d Debug lines, want one per change (10,001)", got)
	}
	// What waits is written by flushDue once due, or by flush at the end.
	s.flushDue(log, now.Add(9950*time.Millisecond))
	if got := c.count("INFO"); got != 2 {
		t.Errorf("flushDue before it is due: %d Info lines, want 2", got)
	}
	s.flushDue(log, now.Add(10*time.Second))
	if got := c.count("INFO contribution statuses changed"); got != 2 {
		t.Errorf("flushDue once due: %d summaries, want 2", got)
	}
	s.add(log, id, changes(2, crdt.StatusAccepted), now.Add(11*time.Second))
	s.flush(log, now.Add(11*time.Second))
	if got := c.count("INFO contribution statuses changed"); got != 3 {
		t.Errorf("flush: %d summaries, want 3", got)
	}
}

// TestImportLogsSummaries: importing thousands of reviewed contributions
// writes a few Info lines about their statuses, not one per review.
func TestImportLogsSummaries(t *testing.T) {
	g, err := gen.Generate(gen.Options{Records: 3000, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	w, err := protocol.NewCARWriter(&car, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.Records {
		if err := w.Put(g.CIDs[i], g.Records[i]); err != nil {
			t.Fatal(err)
		}
	}
	var c logCapture
	n := startNode(t, Config{Offline: true, Logger: slog.New(&c)})
	if _, err := n.Import(t.Context(), &car, true); err != nil {
		t.Fatal(err)
	}
	// Each change, at Debug here, or at Info where each has a line.
	changed := c.count("DEBUG contribution status") + c.count("INFO contribution status") - c.count("INFO contribution statuses")
	if changed < 100 {
		t.Fatalf("the import changed %d statuses; the test wants hundreds", changed)
	}
	if got := c.count("INFO contribution status"); got > 2 {
		t.Errorf("%d status changes wrote %d Info lines, want at most 2", changed, got)
	}
}
