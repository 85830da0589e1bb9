package pebble

import (
	"errors"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// This file holds what the committer does for each request: validate it
// against the database and the round's overlay, then add its writes to the
// round's batch. Nothing is written unless the whole request is valid.

// accept validates and writes one Accept request. An ID that exists, or
// repeats within the round, fails with ECONFLICT; so does an idempotency
// key (per API key) that has a record younger than IdempotencyWindow,
// which makes two concurrent requests with one key resolve to one message.
func (c *committer) accept(nms []sb.NewMessage, b *pebbledb.Batch) error {
	if err := c.claim(nms); err != nil {
		return err
	}
	for i := range nms {
		if err := c.writeNew(&nms[i], b); err != nil {
			return c.writeFailed(err)
		}
	}
	return nil
}

// writeFailed handles an error adding to a batch, which leaves a request's
// writes half in the batch. Pebble reports none for the batches used here,
// so this is defensive: fail the store, which also keeps flush from
// applying the batch.
func (c *committer) writeFailed(err error) error {
	c.fail(fmt.Errorf("add to batch: %w", err))
	return *c.failed.Load()
}

// claim checks every message of a request and enters it into the overlay;
// on a failure it removes what it entered, so the request leaves no trace.
func (c *committer) claim(nms []sb.NewMessage) error {
	for i := range nms {
		if err := c.claimOne(&nms[i]); err != nil {
			c.unclaim(nms[:i])
			return err
		}
	}
	return nil
}

func (c *committer) claimOne(nm *sb.NewMessage) error {
	m := nm.Message
	if m == nil || m.ID == "" {
		return sb.Errorf(sb.EINVALID, "message without an ID")
	}
	if err := c.claimID(m.ID); err != nil {
		return err
	}
	if nm.IdempotencyKey == "" {
		return nil
	}
	if err := c.claimIdempotency(m.Key, nm.IdempotencyKey); err != nil {
		c.unclaimID(m.ID)
		return err
	}
	return nil
}

func (c *committer) claimID(id string) error {
	taken, err := c.idTaken(id)
	if err != nil {
		return fmt.Errorf("check message %s: %w", id, err)
	}
	if taken {
		return sb.Errorf(sb.ECONFLICT, "message %s already exists", id)
	}
	c.recent[id] = struct{}{}
	c.maxID = max(c.maxID, id) // an upper bound still, whether or not the request commits
	c.overlay.msgs[id] = nil   // the message itself is entered by writeNew
	return nil
}

// idTaken reports whether id is in use. recent holds every ID claimed
// since floor was set (this batch's too, so the overlay need not be
// asked), and every stored ID above floor was claimed since then: only an
// ID at or below floor needs the database.
func (c *committer) idTaken(id string) (bool, error) {
	if _, ok := c.recent[id]; ok {
		return true, nil
	}
	if id > c.floor {
		return false, nil
	}
	c.key = messageKey(c.key[:0], id)
	return c.exists(c.key)
}

// unclaimID undoes claimID.
func (c *committer) unclaimID(id string) {
	delete(c.overlay.msgs, id)
	delete(c.recent, id)
}

func (c *committer) claimIdempotency(key, idemKey string) error {
	c.key = idempotencyKey(c.key[:0], key, idemKey)
	if _, ok := c.overlay.idem[string(c.key)]; ok {
		return sb.Errorf(sb.ECONFLICT, "idempotency key %q already used", idemKey)
	}
	_, live, err := liveIdempotency(c.db, c.key, c.now())
	if err != nil {
		return fmt.Errorf("check idempotency key %q: %w", idemKey, err)
	}
	if live {
		return sb.Errorf(sb.ECONFLICT, "idempotency key %q already used", idemKey)
	}
	c.overlay.idem[string(c.key)] = struct{}{}
	return nil
}

func (c *committer) unclaim(nms []sb.NewMessage) {
	for i := range nms {
		m := nms[i].Message
		c.unclaimID(m.ID)
		if nms[i].IdempotencyKey != "" {
			c.key = idempotencyKey(c.key[:0], m.Key, nms[i].IdempotencyKey)
			delete(c.overlay.idem, string(c.key))
		}
	}
}

// writeNew adds a new message, its indexes and its idempotency record to b.
// The message goes into the overlay as the caller's own value: the caller
// is blocked until the round is synced, and the overlay only copies it.
func (c *committer) writeNew(nm *sb.NewMessage, b *pebbledb.Batch) error {
	m := nm.Message
	c.overlay.msgs[m.ID] = m
	c.val = appendMessage(c.val[:0], m)
	if err := b.Set(messageKey(c.key[:0], m.ID), c.val, nil); err != nil {
		return err
	}
	if err := b.Set(dayKey(c.key[:0], m.Key, m.Day(), m.ID), nil, nil); err != nil {
		return err
	}
	if m.Pending() {
		if err := b.Set(pendingKey(c.key[:0], m.Key, m.ID), nil, nil); err != nil {
			return err
		}
	}
	if nm.IdempotencyKey == "" {
		return nil
	}
	rec := sb.IdempotencyRecord{MessageID: m.ID, RequestHash: nm.RequestHash, CreatedAt: m.AcceptedAt}
	c.val = appendIdempotency(c.val[:0], &rec)
	return b.Set(idempotencyKey(c.key[:0], m.Key, nm.IdempotencyKey), c.val, nil)
}

// touchedMessage is a message a Record request has read or changed.
type touchedMessage struct {
	m *sb.Message
	// shared says m is also held elsewhere (the overlay, or a result
	// already handed out), so it must be copied before it is changed.
	shared     bool
	wasPending bool // before this request
	changed    bool
}

// carrierRef is a carrier index entry to write.
type carrierRef struct {
	carrier, carrierID, messageID string
	part                          int
}

// record validates and writes one Record request: every message must exist
// (else ENOTFOUND and nothing is written). Each result is the message as it
// stood after its update; a message is written once, in its final state.
// The callbacks the updates' Notify ask for go into the same batch.
func (c *committer) record(updates []sb.Update, b *pebbledb.Batch) ([]*sb.Message, error) {
	defer c.endTouch()
	results := make([]*sb.Message, len(updates))
	for i := range updates {
		m, err := c.update(&updates[i])
		if err != nil {
			return nil, err
		}
		results[i] = m
	}
	if err := c.writeTouched(b); err != nil {
		return nil, c.writeFailed(err)
	}
	return results, nil
}

// endTouch forgets what a request touched, once it is written or failed.
func (c *committer) endTouch() {
	clear(c.touched)
	c.refs = c.refs[:0]
	clear(c.callbacks) // let go of their Data
	c.callbacks = c.callbacks[:0]
}

// update applies one transition to a private copy of its message and
// returns the copy, which becomes the request's current state. The status
// before is the status after the previous update of the message, in this
// request or an earlier one of the round (current), so each update's
// Notify sees exactly the change it made.
func (c *committer) update(u *sb.Update) (*sb.Message, error) {
	t, err := c.current(u.MessageID)
	if err != nil {
		return nil, err
	}
	if t.shared {
		t.m = cloneMessage(t.m)
	}
	t.shared = true // it is about to be a result
	before := t.m.Status
	changed := t.m.Apply(u.Transition)
	for _, cb := range u.Notify.StatusCallbacks(before, t.m) {
		if err := checkCallback(&cb); err != nil {
			return nil, err
		}
		c.callbacks = append(c.callbacks, cb)
	}
	if !changed {
		return t.m, nil
	}
	t.changed = true
	if tr := &u.Transition; len(tr.CarrierIDs) > 0 && (tr.Event.Status == sb.StatusSubmitted || tr.Part >= 0) {
		for part, id := range tr.CarrierIDs {
			c.refs = append(c.refs, carrierRef{tr.Event.Carrier, id, t.m.ID, part})
		}
	}
	return t.m, nil
}

// current returns the request's entry for a message, creating it on first
// touch from the round's overlay or else the database.
func (c *committer) current(id string) (*touchedMessage, error) {
	if t, ok := c.touched[id]; ok {
		return t, nil
	}
	m, shared := c.overlay.msgs[id]
	if !shared {
		var err error
		m, err = getMessage(c.db, messageKey(c.key[:0], id))
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", id, err)
		}
	}
	t := &touchedMessage{m: m, shared: shared, wasPending: m.Pending()}
	c.touched[id] = t
	return t, nil
}

// writeTouched adds the changed messages of a request, their pending index
// changes, carrier index entries and queued callbacks to b, and enters the
// messages into the overlay.
func (c *committer) writeTouched(b *pebbledb.Batch) error {
	for id, t := range c.touched {
		if !t.changed {
			continue
		}
		c.overlay.msgs[id] = t.m
		if err := c.writeMessage(t, b); err != nil {
			return err
		}
	}
	for _, r := range c.refs {
		c.val = appendCarrierRef(c.val[:0], r.messageID, r.part)
		if err := b.Set(carrierKey(c.key[:0], r.carrier, r.carrierID), c.val, nil); err != nil {
			return err
		}
	}
	for i := range c.callbacks {
		if err := c.writeCallback(&c.callbacks[i], b); err != nil {
			return err
		}
	}
	return nil
}

// checkCallback refuses a callback that cannot be listed or finished: one
// without an ID or an endpoint. It fails the write it is part of, since a
// write that queues a callback must queue it.
func checkCallback(cb *sb.Callback) error {
	if cb.ID == "" || cb.Endpoint == "" {
		return sb.Errorf(sb.EINVALID, "callback for message %s without an ID or endpoint", cb.MessageID)
	}
	return nil
}

func (c *committer) writeCallback(cb *sb.Callback, b *pebbledb.Batch) error {
	c.val = appendCallback(c.val[:0], cb)
	return b.Set(outboxKey(c.key[:0], cb.Endpoint, cb.ID), c.val, nil)
}

// finish writes one FinishCallbacks request: it deletes the callbacks'
// outbox entries, present or not, and appends each failure to its
// message, read and written like Record's updates (so several failures of
// one message, in one request or one round, all land). A message that is
// not found is skipped, and so is a failure whose event the message lists
// already: a repeated FinishCallbacks does not record it twice.
func (c *committer) finish(done []sb.FinishedCallback, b *pebbledb.Batch) error {
	defer c.endTouch()
	for i := range done {
		f := &done[i]
		if f.Failure == nil {
			continue
		}
		t, err := c.current(f.Callback.MessageID)
		if sb.ErrorCode(err) == sb.ENOTFOUND {
			continue
		}
		if err != nil {
			return err
		}
		if hasFailure(t.m, f.Failure.EventID) {
			continue
		}
		if t.shared {
			t.m, t.shared = cloneMessage(t.m), false
		}
		t.m.WebhookFailures = append(t.m.WebhookFailures, *f.Failure)
		t.changed = true
	}
	for i := range done {
		cb := &done[i].Callback
		if err := b.Delete(outboxKey(c.key[:0], cb.Endpoint, cb.ID), nil); err != nil {
			return c.writeFailed(err)
		}
	}
	if err := c.writeTouched(b); err != nil {
		return c.writeFailed(err)
	}
	return nil
}

func hasFailure(m *sb.Message, eventID string) bool {
	for i := range m.WebhookFailures {
		if m.WebhookFailures[i].EventID == eventID {
			return true
		}
	}
	return false
}

// addPart writes one AddInboundPart request. A part's identity includes its
// Concat, so a part without one cannot be stored (EINVALID): a message in
// one part needs no reassembly.
func (c *committer) addPart(p *sb.InboundPart, b *pebbledb.Batch) error {
	if p.Concat == nil {
		return sb.Errorf(sb.EINVALID, "inbound part without a concatenation reference")
	}
	c.val = appendInboundPart(c.val[:0], p)
	if err := b.Set(partKey(c.key[:0], p), c.val, nil); err != nil {
		return c.writeFailed(err)
	}
	return nil
}

// acceptInbound validates and writes one AcceptInbound request: the
// message (ECONFLICT if its ID exists or repeats in the round) with its
// by-day index entry but no pending entry, its callback, and the removal
// of its parts. Parts without a Concat were never stored and are skipped.
func (c *committer) acceptInbound(m *sb.Message, cb *sb.Callback, parts []sb.InboundPart, b *pebbledb.Batch) error {
	if m == nil || m.ID == "" {
		return sb.Errorf(sb.EINVALID, "message without an ID")
	}
	if cb != nil {
		if err := checkCallback(cb); err != nil {
			return err
		}
	}
	if err := c.claimID(m.ID); err != nil {
		return err
	}
	c.overlay.msgs[m.ID] = m
	if err := c.writeInbound(m, cb, parts, b); err != nil {
		return c.writeFailed(err)
	}
	return nil
}

func (c *committer) writeInbound(m *sb.Message, cb *sb.Callback, parts []sb.InboundPart, b *pebbledb.Batch) error {
	c.val = appendMessage(c.val[:0], m)
	if err := b.Set(messageKey(c.key[:0], m.ID), c.val, nil); err != nil {
		return err
	}
	if err := b.Set(dayKey(c.key[:0], m.Key, m.Day(), m.ID), nil, nil); err != nil {
		return err
	}
	if cb != nil {
		if err := c.writeCallback(cb, b); err != nil {
			return err
		}
	}
	return c.deleteParts(parts, b)
}

// deleteParts removes stored inbound parts; parts without a Concat were
// never stored and are skipped.
func (c *committer) deleteParts(parts []sb.InboundPart, b *pebbledb.Batch) error {
	for i := range parts {
		if parts[i].Concat == nil {
			continue
		}
		if err := b.Delete(partKey(c.key[:0], &parts[i]), nil); err != nil {
			return err
		}
	}
	return nil
}

// initSetting writes one InitSetting request: the value stored already
// (in the database or earlier in the round) wins; else value is written.
func (c *committer) initSetting(name, value string, b *pebbledb.Batch) (string, error) {
	if v, ok := c.overlay.settings[name]; ok {
		return v, nil
	}
	c.key = settingKey(c.key[:0], name)
	v, closer, err := c.db.Get(c.key)
	if err == nil {
		defer closer.Close()
		stored, err := decodeSetting(v)
		if err != nil {
			return "", fmt.Errorf("setting %q: %w", name, err)
		}
		return stored, nil
	}
	if !errors.Is(err, pebbledb.ErrNotFound) {
		return "", fmt.Errorf("setting %q: %w", name, err)
	}
	c.val = appendSetting(c.val[:0], value)
	if err := b.Set(c.key, c.val, nil); err != nil {
		return "", c.writeFailed(err)
	}
	c.overlay.settings[name] = value
	return value, nil
}

func (c *committer) writeMessage(t *touchedMessage, b *pebbledb.Batch) error {
	m := t.m
	c.val = appendMessage(c.val[:0], m)
	if err := b.Set(messageKey(c.key[:0], m.ID), c.val, nil); err != nil {
		return err
	}
	switch pending := m.Pending(); {
	case pending && !t.wasPending:
		return b.Set(pendingKey(c.key[:0], m.Key, m.ID), nil, nil)
	case !pending && t.wasPending:
		return b.Delete(pendingKey(c.key[:0], m.Key, m.ID), nil)
	}
	return nil
}

// cloneMessage returns a deep copy of m that keeps nil slices nil.
func cloneMessage(m *sb.Message) *sb.Message {
	c := *m
	if m.CarrierIDs != nil {
		c.CarrierIDs = append(make([]string, 0, len(m.CarrierIDs)), m.CarrierIDs...)
	}
	if m.PartStatus != nil {
		c.PartStatus = append(make([]sb.Status, 0, len(m.PartStatus)), m.PartStatus...)
	}
	if m.Events != nil {
		c.Events = append(make([]sb.Event, 0, len(m.Events)), m.Events...)
		for i, e := range c.Events {
			if e.Error != nil {
				errCopy := *e.Error
				c.Events[i].Error = &errCopy
			}
		}
	}
	if m.WebhookFailures != nil {
		c.WebhookFailures = append(make([]sb.WebhookFailure, 0, len(m.WebhookFailures)), m.WebhookFailures...)
	}
	return &c
}
