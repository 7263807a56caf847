package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// A web page served by a name that resolves to the node (DNS rebinding)
// reaches the API with that name as Host: refused, unless configured.
func TestCheckHost(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := CheckHost(ok, []string{"node.lan"}, nil)
	for _, tt := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:4041", 200},
		{"127.0.0.5", 200},
		{"[::1]:4041", 200},
		{"localhost:4041", 200},
		{"LOCALHOST", 200},
		{"explorer.localhost:80", 200},
		{"192.168.1.7:4041", 200},
		{"node.lan:4041", 200},
		{"Node.LAN.", 200},
		{"rebind.attacker.example:4041", 403},
		{"127.0.0.1.attacker.example", 403},
		{"localhost.attacker.example", 403},
		{"node.lan.attacker.example", 403},
		{"", 403},
	} {
		r := httptest.NewRequest("GET", "/api/v1/status", nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Host %q: %d, want %d (%s)", tt.host, w.Code, tt.want, w.Body)
		}
	}
}
