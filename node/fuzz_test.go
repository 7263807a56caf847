package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
	"github.com/commons-p2p/commons/testnet/gen"
	carv2 "github.com/ipld/go-car/v2"
)

// fuzzSeeds are a small valid CAR of generated records and cuts of it.
func fuzzSeeds(f testing.TB) [][]byte {
	g, err := gen.Generate(gen.Options{Records: 12, Authors: 3, NoPayloads: true})
	if err != nil {
		f.Fatal(err)
	}
	car, err := g.CAR()
	if err != nil {
		f.Fatal(err)
	}
	return [][]byte{car, car[:len(car)/2], car[:40], {}}
}

// FuzzImport: an import of any bytes never panics nor hangs, and the
// records it says it imported are stored, and no other: a fresh node holds
// exactly those.
func FuzzImport(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	key := testKey(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := New(Config{Offline: true, Store: memstore.New(), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		rep, _ := n.Import(context.Background(), bytes.NewReader(raw), true)
		st, err := n.Status(context.Background())
		if err != nil {
			t.Fatalf("status after an import: %v", err)
		}
		held := 0
		for _, c := range st.Commons {
			held += c.Records
		}
		if held != rep.Imported {
			t.Fatalf("the node holds %d records, and the import said it stored %d: %+v", held, rep.Imported, rep)
		}
	})
}

// FuzzDraftBundle: a draft file of any bytes never panics its decoders,
// and what the node's decoder accepts has a validated draft and carries
// manifests of its commons only.
func FuzzDraftBundle(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := decodeBundle(raw)
		if err == nil {
			if b.draft == nil {
				t.Fatal("a bundle accepted without its draft")
			}
			for _, m := range b.carried {
				if m.Record.Manifest() == nil || !m.CommonsID().Equals(b.draft.CommonsID()) {
					t.Fatalf("a bundle accepted carrying %s, not a manifest of %s", m.CID, b.draft.CommonsID())
				}
			}
		}
		if rec, err := api.DraftRecord(raw); err == nil && len(rec) == 0 && len(raw) > 0 {
			t.Fatal("DraftRecord accepted a file and returned no record")
		}
	})
}

// FuzzCARRead: the import's reading of a CAR file (its framing, then each
// block parsed as a record) never panics, and whatever it accepts is a
// record whose bytes hash to the CID the file gives it. (FuzzImport runs
// the whole import, on a node, with its seeds.)
func FuzzCARRead(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	n, err := New(Config{Offline: true, Store: memstore.New(), Key: testKey(f)}) // not started: parse only
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		br, err := carv2.NewBlockReader(bytes.NewReader(raw), carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(protocol.MaxRecordSize+128))
		if err != nil {
			return
		}
		for range 1000 {
			blk, err := br.Next()
			if err != nil {
				return
			}
			b, err := n.parse(blk.RawData(), blk.Cid())
			if err != nil {
				continue
			}
			if !b.CID.Equals(blk.Cid()) {
				t.Fatalf("accepted the record of %s as %s", b.CID, blk.Cid())
			}
		}
	})
}

// FuzzSyncFrame: the sync stream's frame reader never panics, and never
// returns a frame over its limits.
func FuzzSyncFrame(f *testing.F) {
	f.Add([]byte{0x05, 1, 2, 3, 4, 5})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bufio.NewReader(bytes.NewReader(raw))
		for range 64 {
			_, body, err := readKindFrame(r)
			if err != nil {
				return
			}
			if len(body) > len(raw) {
				t.Fatalf("a frame of %d bytes out of %d", len(body), len(raw))
			}
		}
	})
}

// FuzzAPIBody sends any body to each API route that reads one, with the
// right token, to a node holding two commons: the answer is never a 5xx
// (a body, however bad, is the client's error, and says so), an error
// answer is a JSON object whose error names the problem, and the node
// keeps answering.
func FuzzAPIBody(f *testing.F) {
	w := newWorld(f)
	h := api.Handler(w.n, testToken)
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/manifests"},
		{"POST", "/api/v1/commons/" + w.commons + "/manifest"},
		{"POST", "/api/v1/commons/" + w.commons + "/manifest/draft"},
		{"POST", "/api/v1/manifests/draft"},
		{"POST", "/api/v1/manifests/cosign"},
		{"POST", "/api/v1/records"},
		{"POST", "/api/v1/contributions"},
		{"POST", "/api/v1/reviews"},
		{"POST", "/api/v1/import"},
		{"POST", "/api/v1/sync"},
		{"PUT", "/api/v1/commons/" + w.open},
	}
	bodies := [][]byte{
		nil, []byte("{}"), []byte("null"), []byte(`{"name":"n","licence":"MIT"}`),
		[]byte(`{"commons":"` + w.commons + `","title":"t"}`),
		[]byte(`{"target":"` + w.pending + `","decision":"accept"}`),
		[]byte(`{"name":"renamed"}`), []byte(`{"peer":"x"}`),
	}
	bodies = append(bodies, fuzzSeeds(f)...)
	for i := range routes {
		for _, b := range bodies {
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Host = "127.0.0.1"
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with a body of %d bytes: %d %s", r.method, r.path, len(body), rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: %d with a body that is no JSON error: %q", r.method, r.path, rec.Code, rec.Body)
			}
		}
		if _, err := w.n.Status(t.Context()); err != nil {
			t.Fatalf("the node stopped answering after %s %s: %v", r.method, r.path, err)
		}
	})
}
