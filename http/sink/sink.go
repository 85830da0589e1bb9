// Package sink is a webhook receiver that records every callback it gets:
// the real HTTP endpoint that tests and the bench point callback URLs at.
// It checks signatures, counts duplicates (by event_id) and notices
// events of one message arriving out of order, and it can be told to
// answer with an error, or hang, to play a failing customer.
package sink

import (
	"encoding/json"
	"errors"
	"net"
	"strconv"
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

// Answer is what the sink replies to one request: a status and an
// optional Retry-After in seconds; Hang makes it never answer (until the
// sink closes), like an endpoint that times out.
type Answer struct {
	Status     int
	RetryAfter int
	Hang       bool
}

// Options configure a sink.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Verify, if set, checks each request's signature header against the
	// raw body; a request that fails is answered 401 and counted.
	Verify func(signature string, body []byte) error
	// Respond picks the answer to each event; nil answers 204.
	Respond func(Event) Answer
}

// Sink is a running receiver.
type Sink struct {
	opts   Options
	ln     net.Listener
	srv    *fasthttp.Server
	served chan error
	closed chan struct{}

	mu         sync.Mutex
	events     []Event           // first receipt of each event_id, in arrival order
	seen       map[string]int    // event_id → times received
	lastByMsg  map[string]string // message_id → highest event_id delivered
	requests   int
	duplicates int
	outOfOrder int
	badSig     int
	changed    chan struct{} // closed and replaced on every event
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
		seen: make(map[string]int), lastByMsg: make(map[string]string), changed: make(chan struct{})}
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "sink", ReadTimeout: 30 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is the sink's base URL (any path is accepted).
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() }

// Addr is the listening address.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops serving; hanging requests are released.
func (s *Sink) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	err := s.srv.Shutdown()
	if serr := <-s.served; serr != nil && !errors.Is(serr, net.ErrClosed) && err == nil {
		err = serr
	}
	return err
}

func (s *Sink) handle(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
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
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	ev.Received = time.Now()
	answer := Answer{Status: fasthttp.StatusNoContent}
	if s.opts.Respond != nil {
		answer = s.opts.Respond(ev)
	}
	if answer.Hang {
		select {
		case <-s.closed:
		case <-time.After(5 * time.Minute):
		}
		return
	}
	if answer.Status >= 200 && answer.Status < 300 {
		s.record(ev)
	}
	if answer.RetryAfter > 0 {
		ctx.Response.Header.SetContentLength(0)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(answer.RetryAfter))
	}
	ctx.SetStatusCode(answer.Status)
}

// record notes a delivered event: its first receipt, or a duplicate.
func (s *Sink) record(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[ev.EventID]++
	if s.seen[ev.EventID] > 1 {
		s.duplicates++
		return
	}
	if last := s.lastByMsg[ev.MessageID]; last > ev.EventID {
		s.outOfOrder++
	} else {
		s.lastByMsg[ev.MessageID] = ev.EventID
	}
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Stats are the sink's counters.
type Stats struct {
	Requests   int // every request received, answered or not
	Events     int // distinct events accepted
	Duplicates int // accepted again after the first time
	OutOfOrder int // accepted after a later event of the same message
	BadSig     int // refused for a bad signature
}

// Stats returns a snapshot of the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Requests: s.requests, Events: len(s.events), Duplicates: s.duplicates, OutOfOrder: s.outOfOrder, BadSig: s.badSig}
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
		ok, changed := cond(s.events), s.changed
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
