package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// Metrics receives the engine's measurements as they happen. The engine
// imports no metrics library: http/ implements this with Prometheus (and
// Gauges is read at scrape time). Every label it is given comes from a
// bounded set (carrier names, statuses, receipt states, store operations),
// never a message or a phone number. Implementations are safe for
// concurrent use and cheap: they are called on the message path.
type Metrics interface {
	// CarrierSubmit: one submit_sm part to carrier was answered (its
	// submit_sm_resp or generic_nack) d after it was written.
	CarrierSubmit(carrier string, d time.Duration)
	// Receipt: a receipt came from carrier, in state: a final status
	// (delivered, undeliverable, expired, rejected), "intermediate", or
	// "unmatched" (no message has its carrier id yet; it is kept until
	// one does).
	Receipt(carrier, state string)
	// MessageFinal: a message reached final status s.
	MessageFinal(s switchboard.Status)
	// StoreWrite: one store write of kind op ("accept", "record",
	// "finish_callbacks", "accept_inbound") took d, fsync included.
	StoreWrite(op string, d time.Duration)
}

// ReceiptIntermediate and ReceiptUnmatched are the receipt states of
// Metrics.Receipt that are not statuses.
const (
	ReceiptIntermediate = "intermediate"
	ReceiptUnmatched    = "unmatched"
)

type noMetrics struct{}

func (noMetrics) CarrierSubmit(string, time.Duration) {}
func (noMetrics) Receipt(string, string)              {}
func (noMetrics) MessageFinal(switchboard.Status)     {}
func (noMetrics) StoreWrite(string, time.Duration)    {}

// Gauges is the engine's state at one moment, for /metrics and the admin
// API.
type Gauges struct {
	// QueueLag counts messages accepted and not yet submitted, by the
	// first carrier of their route; "" counts those waiting only in the
	// store (beyond the key's window or the node's held budget), whose
	// carrier is decided when they are paged in. The total is the sum.
	QueueLag map[string]int64
	// Held and MaxHeld: messages the key actors hold in memory, and the
	// budget; KeysWaiting: keys in line for it (their messages wait in
	// the store, "paged"). Sending and MaxSending: submits at the binds.
	Held, MaxHeld, KeysWaiting int
	Sending, MaxSending        int
	KeyActors                  int
	// WebhookBacklog counts callbacks queued and not yet delivered or
	// given up on (counted from the outbox at start, then kept up).
	WebhookBacklog int64
	Webhooks       WebhookStats
	Binds          []BindStatus
}

// gaugeState keeps the counts behind Gauges.
type gaugeState struct {
	// pending counts messages accepted and not yet submitted, of the
	// keys whose actors run here: the sum of their counts (setQueued).
	pending atomic.Int64
	backlog atomic.Int64
	mu      sync.Mutex
	// lag counts, per carrier, the messages held in key actors' queues.
	lag map[string]*atomic.Int64
}

// lagOf returns the counter of messages held for carrier.
func (g *gaugeState) lagOf(carrier string) *atomic.Int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lag == nil {
		g.lag = make(map[string]*atomic.Int64)
	}
	c := g.lag[carrier]
	if c == nil {
		c = new(atomic.Int64)
		g.lag[carrier] = c
	}
	return c
}

// primary is the first carrier of to's route, "" if none matches.
func (r *router) primary(to string) string {
	if cs := r.load().routes.Match(to); len(cs) > 0 {
		return cs[0]
	}
	return ""
}

// lagLeft counts n entries out of q's lag.
func (k *keyActor) lagLeft(q *destQueue, n int) { q.lag.Add(-int64(n)) }

// lagDropped counts out every entry the instance holds: it is being
// replaced or stopped, and its entries go with it.
func (k *keyActor) lagDropped() {
	for _, q := range k.dests {
		k.lagLeft(q, len(q.entries))
		q.entries = nil
	}
}

// Gauges returns the engine's gauges.
func (e *Engine) Gauges() Gauges {
	g := Gauges{
		QueueLag: map[string]int64{},
		MaxHeld:  e.cfg.MaxHeld, MaxSending: e.cfg.MaxSending,
		WebhookBacklog: max(e.gauges.backlog.Load(), 0),
		Webhooks:       e.webhooks.stats(),
		Binds:          e.Binds(),
	}
	if e.held != nil {
		g.Held, g.Sending = e.held.inUse(), e.sending.inUse()
		e.held.mu.Lock()
		g.KeysWaiting = len(e.held.waiting)
		e.held.mu.Unlock()
		g.KeyActors = e.KeyActors()
	}
	var held int64
	e.gauges.mu.Lock()
	for c, n := range e.gauges.lag {
		if v := n.Load(); v != 0 || c != "" {
			g.QueueLag[c] += v
			held += v
		}
	}
	e.gauges.mu.Unlock()
	g.QueueLag[""] += max(e.gauges.pending.Load()-held, 0)
	for c := range e.router.load().carriers {
		g.QueueLag[c] += 0 // every carrier has a series, zero or not
	}
	return g
}

// countBacklog counts the callbacks queued in the outbox when the engine
// starts.
func (e *Engine) countBacklog(ctx context.Context) error {
	endpoints, err := e.store.CallbackEndpoints(ctx)
	if err != nil {
		return err
	}
	for _, ep := range endpoints {
		for after := ""; ; {
			cbs, err := e.store.Callbacks(ctx, ep, after, "", 10000)
			if err != nil {
				return err
			}
			e.gauges.backlog.Add(int64(len(cbs)))
			if len(cbs) < 10000 {
				break
			}
			after = cbs[len(cbs)-1].ID
		}
	}
	return nil
}

// instrument puts a store in front of store that times its writes and
// keeps the pending and backlog counts, and sets the engine's sink.
func (e *Engine) instrument(store switchboard.Store, m Metrics) {
	if m == nil {
		m = noMetrics{}
	}
	e.metrics = m
	e.store = &meteredStore{Store: store, m: m, g: &e.gauges}
}

// meteredStore measures the writes of the store it wraps.
type meteredStore struct {
	switchboard.Store
	m Metrics
	g *gaugeState
}

func (s *meteredStore) Accept(ctx context.Context, msgs []switchboard.NewMessage) error {
	t := time.Now()
	err := s.Store.Accept(ctx, msgs)
	s.m.StoreWrite("accept", time.Since(t))
	return err
}

// Record counts what each update did, read from its Notify (every writer
// in the engine gives one): a final status reached, callbacks queued.
func (s *meteredStore) Record(ctx context.Context, updates []switchboard.Update) ([]*switchboard.Message, error) {
	t := time.Now()
	msgs, err := s.Store.Record(ctx, updates)
	s.m.StoreWrite("record", time.Since(t))
	if err != nil {
		return msgs, err
	}
	for i, m := range msgs {
		n := updates[i].Notify
		if m == nil || n == nil || n.Before == "" {
			continue
		}
		s.g.backlog.Add(int64(n.Queued))
		if n.Before != m.Status && m.Status.Final() && !n.Before.Final() {
			s.m.MessageFinal(m.Status)
		}
	}
	return msgs, nil
}

func (s *meteredStore) FinishCallbacks(ctx context.Context, done []switchboard.FinishedCallback) error {
	t := time.Now()
	err := s.Store.FinishCallbacks(ctx, done)
	s.m.StoreWrite("finish_callbacks", time.Since(t))
	if err == nil {
		s.g.backlog.Add(-int64(len(done)))
	}
	return err
}

func (s *meteredStore) AcceptInbound(ctx context.Context, m *switchboard.Message, cb *switchboard.Callback, parts []switchboard.InboundPart) error {
	t := time.Now()
	err := s.Store.AcceptInbound(ctx, m, cb, parts)
	s.m.StoreWrite("accept_inbound", time.Since(t))
	if err == nil && cb != nil {
		s.g.backlog.Add(1)
	}
	return err
}
