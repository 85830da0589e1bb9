package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

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
	now := k.e.now()
	// A node whose lease ran out (paused past it) sends nothing: the
	// key's new owner may have paged these messages and sent them.
	if !k.draining && k.ready && k.leaseValid(now) {
		for len(k.runnable) > 0 && k.inflight < maxInflightPerKey && len(k.blocked) == 0 {
			q := k.runnable[len(k.runnable)-1]
			k.runnable = k.runnable[:len(k.runnable)-1]
			q.listed = false
			k.tryDest(ctx, q, now)
		}
		k.page(ctx, now)
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
	c, b, ok := k.route(e, now)
	q.noCarrier = !ok
	if !ok {
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
	k.work.start() // ended once the outcome is recorded (submitOutcome)
	m := e.msg
	job := &submitJob{
		msg: smpp.Message{From: m.From, To: m.To, Text: m.Body, Validity: m.ExpiresAt.Sub(now),
			Ref: concatRef(m.ID), UseRef: true, Accepted: e.ids},
		done: k.submitCallback(ctx.Self(), q, e, c),
	}
	if b.in == nil {
		k.e.fleet.remoteSubmit(b, c, job, m.ID)
		return
	}
	b.in.submit(job)
}

// route picks the carrier and bind for e: the first healthy carrier of its
// route, or, once some of its parts were accepted, the carrier that
// accepted them (the parts of one message go to one carrier).
func (k *keyActor) route(e *entry, now time.Time) (*carrier, bindRef, bool) {
	if e.carrier != "" {
		return k.e.router.pickCarrier(e.carrier, now)
	}
	return k.e.router.pick(e.msg.To, now)
}

// concatRef is the concatenation reference of a long message's parts. It
// comes from the message's ID, so a retry of the missing parts (even after
// a restart) carries the reference of the parts already delivered, and
// consecutive messages to one handset differ with odds of 255 in 256.
func concatRef(id string) byte {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return byte(h)
}

// submitCallback is called by the bind, on its own goroutine, with the
// outcome of e's submit. It records the outcome itself (so it is recorded
// even if this actor instance is gone by then), then tells the actor.
func (k *keyActor) submitCallback(self *actor.PID, q *destQueue, e *entry, c *carrier) func(smpp.Result, error) {
	eng, inst, w, id, prior, fence := k.e, k.inst, k.work, e.msg.ID, e.ids, k.fence()
	return func(res smpp.Result, err error) {
		eng.sending.release(1) // here, not in the actor: even a replaced instance gives it back
		eng.submitOutcome(c, id, prior, fence, res, err, w)
		eng.system.Root.Send(self, &submitDone{inst: inst, q: q, e: e, carrier: c, res: res, err: err})
	}
}

// submitOutcome records what a submit did: the parts the carrier accepted
// (submitted, indexed so receipts find the message; in the correlator
// first, since a receipt may be the next PDU on the wire), and, for a
// permanent refusal, the failure. The instance's work ends when the
// records have landed.
func (e *Engine) submitOutcome(c *carrier, id string, prior []string, fence int64, res smpp.Result, err error, w *work) {
	at := time.Now()
	res.CarrierIDs = fillMissingIDs(e, c, id, res.CarrierIDs)
	var updates []switchboard.Update
	if newIDs(prior, res.CarrierIDs) {
		e.corr.add(c.name, res.CarrierIDs, id)
		ev := switchboard.Event{Status: switchboard.StatusSubmitted, At: at, Carrier: c.name}
		if len(res.CarrierIDs) == 1 {
			ev.CarrierMessageID = res.CarrierIDs[0]
		}
		updates = append(updates, switchboard.Update{MessageID: id, Fence: fence, Transition: switchboard.Transition{
			Event: ev, Part: -1, CarrierIDs: res.CarrierIDs, ReceiptDue: at.Add(c.receiptTimeout)}})
	}
	if err == nil {
		e.stats.submitted.Add(1)
	} else if permanent(err) {
		updates = append(updates, switchboard.Update{MessageID: id, Fence: fence, Transition: switchboard.Transition{
			Event: switchboard.Event{Status: switchboard.StatusFailed, At: at, Error: failure(err)}, Part: -1}})
	}
	e.recordInOrder(id, updates, w, func() {
		if len(updates) > 0 && updates[0].Transition.Event.Status == switchboard.StatusSubmitted {
			e.corr.remove(c.name, res.CarrierIDs)
		}
		w.end()
	})
}

// fillMissingIDs gives a part the carrier accepted without a message id
// (smpp.NoID: an empty message_id in its submit_sm_resp, which SMPP does
// not allow but carriers send) an id of our own, so it is recorded as
// submitted, not sent again; no receipt can match it, so the message ends
// unknown after the carrier's receipt timeout.
func fillMissingIDs(e *Engine, c *carrier, id string, ids []string) []string {
	if !slices.Contains(ids, smpp.NoID) {
		return ids
	}
	ids = slices.Clone(ids)
	for i, cid := range ids {
		if cid == smpp.NoID {
			e.log.Warn().Str("carrier", c.name).Str("id", id).Int("part", i+1).
				Msg("the carrier accepted a part without a message id; its receipt cannot be matched")
			ids[i] = fmt.Sprintf("none:%s/%d", id, i+1)
		}
	}
	return ids
}

// newIDs reports whether ids has an id for a part prior had none for.
func newIDs(prior, ids []string) bool {
	for i, id := range ids {
		if id != "" && (i >= len(prior) || prior[i] == "") {
			return true
		}
	}
	return false
}

// recordInOrder records updates of one message one after the other, then
// calls then. A record that fails is tried again with backoff (the store
// may be briefly unavailable) until it lands or the engine stops; a
// message whose record never landed stays as the store last had it, and a
// pending one is sent again after a restart.
func (e *Engine) recordInOrder(id string, updates []switchboard.Update, w *work, then func()) {
	if len(updates) == 0 {
		then()
		return
	}
	e.recordAttempt(id, updates, w, 0, then)
}

var recordRetry = switchboard.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}

func (e *Engine) recordAttempt(id string, updates []switchboard.Update, w *work, attempt int, then func()) {
	// The callback runs on the recorder's worker, which must not add to
	// its own queue (a full queue would wait for the worker itself): the
	// next record, or a retry, is added from a timer's goroutine. After
	// the engine stops, add fails at once and the chain ends.
	e.recorder.add(updates[0], func(_ *switchboard.Message, err error) {
		switch {
		case err == nil && len(updates) == 1:
			then()
		case err == nil:
			time.AfterFunc(0, func() { e.recordAttempt(id, updates[1:], w, 0, then) })
		case errors.Is(err, errStopped) || (updates[0].Fence != 0 && w.lost.Load()):
			// Stopped, or fenced out: a message still pending is sent
			// again after a restart, or by the key's new owner.
			e.log.Error().Err(err).Str("id", id).Str("status", string(updates[0].Transition.Event.Status)).
				Msg("recording a status failed as the engine stopped or the key moved; a message still pending is sent again by whoever runs the key next")
			then()
		case switchboard.ErrorCode(err) == switchboard.ENOTFOUND:
			// The message is gone (retention, or an Accept a fenced-out
			// owner undid): retrying cannot record anything, and would
			// keep the key's work from ever ending.
			e.log.Error().Err(err).Str("id", id).Str("status", string(updates[0].Transition.Event.Status)).
				Msg("recording a status failed: the message no longer exists; not retried")
			then()
		default:
			e.log.Warn().Err(err).Str("id", id).Str("status", string(updates[0].Transition.Event.Status)).
				Int("attempt", attempt+1).Msg("recording a status failed; retrying")
			time.AfterFunc(recordRetry.Delay(attempt), func() { e.recordAttempt(id, updates, w, attempt+1, then) })
		}
	})
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

// submitDone moves a destination on after its head's submit: the outcome
// is recorded already (submitCallback). A predecessor's submit is not this
// instance's: its message, if still pending, is in the store.
func (k *keyActor) submitDone(ctx actor.Context, d *submitDone) {
	if d.inst != k.inst {
		return
	}
	k.inflight--
	q, e, now := d.q, d.e, k.e.now()
	q.busy = false
	switch {
	case d.err == nil:
		d.carrier.succeeded()
		q.pop()
		k.leave()
	case permanent(d.err):
		d.carrier.succeeded() // it answered: the carrier is up, the message is bad
		q.pop()
		k.leave()
	default:
		if newIDs(e.ids, d.res.CarrierIDs) {
			e.ids, e.carrier = d.res.CarrierIDs, d.carrier.name
		}
		k.retryLater(q, e, d, now)
	}
	k.list(q)
	k.dispatch(ctx)
}

// retryLater keeps e at the head of q and schedules the next try, or, once
// the carrier has refused or lost it max_attempts times, fails it with the
// last error, so a message that breaks a carrier never holds its
// destination until its validity runs out.
func (k *keyActor) retryLater(q *destQueue, e *entry, d *submitDone, now time.Time) {
	var se *smpp.SubmitError
	switch {
	case errors.Is(d.err, errBindBusy):
		q.retryAt = now.Add(busyRetry)
		return
	case errors.Is(d.err, smpp.ErrNotBound), errors.Is(d.err, smpp.ErrClosed), errors.Is(d.err, context.Canceled):
		// Our side: a bind going down or stopping. Another bind or carrier
		// may take it, and neither the carrier nor the message is to blame.
		q.retryAt = now.Add(unboundRetry)
	case errors.As(d.err, &se) && se.RetryAfter > 0:
		// Throttled or the carrier's queue is full: its pace, not the
		// message.
		q.retryAt = now.Add(se.RetryAfter)
	default:
		d.carrier.failed(d.err, now)
		e.tries++
		if e.tries >= d.carrier.maxAttempts {
			k.e.log.Warn().Err(d.err).Str("key", k.key.ID).Str("id", e.msg.ID).Int("attempts", e.tries).
				Msg("submit failed on every attempt allowed; the message fails")
			q.pop()
			k.finish(e, switchboard.StatusFailed, failure(d.err), now)
			return
		}
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

// failure is the error a message that ended because of err shows.
func failure(err error) *switchboard.EventError {
	var se *smpp.SubmitError
	switch {
	case errors.As(err, &se):
		return &switchboard.EventError{Code: fmt.Sprintf("smpp_0x%08X", uint32(se.Status)), Description: se.Status.String()}
	case errors.Is(err, smpp.ErrResponseTimeout):
		return &switchboard.EventError{Code: "carrier_timeout", Description: "The carrier did not answer the submit in time."}
	case errors.Is(err, smpp.ErrConnectionLost):
		return &switchboard.EventError{Code: "connection_lost", Description: "The connection to the carrier was lost with the submit in flight."}
	}
	return &switchboard.EventError{Code: switchboard.ErrorCode(err), Description: switchboard.ErrorMessage(err)}
}

// finish ends a message the actor gives up on (expired, attempts spent).
func (k *keyActor) finish(e *entry, s switchboard.Status, why *switchboard.EventError, now time.Time) {
	k.leave()
	ev := switchboard.Event{Status: s, At: now, Error: why}
	k.record(switchboard.Update{MessageID: e.msg.ID, Transition: switchboard.Transition{Event: ev, Part: -1}})
}

// record stores a transition as part of the instance's work, fenced by
// its lease.
func (k *keyActor) record(u switchboard.Update) {
	w := k.work
	w.start()
	u.Fence = k.fence()
	k.e.recordInOrder(u.MessageID, []switchboard.Update{u}, w, w.end)
}

// leave accounts for a message leaving the key's queue.
func (k *keyActor) leave() {
	k.setQueued(k.queued - 1)
	k.unhold()
}

// setQueued sets the key's count of pending messages and moves the
// node's (the queue lag) by as much: the node's count is the sum of its
// key actors', so in a cluster each node counts the keys it owns.
func (k *keyActor) setQueued(n int) {
	k.e.gauges.pending.Add(int64(n - k.queued))
	k.queued = n
}

// unhold accounts for a message leaving memory, and its unit of the
// engine's budget with it.
func (k *keyActor) unhold() {
	k.inMemory--
	k.e.held.release(1)
}

// markQueued records, once per message, that it is waiting.
func (k *keyActor) markQueued(e *entry, now time.Time) {
	if e.queued {
		return
	}
	e.queued = true
	ev := switchboard.Event{Status: switchboard.StatusQueued, At: now}
	k.record(switchboard.Update{MessageID: e.msg.ID, Transition: switchboard.Transition{Event: ev, Part: -1}})
}

// wait parks q until its retryAt; the single timer is moved earlier if
// needed.
func (k *keyActor) wait(ctx actor.Context, q *destQueue) {
	k.waiting.set(q, q.retryAt)
	k.setWake(ctx, q.retryAt)
}
