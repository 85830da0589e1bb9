package harness

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
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

// acceptBatches posts N messages in batches of o.batch to /v1/messages/batch
// (one at a time to /v1/messages when o.batch is 1) from o.conns workers,
// batch i with key i % keys. Rejected items are sent again (after a pause)
// until N are accepted or o.acceptFor passes.
func acceptBatches(n *node, o queueOpts) *batchCounters {
	c := &batchCounters{status: map[int]int64{}, codes: map[string]int64{}}
	hc := newClient(n.addr, o.conns, o.timeout)
	defer hc.CloseIdleConnections()
	url := "http://" + n.addr + "/v1/messages/batch"
	if o.batch == 1 {
		url = "http://" + n.addr + "/v1/messages"
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
		p := newProgress(n.cfg.out, n)
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
}

// settledMemory collects garbage and returns freed memory to the OS before
// reading RSS, so the figure is what the gateway holds, not what the
// collector has not yet given back.
func settledMemory() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memStats{rss: rssMB(), hwm: hwmMB(), heapInuse: m.HeapInuse, heapSys: m.HeapSys, sys: m.Sys,
		stackInuse: m.StackInuse, goroutines: uint64(runtime.NumGoroutine()), numGC: m.NumGC}
}

func (m memStats) String() string {
	return fmt.Sprintf("RSS %.0f MB (VmHWM %.0f MB); Go heap in use %.0f MB, heap from OS %.0f MB, all Go memory %.0f MB, stacks %.0f MB, %d goroutines",
		m.rss, m.hwm, mb(m.heapInuse), mb(m.heapSys), mb(m.sys), mb(m.stackInuse), m.goroutines)
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// drainResult is the second half of both scenarios.
type drainResult struct {
	firstSubmit   time.Duration // from the carrier coming back (or the restart)
	firstSubmitAt time.Time
	done          bool
	elapsed       time.Duration // from the same moment to the last receipt
	peak1s        float64
	peakRSS       float64
	receipts      int64
}

// waitDrain polls the engine's receipts until want are recorded or
// timeout passes, printing progress each second.
func waitDrain(n *node, from time.Time, want int64, timeout time.Duration) drainResult {
	var d drainResult
	p := newProgress(n.cfg.out, n)
	deadline := from.Add(timeout)
	nextLine := time.Now().Add(time.Second)
	lastR, lastT := n.receipts(), time.Now()
	for {
		r := n.receipts()
		now := time.Now()
		d.peakRSS = max(d.peakRSS, rssMB())
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
			if t := n.firstSubmitAt(); !t.IsZero() {
				first = fmtDur(t.Sub(from))
			}
			p.print("drain", fmt.Sprintf("receipts %8d / %d  first submit %s  submits %d", r, want, first, n.submits.Load()))
			nextLine = nextLine.Add(time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if t := n.firstSubmitAt(); !t.IsZero() {
		d.firstSubmit, d.firstSubmitAt = t.Sub(from), t
	}
	d.peakRSS = max(d.peakRSS, hwmMB())
	return d
}

func runQueue(cfg nodeConfig, o queueOpts) (ok bool, err error) {
	out := cfg.out
	n, err := startNode(cfg, true)
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := n.close(30 * time.Second); cerr != nil {
			fmt.Fprintln(out, "stop:", cerr)
		}
	}()
	resetPeakRSS()
	base := settledMemory()
	fmt.Fprintf(out, "gateway up on %s, simulator on %s refusing binds; baseline %s\n", n.addr, n.sim.Addr(), base)

	// Accept phase.
	if o.cpuProfile != "" && o.profile == "accept" {
		if err := startProfile(o.cpuProfile); err != nil {
			return false, err
		}
	}
	u0 := sampleUsage()
	t0 := time.Now()
	c := acceptBatches(n, o)
	acceptDur := time.Since(t0)
	u1 := sampleUsage()
	if o.cpuProfile != "" && o.profile == "accept" {
		pprof.StopCPUProfile()
	}
	proc, machine := u0.since(u1)
	accepted, parts := c.accepted.Load(), c.parts.Load()
	hwmAccept := hwmMB()
	via := fmt.Sprintf("batches of %d", o.batch)
	if o.batch == 1 {
		via = "POST /v1/messages, one a request,"
	}
	fmt.Fprintf(out, "\naccepted %d messages (%d parts) in %v: %.0f msg/s via %s on %d conns; cpu %.2f cores (machine %.2f)\n",
		accepted, parts, acceptDur.Round(time.Millisecond), float64(accepted)/acceptDur.Seconds(), via, o.conns, proc, machine)
	fmt.Fprintf(out, "requests %d, statuses %v, rejected items %d %v, transport errors %d\n",
		c.requests.Load(), c.status, c.rejected.Load(), c.codes, c.transport.Load())
	if s := n.submits.Load(); s != 0 {
		fmt.Fprintf(out, "WARNING: the simulator accepted %d submits while refusing binds\n", s)
	}
	queued := settledMemory()
	fmt.Fprintf(out, "with %d queued, after GC + FreeOSMemory: %s\n", accepted, queued)
	fmt.Fprintf(out, "peak RSS during the accept phase (VmHWM): %.0f MB\n", hwmAccept)

	var open gwnode.Timings
	var stopDur time.Duration
	if o.restart {
		t := time.Now()
		if err := n.stopGateway(60 * time.Second); err != nil {
			fmt.Fprintln(out, "clean stop reported:", err)
		}
		stopDur = time.Since(t)
		fmt.Fprintf(out, "gateway stopped cleanly in %v (simulator kept running); after GC: %s\n",
			stopDur.Round(time.Millisecond), settledMemory())
	}

	// Drain phase: the carrier comes back (and, for --restart-pending, a new
	// engine starts on the store).
	resetPeakRSS()
	n.armFirstSubmit()
	submitsBefore := n.submits.Load()
	if o.cpuProfile != "" && o.profile == "drain" {
		if err := startProfile(o.cpuProfile); err != nil {
			return false, err
		}
	}
	u2 := sampleUsage()
	var from time.Time
	if o.restart {
		n.sim.SetFaults(smsc.Faults{})
		from = time.Now()
		if open, err = n.openGateway(); err != nil {
			return false, fmt.Errorf("restart: %w", err)
		}
		fmt.Fprintf(out, "restart: store open %v, engine start %v, http %v\n",
			open.Store.Round(time.Millisecond), open.EngineStart.Round(time.Millisecond), open.HTTP.Round(time.Millisecond))
	} else {
		from = time.Now()
		n.sim.SetFaults(smsc.Faults{})
	}
	d := waitDrain(n, from, parts, o.drain)
	u3 := sampleUsage()
	if o.cpuProfile != "" && o.profile == "drain" {
		pprof.StopCPUProfile()
	}
	proc, machine = u2.since(u3)
	after := settledMemory()

	fmt.Fprintln(out)
	fmt.Fprintln(out, "== summary ==")
	mode := "--queue"
	if o.restart {
		mode = "--restart-pending"
	}
	fmt.Fprintf(out, "%s %d: accepted %d msgs (%d parts) with the carrier down in %v (%.0f msg/s)\n",
		mode, o.n, accepted, parts, acceptDur.Round(time.Millisecond), float64(accepted)/acceptDur.Seconds())
	fmt.Fprintf(out, "memory with %d queued (after GC): RSS %.0f MB; peak during accept (VmHWM) %.0f MB; Go heap in use %.0f MB\n",
		accepted, queued.rss, hwmAccept, mb(queued.heapInuse))
	if o.restart {
		fmt.Fprintf(out, "restart: clean stop %v; reopen: store %v + engine start %v; first submit %v after the reopen began (%v after Engine.Start)\n",
			stopDur.Round(time.Millisecond), open.Store.Round(time.Millisecond), open.EngineStart.Round(time.Millisecond),
			fmtDur(d.firstSubmit), fmtDur(d.firstSubmitAt.Sub(open.EngineStarted)))
	} else {
		fmt.Fprintf(out, "carrier back: first submit %v after SetFaults({})\n", fmtDur(d.firstSubmit))
	}
	if d.done {
		span := d.elapsed - d.firstSubmit
		fmt.Fprintf(out, "drain: all %d parts receipted in %v: %.0f/s overall, %.0f/s from the first submit, peak 1 s %.0f/s\n",
			parts, d.elapsed.Round(time.Millisecond), float64(parts)/d.elapsed.Seconds(), float64(parts)/span.Seconds(), d.peak1s)
	} else {
		fmt.Fprintf(out, "drain: NOT complete: %d of %d parts receipted in %v (%.0f/s)\n",
			d.receipts, parts, d.elapsed.Round(time.Millisecond), float64(d.receipts)/d.elapsed.Seconds())
	}
	fmt.Fprintf(out, "drain: peak RSS %.0f MB; cpu %.2f cores (machine %.2f); simulator submits %d (%d extra)\n",
		d.peakRSS, proc, machine, n.submits.Load()-submitsBefore, max(n.submits.Load()-submitsBefore-parts, 0))
	fmt.Fprintf(out, "after drain, after GC: %s\n", after)
	return d.done, nil
}
