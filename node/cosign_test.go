package node

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// copyCommons makes dst hold every record of commons that src holds.
func copyCommons(t *testing.T, src, dst *Node, commons string) {
	t.Helper()
	var car bytes.Buffer
	if err := src.Export(context.Background(), commons, &car); err != nil {
		t.Fatal(err)
	}
	if rep, err := dst.Import(context.Background(), &car, true); err != nil || len(rep.Rejected) > 0 {
		t.Fatalf("import: %v %+v", err, rep)
	}
}

func TestThresholdUpdateNeedsCosignatures(t *testing.T) {
	ctx := context.Background()
	a, b := startOffline(t), startOffline(t)
	id, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{a.Self(), b.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateManifest(ctx, id, api.ManifestParams{Threshold: ptr(uint64(2))}); err != nil {
		t.Fatal(err)
	}
	// Now one key alone cannot update.
	_, err = a.UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("T2")})
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "co-signed") {
		t.Fatalf("update with threshold 2 by one key: %v", err)
	}
	draft, err := a.DraftManifest(ctx, id, api.ManifestParams{Name: ptr("T2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, draft, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "signers: fewer than a predecessor's threshold") || !strings.Contains(err.Error(), "force publishes it anyway") {
		t.Fatalf("publish with one signature: %v", err)
	}
	if _, err := a.CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("author co-signing its own draft: %v", err)
	}
	copyCommons(t, a, b, id)
	cosigned, err := b.CosignManifest(ctx, draft, false)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := a.Publish(ctx, cosigned, false)
	if err != nil || pub.Class != "effective" {
		t.Fatal(pub, err)
	}
	c := pub.CID
	info, err := a.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Head != c || info.Manifest.Name != "T2" || info.Manifest.Version != 2 {
		t.Fatalf("head %s (want %s), name %q, version %d", info.Head, c, info.Manifest.Name, info.Manifest.Version)
	}
	// A stranger's key cannot co-sign.
	if _, err := offlineNodeWith(t, a, id).CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("co-sign by a non-member: %v", err)
	}
	if _, err := a.Publish(ctx, []byte("not a record"), false); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("publish garbage: %v", err)
	}
}

// offlineNodeWith is a fresh node holding src's copy of a commons.
func offlineNodeWith(t *testing.T, src *Node, commons string) *Node {
	n := startOffline(t)
	copyCommons(t, src, n, commons)
	return n
}

// TestCosignOverHTTP runs the draft, co-sign and publish routes through
// the Client against two nodes.
func TestCosignOverHTTP(t *testing.T) {
	ctx := t.Context()
	a, b := serve(t, startOffline(t)), serve(t, startOffline(t))
	id := must[string](t)(a.c.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"), Association: []protocol.PublicKey{a.n.Self(), b.n.Self()}}))
	must[api.Published](t)(a.c.UpdateManifest(ctx, id, api.ManifestParams{Threshold: ptr(uint64(2))}))
	draft := must[[]byte](t)(a.c.DraftManifest(ctx, id, api.ManifestParams{Licence: ptr("MIT OR Apache-2.0")}))
	if _, err := a.c.Publish(ctx, draft, false); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("publish before co-signing: %v", err)
	}
	copyCommons(t, a.n, b.n, id)
	cosigned := must[[]byte](t)(b.c.CosignManifest(ctx, draft, false))
	c := must[api.Published](t)(b.c.Publish(ctx, cosigned, false)).CID
	info := must[api.ManifestInfo](t)(b.c.Manifest(ctx, id))
	if info.Head != c || info.Manifest.Licence != "MIT OR Apache-2.0" {
		t.Fatalf("head %s (want %s), licence %q", info.Head, c, info.Manifest.Licence)
	}
	// The same bytes published again are a no-op with the same CID.
	if again := must[api.Published](t)(b.c.Publish(ctx, cosigned, false)).CID; again != c {
		t.Fatalf("republish gave %s, want %s", again, c)
	}
}

// Revoking a key on top of a version that key signed would keep that
// version, and all it changed, in force: the node refuses unless the
// version is named (--on), and the revocation built on the version before
// it rejects the thief's update.
func TestRevokeOnTheThiefsVersion(t *testing.T) {
	ctx := t.Context()
	a, thief, accomplice := startOffline(t), startOffline(t), startOffline(t)
	x := accomplice.Self()
	id := must[string](t)(a.CreateManifest(ctx, api.ManifestParams{Name: ptr("T"), Licence: ptr("MIT"),
		Association: []protocol.PublicKey{a.Self(), thief.Self()}, Maintainers: []protocol.PublicKey{a.Self()}}))
	copyCommons(t, a, thief, id)
	// The thief keeps both keys, adds its own and appoints it maintainer.
	taken := must[api.Published](t)(thief.UpdateManifest(ctx, id, api.ManifestParams{
		Association: []protocol.PublicKey{a.Self(), thief.Self(), x}, Maintainers: []protocol.PublicKey{x}}))
	copyCommons(t, thief, a, id)
	_, err := a.UpdateManifest(ctx, id, api.ManifestParams{Revoke: []protocol.PublicKey{thief.Self()}})
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "--on") || !strings.Contains(err.Error(), taken.CID) {
		t.Fatalf("revoking the thief on its own version: %v; want refused, naming the version and --on", err)
	}
	// Through a later version signed by the key the thief appointed, it is
	// the same.
	copyCommons(t, thief, accomplice, id)
	must[api.Published](t)(accomplice.UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("T, renamed")}))
	copyCommons(t, accomplice, a, id)
	if _, err := a.UpdateManifest(ctx, id, api.ManifestParams{Revoke: []protocol.PublicKey{thief.Self()}}); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), taken.CID) {
		t.Fatalf("revoking the thief on a later version: %v; want refused, naming the thief's version %s", err, taken.CID)
	}
	answer := must[api.Published](t)(a.UpdateManifest(ctx, id, api.ManifestParams{Revoke: []protocol.PublicKey{thief.Self()}, On: []string{id}}))
	if answer.Class != "effective" {
		t.Fatalf("revocation on the genesis: %+v", answer)
	}
	info := must[api.ManifestInfo](t)(a.Manifest(ctx, id))
	if info.Head != answer.CID || slices.ContainsFunc(info.History, func(v api.ManifestVersion) bool { return v.CID == taken.CID }) {
		t.Fatalf("head %s (want %s), history %+v: the thief's version must be rejected", info.Head, answer.CID, info.History)
	}
}

// Several members found a commons together: a genesis drafted with a
// threshold of 2, co-signed, published (over the HTTP API, as the CLI
// does).
func TestGenesisDraft(t *testing.T) {
	ctx := t.Context()
	a, b, stranger := serve(t, startOffline(t)), serve(t, startOffline(t)), serve(t, startOffline(t))
	p := api.ManifestParams{Name: ptr("Founded together"), Licence: ptr("MIT"),
		Association: []protocol.PublicKey{a.n.Self(), b.n.Self()}, Threshold: ptr[uint64](2)}
	if _, err := a.c.CreateManifest(ctx, p); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "--draft") {
		t.Fatalf("create with threshold 2: %v; want a pointer to --draft", err)
	}
	draft := must[[]byte](t)(a.c.DraftManifest(ctx, "", p))
	if _, err := a.c.Publish(ctx, draft, false); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "genesis threshold") {
		t.Fatalf("publish the genesis with one signature of two: %v", err)
	}
	if _, err := stranger.c.CosignManifest(ctx, draft, false); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("co-sign by a key outside the association: %v", err)
	}
	cosigned := must[[]byte](t)(b.c.CosignManifest(ctx, draft, false))
	pub := must[api.Published](t)(a.c.Publish(ctx, cosigned, false))
	if pub.Class != "effective" {
		t.Fatalf("publish the co-signed genesis: %+v", pub)
	}
	info := must[api.ManifestInfo](t)(a.c.Manifest(ctx, pub.CID))
	if info.Head != pub.CID || info.Manifest.Threshold != 2 || len(info.Manifest.Association) != 2 {
		t.Fatalf("the new commons' manifest: %+v", info)
	}
}
