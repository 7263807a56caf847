package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/commons-p2p/commons/crdt"
	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store"
	"github.com/commons-p2p/commons/store/badgerstore"
)

// syncBuf is a log buffer safe for the node's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A repo whose derived state was recorded under other authority rules, or
// never recorded (an earlier version's repo), is re-derived on start with a
// log line saying what the records now mean; a start under the same rules
// says nothing.
func TestRederiveOnStart(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	start := func(logs *syncBuf) *Node { return startIn(t, dir, key, logs) }
	stop := func(n *Node) {
		t.Helper()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const line = "re-derived a commons under new authority rules"

	var first syncBuf
	n := start(&first)
	id := must[string](t)(n.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("R"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{n.Self()}}))
	c := must[string](t)(n.Contribute(t.Context(), api.ContributeParams{Commons: id, Title: "c"}))
	must[api.Published](t)(n.Review(t.Context(), api.ReviewParams{Target: c, Decision: "accept"}))
	stop(n)
	if strings.Contains(first.String(), line) {
		t.Fatalf("a new repo logged a re-derivation:\n%s", first.String())
	}

	// The same rules: nothing to say.
	var same syncBuf
	stop(start(&same))
	if strings.Contains(same.String(), line) {
		t.Fatalf("a start under the same rules logged a re-derivation:\n%s", same.String())
	}

	// As if the state had last been recorded under rules 1, with other
	// figures.
	st, err := badgerstore.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	old := `{"rules":1,"records":3,"head":"` + id + `","accepted":0,"rejected":1,"pending":0,"inert":0,"contested":0}`
	if err := st.PutMeta(context.Background(), "derived/"+id, []byte(old)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var changed syncBuf
	n = start(&changed)
	stop(n)
	out := changed.String()
	if !strings.Contains(out, line) || !strings.Contains(out, "stored_rules=1") || !strings.Contains(out, `accepted="0 -> 1"`) || !strings.Contains(out, `rejected="1 -> 0"`) {
		t.Fatalf("start under new rules logged:\n%s", out)
	}
	var after syncBuf
	stop(start(&after))
	if strings.Contains(after.String(), line) {
		t.Fatalf("the re-derivation was logged twice:\n%s", after.String())
	}
	raw := func() []byte {
		st, err := badgerstore.Open(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		b, err := st.GetMeta(context.Background(), "derived/"+id)
		if err != nil && err != store.ErrNotFound {
			t.Fatal(err)
		}
		return b
	}()
	if !bytes.Contains(raw, []byte(fmt.Sprintf(`"rules":%d`, crdt.RulesVersion))) {
		t.Fatalf("recorded summary %s", raw)
	}

	// A repo an earlier version wrote: the records and the commons, no
	// summary.
	src, err := badgerstore.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	page, err := src.Feed(context.Background(), mustDecodeCID(t, id), 0, 100)
	if err != nil || len(page) != 3 {
		t.Fatalf("feed: %d records, %v", len(page), err)
	}
	src.Close()
	oldDir := t.TempDir()
	dst, err := badgerstore.Open(oldDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page {
		if _, err := dst.PutRecords(context.Background(), []store.Entry{{CID: r.CID, Commons: r.Commons, Raw: r.Raw}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.AddCommons(context.Background(), mustDecodeCID(t, id)); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	var legacy syncBuf
	stop(startIn(t, oldDir, key, &legacy))
	if out := legacy.String(); !strings.Contains(out, line) || !strings.Contains(out, "earlier version") || !strings.Contains(out, "accepted=1") {
		t.Fatalf("start on an earlier version's repo logged:\n%s", out)
	}
}

func startIn(t *testing.T, dir string, key crypto.PrivKey, logs *syncBuf) *Node {
	t.Helper()
	st, err := badgerstore.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Offline: true, Store: st, Key: key, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

func mustDecodeCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
