package node

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// A client failing to authenticate is logged, once and then at most every
// 10 s with a count of the refusals in between; a foreign Host header too.
// Head changes and revocations of a commons' manifest are logged.
func TestSecurityEventsLogged(t *testing.T) {
	var mu sync.Mutex
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	logs := &logBuffer{}
	n, err := New(Config{Offline: true, Store: memstore.New(), Key: testKey(t), Now: clock,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	addr, err := n.ServeAPI("127.0.0.1:0", "token")
	if err != nil {
		t.Fatal(err)
	}
	post := func(host string) {
		r, _ := http.NewRequest("POST", "http://"+addr.String()+"/api/v1/sync", nil)
		r.Header.Set("Authorization", "Bearer wrong")
		if host != "" {
			r.Host = host
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for range 5 {
		post("")
	}
	if c := strings.Count(logs.String(), "missing or wrong token"); c != 1 {
		t.Fatalf("5 refusals within 10 s logged %d times, want once:\n%s", c, logs)
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	post("rebind.attacker.example")
	if !strings.Contains(logs.String(), "Host header") || !strings.Contains(logs.String(), "refused_before_unlogged=4") {
		t.Fatalf("after 10 s, a refusal for a foreign Host is not logged with the 4 before it:\n%s", logs)
	}

	ctx := t.Context()
	thief := strangerKey(3)
	id, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{n.Self(), thief.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.UpdateManifest(ctx, id, api.ManifestParams{Revoke: []protocol.PublicKey{thief.Public()}}); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, "manifest head changed") || !strings.Contains(out, "keys revoked") || !strings.Contains(out, thief.Public().String()) {
		t.Fatalf("a revoking update is not logged with its head and the key:\n%s", out)
	}
}
