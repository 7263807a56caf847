package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"

	"github.com/ipfs/go-cid"
)

// TestAPIErrors sends malformed requests to every route and checks the
// status and that the JSON error names the problem.
func TestAPIErrors(t *testing.T) {
	w := newWorld(t)
	huge := `{"name":"` + strings.Repeat("a", api.MaxJSONBody) + `","licence":"MIT"}`
	emptyCAR := writeCAR(t, []cid.Cid{must[cid.Cid](t)(cid.Decode(w.commons))}, nil)
	oversized := binary.AppendUvarint(slices.Clone(emptyCAR), 10<<20)
	oversized = append(oversized, make([]byte, 64)...)
	var car bytes.Buffer
	if err := w.c.Export(t.Context(), w.commons, &car); err != nil {
		t.Fatal(err)
	}
	truncated := car.Bytes()[:car.Len()-20]
	mc := `{"commons":"` + w.commons + `","title":"t"`
	rc, bad, raw := w.commons, "notacid", rawCID(t)

	tests := []struct {
		name, method, path string
		auth               string // "" the right token, noAuth none, else the header
		body               string
		want               int
		wantErr            string
	}{
		// Routing.
		{"unknown route", "GET", "/api/v1/nope", "", "", 404, "no API route GET /api/v1/nope"},
		{"unknown version", "GET", "/api/v2/id", "", "", 404, "no API route"},
		{"wrong method on id", "POST", "/api/v1/id", "", "", 404, "no API route POST /api/v1/id"},
		{"wrong method on feed", "DELETE", "/api/v1/feed", "", "", 404, "no API route DELETE"},
		{"GET manifests", "GET", "/api/v1/manifests", "", "", 404, "no API route"},

		// Auth on every write route.
		{"create manifest, no token", "POST", "/api/v1/manifests", noAuth, `{}`, 401, "missing API token"},
		{"create manifest, wrong token", "POST", "/api/v1/manifests", "Bearer nope", `{}`, 401, "wrong API token"},
		{"create manifest, basic auth", "POST", "/api/v1/manifests", "Basic " + testToken, `{}`, 401, "missing API token"},
		{"create manifest, empty bearer", "POST", "/api/v1/manifests", "Bearer ", `{}`, 401, "missing API token"},
		{"update manifest, no token", "POST", "/api/v1/commons/" + rc + "/manifest", noAuth, `{}`, 401, "missing API token"},
		{"update manifest, wrong token", "POST", "/api/v1/commons/" + rc + "/manifest", "Bearer " + testToken + "x", `{}`, 401, "wrong API token"},
		{"join, no token", "PUT", "/api/v1/commons/" + absentCID, noAuth, "", 401, "missing API token"},
		{"join, wrong token", "PUT", "/api/v1/commons/" + absentCID, "Bearer x", "", 401, "wrong API token"},
		{"put blob, no token", "POST", "/api/v1/blobs", noAuth, "x", 401, "missing API token"},
		{"put blob, wrong token", "POST", "/api/v1/blobs", "Bearer x", "x", 401, "wrong API token"},
		{"contribute, no token", "POST", "/api/v1/contributions", noAuth, mc + "}", 401, "missing API token"},
		{"contribute, wrong token", "POST", "/api/v1/contributions", "Bearer x", mc + "}", 401, "wrong API token"},
		{"review, no token", "POST", "/api/v1/reviews", noAuth, `{}`, 401, "missing API token"},
		{"review, wrong token", "POST", "/api/v1/reviews", "Bearer x", `{}`, 401, "wrong API token"},
		{"import, no token", "POST", "/api/v1/import", noAuth, "", 401, "missing API token"},
		{"import, wrong token", "POST", "/api/v1/import", "Bearer x", "", 401, "wrong API token"},

		// POST /manifests.
		{"create manifest, bad JSON", "POST", "/api/v1/manifests", "", `{"name":`, 400, "request body: unexpected EOF"},
		{"create manifest, empty body", "POST", "/api/v1/manifests", "", ``, 400, "request body: EOF"},
		{"create manifest, not an object", "POST", "/api/v1/manifests", "", `["name"]`, 400, "cannot unmarshal array"},
		{"create manifest, unknown field", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT","nom":"y"}`, 400, `unknown field "nom"`},
		{"create manifest, trailing object", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT"} {}`, 400, "trailing data"},
		{"create manifest, trailing brace", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT"}}`, 400, "trailing data"},
		{"create manifest, trailing bracket", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT"}]`, 400, "trailing data"},
		{"create manifest, huge body", "POST", "/api/v1/manifests", "", huge, 400, "too large"},
		{"create manifest, no name", "POST", "/api/v1/manifests", "", `{"licence":"MIT"}`, 400, "needs a name and a licence"},
		{"create manifest, bad licence", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"not a licence!"}`, 400, "licence"},
		{"create manifest, bad maintainer", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT","maintainers":["notapeer"]}`, 400, "notapeer"},
		{"create manifest, revoke", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT","revoke":["` + w.self.String() + `"]}`, 400, "no keys to revoke"},
		{"create manifest, threshold 2", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT","threshold":2}`, 400, "threshold"},
		{"create manifest, negative quorum", "POST", "/api/v1/manifests", "", `{"name":"x","licence":"MIT","quorum":-1}`, 400, "quorum"},

		// POST /commons/{id}/manifest.
		{"update manifest, bad CID", "POST", "/api/v1/commons/" + bad + "/manifest", "", `{}`, 400, `"notacid" is not a CID`},
		{"update manifest, unknown commons", "POST", "/api/v1/commons/" + absentCID + "/manifest", "", `{}`, 404, "not replicated here"},
		{"update manifest, bad JSON", "POST", "/api/v1/commons/" + rc + "/manifest", "", `{"name":1}`, 400, "request body"},
		{"update manifest, unknown field", "POST", "/api/v1/commons/" + rc + "/manifest", "", `{"names":"x"}`, 400, `unknown field "names"`},
		{"update manifest, trailing data", "POST", "/api/v1/commons/" + rc + "/manifest", "", `{} x`, 400, "trailing data"},
		{"update manifest, quorum too high", "POST", "/api/v1/commons/" + rc + "/manifest", "", `{"quorum":5}`, 400, "quorum"},

		// GET /commons/{id}/manifest.
		{"manifest, bad CID", "GET", "/api/v1/commons/" + bad + "/manifest", noAuth, "", 400, "is not a CID"},
		{"manifest, unknown commons", "GET", "/api/v1/commons/" + absentCID + "/manifest", noAuth, "", 404, "not replicated here"},

		// PUT /commons/{id}.
		{"join, bad CID", "PUT", "/api/v1/commons/" + bad, "", "", 400, `commons ID "notacid" is not a CID`},
		{"join, raw CID", "PUT", "/api/v1/commons/" + raw, "", "", 400, "not a dag-cbor CIDv1"},

		// GET /commons/{id}/car.
		{"export, bad CID", "GET", "/api/v1/commons/" + bad + "/car", noAuth, "", 400, "is not a CID"},
		{"export, unknown commons", "GET", "/api/v1/commons/" + absentCID + "/car", noAuth, "", 404, "not replicated here"},

		// Blobs.
		{"get blob, bad CID", "GET", "/api/v1/blobs/" + bad, noAuth, "", 400, `"notacid" is not a CID`},
		{"get blob, absent", "GET", "/api/v1/blobs/" + raw, noAuth, "", 404, "is not stored here"},

		// POST /contributions.
		{"contribute, bad JSON", "POST", "/api/v1/contributions", "", mc, 400, "request body"},
		{"contribute, unknown field", "POST", "/api/v1/contributions", "", mc + `,"tittle":"x"}`, 400, `unknown field "tittle"`},
		{"contribute, trailing data", "POST", "/api/v1/contributions", "", mc + `}{}`, 400, "trailing data"},
		{"contribute, huge body", "POST", "/api/v1/contributions", "", mc + `,"summary":"` + strings.Repeat("s", api.MaxJSONBody) + `"}`, 400, "too large"},
		{"contribute, bad commons CID", "POST", "/api/v1/contributions", "", `{"commons":"notacid","title":"t"}`, 400, "is not a CID"},
		{"contribute, unknown commons", "POST", "/api/v1/contributions", "", `{"commons":"` + absentCID + `","title":"t"}`, 404, "not replicated here"},
		{"contribute, no title", "POST", "/api/v1/contributions", "", `{"commons":"` + rc + `"}`, 400, "title"},
		{"contribute, bad payload CID", "POST", "/api/v1/contributions", "", mc + `,"payload":[{"cid":"notacid","name":"a"}]}`, 400, `payload "notacid" is not a CID`},
		{"contribute, payload not stored", "POST", "/api/v1/contributions", "", mc + `,"payload":[{"cid":"` + raw + `","name":"a"}]}`, 400, "upload it first"},
		{"contribute, bad revises", "POST", "/api/v1/contributions", "", mc + `,"revises":"notacid"}`, 400, "--revises"},
		{"contribute, revises a review", "POST", "/api/v1/contributions", "", mc + `,"revises":"` + w.reviews[0] + `"}`, 400, "not a contribution of this commons"},
		{"contribute, bad sponsor", "POST", "/api/v1/contributions", "", mc + `,"sponsor":"nobody"}`, 400, "nobody"},

		// POST /reviews.
		{"review, bad JSON", "POST", "/api/v1/reviews", "", `{"target":`, 400, "request body"},
		{"review, unknown field", "POST", "/api/v1/reviews", "", `{"target":"` + w.pending + `","decision":"accept","why":"x"}`, 400, `unknown field "why"`},
		{"review, trailing data", "POST", "/api/v1/reviews", "", `{"target":"` + w.pending + `","decision":"accept"} 1`, 400, "trailing data"},
		{"review, bad target CID", "POST", "/api/v1/reviews", "", `{"target":"notacid","decision":"accept"}`, 400, `"notacid" is not a CID`},
		{"review, unknown target", "POST", "/api/v1/reviews", "", `{"target":"` + absentCID + `","decision":"accept"}`, 404, "no contribution"},
		{"review, target is a review", "POST", "/api/v1/reviews", "", `{"target":"` + w.reviews[0] + `","decision":"accept"}`, 400, "is a review, not a contribution"},
		{"review, bad decision", "POST", "/api/v1/reviews", "", `{"target":"` + w.pending + `","decision":"maybe"}`, 400, "decision"},
		{"review, not a maintainer", "POST", "/api/v1/reviews", "", `{"target":"` + w.openC + `","decision":"accept"}`, 403, "not a maintainer"},

		// GET /records/{cid}.
		{"show, bad CID", "GET", "/api/v1/records/" + bad, noAuth, "", 400, `"notacid" is not a CID`},
		{"show, absent", "GET", "/api/v1/records/" + absentCID, noAuth, "", 404, "no record"},

		// GET /feed.
		{"feed, since=-1", "GET", "/api/v1/feed?since=-1", noAuth, "", 400, `since "-1"`},
		{"feed, since=abc", "GET", "/api/v1/feed?since=abc", noAuth, "", 400, `since "abc"`},
		{"feed, limit=abc", "GET", "/api/v1/feed?limit=abc", noAuth, "", 400, `limit "abc"`},
		{"feed, limit=0", "GET", "/api/v1/feed?limit=0", noAuth, "", 400, `limit "0"`},
		{"feed, limit=-5", "GET", "/api/v1/feed?limit=-5", noAuth, "", 400, `limit "-5"`},
		{"feed, limit too high", "GET", "/api/v1/feed?limit=10001", noAuth, "", 400, "limit 10001 exceeds 10000"},
		{"feed, wait=xyz", "GET", "/api/v1/feed?wait=xyz", noAuth, "", 400, `wait "xyz"`},
		{"feed, wait=-1s", "GET", "/api/v1/feed?wait=-1s", noAuth, "", 400, `wait "-1s"`},
		{"feed, wait without unit", "GET", "/api/v1/feed?wait=30", noAuth, "", 400, `wait "30"`},
		{"feed, bad status", "GET", "/api/v1/feed?status=done", noAuth, "", 400, `status "done"`},
		{"feed, bad commons", "GET", "/api/v1/feed?commons=notacid", noAuth, "", 400, "is not a CID"},
		{"feed, unknown commons", "GET", "/api/v1/feed?commons=" + absentCID, noAuth, "", 404, "not replicated here"},

		// POST /commons/{id}/manifest/draft, /manifests/cosign, /records.
		{"draft, no token", "POST", "/api/v1/commons/" + rc + "/manifest/draft", noAuth, `{}`, 401, "missing API token"},
		{"draft, bad JSON", "POST", "/api/v1/commons/" + rc + "/manifest/draft", "", `{"name":`, 400, "request body"},
		{"draft, unknown commons", "POST", "/api/v1/commons/" + absentCID + "/manifest/draft", "", `{}`, 404, "not replicated here"},
		{"draft, bad quorum", "POST", "/api/v1/commons/" + rc + "/manifest/draft", "", `{"quorum":9}`, 400, "body.quorum"},
		{"cosign, no token", "POST", "/api/v1/manifests/cosign", noAuth, "x", 401, "missing API token"},
		{"cosign, garbage", "POST", "/api/v1/manifests/cosign", "", "garbage", 400, "neither a record nor a CAR file"},
		{"cosign, too large", "POST", "/api/v1/manifests/cosign", "", strings.Repeat("a", api.MaxDraftSize+1), 400, "at most 16777216 bytes"},
		{"publish, no token", "POST", "/api/v1/records", noAuth, "x", 401, "missing API token"},
		{"publish, wrong token", "POST", "/api/v1/records", "Bearer nope", "x", 401, "wrong API token"},
		{"publish, garbage", "POST", "/api/v1/records", "", "garbage", 400, "neither a record nor a CAR file"},
		{"publish, a map that is no record", "POST", "/api/v1/records", "", "\xa1\x61a\x01", 400, "record: protocol"},
		{"publish, empty", "POST", "/api/v1/records", "", "", 400, "record:"},
		{"publish, too large", "POST", "/api/v1/records", "", strings.Repeat("a", api.MaxDraftSize+1), 400, "at most 16777216 bytes"},
		{"publish, a record too large", "POST", "/api/v1/records", "", "\xa1\x61a" + "\x5a\x00\x01\x00\x01" + strings.Repeat("a", protocol.MaxRecordSize+1), 400, "too large"},

		// POST /import.
		{"import, garbage", "POST", "/api/v1/import", "", "this is not a CAR file", 400, "not a CAR file"},
		{"import, empty", "POST", "/api/v1/import", "", "", 400, "not a CAR file"},
		{"import, oversized section", "POST", "/api/v1/import", "", string(oversized), 400, "CAR file is damaged after 0 records"},
		{"import, truncated", "POST", "/api/v1/import", "", string(truncated), 400, "CAR file is damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := w.raw(t, tt.method, tt.path, tt.auth, strings.NewReader(tt.body))
			var e api.ErrorBody
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("%d %q: body is not a JSON error: %v", code, b, err)
			}
			if code != tt.want || !strings.Contains(e.Error, tt.wantErr) {
				t.Errorf("%s %s = %d %q, want %d and an error containing %q", tt.method, tt.path, code, e.Error, tt.want, tt.wantErr)
			}
		})
	}
	t.Run("nothing was created", func(t *testing.T) {
		st := must[api.StatusInfo](t)(w.c.Status(t.Context()))
		if len(st.Commons) != 2 || st.Commons[0].Records != 6 || st.Commons[1].Records != 2 {
			t.Errorf("status after bad requests = %+v", st.Commons)
		}
	})
}

// TestClientErrors checks that the Client turns error statuses into the
// matching sentinels and keeps the daemon's message.
func TestClientErrors(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	wrong := api.NewClient(strings.TrimPrefix(w.url, "http://"), "wrong")
	err2 := func(_ any, err error) error { return err }
	tests := []struct {
		name    string
		err     error
		want    error
		wantMsg string
	}{
		{"show bad CID", err2(w.c.Show(ctx, "notacid")), api.ErrBadRequest, "is not a CID"},
		{"show absent", err2(w.c.Show(ctx, absentCID)), api.ErrNotFound, "no record"},
		{"manifest unknown commons", err2(w.c.Manifest(ctx, absentCID)), api.ErrNotFound, "not replicated here"},
		{"update unknown commons", err2(w.c.UpdateManifest(ctx, absentCID, api.ManifestParams{})), api.ErrNotFound, "not replicated here"},
		{"create without name", err2(w.c.CreateManifest(ctx, api.ManifestParams{Licence: ptr("MIT")})), api.ErrBadRequest, "needs a name"},
		{"join bad CID", w.c.Join(ctx, "notacid"), api.ErrBadRequest, "not a CID"},
		{"get blob absent", err2(w.c.GetBlob(ctx, rawCID(t))), api.ErrNotFound, "not stored here"},
		{"contribute unknown commons", err2(w.c.Contribute(ctx, api.ContributeParams{Commons: absentCID, Title: "t"})), api.ErrNotFound, "not replicated here"},
		{"review non-maintainer", err2(w.c.Review(ctx, api.ReviewParams{Target: w.openC, Decision: "accept"})), api.ErrForbidden, "not a maintainer"},
		{"feed bad status", err2(w.c.Feed(ctx, api.FeedQuery{Status: "done"})), api.ErrBadRequest, `status "done"`},
		{"feed limit too high", err2(w.c.Feed(ctx, api.FeedQuery{Limit: api.MaxFeedLimit + 1})), api.ErrBadRequest, "exceeds"},
		{"export unknown commons", w.c.Export(ctx, absentCID, io.Discard), api.ErrNotFound, "not replicated here"},
		{"import garbage", err2(w.c.Import(ctx, strings.NewReader("garbage"), true)), api.ErrBadRequest, "not a CAR file"},
		{"wrong token, write", err2(wrong.CreateManifest(ctx, api.ManifestParams{Name: ptr("x"), Licence: ptr("MIT")})), api.ErrUnauthorized, "wrong API token"},
		{"wrong token, blob", err2(wrong.PutBlob(ctx, []byte("x"))), api.ErrUnauthorized, "wrong API token"},
		{"wrong token, import", err2(wrong.Import(ctx, strings.NewReader("x"), true)), api.ErrUnauthorized, "wrong API token"},
		{"wrong token, join", wrong.Join(ctx, absentCID), api.ErrUnauthorized, "wrong API token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) || !strings.Contains(tt.err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want %v containing %q", tt.err, tt.want, tt.wantMsg)
			}
		})
	}
	t.Run("wrong token can still read", func(t *testing.T) {
		if _, err := wrong.Status(ctx); err != nil {
			t.Errorf("status with a wrong token: %v", err)
		}
	})
	t.Run("no daemon", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := strings.TrimPrefix(srv.URL, "http://")
		srv.Close()
		if err := api.NewClient(addr, testToken).Ping(ctx); err == nil {
			t.Error("Ping of a closed server succeeded")
		}
	})
}
