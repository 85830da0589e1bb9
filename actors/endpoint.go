package actors

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// Messages an endpoint actor handles.
type (
	// outboxHint: the store may hold new callbacks for this endpoint.
	outboxHint struct{}
	// loaded is the result of reading the outbox.
	loaded struct {
		cbs      []switchboard.Callback
		frontier string
		limit    int
		// before: the read's upper bound, at the cluster's write lag
		// (lagged); "" for none.
		before string
		err    error
	}
	// postDone reports one request: the callbacks it carried (one, or a
	// batch) and whether it was the circuit's probe.
	postDone struct {
		group   []*delivery
		probe   bool
		batch   bool // sent as a JSON array: the key batches
		partial bool // a batch below its key's callback_batch
		res     PostResult
	}
	// finished reports callbacks removed from the store.
	finished struct{ ids []string }
	// endpointWake is a timer going off (retry due, circuit half-open,
	// idle check); old generations are ignored.
	endpointWake struct{ gen uint64 }
)

// delivery is one callback held in memory.
type delivery struct {
	cb       switchboard.Callback
	attempts int
	nextAt   time.Time // not before: a retry's backoff or Retry-After
}

// endpointActor delivers the callbacks of one endpoint. It holds up to
// Window of them in memory, read from the store in ID order, and sends
// at most Concurrency at once. Events of one message go out one at a
// time, in order: a message's later callback waits until the earlier one
// is delivered or given up. Consecutive failures open a circuit breaker,
// so a dead endpoint costs a probe now and then, not a stream of
// timeouts; nothing it does touches another endpoint's actor.
type endpointActor struct {
	d        *dispatcher
	endpoint string
	ref      *endpointRef

	known  map[string]*delivery   // every callback in memory, by ID
	chains map[string][]*delivery // per message, in ID order; the head is next
	ready  []*delivery            // heads that may be sent now, oldest first
	// readyByKey counts ready per key, partials the batches in flight
	// that were not full: together they decide when a batch waits to fill.
	readyByKey map[string]int
	partials   int
	cursor     string // the highest ID read from the store

	dirty, loading, hintedWhileLoading bool
	// unknownKeys are the keys this node did not know when their
	// callbacks' turn came, and since when (keyUnknown).
	unknownKeys map[string]time.Time
	// blocked: the last read stopped at the event-ID frontier; the next
	// waits for a hint or a short timer (till blockedUntil) instead of
	// reading again at once.
	blocked      bool
	blockedUntil time.Time
	// In a cluster: when the last hint came (callbacks it announced may
	// still be younger than the write lag), and when the outbox was last
	// read from its head (lagged).
	hintedAt, sweptAt time.Time
	// readAfter: no read of the outbox starts before it (readGap after
	// the last one started, readRetry after one failed).
	readAfter time.Time
	// removedWhileLoading: callbacks whose removal landed while a read
	// was on its way (a read from the head may still hold them).
	removedWhileLoading map[string]struct{}

	inflight  int
	failures  int                  // consecutive failed attempts
	openUntil time.Time            // circuit open until then
	opened    int                  // times opened since the last success (backoff)
	probing   bool                 // half-open: one attempt decides
	waiting   *dueQueue[*delivery] // heads waiting for nextAt
	self      *actor.PID
	wakeAt    time.Time
	wakeGen   uint64
	idleSince time.Time
}

func newEndpointActor(d *dispatcher, endpoint string, ref *endpointRef) *endpointActor {
	return &endpointActor{d: d, endpoint: endpoint, ref: ref,
		known: make(map[string]*delivery), removedWhileLoading: make(map[string]struct{}), chains: make(map[string][]*delivery), waiting: newDueQueue[*delivery](),
		readyByKey: make(map[string]int)}
}

func (a *endpointActor) now() time.Time { return a.d.e.now() }

func (a *endpointActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
	case *outboxHint:
		a.ref.hinted.Store(false)
		a.dirty, a.blocked, a.hintedAt = true, false, a.now()
		if a.loading {
			a.hintedWhileLoading = true
		}
	case *loaded:
		a.loaded(m)
	case *postDone:
		a.postDone(m)
	case *finished:
		a.finished(m.ids)
	case *endpointWake:
		if m.gen != a.wakeGen {
			return
		}
		a.wakeAt = time.Time{}
		a.blocked = false
		a.promoteDue()
	default:
		return
	}
	a.load(ctx)
	a.dispatch(ctx)
	a.schedule(ctx)
}

// load reads the next callbacks from the store when the window has room.
// It reads only below the event-ID frontier, so a callback whose write is
// still landing is not skipped; in a cluster also only what is old enough
// that no other node is still writing it (lagged).
func (a *endpointActor) load(ctx actor.Context) {
	room := a.d.cfg.Window - len(a.known)
	if !a.dirty || a.loading || a.blocked || room < a.d.cfg.Window/4 {
		return
	}
	now := a.now()
	if now.Before(a.readAfter) {
		return // schedule wakes the actor then
	}
	a.readAfter = now.Add(readGap)
	a.loading, a.hintedWhileLoading = true, false
	frontier := a.d.ids.frontier(now)
	self, cursor, store := ctx.Self(), a.cursor, a.d.e.store
	before := ""
	if a.d.e.fleet != nil {
		before, cursor = a.lagged(cursor)
	}
	if ev := a.d.e.log.Debug(); ev.Enabled() {
		ev.Str("endpoint", a.endpoint).Str("after", cursor).Str("before", before).Str("frontier", frontier).
			Int("room", room).Msg("reading queued callbacks")
	}
	started := a.d.goWork(func() {
		cbs, err := store.Callbacks(context.Background(), a.endpoint, cursor, before, room)
		a.d.e.system.Root.Send(self, &loaded{cbs: cbs, frontier: frontier, limit: room, before: before, err: err})
	})
	if !started {
		a.loading = false // stopping: the store is about to close
	}
}

func (a *endpointActor) loaded(m *loaded) {
	a.loading = false
	if m.err != nil {
		a.d.e.log.Error().Err(m.err).Str("endpoint", a.endpoint).Msg("reading queued callbacks failed; will retry")
		a.readAfter = a.now().Add(readRetry) // dirty stays set: load waits, then reads again
		return
	}
	complete := len(m.cbs) < m.limit
	if ev := a.d.e.log.Debug(); ev.Enabled() && len(m.cbs) > 0 {
		ev.Str("endpoint", a.endpoint).Int("read", len(m.cbs)).Str("first", m.cbs[0].ID).
			Str("last", m.cbs[len(m.cbs)-1].ID).Msg("read queued callbacks")
	}
	for i := range m.cbs {
		cb := m.cbs[i]
		if cb.ID >= m.frontier {
			// The rest may have gaps still landing. Read again after a
			// hint or a moment, not at once: the write may take a while.
			complete = false
			a.block(a.now().Add(frontierRetry))
			break
		}
		a.cursor = cb.ID
		if _, ok := a.known[cb.ID]; ok {
			continue
		}
		if _, ok := a.removedWhileLoading[cb.ID]; ok {
			continue
		}
		a.add(&delivery{cb: cb})
	}
	clear(a.removedWhileLoading)
	if complete && m.before != "" && !a.hintedAt.IsZero() && m.before <= eventIDFloor(a.hintedAt) {
		// What the last hint announced may lie above this read's bound:
		// read once more when it has aged past the lag.
		complete = false
		a.block(a.hintedAt.Add(remoteWriteLag + lagMargin))
	}
	if complete && !a.hintedWhileLoading {
		a.dirty = false
	}
}

// block holds reads back until until (see blocked), when a wake lifts it.
func (a *endpointActor) block(until time.Time) {
	a.blocked, a.blockedUntil = true, until
	a.setWake(until)
}

// finished forgets callbacks whose removal from the store has landed.
func (a *endpointActor) finished(ids []string) {
	for _, id := range ids {
		delete(a.known, id)
		if a.loading {
			// The read on its way may have been taken before the removal
			// landed: it must not bring the callback back.
			a.removedWhileLoading[id] = struct{}{}
		}
	}
}

// In a cluster every node writes the callbacks of the keys it owns, and
// one node delivers each endpoint's. The event-ID frontier covers only
// this node's writes in flight: another node's callback can land after
// this one has read past a later ID, and the cursor would leave it
// behind. So a read in a cluster takes only callbacks older than
// remoteWriteLag (by their event IDs), which every node's write has
// landed by but for an outlier (a read that ends below a hint's time is
// followed by one more when the hint is remoteWriteLag old); and every
// sweepEvery one read starts at the outbox's head, which finds such an
// outlier. None is sent twice: what is in memory is skipped, a delivered
// callback stays in memory until its removal has landed, and one removed
// while the read was on its way is skipped too.
const (
	remoteWriteLag = time.Second
	lagMargin      = 10 * time.Millisecond
	sweepEvery     = 30 * time.Second
)

// lagged returns a cluster read's upper bound and where it starts: at the
// cursor, or at the head when a sweep is due.
func (a *endpointActor) lagged(cursor string) (before, from string) {
	now := a.now()
	if now.Sub(a.sweptAt) >= sweepEvery {
		a.sweptAt, cursor = now, ""
	}
	return eventIDFloor(now.Add(-remoteWriteLag)), cursor
}

// add takes a callback into memory, behind its message's earlier ones.
func (a *endpointActor) add(dl *delivery) {
	a.known[dl.cb.ID] = dl
	chain := append(a.chains[dl.cb.MessageID], dl)
	a.chains[dl.cb.MessageID] = chain
	if len(chain) == 1 {
		a.waitOrReady(dl, a.now())
	}
}

// dispatch sends ready callbacks while the concurrency limit and the
// circuit allow.
func (a *endpointActor) dispatch(ctx actor.Context) {
	now := a.now()
	// from only grows within a call: a key held back stays held (partials
	// only rise, and its ready callbacks only fall), and taking a group
	// leaves the callbacks before its first where they are.
	from := 0
	for a.inflight < a.d.cfg.Concurrency && a.circuitAllows(now) {
		// The oldest ready callback whose key is not held back goes next;
		// its key's batch size decides how many go with it.
		i, limit := a.nextToSend(from)
		if i < 0 {
			return
		}
		from = i
		group := a.takeGroup(now, i, limit)
		if len(group) == 0 {
			continue
		}
		for _, dl := range group {
			dl.attempts++
		}
		a.inflight++
		done := &postDone{group: group, probe: a.failures >= a.d.cfg.BreakerFailures,
			batch: limit > 1, partial: limit > 1 && len(group) < limit}
		if done.probe {
			a.probing = true
		}
		if done.partial {
			a.partials++
		}
		if a.d.cfg.Poster == nil {
			done.res = PostResult{Outcome: PostRetry}
			a.d.e.system.Root.Send(ctx.Self(), done)
			continue
		}
		a.d.post(ctx.Self(), done)
	}
}

// maxPartials is how many batches below their key's size may be in
// flight to one endpoint at once.
const maxPartials = 2

// nextToSend returns the index in ready, from from on, of the oldest
// callback that may go now, and its key's batch size; -1 if none may.
// A callback waits if it would go in a batch that would not be full while
// maxPartials such batches are in flight: their answers bring the next
// dispatch, and more callbacks may have joined by then. So batches fill
// under load and go at once when the endpoint is quiet (like Nagle's
// algorithm); full batches, and keys that do not batch, never wait (nor
// for the keys that do). Waiting cannot stall: the requests in flight
// always answer (or time out).
func (a *endpointActor) nextToSend(from int) (int, int) {
	for i := from; i < len(a.ready); i++ {
		key := a.ready[i].cb.Key
		limit := a.d.batchSize(key)
		if limit <= 1 || a.partials < maxPartials || a.readyByKey[key] >= limit {
			return i, limit
		}
	}
	return -1, 0
}

// takeGroup takes what the next request carries: the ready callback at
// index i and, when its key batches (limit, Key.CallbackBatch, above 1),
// more ready ones after it for the same URL and key, up to limit.
// Only message heads are ready, so a batch holds at most one event per
// message and per-message order holds. Callbacks past max_age or for a
// gone URL are given up on instead; if the first is, the group is empty.
func (a *endpointActor) takeGroup(now time.Time, i, limit int) []*delivery {
	first := a.ready[i]
	if i == 0 {
		a.ready[0] = nil
		a.ready = a.ready[1:]
	} else {
		a.ready = slices.Delete(a.ready, i, i+1)
	}
	a.unready(first)
	if reason := a.giveUpReason(first, now); reason != "" {
		a.finish(first, reason, now)
		return nil
	}
	group := []*delivery{first}
	if limit <= 1 {
		return group
	}
	type over struct {
		dl     *delivery
		reason string
	}
	var expired []over
	keep := a.ready[:i]
	for _, dl := range a.ready[i:] {
		if len(group) == limit || dl.cb.URL != first.cb.URL || dl.cb.Key != first.cb.Key {
			keep = append(keep, dl)
			continue
		}
		a.unready(dl)
		if reason := a.giveUpReason(dl, now); reason != "" {
			expired = append(expired, over{dl, reason})
		} else {
			group = append(group, dl)
		}
	}
	clear(a.ready[len(keep):])
	a.ready = keep
	for _, o := range expired { // finish may make a message's next event ready
		a.finish(o.dl, o.reason, now)
	}
	return group
}

func (a *endpointActor) pushReady(dl *delivery) {
	a.ready = append(a.ready, dl)
	a.readyByKey[dl.cb.Key]++
}

// unready counts out a callback taken from ready.
func (a *endpointActor) unready(dl *delivery) {
	if n := a.readyByKey[dl.cb.Key] - 1; n > 0 {
		a.readyByKey[dl.cb.Key] = n
	} else {
		delete(a.readyByKey, dl.cb.Key)
	}
}

func (a *endpointActor) giveUpReason(dl *delivery, now time.Time) string {
	switch {
	case now.Sub(dl.cb.CreatedAt) >= a.d.cfg.MaxAge:
		return switchboard.WebhookMaxAge
	case a.d.isGone(dl.cb.URL, now):
		return switchboard.WebhookGone
	}
	return ""
}

// circuitAllows reports whether an attempt may start: always while the
// circuit is closed; when open, one probe after it has waited out.
func (a *endpointActor) circuitAllows(now time.Time) bool {
	if a.failures < a.d.cfg.BreakerFailures {
		return true
	}
	return !a.probing && !now.Before(a.openUntil)
}

// postDone applies a request's answer to every callback it carried: a
// batch is delivered, retried or given up on as one.
func (a *endpointActor) postDone(m *postDone) {
	res, now, first := m.res, a.now(), &m.group[0].cb
	a.inflight--
	if m.partial {
		a.partials--
	}
	if m.probe {
		a.probing = false // only the probe's own answer ends the half-open wait
	}
	reason := ""
	if !errors.Is(res.Err, errKeyUnknown) {
		delete(a.unknownKeys, first.Key) // known again, or never unknown
	}
	switch res.Outcome {
	case PostDelivered:
		a.failures, a.opened = 0, 0
		a.d.delivered.Add(int64(len(m.group)))
	case PostGone:
		a.failures, a.opened = 0, 0
		a.d.markGone(first.URL, now)
		a.d.e.log.Warn().Str("url", first.URL).Str("key", first.Key).Msg("callback URL answered 410 Gone; its callbacks are given up on")
		reason = switchboard.WebhookGone
	case PostRefused:
		a.d.e.log.Warn().Err(res.Err).Str("url", first.URL).Str("key", first.Key).Msg("callback URL may not be called (not http(s), credentials, or a refused address literal); given up on")
		reason = switchboard.WebhookRefused
	default:
		if errors.Is(res.Err, errKeyUnknown) {
			a.keyUnknown(m, now)
			return
		}
		a.failed(m, now)
		return
	}
	for _, dl := range m.group {
		a.finish(dl, reason, now)
	}
}

// keyUnknown holds back callbacks whose key this node does not know, for
// WebhookConfig.KeyGrace, and gives them up then. Nothing was sent: neither the
// endpoint's circuit nor the callbacks' attempts are charged.
func (a *endpointActor) keyUnknown(m *postDone, now time.Time) {
	key := m.group[0].cb.Key // a request carries one key's callbacks
	since, ok := a.unknownKeys[key]
	if !ok {
		if a.unknownKeys == nil {
			a.unknownKeys = make(map[string]time.Time)
		}
		since, a.unknownKeys[key] = now, now
		a.d.e.log.Warn().Str("key", key).Str("endpoint", a.endpoint).
			Msg("callbacks of a key this node does not know; held back")
	}
	for _, dl := range m.group {
		dl.attempts--
		if now.Sub(since) >= a.d.cfg.KeyGrace {
			a.finish(dl, switchboard.WebhookKeyRemoved, now)
			continue
		}
		a.retryLater(dl, PostResult{RetryAfter: a.d.cfg.RetryMin}, now)
	}
}

// failed counts a failed request towards the endpoint's circuit breaker
// and schedules the next attempt of each callback it carried.
func (a *endpointActor) failed(m *postDone, now time.Time) {
	if a.d.stop.Err() != nil {
		return // stopping: they stay in the store for the next run
	}
	a.failures++
	a.d.retried.Add(int64(len(m.group)))
	// The circuit opens when failures reach the threshold, and again
	// (for longer) when a probe fails; attempts that were already in
	// flight when it opened do not stretch it.
	if a.failures == a.d.cfg.BreakerFailures || m.probe {
		b := switchboard.Backoff{Min: a.d.cfg.BreakerMin, Max: a.d.cfg.BreakerMax}
		a.openUntil = now.Add(max(b.Delay(a.opened), a.d.cfg.BreakerMin/2))
		if a.opened < 62 {
			a.opened++
		}
	}
	for _, dl := range m.group {
		a.retryLater(dl, m.res, now)
	}
}

// retryLater files a callback under waiting until its next attempt.
func (a *endpointActor) retryLater(dl *delivery, res PostResult, now time.Time) {
	wait := res.RetryAfter
	if wait <= 0 {
		wait = switchboard.Backoff{Min: a.d.cfg.RetryMin, Max: a.d.cfg.RetryMax}.Delay(dl.attempts - 1)
	}
	dl.nextAt = now.Add(wait)
	if deadline := dl.cb.CreatedAt.Add(a.d.cfg.MaxAge); dl.nextAt.After(deadline) {
		dl.nextAt = deadline // give up on time, not a backoff later
	}
	a.waiting.set(dl, dl.nextAt)
	a.d.e.log.Debug().Err(res.Err).Int("status", res.Status).Str("endpoint", a.endpoint).Str("event_id", dl.cb.ID).
		Int("attempt", dl.attempts).Dur("retry_in", wait).Msg("callback attempt failed")
}

// finish ends a callback (reason "" = delivered) and lets its message's
// next one go.
func (a *endpointActor) finish(dl *delivery, reason string, now time.Time) {
	fc := switchboard.FinishedCallback{Callback: switchboard.Callback{ID: dl.cb.ID, Endpoint: dl.cb.Endpoint, MessageID: dl.cb.MessageID}}
	if reason != "" {
		a.d.gaveUp.Add(1)
		fc.Failure = &switchboard.WebhookFailure{EventID: dl.cb.ID, Type: dl.cb.Type, URL: dl.cb.URL,
			Reason: reason, Attempts: dl.attempts, At: now}
		a.d.e.log.Warn().Str("event_id", dl.cb.ID).Str("message_id", dl.cb.MessageID).Str("url", dl.cb.URL).
			Str("reason", reason).Int("attempts", dl.attempts).Msg("callback given up on")
	}
	// After stop the removal is skipped: the callback is sent again after
	// the restart, which at-least-once delivery allows.
	a.d.finisher.add(finishJob{done: fc, actor: a.self})
	chain := a.chains[dl.cb.MessageID][1:]
	if len(chain) == 0 {
		delete(a.chains, dl.cb.MessageID)
		return
	}
	a.chains[dl.cb.MessageID] = chain
	a.waitOrReady(chain[0], now)
}

// waitOrReady files a message's head under ready or waiting by its due time.
func (a *endpointActor) waitOrReady(dl *delivery, now time.Time) {
	if dl.nextAt.After(now) {
		a.waiting.set(dl, dl.nextAt)
		return
	}
	a.pushReady(dl)
}

// promoteDue moves heads whose wait is over to ready.
func (a *endpointActor) promoteDue() {
	a.waiting.popDue(a.now(), a.pushReady)
}

// schedule sets the one timer the actor needs: the earliest retry, the
// end of an open circuit, a read held back or retried after an error, or
// the idle check.
func (a *endpointActor) schedule(ctx actor.Context) {
	now := a.now()
	var next time.Time
	consider := func(t time.Time) { next = earliest(next, t) }
	consider(a.waiting.earliest())
	if a.blocked {
		// Its wake may be queued still, when a wake set here for a later
		// time would drop it as stale.
		consider(a.blockedUntil)
	}
	if a.dirty && !a.loading && a.readAfter.After(now) {
		consider(a.readAfter) // a read held back (readGap) or a retry (readRetry)
	}
	if len(a.ready) > 0 && a.failures >= a.d.cfg.BreakerFailures && !a.probing && (a.openUntil.After(now) || a.inflight == 0) {
		// Once the circuit has waited out, what holds the ready back with
		// requests in flight (a full window, partial batches) is theirs to
		// end: their answers bring the next dispatch, and a wake now would
		// find nothing to do and set itself again at once. With none in
		// flight (the circuit's end passed between dispatch and here),
		// the wake is the probe's only way out.
		consider(a.openUntil)
	}
	if a.idle() {
		if a.idleSince.IsZero() {
			a.idleSince = now
		}
		if now.Sub(a.idleSince) >= endpointIdleTimeout {
			if a.d.retire(a.endpoint, a.ref) {
				ctx.Stop(ctx.Self())
				return
			}
			a.idleSince = now
		}
		consider(a.idleSince.Add(endpointIdleTimeout))
	} else {
		a.idleSince = time.Time{}
	}
	if next.IsZero() || (!a.wakeAt.IsZero() && !next.Before(a.wakeAt) && a.wakeAt.After(now)) {
		return
	}
	a.setWake(next)
}

const (
	// readGap is the least time between the starts of two reads of one
	// endpoint's outbox. A read after a quiet spell starts at once; under
	// a steady flow of callbacks each read takes what a few milliseconds
	// brought instead of one or two, which costs a callback at most this
	// much more time and saves the node a read, a worker hand-off and an
	// actor message for most of them.
	readGap = 5 * time.Millisecond
	// readRetry is how long a failed read waits before the next one.
	readRetry = time.Second
)

// frontierRetry is how soon a read that stopped at the frontier is tried
// again without a hint.
const frontierRetry = 5 * time.Millisecond

// endpointIdleTimeout stops an endpoint actor with nothing to do.
const endpointIdleTimeout = 30 * time.Second

func (a *endpointActor) idle() bool {
	return len(a.known) == 0 && !a.dirty && !a.loading && a.inflight == 0
}

func (a *endpointActor) setWake(at time.Time) {
	a.wakeGen++
	a.wakeAt = at
	gen, self, root := a.wakeGen, a.self, a.d.e.system.Root
	time.AfterFunc(max(time.Until(at), 0), func() { root.Send(self, &endpointWake{gen: gen}) })
}
