package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// The load phase: POST /v1/messages, open loop (a constant rate, each
// request with an intended send time, latency measured from it) or closed
// loop (--rate 0: --conns workers back to back).

type loadOpts struct {
	addr       string // host:port of the gateway
	rate       float64
	warmup     time.Duration
	duration   time.Duration
	timeout    time.Duration // per request; also how late an unsent request may be before it is given up
	conns      int
	inflight   int
	gen        *gen
	cpuProfile string
	node       *node // nil with --target: no delivered figures
}

// counters of the load phase. The w* ones count requests whose intended
// (closed loop: actual) send time is in the measured window.
type loadCounters struct {
	sent, accepted, acceptedParts, transport, expired atomic.Int64
	status                                            [600]atomic.Int64

	wOffered, wAccepted, wAcceptedParts, wTransport, wExpired atomic.Int64
	wStatus                                                   [600]atomic.Int64

	// dAccepted counts 202s answered during the window, whatever their
	// intended time: what the gateway actually served in it.
	dAccepted atomic.Int64
	iAccepted atomic.Int64 // since the last progress line
	inflight  atomic.Int64
}

// windowSample is taken at the start and at the end of the measured window.
type windowSample struct {
	usage    usage
	receipts int64
}

type loadResult struct {
	opts                 loadOpts
	c                    *loadCounters
	hist                 *hdrhistogram.Histogram
	begin, end           windowSample
	backlogAtEnd         int64 // accepted parts not yet receipted when the window ended
	stopped              time.Time
	rssEnd, hwm          float64
	drained              bool
	drainLimit           time.Duration
	drainTime            time.Duration
	receipts, lost, dups int64
	submits              int64
}

func newClient(addr string, conns int, timeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                     addr,
		MaxConns:                 conns,
		MaxConnWaitTimeout:       timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
	}
}

func runLoad(o loadOpts, drain time.Duration) (*loadResult, error) {
	hc := newClient(o.addr, o.conns, o.timeout)
	defer hc.CloseIdleConnections()
	c := &loadCounters{}
	lat := newLatencies()
	url := "http://" + o.addr + "/v1/messages"
	res := &loadResult{opts: o, c: c, drainLimit: drain}

	start := time.Now().Add(20 * time.Millisecond)
	mStart := start.Add(o.warmup)
	mEnd := mStart.Add(o.duration)

	// do sends one request whose send time is intended (open loop) or now
	// (closed loop) and accounts for it.
	do := func(w int, req *fasthttp.Request, resp *fasthttp.Response, buf []byte, r *rand.Rand, intended time.Time) []byte {
		inWin := !intended.Before(mStart) && intended.Before(mEnd)
		var parts int
		buf, parts = o.gen.appendMessage(buf[:0], r)
		req.SetBodyRaw(buf)
		req.Header.SetBytesV("Authorization", o.gen.auths[o.gen.key(r)])
		c.inflight.Add(1)
		c.sent.Add(1)
		err := hc.DoTimeout(req, resp, o.timeout)
		done := time.Now()
		c.inflight.Add(-1)
		if err != nil {
			c.transport.Add(1)
			if inWin {
				c.wTransport.Add(1)
			}
			return buf
		}
		code := min(max(resp.StatusCode(), 0), len(c.status)-1)
		c.status[code].Add(1)
		if inWin {
			c.wStatus[code].Add(1)
		}
		if code != fasthttp.StatusAccepted {
			return buf
		}
		c.accepted.Add(1)
		c.acceptedParts.Add(int64(parts))
		c.iAccepted.Add(1)
		if !done.Before(mStart) && done.Before(mEnd) {
			c.dAccepted.Add(1)
		}
		if inWin {
			c.wAccepted.Add(1)
			c.wAcceptedParts.Add(int64(parts))
		}
		lat.record(w, done.Sub(intended).Microseconds(), inWin)
		return buf
	}

	newReq := func() (*fasthttp.Request, *fasthttp.Response) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(url)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		return req, resp
	}

	var workers sync.WaitGroup
	seed := rand.Uint64()
	// worker runs one sender goroutine with its own request, response,
	// buffer and random source; loop decides when it sends.
	worker := func(w int, loop func(send func(t time.Time))) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			req, resp := newReq()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			buf := make([]byte, 0, 1024)
			loop(func(t time.Time) { buf = do(w, req, resp, buf, r, t) })
		}()
	}
	if o.rate > 0 {
		// Open loop. The scheduler hands out intended times up to
		// lookahead early; a worker sleeps until its request's time. When
		// every worker is busy, requests wait in the channel and keep
		// their intended time, so the wait shows in their latency.
		const lookahead = time.Millisecond
		jobs := make(chan time.Time, 1<<16)
		go func() {
			defer close(jobs)
			interval := float64(time.Second) / o.rate
			for i := int64(0); ; i++ {
				t := start.Add(time.Duration(float64(i) * interval))
				if !t.Before(mEnd) {
					return
				}
				if d := time.Until(t); d > lookahead {
					time.Sleep(d - lookahead/2)
				}
				if !t.Before(mStart) {
					c.wOffered.Add(1)
				}
				jobs <- t
			}
		}()
		for w := range o.inflight {
			worker(w, func(send func(t time.Time)) {
				for t := range jobs {
					late := time.Since(t)
					if late > o.timeout {
						// Never sent: far behind schedule (the run would
						// otherwise not end). Counted, and loud in the summary.
						c.expired.Add(1)
						if !t.Before(mStart) {
							c.wExpired.Add(1)
						}
						continue
					}
					if late < 0 {
						time.Sleep(-late)
					}
					send(t)
				}
			})
		}
	} else {
		// Closed loop: each worker sends its next request when the last
		// one is answered.
		for w := range o.conns {
			worker(w, func(send func(t time.Time)) {
				time.Sleep(time.Until(start))
				for {
					t := time.Now()
					if !t.Before(mEnd) {
						return
					}
					if !t.Before(mStart) {
						c.wOffered.Add(1)
					}
					send(t)
				}
			})
		}
	}

	// Samples at the window's edges, and the CPU profile in between.
	edges := make(chan struct{})
	go func() {
		defer close(edges)
		time.Sleep(time.Until(mStart))
		res.begin = windowSample{usage: sampleUsage(), receipts: o.node.receiptsOrZero()}
		if o.cpuProfile != "" {
			if err := startProfile(o.cpuProfile); err != nil {
				fmt.Fprintln(os.Stderr, "cpuprofile:", err)
			}
		}
		time.Sleep(time.Until(mEnd))
		res.end = windowSample{usage: sampleUsage(), receipts: o.node.receiptsOrZero()}
		if o.cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		res.backlogAtEnd = c.acceptedParts.Load() - res.end.receipts
	}()

	// Progress, one line a second, until the load and the drain are over.
	ctx, stopProgress := context.WithCancel(context.Background())
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		p := newProgress(o.node)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				phase := "measure"
				switch {
				case now.Before(mStart):
					phase = "warmup"
				case !now.Before(mEnd):
					phase = "drain"
				}
				iv := lat.takeInterval()
				win := lat.window()
				line := fmt.Sprintf("accepted/s %6d  p99 %8s (window %8s)  in-flight %4d",
					c.iAccepted.Swap(0), fmtUS(iv.ValueAtQuantile(99)), fmtUS(win.ValueAtQuantile(99)), c.inflight.Load())
				if o.node != nil {
					line += fmt.Sprintf("  backlog %7d", c.acceptedParts.Load()-o.node.receipts())
				}
				p.print(phase, line)
			}
		}
	}()

	workers.Wait()
	<-edges
	res.stopped = time.Now()
	res.hist = lat.window()

	if o.node != nil {
		deadline := res.stopped.Add(drain)
		want := c.acceptedParts.Load()
		for {
			got := o.node.receipts()
			if got >= want {
				res.drained, res.drainTime = true, time.Since(res.stopped)
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Late duplicates (at-least-once) would show up just after.
		time.Sleep(200 * time.Millisecond)
		res.receipts = o.node.receipts()
		res.lost = max(want-res.receipts, 0)
		res.dups = max(res.receipts-want, 0)
		res.submits = o.node.submits.Load()
	}
	stopProgress()
	<-progressDone
	res.rssEnd, res.hwm = rssMB(), hwmMB()
	return res, nil
}

func (n *node) receiptsOrZero() int64 {
	if n == nil {
		return 0
	}
	return n.receipts()
}

func startProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return pprof.StartCPUProfile(f)
}

// progress prints the one-line-a-second status shared by every mode:
// elapsed time, phase, the mode's own figures, delivered/s, RSS and CPU.
type progress struct {
	n            *node
	start        time.Time
	lastReceipts int64
	last         usage
}

func newProgress(n *node) *progress {
	return &progress{n: n, start: time.Now(), lastReceipts: n.receiptsOrZero(), last: sampleUsage()}
}

func (p *progress) print(phase, line string) {
	u := sampleUsage()
	proc, machine := p.last.since(u)
	el := u.at.Sub(p.last.at).Seconds()
	p.last = u
	deliv := ""
	if p.n != nil {
		r := p.n.receipts()
		if r < p.lastReceipts { // a new engine after a restart
			p.lastReceipts = 0
		}
		deliv = fmt.Sprintf("  delivered/s %6.0f", float64(r-p.lastReceipts)/el)
		p.lastReceipts = r
	}
	fmt.Printf("[%5.1fs] %-8s %s%s  rss %5.0fMB  cpu %.2f (machine %.2f)\n",
		time.Since(p.start).Seconds(), phase, line, deliv, rssMB(), proc, machine)
}

func (r *loadResult) report() (ok bool) {
	o, c := r.opts, r.c
	win := o.duration.Seconds()
	fmt.Println()
	fmt.Println("== summary ==")
	if o.rate > 0 {
		fmt.Printf("load: open loop, %.0f msg/s offered for %v after %v warmup; %d conns, %d in flight at most\n",
			o.rate, o.duration, o.warmup, o.conns, o.inflight)
	} else {
		fmt.Printf("load: closed loop (max), %d conns for %v after %v warmup\n", o.conns, o.duration, o.warmup)
	}
	fmt.Printf("bodies: %s\n", o.gen.describe())
	fmt.Printf("window: offered %d (%.0f/s)  accepted 202: %d (%.0f/s, %.0f parts/s)\n",
		c.wOffered.Load(), float64(c.wOffered.Load())/win, c.wAccepted.Load(), float64(c.wAccepted.Load())/win,
		float64(c.wAcceptedParts.Load())/win)
	fmt.Printf("window: 202s answered during the window %d (%.0f/s)%s\n", c.dAccepted.Load(), float64(c.dAccepted.Load())/win,
		lagNote(o, c))
	fmt.Printf("window: status %s  transport errors %d  never sent (over %v late) %d\n",
		statusString(&c.wStatus), c.wTransport.Load(), o.timeout, c.wExpired.Load())
	h := r.hist
	what := "from intended send time"
	if o.rate <= 0 {
		what = "from send (closed loop)"
	}
	fmt.Printf("accept latency (202 only, %s, n=%d): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		what, h.TotalCount(), fmtUS(h.ValueAtQuantile(50)), fmtUS(h.ValueAtQuantile(90)), fmtUS(h.ValueAtQuantile(99)),
		fmtUS(h.ValueAtQuantile(99.9)), fmtUS(h.Max()), fmtUS(int64(h.Mean())))
	proc, machine := r.begin.usage.since(r.end.usage)
	who := "gateway + load generator + simulator"
	if o.node == nil {
		who = "load generator only"
	}
	fmt.Printf("cpu in window: this process %.2f cores (%s), machine %.2f of %d cores busy\n",
		proc, who, machine, numCPU())
	fmt.Printf("memory: RSS %.0f MB at end, peak (VmHWM) %.0f MB\n", r.rssEnd, r.hwm)
	fmt.Printf("whole run: sent %d  accepted %d (%d parts)  status %s  transport errors %d  never sent %d\n",
		c.sent.Load(), c.accepted.Load(), c.acceptedParts.Load(), statusString(&c.status), c.transport.Load(), c.expired.Load())
	ok = true
	if o.node == nil {
		fmt.Println("delivered: not measured (--target: the engine's receipts are not visible from here)")
		return ok
	}
	delivered := r.end.receipts - r.begin.receipts
	fmt.Printf("delivered end to end in window: %d receipts (%.0f/s); backlog at window end %d parts\n",
		delivered, float64(delivered)/win, r.backlogAtEnd)
	if r.drained {
		fmt.Printf("drain: every accepted part receipted %v after the load stopped\n", r.drainTime.Round(time.Millisecond))
	} else {
		fmt.Printf("drain: NOT complete within --drain\n")
	}
	fmt.Printf("receipts %d for %d accepted parts: lost %d, extra (duplicates) %d; simulator accepted %d submit_sm\n",
		r.receipts, c.acceptedParts.Load(), r.lost, r.dups, r.submits)
	if c.transport.Load() > 0 {
		fmt.Printf("note: %d requests failed in transport; the gateway may have accepted some of them, which would read as extra receipts\n", c.transport.Load())
	}
	if r.lost > 0 {
		fmt.Printf("FAIL: %d accepted parts were not delivered within --drain %v\n", r.lost, r.drainLimit)
		ok = false
	}
	return ok
}

// lagNote warns when the open loop fell behind: the gateway answered
// fewer requests in the window than were offered in it.
func lagNote(o loadOpts, c *loadCounters) string {
	if o.rate <= 0 || c.wOffered.Load() == 0 {
		return ""
	}
	if d := float64(c.dAccepted.Load()) / float64(c.wOffered.Load()); d < 0.98 {
		return fmt.Sprintf("  BEHIND: %.0f%% of the offered rate was served in time; latencies show the backlog", 100*d)
	}
	return ""
}

func statusString(s *[600]atomic.Int64) string {
	out := ""
	for code := range s {
		if n := s[code].Load(); n > 0 {
			if out != "" {
				out += " "
			}
			if code == 0 {
				out += fmt.Sprintf("other=%d", n)
			} else {
				out += fmt.Sprintf("%d=%d", code, n)
			}
		}
	}
	if out == "" {
		return "none"
	}
	return out
}
