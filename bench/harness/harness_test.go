package harness

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// The open-loop scheduler issues requests at their scheduled times while
// the handler is slow, as long as in-flight slots are free: the slow
// handlers overlap (about 40 at once at 2,000/s × 20 ms) instead of
// holding the schedule back. Were the sends to wait for each other, 800
// sends of 20 ms would take 16 s and the median send would be seconds
// late; the bounds below tell the two apart with room for a busy machine.
func TestSchedulerSendsOnTime(t *testing.T) {
	start := time.Now().Add(10 * time.Millisecond)
	s := &scheduler{start: start, end: start.Add(400 * time.Millisecond), per: 1, inflight: 64, timeout: time.Second,
		rate: func(time.Duration) float64 { return 2000 }}
	var mu sync.Mutex
	var late []time.Duration
	var offered, expired, running, peak atomic.Int64
	s.run(context.Background(), func(time.Time) { offered.Add(1) }, func(_ int, intended time.Time) {
		d := time.Since(intended)
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		mu.Lock()
		late = append(late, d)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a slow handler
		running.Add(-1)
	}, func(time.Time) { expired.Add(1) })
	if n := len(late); n < 790 || n > 810 || offered.Load() != int64(n) || expired.Load() != 0 {
		t.Fatalf("sent %d, offered %d, expired %d; want 800 sent", n, offered.Load(), expired.Load())
	}
	if p := peak.Load(); p < 10 {
		t.Errorf("at most %d handlers ran at once; the sends waited for each other", p)
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	if p50 := late[len(late)/2]; p50 > 500*time.Millisecond {
		t.Errorf("median lateness of the send against its schedule %v, want far below the 16 s of serial sends", p50)
	}
}

// The rate profile's burst multiplies the base rate inside its window.
func TestRateProfileBurst(t *testing.T) {
	p := rateProfile{base: 100, factor: 10, burstAt: time.Second, burstFor: time.Second}
	for el, want := range map[time.Duration]float64{0: 100, time.Second: 1000, 1500 * time.Millisecond: 1000, 2 * time.Second: 100} {
		if got := p.at(el); got != want {
			t.Errorf("at %v: %v, want %v", el, got, want)
		}
	}
}

// stubGateway answers POST /v1/messages with a 202 at once, except during
// the stall, when every request waits until the stall ends.
func stubGateway(t *testing.T, stallFrom, stallTo time.Time) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if now := time.Now(); now.After(stallFrom) && now.Before(stallTo) {
			time.Sleep(time.Until(stallTo))
		}
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		ctx.SetBodyString(`{"id":"msg_` + strconv.FormatInt(n.Add(1), 10) + `","status":"accepted","segments":1}`)
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

// runStalled runs 3 s at 1,000/s open loop, with a request timeout of
// timeout, against a stub gateway that stalls from 0.8 s to 1.8 s.
func runStalled(t *testing.T, timeout time.Duration) *loadResult {
	t.Helper()
	t0 := time.Now()
	addr := stubGateway(t, t0.Add(800*time.Millisecond), t0.Add(1800*time.Millisecond))
	g := newGen(nil, 10, []string{"s"})
	return runLoad(context.Background(), loadOpts{addr: addr, driver: newSwitchboardDriver(addr, g), profile: rateProfile{base: 1000},
		duration: 3 * time.Second, timeout: timeout, conns: 8, inflight: 8, batch: 1, gen: g, out: io.Discard, quiet: true})
}

// A gateway stall shows up in the latencies of every request scheduled
// during it (measured from the intended send time), not only in the few
// that were in flight: no coordinated omission. The stall is long (1 s of
// a 3 s run) so that what it does stands out from a busy machine's delays.
func TestLoadStallShowsInLatency(t *testing.T) {
	res := runStalled(t, 5*time.Second)
	h := res.accept
	if h.TotalCount() < 2970 {
		t.Fatalf("%d latencies, want ~3000", h.TotalCount())
	}
	if res.c.wAccepted.Load() != h.TotalCount() {
		t.Errorf("accepted %d, latencies %d", res.c.wAccepted.Load(), h.TotalCount())
	}
	// ~1000 requests were scheduled during the 1 s stall, waiting from up
	// to 1 s down to 0: about 30 % of the run is above 100 ms.
	if m := h.Max(); m < 900_000 {
		t.Errorf("max %dµs, want the 1 s stall", m)
	}
	if v := h.ValueAtQuantile(75); v < 100_000 {
		t.Errorf("p75 %dµs: the stall is hidden (coordinated omission)", v)
	}
	if v := h.ValueAtQuantile(50); v > 500_000 {
		t.Errorf("p50 %dµs: the requests outside the stall should not carry it", v)
	}
}

// Requests that are not accepted (never sent, over --timeout late, or not
// answered in time) count in the accept latency at its top, not as if
// they had not been made: a stall longer than the timeout shows in the
// p99 as 10 s, where the accepted requests alone read under a second.
func TestRequestsNotAcceptedCountInTheLatency(t *testing.T) {
	res := runStalled(t, 300*time.Millisecond)
	notAccepted := res.c.wExpired.Load() + res.c.wTransport.Load() + res.c.wRejected.Load()
	if notAccepted < 100 {
		t.Fatalf("%d requests not accepted, want the stall's (~1000 over the timeout)", notAccepted)
	}
	if v := res.accept.ValueAtQuantile(99); v < neverAccepted*99/100 {
		t.Fatalf("p99 %dµs with %d of %d requests not accepted, want the top, %dµs", v, notAccepted, res.c.wOffered.Load(), neverAccepted)
	}
}

// The run's histogram is the merge of the per-second ones: the same count,
// percentiles and max as one histogram of every in-window sample.
func TestHistogramMerge(t *testing.T) {
	l := newLatencies(histMax)
	run, direct := newHist(), newHist()
	var all int64
	r := rand.New(rand.NewPCG(1, 2))
	for second := range 5 {
		for i := range 10_000 {
			us := 1 + int64(r.ExpFloat64()*2000) + int64(second*1000)
			in := i%10 != 0 // a tenth outside the window (warm-up)
			l.record(i, us, in)
			if in {
				direct.RecordValue(us)
			}
			all++
		}
		sec, win := l.take()
		if sec.TotalCount() != 10_000 || win.TotalCount() != 9_000 {
			t.Fatalf("second %d: %d samples, %d in window", second, sec.TotalCount(), win.TotalCount())
		}
		run.Merge(win)
	}
	if run.TotalCount() != direct.TotalCount() || run.Max() != direct.Max() || run.Min() != direct.Min() {
		t.Errorf("merged: n %d max %d min %d; direct: n %d max %d min %d",
			run.TotalCount(), run.Max(), run.Min(), direct.TotalCount(), direct.Max(), direct.Min())
	}
	for _, q := range []float64{50, 90, 99, 99.9} {
		if a, b := run.ValueAtQuantile(q), direct.ValueAtQuantile(q); a != b {
			t.Errorf("p%v: merged %d, direct %d", q, a, b)
		}
	}
	if sec, _ := l.take(); sec.TotalCount() != 0 {
		t.Errorf("take did not reset: %d left", sec.TotalCount())
	}
	p := percentilesOf(run)
	if p.N != run.TotalCount() || p.P99 != float64(run.ValueAtQuantile(99))/1000 {
		t.Errorf("percentiles %+v", p)
	}
}

// The plot is SVG that parses as XML, with one series per rate and
// percentile, each with a point a second.
func TestPlot(t *testing.T) {
	var tl []sample
	for i := range 30 {
		s := sample{T: float64(i + 1), Offered: 10000, Accepted: 9990, Delivered: int64(9000 + i*30),
			Accept: percentiles{N: 100, P50: 1.2, P90: 4, P99: 12 + float64(i), P999: 40, Max: 90}}
		if i == 10 {
			s.Accept = percentiles{} // a second without answers: a gap
		}
		tl = append(tl, s)
	}
	var b bytes.Buffer
	if err := writePlot(&b, "test <&> plot", tl); err != nil {
		t.Fatal(err)
	}
	type polyline struct {
		Points string `xml:"points,attr"`
	}
	type group struct {
		ID    string     `xml:"id,attr"`
		Lines []polyline `xml:"polyline"`
		Gs    []group    `xml:"g"`
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
		Gs      []group  `xml:"g"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b.String())
	}
	points := map[string]int{}
	var walk func([]group)
	walk = func(gs []group) {
		for _, g := range gs {
			if id, ok := strings.CutPrefix(g.ID, "series-"); ok {
				for _, l := range g.Lines {
					points[id] += len(strings.Fields(l.Points))
				}
			}
			walk(g.Gs)
		}
	}
	walk(doc.Gs)
	for _, s := range rateSeries {
		if points[s.name] != 30 {
			t.Errorf("series %s: %d points, want 30", s.name, points[s.name])
		}
	}
	for _, s := range latencySeries {
		if points[s.name] != 29 {
			t.Errorf("series %s: %d points, want 29 (one second without answers)", s.name, points[s.name])
		}
	}
}

// Every scenario file loads and passes the checks; an explicit flag
// overrides the file; an unknown setting is an error.
func TestScenariosLoad(t *testing.T) {
	files, err := filepath.Glob("../scenarios/*.yaml")
	if err != nil || len(files) < 7 {
		t.Fatalf("scenarios: %v %v", files, err)
	}
	for _, f := range files {
		var s settings
		fs := flags(&s)
		if err := fs.Parse([]string{"--duration", "10s"}); err != nil {
			t.Fatal(err)
		}
		name, _, err := loadScenario(fs, f, map[string]bool{"duration": true})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if name+".yaml" != filepath.Base(f) {
			t.Errorf("%s: name %q", f, name)
		}
		if s.duration != 10*time.Second {
			t.Errorf("%s: --duration 10s overridden by the file: %v", f, s.duration)
		}
		if err := s.check(map[string]bool{"duration": true}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	var s settings
	fs := flags(&s)
	_, _, err = loadScenario(fs, "../scenarios/ramp.yaml", nil)
	if err != nil || s.rampStep != 2000 || s.rampStepFor != 10*time.Second || s.rampP99 != 50*time.Millisecond {
		t.Errorf("ramp: %v, step %v for %v p99 %v", err, s.rampStep, s.rampStepFor, s.rampP99)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rate: 5\nrat: 6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadScenario(flags(&settings{}), bad, nil); err == nil || !strings.Contains(err.Error(), "rat") {
		t.Errorf("unknown setting: %v", err)
	}
}

// The Kannel driver asks for delivered and failed reports at the sink,
// with %d left for Kannel, and accepts only Kannel's success answers.
func TestKannelDriver(t *testing.T) {
	g := newGen(nil, 1, nil)
	d := newKannelDriver("http://127.0.0.1:13013", "u", "p w", "http://127.0.0.1:9999", g)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	d.build(req, nil, rand.New(rand.NewPCG(1, 1)), 42, 1)
	uri := req.URI()
	if string(req.Header.Method()) != "GET" || string(uri.Path()) != "/cgi-bin/sendsms" {
		t.Fatalf("%s %s", req.Header.Method(), uri.String())
	}
	args := uri.QueryArgs()
	for k, want := range map[string]string{"username": "u", "password": "p w", "dlr-mask": "3",
		"dlr-url": "http://127.0.0.1:9999/kannel?n=42&status=%d", "to": g.dests[0]} {
		if got := string(args.Peek(k)); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	for _, c := range []struct {
		code int
		body string
		ok   bool
	}{{202, "0: Accepted for delivery", true}, {202, "3: Queued for later delivery", true},
		{202, "Garbage", false}, {403, "Authorization failed for sendsms", false}} {
		resp.SetStatusCode(c.code)
		resp.SetBodyString(c.body)
		ids, _ := d.accepted(resp, 42, 1, nil)
		if (len(ids) == 1 && ids[0] == "kannel-42") != c.ok {
			t.Errorf("%d %q: %v", c.code, c.body, ids)
		}
	}
}

// A batch answer's accepted items are read with their parts; rejected
// ones are not.
func TestScanAccepted(t *testing.T) {
	body := `{"results":[{"index":0,"id":"msg_a","status":"accepted","segments":2},` +
		`{"index":1,"error":{"code":"invalid","message":"bad"}},{"index":2,"id":"msg_b","segments":1}],"accepted":2,"rejected":1}`
	ids, parts := scanAccepted([]byte(body), nil)
	if strings.Join(ids, ",") != "msg_a,msg_b" || parts != 3 {
		t.Errorf("ids %v parts %d", ids, parts)
	}
}

// CPU per message is the measured process's CPU in the window over what was
// delivered in it; nothing delivered, or no process measured, is no figure.
func TestCPUPerMsg(t *testing.T) {
	begin := time.Now()
	r := &loadResult{opts: loadOpts{gw: self, tracker: newTracker()}, c: &loadCounters{},
		begin: edge{usage: usage{at: begin, cpu: time.Second}, finals: 100},
		end:   edge{usage: usage{at: begin.Add(10 * time.Second), cpu: 3 * time.Second}, finals: 20100}}
	if us, what := r.cpuPerMsg(); us != 100 || what != "message delivered (final callback)" {
		t.Errorf("cpuPerMsg = %v %q, want 100 µs per delivered message (2 s over 20,000)", us, what)
	}
	r.end.finals = r.begin.finals
	if us, what := r.cpuPerMsg(); us != 0 || what != "" {
		t.Errorf("nothing delivered: cpuPerMsg = %v %q, want no figure", us, what)
	}
	r.opts.tracker = nil
	r.c.dAccepted.Store(4000)
	if us, what := r.cpuPerMsg(); us != 500 || what != "message accepted" {
		t.Errorf("no sink: cpuPerMsg = %v %q, want 500 µs per accepted message", us, what)
	}
	r.opts.gw = ""
	if us, _ := r.cpuPerMsg(); us != 0 {
		t.Errorf("no process measured: cpuPerMsg = %v, want 0", us)
	}
}

// --pid takes one PID or several, whose CPU and memory are summed.
func TestPIDs(t *testing.T) {
	for s, want := range map[string]bool{"": true, "12": true, "12,34": true, "x": false, "12,": false, "0": false, "-3": false} {
		if got := validPIDs(s); got != want {
			t.Errorf("validPIDs(%q) = %v, want %v", s, got, want)
		}
	}
	me := strconv.Itoa(os.Getpid())
	one, two := proc(me), proc(me+","+me)
	if rss1, rss2 := one.statusKB("VmRSS"), two.statusKB("VmRSS"); rss1 <= 0 || rss2 < 2*rss1*9/10 || rss2 > 2*rss1*11/10 {
		t.Errorf("VmRSS of %s twice = %d kB, want about twice %d kB", me, rss2, rss1)
	}
	if c := two.cpuTime(); c < one.cpuTime() {
		t.Errorf("CPU of %s twice = %v, below once", me, c)
	}
	if proc("999999999").statusKB("VmRSS") != -1 {
		t.Error("a process that does not exist has figures")
	}
}

// The gateway binary gets --log-level through its cluster.yaml, and a
// flag it has no setting for is refused rather than silently ignored.
func TestGatewayBinTakesOnlyWhatItCanHonour(t *testing.T) {
	for _, tc := range []struct {
		log  zerolog.Logger
		want string
	}{
		{zerolog.New(io.Discard).Level(zerolog.InfoLevel), "log: {level: info, format: json}"},
		{zerolog.New(io.Discard).Level(zerolog.DebugLevel), "log: {level: debug, format: json}"},
		{zerolog.Nop(), "log: {level: warn, format: json}"},
	} {
		yaml, _ := gatewayYAML(nodeConfig{keys: 1, binds: 1, window: 1, log: tc.log}, "127.0.0.1:1")
		if !strings.Contains(yaml, tc.want) {
			t.Errorf("level %v: cluster.yaml lacks %q:\n%s", tc.log.GetLevel(), tc.want, yaml)
		}
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"--gateway-bin", "build", "--key-window", "5"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--key-window") {
		t.Fatalf("--key-window with --gateway-bin: exit %d, stderr %q; want 2 naming the flag", code, errOut.String())
	}
}

// --data-dir may name a directory that does not exist yet: the store
// needs it created, and the gateway binary's cluster.yaml is written
// beside it. One that holds files is refused rather than mixed into.
func TestStoreDirCreatesAnAbsentDirectory(t *testing.T) {
	absent := filepath.Join(t.TempDir(), "store")
	r := &rig{s: settings{dataDir: absent}, out: io.Discard, cl: &cleanups{}}
	dir, err := r.storeDir()
	if err != nil {
		t.Fatalf("storeDir: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s after storeDir: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.storeDir(); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("storeDir on a directory with a file: %v, want a not-empty error", err)
	}
}

// seqDriver is the Switchboard driver, remembering the sequence numbers
// it was given.
type seqDriver struct {
	driver
	mu   sync.Mutex
	seqs map[int64]int
}

func (d *seqDriver) build(req *fasthttp.Request, buf []byte, r *rand.Rand, seq int64, n int) []byte {
	d.mu.Lock()
	d.seqs[seq]++
	d.mu.Unlock()
	return d.driver.build(req, buf, r, seq, n)
}

// A ramp's steps number their messages on from one another: drivers whose
// message ids come from the numbers (Kannel's) would otherwise give a
// later step's messages ids whose receipts the sink saw in an earlier
// step, and count them lost.
func TestRampNumbersMessagesAcrossSteps(t *testing.T) {
	addr := stubGateway(t, time.Time{}, time.Time{})
	g := newGen(nil, 10, []string{"s"})
	d := &seqDriver{driver: newSwitchboardDriver(addr, g), seqs: map[int64]int{}}
	// Steps of a second after a warm-up, whose answers landing in the
	// window make up for the window's last ones landing after it: a
	// step is judged behind only if answers fall behind as it goes.
	o := loadOpts{addr: addr, driver: d, timeout: 5 * time.Second, conns: 4, inflight: 4, batch: 1, gen: g,
		warmup: 200 * time.Millisecond, out: io.Discard, quiet: true}
	s := settings{rampStart: 100, rampStep: 100, rampMax: 200, rampStepFor: time.Second, rampP99: time.Second}
	rr := runRamp(context.Background(), o, s, func() sinkCounts { return sinkCounts{} })
	if len(rr.Steps) != 2 {
		t.Fatalf("%d steps, want 2 (%s)", len(rr.Steps), rr.Stopped)
	}
	for seq, n := range d.seqs {
		if n > 1 {
			t.Fatalf("sequence number %d given to %d messages", seq, n)
		}
	}
	if len(d.seqs) < 300 {
		t.Fatalf("%d messages numbered, want the two steps' (about 360)", len(d.seqs))
	}
}
