package node

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/feed"
	"github.com/commons-p2p/commons/protocol"
)

func TestContributionsRoute(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	cids := func(p api.ContributionPage) []string {
		var out []string
		for _, c := range p.Contributions {
			out = append(out, c.CID)
		}
		return out
	}
	now := time.Now().UTC()
	tests := []struct {
		name string
		q    api.ContributionQuery
		want []string
		next uint64
	}{
		{"all", api.ContributionQuery{}, []string{w.accepted, w.rejected, w.pending}, 0},
		{"accepted", api.ContributionQuery{Status: "accepted"}, []string{w.accepted}, 0},
		{"rejected", api.ContributionQuery{Status: "rejected"}, []string{w.rejected}, 0},
		{"kind", api.ContributionQuery{Kind: "text"}, []string{w.accepted}, 0},
		{"author", api.ContributionQuery{Author: w.self.String()}, []string{w.accepted, w.rejected, w.pending}, 0},
		{"other author", api.ContributionQuery{Author: protocol.NewPrivateKeyFromSeed(make([]byte, 32)).Public().Hex()}, nil, 0},
		{"page 1", api.ContributionQuery{Limit: 2}, []string{w.accepted, w.rejected}, 3},
		{"page 2", api.ContributionQuery{Limit: 2, After: 3}, []string{w.pending}, 0},
		{"since future", api.ContributionQuery{Since: now.Add(time.Hour)}, nil, 0},
		{"until past", api.ContributionQuery{Until: now.Add(-time.Hour)}, nil, 0},
		{"time range", api.ContributionQuery{Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}, []string{w.accepted, w.rejected, w.pending}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Commons = w.commons
			p := must[api.ContributionPage](t)(w.c.Contributions(ctx, tt.q))
			if !slices.Equal(cids(p), tt.want) || p.Next != tt.next {
				t.Errorf("= %v next %d, want %v next %d", cids(p), p.Next, tt.want, tt.next)
			}
		})
	}
	p := must[api.ContributionPage](t)(w.c.Contributions(ctx, api.ContributionQuery{Commons: w.commons, Status: "accepted"}))
	if c := p.Contributions[0]; c.Title != "to accept" || c.Kind != "text" || c.Status != "accepted" || c.Cursor != 2 || c.Author != w.self {
		t.Errorf("item = %+v", c)
	}
}

func TestRawRecordRoute(t *testing.T) {
	w := newWorld(t)
	raw := must[[]byte](t)(w.c.RawRecord(t.Context(), w.accepted))
	b, err := protocol.Validate(raw)
	if err != nil || b.CID.String() != w.accepted {
		t.Fatalf("raw record: %v, CID %v", err, b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", w.url+"/api/v1/records/"+w.accepted, nil)
	req.Header.Set("Accept", api.MediaTypeCBOR)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	_, _ = got.ReadFrom(resp.Body)
	if resp.Header.Get("Content-Type") != api.MediaTypeCBOR || !bytes.Equal(got.Bytes(), raw) {
		t.Errorf("Accept: dag-cbor gave %s, %d bytes", resp.Header.Get("Content-Type"), got.Len())
	}
	code, body := w.raw(t, "GET", "/api/v1/records/"+w.accepted+"?format=json", noAuth, nil)
	if code != 200 || decodeBody[api.RecordInfo](t, body).CID != w.accepted {
		t.Errorf("format=json: %d %s", code, body)
	}
}

// TestAPIv1Errors covers the new routes' malformed input.
func TestAPIv1Errors(t *testing.T) {
	w := newWorld(t)
	c := "/api/v1/commons/" + w.commons + "/contributions"
	tests := []struct {
		name, path string
		want       int
		wantErr    string
	}{
		{"contributions, bad commons", "/api/v1/commons/notacid/contributions", 400, "is not a CID"},
		{"contributions, unknown commons", "/api/v1/commons/" + absentCID + "/contributions", 404, "not replicated here"},
		{"contributions, bad status", c + "?status=done", 400, `status "done"`},
		{"contributions, bad author", c + "?author=bob", 400, `author "bob"`},
		{"contributions, bad since", c + "?since=yesterday", 400, `since "yesterday"`},
		{"contributions, bad until", c + "?until=2026-13-01", 400, `until "2026-13-01"`},
		{"contributions, bad after", c + "?after=x", 400, `after "x"`},
		{"contributions, limit 0", c + "?limit=0", 400, `limit "0"`},
		{"contributions, limit too high", c + "?limit=10001", 400, "exceeds"},
		{"record, bad format", "/api/v1/records/" + w.accepted + "?format=xml", 400, `format "xml"`},
		{"record cbor, bad CID", "/api/v1/records/notacid?format=cbor", 400, "is not a CID"},
		{"record cbor, absent", "/api/v1/records/" + absentCID + "?format=cbor", 404, "no record"},
		{"events, wrong method", "/api/v1/commons/" + w.commons + "/events#POST", 404, "no API route POST"},
		{"contributions, wrong method", c + "#POST", 404, "no API route POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path := "GET", tt.path
			if p, ok := strings.CutSuffix(path, "#POST"); ok {
				method, path = "POST", p
			}
			code, b := w.raw(t, method, path, noAuth, nil)
			var e api.ErrorBody
			if err := json.Unmarshal(b, &e); err != nil || code != tt.want || !strings.Contains(e.Error, tt.wantErr) {
				t.Errorf("%s %s = %d %s, want %d containing %q", method, path, code, b, tt.want, tt.wantErr)
			}
		})
	}
}

// TestMetrics checks that /metrics serves the commons_ metrics after some
// activity, and none of the global registry's process metrics.
func TestMetrics(t *testing.T) {
	w := newWorld(t)
	sub := must[*feed.Subscription](t)(w.n.Subscribe(t.Context(), w.commons, "", feed.EventFilter{}))
	defer sub.Close()
	v := w.n.validator(must[cid.Cid](t)(cid.Decode(w.commons)))
	reject := func(data []byte) { v(t.Context(), "", &pubsub.Message{Message: &pb.Message{Data: data}}) }
	reject([]byte("garbage"))
	raw := must[[]byte](t)(w.c.RawRecord(t.Context(), w.openC))
	reject(raw) // a record of another commons
	m := w.n.Metrics()
	m.SyncSession()
	m.SyncRounds(1)
	m.SyncBytes(true, 100)
	m.SyncBytes(false, 50)
	code, b := w.raw(t, "GET", "/metrics", noAuth, nil)
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	text := string(b)
	for _, want := range []string{
		"commons_records_ingested_total 8",
		`commons_records_rejected_total{reason="malformed"} 1`,
		`commons_records_rejected_total{reason="wrong_commons"} 1`,
		`commons_records_rejected_total{reason="bad_signature"} 0`,
		`commons_records_rejected_total{reason="future_time"} 0`,
		"commons_gossip_validation_seconds_count 2",
		"commons_peers 0",
		"commons_sync_sessions_total 1",
		"commons_sync_rounds_total 1",
		`commons_sync_bytes_total{direction="in"} 100`,
		`commons_sync_bytes_total{direction="out"} 50`,
		"commons_feed_subscribers 1",
		`commons_store_records{commons="` + w.commons + `",type="contribution"} 3`,
		`commons_store_records{commons="` + w.commons + `",type="review"} 2`,
		`commons_store_records{commons="` + w.open + `",type="manifest"} 1`,
		"commons_feed_events_total",
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "commons_") && !strings.HasPrefix(line, "go_") {
			t.Errorf("unexpected metric %q", line)
		}
	}
}
