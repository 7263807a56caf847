package node

import (
	"io"
	"net/http"
	"testing"
)

// The daemon's API refuses a request whose Host is a name it was not
// given (a DNS-rebinding page), and answers one by a configured name.
func TestServeAPIChecksHost(t *testing.T) {
	n := startNode(t, Config{Offline: true, APIHosts: []string{"node.lan"}})
	addr, err := n.ServeAPI("127.0.0.1:0", "token")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{"rebind.attacker.example": 403, "node.lan": 200, "": 200} {
		r, err := http.NewRequest("GET", "http://"+addr.String()+"/api/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			r.Host = host
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d: %s", host, resp.StatusCode, want, body)
		}
	}
}
