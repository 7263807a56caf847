package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/ipfs/go-cid"
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

func strangerKey(i int) protocol.PrivateKey {
	s := make([]byte, 32)
	s[0], s[1], s[2] = byte(i), byte(i>>8), 0xAA
	return protocol.NewPrivateKeyFromSeed(s)
}

// bigInert makes a manifest of commons id, signed by a stranger, as large
// as the protocol's field limits allow (about 45 KB): inert, yet in the set.
func bigInert(t *testing.T, id cid.Cid, i int, big bool) *protocol.Block {
	t.Helper()
	keys := func(off, n int) []protocol.PublicKey {
		var ks []protocol.PublicKey
		for j := range n {
			ks = append(ks, strangerKey(off+j).Public())
		}
		slices.SortFunc(ks, protocol.PublicKey.Compare)
		return ks
	}
	m := &protocol.Manifest{Name: fmt.Sprintf("spam %d", i), Licence: "MIT", Association: keys(10000, 1), Threshold: 1,
		Prev: []protocol.Link{{Cid: id}}, Version: 1}
	if big {
		m.Association = keys(10000, 256)
		m.Maintainers, m.Quorum, m.RejectQuorum = keys(20000, 256), 1, 1
		m.Revoked = keys(30000, 256)
		for j := range protocol.MaxBootstrap {
			m.Bootstrap = append(m.Bootstrap, "/dns/"+strings.Repeat(string(rune('a'+j%26)), 480)+fmt.Sprint(i))
		}
	}
	r := &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(time.Now().UnixMilli(), uint16(i)), Body: m}
	return mustBlock(t, r, strangerKey(50000+i))
}

// A stranger's manifests, inert in the commons (any peer can add such),
// are not carried by a draft file: it carries the manifests on the chain,
// and comes whole through the client however many there are.
func TestDraftCarriesTheChainOnly(t *testing.T) {
	ctx := context.Background()
	a, b := startOffline(t), startOffline(t)
	idS := thresholdTwo(t, a, b)
	id := cid.MustParse(idS)
	var spam []*protocol.Block
	for i := range 30 {
		spam = append(spam, bigInert(t, id, i, true))
	}
	if _, err := a.ingest(ctx, spam, false); err != nil {
		t.Fatal(err)
	}
	sa, sb := serve(t, a), serve(t, b)
	draft, err := sa.c.DraftManifest(ctx, idS, api.ManifestParams{Name: ptr("T2")})
	if err != nil {
		t.Fatal(err)
	}
	bd, err := decodeBundle(draft)
	if err != nil || len(bd.carried) != 2 {
		t.Fatalf("draft file through the client: %d manifests carried, %v; want the 2 on the chain", len(bd.carried), err)
	}
	cos, err := sb.c.CosignManifest(ctx, draft, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeBundle(cos); err != nil {
		t.Fatalf("the co-signed file does not decode: %v", err)
	}
}

// A file cut short is refused before anything is rewritten.
func TestDraftRecordNeedsTheWholeFile(t *testing.T) {
	ctx := context.Background()
	a, b := startOffline(t), startOffline(t)
	draft, err := a.DraftManifest(ctx, thresholdTwo(t, a, b), api.ManifestParams{Name: ptr("T2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.DraftRecord(draft); err != nil {
		t.Fatal(err)
	}
	if _, err := api.DraftRecord(draft[:len(draft)-10]); err == nil {
		t.Fatal("DraftRecord of a file cut short: no error")
	}
}

// A member whose node holds the revocation of a stolen key is sent a draft
// built on the thief's secret fork, in a file that leaves the revocation
// out: the node judges by its own manifests too, and refuses.
func TestCosignSeesOwnRevocations(t *testing.T) {
	ctx := context.Background()
	a := startOffline(t)
	thief := strangerKey(777)
	idS, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"),
		Association: []protocol.PublicKey{a.Self(), thief.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	id := cid.MustParse(idS)
	if _, err := a.UpdateManifest(ctx, idS, api.ManifestParams{Revoke: []protocol.PublicKey{thief.Public()}}); err != nil {
		t.Fatal(err)
	}
	var g *protocol.Block
	if err := a.do(ctx, func() { g = a.commons[id].state.Manifest(id) }); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	assoc := []protocol.PublicKey{a.Self(), thief.Public()}
	slices.SortFunc(assoc, protocol.PublicKey.Compare)
	fork := mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(now-2000, 0), Body: &protocol.Manifest{
		Name: "T", Licence: "MIT", Association: assoc, Threshold: 2, Prev: []protocol.Link{{Cid: id}}, Version: 1}}, thief)
	d := mustBlock(t, &protocol.Record{Commons: id, Time: protocol.HLCFromMillis(now-1000, 0), Body: &protocol.Manifest{
		Name: "T", Licence: "MIT", Association: []protocol.PublicKey{thief.Public()}, Threshold: 1, Prev: []protocol.Link{{Cid: fork.CID}}, Version: 2}}, thief)
	file, err := encodeBundle(bundle{draft: d, carried: []*protocol.Block{g, fork}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CosignManifest(ctx, file, false); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("co-signing the thief's draft from a file that leaves out the revocation: %v; want it refused", err)
	}
}
