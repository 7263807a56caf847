package testnet

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
)

// metric reads one series from a node's /metrics, served by its API
// handler as a scraper would read it. It fails the test if the series is
// absent.
func metric(t *testing.T, n *Net, i int, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	api.Handler(n.Node(i), "").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if rec.Code != 200 || m == nil {
		t.Fatalf("node %d: /metrics (%d) has no %s", i, rec.Code, series)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("node %d: %s = %q: %v", i, series, m[1], err)
	}
	return v
}

// The sync metrics count real sessions: a late joiner catches up by sync
// alone (the records were made before any connection, so none is
// gossiped), and both sides report the session, its round trips and at
// least the records' bytes, in the right directions.
func TestSyncMetrics(t *testing.T) {
	Run(t, Options{Nodes: 2, ExchangeInterval: time.Hour}, func(t *testing.T, n *Net) {
		id, raws := source(t, n, 0, 40)
		deliver(t, n, 1, raws[:1]) // the genesis: node 1 replicates the commons
		size := 0
		for _, r := range raws[1:] {
			size += len(r)
		}
		for i := range 2 {
			if s := metric(t, n, i, "commons_sync_sessions_total"); s != 0 {
				t.Fatalf("node %d: %v sync sessions before any connection", i, s)
			}
		}
		n.Connect(0, 1) // syncs on connecting
		n.WaitConverged(id, 0, 1)
		n.Settle(time.Second) // the session's end, after the last record
		for i := range 2 {
			if s := metric(t, n, i, "commons_sync_sessions_total"); s < 1 {
				t.Errorf("node %d: %v sync sessions, want at least 1", i, s)
			}
			if r := metric(t, n, i, "commons_sync_rounds_total"); r < 1 {
				t.Errorf("node %d: %v sync rounds, want at least 1", i, r)
			}
		}
		if in := metric(t, n, 1, `commons_sync_bytes_total{direction="in"}`); in < float64(size) {
			t.Errorf("node 1 received %v sync bytes, less than the %d bytes of the records it lacked", in, size)
		}
		if out := metric(t, n, 0, `commons_sync_bytes_total{direction="out"}`); out < float64(size) {
			t.Errorf("node 0 sent %v sync bytes, less than the %d bytes of the records node 1 lacked", out, size)
		}
		if in, out := metric(t, n, 0, `commons_sync_bytes_total{direction="in"}`), metric(t, n, 1, `commons_sync_bytes_total{direction="out"}`); in <= 0 || out <= 0 {
			t.Errorf("control frames: node 0 received %v bytes, node 1 sent %v; want both positive", in, out)
		}
		if got := metric(t, n, 1, "commons_records_ingested_total"); got != float64(len(raws)) {
			t.Errorf("node 1 ingested %v records, want %d", got, len(raws))
		}
	})
}
