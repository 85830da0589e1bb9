package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
)

// Config is what the engine is built from. cmd/switchboard fills it from
// cluster.yaml.
type Config struct {
	Store    switchboard.Store
	Keys     *switchboard.KeyRing
	Routes   []switchboard.Route
	Carriers []CarrierConfig

	MaxParts        int           // default 10
	DefaultValidity time.Duration // default 48h
	MaxValidity     time.Duration // default 72h
	// KeyWindow is how many messages a key actor holds in memory; the rest
	// wait in the store. Default 1000.
	KeyWindow int
	// MaxHeld is how many messages all key actors hold in memory together
	// (about 1 KB each), however many keys have messages waiting. Default
	// 50,000.
	MaxHeld int
	// MaxSending is how many submits all key actors together may have
	// handed to the binds and not had answered. Each bind queues up to
	// 16,384, so below that no bind's queue fills and no submit bounces.
	// Default 8,192, or twice the binds' windows if that is more.
	MaxSending int
	// IdleTimeout stops a key actor that has had nothing to do this long.
	// Default 1 minute.
	IdleTimeout time.Duration
	// RequestTimeout bounds one API call's wait for its key actor's
	// answer (not the durable write that follows). Default 10s.
	RequestTimeout time.Duration
	// Restart backoff for failed binds (defaults 1s → 60s).
	RestartMin, RestartMax time.Duration

	// Webhooks tunes callback delivery.
	Webhooks WebhookConfig
	// Fleet makes the engine one node of a cluster (nil: a single node).
	Fleet *FleetConfig

	// ReceiptSweep is how often messages whose receipt is overdue are
	// looked for and ended unknown (default 1 minute).
	ReceiptSweep time.Duration

	// ReadyRequiresCarrier makes Ready fail while the first carrier of
	// any route has no bound bind (node.ready_requires_carrier).
	ReadyRequiresCarrier bool

	// InboundTimeout is how long the parts of a long inbound message are
	// waited for before it is delivered as partial (default 5 minutes).
	InboundTimeout time.Duration

	// Metrics receives measurements as they happen (nil: none); gauges
	// are read with Engine.Gauges.
	Metrics Metrics

	Log zerolog.Logger
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxParts <= 0 {
		c.MaxParts = 10
	}
	if c.DefaultValidity <= 0 {
		c.DefaultValidity = 48 * time.Hour
	}
	if c.MaxValidity <= 0 {
		c.MaxValidity = 72 * time.Hour
	}
	if c.KeyWindow <= 0 {
		c.KeyWindow = 1000
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = 50_000
	}
	if c.MaxSending <= 0 {
		c.MaxSending = 8192
		for _, cc := range c.Carriers {
			c.MaxSending = max(c.MaxSending, 2*cc.Binds*cc.SMPP.Window)
		}
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.RestartMin <= 0 {
		c.RestartMin = time.Second
	}
	if c.RestartMax <= 0 {
		c.RestartMax = time.Minute
	}
	if c.InboundTimeout <= 0 {
		c.InboundTimeout = 5 * time.Minute
	}
	if c.ReceiptSweep <= 0 {
		c.ReceiptSweep = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Engine runs the actors. It implements the API the http package calls.
type Engine struct {
	cfg      Config
	log      zerolog.Logger
	store    switchboard.Store
	system   *actor.ActorSystem
	router   *router
	registry *registry
	held     *budget // messages in memory, all keys
	sending  *budget // submits at the binds, all keys
	corr     *correlator
	recorder *recorder
	ids      *eventIDs
	webhooks *dispatcher
	inbound  *inbound
	// carriers are the supervisors spawned at start, in the order of
	// Config.Carriers (the fleet places their binds by it).
	carriers []*actor.PID
	// live holds the running carriers and what can change while the
	// engine runs (admin.go); metrics and gauges are metrics.go's.
	live    liveState
	metrics Metrics
	gauges  gaugeState

	// background work (durable writes) runs in goroutines tracked here and
	// is waited for on Stop.
	bg     *tasks
	bgStop context.Context
	bgEnd  context.CancelFunc

	stopping atomic.Bool
	unbound  atomic.Bool // Stop saw every bind down (stopCarriers)
	stats    engineStats
	// nextInst numbers key actor instances.
	nextInst atomic.Uint64
	// fleet is the engine's part in a cluster; nil on a single node.
	fleet *fleet
}

type engineStats struct {
	submitted, receipts, receiptsParked, unknown, inbound, inboundUnknown atomic.Int64
}

// Stats are the engine's counters since start.
type Stats struct {
	Submitted int64 // messages a carrier accepted
	Receipts  int64 // receipts recorded
	// ReceiptsParked counts receipts whose carrier id matched no message
	// when they came: kept until their submit is recorded (or until the
	// carrier's receipt timeout).
	ReceiptsParked int64
	// Unknown counts messages that ended unknown: no receipt within their
	// carrier's receipt timeout.
	Unknown        int64
	Inbound        int64 // inbound messages stored
	InboundUnknown int64 // inbound parts (deliver_sm) to a number no key owns (logged, acknowledged, not stored)
	// InboundWaiting counts the parts of long inbound messages stored and
	// waiting for the rest of their message.
	InboundWaiting int64
	Webhooks       WebhookStats
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Submitted: e.stats.submitted.Load(), Receipts: e.stats.receipts.Load(),
		ReceiptsParked: e.stats.receiptsParked.Load(), Unknown: e.stats.unknown.Load(),
		Inbound: e.stats.inbound.Load(), InboundUnknown: e.stats.inboundUnknown.Load(),
		InboundWaiting: int64(e.inbound.parts.Held()), Webhooks: e.webhooks.stats(),
	}
}

// New checks cfg and builds an engine; Start runs it.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("actors: store and keys are required")
	}
	carriers := make(map[string]*carrier, len(cfg.Carriers))
	for _, c := range cfg.Carriers {
		if c.Name == "" || c.Binds < 1 {
			return nil, fmt.Errorf("actors: carrier %q needs a name and at least one bind", c.Name)
		}
		if carriers[c.Name] != nil {
			return nil, fmt.Errorf("actors: carrier %q defined twice", c.Name)
		}
		carriers[c.Name] = newCarrier(c)
	}
	for _, r := range cfg.Routes {
		for _, name := range r.Carriers {
			if carriers[name] == nil {
				return nil, fmt.Errorf("actors: route %q names unknown carrier %q", r.Prefix, name)
			}
		}
	}
	e := &Engine{
		cfg: cfg, log: cfg.Log,
		router: newRouter(cfg.Routes, carriers),
		corr:   newCorrelator(), ids: newEventIDs(), bg: newTasks(),
	}
	e.instrument(cfg.Store, cfg.Metrics)
	if cfg.Fleet != nil {
		f, err := newFleet(e, *cfg.Fleet)
		if err != nil {
			return nil, err
		}
		e.fleet = f
	}
	e.webhooks = newDispatcher(e, cfg.Webhooks, e.ids)
	e.recorder = newRecorder(e.store, e.ids, e.webhooks.policy, e.webhooks.hint, e.now)
	e.inbound = newInbound(e)
	e.bgStop, e.bgEnd = context.WithCancel(context.Background())
	return e, nil
}

func (e *Engine) now() time.Time { return e.cfg.Now() }

// Start spawns the carriers and their binds, then a key actor for every key
// with pending messages, which resume them (recovery after a crash).
func (e *Engine) Start(ctx context.Context) error {
	e.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(&slogToZerolog{log: e.log})
	}))
	e.registry = newRegistry(e)
	wake := func(pid *actor.PID, b *budget) { e.system.Root.Send(pid, &budgetFree{b: b}) }
	e.held = newBudget(e.cfg.MaxHeld, wake)
	e.sending = newBudget(e.cfg.MaxSending, wake)
	if e.fleet != nil {
		// Join first: actors spawned before the remote starts would carry
		// an address the other nodes cannot reach.
		if err := e.fleet.start(); err != nil {
			return fmt.Errorf("actors: join the cluster: %w", err)
		}
	}
	if err := e.webhooks.loadSecrets(ctx); err != nil {
		return fmt.Errorf("actors: webhook secrets: %w", err)
	}
	e.recorder.start()
	if err := e.webhooks.start(ctx, e.store); err != nil {
		return fmt.Errorf("actors: recovery: list queued callbacks: %w", err)
	}
	if err := e.inbound.start(ctx); err != nil {
		return fmt.Errorf("actors: recovery: inbound parts: %w", err)
	}
	strategy := &backoffStrategy{
		backoff: switchboard.Backoff{Min: e.cfg.RestartMin, Max: e.cfg.RestartMax},
		calm:    e.cfg.RestartMax * 2, log: e.log,
	}
	e.live.init(strategy, bindDeps{log: e.log, onReceipt: e.onReceipt, onInbound: e.onInbound, onBound: e.bindUp,
		metrics: e.metrics})
	for _, cc := range e.cfg.Carriers {
		if err := e.startCarrier(cc, e.router.carrier(cc.Name)); err != nil {
			return err
		}
	}
	if err := e.countBacklog(ctx); err != nil {
		return fmt.Errorf("actors: recovery: count queued callbacks: %w", err)
	}
	e.background(e.sampleBinds)
	if e.fleet != nil {
		// The fleet starts the keys and binds this node owns, now and
		// whenever the membership changes.
		e.background(e.fleet.watch)
		e.background(func(stop context.Context) { e.sweepOverdueEvery(stop, e.cfg.ReceiptSweep) })
		if err := e.fleet.cfg.Membership.Ready(); err != nil {
			e.log.Warn().Err(err).Msg("this node's readiness spreads more slowly")
		}
		return nil
	}
	keys, err := e.store.PendingKeys(ctx)
	if err != nil {
		return fmt.Errorf("actors: recovery: list keys with pending messages: %w", err)
	}
	for _, id := range keys {
		if _, ok := e.cfg.Keys.Key(id); !ok {
			e.log.Warn().Str("key", id).Msg("pending messages of a key no longer configured; they stay stored, unsent")
			continue
		}
		e.registry.wake(id)
	}
	if len(keys) > 0 {
		e.log.Info().Int("keys", len(keys)).Msg("resuming pending messages")
	}
	e.background(func(stop context.Context) { e.sweepOverdueEvery(stop, e.cfg.ReceiptSweep) })
	return nil
}

// Submit accepts messages for key. See http.Engine. In a cluster a key's
// messages are accepted by the node that owns the key: a request that
// reached another node is forwarded there.
func (e *Engine) Submit(ctx context.Context, key *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
	if first := repeatedIdempotencyKeys(reqs); first != nil {
		return submitOnce(reqs, first, func(reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
			return e.submit(ctx, key, reqs)
		})
	}
	return e.submit(ctx, key, reqs)
}

// repeatedIdempotencyKeys returns, for a batch in which an Idempotency-Key
// repeats, the index of the first request with each request's key (-1 for
// the first itself and for requests without one); nil if none repeats.
func repeatedIdempotencyKeys(reqs []switchboard.SubmitRequest) []int {
	if len(reqs) < 2 {
		return nil
	}
	var seen map[string]int
	var first []int
	for i := range reqs {
		k := reqs[i].IdempotencyKey
		if k == "" {
			continue
		}
		if seen == nil {
			seen = make(map[string]int)
		}
		f, ok := seen[k]
		if !ok {
			seen[k] = i
			continue
		}
		if first == nil {
			first = make([]int, len(reqs))
			for j := range first {
				first[j] = -1
			}
		}
		first[i] = f
	}
	return first
}

// submitOnce submits a batch without its repeats of an Idempotency-Key,
// and gives each repeat what the first request with its key got, as if
// sent again after it: the same message, or idempotency_conflict if the
// repeat is another request.
func submitOnce(reqs []switchboard.SubmitRequest, first []int, submit func([]switchboard.SubmitRequest) []switchboard.SubmitResult) []switchboard.SubmitResult {
	pos := make([]int, len(reqs))
	var once []switchboard.SubmitRequest
	for i := range reqs {
		if first[i] < 0 {
			pos[i] = len(once)
			once = append(once, reqs[i])
		}
	}
	res := submit(once)
	out := make([]switchboard.SubmitResult, len(reqs))
	for i := range reqs {
		switch f := first[i]; {
		case f < 0:
			out[i] = res[pos[i]]
		case reqs[i].RequestHash != reqs[f].RequestHash:
			out[i] = switchboard.SubmitResult{Err: errIdempotencyReused}
		default:
			out[i] = res[pos[f]]
		}
	}
	return out
}

func (e *Engine) submit(ctx context.Context, key *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
	if e.stopping.Load() {
		return failAll(len(reqs), errShuttingDown)
	}
	if e.fleet == nil {
		return e.submitLocal(ctx, key, reqs)
	}
	deadline := time.Now().Add(e.requestTimeout(ctx))
	for retried := false; ; retried = true {
		owner, remote := e.fleet.keyOwner(key.ID)
		var res []switchboard.SubmitResult
		notTaken := false
		switch {
		case owner == "":
			return failAll(len(reqs), switchboard.Errorf(switchboard.EUNAVAILABLE, "No node can take this key's messages now; try again."))
		case remote:
			res, notTaken = e.fleet.forwardSubmit(ctx, owner, key, reqs, e.requestTimeout(ctx))
		default:
			res = e.submitLocal(ctx, key, reqs)
			notTaken = allMoving(res)
		}
		if !notTaken {
			return res
		}
		// The owner took none of them: it is stopping, or the key moves.
		// Once placement names the next owner, that one takes them (a
		// rolling restart refuses nothing that reached a node still up),
		// within the request's time (bounded here only on this rare path,
		// so the usual request makes no context).
		if !retried {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		if !e.fleet.awaitNewOwner(ctx, key.ID, owner) {
			return res
		}
	}
}

// requestTimeout is how long a request may wait for its key's actor: the
// configured bound, or less if ctx ends sooner.
func (e *Engine) requestTimeout(ctx context.Context) time.Duration {
	timeout := e.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	return timeout
}

// submitLocal accepts messages for a key whose actor runs on this node.
func (e *Engine) submitLocal(ctx context.Context, key *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
	b := &submitBatch{reqs: reqs}
	pid, c, err := e.admit(key, b, e.requestTimeout(ctx))
	// The actor reserved the batch's Idempotency-Keys: look them up here,
	// off its goroutine, and ask again with the answers. A new instance of
	// the actor (the old one was replaced meanwhile) reserves them again;
	// after a few rounds the request gives up, and the keys are released.
	for round := 0; err == nil && c.lookup != nil; round++ {
		if round == maxLookupRounds {
			e.system.Root.Send(pid, &idemRelease{inst: c.inst, keys: c.idem})
			return failAll(len(reqs), switchboard.Errorf(switchboard.EUNAVAILABLE, "The key is restarting; try again."))
		}
		b.looked, b.decided, b.inst = e.lookupIdempotency(ctx, key.ID, reqs, c.lookup), c.results, c.inst
		pid, c, err = e.admit(key, b, e.requestTimeout(ctx)) // what is left of it
	}
	if err != nil {
		return failAll(len(reqs), err)
	}
	if len(c.news) == 0 {
		return c.results
	}
	// No timeout on the write, and no cancellation: it ends with its fsync
	// or with the store's error (which fails every write from then on), so
	// a 503 never hides a message that will be sent.
	err = e.store.Accept(context.WithoutCancel(ctx), c.news)
	for i, ent := range c.entries {
		if err != nil {
			c.results[c.index[i]] = switchboard.SubmitResult{Err: e.unavailable(key.ID, err)}
		} else {
			c.results[c.index[i]] = switchboard.SubmitResult{Message: ent.msg}
		}
	}
	results := c.results // the actor does not read results, but owns c after the Send
	c.work.end()
	e.system.Root.Send(pid, &committed{c: c, err: err})
	return results
}

// maxLookupRounds bounds the Idempotency-Key look-ups of one request.
const maxLookupRounds = 3

// admit asks key's actor to admit a batch. The actor cannot retire while a
// request is on its way (the registry counts it) or a commit is pending.
func (e *Engine) admit(key *switchboard.Key, b *submitBatch, timeout time.Duration) (*actor.PID, *commit, error) {
	pid := e.registry.lookup(key.ID)
	if pid == nil {
		return nil, nil, errShuttingDown
	}
	defer e.registry.done(key.ID)
	b.reply = make(chan *commit, 1)
	if e.fleet != nil {
		// Only a clustered key's actor keeps a batch waiting, while the
		// key moves in (keyActor.movingIn): two lease periods at most (by
		// then a node that died has lost the lease, and a live one that
		// still holds it is slow to let go), and answered before the
		// requester gives up, so that it hears why.
		now := e.now()
		b.answerBy = earliest(now.Add(timeout-min(timeout/10, 500*time.Millisecond)), now.Add(2*e.fleet.cfg.LeaseTTL))
	}
	e.system.Root.Send(pid, b)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case c := <-b.reply:
		return pid, c, nil
	case <-t.C:
	}
	// The actor may still answer, holding messages that no one will
	// write, or keys reserved for a look-up no one will make: release
	// them when it does, so they do not block their destinations.
	reply := b.reply
	e.background(func(stop context.Context) {
		select {
		case c := <-reply:
			e.abandon(pid, c)
		case <-stop.Done():
		}
	})
	e.log.Error().Str("key", key.ID).Dur("timeout", timeout).Msg("key actor did not answer")
	return nil, nil, switchboard.Errorf(switchboard.EUNAVAILABLE, "The gateway is busy; try again.")
}

// abandon hands back what an answer nobody waited for holds.
func (e *Engine) abandon(pid *actor.PID, c *commit) {
	if len(c.news) > 0 {
		c.work.end()
		e.system.Root.Send(pid, &committed{c: c, err: context.DeadlineExceeded})
	}
	if len(c.lookup) > 0 {
		e.system.Root.Send(pid, &idemRelease{inst: c.inst, keys: c.idem})
	}
}

func (e *Engine) unavailable(keyID string, err error) error {
	e.log.Error().Err(err).Str("key", keyID).Msg("store failed")
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "Storage is unavailable; try again.")
}

// errShuttingDown refuses what comes while the engine stops.
var errShuttingDown = switchboard.Errorf(switchboard.EUNAVAILABLE, "The gateway is shutting down.")

func failAll(n int, err error) []switchboard.SubmitResult {
	out := make([]switchboard.SubmitResult, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}

// HeldMessages returns how many messages the key actors hold in memory
// together (at most Config.MaxHeld).
func (e *Engine) HeldMessages() int { return e.held.inUse() }

// Sending returns how many submits the key actors have at the binds
// together (at most Config.MaxSending).
func (e *Engine) Sending() int { return e.sending.inUse() }

// KeyActors returns how many key actors are running.
func (e *Engine) KeyActors() int {
	n := 0
	e.registry.each(func(*actor.PID) { n++ })
	return n
}

// Message returns one of key's messages; others' read as not found.
func (e *Engine) Message(ctx context.Context, key *switchboard.Key, id string) (*switchboard.Message, error) {
	m, err := e.store.Message(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Key != key.ID {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "Message not found.")
	}
	return m, nil
}

// ListMessages lists key's messages of one day (see
// switchboard.MessageStore.ListMessages); q.Key is set to key's.
func (e *Engine) ListMessages(ctx context.Context, key *switchboard.Key, q switchboard.MessageQuery) ([]*switchboard.Message, string, error) {
	q.Key = key.ID
	return e.store.ListMessages(ctx, q)
}

// Ready reports whether the node can take messages and send them now: nil,
// or an *Error with EUNAVAILABLE saying why not. It is not ready while
// stopping, while the store refuses writes, and, with
// Config.ReadyRequiresCarrier, while some route's first carrier has no
// bound bind.
func (e *Engine) Ready() error {
	if e.stopping.Load() {
		return errShuttingDown
	}
	if err := e.store.Writable(); err != nil {
		return err
	}
	if !e.cfg.ReadyRequiresCarrier {
		return nil
	}
	t := e.router.load()
	for _, r := range t.routes {
		if c := t.carriers[r.Carriers[0]]; c != nil && !c.anyBound() && !e.live.suspended(c.name) {
			return switchboard.Errorf(switchboard.EUNAVAILABLE, "Carrier %s has no bound bind.", c.name)
		}
	}
	return nil
}

// Stop stops taking messages, lets submits in flight finish (bounded by
// ctx), unbinds every bind and waits for status writes to land. The store
// is the caller's to close afterwards.
func (e *Engine) Stop(ctx context.Context) error {
	// Once: a node that rejoined its cluster may stop an engine it
	// stopped before.
	if e.stopping.Swap(true) {
		return nil
	}
	// Every key stops sending at once; then each is waited for.
	var drains []*actor.Future
	e.registry.each(func(pid *actor.PID) {
		drains = append(drains, e.system.Root.RequestFuture(pid, &drain{}, max(time.Until(deadline(ctx)), time.Millisecond)))
	})
	for _, f := range drains {
		_, _ = f.Result()
	}
	e.stopCarriers(ctx)
	e.inbound.stop()
	e.bgEnd()
	e.bg.wait()
	e.recorder.stop()
	e.webhooks.stopAll(ctx)
	if e.fleet != nil {
		e.fleet.stop() // shuts the actor system down too
	} else {
		e.system.Shutdown()
	}
	return nil
}

// stopCarriers stops every carrier (their binds drain and unbind) at once
// and waits until they are down or ctx ends; protoactor's StopFuture has a
// fixed timeout of its own, which must not stretch a bounded stop. Binds
// still connected when it gives up keep their leases (unbound stays
// false): another node binding meanwhile would hold one connection more
// than the carrier allows.
func (e *Engine) stopCarriers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, pid := range e.live.pids() {
		f := e.system.Root.StopFuture(pid)
		wg.Add(1)
		go func() { defer wg.Done(); _ = f.Wait() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		e.unbound.Store(true)
	case <-ctx.Done():
		e.log.Warn().Msg("carriers did not stop before the shutdown deadline; their bind leases run out by themselves")
	}
}

func deadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(30 * time.Second)
}

// background runs f in a goroutine the engine waits for on Stop. f gets a
// context that ends when Stop gives up waiting.
func (e *Engine) background(f func(stop context.Context)) {
	e.bg.start()
	go func() {
		defer e.bg.done()
		f(e.bgStop)
	}()
}

// bindUp follows a bind coming up: the keys waiting for a carrier may go,
// and in a cluster the other nodes hear of it.
func (e *Engine) bindUp() {
	if e.fleet != nil {
		e.fleet.publishBinds()
	}
	e.carrierUp()
}

// carrierUp tells every key actor that a bind has come up, so destinations
// waiting for a carrier go now instead of at their next poll.
func (e *Engine) carrierUp() {
	e.registry.each(func(pid *actor.PID) { e.system.Root.Send(pid, &carrierUp{}) })
}
