package actors

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// partRef is one part of one message. ids are the carrier ids of all its
// parts when the reference came from the correlator: the submit is not
// recorded yet, and the receipt's record carries them so the submission
// is recorded with it (Message.Apply).
type partRef struct {
	messageID string
	part      int
	ids       []string
}

type carrierRef struct{ carrier, id string }

// correlator maps carrier message ids to our messages. The store's index is
// the truth; this map covers the moment between a submit_sm_resp and the
// commit of the "submitted" transition, when a fast carrier's receipt can
// already be on the wire (often on another bind). Entries live only for
// that moment, so the map is as small as the submits in flight.
//
// A receipt can also come a moment before its submit_sm_resp has been
// read (the SMSC sends it on another bind, whose reader runs first): such
// a receipt waits here for the id a short while (responseWait) before it is
// parked in the store, which would cost it two more writes.
type correlator struct {
	mu      sync.Mutex
	m       map[carrierRef]partRef
	waiting map[carrierRef][]*receiptWaiter
	nwait   int
}

// receiptWaiter is a receipt waiting for its carrier id; fire runs once,
// with the part when the id came, else with ok false.
type receiptWaiter struct {
	once sync.Once
	fire func(p partRef, ok bool)
	// timer gives up on the id after responseWait; add stops it when the
	// id comes first, so an answered receipt leaves nothing to fire.
	timer *time.Timer
}

const (
	// responseWait bounds how long a receipt waits for its submit's
	// response before it is parked in the store.
	responseWait = 250 * time.Millisecond
	// maxReceiptWaiters bounds the receipts waiting at once; past it a
	// receipt is parked at once.
	maxReceiptWaiters = 4096
)

func newCorrelator() *correlator {
	return &correlator{m: make(map[carrierRef]partRef), waiting: make(map[carrierRef][]*receiptWaiter)}
}

func (c *correlator) add(carrier string, ids []string, messageID string) {
	var woken []*receiptWaiter
	var refs []partRef
	c.mu.Lock()
	for i, id := range ids {
		if id == "" { // a part not accepted yet
			continue
		}
		k := carrierRef{carrier, id}
		p := partRef{messageID, i, ids}
		c.m[k] = p
		for _, w := range c.waiting[k] {
			w.timer.Stop()
			woken, refs = append(woken, w), append(refs, p)
		}
		c.nwait -= len(c.waiting[k])
		delete(c.waiting, k)
	}
	c.mu.Unlock()
	for i, w := range woken {
		w.once.Do(func() { w.fire(refs[i], true) })
	}
}

// await calls fire with the part once carrier id id is added, or with ok
// false after responseWait (at once when too many receipts wait already).
func (c *correlator) await(carrier, id string, fire func(p partRef, ok bool)) {
	k := carrierRef{carrier, id}
	w := &receiptWaiter{fire: fire}
	c.mu.Lock()
	if p, ok := c.m[k]; ok {
		c.mu.Unlock()
		fire(p, true)
		return
	}
	if c.nwait >= maxReceiptWaiters {
		c.mu.Unlock()
		fire(partRef{}, false)
		return
	}
	c.waiting[k] = append(c.waiting[k], w)
	c.nwait++
	// Set under the lock, which add holds to stop it.
	w.timer = time.AfterFunc(responseWait, func() {
		c.mu.Lock()
		ws := c.waiting[k]
		if i := slices.Index(ws, w); i >= 0 {
			c.waiting[k] = slices.Delete(ws, i, i+1)
			if len(c.waiting[k]) == 0 {
				delete(c.waiting, k)
			}
			c.nwait--
		}
		c.mu.Unlock()
		w.once.Do(func() { fire(partRef{}, false) })
	})
	c.mu.Unlock()
}

func (c *correlator) remove(carrier string, ids []string) {
	c.mu.Lock()
	for _, id := range ids {
		delete(c.m, carrierRef{carrier, id})
	}
	c.mu.Unlock()
}

func (c *correlator) get(carrier, id string) (partRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[carrierRef{carrier, id}]
	return p, ok
}

// recordJob is one transition to store; done gets the result.
type recordJob struct {
	update switchboard.Update
	done   func(*switchboard.Message, error)
}

// recorder stores status transitions in batches (see batcher), so
// receipts and submit results at 20k/s cost some tens of commits a
// second. Every transition asks for a status callback (Update.Notify) with
// an event ID from ids; the store queues one when the status changed to one
// the key wants, and recorded tells the webhook dispatcher to look.
//
// One worker writes, so batches commit in the order their event IDs were
// handed out: a message's submitted and delivered transitions, recorded in
// two batches, get callback IDs in the order the statuses were reached,
// and the dispatcher, which sends a message's callbacks in ID order, sends
// them in that order. With several workers a later batch could take its
// IDs first and commit second.
type recorder struct {
	store  switchboard.MessageStore
	ids    *eventIDs
	policy func(key string) switchboard.KeyCallbacks
	// hint tells an endpoint that callbacks were queued to it.
	hint  func(endpoint string)
	now   func() time.Time
	batch *batcher[recordJob]

	// updates and notes are write's, kept from batch to batch (the one
	// worker is their only user): the store reads them only while
	// Record runs.
	updates []switchboard.Update
	notes   []switchboard.Notify
}

const (
	recordWorkers  = 1
	recordMaxBatch = 1024
)

func newRecorder(store switchboard.MessageStore, ids *eventIDs, policy func(string) switchboard.KeyCallbacks,
	hint func(endpoint string), now func() time.Time) *recorder {
	r := &recorder{store: store, ids: ids, policy: policy, hint: hint, now: now}
	r.batch = newBatcher(recordWorkers, recordMaxBatch, 64*1024, r.write)
	return r
}

func (r *recorder) start() { r.batch.start() }

// stop lets the workers finish what is queued, then returns.
func (r *recorder) stop() { r.batch.stop() }

// add queues a transition; after stop, done gets errStopped at once (a
// receipt is then refused, so the SMSC sends it again to the next run).
func (r *recorder) add(u switchboard.Update, done func(*switchboard.Message, error)) {
	if !r.batch.add(recordJob{update: u, done: done}) {
		done(nil, errStopped)
	}
}

var errStopped = errors.New("engine stopped")

// write records a batch; if the batch fails as a whole (one bad update
// spoils an all-or-none write), each update is retried alone so one
// message's problem is only that message's.
func (r *recorder) write(batch []recordJob) {
	updates, notes := r.buffers(len(batch))
	defer clear(updates) // let go of the messages' data until the next batch
	now := r.now()
	ids, token := r.ids.begin(len(batch), now)
	for i, j := range batch {
		notes[i] = switchboard.Notify{EventID: ids[i], Policy: r.policy, At: now}
		updates[i] = j.update
		updates[i].Notify = &notes[i]
	}
	msgs, errs := r.record(updates)
	// The IDs are written (or never will be): readers may pass them now,
	// and only now may the endpoints be told to look: each endpoint the
	// store queued a callback to, as the store decided it (a key's URL
	// may have changed since).
	r.ids.end(token)
	last := ""
	for i, j := range batch {
		if n := &notes[i]; errs[i] == nil && n.Queued > 0 && n.Endpoint != last {
			r.hint(n.Endpoint)
			last = n.Endpoint
		}
		j.done(msgs[i], errs[i])
	}
}

// buffers returns write's updates and notes, n of each.
func (r *recorder) buffers(n int) ([]switchboard.Update, []switchboard.Notify) {
	if cap(r.updates) < n {
		r.updates, r.notes = make([]switchboard.Update, n), make([]switchboard.Notify, n)
	}
	return r.updates[:n], r.notes[:n]
}

// record stores updates in one write; if that fails as a whole (one bad
// update spoils an all-or-none write), each is retried alone so one
// message's problem is only that message's.
func (r *recorder) record(updates []switchboard.Update) ([]*switchboard.Message, []error) {
	ctx := context.Background()
	errs := make([]error, len(updates))
	msgs, err := r.store.Record(ctx, updates)
	if err == nil {
		return msgs, errs
	}
	msgs = make([]*switchboard.Message, len(updates))
	if len(updates) == 1 {
		errs[0] = err
		return msgs, errs
	}
	for i := range updates {
		m, err := r.store.Record(ctx, updates[i:i+1])
		if err != nil {
			errs[i] = err
			continue
		}
		msgs[i] = m[0]
	}
	return msgs, errs
}

// onReceipt records a receipt; ack answers the SMSC once the new status is
// stored (or refuses, so the SMSC sends it again). The carrier id is found
// in the correlator (a submit whose record is still being written), else
// by the store, which indexes every recorded submit. A receipt whose id
// neither knows has overtaken its submit_sm_resp, mostly by a moment (it
// came in on another bind, whose reader ran first): it waits for the id in
// the correlator (await), and only if the id does not come then is it
// parked in the store, to be applied when the id is recorded or dropped
// after the carrier's receipt timeout.
func (e *Engine) onReceipt(r switchboard.Receipt, ack func(error)) {
	if r.Status == "" {
		e.metrics.Receipt(r.Carrier, ReceiptIntermediate)
		ack(nil) // intermediate (ENROUTE, ACCEPTD): nothing to record
		return
	}
	if ref, ok := e.corr.get(r.Carrier, r.CarrierMessageID); ok {
		e.recordReceipt(r, e.correlated(r, ref), ack)
		return
	}
	if e.fleet != nil {
		e.background(func(ctx context.Context) { e.fleet.receiptToOwner(ctx, r, ack) })
		return
	}
	// Parking nothing (no ParkUntil): a nil message says the store does
	// not know the id yet.
	e.recorder.add(byCarrierID(r, time.Time{}), func(m *switchboard.Message, err error) {
		if err != nil || m != nil {
			e.receiptRecorded(r, m, err, ack)
			return
		}
		// Not recorded from here: this runs on the recorder's goroutine,
		// and the id may be added on a bind's reader; either would wait
		// on itself if the recorder's queue were full.
		e.corr.await(r.Carrier, r.CarrierMessageID, func(ref partRef, ok bool) {
			e.background(func(context.Context) { e.receiptAwaited(r, ref, ok, ack) })
		})
	})
}

// receiptAwaited records a receipt that waited for its id: by the part the
// correlator found, or parked in the store.
func (e *Engine) receiptAwaited(r switchboard.Receipt, ref partRef, ok bool, ack func(error)) {
	switch {
	case ok:
		e.recordReceipt(r, e.correlated(r, ref), ack)
	case e.stopping.Load():
		ack(errStopping) // the SMSC sends it again
	default:
		e.recordReceipt(r, byCarrierID(r, e.now().Add(e.receiptTimeout(r.Carrier))), ack)
	}
}

// byCarrierID is a receipt's update for the store to find by carrier id,
// parked until parkUntil if the id is not indexed yet.
func byCarrierID(r switchboard.Receipt, parkUntil time.Time) switchboard.Update {
	u := receiptUpdate(r, partRef{part: -1})
	u.ByCarrier = &switchboard.CarrierRef{Carrier: r.Carrier, ID: r.CarrierMessageID}
	u.ParkUntil = parkUntil
	return u
}

// receiptUpdate is a receipt's transition of one part (ref from the
// correlator; without a message ID, the store finds it by carrier id).
func receiptUpdate(r switchboard.Receipt, ref partRef) switchboard.Update {
	return switchboard.Update{MessageID: ref.messageID, Transition: switchboard.Transition{
		Event: r.Event(), Part: ref.part, CarrierIDs: ref.ids}}
}

// correlated is the update of a receipt the correlator matched. It
// carries its submit's carrier ids, since the submit's record may not
// have landed, and a receipt deadline for the submission it may record:
// if that record never lands (a crash), the message still ends.
func (e *Engine) correlated(r switchboard.Receipt, ref partRef) switchboard.Update {
	u := receiptUpdate(r, ref)
	if len(ref.ids) > 0 {
		u.Transition.ReceiptDue = e.now().Add(e.receiptTimeout(r.Carrier))
	}
	return u
}

// errStopping refuses a receipt that waited for its submit's response
// while the node began to stop.
var errStopping = switchboard.Errorf(switchboard.EUNAVAILABLE, "the node is stopping")

// recordReceipt records a receipt's update and answers the SMSC.
func (e *Engine) recordReceipt(r switchboard.Receipt, u switchboard.Update, ack func(error)) {
	e.recorder.add(u, func(m *switchboard.Message, err error) { e.receiptRecorded(r, m, err, ack) })
}

// receiptRecorded counts a receipt's record and answers the SMSC.
func (e *Engine) receiptRecorded(r switchboard.Receipt, m *switchboard.Message, err error, ack func(error)) {
	switch {
	case err != nil:
	case m == nil:
		e.stats.receiptsParked.Add(1)
		e.metrics.Receipt(r.Carrier, ReceiptUnmatched)
		e.log.Debug().Str("carrier", r.Carrier).Str("carrier_message_id", r.CarrierMessageID).
			Msg("receipt for a carrier message id not recorded yet; kept until its submit is")
	default:
		e.stats.receipts.Add(1)
		e.metrics.Receipt(r.Carrier, string(r.Status))
	}
	ack(err)
}

// receiptTimeout is the named carrier's.
func (e *Engine) receiptTimeout(name string) time.Duration {
	if c := e.router.carrier(name); c != nil {
		return c.receiptTimeout
	}
	return DefaultReceiptTimeout
}

// overdueBatch is how many overdue messages one sweep step ends.
const overdueBatch = 1000

// sweepOverdue ends as unknown every submitted message whose receipt is
// overdue (Message.ReceiptDue), so no message waits for ever on a receipt
// the carrier never sends. Each step waits for its records before it asks
// for more, so a message it ended is not listed again.
func (e *Engine) sweepOverdue(ctx context.Context) {
	for ctx.Err() == nil {
		ids, err := e.store.Overdue(ctx, e.now(), overdueBatch)
		if err != nil {
			e.log.Error().Err(err).Msg("listing messages whose receipt is overdue failed; will retry")
			return
		}
		var wg sync.WaitGroup
		var ended atomic.Int64
		now := e.now()
		for _, id := range ids {
			if e.fleet != nil && !e.fleet.ownsMessage(ctx, id) {
				continue // its key's owner ends it: every update of a message is made there
			}
			wg.Add(1)
			ev := switchboard.Event{Status: switchboard.StatusUnknown, At: now, Error: &switchboard.EventError{
				Code: "receipt_timeout", Description: "No delivery receipt came within the carrier's receipt timeout."}}
			e.recorder.add(switchboard.Update{MessageID: id, Transition: switchboard.Transition{Event: ev, Part: -1}},
				func(m *switchboard.Message, err error) {
					defer wg.Done()
					if err != nil {
						e.log.Error().Err(err).Str("id", id).Msg("recording unknown failed; will retry")
						return
					}
					ended.Add(1)
					if m != nil && m.Status == switchboard.StatusUnknown {
						e.stats.unknown.Add(1)
					}
				})
		}
		wg.Wait()
		// A full batch that ended nothing (other nodes' messages, or
		// records that failed) would be listed again at once: wait for
		// the next sweep instead.
		if len(ids) < overdueBatch || ended.Load() == 0 {
			return
		}
	}
}

// sweepOverdueEvery runs sweepOverdue every interval until ctx ends.
func (e *Engine) sweepOverdueEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.sweepOverdue(ctx)
		}
	}
}
