package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ipfs/go-cid"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
)

// chromium returns the browser to test with. Under CI=true a missing
// browser fails the test (.ci/run installs it); elsewhere it skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: .ci/run installs Debian's chromium; set $CHROMIUM to another binary")
	}
	t.Skip("chromium not found (apt-get install chromium, or set $CHROMIUM)")
	return ""
}

// browser starts headless Chromium and returns a chromedp context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// TestExplorerLive opens the web explorer in headless Chromium, makes a
// contribution through the API and checks that it appears without a
// reload, then becomes accepted when reviewed, on the list and on its page.
func TestExplorerLive(t *testing.T) {
	ctx := browser(t)
	s := serve(t, startOffline(t))
	c, self := s.c, s.n.Self()
	actx := t.Context()
	commons := must[string](t)(c.CreateManifest(actx, api.ManifestParams{Name: ptr("Open Seed Library"), Licence: ptr("CC-BY-SA-4.0"), Maintainers: []protocol.PublicKey{self}}))
	blob := must[string](t)(c.PutBlob(actx, []byte("maize,yield\nA,3.1\n")))
	for i, title := range []string{"Germination log", "Storage humidity study"} {
		id := must[string](t)(c.Contribute(actx, api.ContributeParams{Commons: commons, Title: title, Kind: "data"}))
		if i == 0 {
			must[api.Published](t)(c.Review(actx, api.ReviewParams{Target: id, Decision: "reject"}))
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(`#live.on`),
		chromedp.WaitVisible(`#licence`),
	); err != nil {
		t.Fatalf("open explorer: %v", err)
	}
	if licence, err := chromedp.Run(ctx, chromedp.Text(`#licence`)); err != nil || licence != "CC-BY-SA-4.0" {
		t.Errorf("licence shown = %q, %v", licence, err)
	}
	// The live feed starts with the recent history only.
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#feed li").length`)); err != nil || n != 5 {
		t.Errorf("live feed shows %d events at first, %v; want the 4 records and the status change", n, err)
	}

	id := must[string](t)(c.Contribute(actx, api.ContributeParams{Commons: commons, Title: "Drought-tolerant maize notes",
		Summary: "Three seasons of trials", Kind: "data", Payload: []api.PayloadParam{{CID: blob, Name: "trials.csv"}}}))
	row := `#contributions li[data-cid="` + id + `"]`
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`#feed li[data-cid="`+id+`"]`),
		chromedp.WaitVisible(row+` .badge.pending`),
	); err != nil {
		t.Fatalf("new contribution not shown live: %v", err)
	}
	must[api.Published](t)(c.Review(actx, api.ReviewParams{Target: id, Decision: "accept", Rationale: "Reproduced"}))
	if err := chromedp.Do(ctx, chromedp.WaitVisible(row+` .badge.accepted`)); err != nil {
		t.Fatalf("status change not shown live: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+id+`"`)); err != nil {
		t.Fatalf("go to the contribution page: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#detail-status .badge.accepted`)); err != nil {
		t.Fatalf("contribution page: %v", err)
	}
	reviews, err := chromedp.Run(ctx, chromedp.Text(`table.reviews`))
	if err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.Run(ctx, chromedp.AttributeValue(`a[download="trials.csv"]`, "href"))
	if err != nil {
		t.Fatal(err)
	}
	payload := link.Value
	if !strings.Contains(reviews, self.String()) || !strings.Contains(reviews, "accept") {
		t.Errorf("reviews table %q does not name the signer %s", reviews, self)
	}
	if payload != "/api/v1/blobs/"+blob {
		t.Errorf("payload link %q", payload)
	}
	if dir := os.Getenv("COMMONS_SCREENSHOTS"); dir != "" {
		screenshots(t, ctx, s.url, id, dir)
	}
}

// TestExplorerDoesNotReplayHistory opens the explorer on a commons with
// more records than the live feed replays: the feed shows the latest ones,
// the list every contribution, and new records still arrive live.
func TestExplorerDoesNotReplayHistory(t *testing.T) {
	ctx := browser(t)
	s := serve(t, startOffline(t))
	actx := t.Context()
	commons := must[string](t)(s.c.CreateManifest(actx, api.ManifestParams{Name: ptr("Busy"), Licence: ptr("MIT")}))
	for i := range 120 {
		must[string](t)(s.c.Contribute(actx, api.ContributeParams{Commons: commons, Title: fmt.Sprint("old ", i)}))
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(`#live.on`), chromedp.WaitVisible(`#contributions li[data-cid]`)); err != nil {
		t.Fatalf("open explorer: %v", err)
	}
	id := must[string](t)(s.c.Contribute(actx, api.ContributeParams{Commons: commons, Title: "new"}))
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#feed li[data-cid="`+id+`"]`)); err != nil {
		t.Fatalf("new contribution not shown live: %v", err)
	}
	feed, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#feed li").length`))
	if err != nil || feed != 51 {
		t.Errorf("live feed holds %d events, %v; want the 50 latest of history and the new one", feed, err)
	}
	oldest, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#feed li:last-child").dataset.id`))
	if err != nil || oldest != "72" {
		t.Errorf("oldest event in the live feed: %q, %v; want cursor 72 (121 records, the 50 latest replayed)", oldest, err)
	}
	listed, err := chromedp.Run(ctx, chromedp.Evaluate[int](`S.contribs.size`))
	if err != nil || listed != 121 {
		t.Errorf("the list knows %d contributions, %v; want 121", listed, err)
	}
}

// screenshots saves the overview and the contribution page, desktop and
// phone width (COMMONS_SCREENSHOTS=dir go test -run TestExplorerLive).
func screenshots(t *testing.T, ctx context.Context, url, id, dir string) {
	shots := []struct {
		name, hash string
		w, h       int64
	}{{"overview", "#/", 1200, 900}, {"contribution", "#/c/" + id, 1200, 900}, {"phone-overview", "#/", 390, 844}, {"phone-contribution", "#/c/" + id, 390, 844}}
	for _, s := range shots {
		if err := chromedp.Do(ctx,
			chromedp.EmulateViewport(s.w, s.h),
			chromedp.Navigate(url+"/"+s.hash),
			chromedp.WaitVisible(`#live.on`),
			chromedp.Sleep(300*time.Millisecond),
		); err != nil {
			t.Fatalf("screenshot %s: %v", s.name, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", s.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExplorerContested opens the explorer on a commons whose association
// keys revoke each other: the manifest panel, the sync panel and the held
// contribution's page say so.
func TestExplorerContested(t *testing.T) {
	ctx := browser(t)
	s := serve(t, startOffline(t))
	c, self := s.c, s.n.Self()
	actx := t.Context()
	thief, err := protocol.PrivateKeyFromLibp2p(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	assoc := []protocol.PublicKey{self, thief.Public()}
	commons := must[string](t)(c.CreateManifest(actx, api.ManifestParams{Name: ptr("Contested commons"), Licence: ptr("MIT"),
		Association: assoc, Threshold: ptr[uint64](1), Maintainers: []protocol.PublicKey{self}}))
	id := must[string](t)(c.Contribute(actx, api.ContributeParams{Commons: commons, Title: "Seed bank census"}))
	g, err := cid.Decode(commons)
	if err != nil {
		t.Fatal(err)
	}
	fork := &protocol.Record{Commons: g, Time: protocol.HLCFromMillis(time.Now().UnixMilli(), 0), Body: &protocol.Manifest{
		Name: "taken", Licence: "MIT", Association: []protocol.PublicKey{thief.Public()}, Threshold: 1,
		Revoked: []protocol.PublicKey{self}, Prev: []protocol.Link{{Cid: g}}, Version: 1,
	}}
	if err := protocol.Sign(fork, thief); err != nil {
		t.Fatal(err)
	}
	raw, _, err := protocol.Encode(fork)
	if err != nil {
		t.Fatal(err)
	}
	must[api.Published](t)(c.Publish(actx, raw, false))
	if p := must[api.Published](t)(c.UpdateManifest(actx, commons, api.ManifestParams{On: []string{commons}, Revoke: []protocol.PublicKey{thief.Public()}})); p.Class != "contested" {
		t.Fatalf("the answer to the thief: %+v, want contested", p)
	}
	if p := must[api.Published](t)(c.Review(actx, api.ReviewParams{Target: id, Decision: "accept"})); p.Class != "suspended" {
		t.Fatalf("review by a key the contest suspends: %+v", p)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(`#contest-warning`),
		chromedp.WaitVisible(`#status-contested`),
	); err != nil {
		t.Fatalf("open explorer: %v", err)
	}
	warning, err := chromedp.Run(ctx, chromedp.Text(`#contest-warning`))
	if err != nil || !strings.Contains(warning, "Contested") || !strings.Contains(warning, "2 manifest versions") {
		t.Errorf("contest warning %q, %v", warning, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+id+`"`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#held`), chromedp.WaitVisible(`#detail-status .badge.pending`)); err != nil {
		t.Fatalf("held contribution's page: %v", err)
	}
	reviews, err := chromedp.Run(ctx, chromedp.Text(`table.reviews`))
	if err != nil || !strings.Contains(reviews, "undecided") {
		t.Errorf("reviews table %q, %v; want the review undecided", reviews, err)
	}
}
