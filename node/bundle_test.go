package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// thresholdTwo founds, on a, a commons whose association is a and b with
// a threshold of 2, and returns its ID.
func thresholdTwo(t *testing.T, a, b *Node) string {
	t.Helper()
	ctx := t.Context()
	id, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{a.Self(), b.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateManifest(ctx, id, api.ManifestParams{Threshold: ptr(uint64(2))}); err != nil {
		t.Fatal(err)
	}
	return id
}

// A member whose node does not replicate the commons co-signs the draft
// file as manifest update --draft writes it: it carries the commons'
// manifests. The bare record alone says what is missing and how to get it.
func TestCosignWithoutTheCommons(t *testing.T) {
	ctx := context.Background()
	a, b := startOffline(t), startOffline(t)
	id := thresholdTwo(t, a, b)
	draft, err := a.DraftManifest(ctx, id, api.ManifestParams{Name: ptr("T2")})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := api.DraftRecord(draft)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CosignManifest(ctx, bare, false); !errors.Is(err, api.ErrUnknownCommons) || !strings.Contains(err.Error(), "manifest update --draft") {
		t.Fatalf("co-signing a bare record of a commons not replicated: %v; want it to say what to co-sign instead", err)
	}
	cosigned, err := b.CosignManifest(ctx, draft, false)
	if err != nil {
		t.Fatalf("co-signing the draft file without the commons: %v", err)
	}
	if st, err := b.Status(ctx); err != nil || len(st.Commons) != 0 {
		t.Fatalf("co-signing replicated the commons: %+v, %v", st, err)
	}
	pub, err := a.Publish(ctx, cosigned, false)
	if err != nil || pub.Class != "effective" {
		t.Fatalf("publish the co-signed draft file: %+v, %v", pub, err)
	}
	if info, err := a.Manifest(ctx, id); err != nil || info.Manifest.Name != "T2" {
		t.Fatalf("after publishing: %+v, %v", info, err)
	}
}

// What a draft file carries is checked as any record is, and it cannot
// lend authority: a forged or foreign record in it is refused, a member
// of no version the draft builds on cannot co-sign, and a draft file
// that leaves out a version the draft builds on says so.
func TestCosignBundleAttacks(t *testing.T) {
	ctx := context.Background()
	a, b, mallory := startOffline(t), startOffline(t), startOffline(t)
	id := thresholdTwo(t, a, b)
	draft, err := a.DraftManifest(ctx, id, api.ManifestParams{Name: ptr("T2")})
	if err != nil {
		t.Fatal(err)
	}
	bd, err := decodeBundle(draft)
	if err != nil || len(bd.carried) != 2 {
		t.Fatalf("draft file: %d manifests carried, %v; want the genesis and version 2", len(bd.carried), err)
	}

	// A stranger's key cannot co-sign, whatever the file carries.
	if _, err := mallory.CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("co-sign by a non-member from the draft file: %v", err)
	}

	// A record of another commons, or a tampered one, in the file.
	other, err := mallory.DraftManifest(ctx, "", api.ManifestParams{Name: ptr("M"), Licence: ptr("MIT")})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := decodeBundle(other)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := encodeBundle(bundle{draft: bd.draft, carried: append(bd.carried, ob.draft)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CosignManifest(ctx, foreign, false); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "not a manifest of commons") {
		t.Fatalf("a draft file carrying another commons' manifest: %v", err)
	}
	tampered := *bd.carried[1]
	tampered.Raw = append([]byte(nil), tampered.Raw...)
	tampered.Raw[len(tampered.Raw)-1] ^= 1
	bad, err := encodeBundle(bundle{draft: bd.draft, carried: []*protocol.Block{bd.carried[0], &tampered}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CosignManifest(ctx, bad, false); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("a draft file carrying a tampered record: %v", err)
	}

	// The version the draft builds on left out.
	prev := bd.draft.Record.Manifest().Prev[0].Cid
	var rest []*protocol.Block
	for _, m := range bd.carried {
		if !m.CID.Equals(prev) {
			rest = append(rest, m)
		}
	}
	short, err := encodeBundle(bundle{draft: bd.draft, carried: rest})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CosignManifest(ctx, short, false); !errors.Is(err, api.ErrUnknownCommons) || !strings.Contains(err.Error(), "predecessor") {
		t.Fatalf("a draft file without the version the draft builds on: %v", err)
	}
}
