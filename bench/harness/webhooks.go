package harness

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/switchboard-sms/switchboard/http/sink"
)

// The webhook scenario (--webhooks N): how fast callbacks queued in the
// store reach one healthy receiver on loopback, and (--dead-events M)
// what M callbacks queued for a dead endpoint cost in memory and whether
// they slow the healthy one.
//
//  1. Key 1's callbacks go to a closed port. M/2 messages are accepted and
//     receipted: M callbacks (submitted and delivered) wait in the outbox.
//     Memory is measured.
//  2. Key 0's callbacks go to a sink answering 503. N/2 messages are
//     accepted and receipted: N callbacks wait, the circuit open.
//     With --bad-events K, K callbacks each are queued first for an
//     endpoint that never answers (requests time out) and one that
//     answers 500; they keep being retried while the healthy one drains.
//  3. The sink turns healthy. From its first accepted event to its N-th
//     is the delivery rate: store → endpoint actor → HTTP client → sink,
//     all on this machine's cores.

type webhookOpts struct {
	events, dead int
	bad          int // callbacks queued for each of a hanging and a failing endpoint
	queue        queueOpts
	drain        time.Duration
}

func runWebhooks(cfg nodeConfig, o webhookOpts) (ok bool, err error) {
	// Two callbacks per message (submitted and delivered: the gateway's
	// default statuses), whatever --callback-statuses says for load mode:
	// the counts below assume it.
	cfg.callbackStatuses = 0
	out := cfg.out
	var healthy atomic.Bool
	s, err := sink.Start(sink.Options{Respond: func(sink.Event) sink.Answer {
		if healthy.Load() {
			return sink.Answer{Status: http.StatusNoContent}
		}
		return sink.Answer{Status: http.StatusServiceUnavailable}
	}})
	if err != nil {
		return false, err
	}
	defer s.Close()
	dead, err := closedPort()
	if err != nil {
		return false, err
	}
	hanging, err := sink.Start(sink.Options{Respond: func(sink.Event) sink.Answer { return sink.Answer{Hang: true} }})
	if err != nil {
		return false, err
	}
	defer hanging.Close()
	failing, err := sink.Start(sink.Options{Respond: func(sink.Event) sink.Answer { return sink.Answer{Status: http.StatusInternalServerError} }})
	if err != nil {
		return false, err
	}
	defer failing.Close()
	cfg.keys = 4
	cfg.callbackURLs = []string{s.URL() + "/hook", "http://" + dead + "/hook", hanging.URL() + "/hang", failing.URL() + "/fail"}
	n, err := startNode(cfg, false)
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := n.close(30 * time.Second); cerr != nil {
			fmt.Fprintln(out, "stop:", cerr)
		}
	}()
	fmt.Fprintf(out, "gateway up on %s; healthy sink %s (answering 503 for now), dead endpoint %s; baseline %s\n",
		n.addr, s.URL(), dead, settledMemory())

	var receipted int64
	if o.dead > 0 {
		fmt.Fprintf(out, "\n== queueing %d callbacks for the dead endpoint ==\n", o.dead)
		if receipted, err = acceptAndReceipt(n, 1, o.dead/2, receipted, o); err != nil {
			return false, err
		}
		fmt.Fprintf(out, "with %d callbacks queued for a dead endpoint, after GC + FreeOSMemory: %s\n", o.dead, settledMemory())
	}
	if o.bad > 0 {
		fmt.Fprintf(out, "\n== queueing %d callbacks each for a hanging and a failing endpoint ==\n", o.bad)
		for _, k := range []int{2, 3} {
			if receipted, err = acceptAndReceipt(n, k, o.bad/2, receipted, o); err != nil {
				return false, err
			}
		}
	}
	fmt.Fprintf(out, "\n== queueing %d callbacks for the healthy sink ==\n", o.events)
	if receipted, err = acceptAndReceipt(n, 0, o.events/2, receipted, o); err != nil {
		return false, err
	}
	_ = receipted

	self.resetPeak()
	u0 := self.sample()
	healthy.Store(true)
	flipped := time.Now()
	if !s.Wait(5*time.Minute, func(evs []sink.Event) bool { return len(evs) > 0 }) {
		return false, fmt.Errorf("the healthy sink got nothing within 5 minutes")
	}
	first := time.Now()
	got := s.Wait(o.drain, func(evs []sink.Event) bool { return len(evs) >= o.events })
	elapsed := time.Since(first)
	proc, machine := u0.since(self.sample())
	st := s.Stats()
	fmt.Fprintf(out, "\n== delivery ==\n")
	fmt.Fprintf(out, "first event %v after the sink turned healthy (its circuit was open)\n", first.Sub(flipped).Round(time.Millisecond))
	fmt.Fprintf(out, "delivered %d distinct events in %v: %.0f events/s; duplicates %d, out of order %d\n",
		st.Events, elapsed.Round(time.Millisecond), float64(st.Events)/elapsed.Seconds(), st.Duplicates, st.OutOfOrder)
	fmt.Fprintf(out, "cpu %.2f cores (machine %.2f); peak RSS during delivery %.0f MB; engine %+v\n",
		proc, machine, self.hwmMB(), n.gw.Engine.Stats().Webhooks)
	if o.bad > 0 {
		fmt.Fprintf(out, "meanwhile: the hanging endpoint got %d requests, the failing one %d\n", hanging.Stats().Requests, failing.Stats().Requests)
	}
	if !got {
		fmt.Fprintf(out, "LOST: %d of %d events did not arrive within %v\n", o.events-st.Events, o.events, o.drain)
		return false, nil
	}
	return st.OutOfOrder == 0, nil
}

// acceptAndReceipt accepts msgs messages for key k in batches and waits
// until every one is receipted (so its callbacks are stored).
func acceptAndReceipt(n *node, k, msgs int, before int64, o webhookOpts) (int64, error) {
	out := n.cfg.out
	q := o.queue
	q.n = msgs
	q.gen = newGen(q.gen.variants, 1000, []string{n.secrets[k]})
	t0 := time.Now()
	c := acceptBatches(n.addr, q, newProgress(out, n))
	if got := c.accepted.Load(); got != int64(msgs) {
		return 0, fmt.Errorf("accepted %d of %d messages", got, msgs)
	}
	want := before + int64(msgs)
	deadline := time.Now().Add(o.drain)
	for n.receipts() < want {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d messages receipted within %v", n.receipts()-before, msgs, o.drain)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(out, "\n%d messages accepted and receipted in %v\n", msgs, time.Since(t0).Round(time.Millisecond))
	return want, nil
}

// closedPort returns a loopback address nothing listens on.
func closedPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}
