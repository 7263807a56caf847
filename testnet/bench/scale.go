package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/commons-p2p/commons/node/api"
	"github.com/commons-p2p/commons/node/repo"
	"github.com/commons-p2p/commons/protocol"
)

// Scale measures a commons of o.Records records the way its users meet it,
// each step a process of the commons binary (o.Binary) so that memory is
// measured per process: generate it (streaming) to a CAR file, import it
// into a fresh repo, start a daemon on it, query it, and have a second
// daemon join it over loopback. Baseline: the bare batch verification of
// the same signatures on every core.
func Scale(ctx context.Context, o Options) (*Result, error) {
	o.fill(10_000, 0)
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("scale: the commons binary: %w", err)
		}
		o.Binary = exe
	}
	res := newResult("scale", o.Records)
	if o.CAR == "" {
		res.note("seed %d: it draws the commons generated, and the contributions and feed pages queried (--seed)", o.Seed)
	} else {
		res.note("seed %d: it draws the contributions and feed pages queried (--seed)", o.Seed)
	}
	dir, cleanup, err := o.tempDir()
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		defer cleanup()
	}
	s := &scale{o: o, res: res, dir: dir, car: filepath.Join(dir, "commons.car"), repo: filepath.Join(dir, "a")}
	defer s.stop()
	steps := []func(context.Context) error{s.generate, s.verifyBaseline, s.importCAR, s.serve, s.query, s.join}
	switch {
	case o.Imported != "" && o.CAR == "":
		return nil, errors.New("scale: --imported needs --car, the CAR whose records the repo holds (for their bytes and the contributions looked up)")
	case o.Imported != "":
		if _, err := os.Stat(filepath.Join(o.Imported, "store")); err != nil {
			return nil, fmt.Errorf("scale: --imported %s: not a repo with a store: %w", o.Imported, err)
		}
		s.car, s.repo = o.CAR, o.Imported
		steps = []func(context.Context) error{s.verifyBaseline, s.serve, s.query, s.join}
	case o.CAR != "":
		s.car = o.CAR
		steps = steps[1:]
	}
	if o.Keep {
		// What is kept where: with --car, the CAR is the one given; with
		// --imported, the repo too.
		kept := fmt.Sprintf("the CAR (%s), the imported repo (%s)", s.car, s.repo)
		if !o.NoJoin {
			kept += fmt.Sprintf(" and the joining one (%s)", filepath.Join(dir, "b"))
		}
		res.Notes = append(res.Notes, "kept: "+kept)
	}
	if o.NoJoin {
		steps = steps[:len(steps)-1]
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// scale is one run of Scale.
type scale struct {
	o        Options
	res      *Result
	dir      string
	car      string
	repo     string    // the repo imported into, and started
	id       string    // the commons ID
	bytes    int64     // the records' bytes
	sample   []cid.Cid // contributions to look up
	verify   float64   // baseline records/s
	imported time.Duration
	daemons  []*daemonProc
}

// generate writes the commons with "commons testnet gen".
func (s *scale) generate(ctx context.Context) error {
	authors := max(50, s.o.Records/2000)
	p, err := s.run(ctx, "", "testnet", "gen", "--records", strconv.Itoa(s.o.Records), "--authors", strconv.Itoa(authors),
		"--seed", strconv.FormatUint(s.o.Seed, 10), "--no-payloads", "--out", s.car)
	if err != nil {
		return err
	}
	s.id = strings.TrimSpace(p.out)
	s.res.add("gen", p.took.Seconds(), "s")
	s.res.add("gen peak RSS", p.peakMB, "MB")
	s.res.add("gen peak RSS, anonymous", p.peakAnonMB, "MB")
	return nil
}

// verifyBaseline reads the CAR back and batch-verifies every signature on
// every core, keeping a sample of contributions to look up later.
func (s *scale) verifyBaseline(context.Context) error {
	f, err := os.Open(s.car)
	if err != nil {
		return err
	}
	defer f.Close()
	br, err := carv2.NewBlockReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("scale: read CAR: %w", err)
	}
	if s.o.CAR != "" { // the commons is the CAR's root, as generated or exported
		if len(br.Roots) != 1 {
			return fmt.Errorf("scale: %s has %d roots; want one, the commons' ID", s.car, len(br.Roots))
		}
		s.id = br.Roots[0].String()
	}
	rng := rand.New(rand.NewPCG(s.o.Seed, 5))
	records := 0
	var blocks []*protocol.Block
	var took time.Duration
	flush := func() error {
		start := time.Now()
		err := verifyParallel(blocks)
		took += time.Since(start)
		blocks = blocks[:0]
		return err
	}
	seen := 0
	for {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("scale: read CAR: %w", err)
		}
		b, err := protocol.Parse(blk.RawData())
		if err != nil {
			return fmt.Errorf("scale: record %s: %w", blk.Cid(), err)
		}
		s.bytes += int64(len(b.Raw))
		records++
		if b.Record.Type() == protocol.TypeContribution {
			// A uniform sample of at most 500 (reservoir).
			if seen++; len(s.sample) < 500 {
				s.sample = append(s.sample, b.CID)
			} else if k := rng.IntN(seen); k < 500 {
				s.sample[k] = b.CID
			}
		}
		if blocks = append(blocks, b); len(blocks) == 4096 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if s.o.CAR != "" {
		s.o.Records = records
		s.res.Records = records
	}
	s.verify = float64(s.o.Records) / took.Seconds()
	s.res.add("verify baseline", s.verify, "records/s")
	return nil
}

// verifyParallel batch-verifies blocks in batches of 64 on every core.
func verifyParallel(blocks []*protocol.Block) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan []*protocol.Block)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bs := range next {
				for _, err := range protocol.VerifyBatch(bs) {
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			}
		}()
	}
	for i := 0; i < len(blocks); i += 64 {
		next <- blocks[i:min(i+64, len(blocks))]
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("scale: baseline: %w", err)
	default:
		return nil
	}
}

// importCAR imports the CAR into a fresh repo with "commons import", no
// daemon running.
func (s *scale) importCAR(ctx context.Context) error {
	r := s.repo
	if _, err := s.run(ctx, r, "init"); err != nil {
		return err
	}
	p, err := s.run(ctx, r, "import", "--join", s.car)
	if err != nil {
		return err
	}
	s.imported = p.took
	rate := float64(s.o.Records) / p.took.Seconds()
	s.res.add("import", p.took.Seconds(), "s")
	s.res.add("import rate", rate, "records/s")
	s.res.add("import/verify", rate/s.verify, "x")
	s.res.add("import peak RSS", p.peakMB, "MB")
	s.res.add("import peak RSS, anonymous", p.peakAnonMB, "MB")
	disk, err := dirBytes(filepath.Join(r, "store"))
	if err != nil {
		return err
	}
	s.res.add("disk/records", float64(disk)/float64(s.bytes), "x")
	return nil
}

// serve starts a daemon on the imported repo and times its start.
func (s *scale) serve(ctx context.Context) error {
	d, err := s.startDaemon(ctx, s.repo)
	if err != nil {
		return err
	}
	s.res.add("start", d.started.Seconds(), "s")
	m := d.memory()
	s.res.add("daemon RSS after start", m.rss, "MB")
	s.res.add("daemon RSS after start, anonymous", m.anon, "MB")
	s.res.add("daemon RSS after start, file pages", m.rss-m.anon, "MB")
	// The node releases the pages that opening the store mapped (the
	// tables' indexes) from the beginning of its start, and goes on
	// checking them: a second later, it holds what it holds settled.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	m = d.memory()
	s.res.add("daemon RSS a second after start", m.rss, "MB")
	s.res.add("daemon RSS a second after start, anonymous", m.anon, "MB")
	return nil
}

// query times status, contribution lookups and feed pages on the daemon.
func (s *scale) query(ctx context.Context) error {
	c := s.daemons[0].client
	rng := rand.New(rand.NewPCG(s.o.Seed, 7))
	const calls = 200
	pid := s.daemons[0].cmd.Process.Pid
	timed := func(name string, call func(i int) error) error {
		lat := make([]time.Duration, 0, calls)
		before, beforeErr := procDisk(pid)
		for i := range calls {
			start := time.Now()
			if err := call(i); err != nil {
				return fmt.Errorf("scale: %s: %w", name, err)
			}
			lat = append(lat, time.Since(start))
		}
		after, afterErr := procDisk(pid)
		slices.Sort(lat)
		s.res.add(name+" p50", ms(lat[calls/2]), "ms")
		s.res.add(name+" p99", ms(lat[calls*99/100]), "ms")
		if err := errors.Join(beforeErr, afterErr); err != nil {
			if runtime.GOOS == "linux" { // elsewhere, no /proc to read
				s.res.note("%s: the daemon's reads from the disk not counted: %v", name, err)
			}
			return nil
		}
		s.res.add(name+": daemon's page faults that read the disk, a call", float64(after.faults-before.faults)/calls, "")
		s.res.add(name+": daemon's reads from the disk, a call", float64(after.bytes-before.bytes)/calls/1024, "KiB")
		return nil
	}
	if err := timed("status", func(int) error { _, err := c.Status(ctx); return err }); err != nil {
		return err
	}
	if len(s.sample) == 0 {
		return errors.New("scale: the commons has no contribution to look up (more records, please)")
	}
	if err := timed("contribution", func(i int) error {
		_, err := c.Show(ctx, s.sample[i%len(s.sample)].String())
		return err
	}); err != nil {
		return err
	}
	if err := timed("feed page", func(int) error {
		_, err := c.Feed(ctx, api.FeedQuery{Commons: s.id, Since: uint64(rng.IntN(s.o.Records)), Limit: 100})
		return err
	}); err != nil {
		return err
	}
	m := s.daemons[0].memory()
	s.res.add("daemon RSS after queries", m.rss, "MB")
	s.res.add("daemon RSS after queries, anonymous", m.anon, "MB")
	return nil
}

// join has a second daemon, on a fresh repo, join the commons from the
// first over loopback, and times it until it holds every record.
func (s *scale) join(ctx context.Context) error {
	a := s.daemons[0]
	id, err := a.client.ID(ctx)
	if err != nil {
		return err
	}
	var boot string
	for _, addr := range id.Addresses {
		if strings.Contains(addr, "/ip4/127.0.0.1/tcp/") {
			boot = addr
		}
	}
	if boot == "" {
		return fmt.Errorf("scale: the first daemon has no loopback TCP address in %v", id.Addresses)
	}
	r := filepath.Join(s.dir, "b")
	if _, err := s.run(ctx, r, "init"); err != nil {
		return err
	}
	b, err := s.startDaemon(ctx, r, "--bootstrap", boot)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.client.Join(ctx, s.id); err != nil {
		return err
	}
	// As long as an import of the records, ten times over, and a minute;
	// with no import measured (--imported), 10 ms a record.
	limit := 10 * s.imported
	if limit == 0 {
		limit = time.Duration(s.o.Records) * 10 * time.Millisecond
	}
	deadline := start.Add(limit + time.Minute)
	var anon float64 // the joining daemon's peak anonymous memory, sampled
	// and its Go heap in use, sampled every second: what of the anonymous
	// memory is the heap's, and what is not (stacks, the heap's pages
	// freed and not yet returned).
	var heap float64
	var heapAt time.Time
	for {
		anon = max(anon, b.memory().anon)
		if time.Since(heapAt) >= time.Second {
			heapAt = time.Now()
			if h, ok := heapInUse(ctx, b.client); ok {
				heap = max(heap, h)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scale: the joining daemon did not get every record within %v", deadline.Sub(start).Round(time.Second))
		}
		select {
		case <-b.exited:
			return fmt.Errorf("scale: the joining daemon exited: %s", b.log.String())
		default:
		}
		st, err := b.client.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Commons) == 1 && st.Commons[0].Records == s.o.Records {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	took := time.Since(start)
	s.res.add("join", took.Seconds(), "s")
	if s.imported > 0 {
		s.res.add("join/import", took.Seconds()/s.imported.Seconds(), "x")
	}
	peak := b.memory().peak
	s.res.add("join peak RSS", peak, "MB")
	s.res.add("join peak RSS, anonymous", anon, "MB")
	if heap > 0 {
		s.res.add("join peak Go heap in use", heap, "MB")
	}
	return nil
}

// heapInUse returns the Go heap in use of the daemon c talks to, in MB,
// from its metrics (go_memstats_heap_inuse_bytes); ok is false if they
// cannot be read.
func heapInUse(ctx context.Context, c *api.Client) (float64, bool) {
	b, err := c.Metrics(ctx)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f / (1 << 20), err == nil
	}
	return 0, false
}

// proc is a finished process of the commons binary.
type proc struct {
	took       time.Duration
	peakMB     float64 // resident, pages of mapped files included (getrusage)
	peakAnonMB float64 // anonymous, sampled
	out        string
}

// run runs the commons binary on repo r (none if "") and waits for it,
// sampling its anonymous memory as it runs.
func (s *scale) run(ctx context.Context, r string, args ...string) (proc, error) {
	if r != "" {
		args = append([]string{"--repo", r}, args...)
	}
	cmd := exec.CommandContext(ctx, s.o.Binary, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Start()
	var p proc
	if err == nil {
		sampled := make(chan float64, 1)
		done := make(chan struct{})
		go func() { sampled <- peakAnon(cmd.Process.Pid, done) }()
		err = cmd.Wait()
		close(done)
		p.peakAnonMB = <-sampled
	}
	p.took, p.out = time.Since(start), stdout.String()
	if err != nil {
		return p, fmt.Errorf("scale: commons %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	p.peakMB = peakMB(cmd.ProcessState)
	return p, nil
}

// peakAnon samples process pid's anonymous memory every 100 ms until done
// is closed, and returns the largest sample in MB.
func peakAnon(pid int, done <-chan struct{}) float64 {
	var peak float64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		peak = max(peak, procStatus(pid).anon)
		select {
		case <-done:
			return peak
		case <-t.C:
		}
	}
}

// daemonProc is a running daemon.
type daemonProc struct {
	cmd     *exec.Cmd
	client  *api.Client
	started time.Duration   // until its API answered
	exited  chan struct{}   // closed once it has exited
	log     strings.Builder // its standard error, for errors
}

// startDaemon starts "commons daemon" on repo r, listening on loopback,
// and waits until its API answers.
func (s *scale) startDaemon(ctx context.Context, r string, extra ...string) (*daemonProc, error) {
	args := append([]string{"--repo", r, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0"}, extra...)
	cmd := exec.Command(s.o.Binary, args...)
	cmd.Env = append(os.Environ(), "COMMONS_MDNS=false", "COMMONS_DHT=off")
	cmd.SysProcAttr = daemonAttr() // dies with this process
	d := &daemonProc{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &lockedWriter{b: &d.log}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scale: start daemon: %w", err)
	}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	s.daemons = append(s.daemons, d)
	rp, err := repo.OpenRepo(r)
	if err != nil {
		return nil, err
	}
	for {
		if addr, token, ok := rp.API(); ok {
			c := api.NewClient(addr, token)
			if c.Ping(ctx) == nil {
				d.client, d.started = c, time.Since(start)
				return d, nil
			}
		}
		if time.Since(start) > 10*time.Minute {
			return nil, errors.New("scale: the daemon's API did not answer within 10 minutes")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-d.exited:
			return nil, fmt.Errorf("scale: the daemon exited before its API answered: %s", d.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// procMemory is a process' memory in MB: resident, of it anonymous (the
// heap, stacks; the rest is pages of mapped files, such as badger's tables,
// which the kernel can drop), and the peak resident.
type procMemory struct{ rss, anon, peak float64 }

// memory returns the daemon's memory (Linux: /proc; elsewhere zeros).
func (d *daemonProc) memory() procMemory { return procStatus(d.cmd.Process.Pid) }

// procStatus returns process pid's memory (Linux: /proc; elsewhere, or once
// it has exited, zeros).
func procStatus(pid int) (m procMemory) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb / 1024
		case "RssAnon:":
			m.anon = kb / 1024
		case "VmHWM:":
			m.peak = kb / 1024
		}
	}
	return m
}

// diskReads is what a process has read from the disk: its page faults
// that read a page from a file on it (major faults: badger reads its
// tables and value log through memory mappings), and the bytes it had the
// storage device read (read ahead, and the blocks the store asks for,
// included).
type diskReads struct{ faults, bytes uint64 }

// procDisk returns process pid's reads from the disk (Linux: /proc), or an
// error if /proc does not give them.
func procDisk(pid int) (diskReads, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return diskReads{}, err
	}
	pio, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return diskReads{}, err
	}
	faults, err := majorFaults(string(stat))
	if err != nil {
		return diskReads{}, err
	}
	bytes, err := readBytes(string(pio))
	if err != nil {
		return diskReads{}, err
	}
	return diskReads{faults, bytes}, nil
}

// majorFaults returns the major faults a /proc/PID/stat line counts: its
// 12th field, the 10th after the command's name, which is in parentheses
// and may hold spaces and parentheses itself (proc_pid_stat(5)).
func majorFaults(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/PID/stat: no command name in %.40q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 10 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the command name, want 10 or more", len(f))
	}
	n, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: major faults: %w", err)
	}
	return n, nil
}

// readBytes returns the read_bytes that /proc/PID/io gives.
func readBytes(pio string) (uint64, error) {
	for _, line := range strings.Split(pio, "\n") {
		if v, ok := strings.CutPrefix(line, "read_bytes:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/PID/io: read_bytes: %w", err)
			}
			return n, nil
		}
	}
	return 0, errors.New("/proc/PID/io: no read_bytes")
}

// stop stops the daemons and waits for them.
func (s *scale) stop() {
	for _, d := range s.daemons {
		_ = d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	s.daemons = nil
}

// lockedWriter is a strings.Builder safe to write from the process' copier
// while another goroutine reads it.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 64<<10 {
		return len(p), nil // keep the start: enough to say why
	}
	return w.b.Write(p)
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	return total, err
}
