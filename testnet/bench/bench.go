package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/commons-p2p/commons/node"
	"github.com/commons-p2p/commons/protocol"
	"github.com/commons-p2p/commons/store/badgerstore"
	"github.com/commons-p2p/commons/testnet/gen"
	"github.com/commons-p2p/commons/testnet/sim"
)

// Options configures a benchmark scenario. Zero values take each
// scenario's defaults.
type Options struct {
	// Records is the size of the commons: 10000 by default for ingest,
	// join, repair and scale, 200 for partition; propagate times Rounds
	// records instead.
	Records int
	// Nodes is the number of nodes of propagate (default 50) and partition
	// (default 10), and of members of byzantine (default 100, a fifth of
	// them hostile).
	Nodes int
	// Rounds is how many records propagate times (default 20).
	Rounds int
	// Seed seeds the commons and every random choice. Default 1.
	Seed uint64
	// Dir holds the badger stores. Default: a new temporary directory,
	// removed afterwards.
	Dir string
	// Logger receives the nodes' logs. Default: discard.
	Logger *slog.Logger
	// Binary is the commons binary that scale runs its steps with, each
	// a process of its own. Default: this process' executable.
	Binary string
	// CAR is a commons scale imports instead of generating one (a large
	// one takes minutes to generate); its records are counted, and
	// Records is ignored.
	CAR string
	// Rate is the junk records a second flood's flooders send in all
	// (default 1000).
	Rate int
	// Keep keeps what scale wrote (the CAR, the imported repo and the
	// joining one) rather than remove it, to look into or profile; a note
	// of the result says where.
	Keep bool
	// NoJoin leaves out scale's last step, the join, which takes about as
	// long as the import and, at millions of records, is often not wanted.
	NoJoin bool
	// Imported is a repo holding CAR's records already (one Keep kept), which
	// scale starts and queries in place instead of importing CAR into a
	// fresh one: a start and its queries measured again, without an import
	// of hours. It needs CAR, for the records' bytes and the contributions
	// looked up.
	Imported string
}

func (o *Options) fill(records, nodes int) {
	if o.Records <= 0 {
		o.Records = records
	}
	if o.Nodes <= 0 {
		o.Nodes = nodes
	}
	if o.Rounds <= 0 {
		o.Rounds = 20
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Figure is one measured value.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// String returns the figure as "name: value unit".
func (f Figure) String() string {
	return strings.TrimSpace(fmt.Sprintf("%s: %s %s", f.Name, formatValue(f.Value), f.Unit))
}

// Result holds a scenario's figures, the baselines measured in the
// same run, and their ratios.
type Result struct {
	Scenario string   `json:"scenario"`
	Records  int      `json:"records"`
	Nodes    int      `json:"nodes,omitempty"`
	Cores    int      `json:"cores"`
	Figures  []Figure `json:"figures"`
	Notes    []string `json:"notes,omitempty"`
}

func newResult(name string, records int) *Result {
	return &Result{Scenario: name, Records: records, Cores: runtime.GOMAXPROCS(0)}
}

func (r *Result) add(name string, v float64, unit string) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: v, Unit: unit})
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Get returns a figure's value by name, and false if it is absent.
func (r *Result) Get(name string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// WriteText prints the result for people.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s: %d records", r.Scenario, r.Records)
	if r.Nodes > 0 {
		fmt.Fprintf(w, ", %d nodes", r.Nodes)
	}
	fmt.Fprintf(w, ", %d cores\n", r.Cores)
	width := 0
	for _, f := range r.Figures {
		width = max(width, len(f.Name))
	}
	for _, f := range r.Figures {
		fmt.Fprintf(w, "  %-*s  %s %s\n", width, f.Name, formatValue(f.Value), f.Unit)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.4g", v)
	}
}

// WriteJSON prints the result as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Scenario runs one benchmark.
type Scenario func(ctx context.Context, o Options) (*Result, error)

// Scenarios are the benchmarks by name, as the commons binary runs them:
// propagate, partition and byzantine in real time.
var Scenarios = map[string]Scenario{
	"ingest":    Ingest,
	"join":      Join,
	"repair":    Repair,
	"propagate": Propagate.RealTime,
	"partition": Partition.RealTime,
	"byzantine": Byzantine.RealTime,
	"flood":     Flood.RealTime,
	"scale":     Scale,
}

// ScenarioNames lists the scenarios, sorted.
func ScenarioNames() []string {
	var out []string
	for k := range Scenarios {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tempDir returns o.Dir or a new temporary directory, and its cleanup.
func (o *Options) tempDir() (string, func(), error) {
	if o.Dir != "" {
		d, err := os.MkdirTemp(o.Dir, "bench")
		return d, func() { _ = os.RemoveAll(d) }, err
	}
	d, err := os.MkdirTemp("", "commons-bench")
	return d, func() { _ = os.RemoveAll(d) }, err
}

// commons generates the benchmark's synthetic commons of o.Records records
// (200 authors, no payloads) and, with withCAR, its CAR file.
func (o *Options) commons(withCAR bool) (*gen.Generated, []byte, error) {
	g, err := gen.Generate(gen.Options{Records: o.Records, Authors: 200, Seed: o.Seed, NoPayloads: true})
	if err != nil || !withCAR {
		return g, nil, err
	}
	car, err := g.CAR()
	return g, car, err
}

// Ingest imports N records into a fresh node on badger and compares
// the time with a bare crypto/ed25519.Verify loop over the same signatures.
func Ingest(ctx context.Context, o Options) (*Result, error) {
	o.fill(10_000, 0)
	res := newResult("ingest", o.Records)
	g, car, err := o.commons(true)
	if err != nil {
		return nil, err
	}
	blocks := make([]*protocol.Block, len(g.Records))
	msgs := make([][]byte, len(g.Records))
	for i, raw := range g.Records {
		if blocks[i], err = protocol.Parse(raw); err != nil {
			return nil, fmt.Errorf("parse generated record: %w", err)
		}
		msgs[i] = blocks[i].SigningBytes() // outside the timing: the bare verify alone
	}
	start := time.Now()
	for i, b := range blocks {
		if !ed25519.Verify(b.Record.Author[:], msgs[i], b.Record.Sig[:]) {
			return nil, fmt.Errorf("record %s does not verify", b.CID)
		}
	}
	verify := time.Since(start)

	dir, cleanup, err := o.tempDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	nd, err := benchNode(dir, "n", o, nil)
	if err != nil {
		return nil, err
	}
	defer nd.Close()
	start = time.Now()
	rep, err := nd.Import(ctx, bytes.NewReader(car), true)
	took := time.Since(start)
	if err != nil {
		return nil, err
	}
	if rep.Imported != o.Records {
		return nil, fmt.Errorf("imported %d of %d records (%d rejected)", rep.Imported, o.Records, rep.Rejects())
	}
	res.add("import", took.Seconds(), "s")
	res.add("import rate", float64(o.Records)/took.Seconds(), "records/s")
	res.add("baseline: ed25519.Verify loop", verify.Seconds(), "s")
	res.add("baseline rate", float64(o.Records)/verify.Seconds(), "records/s")
	res.add("import / verify loop", took.Seconds()/verify.Seconds(), "x")
	return res, nil
}

// benchNode starts a node on a badger store in dir/name, offline when h is
// nil.
func benchNode(dir, name string, o Options, h host.Host) (*node.Node, error) {
	st, err := badgerstore.Open(dir+"/"+name, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg := node.Config{Store: st, Logger: o.Logger, Seed: o.Seed}
	if h == nil {
		cfg.Offline = true
		cfg.Key = gen.NodeKey(o.Seed, 999)
	} else {
		cfg.Host = h
	}
	nd, err := node.New(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := nd.Start(context.Background()); err != nil {
		nd.Close()
		return nil, err
	}
	return nd, nil
}

// loopbackPeer is a node on its own libp2p host on loopback TCP, with a
// bandwidth counter and a probe of its sync sessions.
type loopbackPeer struct {
	host  host.Host
	node  *node.Node
	bw    *metrics.BandwidthCounter
	probe *syncProbe
}

// syncProbe is a slog handler that keeps the round trips of the sync
// sessions a node ran as initiator (its "sync" log lines) and drops the
// rest.
type syncProbe struct {
	next   slog.Handler // also gets every record
	mu     sync.Mutex
	rounds []int64
}

func (p *syncProbe) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || p.next.Enabled(ctx, l)
}

func (p *syncProbe) WithAttrs(as []slog.Attr) slog.Handler {
	return &syncAttrs{p: p, next: p.next.WithAttrs(as)}
}

func (p *syncProbe) WithGroup(g string) slog.Handler {
	return &syncAttrs{p: p, next: p.next.WithGroup(g)}
}

func (p *syncProbe) Handle(ctx context.Context, r slog.Record) error { return p.handle(ctx, r, p.next) }

// syncAttrs is a syncProbe under attributes.
type syncAttrs struct {
	p    *syncProbe
	next slog.Handler
}

func (s *syncAttrs) Enabled(ctx context.Context, l slog.Level) bool { return s.p.Enabled(ctx, l) }

func (s *syncAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &syncAttrs{p: s.p, next: s.next.WithAttrs(as)}
}

func (s *syncAttrs) WithGroup(g string) slog.Handler {
	return &syncAttrs{p: s.p, next: s.next.WithGroup(g)}
}

func (s *syncAttrs) Handle(ctx context.Context, r slog.Record) error {
	return s.p.handle(ctx, r, s.next)
}

func (p *syncProbe) handle(ctx context.Context, r slog.Record, next slog.Handler) error {
	if next.Enabled(ctx, r.Level) {
		_ = next.Handle(ctx, r)
	}
	if r.Message != "sync" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "round_trips" {
			p.mu.Lock()
			p.rounds = append(p.rounds, a.Value.Int64())
			p.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// roundTrips returns the sessions both peers ran as initiators and the
// most round trips one took.
func roundTrips(ps ...*loopbackPeer) (sessions int, most int64) {
	for _, p := range ps {
		p.probe.mu.Lock()
		for _, r := range p.probe.rounds {
			sessions++
			most = max(most, r)
		}
		p.probe.mu.Unlock()
	}
	return sessions, most
}

func addRoundTrips(res *Result, prefix string, ps ...*loopbackPeer) {
	if sessions, most := roundTrips(ps...); sessions > 0 {
		res.add(prefix+"sync sessions", float64(sessions), "")
		res.add(prefix+"round trips (most in one session)", float64(most), "")
	} else {
		res.note("%sround trips: n/a (no sync session reported them)", prefix)
	}
}

func newLoopbackPeer(dir, name string, idx int, o Options) (*loopbackPeer, error) {
	bw := metrics.NewBandwidthCounter()
	h, err := libp2p.New(
		libp2p.Identity(gen.NodeKey(o.Seed, idx)),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.BandwidthReporter(bw),
	)
	if err != nil {
		return nil, fmt.Errorf("loopback host: %w", err)
	}
	probe := &syncProbe{next: o.Logger.With("node", name).Handler()}
	po := o
	po.Logger = slog.New(probe)
	nd, err := benchNode(dir, name, po, h)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &loopbackPeer{host: h, node: nd, bw: bw, probe: probe}, nil
}

func (p *loopbackPeer) close() {
	_ = p.node.Close()
	_ = p.host.Close()
}

// wireBytes returns the bytes sent and received so far. The counter's
// totals lag by up to a second (go-flow-metrics updates them once a
// second), so it waits that long first.
func (p *loopbackPeer) wireBytes() int64 {
	time.Sleep(1100 * time.Millisecond)
	t := p.bw.GetBandwidthTotals()
	return t.TotalIn + t.TotalOut
}

func (p *loopbackPeer) connect(ctx context.Context, q *loopbackPeer) error {
	return p.host.Connect(ctx, peer.AddrInfo{ID: q.host.ID(), Addrs: q.host.Addrs()})
}

// records returns how many records of a commons the node holds.
func records(ctx context.Context, nd *node.Node, id string) int {
	st, err := nd.Status(ctx)
	if err != nil {
		return -1
	}
	for _, c := range st.Commons {
		if c.ID == id {
			return c.Records
		}
	}
	return 0
}

// waitRecords waits until the node holds want records of the commons,
// checking every millisecond.
func waitRecords(ctx context.Context, nd *node.Node, id string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for records(ctx, nd, id) < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d records after %v", records(ctx, nd, id), want, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Join has a fresh node sync a commons of N records from one peer over
// loopback TCP, and compares with a local import of the same CAR and with
// the records' own size.
func Join(ctx context.Context, o Options) (*Result, error) {
	o.fill(10_000, 0)
	res := newResult("join", o.Records)
	g, car, err := o.commons(true)
	if err != nil {
		return nil, err
	}
	dir, cleanup, err := o.tempDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	a, err := newLoopbackPeer(dir, "a", 1, o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	start := time.Now()
	if _, err := a.node.Import(ctx, bytes.NewReader(car), true); err != nil {
		return nil, err
	}
	imported := time.Since(start)
	id := g.ID.String()
	if got := records(ctx, a.node, id); got != o.Records {
		return nil, fmt.Errorf("the serving node imported %d of %d records", got, o.Records)
	}

	b, err := newLoopbackPeer(dir, "b", 2, o)
	if err != nil {
		return nil, err
	}
	defer b.close()
	if err := b.node.Join(ctx, id); err != nil {
		return nil, err
	}
	start = time.Now() // b's host has had no traffic yet
	if err := b.connect(ctx, a); err != nil {
		return nil, err
	}
	if err := waitRecords(ctx, b.node, id, o.Records, 30*time.Minute); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	took := time.Since(start)
	wire := b.wireBytes()
	size := g.Bytes()
	res.add("join", took.Seconds(), "s")
	res.add("baseline: local import of the CAR", imported.Seconds(), "s")
	res.add("join / local import", took.Seconds()/imported.Seconds(), "x")
	res.add("bytes on the wire", float64(wire), "B")
	res.add("records' own size", float64(size), "B")
	res.add("wire / records' size", float64(wire)/float64(size), "x")
	addRoundTrips(res, "", a, b)
	return res, nil
}

// Repair gives two nodes the same N records but for a fraction each
// misses of the other's, connects them, and measures the bytes on the wire
// until both hold everything, over the size of the missing records. It
// runs for 1% and 0.01%.
func Repair(ctx context.Context, o Options) (*Result, error) {
	o.fill(10_000, 0)
	res := newResult("repair", o.Records)
	g, _, err := o.commons(false)
	if err != nil {
		return nil, err
	}
	dir, cleanup, err := o.tempDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	for k, frac := range []float64{0.01, 0.0001} {
		label := fmt.Sprintf("%g%%", frac*100)
		if err := repairOnce(ctx, o, g, dir, k, frac, label, res); err != nil {
			return nil, fmt.Errorf("repair %s: %w", label, err)
		}
	}
	return res, nil
}

func repairOnce(ctx context.Context, o Options, g *gen.Generated, dir string, k int, frac float64, label string, res *Result) error {
	miss := max(1, int(float64(len(g.Records)-1)*frac))
	// Records 1.. are split: every step-th one is missing on a, the one
	// after it on b; the genesis is on both.
	step := max(2, (len(g.Records)-1)/miss)
	var rawA, rawB [][]byte
	missing := 0
	for i, raw := range g.Records {
		switch {
		case i > 0 && i%step == 0 && i/step <= miss:
			rawB = append(rawB, raw)
			missing += len(raw)
		case i > 0 && i%step == 1 && i/step <= miss:
			rawA = append(rawA, raw)
			missing += len(raw)
		default:
			rawA = append(rawA, raw)
			rawB = append(rawB, raw)
		}
	}
	a, err := newLoopbackPeer(dir, fmt.Sprintf("ra%d", k), 10+2*k, o)
	if err != nil {
		return err
	}
	defer a.close()
	b, err := newLoopbackPeer(dir, fmt.Sprintf("rb%d", k), 11+2*k, o)
	if err != nil {
		return err
	}
	defer b.close()
	for _, x := range []struct {
		p    *loopbackPeer
		raws [][]byte
	}{{a, rawA}, {b, rawB}} {
		if _, err := sim.Deliver(ctx, x.p.node, x.raws...); err != nil {
			return err
		}
	}
	id := g.ID.String()
	start := time.Now() // a's host has had no traffic yet
	if err := a.connect(ctx, b); err != nil {
		return err
	}
	for _, p := range []*loopbackPeer{a, b} {
		if err := waitRecords(ctx, p.node, id, len(g.Records), 30*time.Minute); err != nil {
			return err
		}
	}
	took := time.Since(start)
	wire := a.wireBytes()
	res.add("repair "+label+": missing records", float64(2*len(g.Records)-len(rawA)-len(rawB)), "")
	res.add("repair "+label+": time", took.Seconds(), "s")
	res.add("repair "+label+": bytes on the wire", float64(wire), "B")
	res.add("repair "+label+": missing records' size", float64(missing), "B")
	res.add("repair "+label+": wire / missing size", float64(wire)/float64(missing), "x")
	addRoundTrips(res, "repair "+label+": ", a, b)
	return nil
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sortedDurations sorts a copy.
func sortedDurations(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
