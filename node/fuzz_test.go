package node

import (
	"bufio"
	"bytes"
	"context"
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
