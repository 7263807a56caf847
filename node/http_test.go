package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

const testToken = "test-token"

func testKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startNode starts a node on an in-memory store and closes it at cleanup.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	cfg.Store = memstore.New()
	if cfg.Key == nil {
		cfg.Key = testKey(t)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return n
}

func startOffline(t testing.TB) *Node { return startNode(t, Config{Offline: true}) }

// apiServer is a node behind Handler on an httptest server.
type apiServer struct {
	n   *Node
	url string
	c   *api.Client
}

func serve(t testing.TB, n *Node) *apiServer {
	t.Helper()
	srv := httptest.NewServer(api.Handler(n, testToken))
	t.Cleanup(srv.Close)
	return &apiServer{n: n, url: srv.URL, c: api.NewClient(strings.TrimPrefix(srv.URL, "http://"), testToken)}
}

// Auth modes of a raw request: the right token (""), none, or a literal
// Authorization header.
const noAuth = "none"

// raw sends one request and returns the status and body.
func (s *apiServer) raw(t *testing.T, method, path, auth string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+testToken)
	case noAuth:
	default:
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func ptr[T any](v T) *T { return &v }

// cidOf passes on a published record's CID and the error.
func cidOf(p api.Published, err error) (string, error) { return p.CID, err }

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func decodeBody[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// world is a node with two commons and reviewed contributions, built
// through the Client.
type world struct {
	*apiServer
	self     protocol.PublicKey
	commons  string // maintained by self, quorum 1
	open     string // no maintainers
	blob     []byte
	blobCID  string
	accepted string
	rejected string
	pending  string
	openC    string // a contribution in open
	reviews  []string
}

// Feed order of w.commons: 1 manifest, 2 accepted, 3 rejected, 4 pending,
// 5 accept review, 6 reject review. Of w.open: 1 manifest, 2 openC.
func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{apiServer: serve(t, startOffline(t)), blob: []byte("hello payload")}
	w.self = w.n.Self()
	ctx, c, s := t.Context(), w.c, must[string](t)
	w.commons = s(c.CreateManifest(ctx, api.ManifestParams{Name: ptr("Test commons"), Licence: ptr("CC-BY-SA-4.0"), Maintainers: []protocol.PublicKey{w.self}}))
	w.open = s(c.CreateManifest(ctx, api.ManifestParams{Name: ptr("Open commons"), Licence: ptr("MIT")}))
	w.blobCID = s(c.PutBlob(ctx, w.blob))
	w.accepted = s(c.Contribute(ctx, api.ContributeParams{Commons: w.commons, Title: "to accept", Kind: "text", Payload: []api.PayloadParam{{CID: w.blobCID, Name: "hello.txt"}}}))
	w.rejected = s(c.Contribute(ctx, api.ContributeParams{Commons: w.commons, Title: "to reject"}))
	w.pending = s(c.Contribute(ctx, api.ContributeParams{Commons: w.commons, Title: "left pending"}))
	w.reviews = append(w.reviews,
		s(cidOf(c.Review(ctx, api.ReviewParams{Target: w.accepted, Decision: protocol.DecisionAccept, Rationale: "good"}))),
		s(cidOf(c.Review(ctx, api.ReviewParams{Target: w.rejected, Decision: protocol.DecisionReject}))))
	w.openC = s(c.Contribute(ctx, api.ContributeParams{Commons: w.open, Title: "in the open"}))
	return w
}

// absentCID is a dag-cbor CIDv1 of no record.
var absentCID = protocol.RecordCID([]byte("no such record")).String()

func rawCID(t *testing.T) string {
	t.Helper()
	h, err := mh.Sum([]byte("raw"), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h).String()
}

func TestClientRoutes(t *testing.T) {
	w := newWorld(t)
	ctx, c := t.Context(), w.c
	t.Run("id", func(t *testing.T) {
		id := must[api.IDInfo](t)(c.ID(ctx))
		if id.PeerID != w.self.String() || id.PublicKey != w.self.Hex() || len(id.Addresses) != 0 {
			t.Errorf("ID = %+v, want peer %s, no addresses offline", id, w.self)
		}
	})
	t.Run("peers", func(t *testing.T) {
		if ps := must[[]api.PeerInfo](t)(c.Peers(ctx)); len(ps) != 0 {
			t.Errorf("Peers offline = %v, want none", ps)
		}
	})
	t.Run("status", func(t *testing.T) {
		st := must[api.StatusInfo](t)(c.Status(ctx))
		if st.PeerID != w.self.String() || st.Online || len(st.Commons) != 2 {
			t.Fatalf("Status = %+v", st)
		}
		got := st.Commons[0]
		want := api.CommonsStatus{ID: w.commons, Name: "Test commons", Records: 6, Pending: 1, Accepted: 1, Rejected: 1, ManifestHead: w.commons}
		if got.ID != want.ID || got.Name != want.Name || got.Records != want.Records || got.Pending != want.Pending ||
			got.Accepted != want.Accepted || got.Rejected != want.Rejected || got.ManifestHead != want.ManifestHead || got.StateRoot == "" {
			t.Errorf("commons status = %+v, want %+v", got, want)
		}
	})
	t.Run("manifest", func(t *testing.T) {
		m := must[api.ManifestInfo](t)(c.Manifest(ctx, w.commons))
		if m.Commons != w.commons || m.Head != w.commons || m.Manifest.Name != "Test commons" || !m.Manifest.IsMaintainer(w.self) ||
			m.Manifest.Quorum != 1 || len(m.History) != 1 || !m.History[0].Head || m.History[0].Author != w.self {
			t.Errorf("Manifest = %+v", m)
		}
	})
	t.Run("blob", func(t *testing.T) {
		if b := must[[]byte](t)(c.GetBlob(ctx, w.blobCID)); !bytes.Equal(b, w.blob) {
			t.Errorf("GetBlob = %q, want %q", b, w.blob)
		}
	})
	t.Run("show accepted", func(t *testing.T) {
		r := must[api.RecordInfo](t)(c.Show(ctx, w.accepted))
		if r.Type != "contribution" || r.Commons != w.commons || r.Author != w.self || r.Status != "accepted" {
			t.Fatalf("Show = %+v", r)
		}
		p := r.Contribution.Payload
		if len(p) != 1 || p[0].Name != "hello.txt" || p[0].CID.String() != w.blobCID || p[0].Size != uint64(len(w.blob)) {
			t.Errorf("payload = %+v", p)
		}
		if len(r.Reviews) != 1 || r.Reviews[0].CID != w.reviews[0] || r.Reviews[0].Decision != "accept" ||
			!r.Reviews[0].Counts || r.Reviews[0].Rationale != "good" || r.Reviews[0].Maintainer != w.self {
			t.Errorf("reviews = %+v", r.Reviews)
		}
	})
	t.Run("show review", func(t *testing.T) {
		r := must[api.RecordInfo](t)(c.Show(ctx, w.reviews[1]))
		if r.Type != "review" || r.Review.Decision != "reject" || r.Review.Target.String() != w.rejected || r.Status != "" {
			t.Errorf("Show = %+v", r)
		}
	})
}

// TestRawRoutes checks each route's success answer over plain HTTP.
func TestRawRoutes(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name, method, path string
		body               string
		want               int
		check              func(t *testing.T, b []byte)
	}{
		{"id", "GET", "/api/v1/id", "", 200, func(t *testing.T, b []byte) {
			if id := decodeBody[api.IDInfo](t, b); id.PeerID != w.self.String() {
				t.Errorf("peer_id = %q", id.PeerID)
			}
		}},
		{"status", "GET", "/api/v1/status", "", 200, func(t *testing.T, b []byte) {
			if st := decodeBody[api.StatusInfo](t, b); len(st.Commons) != 2 {
				t.Errorf("status = %s", b)
			}
		}},
		{"peers", "GET", "/api/v1/peers", "", 200, func(t *testing.T, b []byte) {
			if strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("peers = %s, want []", b)
			}
		}},
		{"manifest", "GET", "/api/v1/commons/" + w.open + "/manifest", "", 200, func(t *testing.T, b []byte) {
			if m := decodeBody[api.ManifestInfo](t, b); m.Manifest.Name != "Open commons" {
				t.Errorf("manifest = %s", b)
			}
		}},
		{"create manifest", "POST", "/api/v1/manifests", `{"name":"Raw","licence":"MIT","max_blob_bytes":1024}`, 201, func(t *testing.T, b []byte) {
			r := decodeBody[api.CIDResponse](t, b)
			m := must[api.ManifestInfo](t)(w.c.Manifest(t.Context(), r.CID))
			if m.Manifest.Name != "Raw" || m.Manifest.BlobLimit() != 1024 {
				t.Errorf("created manifest = %+v", m.Manifest)
			}
		}},
		{"update manifest", "POST", "/api/v1/commons/" + w.open + "/manifest", `{"licence":"Apache-2.0"}`, 201, func(t *testing.T, b []byte) {
			r := decodeBody[api.CIDResponse](t, b)
			m := must[api.ManifestInfo](t)(w.c.Manifest(t.Context(), w.open))
			if m.Head != r.CID || m.Manifest.Licence != "Apache-2.0" || m.Manifest.Name != "Open commons" {
				t.Errorf("after update: %+v", m)
			}
		}},
		{"join", "PUT", "/api/v1/commons/" + absentCID, "", 200, func(t *testing.T, b []byte) {
			if m := decodeBody[map[string]string](t, b); m["commons"] != absentCID {
				t.Errorf("join = %s", b)
			}
		}},
		{"put blob", "POST", "/api/v1/blobs", "raw blob bytes", 201, func(t *testing.T, b []byte) {
			r := decodeBody[api.CIDResponse](t, b)
			if got := must[[]byte](t)(w.c.GetBlob(t.Context(), r.CID)); string(got) != "raw blob bytes" {
				t.Errorf("blob = %q", got)
			}
		}},
		{"get blob", "GET", "/api/v1/blobs/" + w.blobCID, "", 200, func(t *testing.T, b []byte) {
			if !bytes.Equal(b, w.blob) {
				t.Errorf("blob = %q", b)
			}
		}},
		{"contribute", "POST", "/api/v1/contributions", `{"commons":"` + w.commons + `","title":"raw","payload":[{"cid":"` + w.blobCID + `","name":"a.txt"}],"revises":"` + w.pending + `","paid":true}`, 201, func(t *testing.T, b []byte) {
			r := must[api.RecordInfo](t)(w.c.Show(t.Context(), decodeBody[api.CIDResponse](t, b).CID))
			if r.Status != "pending" || r.Contribution.Provenance != protocol.ProvenancePaid || r.Contribution.Revises.String() != w.pending {
				t.Errorf("contribution = %+v", r.Contribution)
			}
		}},
		{"review", "POST", "/api/v1/reviews", `{"target":"` + w.pending + `","decision":"reject","rationale":"no"}`, 201, func(t *testing.T, b []byte) {
			if r := must[api.RecordInfo](t)(w.c.Show(t.Context(), w.pending)); r.Status != "rejected" {
				t.Errorf("status after reject = %q", r.Status)
			}
		}},
		{"show", "GET", "/api/v1/records/" + w.rejected, "", 200, func(t *testing.T, b []byte) {
			if r := decodeBody[api.RecordInfo](t, b); r.Status != "rejected" || len(r.Reviews) != 1 {
				t.Errorf("show = %s", b)
			}
		}},
		{"feed", "GET", "/api/v1/feed?commons=" + w.open, "", 200, func(t *testing.T, b []byte) {
			if items := decodeBody[[]api.FeedItem](t, b); len(items) < 2 || items[1].CID != w.openC {
				t.Errorf("feed = %s", b)
			}
		}},
		{"export", "GET", "/api/v1/commons/" + w.open + "/car", "", 200, func(t *testing.T, b []byte) {
			roots, blocks := readCAR(t, b)
			if len(roots) != 1 || roots[0].String() != w.open || len(blocks) < 2 {
				t.Errorf("CAR roots %v, %d blocks", roots, len(blocks))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := w.raw(t, tt.method, tt.path, "", strings.NewReader(tt.body))
			if code != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, code, b, tt.want)
			}
			tt.check(t, b)
		})
	}
}

func TestReviewLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	target := must[string](t)(w.c.Contribute(ctx, api.ContributeParams{Commons: w.commons, Title: "under review"}))
	steps := []struct {
		decision   string
		wantStatus string
		wantCounts []bool // per review, in order
	}{
		{protocol.DecisionAccept, "accepted", []bool{true}},
		{protocol.DecisionRetract, "pending", []bool{false, true}},
		{protocol.DecisionReject, "rejected", []bool{false, false, true}},
	}
	for _, s := range steps {
		t.Run(s.decision, func(t *testing.T) {
			rc := must[api.Published](t)(w.c.Review(ctx, api.ReviewParams{Target: target, Decision: s.decision})).CID
			r := must[api.RecordInfo](t)(w.c.Show(ctx, target))
			if r.Status != s.wantStatus {
				t.Errorf("status = %q, want %q", r.Status, s.wantStatus)
			}
			var counts []bool
			for _, v := range r.Reviews {
				counts = append(counts, v.Counts)
			}
			if len(r.Reviews) == 0 || r.Reviews[len(r.Reviews)-1].CID != rc {
				t.Errorf("reviews = %+v, want the last to be %s", r.Reviews, rc)
			}
			if !slices.Equal(counts, s.wantCounts) {
				t.Errorf("reviews counting = %v, want %v (only the latest review of a maintainer counts)", counts, s.wantCounts)
			}
		})
	}
}

func TestManifestUpdate(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	revoked, err := protocol.PublicKeyFromPeerID(must[peer.ID](t)(peer.IDFromPrivateKey(testKey(t))))
	if err != nil {
		t.Fatal(err)
	}
	head := must[api.Published](t)(w.c.UpdateManifest(ctx, w.commons, api.ManifestParams{Name: ptr("Renamed"), Revoke: []protocol.PublicKey{revoked}, Quorum: ptr[uint64](1)})).CID
	m := must[api.ManifestInfo](t)(w.c.Manifest(ctx, w.commons))
	if m.Head != head || m.Manifest.Name != "Renamed" || m.Manifest.Licence != "CC-BY-SA-4.0" || m.Manifest.Version != 1 {
		t.Errorf("manifest after update = %+v", m.Manifest)
	}
	if !slices.Contains(m.Revoked, revoked) || !slices.Contains(m.Manifest.Revoked, revoked) {
		t.Errorf("revoked = %v / %v, want %s", m.Revoked, m.Manifest.Revoked, revoked)
	}
	if len(m.History) != 2 || m.History[0].CID != w.commons || m.History[1].CID != head || !m.History[1].Head || m.History[0].Head {
		t.Errorf("history = %+v", m.History)
	}
	if len(m.Manifest.Prev) != 1 || m.Manifest.Prev[0].String() != w.commons {
		t.Errorf("prev = %v, want the genesis", m.Manifest.Prev)
	}
	st := must[api.StatusInfo](t)(w.c.Status(ctx))
	if st.Commons[0].ManifestHead != head || st.Commons[0].Name != "Renamed" {
		t.Errorf("status = %+v", st.Commons[0])
	}
	// The maintainer still reviews under the new head.
	if _, err := w.c.Review(ctx, api.ReviewParams{Target: w.pending, Decision: protocol.DecisionAccept}); err != nil {
		t.Errorf("review under the updated manifest: %v", err)
	}

	// A revoked key leaves the association and the maintainers; revoking
	// the last association key is refused.
	other := must[peer.ID](t)(peer.IDFromPrivateKey(testKey(t)))
	second, err := protocol.PublicKeyFromPeerID(other)
	if err != nil {
		t.Fatal(err)
	}
	pub := must[api.Published](t)(w.c.UpdateManifest(ctx, w.commons, api.ManifestParams{Association: []protocol.PublicKey{w.self, second}, Maintainers: []protocol.PublicKey{w.self, second}}))
	if len(pub.Warnings) != 1 || !strings.Contains(pub.Warnings[0], "can act alone") {
		t.Errorf("a 1-of-2 association: warnings %q", pub.Warnings)
	}
	_, err = w.c.UpdateManifest(ctx, w.commons, api.ManifestParams{Revoke: []protocol.PublicKey{second}, Threshold: ptr[uint64](2)})
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "fewer than its threshold of 2") {
		t.Fatalf("revoking down to fewer keys than the threshold: %v", err)
	}
	must[api.Published](t)(w.c.UpdateManifest(ctx, w.commons, api.ManifestParams{Revoke: []protocol.PublicKey{second}}))
	m = must[api.ManifestInfo](t)(w.c.Manifest(ctx, w.commons))
	if !slices.Equal(m.Manifest.Association, []protocol.PublicKey{w.self}) || !slices.Equal(m.Manifest.Maintainers, []protocol.PublicKey{w.self}) || m.Manifest.Quorum != 1 {
		t.Errorf("after revoking %s: association %v, maintainers %v, quorum %d", second, m.Manifest.Association, m.Manifest.Maintainers, m.Manifest.Quorum)
	}
	if _, err := w.c.UpdateManifest(ctx, w.commons, api.ManifestParams{Revoke: []protocol.PublicKey{w.self}, On: []string{m.Head}}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "revokes every association key") {
		t.Errorf("revoking the last association key: %v", err)
	}
}

func TestJoin(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	for i := range 2 { // joining twice is a no-op
		if err := w.c.Join(ctx, absentCID); err != nil {
			t.Fatalf("join #%d: %v", i+1, err)
		}
	}
	st := must[api.StatusInfo](t)(w.c.Status(ctx))
	if len(st.Commons) != 3 || st.Commons[2].ID != absentCID || st.Commons[2].Name != "" || st.Commons[2].Records != 0 {
		t.Errorf("status after join = %+v", st.Commons)
	}
	if _, err := w.c.Manifest(ctx, absentCID); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "not arrived yet") {
		t.Errorf("manifest of a joined commons without genesis: %v", err)
	}
	if items := must[[]api.FeedItem](t)(w.c.Feed(ctx, api.FeedQuery{Commons: absentCID})); len(items) != 0 {
		t.Errorf("feed = %v, want empty", items)
	}
}

func TestFeed(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name    string
		q       api.FeedQuery
		raw     string
		cursors []uint64
		cids    []string
	}{
		{"all of one commons", api.FeedQuery{Commons: w.commons}, "commons=" + w.commons, []uint64{1, 2, 3, 4, 5, 6}, nil},
		{"accepted", api.FeedQuery{Commons: w.commons, Status: "accepted"}, "commons=" + w.commons + "&status=accepted", []uint64{2}, []string{w.accepted}},
		{"rejected", api.FeedQuery{Commons: w.commons, Status: "rejected"}, "commons=" + w.commons + "&status=rejected", []uint64{3}, []string{w.rejected}},
		{"pending", api.FeedQuery{Commons: w.commons, Status: "pending"}, "commons=" + w.commons + "&status=pending", []uint64{4}, []string{w.pending}},
		{"since", api.FeedQuery{Commons: w.commons, Since: 4}, "commons=" + w.commons + "&since=4", []uint64{5, 6}, w.reviews},
		{"limit", api.FeedQuery{Commons: w.commons, Limit: 2}, "commons=" + w.commons + "&limit=2", []uint64{1, 2}, []string{w.commons, w.accepted}},
		{"since and limit", api.FeedQuery{Commons: w.commons, Since: 2, Limit: 1}, "commons=" + w.commons + "&since=2&limit=1", []uint64{3}, []string{w.rejected}},
		{"since the end", api.FeedQuery{Commons: w.commons, Since: 6}, "commons=" + w.commons + "&since=6", []uint64{}, nil},
		{"every commons", api.FeedQuery{}, "", []uint64{1, 2, 3, 4, 5, 6, 1, 2}, nil},
		{"every commons, pending", api.FeedQuery{Status: "pending"}, "status=pending", []uint64{4, 2}, []string{w.pending, w.openC}},
		{"wait with a match returns at once", api.FeedQuery{Commons: w.open, Wait: time.Minute}, "commons=" + w.open + "&wait=1m", []uint64{1, 2}, []string{w.open, w.openC}},
	}
	check := func(t *testing.T, items []api.FeedItem, cursors []uint64, cids []string) {
		t.Helper()
		got := []uint64{}
		var gotCIDs []string
		for _, it := range items {
			got = append(got, it.Cursor)
			gotCIDs = append(gotCIDs, it.CID)
		}
		if !slices.Equal(got, cursors) {
			t.Errorf("cursors = %v, want %v", got, cursors)
		}
		if cids != nil && !slices.Equal(gotCIDs, cids) {
			t.Errorf("cids = %v, want %v", gotCIDs, cids)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name+"/client", func(t *testing.T) {
			check(t, must[[]api.FeedItem](t)(w.c.Feed(t.Context(), tt.q)), tt.cursors, tt.cids)
		})
		t.Run(tt.name+"/raw", func(t *testing.T) {
			code, b := w.raw(t, "GET", "/api/v1/feed?"+tt.raw, noAuth, nil)
			if code != 200 {
				t.Fatalf("feed = %d %s", code, b)
			}
			if len(tt.cursors) == 0 && strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("empty feed = %s, want []", b)
			}
			check(t, decodeBody[[]api.FeedItem](t, b), tt.cursors, tt.cids)
		})
	}
	t.Run("item fields", func(t *testing.T) {
		items := must[[]api.FeedItem](t)(w.c.Feed(t.Context(), api.FeedQuery{Commons: w.commons}))
		want := []api.FeedItem{
			{Type: "manifest", Title: "Test commons"},
			{Type: "contribution", Title: "to accept", Status: "accepted"},
			{Type: "contribution", Title: "to reject", Status: "rejected"},
			{Type: "contribution", Title: "left pending", Status: "pending"},
			{Type: "review", Target: w.accepted, Decision: "accept"},
			{Type: "review", Target: w.rejected, Decision: "reject"},
		}
		for i, it := range items {
			if it.Type != want[i].Type || it.Title != want[i].Title || it.Status != want[i].Status || it.Target != want[i].Target ||
				it.Decision != want[i].Decision || it.Author != w.self || it.Commons != w.commons || it.Time.IsZero() {
				t.Errorf("item %d = %+v, want %+v", i, it, want[i])
			}
		}
	})
}

// TestFeedWaitClient long-polls through the Client while a record arrives.
func TestFeedWaitClient(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	type result struct {
		items []api.FeedItem
		err   error
	}
	done := make(chan result, 1)
	go func() {
		items, err := w.c.Feed(ctx, api.FeedQuery{Commons: w.commons, Since: 6, Wait: 30 * time.Second})
		done <- result{items, err}
	}()
	c := must[string](t)(w.c.Contribute(ctx, api.ContributeParams{Commons: w.commons, Title: "late"}))
	r := <-done
	if r.err != nil || len(r.items) != 1 || r.items[0].CID != c || r.items[0].Cursor != 7 {
		t.Errorf("Feed(wait) = %+v, %v; want the new contribution %s", r.items, r.err, c)
	}
}

// TestFeedWait runs the long poll in a synctest bubble, so "blocked until a
// record arrives" and "returns after wait" are exact.
func TestFeedWait(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		arrive   bool
		wantN    int
		wantTime time.Duration
	}{
		{"returns when a record arrives", "since=1&wait=30s", true, 1, 0},
		{"returns empty after wait", "since=1&wait=5s", false, 0, 5 * time.Second},
		{"wait is capped at MaxFeedWait", "since=1&wait=10m", false, 0, api.MaxFeedWait},
		{"status filter keeps waiting past other records", "since=1&status=accepted&wait=7s", true, 0, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := startOffline(t)
				h := api.Handler(n, testToken)
				id := must[string](t)(n.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("W"), Licence: ptr("MIT")}))
				done := make(chan *httptest.ResponseRecorder, 1)
				start := time.Now()
				go func() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/feed?commons="+id+"&"+tt.query, nil))
					done <- rec
				}()
				synctest.Wait()
				select {
				case rec := <-done:
					t.Fatalf("feed returned before anything arrived: %d %s", rec.Code, rec.Body)
				default:
				}
				if tt.arrive {
					must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id, Title: "arrived"}))
				}
				rec := <-done
				if rec.Code != 200 {
					t.Fatalf("feed = %d %s", rec.Code, rec.Body)
				}
				if items := decodeBody[[]api.FeedItem](t, rec.Body.Bytes()); len(items) != tt.wantN {
					t.Errorf("items = %+v, want %d", items, tt.wantN)
				}
				if got := time.Since(start); got != tt.wantTime {
					t.Errorf("returned after %v, want %v", got, tt.wantTime)
				}
			})
		})
	}
}

// TestFeedWaitInterrupted ends a long poll early: the client gives up, or
// the node stops. Either way the handler answers 503 at once.
func TestFeedWaitInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(t *testing.T, n *Node, cancel context.CancelFunc)
		wantErr string
	}{
		{"client gives up", func(_ *testing.T, _ *Node, cancel context.CancelFunc) { cancel() }, "context canceled"},
		{"node closes", func(t *testing.T, n *Node, _ context.CancelFunc) {
			if err := n.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}, "closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, err := New(Config{Store: memstore.New(), Key: testKey(t), Offline: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				closed := false
				t.Cleanup(func() {
					if !closed {
						n.Close()
					}
				})
				h := api.Handler(n, testToken)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				done := make(chan *httptest.ResponseRecorder, 1)
				start := time.Now()
				go func() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/api/v1/feed?wait=60s", nil))
					done <- rec
				}()
				synctest.Wait()
				tt.stop(t, n, cancel)
				closed = tt.name == "node closes"
				rec := <-done
				if e := decodeBody[api.ErrorBody](t, rec.Body.Bytes()); rec.Code != http.StatusServiceUnavailable || !strings.Contains(e.Error, tt.wantErr) {
					t.Errorf("feed = %d %q, want 503 containing %q", rec.Code, e.Error, tt.wantErr)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("returned after %v, want at once", d)
				}
			})
		})
	}
}

func TestExportImport(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	var car bytes.Buffer
	if err := w.c.Export(ctx, w.commons, &car); err != nil {
		t.Fatal(err)
	}
	code, rawCAR := w.raw(t, "GET", "/api/v1/commons/"+w.commons+"/car", noAuth, nil)
	if code != 200 || !bytes.Equal(rawCAR, car.Bytes()) {
		t.Fatalf("raw export = %d, %d bytes; client export %d bytes", code, len(rawCAR), car.Len())
	}
	want := must[api.StatusInfo](t)(w.c.Status(ctx)).Commons[0]

	b := serve(t, startOffline(t))
	rep := must[api.ImportReport](t)(b.c.Import(ctx, bytes.NewReader(car.Bytes()), true))
	if rep.Imported != 6 || rep.Duplicates != 0 || len(rep.Rejected) != 0 || !slices.Equal(rep.Commons, []string{w.commons}) {
		t.Errorf("import report = %+v", rep)
	}
	st := must[api.StatusInfo](t)(b.c.Status(ctx))
	if len(st.Commons) != 1 {
		t.Fatalf("second node status = %+v", st)
	}
	got := st.Commons[0]
	if got.StateRoot != want.StateRoot || got.Records != want.Records || got.Accepted != 1 || got.Rejected != 1 || got.Pending != 1 || got.ManifestHead != want.ManifestHead {
		t.Errorf("imported status = %+v, want %+v", got, want)
	}
	if r := must[api.RecordInfo](t)(b.c.Show(ctx, w.accepted)); r.Status != "accepted" {
		t.Errorf("imported contribution status %q", r.Status)
	}

	code, body := b.raw(t, "POST", "/api/v1/import", "", bytes.NewReader(car.Bytes()))
	if rep := decodeBody[api.ImportReport](t, body); code != 200 || rep.Duplicates != 6 || rep.Imported != 0 {
		t.Errorf("re-import = %d %s, want 6 duplicates", code, body)
	}
}

type carBlock struct {
	cid cid.Cid
	raw []byte
}

func readCAR(t *testing.T, data []byte) ([]cid.Cid, []carBlock) {
	t.Helper()
	br, err := carv2.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []carBlock
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return br.Roots, out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, carBlock{b.Cid(), b.RawData()})
	}
}

func writeCAR(t *testing.T, roots []cid.Cid, blocks []carBlock) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := storage.NewWritable(&buf, roots, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := w.Put(context.Background(), b.cid.KeyString(), b.raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Export writes the same bytes go-car's own CARv1 writer writes for the
// same root and sections.
func TestExportBytesAreCARv1(t *testing.T) {
	w := newWorld(t)
	var car bytes.Buffer
	if err := w.n.Export(t.Context(), w.commons, &car); err != nil {
		t.Fatal(err)
	}
	roots, blocks := readCAR(t, car.Bytes())
	if len(roots) != 1 || roots[0].String() != w.commons || len(blocks) != 6 {
		t.Fatalf("export: roots %v, %d sections; want the commons and its 6 records", roots, len(blocks))
	}
	if want := writeCAR(t, roots, blocks); !bytes.Equal(car.Bytes(), want) {
		t.Errorf("export differs from go-car's CARv1 bytes:\n got %x\nwant %x", car.Bytes()[:min(80, car.Len())], want[:min(80, len(want))])
	}
}

func TestImportTampered(t *testing.T) {
	w := newWorld(t)
	var car bytes.Buffer
	if err := w.c.Export(t.Context(), w.commons, &car); err != nil {
		t.Fatal(err)
	}
	roots, blocks := readCAR(t, car.Bytes())
	tests := []struct {
		name       string
		recompute  bool // give the tampered bytes their own CID
		wantReason string
	}{
		{"bytes changed, CID kept", false, "do not match the CID"},
		{"bytes changed, CID recomputed", true, "signature"},
	}
	for _, tt := range tests {
		for _, via := range []string{"client", "raw"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				tampered := slices.Clone(blocks)
				var bad string
				for i, b := range tampered {
					if c := b.cid.String(); c == w.pending {
						raw := bytes.Replace(b.raw, []byte("left pending"), []byte("LEFT PENDING"), 1)
						if bytes.Equal(raw, b.raw) {
							t.Fatal("title not found in the record bytes")
						}
						tampered[i].raw = raw
						bad = c
						if tt.recompute {
							tampered[i].cid = protocol.RecordCID(raw)
							bad = tampered[i].cid.String()
						}
					}
				}
				data := writeCAR(t, roots, tampered)
				b := serve(t, startOffline(t))
				var rep api.ImportReport
				if via == "client" {
					rep = must[api.ImportReport](t)(b.c.Import(t.Context(), bytes.NewReader(data), true))
				} else {
					code, body := b.raw(t, "POST", "/api/v1/import?join=true", "", bytes.NewReader(data))
					if code != 200 {
						t.Fatalf("import = %d %s", code, body)
					}
					rep = decodeBody[api.ImportReport](t, body)
				}
				if rep.Imported != len(blocks)-1 || len(rep.Rejected) != 1 {
					t.Fatalf("report = %+v, want %d imported and 1 rejected", rep, len(blocks)-1)
				}
				if r := rep.Rejected[0]; r.CID != bad || !strings.Contains(r.Reason, tt.wantReason) {
					t.Errorf("rejected = %+v, want %s with reason containing %q", r, bad, tt.wantReason)
				}
				if _, err := b.c.Show(t.Context(), bad); !errors.Is(err, api.ErrNotFound) {
					t.Errorf("tampered record was stored: Show = %v", err)
				}
				if r := must[api.RecordInfo](t)(b.c.Show(t.Context(), w.accepted)); r.Status != "accepted" {
					t.Errorf("untampered record status = %q", r.Status)
				}
			})
		}
	}
}

func TestOnline(t *testing.T) {
	a := serve(t, startNode(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}))
	b := startNode(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	ctx := t.Context()
	if err := a.n.Host().Connect(ctx, peer.AddrInfo{ID: b.Host().ID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	id := must[api.IDInfo](t)(a.c.ID(ctx))
	if len(id.Addresses) == 0 {
		t.Fatal("online node lists no addresses")
	}
	for _, ad := range id.Addresses {
		if !strings.HasPrefix(ad, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(ad, "/p2p/"+id.PeerID) {
			t.Errorf("address %q: want loopback TCP ending in /p2p/%s", ad, id.PeerID)
		}
	}
	ps := must[[]api.PeerInfo](t)(a.c.Peers(ctx))
	if len(ps) != 1 || ps[0].ID != b.Host().ID().String() || len(ps[0].Addresses) == 0 {
		t.Errorf("peers = %+v, want %s", ps, b.Host().ID())
	}
	st := must[api.StatusInfo](t)(a.c.Status(ctx))
	if !st.Online || st.Peers != 1 {
		t.Errorf("status = %+v, want online with 1 peer", st)
	}
}

// TestImportTruncated: a CAR cut short imports the records before the
// damage, whatever the batch size, and reports the damage.
func TestImportTruncated(t *testing.T) {
	w := newWorld(t)
	var car bytes.Buffer
	if err := w.c.Export(t.Context(), w.commons, &car); err != nil {
		t.Fatal(err)
	}
	truncated := car.Bytes()[:car.Len()-20] // inside the last record
	for _, via := range []string{"client", "raw"} {
		t.Run(via, func(t *testing.T) {
			b := serve(t, startOffline(t))
			var rep api.ImportReport
			var msg string
			if via == "client" {
				var err error
				rep, err = b.c.Import(t.Context(), bytes.NewReader(truncated), true)
				if !errors.Is(err, api.ErrBadRequest) {
					t.Fatalf("Import = %v, want ErrBadRequest", err)
				}
				msg = err.Error()
			} else {
				code, body := b.raw(t, "POST", "/api/v1/import?join=true", "", bytes.NewReader(truncated))
				if code != 400 {
					t.Fatalf("import = %d %s, want 400", code, body)
				}
				v := decodeBody[struct {
					Error  string           `json:"error"`
					Report api.ImportReport `json:"report"`
				}](t, body)
				rep, msg = v.Report, v.Error
			}
			if !strings.Contains(msg, "CAR file is damaged after 5 records") {
				t.Errorf("error = %q", msg)
			}
			if rep.Imported != 5 || !slices.Equal(rep.Commons, []string{w.commons}) {
				t.Errorf("report = %+v, want the 5 whole records imported", rep)
			}
			if st := must[api.StatusInfo](t)(b.c.Status(t.Context())); len(st.Commons) != 1 || st.Commons[0].Records != 5 {
				t.Errorf("status = %+v, want 5 records", st.Commons)
			}
		})
	}
}
