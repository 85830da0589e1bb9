// Package sink is a webhook receiver that records every callback it gets:
// the real HTTP endpoint that tests and the bench point callback URLs at.
// It checks signatures, counts duplicates (by event_id) and notices
// events of one message arriving out of order, and it can be told to
// answer with an error, answer late, or hang, to play a failing or slow
// customer.
//
// A key with callback_batch above 1 posts JSON arrays of events; the sink
// takes those too, and records each event in them.
//
// It also takes Kannel's delivery reports: GET /kannel?n=N&status=T, the
// dlr-url the bench gives Kannel's sendsms ("status=%d" filled in by
// Kannel with the DLR type), recorded as events of message "kannel-N".
package sink

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Event is one callback as received.
type Event struct {
	EventID   string `json:"event_id"`
	Attempt   int    `json:"attempt"`
	Type      string `json:"type"`
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
	Body      string `json:"body"`
	Partial   bool   `json:"partial"`
	// Received is when the sink read it.
	Received time.Time `json:"-"`
}

// Answer is what the sink replies to one request: a status (0: the
// sink's default, 204) and an optional Retry-After in seconds; Delay
// makes it answer that much later
// (a slow endpoint; the event counts as received when the answer goes
// out); Hang makes it never answer (until the sink closes), like an
// endpoint that times out.
type Answer struct {
	Status     int
	RetryAfter int
	Delay      time.Duration
	Hang       bool
}

// Options configure a sink.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Verify, if set, checks each request's signature header against the
	// raw body; a request that fails is answered 401 and counted.
	Verify func(signature string, body []byte) error
	// Respond picks the answer to each event; nil answers 204. A batch
	// gets the first answer, in the batch's order, that is not a plain
	// success (an error status, a delay or a hang), else its first
	// event's; Respond is not asked about the events after that one.
	Respond func(Event) Answer
	// OnEvent, if set, is called once for each distinct event accepted
	// (not for duplicates), after it is recorded, from the request's
	// goroutine: it must be safe for concurrent use and quick.
	OnEvent func(Event)
	// Discard keeps no list of events (a long load run would hold every
	// one): Events returns none and Wait's condition sees none. Counters,
	// duplicates and OnEvent still work.
	Discard bool
}

// Sink is a running receiver.
type Sink struct {
	opts   Options
	ln     net.Listener
	srv    *fasthttp.Server
	served chan error
	closed chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu         sync.Mutex
	events     []Event  // first receipt of each event_id, in arrival order (unless Discard)
	distinct   int      // distinct events accepted
	seen       *seenIDs // event_ids received, and each message's highest
	requests   int
	batches    int
	largest    int // events in the largest batch
	duplicates int
	outOfOrder int
	badSig     int
	changed    chan struct{} // made by Wait, closed and cleared by the next event
}

// Start listens and serves until Close.
func Start(opts Options) (*Sink, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{opts: opts, ln: ln, served: make(chan error, 1), closed: make(chan struct{}),
		seen: newSeenIDs()}
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "sink", ReadTimeout: 30 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is the sink's base URL (any path is accepted).
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() }

// Addr is the listening address.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops serving; hanging requests are released. Later calls
// return the first one's result.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.closeErr = s.srv.Shutdown()
		if serr := <-s.served; serr != nil && !errors.Is(serr, net.ErrClosed) && s.closeErr == nil {
			s.closeErr = serr
		}
	})
	return s.closeErr
}

func (s *Sink) handle(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	if ctx.IsGet() && string(ctx.Path()) == "/kannel" {
		s.handleKannel(ctx)
		return
	}
	body := ctx.PostBody()
	if s.opts.Verify != nil {
		if err := s.opts.Verify(string(ctx.Request.Header.Peek("Switchboard-Signature")), body); err != nil {
			s.mu.Lock()
			s.badSig++
			s.mu.Unlock()
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
	}
	evs, ok := decodeEvents(body)
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	if isArray(body) {
		s.mu.Lock()
		s.batches++
		s.largest = max(s.largest, len(evs))
		s.mu.Unlock()
	}
	s.answer(ctx, evs, fasthttp.StatusNoContent)
}

// decide asks Respond (default: status def) about a request's events.
func (s *Sink) decide(evs []Event, def int) Answer {
	if s.opts.Respond == nil {
		return Answer{Status: def}
	}
	var first Answer
	for i, ev := range evs {
		a := s.opts.Respond(ev)
		if a.Status == 0 {
			a.Status = def
		}
		if a.Hang || a.Delay > 0 || a.Status < 200 || a.Status >= 300 {
			return a
		}
		if i == 0 {
			first = a
		}
	}
	return first
}

// answer decides, waits as told, records the events if the answer is a
// success, and writes the answer.
func (s *Sink) answer(ctx *fasthttp.RequestCtx, evs []Event, def int) {
	answer := s.decide(evs, def)
	if answer.Hang {
		select {
		case <-s.closed:
		case <-time.After(5 * time.Minute):
		}
		refuse(ctx)
		return
	}
	if answer.Delay > 0 {
		t := time.NewTimer(answer.Delay)
		select {
		case <-s.closed:
			t.Stop()
			refuse(ctx)
			return
		case <-t.C:
		}
	}
	if answer.Status >= 200 && answer.Status < 300 {
		now := time.Now()
		for _, ev := range evs {
			ev.Received = now
			s.record(ev)
		}
	}
	if answer.RetryAfter > 0 {
		ctx.Response.Header.SetContentLength(0)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(answer.RetryAfter))
	}
	ctx.SetStatusCode(answer.Status)
}

// refuse answers a request the sink did not record: never a success,
// which fasthttp would send for no status.
func refuse(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.SetConnectionClose()
}

// KannelType is the Type of events made from Kannel delivery reports.
const KannelType = "kannel.dlr"

// kannelStatus maps Kannel's DLR types to statuses: 1 delivered, 2
// undelivered (failed), 4 queued on the SMSC, 8 SMSC accepted (submitted,
// intermediate), 16 SMSC rejected (failed).
var kannelStatus = map[string]string{"1": "delivered", "2": "failed", "4": "queued", "8": "submitted", "16": "failed"}

// handleKannel turns GET /kannel?n=N&status=T (a Kannel dlr-url) into the
// event "kannel-N-T" of message "kannel-N"; without Respond it answers 200.
func (s *Sink) handleKannel(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	n, typ := string(args.Peek("n")), string(args.Peek("status"))
	status, ok := kannelStatus[typ]
	if n == "" || strings.ContainsAny(n, "-/") || !ok {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	s.answer(ctx, []Event{{EventID: "kannel-" + n + "-" + typ, Type: KannelType, MessageID: "kannel-" + n, Status: status}}, fasthttp.StatusOK)
}

// record notes a delivered event: its first receipt, or a duplicate.
func (s *Sink) record(ev Event) {
	s.mu.Lock()
	if s.seen.add(ev.EventID) > 1 {
		s.duplicates++
		s.mu.Unlock()
		return
	}
	if !s.seen.later(ev.MessageID, ev.EventID) {
		s.outOfOrder++
	}
	s.distinct++
	if !s.opts.Discard {
		s.events = append(s.events, ev)
	}
	if s.changed != nil { // someone waits
		close(s.changed)
		s.changed = nil
	}
	s.mu.Unlock()
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(ev)
	}
}

// Stats are the sink's counters.
type Stats struct {
	Requests   int // every request received, answered or not
	Batches    int // requests whose body was an array of events
	Largest    int // events in the largest of them
	Events     int // distinct events accepted
	Duplicates int // accepted again after the first time
	OutOfOrder int // accepted after a later event of the same message
	BadSig     int // refused for a bad signature
}

// Stats returns a snapshot of the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Requests: s.requests, Batches: s.batches, Largest: s.largest, Events: s.distinct, Duplicates: s.duplicates, OutOfOrder: s.outOfOrder, BadSig: s.badSig}
}

// Events returns a copy of the distinct events accepted, in arrival order.
func (s *Sink) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Wait blocks until cond (called with the events so far, which it must
// not keep) is true, or the
// timeout passes; it reports whether cond became true.
func (s *Sink) Wait(timeout time.Duration, cond func([]Event) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.events)
		if !ok && s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}
