package node

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/memstore"
)

// The association bans a key that flooded the commons: the key's
// contribution, accepted before, becomes inert and pending, the manifest
// lists the key as banned, and the log says so. Bans that would do
// nothing, or that would ban a key the update gives authority, are refused
// with what to do instead.
func TestBanByUpdate(t *testing.T) {
	ctx := t.Context()
	logs := &logBuffer{}
	n, err := New(Config{Offline: true, Store: memstore.New(), Key: testKey(t), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	helper := strangerKey(12).Public()
	id, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("b"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{n.Self(), helper}})
	if err != nil {
		t.Fatal(err)
	}
	flooder := strangerKey(11)
	junk := signedContribution(t, flooder, cid.MustParse(id), protocol.HLCFromMillis(n.nowMillis(), 0))
	if _, err := n.Publish(ctx, junk.Raw, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Review(ctx, api.ReviewParams{Target: junk.CID.String(), Decision: protocol.DecisionAccept}); err != nil {
		t.Fatal(err)
	}
	if info, err := n.Show(ctx, junk.CID.String()); err != nil || info.Status != "accepted" {
		t.Fatalf("before the ban: %+v, %v; want accepted", info, err)
	}

	ban := api.ManifestParams{Ban: []protocol.PublicKey{flooder.Public()}}
	if _, err := n.UpdateManifest(ctx, id, ban); err != nil {
		t.Fatal(err)
	}
	info, err := n.Show(ctx, junk.CID.String())
	if err != nil || info.Status != "pending" || info.Inert != "author: key is banned" {
		t.Fatalf("after the ban: status %q, inert %q, %v; want pending, banned", info.Status, info.Inert, err)
	}
	m, err := n.Manifest(ctx, id)
	if err != nil || !slices.Equal(m.Banned, []protocol.PublicKey{flooder.Public()}) {
		t.Fatalf("manifest banned %v, %v; want the flooder", m.Banned, err)
	}
	if out := logs.String(); !strings.Contains(out, "keys banned") || !strings.Contains(out, flooder.Public().String()) {
		t.Fatalf("the ban is not logged with its key:\n%s", out)
	}
	// A later update that bans nobody keeps the ban.
	if _, err := n.UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("b, renamed")}); err != nil {
		t.Fatal(err)
	}
	if m, err := n.Manifest(ctx, id); err != nil || len(m.Banned) != 1 {
		t.Fatalf("after a later update: banned %v, %v; want the flooder still", m.Banned, err)
	}

	// Lifting a ban: the contribution's accept counts again.
	if _, err := n.UpdateManifest(ctx, id, api.ManifestParams{Unban: []protocol.PublicKey{flooder.Public()}}); err != nil {
		t.Fatal(err)
	}
	if info, err := n.Show(ctx, junk.CID.String()); err != nil || info.Status != "accepted" || info.Inert != "" {
		t.Fatalf("after the ban is lifted: status %q, inert %q, %v; want accepted", info.Status, info.Inert, err)
	}
	if out := logs.String(); !strings.Contains(out, "bans lifted") {
		t.Fatalf("the lifted ban is not logged:\n%s", out)
	}
	if _, err := n.UpdateManifest(ctx, id, ban); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		p    api.ManifestParams
		want string
	}{
		{"again", ban, "banned already"},
		{"a maintainer", api.ManifestParams{Ban: []protocol.PublicKey{helper}}, "take it off the maintainers"},
		{"the association", api.ManifestParams{Ban: []protocol.PublicKey{n.Self()}}, "revoked (--revoke), not banned"},
		{"a banned key made maintainer", api.ManifestParams{Maintainers: []protocol.PublicKey{n.Self(), flooder.Public()}}, "lift the ban (--unban) or leave it off the maintainers"},
		{"lifting a ban that is not", api.ManifestParams{Unban: []protocol.PublicKey{helper}}, "nothing to lift"},
		{"allowing bans in an update", api.ManifestParams{Bans: ptr(false)}, "only a new commons' genesis"},
	} {
		if _, err := n.UpdateManifest(ctx, id, c.p); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a bad request saying %q", c.name, err, c.want)
		}
	}
	// Taken off the maintainers in the same update, a key can be banned.
	p := api.ManifestParams{Maintainers: []protocol.PublicKey{n.Self()}, Ban: []protocol.PublicKey{helper}}
	if _, err := n.UpdateManifest(ctx, id, p); err != nil {
		t.Fatalf("banning a maintainer taken off in the same update: %v", err)
	}
	// Built on a version from before the ban, an update may ban again
	// what it would otherwise drop.
	again := api.ManifestParams{On: []string{id}, Ban: []protocol.PublicKey{flooder.Public()}}
	if _, err := n.UpdateManifest(ctx, id, again); err != nil {
		t.Fatalf("banning on the genesis, which bans nobody: %v", err)
	}
	// The two heads now disagree on the helper's ban: a merge says which
	// is meant rather than let one branch's ban undo the other's lifting.
	if _, err := n.UpdateManifest(ctx, id, api.ManifestParams{Name: ptr("merged")}); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "disagree on banning "+helper.String()) {
		t.Fatalf("a merge of heads that disagree on a ban: %v; want it to ask", err)
	}
	both := api.ManifestParams{Ban: []protocol.PublicKey{helper}, Unban: []protocol.PublicKey{helper}}
	if _, err := n.UpdateManifest(ctx, id, both); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "say one") {
		t.Fatalf("--ban and --unban of one key: %v; want it refused", err)
	}
	if _, err := n.UpdateManifest(ctx, id, api.ManifestParams{Unban: []protocol.PublicKey{helper}}); err != nil {
		t.Fatalf("a merge lifting the disputed ban: %v", err)
	}
	if m, err := n.Manifest(ctx, id); err != nil || len(m.Forks) > 1 || !slices.Equal(m.Banned, []protocol.PublicKey{flooder.Public()}) {
		t.Fatalf("after the merge: forks %v, banned %v, %v; want one head banning the flooder alone", m.Forks, m.Banned, err)
	}
	twice := api.ManifestParams{Ban: []protocol.PublicKey{helper, helper}, Maintainers: []protocol.PublicKey{n.Self()}}
	if _, err := n.UpdateManifest(ctx, id, twice); err != nil {
		t.Fatalf("a key given twice to --ban: %v", err)
	}

	// A commons founded without bans never bans.
	plain, err := n.CreateManifest(ctx, api.ManifestParams{Name: ptr("p"), Licence: ptr("MIT"), Bans: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.UpdateManifest(ctx, plain, ban); !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "does not let its manifests ban") {
		t.Errorf("a ban in a commons founded without bans: %v; want it refused", err)
	}
}

// A banned key's node refuses to publish a contribution, saying why, and
// offers no force: there is none for a contribution, which nothing could
// make count.
func TestBannedKeyRefused(t *testing.T) {
	ctx := t.Context()
	a, b := startOffline(t), startOffline(t)
	id, err := a.CreateManifest(ctx, api.ManifestParams{Name: ptr("b"), Licence: ptr("MIT"), Maintainers: []protocol.PublicKey{a.Self()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateManifest(ctx, id, api.ManifestParams{Ban: []protocol.PublicKey{b.Self()}}); err != nil {
		t.Fatal(err)
	}
	copyCommons(t, a, b, id)
	_, err = b.Contribute(ctx, api.ContributeParams{Commons: id, Title: "junk"})
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "key is banned") || strings.Contains(err.Error(), "force") {
		t.Fatalf("a banned key's contribution: %v; want forbidden, naming the ban, offering no force", err)
	}
}
