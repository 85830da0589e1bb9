package harness

import (
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
	gwnode "github.com/switchboard-sms/switchboard/cmd/switchboard/node"
	"github.com/valyala/fasthttp"
)

// The memory scenarios: queue N messages while the carrier refuses binds,
// then let it back (--queue) or restart the gateway on the pending store
// first (--restart-pending).

type queueOpts struct {
	n          int
	batch      int
	conns      int
	timeout    time.Duration
	acceptFor  time.Duration // bound on the accept phase
	drain      time.Duration
	gen        *gen
	cpuProfile string
	profile    string // accept | drain
	restart    bool
}

// batchCounters are the accept phase's.
type batchCounters struct {
	accepted, parts, rejected, requests, transport atomic.Int64
	mu                                             sync.Mutex
	status                                         map[int]int64
	codes                                          map[string]int64
}

// acceptBatches posts N messages in batches of o.batch to the gateway at
// addr, /v1/messages/batch (one at a time to /v1/messages when o.batch is
// 1), from o.conns workers, batch i with key i % keys, printing p's line
// each second. Rejected items are sent again (after a pause) until N are
// accepted or o.acceptFor passes.
func acceptBatches(addr string, o queueOpts, p *progress) *batchCounters {
	c := &batchCounters{status: map[int]int64{}, codes: map[string]int64{}}
	hc := newClient(addr, o.conns, o.timeout)
	defer hc.CloseIdleConnections()
	url := "http://" + addr + "/v1/messages/batch"
	if o.batch == 1 {
		url = "http://" + addr + "/v1/messages"
	}
	var remaining atomic.Int64
	remaining.Store(int64(o.n))
	// outstanding counts items claimed and not yet answered; rejected ones
	// go back to remaining.
	var outstanding, batchNo atomic.Int64
	claim := func() int64 {
		for {
			r := remaining.Load()
			if r <= 0 {
				return 0
			}
			k := min(r, int64(o.batch))
			outstanding.Add(k)
			if remaining.CompareAndSwap(r, r-k) {
				return k
			}
			outstanding.Add(-k)
		}
	}
	deadline := time.Now().Add(o.acceptFor)
	seed := rand.Uint64()

	stop := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		var last int64
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				a := c.accepted.Load()
				p.print("accept", fmt.Sprintf("accepted/s %6d  queued %8d / %d  rejected %d", a-last, a, o.n, c.rejected.Load()))
				last = a
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			buf := make([]byte, 0, o.batch*160)
			for time.Now().Before(deadline) {
				k := claim()
				if k == 0 {
					if outstanding.Load() == 0 && remaining.Load() <= 0 {
						return
					}
					// Others' batches may still come back with rejections.
					time.Sleep(20 * time.Millisecond)
					continue
				}
				buf = appendBatchBody(buf[:0], o, int(k), r)
				req.SetBodyRaw(buf)
				req.Header.SetBytesV("Authorization", o.gen.auths[int(batchNo.Add(1))%len(o.gen.auths)])
				c.requests.Add(1)
				err := hc.DoTimeout(req, resp, o.timeout)
				if err != nil {
					c.transport.Add(1)
					remaining.Add(k)
					outstanding.Add(-k)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				code := resp.StatusCode()
				if code != fasthttp.StatusAccepted {
					if o.batch == 1 { // the one message's error, e.g. 429 queue_full
						_, _, rej := scanBatch(resp.Body(), c)
						c.rejected.Add(rej)
					}
					c.mu.Lock()
					c.status[code]++
					c.mu.Unlock()
					remaining.Add(k)
					outstanding.Add(-k)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				acc, parts, rej := scanBatch(resp.Body(), c)
				c.accepted.Add(acc)
				c.parts.Add(parts)
				c.rejected.Add(rej)
				c.mu.Lock()
				c.status[code]++
				c.mu.Unlock()
				// Items neither accepted nor rejected (a malformed answer)
				// count as rejected, so the total stays right.
				rej = k - acc
				remaining.Add(rej)
				outstanding.Add(-k)
				if rej > 0 {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-progressDone
	return c
}

// appendBatchBody appends the body of a request for k messages: a batch,
// or the bare message when batches are of one.
func appendBatchBody(buf []byte, o queueOpts, k int, r *rand.Rand) []byte {
	if o.batch == 1 {
		buf, _ = o.gen.appendMessage(buf, r)
		return buf
	}
	buf = append(buf, `{"messages":[`...)
	for i := range k {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf, _ = o.gen.appendMessage(buf, r)
	}
	return append(buf, "]}"...)
}

// scanBatch reads a batch response (or a single message's 202, which
// carries "segments" too) without decoding it all: accepted items
// carry "segments", rejected ones "error" with a "code".
func scanBatch(body []byte, c *batchCounters) (accepted, parts, rejected int64) {
	eachAfter(body, []byte(`"segments":`), func(b []byte) {
		accepted++
		parts += int64(leadingInt(b))
	})
	eachAfter(body, []byte(`"error":{"code":"`), func(b []byte) {
		code, ok := untilQuote(b)
		if !ok {
			return
		}
		rejected++
		c.mu.Lock()
		c.codes[code]++
		c.mu.Unlock()
	})
	return accepted, parts, rejected
}

type memStats struct {
	rss, hwm                float64
	heapInuse, heapSys, sys uint64
	stackInuse, goroutines  uint64
	numGC                   uint32
	// asRead: another process's figures, read without a GC first (no Go
	// heap figures then).
	asRead bool
}

// settledMemory collects garbage and returns freed memory to the OS before
// reading RSS, so the figure is what the gateway holds, not what the
// collector has not yet given back.
func settledMemory() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memStats{rss: self.rssMB(), hwm: self.hwmMB(), heapInuse: m.HeapInuse, heapSys: m.HeapSys, sys: m.Sys,
		stackInuse: m.StackInuse, goroutines: uint64(runtime.NumGoroutine()), numGC: m.NumGC}
}

// childMemory is a gateway subprocess's RSS and peak as read: a GC cannot
// be forced in another process, so the figure may hold garbage its
// collector has not yet given back.
func childMemory(p proc) memStats { return memStats{rss: p.rssMB(), hwm: p.hwmMB(), asRead: true} }

func (m memStats) String() string {
	if m.asRead {
		return fmt.Sprintf("RSS %.0f MB (VmHWM %.0f MB), the gateway process alone", m.rss, m.hwm)
	}
	return fmt.Sprintf("RSS %.0f MB (VmHWM %.0f MB); Go heap in use %.0f MB, heap from OS %.0f MB, all Go memory %.0f MB, stacks %.0f MB, %d goroutines",
		m.rss, m.hwm, mb(m.heapInuse), mb(m.heapSys), mb(m.sys), mb(m.stackInuse), m.goroutines)
}

// how says how m was read, for the lines that print it.
func (m memStats) how() string {
	if m.asRead {
		return "as read (no GC forced in the gateway process)"
	}
	return "after GC + FreeOSMemory"
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// queueSource is what the queue scenario reads of the gateway while it
// runs, the same for the in-process node (*node) and the binary
// (*binGateway), so both modes share one accept phase and one drain.
type queueSource interface {
	progressSource
	armFirstSubmit()          // forget the first submit seen, so the next one is timed
	firstSubmitAt() time.Time // the first submit since armFirstSubmit; zero if none yet
	submitCount() int64       // submit_sm parts the simulator has accepted
}

// binGateway is the gateway binary as the queue scenario reads it: its
// process for RSS and CPU, the simulator for what reached the carrier and
// came back (the engine's counters are in another process).
type binGateway struct {
	submitWatch
	gw *gatewayProc
}

// receipts counts the receipts the gateway has acknowledged to the
// simulator, all stat words. The gateway acknowledges one only once it has
// recorded it durably (a receipt whose submit is not recorded yet is kept
// until it is, and acknowledged then too), so from outside its process
// this stands for the engine's receipt count.
func (b *binGateway) receipts() int64 {
	var n int64
	for _, v := range b.gw.sim.Stats().ReceiptsSent {
		n += v
	}
	return n
}

func (b *binGateway) measured() proc { return b.gw.measured() }

// queueGateway is the gateway the queue scenario runs against: what its
// phases need, however it runs.
type queueGateway struct {
	queueSource
	addr   string          // the API's
	sim    *smsc.Server    // refusing binds until the drain
	prof   windowProfiler  // --cpuprofile's window; nil without
	memory func() memStats // the gateway's memory now
	name   string          // how the first line names it
	alone  string          // after a figure of the binary's process: it is the gateway's alone
	node   *node           // the in-process node (--restart-pending); nil for the binary
}

// startQueueGateway starts the simulator refusing binds and the gateway
// for --queue/--restart-pending: in this process, or its binary with
// --gateway-bin. The rig's cleanups stop both.
func (r *rig) startQueueGateway(cfg nodeConfig, o queueOpts) (queueGateway, error) {
	if r.s.gatewayBin != "" {
		return r.startQueueBin(cfg, o)
	}
	n, err := startNode(cfg, true)
	if err != nil {
		return queueGateway{}, err
	}
	r.cl.add(func() {
		if err := n.close(30 * time.Second); err != nil {
			fmt.Fprintln(r.errOut, "stop:", err)
		}
	})
	g := queueGateway{queueSource: n, addr: n.addr, sim: n.sim, memory: settledMemory, name: "in process", node: n}
	if o.cpuProfile != "" {
		g.prof = &selfProfiler{cpu: o.cpuProfile}
	}
	return g, nil
}

// startQueueBin is startQueueGateway for --gateway-bin: the binary's
// cluster.yaml has each key's max_queued at cfg.maxQueued (raised to N),
// and its --cpuprofile window is opened and closed by signals.
func (r *rig) startQueueBin(cfg nodeConfig, o queueOpts) (queueGateway, error) {
	b := &binGateway{}
	gw, err := r.startGatewayBin(cfg, true, b.onSubmit)
	if err != nil {
		return queueGateway{}, err
	}
	b.gw = gw
	o.gen.auths = authsFor(gw.secrets)
	g := queueGateway{queueSource: b, addr: gw.addr, sim: gw.sim,
		memory: func() memStats { return childMemory(gw.measured()) },
		name:   fmt.Sprintf("%s (pid %d)", r.s.gatewayBin, gw.cmd.Process.Pid), alone: " (the gateway process alone)"}
	if o.cpuProfile != "" {
		g.prof = gw
	}
	return g, nil
}

// profileIf opens (begin) or closes the profile's window if it covers
// phase.
func (g queueGateway) profileIf(o queueOpts, phase string, begin bool) error {
	if g.prof == nil || o.profile != phase {
		return nil
	}
	if begin {
		return g.prof.begin()
	}
	return g.prof.end()
}

// resetPeak starts the gateway's VmHWM again, saying so when it cannot
// (the peak that follows then includes the earlier phases').
func (g queueGateway) resetPeak(out io.Writer) {
	if !g.measured().resetPeak() {
		fmt.Fprintln(out, "note: the peak RSS could not be reset (clear_refs): later peaks include earlier phases")
	}
}

// cpu describes the cores the gateway's process used, and the machine's.
func (g queueGateway) cpu(proc, machine float64) string {
	if g.alone != "" {
		return fmt.Sprintf("cpu %.2f cores (the gateway process alone; machine %.2f)", proc, machine)
	}
	return fmt.Sprintf("cpu %.2f cores (machine %.2f)", proc, machine)
}

// acceptResult is what the accept phase measured.
type acceptResult struct {
	c               *batchCounters
	accepted, parts int64
	dur             time.Duration
	cpu, machine    float64  // the gateway's process's cores, and the machine's
	hwm             float64  // the gateway's peak RSS during the phase
	queued          memStats // the gateway's memory with everything queued
}

// acceptPhase accepts o.n messages with the carrier down and reports the
// rate, the CPU and the memory with them queued.
func acceptPhase(g queueGateway, o queueOpts, out io.Writer) (acceptResult, error) {
	if err := g.profileIf(o, "accept", true); err != nil {
		return acceptResult{}, fmt.Errorf("cpu profile: %w", err)
	}
	gp := g.measured()
	u0 := gp.sample()
	c := acceptBatches(g.addr, o, newProgress(out, g))
	u1 := gp.sample()
	if err := g.profileIf(o, "accept", false); err != nil {
		fmt.Fprintln(out, "profile:", err)
	}
	a := acceptResult{c: c, accepted: c.accepted.Load(), parts: c.parts.Load(), dur: u1.at.Sub(u0.at), hwm: gp.hwmMB()}
	a.cpu, a.machine = u0.since(u1)
	via := fmt.Sprintf("batches of %d", o.batch)
	if o.batch == 1 {
		via = "POST /v1/messages, one a request,"
	}
	fmt.Fprintf(out, "\naccepted %d messages (%d parts) in %v: %.0f msg/s via %s on %d conns; %s\n",
		a.accepted, a.parts, a.dur.Round(time.Millisecond), a.rate(), via, o.conns, g.cpu(a.cpu, a.machine))
	fmt.Fprintf(out, "requests %d, statuses %v, rejected items %d %v, transport errors %d\n",
		c.requests.Load(), c.status, c.rejected.Load(), c.codes, c.transport.Load())
	if s := g.submitCount(); s != 0 {
		fmt.Fprintf(out, "WARNING: the simulator accepted %d submits while refusing binds\n", s)
	}
	a.queued = g.memory()
	fmt.Fprintf(out, "with %d queued, %s: %s\n", a.accepted, a.queued.how(), a.queued)
	fmt.Fprintf(out, "peak RSS during the accept phase (VmHWM): %.0f MB%s\n", a.hwm, g.alone)
	return a, nil
}

func (a acceptResult) rate() float64 { return float64(a.accepted) / a.dur.Seconds() }

// drainResult is the second half of both scenarios.
type drainResult struct {
	firstSubmit   time.Duration // from the carrier coming back (or the restart)
	firstSubmitAt time.Time
	done          bool
	elapsed       time.Duration // from the same moment to the last receipt
	peak1s        float64
	peakRSS       float64
	receipts      int64
	cpu, machine  float64 // the gateway's process's cores, and the machine's
	submits       int64   // the simulator's, during the drain
	open          gwnode.Timings
	stopDur       time.Duration // --restart-pending's clean stop
}

// waitDrain polls src's receipts until want are recorded or timeout
// passes, printing progress to out each second and following the peak RSS
// of the gateway's process.
func waitDrain(src queueSource, out io.Writer, from time.Time, want int64, timeout time.Duration) drainResult {
	var d drainResult
	p := newProgress(out, src)
	gp := src.measured()
	deadline := from.Add(timeout)
	nextLine := time.Now().Add(time.Second)
	lastR, lastT := src.receipts(), time.Now()
	for {
		r := src.receipts()
		now := time.Now()
		d.peakRSS = max(d.peakRSS, gp.rssMB())
		if r >= want {
			d.done, d.elapsed, d.receipts = true, now.Sub(from), r
			break
		}
		if now.After(deadline) {
			d.elapsed, d.receipts = now.Sub(from), r
			break
		}
		if !now.Before(nextLine) {
			rate := float64(r-lastR) / now.Sub(lastT).Seconds()
			d.peak1s = max(d.peak1s, rate)
			lastR, lastT = r, now
			first := "-"
			if t := src.firstSubmitAt(); !t.IsZero() {
				first = fmtDur(t.Sub(from))
			}
			p.print("drain", fmt.Sprintf("receipts %8d / %d  first submit %s  submits %d", r, want, first, src.submitCount()))
			nextLine = nextLine.Add(time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if t := src.firstSubmitAt(); !t.IsZero() {
		d.firstSubmit, d.firstSubmitAt = t.Sub(from), t
	}
	d.peakRSS = max(d.peakRSS, gp.hwmMB())
	return d
}

// runQueue is both memory scenarios on a started gateway: accept o.n
// messages with the carrier refusing binds, report the memory, (for
// --restart-pending, restart the in-process gateway), let the carrier back
// and time the drain. It reports whether every part was receipted.
func runQueue(g queueGateway, o queueOpts, out io.Writer) (ok bool, err error) {
	g.resetPeak(out)
	fmt.Fprintf(out, "gateway %s up on %s, simulator on %s refusing binds; baseline %s\n", g.name, g.addr, g.sim.Addr(), g.memory())
	a, err := acceptPhase(g, o, out)
	if err != nil {
		return false, err
	}
	d, err := drainPhase(g, o, a.parts, out)
	if err != nil {
		return false, err
	}
	after := g.memory()
	printQueueSummary(out, g, o, a, d)
	fmt.Fprintf(out, "after drain, %s: %s\n", after.how(), after)
	return d.done, nil
}

// drainPhase lets the carrier back (for --restart-pending, after stopping
// the in-process gateway cleanly and opening it again on its store) and
// waits for every part's receipt.
func drainPhase(g queueGateway, o queueOpts, parts int64, out io.Writer) (drainResult, error) {
	var stopDur time.Duration
	if o.restart {
		t := time.Now()
		if err := g.node.stopGateway(60 * time.Second); err != nil {
			fmt.Fprintln(out, "clean stop reported:", err)
		}
		stopDur = time.Since(t)
		fmt.Fprintf(out, "gateway stopped cleanly in %v (simulator kept running); after GC: %s\n",
			stopDur.Round(time.Millisecond), g.memory())
	}
	g.resetPeak(out)
	g.armFirstSubmit()
	submitsBefore := g.submitCount()
	if err := g.profileIf(o, "drain", true); err != nil {
		return drainResult{}, fmt.Errorf("cpu profile: %w", err)
	}
	gp := g.measured()
	u2 := gp.sample()
	var open gwnode.Timings
	var from time.Time
	if o.restart {
		g.sim.SetFaults(smsc.Faults{})
		from = time.Now()
		var err error
		if open, err = g.node.openGateway(); err != nil {
			return drainResult{}, fmt.Errorf("restart: %w", err)
		}
		fmt.Fprintf(out, "restart: store open %v, engine start %v, http %v\n",
			open.Store.Round(time.Millisecond), open.EngineStart.Round(time.Millisecond), open.HTTP.Round(time.Millisecond))
	} else {
		from = time.Now()
		g.sim.SetFaults(smsc.Faults{})
	}
	d := waitDrain(g, out, from, parts, o.drain)
	u3 := gp.sample()
	if err := g.profileIf(o, "drain", false); err != nil {
		fmt.Fprintln(out, "profile:", err)
	}
	d.cpu, d.machine = u2.since(u3)
	d.submits, d.open, d.stopDur = g.submitCount()-submitsBefore, open, stopDur
	return d, nil
}

// printQueueSummary prints the scenario's summary; the binary's figures
// say they are its process's alone.
func printQueueSummary(out io.Writer, g queueGateway, o queueOpts, a acceptResult, d drainResult) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "== summary ==")
	mode := "--queue"
	if o.restart {
		mode = "--restart-pending"
	}
	fmt.Fprintf(out, "%s %d: accepted %d msgs (%d parts) with the carrier down in %v (%.0f msg/s)\n",
		mode, o.n, a.accepted, a.parts, a.dur.Round(time.Millisecond), a.rate())
	if a.queued.asRead {
		fmt.Fprintf(out, "memory with %d queued (the gateway process alone, RSS as read: no GC forced): RSS %.0f MB; peak during accept (VmHWM) %.0f MB\n",
			a.accepted, a.queued.rss, a.hwm)
	} else {
		fmt.Fprintf(out, "memory with %d queued (after GC): RSS %.0f MB; peak during accept (VmHWM) %.0f MB; Go heap in use %.0f MB\n",
			a.accepted, a.queued.rss, a.hwm, mb(a.queued.heapInuse))
	}
	if o.restart {
		fmt.Fprintf(out, "restart: clean stop %v; reopen: store %v + engine start %v; first submit %v after the reopen began (%v after Engine.Start)\n",
			d.stopDur.Round(time.Millisecond), d.open.Store.Round(time.Millisecond), d.open.EngineStart.Round(time.Millisecond),
			fmtDur(d.firstSubmit), fmtDur(d.firstSubmitAt.Sub(d.open.EngineStarted)))
	} else {
		fmt.Fprintf(out, "carrier back: first submit %v after SetFaults({})\n", fmtDur(d.firstSubmit))
	}
	if d.done {
		span := d.elapsed - d.firstSubmit
		fmt.Fprintf(out, "drain: all %d parts receipted in %v: %.0f/s overall, %.0f/s from the first submit, peak 1 s %.0f/s\n",
			a.parts, d.elapsed.Round(time.Millisecond), float64(a.parts)/d.elapsed.Seconds(), float64(a.parts)/span.Seconds(), d.peak1s)
	} else {
		fmt.Fprintf(out, "drain: NOT complete: %d of %d parts receipted in %v (%.0f/s)\n",
			d.receipts, a.parts, d.elapsed.Round(time.Millisecond), float64(d.receipts)/d.elapsed.Seconds())
	}
	fmt.Fprintf(out, "drain: peak RSS %.0f MB%s; %s; simulator submits %d (%d extra)\n",
		d.peakRSS, g.alone, g.cpu(d.cpu, d.machine), d.submits, max(d.submits-a.parts, 0))
}
