package node

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/testnet/gen"
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
	// The first run starts the browser, which lives as long as its context:
	// a shorter deadline for one step, derived from ctx, then ends only that
	// step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
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
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#licence")?.textContent === "CC-BY-SA-4.0"`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		licence, _ := chromedp.Run(ctx, chromedp.Text(`#licence`))
		t.Errorf("licence shown = %q, %v", licence, err)
	}
	// The live feed starts with the recent history only, shown together.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#feed li").length >= 5`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("live feed history not shown: %v", err)
	}
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

	// A ban shows on the commons page.
	flooder := strangerKey(21).Public()
	must[api.Published](t)(c.UpdateManifest(actx, commons, api.ManifestParams{Ban: []protocol.PublicKey{flooder}}))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/"`)); err != nil {
		t.Fatal(err)
	}
	banned := `((document.querySelector("#banned-keys") || {}).textContent || "")`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](banned+`.includes("`+flooder.String()+`")`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](banned))
		t.Errorf("banned keys shown %q, want %s: %v", shown, flooder, err)
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
	// Polled: a live update may draw the page again between a query and
	// the read of the node it found.
	warned := `((document.querySelector("#contest-warning") || {}).textContent || "")`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](warned+`.includes("Contested") && `+warned+`.includes("2 manifest versions")`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		warning, _ := chromedp.Run(ctx, chromedp.Evaluate[string](warned))
		t.Errorf("contest warning %q: %v", warning, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+id+`"`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#held`), chromedp.WaitVisible(`#detail-status .badge.pending`)); err != nil {
		t.Fatalf("held contribution's page: %v", err)
	}
	// Polled, as above: a live update may draw the page again.
	undecided := `((document.querySelector("table.reviews") || {}).textContent || "")`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](undecided+`.includes("undecided")`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		reviews, _ := chromedp.Run(ctx, chromedp.Evaluate[string](undecided))
		t.Errorf("reviews table %q, %v; want the review undecided", reviews, err)
	}
}

// importGenerated imports the generated records [lo, hi) into n, as a CAR.
func importGenerated(ctx context.Context, n *Node, g *gen.Generated, lo, hi int) error {
	var buf bytes.Buffer
	w, err := protocol.NewCARWriter(&buf, g.ID)
	if err != nil {
		return err
	}
	for i := lo; i < hi; i++ {
		if err := w.Put(g.CIDs[i], g.Records[i]); err != nil {
			return err
		}
	}
	rep, err := n.Import(ctx, &buf, true)
	if err != nil {
		return fmt.Errorf("import records %d to %d: %w", lo, hi, err)
	}
	if rep.Imported != hi-lo {
		return fmt.Errorf("import records %d to %d: %d imported, refused %+v", lo, hi, rep.Imported, rep.Rejected)
	}
	return nil
}

// contributionCIDs returns the CIDs of the contributions among records, in
// their order.
func contributionCIDs(t *testing.T, records [][]byte) []string {
	t.Helper()
	var out []string
	for _, raw := range records {
		b, err := protocol.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if b.Record.Type() == protocol.TypeContribution {
			out = append(out, b.CID.String())
		}
	}
	return out
}

// answers evaluates a script in the page and fails the test unless the
// page answers within within; it returns the script's value and how long
// the answer took.
func answers(t *testing.T, ctx context.Context, within time.Duration, script string) (string, time.Duration) {
	t.Helper()
	ectx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	start := time.Now()
	v, err := chromedp.Run(ectx, chromedp.Evaluate[string](script))
	took := time.Since(start)
	if ectx.Err() != nil {
		t.Fatalf("the page did not answer a script within %v: %v", within, err)
	}
	if err != nil {
		t.Fatalf("script %s: %v", script, err)
	}
	return v, took
}

// legendSum is a script that adds up the contributions the chart's legend
// counts.
const legendSum = `String([...document.querySelectorAll("#chart .legend span")].reduce((n, s) => n + parseInt(s.textContent.split(" ").pop()), 0))`

// TestExplorerLargeCommons opens the explorer on a commons of 20,000
// records, then imports 2,000 more while it is open. The page shows the
// newest contribution first and counts every one, its live feed starts at
// the recent records instead of replaying the commons, it answers scripts
// within a few seconds all along, and the records that arrive show.
func TestExplorerLargeCommons(t *testing.T) {
	const loaded, total = 20_000, 22_000
	g, err := gen.Generate(gen.Options{Records: total, Authors: 20, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	before, all := contributionCIDs(t, g.Records[:loaded]), contributionCIDs(t, g.Records)
	n := startOffline(t)
	if err := importGenerated(t.Context(), n, g, 0, loaded); err != nil {
		t.Fatal(err)
	}
	s := serve(t, n)
	ctx := browser(t)

	start := time.Now()
	first, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(first,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(`#contributions li:first-child[data-cid="`+before[len(before)-1]+`"]`),
		chromedp.WaitVisible(`#live.on`),
	); err != nil {
		t.Fatalf("the newest of %d contributions not first on the list after %v: %v", len(before), time.Since(start), err)
	}
	t.Logf("first page of %d records in %v", loaded, time.Since(start))
	// Every contribution is counted, not only the first page of the list.
	counted, _ := answers(t, ctx, 5*time.Second, legendSum)
	if counted != strconv.Itoa(len(before)) {
		t.Errorf("the chart counts %s contributions, want %d", counted, len(before))
	}
	note, _ := answers(t, ctx, 5*time.Second, `document.querySelector("#contributions-note")?.textContent ?? ""`)
	if want := fmt.Sprintf("of %d contributions", len(before)); !strings.Contains(note, want) {
		t.Errorf("the list says %q, want it to say %q", note, want)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#feed li").length > 0`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the live feed shows no recent records: %v", err)
	}
	oldest, _ := answers(t, ctx, 5*time.Second, `document.querySelector("#feed li:last-child").dataset.id`)
	if c, err := strconv.Atoi(strings.Split(oldest, ".")[0]); err != nil || c <= loaded-60 {
		t.Errorf("oldest event on the live feed %q, %v; want one of the latest records, not a replay of the commons", oldest, err)
	}

	imported := make(chan error, 1)
	go func() { imported <- importGenerated(t.Context(), n, g, loaded, total) }()
	// The page answers all along, until the last record shows on the live
	// feed and the sync panel counts them all.
	last := g.CIDs[total-1].String()
	script := `[!!document.querySelector('#feed li[data-cid="` + last + `"]'), parseInt(document.querySelector("#records").textContent)].join(" ")`
	want := fmt.Sprint("true ", total)
	var slowest time.Duration
	evals := 0
	for deadline := time.Now().Add(40 * time.Second); ; {
		got, took := answers(t, ctx, 5*time.Second, script)
		slowest, evals = max(slowest, took), evals+1
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("40 s after the import began the page shows %q (last record on the live feed, records), want %q", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-imported; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d more records shown %v after the page opened; %d scripts answered meanwhile, the slowest in %v", total-loaded, time.Since(start), evals, slowest)
	shown := `document.querySelector("#contributions li[data-cid]").dataset.cid + " " + ` + legendSum
	want = fmt.Sprint(all[len(all)-1], " ", len(all))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(`+shown+`) == "`+want+`"`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		got, _ := answers(t, ctx, 5*time.Second, shown)
		t.Errorf("after the import the list and chart show %q (newest contribution, count), want %q", got, want)
	}
}

// TestExplorerEmptyNode opens the explorer on a node that replicates no
// commons: it says so and what to do instead of loading forever, shows a
// commons founded while it is open, and says when the node stops
// answering.
func TestExplorerEmptyNode(t *testing.T) {
	ctx := browser(t)
	n := startOffline(t)
	srv := httptest.NewServer(api.Handler(n, testToken))
	t.Cleanup(srv.Close)
	c := api.NewClient(strings.TrimPrefix(srv.URL, "http://"), testToken)
	open, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(open, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(`#empty`)); err != nil {
		t.Fatalf("open explorer on an empty node: %v", err)
	}
	text, _ := answers(t, ctx, 5*time.Second, `document.body.innerText`)
	for _, want := range []string{"This node replicates no commons yet", "commons join", "commons manifest create", must[api.IDInfo](t)(n.ID(t.Context())).PeerID} {
		if !strings.Contains(text, want) {
			t.Errorf("the empty node's page does not say %q:\n%s", want, text)
		}
	}
	for _, stuck := range []string{"Loading…", "connecting…"} {
		if strings.Contains(text, stuck) {
			t.Errorf("the empty node's page still says %q:\n%s", stuck, text)
		}
	}

	must[string](t)(c.CreateManifest(t.Context(), api.ManifestParams{Name: ptr("Late commons"), Licence: ptr("MIT")}))
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#licence`), chromedp.WaitVisible(`#live.on`), chromedp.WaitNotVisible(`#empty`)); err != nil {
		t.Fatalf("a commons founded while the page is open is not shown: %v", err)
	}

	srv.CloseClientConnections()
	srv.Close()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#notice").innerText.includes("The node does not answer")`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Errorf("the page does not say that the node stopped answering: %v", err)
	}
}

// TestExplorerRecordPages opens record pages the node cannot show (an
// unknown CID, text that is no CID, a commons it does not replicate) and
// one whose hlc needs more than 53 bits: the page says what is wrong in
// words, and shows the record's JSON with every digit.
func TestExplorerRecordPages(t *testing.T) {
	ctx := browser(t)
	s := serve(t, startOffline(t))
	actx := t.Context()
	commons := must[string](t)(s.c.CreateManifest(actx, api.ManifestParams{Name: ptr("Exact"), Licence: ptr("MIT")}))
	g, err := cid.Decode(commons)
	if err != nil {
		t.Fatal(err)
	}
	author, err := protocol.PrivateKeyFromLibp2p(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	hlc := protocol.HLCFromMillis(time.Now().UnixMilli(), 0x1235)
	if uint64(float64(hlc)) == uint64(hlc) {
		t.Fatalf("hlc %d fits a float64: it tests no precision", hlc)
	}
	publish := func(body protocol.Body, commons cid.Cid) string {
		t.Helper()
		rec := &protocol.Record{Commons: commons, Time: hlc, Body: body}
		if err := protocol.Sign(rec, author); err != nil {
			t.Fatal(err)
		}
		raw, _, err := protocol.Encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		return must[api.Published](t)(s.c.Publish(actx, raw, false)).CID
	}
	genesis := publish(&protocol.Manifest{Name: "Precise", Licence: "MIT", Association: []protocol.PublicKey{author.Public()}, Threshold: 1}, cid.Undef)
	contribution := publish(&protocol.Contribution{Title: "Precise timing", Licence: protocol.Link{Cid: g}, Provenance: protocol.ProvenanceVolunteer}, g)
	sum, err := multihash.Sum([]byte("no record has these bytes"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	unknown := cid.NewCidV1(cid.DagCBOR, sum).String()

	// page opens hash and returns the page's text once it says ready.
	page := func(hash, ready string) string {
		t.Helper()
		shown := fmt.Sprintf(`document.querySelector("#main").innerText.includes(%q)`, ready)
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/"+hash)); err != nil {
			t.Fatalf("open %s: %v", hash, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](shown, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			text, _ := answers(t, ctx, 5*time.Second, `document.querySelector("#main").innerText`)
			t.Fatalf("%s does not say %q: %v\n%s", hash, ready, err, text)
		}
		text, _ := answers(t, ctx, 5*time.Second, `document.querySelector("#main").innerText`)
		return text
	}
	for _, tc := range []struct{ hash, ready string }{
		{"#/c/" + genesis, "manifest " + genesis[:10]},
		{"#/c/" + contribution, "Precise timing"},
	} {
		page(tc.hash, tc.ready)
		json, _ := answers(t, ctx, 5*time.Second, `document.querySelector("#contribution pre").textContent`)
		if want := fmt.Sprintf(`"hlc": %d,`, uint64(hlc)); !strings.Contains(json, want) {
			t.Errorf("%s: the record's JSON does not hold %s:\n%s", tc.hash, want, json)
		}
	}

	for _, tc := range []struct {
		name, hash string
		says, not  []string
	}{
		{"unknown CID", "#/c/" + unknown, []string{"Record not found", "This node holds no record " + unknown}, nil},
		{"not a CID", "#/c/notacid", []string{"Not a record ID", "“notacid” is not a record ID"}, []string{"encoding", "not a CID"}},
		{"unknown commons", "#/commons/" + unknown, []string{"This node does not replicate the commons " + unknown, "commons join " + unknown}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := page(tc.hash, tc.says[0])
			for _, want := range tc.says {
				if !strings.Contains(text, want) {
					t.Errorf("the page does not say %q:\n%s", want, text)
				}
			}
			for _, raw := range tc.not {
				if strings.Contains(text, raw) {
					t.Errorf("the page shows the API's words %q:\n%s", raw, text)
				}
			}
		})
	}
}

// TestExplorerWindow opens a commons larger than the explorer's window
// (?window=1000 over 3,000 records): the list and chart cover the
// contributions among the latest 1,000 records, not the whole history, and
// say so.
func TestExplorerWindow(t *testing.T) {
	const records, window = 3000, 1000
	g, err := gen.Generate(gen.Options{Records: records, Authors: 10, NoPayloads: true})
	if err != nil {
		t.Fatal(err)
	}
	inWindow := contributionCIDs(t, g.Records[records-window:])
	n := startOffline(t)
	if err := importGenerated(t.Context(), n, g, 0, records); err != nil {
		t.Fatal(err)
	}
	s := serve(t, n)
	ctx := browser(t)
	open, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(open,
		chromedp.Navigate(s.url+"/?window="+strconv.Itoa(window)),
		chromedp.WaitVisible(`#contributions li:first-child[data-cid="`+inWindow[len(inWindow)-1]+`"]`),
	); err != nil {
		t.Fatalf("open the explorer with a window: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](legendSum+` == "`+strconv.Itoa(len(inWindow))+`"`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		got, _ := answers(t, ctx, 5*time.Second, legendSum)
		t.Fatalf("the chart counts %s contributions, want the %d among the latest %d records", got, len(inWindow), window)
	}
	note, _ := answers(t, ctx, 5*time.Second, `document.querySelector("#contributions-note")?.textContent ?? ""`)
	if !strings.Contains(note, "among the latest 1,000 records") {
		t.Errorf("the list says %q, want it to say it covers the latest 1,000 records", note)
	}
}

// TestExplorerReciprocity opens the explorer on a commons with an
// entrepreneur's records: the reciprocity card starts empty, then shows,
// live, the participant's declared use, its confirmed sponsorship and its
// share of the accepted work, and its pledge with the part acknowledged,
// each linked to its records.
func TestExplorerReciprocity(t *testing.T) {
	ctx := browser(t)
	s := serve(t, startOffline(t))
	c, self := s.c, s.n.Self()
	actx := t.Context()
	commons := must[string](t)(c.CreateManifest(actx, api.ManifestParams{Name: ptr("Open Seed Library"), Licence: ptr("CC-BY-SA-4.0"), Maintainers: []protocol.PublicKey{self}}))
	id := cid.MustParse(commons)
	work := paidBy(t, s.n, strangerKey(70), id, id, self)
	must[api.Published](t)(c.Publish(actx, work.Raw, false))
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(`#live.on`),
		chromedp.WaitVisible(`#reciprocity-empty`),
	); err != nil {
		t.Fatalf("open explorer: %v", err)
	}
	sponsorship := must[api.Published](t)(c.Sponsor(actx, api.SponsorParams{Target: work.CID.String()})).CID
	must[api.Published](t)(c.SetProfile(actx, api.ProfileParams{Commons: commons, Name: "Maizeworks",
		Uses: []protocol.Use{{Kind: "service", Name: "Yield forecasts", URL: "https://forecasts.maizeworks.example"}}}))
	pledge := must[api.Published](t)(c.Pledge(actx, api.PledgeParams{Commons: commons, Kind: protocol.PledgeHours, Amount: 10,
		From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})).CID
	ack := must[api.Published](t)(c.Acknowledge(actx, api.AckParams{Pledge: pledge, Amount: 4})).CID
	must[api.Published](t)(c.Review(actx, api.ReviewParams{Target: work.CID.String(), Decision: "accept"}))

	p := `#reciprocity section[data-key="` + self.String() + `"]`
	for _, sel := range []string{
		p + ` .pledge[data-cid="` + pledge + `"][data-acknowledged="4"][data-met="false"]`,
		p + ` .share[data-share="1"]`,
		p + ` a[href="#/c/` + work.CID.String() + `"]`,
		p + ` a[href="#/c/` + sponsorship + `"]`,
		p + ` a[href="#/c/` + ack + `"]`,
		p + ` a[href="https://forecasts.maizeworks.example"]`,
	} {
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector(`+strconv.Quote(sel)+`)`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			shown, _ := chromedp.Run(ctx, chromedp.Text(`#reciprocity`))
			t.Fatalf("%s not shown: %v\nthe card says: %s", sel, err, shown)
		}
	}
	text, err := chromedp.Run(ctx, chromedp.Text(p))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Maizeworks", "1 of 1 sponsored contribution accepted: 100% of the 1 accepted contribution in the commons", "10 hours", "4 of 10 acknowledged"} {
		if !strings.Contains(text, want) {
			t.Errorf("the participant's panel lacks %q:\n%s", want, text)
		}
	}
	if dir := os.Getenv("COMMONS_SCREENSHOTS"); dir != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "reciprocity.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Its links open the records, each on a page of its own.
	for _, page := range []struct{ cid, want string }{
		{sponsorship, "sponsorship of "},
		{pledge, "pledge 10 hours"},
		{ack, "acknowledgement of "},
		{work.CID.String(), "confirmed: the sponsor countersigned it in "},
	} {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+page.cid+`"`)); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(document.querySelector("#contribution")?.textContent || "").includes(`+strconv.Quote(page.want)+`)`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			shown, _ := chromedp.Run(ctx, chromedp.Text(`#contribution`))
			t.Errorf("the page of %s lacks %q: %v\n%s", page.cid, page.want, err, shown)
		}
	}
	if dir := os.Getenv("COMMONS_SCREENSHOTS"); dir != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "sponsored.png"), png, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The explorer lists a commons' disputes, open ones first, and follows one
// live: opened, answered, upheld with a withdrawal; the dispute's page
// shows its statement and resolution, the contribution's page says it is
// withdrawn and by which resolution, and a certificate's page says whether
// it holds.
func TestExplorerDisputes(t *testing.T) {
	ctx := browser(t)
	s := serve(t, startOffline(t))
	c, self := s.c, s.n.Self()
	actx := t.Context()
	commons := must[string](t)(c.CreateManifest(actx, api.ManifestParams{Name: ptr("Open Seed Library"), Licence: ptr("CC-BY-SA-4.0"), Maintainers: []protocol.PublicKey{self}}))
	id := cid.MustParse(commons)
	work := signed(t, s.n, strangerKey(71), id, &protocol.Contribution{Title: "copied table", Licence: protocol.Link{Cid: id}, Provenance: protocol.ProvenanceVolunteer})
	must[api.Published](t)(c.Publish(actx, work.Raw, false))
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(`#live.on`),
		chromedp.WaitVisible(`#disputes-empty`),
	); err != nil {
		t.Fatalf("open explorer: %v", err)
	}
	d := must[api.Published](t)(c.OpenDispute(actx, api.DisputeParams{Subject: work.CID.String(), Reason: "copied from a non-commercial paper", Evidence: []string{"https://journal.example/t2"}})).CID
	poll := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			shown, _ := chromedp.Run(ctx, chromedp.Text(`#main`))
			t.Fatalf("%s: %v\nthe page says: %s", what, err, shown)
		}
	}
	poll("the open dispute listed", `!!document.querySelector('#disputes li.dispute[data-cid="`+d+`"][data-outcome="open"]')`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+d+`"`)); err != nil {
		t.Fatal(err)
	}
	poll("the dispute's page", `(document.querySelector("#contribution")?.textContent || "").includes("Not resolved yet")`)
	st := must[api.Published](t)(c.AddStatement(actx, api.StatementParams{Dispute: d, Text: "my own trials"})).CID
	res := must[api.Published](t)(c.Resolve(actx, api.ResolveParams{Dispute: d, Outcome: protocol.OutcomeUphold, Effect: protocol.EffectWithdraw, Reason: "matches table 2"})).CID
	poll("the statement and the resolution, live", `!!document.querySelector('#contribution li.statement[data-cid="`+st+`"]') && !!document.querySelector('#contribution li.resolution[data-cid="`+res+`"][data-counting="true"]') && !!document.querySelector('#dispute-outcome [data-outcome="upheld"]')`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+work.CID.String()+`"`)); err != nil {
		t.Fatal(err)
	}
	poll("the contribution withdrawn", `!!document.querySelector('#detail-status [data-status="withdrawn"]') && !!document.querySelector('#withdrawn a[href="#/c/`+res+`"]')`)
	cert := must[api.Published](t)(c.Certify(actx, api.CertifyParams{Commons: commons, Participant: ptr(self), Role: "maintainer", Expires: time.Now().Add(time.Hour)})).CID
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/c/`+cert+`"`)); err != nil {
		t.Fatal(err)
	}
	poll("the certificate holds", `!!document.querySelector('#certificate-holds[data-holds="true"]')`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash = "#/"`)); err != nil {
		t.Fatal(err)
	}
	poll("the dispute upheld in the list", `!!document.querySelector('#disputes li.dispute[data-cid="`+d+`"][data-outcome="upheld"]')`)
	if dir := os.Getenv("COMMONS_SCREENSHOTS"); dir != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "disputes.png"), png, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
