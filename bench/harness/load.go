package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// The load phase: requests at a constant (or profiled) arrival rate, open
// loop, each with an intended send time and its latency measured from it;
// or closed loop (--rate 0: --conns workers back to back). Once a second
// the sampler takes a timeline sample and prints the progress line; after
// the load, the drain waits for every accepted message's final callback.

type loadOpts struct {
	label    string // e.g. the target's name, or the ramp step
	addr     string // host:port the client connects to
	driver   driver
	profile  rateProfile // base 0: closed loop
	warmup   time.Duration
	duration time.Duration
	timeout  time.Duration // per request; also how late an unsent request may be before it is given up
	conns    int
	inflight int
	batch    int // messages per request
	drain    time.Duration
	gen      *gen

	tracker *tracker // nil: no end-to-end figures (no sink)
	node    *node    // in-process node: engine receipts; nil otherwise
	// sim is the simulator when it runs in this process (its submit_sm
	// count against the accepted parts tells duplicates at the carrier).
	sim *smsc.Server
	// noDuplicates fails the run on duplicates too (--no-duplicates).
	noDuplicates bool
	// expectDelivered fails the run on anything but every request
	// accepted and every message delivered (--expect-delivered).
	expectDelivered bool
	// seq numbers the messages; shared by a ramp's steps, since drivers
	// whose ids come from it (Kannel's) would otherwise give a later
	// step's messages the ids of an earlier step's, whose receipts the
	// sink has seen already. nil: numbered from 0.
	seq     *atomic.Int64
	gw      proc     // the gateway process measured for RSS/CPU; "" none
	gwWho   string   // what gw's figures include
	gwPID   int      // the gateway's process, whose sockets to the database are counted
	db      *backend // the storage; its database's counters and CPU when it has them
	actions []action // things done at offsets into the measured window (carrier outage)

	// prof profiles the measured window: this process's (in-process
	// node) or the gateway binary's (--gateway-bin); nil: no profile.
	prof  windowProfiler
	out   io.Writer
	quiet bool // no progress lines (unit tests)
}

// action is something done during the load at an offset from the start of
// the measured window.
type action struct {
	at   time.Duration
	name string
	do   func()
}

// interval counts one second of the timeline.
type interval struct {
	offered, accepted, s2xx, s4xx, s5xx, other, transport, expired atomic.Int64
}

// loadCounters count the whole load. The w* ones count messages/requests
// whose intended (closed loop: actual) send time is in the measured
// window; messages are counted in messages, statuses in requests.
type loadCounters struct {
	sent, accepted, acceptedParts, transport, expired, rejected atomic.Int64
	status                                                      [600]atomic.Int64

	wOffered, wAccepted, wTransport, wExpired, wRejected atomic.Int64
	wStatus                                              [600]atomic.Int64

	// dAccepted counts messages accepted by answers during the window,
	// whatever their intended time: what the gateway actually served in it.
	dAccepted atomic.Int64
	inflight  atomic.Int64
	iv        interval
}

type loadResult struct {
	opts       loadOpts
	c          *loadCounters
	accept     *hdrhistogram.Histogram // the window's accept latencies, merged from the per-second ones
	e2e        *hdrhistogram.Histogram // accept → final callback, every accepted message
	timeline   []sample
	begin, end edge
	started    time.Time
	stopped    time.Time // the load's end
	drained    bool
	drainTime  time.Duration
	lost       int
	receipts   int64 // engine receipts (in-process node)
	submits    int64
	rssEnd     float64
	hwm        float64
	// dbBefore and dbAfter are the database's counters just before the
	// load and after the drain.
	dbBefore, dbAfter dbSnapshot
}

// edge is taken at the start and at the end of the measured window.
type edge struct {
	usage     usage
	finals    int64
	receipts  int64
	db, redis time.Duration // CPU time of the database's and Redis's processes
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

func runLoad(ctx context.Context, o loadOpts) *loadResult {
	hc := newClient(o.addr, o.conns, o.timeout)
	defer hc.CloseIdleConnections()
	c := &loadCounters{}
	lat := newLatencies(histMax)
	res := &loadResult{opts: o, c: c, accept: newHist(), e2e: newE2EHist()}
	per := max(o.batch, 1)
	if o.db != nil && o.db.stats != nil {
		res.dbBefore = o.db.stats.snapshot(o.gwPID)
	}
	var submitsBefore, receiptsBefore int64 // a ramp's earlier steps'
	if o.sim != nil {
		submitsBefore = o.sim.Stats().Submits
	}
	if o.node != nil {
		receiptsBefore = o.node.receipts()
	}

	start := time.Now().Add(20 * time.Millisecond)
	mStart := start.Add(o.warmup)
	mEnd := mStart.Add(o.duration)
	res.started = start
	seq := o.seq
	if seq == nil {
		seq = new(atomic.Int64)
	}

	// do sends one request whose send time is intended (open loop) or now
	// (closed loop) and accounts for it.
	do := func(w int, req *fasthttp.Request, resp *fasthttp.Response, buf []byte, ids []string, r *rand.Rand, intended time.Time) ([]byte, []string) {
		inWin := !intended.Before(mStart) && intended.Before(mEnd)
		first := seq.Add(int64(per)) - int64(per)
		req.Reset()
		buf = o.driver.build(req, buf, r, first, per)
		c.inflight.Add(1)
		c.sent.Add(1)
		err := hc.DoTimeout(req, resp, o.timeout)
		done := time.Now()
		c.inflight.Add(-1)
		if err != nil {
			c.transport.Add(1)
			c.iv.transport.Add(1)
			if inWin {
				c.wTransport.Add(1)
			}
			lat.record(w, neverAccepted, inWin)
			return buf, ids
		}
		code := min(max(resp.StatusCode(), 0), len(c.status)-1)
		c.status[code].Add(1)
		if inWin {
			c.wStatus[code].Add(1)
		}
		switch {
		case code >= 200 && code < 300:
			c.iv.s2xx.Add(1)
		case code >= 400 && code < 500:
			c.iv.s4xx.Add(1)
		case code >= 500:
			c.iv.s5xx.Add(1)
		default:
			c.iv.other.Add(1)
		}
		ids, parts := o.driver.accepted(resp, first, per, ids[:0])
		n := int64(len(ids))
		c.rejected.Add(int64(per) - n)
		if inWin {
			c.wRejected.Add(int64(per) - n)
		}
		if n == 0 {
			lat.record(w, neverAccepted, inWin)
			return buf, ids
		}
		c.accepted.Add(n)
		c.acceptedParts.Add(int64(parts))
		c.iv.accepted.Add(n)
		if !done.Before(mStart) && done.Before(mEnd) {
			c.dAccepted.Add(n)
		}
		if inWin {
			c.wAccepted.Add(n)
		}
		lat.record(w, done.Sub(intended).Microseconds(), inWin)
		if o.tracker != nil {
			for _, id := range ids {
				o.tracker.accept(id, done, w)
			}
		}
		return buf, ids
	}

	// worker state: its own request, response, buffers and random source.
	seed := rand.Uint64()
	type workerState struct {
		req  *fasthttp.Request
		resp *fasthttp.Response
		buf  []byte
		ids  []string
		r    *rand.Rand
	}
	states := make([]*workerState, max(o.inflight, o.conns))
	for w := range states {
		states[w] = &workerState{req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse(),
			buf: make([]byte, 0, 1024), r: rand.New(rand.NewPCG(seed, uint64(w)))}
	}
	defer func() {
		for _, s := range states {
			fasthttp.ReleaseRequest(s.req)
			fasthttp.ReleaseResponse(s.resp)
		}
	}()
	send := func(w int, t time.Time) {
		s := states[w]
		s.buf, s.ids = do(w, s.req, s.resp, s.buf, s.ids, s.r, t)
	}
	offer := func(t time.Time) {
		c.iv.offered.Add(int64(per))
		if !t.Before(mStart) && t.Before(mEnd) {
			c.wOffered.Add(int64(per))
		}
	}

	// The sampler: one timeline sample and progress line a second, from
	// the start of the load to the end of the drain.
	smp := newSampler(o, res, lat, start, mStart, mEnd)
	samplerStop, samplerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(samplerDone)
		smp.loop(samplerStop)
	}()

	// Edges of the window (samples, CPU profile) and the actions.
	edgesDone := make(chan struct{})
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	go func() {
		defer close(edgesDone)
		if !sleepUntil(loadCtx, mStart) {
			return
		}
		res.begin = smp.edge()
		if o.prof != nil {
			if err := o.prof.begin(); err != nil {
				fmt.Fprintln(o.out, "profile:", err)
			}
		}
		for _, a := range o.actions {
			if !sleepUntil(loadCtx, mStart.Add(a.at)) {
				break
			}
			fmt.Fprintf(o.out, "[%5.1fs] %s\n", time.Since(start).Seconds(), a.name)
			a.do()
		}
		sleepUntil(loadCtx, mEnd)
		res.end = smp.edge()
		if o.prof != nil {
			if err := o.prof.end(); err != nil {
				fmt.Fprintln(o.out, "profile:", err)
			}
		}
	}()

	if o.profile.base > 0 {
		s := &scheduler{start: start, end: mEnd, rate: o.profile.at, per: per, inflight: o.inflight, timeout: o.timeout}
		s.run(ctx, offer, send, func(t time.Time) {
			c.expired.Add(int64(per))
			c.iv.expired.Add(int64(per))
			if !t.Before(mStart) {
				c.wExpired.Add(int64(per))
			}
			lat.record(0, neverAccepted, !t.Before(mStart) && t.Before(mEnd))
		})
	} else {
		// Closed loop: each worker sends its next request when the last
		// one is answered.
		var workers sync.WaitGroup
		for w := range o.conns {
			workers.Add(1)
			go func() {
				defer workers.Done()
				if !sleepUntil(ctx, start) {
					return
				}
				for ctx.Err() == nil {
					t := time.Now()
					if !t.Before(mEnd) {
						return
					}
					offer(t)
					send(w, t)
				}
			}()
		}
		workers.Wait()
	}
	if ctx.Err() != nil {
		cancelLoad()
	}
	<-edgesDone
	res.stopped = time.Now()

	// Drain: every accepted message's final callback, or (without a sink)
	// the engine's receipt of every accepted part.
	deadline := res.stopped.Add(o.drain)
	switch {
	case o.tracker != nil:
		res.drained = o.tracker.waitAll(deadline, ctx.Done())
		res.drainTime = time.Since(res.stopped)
		res.lost = o.tracker.waiting()
		// Late duplicates (at-least-once) would show up just after.
		sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
	case o.node != nil:
		want := receiptsBefore + c.acceptedParts.Load()
		for o.node.receipts() < want && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		res.drainTime = time.Since(res.stopped)
		res.lost = int(max(want-o.node.receipts(), 0))
		res.drained = res.lost == 0
	}
	if o.node != nil {
		res.receipts = o.node.receipts()
	}
	if o.sim != nil {
		res.submits = o.sim.Stats().Submits - submitsBefore
	}
	if o.db != nil && o.db.stats != nil {
		res.dbAfter = o.db.stats.snapshot(o.gwPID)
	}
	close(samplerStop)
	<-samplerDone
	res.timeline = smp.timeline
	if o.gw != "" {
		res.rssEnd, res.hwm = o.gw.rssMB(), o.gw.hwmMB()
	}
	return res
}

// sleepUntil sleeps until t or until ctx ends; it reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// windowProfiler profiles the measured window: begin at its start, end
// at its end.
type windowProfiler interface {
	begin() error
	end() error
}

// selfProfiler profiles this process: CPU (cpu) and an execution trace
// (trace) over the window, and the allocations from start to the window's
// end (mem); any may be "".
type selfProfiler struct {
	cpu, mem, trace string
	files           []*os.File // open during the window
}

func (p *selfProfiler) begin() error {
	for _, w := range [...]struct {
		path  string
		start func(io.Writer) error
	}{{p.cpu, pprof.StartCPUProfile}, {p.trace, trace.Start}} {
		if w.path == "" {
			continue
		}
		f, err := os.Create(w.path)
		if err != nil {
			return err
		}
		if err := w.start(f); err != nil {
			return errors.Join(err, f.Close())
		}
		p.files = append(p.files, f)
	}
	return nil
}

func (p *selfProfiler) end() error {
	if p.cpu != "" {
		pprof.StopCPUProfile()
	}
	if p.trace != "" {
		trace.Stop()
	}
	var err error
	for _, f := range p.files {
		err = errors.Join(err, f.Close())
	}
	p.files = nil
	if p.mem != "" {
		err = errors.Join(err, writeAllocs(p.mem))
	}
	return err
}

// writeAllocs writes the allocations sampled since the process started
// (go tool pprof -sample_index=alloc_space).
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sampler builds the timeline: each second it takes the second's accept
// latencies (merging the in-window ones into the run's histogram), the
// second's counts, the end-to-end latencies of the finals that arrived,
// and the gateway's RSS and CPU.
type sampler struct {
	o                   loadOpts
	res                 *loadResult
	lat                 *latencies
	start, mStart, mEnd time.Time
	last                usage
	lastReceipts        int64
	timeline            []sample
}

func newSampler(o loadOpts, res *loadResult, lat *latencies, start, mStart, mEnd time.Time) *sampler {
	s := &sampler{o: o, res: res, lat: lat, start: start, mStart: mStart, mEnd: mEnd}
	if o.gw != "" {
		s.last = o.gw.sample()
	}
	s.lastReceipts = o.node.receiptsOrZero()
	return s
}

func (s *sampler) edge() edge {
	e := edge{receipts: s.o.node.receiptsOrZero()}
	if s.o.gw != "" {
		e.usage = s.o.gw.sample()
	}
	if s.o.tracker != nil {
		e.finals = s.o.tracker.finals.Load()
	}
	if b := s.o.db; b != nil {
		if b.dbPID > 0 {
			e.db = proc(strconv.Itoa(b.dbPID)).cpuTime()
		}
		if b.redisPID > 0 {
			e.redis = proc(strconv.Itoa(b.redisPID)).cpuTime()
		}
	}
	return e
}

func (s *sampler) loop(stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			s.take(time.Now(), false)
			return
		case now := <-tick.C:
			s.take(now, true)
		}
	}
}

// take makes one sample (and prints it when print is set; the last, partial
// one only merges).
func (s *sampler) take(now time.Time, print bool) {
	o, c := s.o, s.res.c
	all, win := s.lat.take()
	s.res.accept.Merge(win)
	var e2eSecond *hdrhistogram.Histogram
	if o.tracker != nil {
		// Every final counts end to end (the tracker records them all as
		// in the window): the second's, merged into the run's.
		e2eSecond, _ = o.tracker.lat.take()
		s.res.e2e.Merge(e2eSecond)
	}
	if !print {
		return
	}
	phase := "measure"
	switch {
	case now.Before(s.mStart):
		phase = "warmup"
	case !now.Before(s.mEnd):
		phase = "drain"
	}
	el := now.Sub(s.start)
	sm := sample{
		T: el.Seconds(), Phase: phase,
		Offered: c.iv.offered.Swap(0), Accepted: c.iv.accepted.Swap(0),
		S2xx: c.iv.s2xx.Swap(0), S4xx: c.iv.s4xx.Swap(0), S5xx: c.iv.s5xx.Swap(0), Other: c.iv.other.Swap(0),
		Transport: c.iv.transport.Swap(0), Expired: c.iv.expired.Swap(0),
		InFlight: c.inflight.Load(),
		Accept:   percentilesOf(all),
	}
	if phase != "drain" && o.profile.base > 0 {
		sm.Rate = o.profile.at(el)
	}
	if o.tracker != nil {
		sm.Delivered = o.tracker.iFinals.Swap(0)
		sm.Waiting = int64(o.tracker.waiting())
		sm.E2E = percentilesOf(e2eSecond)
	}
	if o.node != nil {
		r := o.node.receipts()
		sm.Receipts = r - s.lastReceipts
		s.lastReceipts = r
	}
	if o.gw != "" {
		u := o.gw.sample()
		sm.CPU, sm.MachineCPU = s.last.since(u)
		s.last = u
		sm.RSSMB = o.gw.rssMB()
	}
	s.timeline = append(s.timeline, sm)
	if !o.quiet {
		fmt.Fprintln(o.out, sm.line(o))
	}
}

// line is the progress line of one sample.
func (sm sample) line(o loadOpts) string {
	line := fmt.Sprintf("[%5.1fs] %-7s offered/s %6d  accepted/s %6d  p99 %8s  max %8s  in-flight %4d",
		sm.T, sm.Phase, sm.Offered, sm.Accepted, fmtUS(int64(sm.Accept.P99*1000)), fmtUS(int64(sm.Accept.Max*1000)), sm.InFlight)
	if bad := sm.S4xx + sm.S5xx + sm.Other + sm.Transport + sm.Expired; bad > 0 {
		line += fmt.Sprintf("  errors 4xx %d 5xx %d transport %d expired %d", sm.S4xx, sm.S5xx, sm.Transport, sm.Expired)
	}
	if o.tracker != nil {
		line += fmt.Sprintf("  delivered/s %6d  waiting %7d  e2e p99 %8s", sm.Delivered, sm.Waiting, fmtUS(int64(sm.E2E.P99*1000)))
	} else if o.node != nil {
		line += fmt.Sprintf("  receipts/s %6d", sm.Receipts)
	}
	if o.gw != "" {
		line += fmt.Sprintf("  rss %5.0fMB  cpu %.2f (machine %.2f)", sm.RSSMB, sm.CPU, sm.MachineCPU)
	}
	return line
}

func (n *node) receiptsOrZero() int64 {
	if n == nil {
		return 0
	}
	return n.receipts()
}

// progress prints the one-line-a-second status of the queue and webhook
// scenarios: elapsed time, phase, the mode's own figures, receipts/s,
// and the RSS and CPU of the gateway's process (this one for the
// in-process node, the child for --gateway-bin).
type progress struct {
	out          io.Writer
	src          progressSource
	gw           proc
	start        time.Time
	lastReceipts int64
	last         usage
}

// progressSource is what the progress line reads of the gateway.
type progressSource interface {
	receipts() int64 // parts receipted so far
	measured() proc  // the process whose RSS and CPU are the gateway's
}

func newProgress(out io.Writer, src progressSource) *progress {
	gw := src.measured()
	return &progress{out: out, src: src, gw: gw, start: time.Now(), lastReceipts: src.receipts(), last: gw.sample()}
}

func (p *progress) print(phase, line string) {
	u := p.gw.sample()
	proc, machine := p.last.since(u)
	el := u.at.Sub(p.last.at).Seconds()
	p.last = u
	r := p.src.receipts()
	if r < p.lastReceipts { // a new engine after a restart
		p.lastReceipts = 0
	}
	deliv := fmt.Sprintf("  delivered/s %6.0f", float64(r-p.lastReceipts)/el)
	p.lastReceipts = r
	fmt.Fprintf(p.out, "[%5.1fs] %-8s %s%s  rss %5.0fMB  cpu %.2f (machine %.2f)\n",
		time.Since(p.start).Seconds(), phase, line, deliv, p.gw.rssMB(), proc, machine)
}
