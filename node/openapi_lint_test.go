package node

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// The Redocly CLI lints the OpenAPI document in CI (.ci/run). The tests
// here check, without npm, what that linter checks for the document
// (operation IDs, 4XX responses, the licence, the servers), and what it
// cannot: which operations answer no 4XX, and that the libp2p protocol IDs
// the document names are the ones this build speaks.

// noClientError names the operations whose handlers answer no 4XX status,
// and why. Every other operation must document at least one 4XX response.
var noClientError = map[string]string{
	"GET /api/v1/id":           "Node.ID never fails",
	"GET /api/v1/status":       "Node.Status fails only when the node stops or the request ends (503)",
	"GET /api/v1/peers":        "Node.Peers never fails",
	"GET /api/v1/openapi.json": "writes the embedded document",
	"GET /metrics":             "the Prometheus handler, or 501 when the API serves no live feed",
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type lintOperation struct {
	OperationID string                     `json:"operationId"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

type lintDocument struct {
	Info struct {
		License *struct {
			Name string `json:"name"`
		} `json:"license"`
	} `json:"info"`
	Servers []struct {
		URL       string `json:"url"`
		Variables map[string]struct {
			Default string `json:"default"`
		} `json:"variables"`
	} `json:"servers"`
	Paths map[string]map[string]json.RawMessage `json:"paths"`
}

// lintOperations returns the document's operations by "METHOD path".
func lintOperations(t *testing.T) (lintDocument, map[string]lintOperation) {
	t.Helper()
	var doc lintDocument
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	ops := map[string]lintOperation{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			var op lintOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return doc, ops
}

// TestOpenAPIOperationIDs checks that every operation has an operationId,
// in camelCase, that no other operation has.
func TestOpenAPIOperationIDs(t *testing.T) {
	_, ops := lintOperations(t)
	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	seen := map[string]string{}
	for name, op := range ops {
		switch {
		case op.OperationID == "":
			t.Errorf("%s: no operationId", name)
		case !camel.MatchString(op.OperationID):
			t.Errorf("%s: operationId %q is not camelCase", name, op.OperationID)
		case seen[op.OperationID] != "":
			t.Errorf("%s: operationId %q is also %s's", name, op.OperationID, seen[op.OperationID])
		}
		seen[op.OperationID] = name
	}
}

// TestOpenAPIClientErrors checks that every operation documents a 4XX
// response, except those noClientError names.
func TestOpenAPIClientErrors(t *testing.T) {
	_, ops := lintOperations(t)
	for name, op := range ops {
		has4xx := false
		for code := range op.Responses {
			has4xx = has4xx || strings.HasPrefix(code, "4")
		}
		_, exempt := noClientError[name]
		switch {
		case exempt && has4xx:
			t.Errorf("%s documents a 4XX response: take it out of noClientError", name)
		case !exempt && !has4xx:
			t.Errorf("%s documents no 4XX response", name)
		}
	}
	for name := range noClientError {
		if _, ok := ops[name]; !ok {
			t.Errorf("noClientError names %s, which openapi.json does not document", name)
		}
	}
}

// TestOpenAPIProbes sends requests meant to draw an error to the
// operations that answer few of them, and checks that each status they
// get is the one the document names: the operations in noClientError still
// answer 200, and the static files answer conditional and range requests
// as net/http's file server does.
func TestOpenAPIProbes(t *testing.T) {
	_, ops := lintOperations(t)
	h := api.Handler(startOffline(t), testToken)
	asset := webAsset(t)
	tests := []struct {
		op, path, header, value string
		want                    int
	}{
		{"GET /api/v1/id", "/api/v1/id?x=1", "Range", "bytes=99999999-", 200},
		{"GET /api/v1/status", "/api/v1/status?x=1", "If-Match", `"x"`, 200},
		{"GET /api/v1/peers", "/api/v1/peers?x=1", "Range", "bytes=99999999-", 200},
		{"GET /api/v1/openapi.json", "/api/v1/openapi.json?x=1", "Range", "bytes=99999999-", 200},
		{"GET /metrics", "/metrics?x=1", "If-Match", `"x"`, 200},
		{"GET /", "/", "Range", "bytes=99999999-", 416},
		{"GET /", "/", "If-Match", `"x"`, 412},
		{"GET /web/{path}", "/web/" + asset, "Range", "bytes=99999999-", 416},
		{"GET /web/{path}", "/web/" + asset, "If-Match", `"x"`, 412},
		{"GET /web/{path}", "/web/no-such-asset", "", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.op+" "+tt.header, func(t *testing.T) {
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.header != "" {
				req.Header.Set(tt.header, tt.value)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			op, ok := ops[tt.op]
			if !ok {
				t.Fatalf("openapi.json does not document %s", tt.op)
			}
			if _, ok := op.Responses[strconv.Itoa(w.Code)]; !ok {
				t.Errorf("%s answered %d, which openapi.json does not document", tt.op, w.Code)
			}
		})
	}
}

// webAsset names a file the explorer serves under /web/.
func webAsset(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("api/web/*")
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && filepath.Base(f) != "index.html" {
			return filepath.Base(f)
		}
	}
	t.Fatal("no asset in api/web")
	return ""
}

// TestOpenAPIInfoAndServers checks that the document names a licence, and
// servers that are relative or on loopback, each variable with a default.
func TestOpenAPIInfoAndServers(t *testing.T) {
	doc, _ := lintOperations(t)
	if doc.Info.License == nil || doc.Info.License.Name == "" {
		t.Error("info.license has no name")
	}
	if len(doc.Servers) == 0 {
		t.Fatal("no servers")
	}
	vars := regexp.MustCompile(`\{([^}]*)\}`)
	for _, s := range doc.Servers {
		if !strings.HasPrefix(s.URL, "/") && !strings.HasPrefix(s.URL, "http://127.0.0.1") && !strings.HasPrefix(s.URL, "http://localhost") {
			t.Errorf("server %q is neither relative nor on loopback", s.URL)
		}
		for _, m := range vars.FindAllStringSubmatch(s.URL, -1) {
			if s.Variables[m[1]].Default == "" {
				t.Errorf("server %q: variable %s has no default", s.URL, m[1])
			}
		}
	}
}

// TestOpenAPIProtocolIDs checks that every libp2p protocol ID the document
// names is one this build speaks.
func TestOpenAPIProtocolIDs(t *testing.T) {
	doc := string(api.OpenAPI())
	known := []string{protocol.SyncProtocol, protocol.BlobProtocol}
	for _, id := range regexp.MustCompile(`/commons/[a-z]+/[0-9]+\.[0-9]+\.[0-9]+`).FindAllString(doc, -1) {
		if !slices.Contains(known, id) {
			t.Errorf("openapi.json names %s; this build speaks %v", id, known)
		}
	}
	if !strings.Contains(doc, protocol.SyncProtocol) {
		t.Errorf("openapi.json does not name the sync protocol %s", protocol.SyncProtocol)
	}
}
