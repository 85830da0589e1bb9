package actors

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/oklog/ulid/v2"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// Messages a key actor handles, besides protoactor's lifecycle ones.
type (
	// submitBatch asks to admit messages. The actor answers on reply (which
	// has room for the answer, so the actor never blocks) with a commit
	// for the caller to make durable, then report back with committed.
	submitBatch struct {
		reqs  []switchboard.SubmitRequest
		reply chan *commit
	}
	// committed reports the end of one durable Accept.
	committed struct {
		c   *commit
		err error
	}
	// submitDone reports a bind's answer for one message.
	submitDone struct {
		q       *destQueue
		e       *entry
		carrier *carrier
		res     smpp.Result
		err     error
		at      time.Time // when the answer came off the wire
	}
	// wake is a timer going off: retry waits may be over. Timers that were
	// replaced by an earlier one carry an old gen and are ignored.
	wake struct{ gen uint64 }
	// carrierUp says a bind has come up (Engine.carrierUp).
	carrierUp struct{}
	// drain stops dispatching; the reply comes once nothing is in flight.
	drain struct{}
)

// entry is one message held in memory, waiting in its destination's FIFO.
type entry struct {
	msg     *switchboard.Message
	durable bool // committed: may be sent
	dropped bool // its commit failed: skip it
	held    bool // in a destination FIFO (else only in the store)
}

// destQueue is the FIFO of one destination. Its head is the only message
// to that destination in flight, so messages reach the carrier in order,
// and a head waiting to be retried holds everything behind it.
type destQueue struct {
	to       string
	entries  []*entry
	busy     bool
	retryAt  time.Time
	attempts int // failed tries of the head
	listed   bool
	// noCarrier: the head waits because no carrier could take it; a
	// carrier coming up (carrierUp) sends it at once.
	noCarrier bool
}

func (q *destQueue) head() *entry {
	if len(q.entries) == 0 {
		return nil
	}
	return q.entries[0]
}

func (q *destQueue) pop() {
	q.entries[0] = nil
	q.entries = q.entries[1:]
	q.attempts = 0
	q.retryAt = time.Time{}
}

// commit is one admitted request on its way to the store. The key actor
// fills it and hands it to the requester, which writes news with one Accept
// (on its own goroutine: the fsync's wake-up goes straight to the waiting
// request), fills in results, and reports back with committed. From the
// reply on, the actor reads only entries and idem, which the requester
// does not touch.
type commit struct {
	news    []switchboard.NewMessage
	results []switchboard.SubmitResult
	entries []*entry
	index   []int // results[index[i]] belongs to entries[i]
	idem    []string
}

// keyActor is one API key: it admits messages (rate, queue bound,
// validation), makes them durable, and sends them on in per-destination
// order. It holds at most window messages in memory; the rest wait in the
// store and are paged in as the window drains.
type keyActor struct {
	e      *Engine
	key    *switchboard.Key
	bucket *switchboard.TokenBucket
	ids    *ulid.MonotonicEntropy

	dests    map[string]*destQueue
	runnable []*destQueue
	waiting  *dueQueue[*destQueue]
	wakeAt   time.Time
	wakeGen  uint64

	inMemory   int    // entries held
	queued     int    // pending messages, in memory or only on disk
	paged      bool   // the store has pending messages not in memory
	lastLoaded string // the highest ID taken into memory
	// pageDry: the last page read everything it was allowed to read (up to
	// the commit frontier); reading again finds nothing new until a commit
	// lands.
	pageDry bool
	// lastIDMs is the timestamp of the highest ID issued or loaded.
	lastIDMs uint64
	// pendingCommits holds the Accepts in flight (their commits know
	// their messages and how many went to the store only).
	pendingCommits map[*commit]struct{}
	inflight       int // submits in flight
	// blocked holds the destinations whose head was ready when the
	// engine's sending budget was spent; while any are, the key sends
	// nothing and waits in the budget's line.
	blocked  []*destQueue
	idem     map[string]bool
	drainer  *actor.PID
	draining bool
}

func newKeyActor(e *Engine, key *switchboard.Key) *keyActor {
	var seed [32]byte
	_, _ = cryptorand.Read(seed[:])
	return &keyActor{
		e:              e,
		key:            key,
		bucket:         switchboard.NewTokenBucket(key.Rate, key.Burst),
		ids:            ulid.Monotonic(rand.NewChaCha8(seed), 0),
		dests:          make(map[string]*destQueue),
		waiting:        newDueQueue[*destQueue](),
		idem:           make(map[string]bool),
		paged:          true, // until the store says otherwise
		pendingCommits: make(map[*commit]struct{}),
	}
}

func (k *keyActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		k.started(ctx)
	case *submitBatch:
		k.accept(ctx, m)
	case *committed:
		k.committed(ctx, m)
	case *submitDone:
		k.submitDone(ctx, m)
	case *wake:
		if m.gen == k.wakeGen {
			k.woken(ctx)
		}
	case *carrierUp:
		k.carrierUp(ctx)
	case *budgetFree:
		if m.b == k.e.sending {
			k.unblock()
		}
		k.dispatch(ctx) // pages in or sends, if there is room now
		m.b.pass()
	case *actor.Restarting, *actor.Stopping:
		// The entries die with this instance: give their units back.
		k.e.held.release(k.inMemory)
		k.inMemory = 0
	case *drain:
		k.draining, k.drainer = true, ctx.Sender()
		k.maybeDrained(ctx)
	case *actor.ReceiveTimeout:
		k.idle(ctx)
	}
}

func (k *keyActor) started(ctx actor.Context) {
	n, err := k.e.store.PendingCount(context.Background(), k.key.ID)
	if err != nil {
		// Without the count the queue bound cannot hold; fail and let the
		// root's supervisor restart the actor.
		panic(fmt.Errorf("key %s: count pending: %w", k.key.ID, err))
	}
	k.queued = n
	k.paged = n > 0
	ctx.SetReceiveTimeout(k.e.cfg.IdleTimeout)
	k.dispatch(ctx)
}

// accept admits each request and hands the admitted ones to the requester
// to make durable (see commit).
func (k *keyActor) accept(ctx actor.Context, b *submitBatch) {
	now := k.e.now()
	c := &commit{results: make([]switchboard.SubmitResult, len(b.reqs))}
	for i := range b.reqs {
		req := &b.reqs[i]
		if res, done := k.replay(req); done {
			c.results[i] = res
			continue
		}
		m, err := k.admit(req, now)
		if err != nil {
			c.results[i] = switchboard.SubmitResult{Err: err}
			continue
		}
		c.news = append(c.news, switchboard.NewMessage{Message: m, IdempotencyKey: req.IdempotencyKey, RequestHash: req.RequestHash})
		c.entries = append(c.entries, k.hold(ctx, m))
		c.index = append(c.index, i)
		if req.IdempotencyKey != "" {
			k.idem[req.IdempotencyKey] = true
			c.idem = append(c.idem, req.IdempotencyKey)
		}
	}
	if len(c.news) > 0 {
		k.pendingCommits[c] = struct{}{}
	}
	b.reply <- c
}

// replay answers a request whose Idempotency-Key was seen before.
func (k *keyActor) replay(req *switchboard.SubmitRequest) (switchboard.SubmitResult, bool) {
	if req.IdempotencyKey == "" {
		return switchboard.SubmitResult{}, false
	}
	if k.idem[req.IdempotencyKey] {
		return switchboard.SubmitResult{Err: switchboard.Errorf(switchboard.ECONFLICT,
			"A request with this Idempotency-Key is still being processed.")}, true
	}
	rec, err := k.e.store.Idempotency(context.Background(), k.key.ID, req.IdempotencyKey)
	switch {
	case switchboard.ErrorCode(err) == switchboard.ENOTFOUND:
		return switchboard.SubmitResult{}, false
	case err != nil:
		return switchboard.SubmitResult{Err: k.unavailable(err)}, true
	case rec.RequestHash != req.RequestHash:
		return switchboard.SubmitResult{Err: switchboard.Errorf(switchboard.EIDEMPOTENCY,
			"This Idempotency-Key was used with a different request.")}, true
	}
	m, err := k.e.store.Message(context.Background(), rec.MessageID)
	if err != nil {
		return switchboard.SubmitResult{Err: k.unavailable(err)}, true
	}
	return switchboard.SubmitResult{Message: m}, true
}

func (k *keyActor) unavailable(err error) error { return k.e.unavailable(k.key.ID, err) }

// admit validates a request against the key's limits and makes its message.
func (k *keyActor) admit(req *switchboard.SubmitRequest, now time.Time) (*switchboard.Message, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	m, err := k.e.newMessage(k.key, req, now)
	if err != nil {
		return nil, err
	}
	if k.queued >= k.key.MaxQueued {
		return nil, switchboard.Errorf(switchboard.EQUEUEFULL,
			"This key has %d messages waiting, its limit; try again when some are sent.", k.queued)
	}
	if ok, wait := k.bucket.Take(now, 1); !ok {
		err := switchboard.Errorf(switchboard.ERATELIMITED, "Rate limit of %g messages per second exceeded.", k.key.Rate)
		err.RetryAfter = wait
		return nil, err
	}
	id, err := k.newID(now)
	if err != nil {
		return nil, fmt.Errorf("key %s: message id: %w", k.key.ID, err)
	}
	m.ID = "msg_" + id.String()
	k.queued++
	return m, nil
}

// newID returns a message ID above every ID the key has issued or loaded.
// IDs are the acceptance order that paging and per-destination order rely
// on: if the clock steps back, IDs keep the time they had reached (paging
// reads only above lastLoaded, and would never reach a lower one).
func (k *keyActor) newID(now time.Time) (ulid.ULID, error) {
	at := max(ulid.Timestamp(now), k.lastIDMs)
	id, err := ulid.New(at, k.ids)
	if err != nil { // the monotonic entropy ran out within this millisecond
		at++
		id, err = ulid.New(at, k.ids)
	}
	k.lastIDMs = at
	return id, err
}

// hold puts an admitted message in its destination's FIFO, unless the
// window or the engine's budget is full or older messages are still only on
// disk (then the store keeps it until paging reaches it, which keeps
// acceptance order).
func (k *keyActor) hold(ctx actor.Context, m *switchboard.Message) *entry {
	e := &entry{msg: m}
	if k.paged || k.inMemory >= k.e.cfg.KeyWindow || k.e.held.take(1, ctx.Self()) == 0 {
		k.paged = true
		return e
	}
	k.enqueue(e)
	return e
}

func (k *keyActor) enqueue(e *entry) {
	q := k.dests[e.msg.To]
	if q == nil {
		q = &destQueue{to: e.msg.To}
		k.dests[e.msg.To] = q
	}
	q.entries = append(q.entries, e)
	e.held = true
	k.inMemory++
	k.lastLoaded = max(k.lastLoaded, e.msg.ID)
	k.list(q)
}

func (k *keyActor) committed(ctx actor.Context, m *committed) {
	delete(k.pendingCommits, m.c)
	k.pageDry = false // the frontier moved, and this commit's messages may be readable
	for _, key := range m.c.idem {
		delete(k.idem, key)
	}
	for _, e := range m.c.entries {
		if m.err != nil {
			e.dropped = true
			k.queued--
		} else {
			e.durable = true
		}
		if q := k.dests[e.msg.To]; q != nil {
			k.list(q) // to send it, or to pop it if dropped
		}
	}
	k.dispatch(ctx)
}

// list marks a destination as worth looking at on the next dispatch.
func (k *keyActor) list(q *destQueue) {
	if !q.listed {
		q.listed = true
		k.runnable = append(k.runnable, q)
	}
}

// maxInflightPerKey bounds one key's submits in flight, so one busy key
// cannot fill every bind's queue and starve the others.
const maxInflightPerKey = 512

// dispatch sends the head of every runnable destination it can.
func (k *keyActor) dispatch(ctx actor.Context) {
	if !k.draining {
		now := k.e.now()
		for len(k.runnable) > 0 && k.inflight < maxInflightPerKey && len(k.blocked) == 0 {
			q := k.runnable[len(k.runnable)-1]
			k.runnable = k.runnable[:len(k.runnable)-1]
			q.listed = false
			k.tryDest(ctx, q, now)
		}
		k.page(ctx)
	}
	k.maybeDrained(ctx)
}

// tryDest sends q's head if it can go now.
func (k *keyActor) tryDest(ctx actor.Context, q *destQueue, now time.Time) {
	for {
		e := q.head()
		switch {
		case e == nil:
			if !q.busy {
				delete(k.dests, q.to)
				k.waiting.remove(q)
			}
			return
		case e.dropped:
			q.pop()
			k.unhold()
			continue
		case !e.durable, q.busy:
			return
		case now.Before(q.retryAt):
			k.wait(ctx, q)
			return
		case now.After(e.msg.ExpiresAt):
			q.pop()
			k.finish(e, switchboard.StatusExpired, nil, now)
			continue
		}
		k.send(ctx, q, e, now)
		return
	}
}

// send hands e to a bind of the first healthy carrier, or waits.
func (k *keyActor) send(ctx actor.Context, q *destQueue, e *entry, now time.Time) {
	c, pid := k.e.router.pick(e.msg.To, now)
	q.noCarrier = pid == nil
	if pid == nil {
		k.markQueued(e, now)
		q.retryAt = now.Add(noCarrierRetry)
		k.wait(ctx, q)
		return
	}
	if k.e.sending.take(1, ctx.Self()) == 0 {
		k.blocked = append(k.blocked, q)
		return
	}
	q.busy = true
	k.inflight++
	self, root, corr, sending := ctx.Self(), k.e.system.Root, k.e.corr, k.e.sending
	job := &submitJob{
		msg: smpp.Message{From: e.msg.From, To: e.msg.To, Text: e.msg.Body, Validity: e.msg.ExpiresAt.Sub(now)},
		done: func(res smpp.Result, err error) {
			sending.release(1) // here, not in the actor: even a restarted actor gives it back
			if err == nil {
				// Before the key actor hears of it: a receipt may be next.
				corr.add(c.name, res.CarrierIDs, e.msg.ID)
			}
			root.Send(self, &submitDone{q: q, e: e, carrier: c, res: res, err: err, at: time.Now()})
		},
	}
	ctx.Send(pid, job)
}

// unblock lists again the destinations that found the sending budget
// spent.
func (k *keyActor) unblock() {
	for i, q := range k.blocked {
		k.list(q)
		k.blocked[i] = nil
	}
	k.blocked = k.blocked[:0]
}

// carrierUp sends at once the destinations that wait for a carrier: a
// bind has come up. It walks all destinations, but binds come up rarely.
func (k *keyActor) carrierUp(ctx actor.Context) {
	for _, q := range k.dests {
		if q.noCarrier {
			q.noCarrier = false
			q.retryAt = time.Time{}
			k.waiting.remove(q)
			k.list(q)
		}
	}
	k.dispatch(ctx)
}

// Retry pacing for a destination's head. Without a carrier the head is
// tried again only this often: a bind coming up wakes it sooner
// (carrierUp), so the poll is for what comes back without an event, a
// failing carrier's probe pause (probeAfter).
const (
	noCarrierRetry = probeAfter
	busyRetry      = 10 * time.Millisecond
	unboundRetry   = 50 * time.Millisecond
)

var retryBackoff = switchboard.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}

func (k *keyActor) submitDone(ctx actor.Context, d *submitDone) {
	k.inflight--
	q, e, now := d.q, d.e, k.e.now()
	q.busy = false
	switch {
	case d.err == nil:
		d.carrier.succeeded()
		q.pop()
		k.recordSubmitted(e, d.carrier, d.res, d.at)
	case permanent(d.err):
		d.carrier.succeeded() // it answered: the carrier is up, the message is bad
		q.pop()
		k.finish(e, switchboard.StatusFailed, failure(d.err), now)
	default:
		k.retryLater(q, e, d, now)
	}
	k.list(q)
	k.dispatch(ctx)
}

// retryLater keeps e at the head of q and schedules the next try.
func (k *keyActor) retryLater(q *destQueue, e *entry, d *submitDone, now time.Time) {
	var se *smpp.SubmitError
	switch {
	case errors.Is(d.err, errBindBusy):
		q.retryAt = now.Add(busyRetry)
		return
	case errors.Is(d.err, smpp.ErrNotBound), errors.Is(d.err, smpp.ErrClosed), errors.Is(d.err, context.Canceled):
		// Our side: a bind going down or stopping. Another bind or carrier
		// may take it, and the carrier is not to blame.
		q.retryAt = now.Add(unboundRetry)
	case errors.As(d.err, &se) && se.RetryAfter > 0:
		q.retryAt = now.Add(se.RetryAfter)
	default:
		d.carrier.failed(now)
		q.retryAt = now.Add(retryBackoff.Delay(q.attempts))
	}
	q.attempts++
	k.markQueued(e, now)
	k.e.log.Debug().Err(d.err).Str("key", k.key.ID).Str("id", e.msg.ID).Int("attempt", q.attempts).Msg("submit will be retried")
}

// permanent reports whether a submit error ends the message: a permanent
// SMPP status, or a message the carrier layer refused to build.
func permanent(err error) bool {
	var se *smpp.SubmitError
	if errors.As(err, &se) {
		return !se.Retriable
	}
	var ae *switchboard.Error
	return errors.As(err, &ae)
}

func failure(err error) *switchboard.EventError {
	var se *smpp.SubmitError
	if errors.As(err, &se) {
		return &switchboard.EventError{Code: fmt.Sprintf("smpp_0x%08X", uint32(se.Status)), Description: se.Status.String()}
	}
	return &switchboard.EventError{Code: switchboard.ErrorCode(err), Description: switchboard.ErrorMessage(err)}
}

// recordSubmitted stores the submitted transition; once stored, the
// correlator's entries are no longer needed.
func (k *keyActor) recordSubmitted(e *entry, c *carrier, res smpp.Result, now time.Time) {
	k.leave()
	ev := switchboard.Event{Status: switchboard.StatusSubmitted, At: now, Carrier: c.name}
	if len(res.CarrierIDs) == 1 {
		ev.CarrierMessageID = res.CarrierIDs[0]
	}
	corr, ids := k.e.corr, res.CarrierIDs
	u := switchboard.Update{MessageID: e.msg.ID, Transition: switchboard.Transition{Event: ev, Part: -1, CarrierIDs: ids}}
	k.e.recorder.add(u, func(_ *switchboard.Message, err error) {
		if err != nil {
			k.e.log.Error().Err(err).Str("id", e.msg.ID).Msg("recording submitted failed; the message stays pending and will be sent again after a restart")
			return
		}
		corr.remove(c.name, ids)
	})
	k.e.stats.submitted.Add(1)
}

// finish ends a message that never reached a carrier.
func (k *keyActor) finish(e *entry, s switchboard.Status, why *switchboard.EventError, now time.Time) {
	k.leave()
	ev := switchboard.Event{Status: s, At: now, Error: why}
	k.e.recorder.add(switchboard.Update{MessageID: e.msg.ID, Transition: switchboard.Transition{Event: ev, Part: -1}},
		func(_ *switchboard.Message, err error) {
			if err != nil {
				k.e.log.Error().Err(err).Str("id", e.msg.ID).Str("status", string(s)).Msg("recording a final status failed")
			}
		})
}

// leave accounts for a message leaving the key's queue.
func (k *keyActor) leave() {
	k.queued--
	k.unhold()
}

// unhold accounts for a message leaving memory, and its unit of the
// engine's budget with it.
func (k *keyActor) unhold() {
	k.inMemory--
	k.e.held.release(1)
}

// markQueued records, once per message, that it is waiting.
func (k *keyActor) markQueued(e *entry, now time.Time) {
	if e.msg.Status != switchboard.StatusAccepted {
		return
	}
	e.msg.Status = switchboard.StatusQueued
	ev := switchboard.Event{Status: switchboard.StatusQueued, At: now}
	k.e.recorder.add(switchboard.Update{MessageID: e.msg.ID, Transition: switchboard.Transition{Event: ev, Part: -1}},
		func(*switchboard.Message, error) {})
}

// page takes pending messages from the store into memory when the window
// has room. Commits may land out of order, so it reads only messages below
// the lowest ID still being committed: an earlier message must not be
// skipped because its commit had not landed when a later one was read.
// dispatch calls it after every event, so it reads only when a read can
// find something: after a commit landed (committed clears pageDry), or
// when the last read stopped at the window rather than at the frontier.
func (k *keyActor) page(ctx actor.Context) {
	window := k.e.cfg.KeyWindow
	if !k.paged || k.pageDry || k.inMemory > window/2 {
		return
	}
	frontier := k.commitFrontier()
	if frontier != "" && frontier <= k.lastLoaded {
		k.pageDry = true // nothing on disk below the frontier is unread
		return
	}
	// The engine's budget may grant less; with none, the budget wakes this
	// key when some is released.
	limit := k.e.held.take(window-k.inMemory, ctx.Self())
	if limit == 0 {
		return
	}
	msgs, err := k.e.store.Pending(context.Background(), k.key.ID, k.lastLoaded, frontier, limit)
	if err != nil {
		k.e.held.release(limit)
		k.e.log.Error().Err(err).Str("key", k.key.ID).Msg("paging pending messages failed; will retry")
		k.setWake(ctx, k.e.now().Add(time.Second))
		return
	}
	for _, m := range msgs {
		k.enqueue(&entry{msg: m, durable: true})
	}
	k.e.held.release(limit - len(msgs))
	if len(msgs) > 0 {
		// Stored by an earlier run, perhaps with a clock ahead of ours.
		if id, err := ulid.ParseStrict(strings.TrimPrefix(k.lastLoaded, "msg_")); err == nil {
			k.lastIDMs = max(k.lastIDMs, id.Time())
		}
	}
	if len(msgs) < limit {
		k.pageDry = true
		// With no commit in flight the read had no upper bound: the store
		// has nothing pending that is not in memory now. (With one in
		// flight, a later commit that landed first may have messages above
		// the frontier, so the key stays paged.)
		if frontier == "" {
			k.paged = false
		}
	}
	if len(msgs) > 0 {
		k.dispatch(ctx)
	}
}

// commitFrontier returns the lowest message ID still being committed ("" if
// none).
func (k *keyActor) commitFrontier() string {
	frontier := ""
	for c := range k.pendingCommits {
		// Entries are in ID order, so the first is the commit's lowest.
		if first := c.entries[0].msg.ID; frontier == "" || first < frontier {
			frontier = first
		}
	}
	return frontier
}

// wait parks q until its retryAt; the single timer is moved earlier if
// needed.
func (k *keyActor) wait(ctx actor.Context, q *destQueue) {
	k.waiting.set(q, q.retryAt)
	k.setWake(ctx, q.retryAt)
}

// woken relists every destination whose wait is over and re-arms the
// timer for the earliest one still waiting.
func (k *keyActor) woken(ctx actor.Context) {
	k.wakeAt = time.Time{}
	k.waiting.popDue(k.e.now(), k.list)
	if next := k.waiting.earliest(); !next.IsZero() {
		k.setWake(ctx, next)
	}
	k.dispatch(ctx)
}

func (k *keyActor) setWake(ctx actor.Context, at time.Time) {
	if !k.wakeAt.IsZero() && !at.Before(k.wakeAt) {
		return
	}
	k.wakeAt = at
	k.wakeGen++
	self, root, w := ctx.Self(), k.e.system.Root, &wake{gen: k.wakeGen}
	time.AfterFunc(at.Sub(k.e.now()), func() { root.Send(self, w) })
}

func (k *keyActor) maybeDrained(ctx actor.Context) {
	if k.draining && k.drainer != nil && k.inflight == 0 && len(k.pendingCommits) == 0 {
		ctx.Send(k.drainer, &drain{})
		k.drainer = nil
	}
}

// idle stops the actor when it holds nothing; the registry makes sure no
// request is on its way to it.
func (k *keyActor) idle(ctx actor.Context) {
	busy := len(k.dests) > 0 || k.inflight > 0 || len(k.pendingCommits) > 0 || k.paged || k.queued > 0 || k.draining
	if !busy && k.e.registry.retire(k.key.ID, ctx.Self()) {
		ctx.Stop(ctx.Self())
		return
	}
	// protoactor disarms the receive timeout when it fires: arm it again.
	ctx.SetReceiveTimeout(k.e.cfg.IdleTimeout)
}

// newMessage builds a message from a request: encoding, segments, validity.
func (e *Engine) newMessage(key *switchboard.Key, req *switchboard.SubmitRequest, now time.Time) (*switchboard.Message, error) {
	coding, _, parts := gsm.Count(req.Body)
	if parts > e.cfg.MaxParts {
		return nil, switchboard.Errorf(switchboard.ETOOLONG, "The message body needs %d parts; at most %d are allowed.", parts, e.cfg.MaxParts)
	}
	validity := req.Validity
	if validity == 0 {
		validity = e.cfg.DefaultValidity
	}
	if validity > e.cfg.MaxValidity {
		return nil, switchboard.Errorf(switchboard.EINVALID, `"validity" must be at most %d seconds.`, int(e.cfg.MaxValidity/time.Second))
	}
	if !e.router.routable(req.To) {
		return nil, switchboard.Errorf(switchboard.ENOROUTE, "No route to %s.", req.To)
	}
	enc := "gsm7"
	if coding == gsm.UCS2 {
		enc = "ucs2"
	}
	return &switchboard.Message{
		Key: key.ID, To: req.To, From: req.From, Body: req.Body, Reference: req.Reference,
		CallbackURL: req.CallbackURL, Encoding: enc, Segments: parts, Status: switchboard.StatusAccepted,
		AcceptedAt: now, UpdatedAt: now, ExpiresAt: now.Add(validity),
		Events: []switchboard.Event{{Status: switchboard.StatusAccepted, At: now}},
	}, nil
}
