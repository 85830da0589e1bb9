package pebble

import (
	"errors"
	"fmt"
	"time"

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
	if err := c.checkFence(m.Key, m.Fence); err != nil {
		return err
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
	c.inflight.put(m.Clone()) // the caller's may change after the round
	if err := b.Set(dayKey(c.key[:0], m.Key, m.Day(), m.ID), nil, nil); err != nil {
		return err
	}
	if indexedPending(m) {
		if err := b.Set(pendingKey(c.key[:0], m.Key, m.ID), nil, nil); err != nil {
			return err
		}
		c.deltas[m.Key]++
	}
	if due := dueOf(m); !due.IsZero() {
		if err := b.Set(dueKey(c.key[:0], due, m.ID), nil, nil); err != nil {
			return err
		}
	}
	if nm.IdempotencyKey == "" {
		return nil
	}
	rec := sb.IdempotencyRecord{MessageID: m.ID, RequestHash: nm.RequestHash, CreatedAt: m.AcceptedAt}
	c.val = appendIdempotency(c.val[:0], &rec)
	k := idempotencyKey(c.key[:0], m.Key, nm.IdempotencyKey)
	if err := b.Set(k, c.val, nil); err != nil {
		return err
	}
	return c.writeExpiry(expiry{kind: expiryIdempotency, at: rec.CreatedAt, target: string(k), guard: m.ID}, b)
}

// indexedPending reports whether a message belongs in the pending index
// (and its key's counter): Message.Pending, for an outbound message. An
// inbound one is never pending, whatever its status.
func indexedPending(m *sb.Message) bool {
	return m.Pending() && m.Direction != sb.DirectionInbound
}

// dueOf is when a message is listed by Overdue: its ReceiptDue while it is
// submitted (not final yet), else the zero time.
func dueOf(m *sb.Message) time.Time {
	if m.Status != sb.StatusSubmitted {
		return time.Time{}
	}
	return m.ReceiptDue
}

// touchedMessage is a message a Record request has read or changed.
type touchedMessage struct {
	m *sb.Message
	// shared says m is also held elsewhere (the overlay, or a result
	// already handed out), so it must be copied before it is changed.
	shared bool
	// Before this request: whether it was pending, when it was due
	// (dueOf) and whether it was final.
	wasPending bool
	wasDue     time.Time
	wasFinal   bool
	changed    bool
	indexed    bool // carrier ids of it were indexed by this request
}

// refEntry is a carrier index entry: the message and part a carrier id
// names. In the overlay, gone marks one deleted in the round.
type refEntry struct {
	messageID string
	part      int
	gone      bool
}

// carrierRef is a carrier id of a message's part.
type carrierRef struct {
	carrier, carrierID string
	part               int
}

// expiry is an entry of the expiry queue (retention.go): the key of a
// record to delete once at is old enough, and the message ID that record
// must still belong to.
type expiry struct {
	kind   byte
	at     time.Time
	target string
	guard  string
}

// record validates and writes one Record request: every message must exist
// (else ENOTFOUND and nothing is written). Each result is the message as it
// stood after its update, or nil for an update parked because no message
// has its carrier id yet. A message is written once, in its final state.
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
	clear(c.refs)
	clear(c.parked)
	c.expiries = c.expiries[:0]
	clear(c.callbacks) // let go of their Data
	c.callbacks = c.callbacks[:0]
}

// update applies one transition to a private copy of its message and
// returns the copy, which becomes the request's current state. The status
// before is the status after the previous update of the message, in this
// request or an earlier one of the round (current), so each update's
// Notify sees exactly the change it made. An update by carrier id finds
// its message through the carrier index, or is parked (park) and returns
// nil. When the update indexes carrier ids, the updates parked for them
// are applied after it (unpark), so its Notify sees the whole change: a
// receipt that overtook its submit makes the submit's record queue the
// submitted and the final callback.
func (c *committer) update(u *sb.Update) (*sb.Message, error) {
	id, tr := u.MessageID, u.Transition
	if id == "" {
		if u.ByCarrier == nil {
			return nil, sb.Errorf(sb.EINVALID, "update without a message ID or a carrier id")
		}
		ref, found, err := c.lookupRef(carrierKey(c.key[:0], u.ByCarrier.Carrier, u.ByCarrier.ID))
		if err != nil {
			return nil, fmt.Errorf("carrier %s message %s: %w", u.ByCarrier.Carrier, u.ByCarrier.ID, err)
		}
		if !found {
			return nil, c.park(u)
		}
		id, tr.Part = ref.messageID, ref.part
	}
	t, err := c.current(id)
	if err != nil {
		return nil, err
	}
	if err := c.checkFence(t.m.Key, u.Fence); err != nil {
		return nil, err
	}
	if t.shared {
		t.m = t.m.Clone()
	}
	t.shared = true // it is about to be a result
	before := t.m.Status
	if changed, given := t.m.ApplyGiving(tr); changed {
		t.changed = true
		if err := c.index(t, &tr, given); err != nil {
			return nil, err
		}
	}
	for _, cb := range u.Notify.StatusCallbacks(before, t.m) {
		if err := checkCallback(&cb); err != nil {
			return nil, err
		}
		c.callbacks = append(c.callbacks, cb)
	}
	return t.m, nil
}

// index enters the carrier ids a transition gave the message (a submitted
// one, or a receipt that carried its submission: Message.ApplyGiving) into
// the carrier index, and applies the updates parked for each.
func (c *committer) index(t *touchedMessage, tr *sb.Transition, given []int) error {
	m := t.m
	for _, part := range given {
		cid := tr.CarrierIDs[part]
		k := string(carrierKey(c.key[:0], tr.Event.Carrier, cid))
		c.refs[k] = refEntry{messageID: m.ID, part: part}
		t.indexed = true
		if err := c.unpark(m, tr.Event.Carrier, cid, part, tr); err != nil {
			return err
		}
	}
	return nil
}

// lookupRef finds a carrier index entry: written by this request, earlier
// in the round, or stored.
func (c *committer) lookupRef(k []byte) (refEntry, bool, error) {
	if r, ok := c.refs[string(k)]; ok {
		return r, true, nil
	}
	if r, ok := c.overlay.refs[string(k)]; ok {
		return r, !r.gone, nil
	}
	if r, ok := c.inflight.ref(string(k)); ok {
		return r, true, nil
	}
	return readRef(c.db, k)
}

// current returns the request's entry for a message, creating it on first
// touch from the round's overlay or else the database. A message that
// retention deleted earlier in the round is not found.
func (c *committer) current(id string) (*touchedMessage, error) {
	if t, ok := c.touched[id]; ok {
		return t, nil
	}
	m, shared := c.overlay.msgs[id]
	if _, gone := c.overlay.deleted[id]; gone || (shared && m == nil) {
		return nil, fmt.Errorf("message %s: %w", id, sb.Errorf(sb.ENOTFOUND, "message not found"))
	}
	if !shared {
		m, shared = c.inflight.message(id)
	}
	if !shared {
		var err error
		m, err = getMessage(c.db, messageKey(c.key[:0], id))
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", id, err)
		}
	}
	t := &touchedMessage{m: m, shared: shared, wasPending: indexedPending(m), wasDue: dueOf(m), wasFinal: m.Status.Final()}
	c.touched[id] = t
	return t, nil
}

// writeTouched adds what a request wrote to b: the changed messages with
// their index changes, carrier index entries, parked updates, expiry queue
// entries and queued callbacks; and enters them into the overlay.
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
	for k, r := range c.refs {
		c.val = appendCarrierRef(c.val[:0], r.messageID, r.part)
		if err := b.Set([]byte(k), c.val, nil); err != nil {
			return err
		}
		c.overlay.refs[k] = r
		c.inflight.putRef(k, r)
	}
	for k, p := range c.parked {
		if err := c.writeParked(k, p, b); err != nil {
			return err
		}
	}
	for _, e := range c.expiries {
		if err := c.writeExpiry(e, b); err != nil {
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

func (c *committer) writeExpiry(e expiry, b *pebbledb.Batch) error {
	c.val = appendGuard(c.val[:0], e.guard)
	return b.Set(expiryKey(c.key[:0], e.kind, e.at, []byte(e.target)), c.val, nil)
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
		if t.m.HasWebhookFailure(f.Failure.EventID) {
			continue
		}
		if t.shared {
			t.m, t.shared = t.m.Clone(), false
		}
		t.m.WebhookFailures = append(t.m.WebhookFailures, *f.Failure)
		t.changed = true
	}
	// A callback's entry is set once, under its unique ID, so a single
	// delete removes it (see doc.go, Single deletes). Finishing one twice
	// is harmless: the second finds nothing to cancel.
	for i := range done {
		cb := &done[i].Callback
		if err := b.SingleDelete(outboxKey(c.key[:0], cb.Endpoint, cb.ID), nil); err != nil {
			return c.writeFailed(err)
		}
	}
	if err := c.writeTouched(b); err != nil {
		return c.writeFailed(err)
	}
	return nil
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
	c.key = settingKey(c.key[:0], name)
	if v, ok := c.overlay.settings[name]; ok {
		if v != nil {
			return *v, nil
		}
		// Deleted earlier in the round: write it anew.
	} else {
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
	}
	c.val = appendSetting(c.val[:0], value)
	if err := b.Set(c.key, c.val, nil); err != nil {
		return "", c.writeFailed(err)
	}
	c.overlay.settings[name] = &value
	return value, nil
}

// writeMessage writes a changed message and what follows from its
// change: its pending index entry and counter, its receipt-due index
// entry, and, once it is final, the expiry of its carrier index entries.
//
// The pending and receipt-due entries are removed with single deletes
// (see doc.go, Single deletes): each is set once, when the message
// becomes pending (accepted) or due (submitted), and removed once, when it
// stops being so, as wasPending and wasDue tell from the stored message.
func (c *committer) writeMessage(t *touchedMessage, b *pebbledb.Batch) error {
	m := t.m
	c.val = appendMessage(c.val[:0], m)
	if err := b.Set(messageKey(c.key[:0], m.ID), c.val, nil); err != nil {
		return err
	}
	if m.Status.Final() {
		c.inflight.forget(m)
	} else {
		c.inflight.put(m.Clone()) // m is a result, the caller's to change
	}
	switch pending := indexedPending(m); {
	case pending && !t.wasPending:
		c.deltas[m.Key]++
		if err := b.Set(pendingKey(c.key[:0], m.Key, m.ID), nil, nil); err != nil {
			return err
		}
	case !pending && t.wasPending:
		c.deltas[m.Key]--
		if err := b.SingleDelete(pendingKey(c.key[:0], m.Key, m.ID), nil); err != nil {
			return err
		}
	}
	if due := dueOf(m); !due.Equal(t.wasDue) {
		if !t.wasDue.IsZero() {
			if err := b.SingleDelete(dueKey(c.key[:0], t.wasDue, m.ID), nil); err != nil {
				return err
			}
		}
		if !due.IsZero() {
			if err := b.Set(dueKey(c.key[:0], due, m.ID), nil, nil); err != nil {
				return err
			}
		}
	}
	if m.Status.Final() && (!t.wasFinal || t.indexed) {
		// When the message turned final (or took its last ids): its
		// latest event. A long message's status is its first failed
		// part's, which may have failed long before the last part
		// settled and made it final.
		at := m.UpdatedAt
		for _, r := range carrierRefs(m) {
			c.finalRefs.add(at, queuedRef{target: string(carrierKey(c.key[:0], r.carrier, r.carrierID)), guard: m.ID})
		}
	}
	return nil
}

// carrierRefs lists the carrier index entries that may name m: one per
// part with a carrier id, under the carrier of the submitted event that
// recorded it (the carrier that took the first part if none says).
func carrierRefs(m *sb.Message) []carrierRef {
	carriers := make([]string, len(m.CarrierIDs))
	for _, e := range m.Events {
		if e.Status != sb.StatusSubmitted || e.Carrier == "" {
			continue
		}
		for i := range carriers {
			if carriers[i] == "" && (e.Part == 0 || e.Part == i+1) {
				carriers[i] = e.Carrier
			}
		}
	}
	var refs []carrierRef
	for i, id := range m.CarrierIDs {
		if id == "" {
			continue
		}
		carrier := carriers[i]
		if carrier == "" {
			carrier = m.Carrier
		}
		refs = append(refs, carrierRef{carrier: carrier, carrierID: id, part: i})
	}
	return refs
}
