package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// handlerRoutes finds every route Handler registers: the string literal
// patterns of mux.Handle and mux.HandleFunc calls in the package's files.
func handlerRoutes(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("api/*.go") // the routes Handler registers
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "mux" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok {
				t.Errorf("%s: route pattern is not a literal", fset.Position(call.Pos()))
				return true
			}
			p, _ := strconv.Unquote(lit.Value)
			method, path, ok := strings.Cut(p, " ")
			if !ok {
				return true // the /api/ catch-all
			}
			path = strings.TrimSuffix(path, "{$}")
			if strings.HasSuffix(path, "/web/") {
				path += "{path}"
			}
			out = append(out, method+" "+path)
			return true
		})
	}
	slices.Sort(out)
	return out
}

type openAPIDocument struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDocument {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes checks that the OpenAPI document describes exactly the
// routes Handler serves, and that the served document is the embedded one.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(documented)
	served := handlerRoutes(t)
	if len(served) < 20 {
		t.Fatalf("found only %d routes in the source: %v", len(served), served)
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is served but not in openapi.json", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("openapi.json documents %s, which Handler does not serve", r)
		}
	}
	s := serve(t, startOffline(t))
	code, b := s.raw(t, "GET", "/api/v1/openapi.json", noAuth, nil)
	if code != 200 || string(b) != string(api.OpenAPI()) {
		t.Errorf("GET /api/v1/openapi.json = %d, %d bytes", code, len(b))
	}
}

// TestOpenAPIResponses validates responses of the read routes against the
// document's schemas.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	w := newWorld(t)
	// The coalition's records, through the client's routes.
	ctx, c, str := t.Context(), w.c, must[string](t)
	id := cid.MustParse(w.commons)
	work := paidBy(t, w.n, strangerKey(50), id, id, w.self)
	paid := str(cidOf(c.Publish(ctx, work.Raw, false)))
	sponsorship := str(cidOf(c.Sponsor(ctx, api.SponsorParams{Target: paid, Note: "invoice 7"})))
	pledge := str(cidOf(c.Pledge(ctx, api.PledgeParams{Commons: w.commons, Kind: protocol.PledgeHours, Amount: 10,
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})))
	ack := str(cidOf(c.Acknowledge(ctx, api.AckParams{Pledge: pledge, Amount: 4})))
	profile := str(cidOf(c.SetProfile(ctx, api.ProfileParams{Commons: w.commons, Name: "Acme",
		Uses: []protocol.Use{{Kind: "service", Name: "Acme Cloud", URL: "https://cloud.acme.example"}}})))
	str(cidOf(c.Review(ctx, api.ReviewParams{Target: paid, Decision: protocol.DecisionAccept})))
	if got := must[api.ProfileInfo](t)(c.Profile(ctx, w.commons, "")); got.CID != profile {
		t.Errorf("this node's profile through the client: %+v", got)
	}
	rec := must[api.ReciprocityInfo](t)(c.Reciprocity(ctx, w.commons, time.Time{}))
	if len(rec.Participants) != 1 || rec.Accepted != 2 || rec.Participants[0].Accepted != 1 || rec.Participants[0].Share != 0.5 ||
		rec.Participants[0].Profile != profile || rec.Participants[0].Sponsored[0].Sponsorship != sponsorship ||
		len(rec.Participants[0].Pledges) != 1 || rec.Participants[0].Pledges[0].Acknowledged != 4 || rec.Participants[0].Pledges[0].Acks[0] != ack {
		t.Errorf("reciprocity through the client: %+v", rec)
	}
	tests := []struct {
		path, schema string
		code         int
	}{
		{"/api/v1/records/" + paid, "RecordInfo", 200},
		{"/api/v1/records/" + sponsorship, "RecordInfo", 200},
		{"/api/v1/records/" + profile, "RecordInfo", 200},
		{"/api/v1/records/" + pledge, "RecordInfo", 200},
		{"/api/v1/records/" + ack, "RecordInfo", 200},
		{"/api/v1/commons/" + w.commons + "/profiles/" + w.self.String(), "ProfileInfo", 200},
		{"/api/v1/commons/" + w.commons + "/profiles/" + absentCID, "Error", 400},
		{"/api/v1/commons/" + w.commons + "/reciprocity", "ReciprocityInfo", 200},
		{"/api/v1/commons/" + w.commons + "/reciprocity?since=2000-01-01T00:00:00Z", "ReciprocityInfo", 200},
		{"/api/v1/commons/" + w.commons + "/reciprocity?since=yesterday", "Error", 400},
		{"/api/v1/id", "IDInfo", 200},
		{"/api/v1/status", "StatusInfo", 200},
		{"/api/v1/peers", "[PeerInfo]", 200},
		{"/api/v1/commons/" + w.commons + "/manifest", "ManifestInfo", 200},
		{"/api/v1/records/" + w.accepted, "RecordInfo", 200},
		{"/api/v1/records/" + w.reviews[0], "RecordInfo", 200},
		{"/api/v1/records/" + w.commons, "RecordInfo", 200},
		{"/api/v1/feed?commons=" + w.commons, "[FeedItem]", 200},
		{"/api/v1/commons/" + w.commons + "/contributions?limit=2", "ContributionPage", 200},
		{"/api/v1/records/notacid", "Error", 400},
		{"/api/v1/commons/" + absentCID + "/contributions", "Error", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, b := w.raw(t, "GET", tt.path, noAuth, nil)
			if code != tt.code {
				t.Fatalf("status %d, want %d: %s", code, tt.code, b)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			sch := map[string]any{"$ref": "#/components/schemas/" + strings.Trim(tt.schema, "[]")}
			if strings.HasPrefix(tt.schema, "[") {
				sch = map[string]any{"type": "array", "items": sch}
			}
			if err := validate(doc, sch, v, "$"); err != nil {
				t.Errorf("%s: %v\n%s", tt.path, err, b)
			}
		})
	}
	t.Run("events", func(t *testing.T) {
		resp, err := http.Get(w.url + "/api/v1/commons/" + w.commons + "/events?type=status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var v any
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					t.Fatal(err)
				}
				if err := validate(doc, map[string]any{"$ref": "#/components/schemas/Event"}, v, "$"); err != nil {
					t.Errorf("event %s: %v", data, err)
				}
				return
			}
		}
		t.Error("no event")
	})
}

// validate checks v against a JSON Schema subset: $ref, type (one or a
// list), properties, required, items, enum.
func validate(doc openAPIDocument, sch map[string]any, v any, at string) error {
	if ref, ok := sch["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		raw, ok := doc.Components.Schemas[name]
		if !ok {
			return fmt.Errorf("%s: no schema %s", at, name)
		}
		var s map[string]any
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		return validate(doc, s, v, at)
	}
	if ty, ok := sch["type"]; ok {
		var types []string
		switch x := ty.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				types = append(types, e.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			return fmt.Errorf("%s: %s, want %v", at, jsonType(v), types)
		}
	}
	if enum, ok := sch["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s: %v not in %v", at, v, enum)
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := sch["properties"].(map[string]any)
		for _, r := range asStrings(sch["required"]) {
			if _, ok := x[r]; !ok {
				return fmt.Errorf("%s: required %q missing", at, r)
			}
		}
		for k, val := range x {
			p, ok := props[k].(map[string]any)
			if !ok {
				if props != nil {
					return fmt.Errorf("%s: property %q not in the schema", at, k)
				}
				continue
			}
			if err := validate(doc, p, val, at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		if items, ok := sch["items"].(map[string]any); ok {
			for i, e := range x {
				if err := validate(doc, items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}
