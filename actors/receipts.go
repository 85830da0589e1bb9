package actors

import (
	"context"
	"errors"
	"sync"
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
type correlator struct {
	mu sync.Mutex
	m  map[carrierRef]partRef
}

func newCorrelator() *correlator { return &correlator{m: make(map[carrierRef]partRef)} }

func (c *correlator) add(carrier string, ids []string, messageID string) {
	c.mu.Lock()
	for i, id := range ids {
		c.m[carrierRef{carrier, id}] = partRef{messageID, i, ids}
	}
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
	store    switchboard.MessageStore
	ids      *eventIDs
	policy   func(key string) (string, switchboard.StatusSet)
	recorded func(*switchboard.Message)
	now      func() time.Time
	batch    *batcher[recordJob]
}

const (
	recordWorkers  = 1
	recordMaxBatch = 1024
)

func newRecorder(store switchboard.MessageStore, ids *eventIDs, policy func(string) (string, switchboard.StatusSet),
	recorded func(*switchboard.Message), now func() time.Time) *recorder {
	r := &recorder{store: store, ids: ids, policy: policy, recorded: recorded, now: now}
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
	updates := make([]switchboard.Update, len(batch))
	notes := make([]switchboard.Notify, len(batch))
	now := r.now()
	ids, token := r.ids.begin(len(batch), now)
	for i, j := range batch {
		notes[i] = switchboard.Notify{EventID: ids[i], Policy: r.policy, At: now}
		updates[i] = j.update
		updates[i].Notify = &notes[i]
	}
	msgs, errs := r.record(updates)
	// The IDs are written (or never will be): readers may pass them now,
	// and only now may the endpoints be told to look.
	r.ids.end(token)
	for i, j := range batch {
		if errs[i] == nil {
			r.recorded(msgs[i])
		}
		j.done(msgs[i], errs[i])
	}
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

// Receipt matching: a receipt whose carrier id is not known yet is looked
// up again for a while before it is given up on. The usual cause is a
// receipt read on one bind a moment before its submit_sm_resp is read on
// another, so the first retries come quickly (2 ms, doubling) and only
// later ones wait the full interval.
const (
	receiptRetryFirst = 2 * time.Millisecond
	receiptRetryEvery = 200 * time.Millisecond
	receiptRetryFor   = 5 * time.Second
)

// onReceipt correlates a receipt and records it; ack answers the SMSC once
// the new status is stored (or refuses, so the SMSC sends it again).
func (e *Engine) onReceipt(r switchboard.Receipt, ack func(error)) {
	if r.Status == "" {
		ack(nil) // intermediate (ENROUTE, ACCEPTD): nothing to record
		return
	}
	e.matchReceipt(r, ack, time.Now().Add(receiptRetryFor), receiptRetryFirst)
}

func (e *Engine) matchReceipt(r switchboard.Receipt, ack func(error), giveUp time.Time, wait time.Duration) {
	ref, err := e.lookupCarrierID(r.Carrier, r.CarrierMessageID)
	switch {
	case err == nil:
		e.recordReceipt(r, ref, ack)
	case switchboard.ErrorCode(err) != switchboard.ENOTFOUND:
		ack(err) // the store failed: let the SMSC send it again
	case time.Now().Before(giveUp):
		next := min(2*wait, receiptRetryEvery)
		time.AfterFunc(wait, func() { e.matchReceipt(r, ack, giveUp, next) })
	default:
		e.stats.receiptsUnmatched.Add(1)
		e.log.Warn().Str("carrier", r.Carrier).Str("carrier_message_id", r.CarrierMessageID).
			Msg("receipt for an unknown carrier message id; acknowledged and dropped")
		ack(nil)
	}
}

func (e *Engine) lookupCarrierID(carrier, id string) (partRef, error) {
	if ref, ok := e.corr.get(carrier, id); ok {
		return ref, nil
	}
	msgID, part, err := e.store.CarrierMessage(context.Background(), carrier, id)
	if err != nil {
		return partRef{}, err
	}
	return partRef{messageID: msgID, part: part}, nil
}

func (e *Engine) recordReceipt(r switchboard.Receipt, ref partRef, ack func(error)) {
	// The event is stamped when we learned of it: the receipt's own done
	// date has minute precision and the carrier's clock and time zone.
	ev := switchboard.Event{Status: r.Status, At: r.ReceivedAt, Carrier: r.Carrier, CarrierMessageID: r.CarrierMessageID}
	if r.Status != switchboard.StatusDelivered {
		ev.Error = &switchboard.EventError{Code: r.ErrorCode, Description: r.State}
	}
	u := switchboard.Update{MessageID: ref.messageID, Transition: switchboard.Transition{Event: ev, Part: ref.part, CarrierIDs: ref.ids}}
	e.recorder.add(u, func(_ *switchboard.Message, err error) {
		if err == nil {
			e.stats.receipts.Add(1)
		}
		ack(err)
	})
}
