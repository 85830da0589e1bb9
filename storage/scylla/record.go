package scylla

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// Record applies transitions with Message.Apply and stores the results. A
// message's read-modify-write holds its lock in this process (locks.go),
// so concurrent Records of one message here apply one after the other,
// each seeing the last. The writes go in three steps, each waiting for the
// one before: first the rows that point at the new state (carrier ids,
// callbacks, receipt deadlines, parked receipts), then the messages, then
// the clean-up of what no longer applies (pending and deadline entries,
// applied parked receipts). A failure in the first two fails the call
// with EUNAVAILABLE and the caller records again: Apply makes a repeated
// transition a no-op, and what the first try may have left (a callback
// written for a state that did not land, an index entry) is at worst a
// callback sent twice or an entry the reads skip. A clean-up that fails
// is retried in the background.
func (s *Store) Record(ctx context.Context, updates []sb.Update) ([]*sb.Message, error) {
	msgs, err := s.record(ctx, updates)
	if err != nil {
		return nil, fmt.Errorf("scylla: record: %w", err)
	}
	return msgs, nil
}

// carrierRef is a carrier_ids row.
type carrierRef struct {
	carrier, cid string
	messageID    string
	part         int
	place        place
}

// working is a message being changed by one Record.
type working struct {
	m          *sb.Message
	ts         int64     // write time of the row read
	before     sb.Status // the status read
	wasPending bool
	wasDue     time.Time // the deadline it was listed under, if any
	changed    bool
	recent     bool  // taken from recentMessages, not read
	fence      int64 // with recent: the token it was written with
	written    int64 // the write time of the row this call writes
}

// recordCall is one Record call's state.
type recordCall struct {
	s       *Store
	session *gocql.Session
	updates []sb.Update

	resolved  map[int]carrierRef // by update index, for ByCarrier updates
	park      map[int]bool       // ByCarrier updates with no message yet, to be stored
	work      map[string]*working
	parked    map[[2]string][]parkedRow // parked receipts of the carrier ids indexed
	newRefs   []carrierRef
	callbacks []sb.Callback
	applied   [][2]string // carrier ids whose parked receipts were applied
	graced    [][2]string // carrier ids indexed with their grace already (final in this call)
}

type parkedRow struct {
	update sb.Update
	call   int // the update's index in this call; -1: read from parked_receipts
}

func (s *Store) record(ctx context.Context, updates []sb.Update) ([]*sb.Message, error) {
	session, err := s.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	if len(updates) == 0 {
		return []*sb.Message{}, nil
	}
	for i := range updates {
		if u := &updates[i]; u.MessageID == "" && u.ByCarrier == nil {
			return nil, sb.Errorf(sb.EINVALID, "update without a message ID or carrier reference")
		}
	}
	c := &recordCall{s: s, session: session, updates: updates, resolved: map[int]carrierRef{},
		park: map[int]bool{}, work: map[string]*working{}, parked: map[[2]string][]parkedRow{}}
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := c.read(ctx); err != nil {
		return nil, err
	}
	tokens := c.fences()
	if err := s.checkFences(ctx, session, tokens); err != nil {
		return nil, err
	}
	results, err := c.apply()
	if err != nil {
		return nil, err
	}
	if err := c.write(ctx); err != nil {
		return nil, err
	}
	if len(tokens) > 0 {
		// A fence raised while the write was on its way: the caller hears
		// that it no longer owns the key (what landed stays).
		if err := s.checkFences(ctx, session, tokens); err != nil {
			return nil, err
		}
	}
	c.keepRecent()
	return results, nil
}

// fences are the tokens the call's updates carry, by their messages' keys.
func (c *recordCall) fences() fenced {
	f := fenced{}
	for i := range c.updates {
		u := &c.updates[i]
		id := u.MessageID
		if id == "" {
			id = c.resolved[i].messageID
		}
		if w := c.work[id]; w != nil {
			f.add(w.m.Key, u.Fence)
		}
	}
	return f
}

// lock finds the messages of ByCarrier updates and takes the locks of
// every message and carrier id the call touches. A carrier id not found
// is looked up again under its lock: the Record that indexes it holds the
// same lock while it applies what is parked, so a receipt is either
// applied by that Record or finds its message (within this process).
func (c *recordCall) lock(ctx context.Context) (func(), error) {
	if err := c.resolve(ctx); err != nil {
		return nil, err
	}
	for range 8 {
		unlock := c.s.locks.lock(c.lockNames())
		before := len(c.resolved)
		if err := c.resolve(ctx); err != nil {
			unlock()
			return nil, err
		}
		if len(c.resolved) == before {
			return unlock, nil
		}
		unlock() // a carrier id was indexed meanwhile: lock its message too
	}
	return nil, sb.Errorf(sb.EUNAVAILABLE, "carrier ids keep changing; try again")
}

// lockNames are the lock names of the call's messages and carrier ids.
func (c *recordCall) lockNames() []string {
	var names []string
	for i := range c.updates {
		u := &c.updates[i]
		switch {
		case u.MessageID != "":
			names = append(names, u.MessageID)
		case c.park[i]:
			names = append(names, carrierLock(u.ByCarrier.Carrier, u.ByCarrier.ID))
		default:
			names = append(names, c.resolved[i].messageID)
		}
		if tr := &u.Transition; tr.Event.Status == sb.StatusSubmitted || tr.Part >= 0 {
			for _, cid := range tr.CarrierIDs {
				if cid != "" {
					names = append(names, carrierLock(tr.Event.Carrier, cid))
				}
			}
		}
	}
	return names
}

// indexesInCall reports whether an update of this call indexes ref: a
// submit (or a receipt recording the submit it overtook) carrying the id.
func (c *recordCall) indexesInCall(ref *sb.CarrierRef) bool {
	for i := range c.updates {
		tr := &c.updates[i].Transition
		if (tr.Event.Status != sb.StatusSubmitted && tr.Part < 0) || tr.Event.Carrier != ref.Carrier {
			continue
		}
		if slices.Contains(tr.CarrierIDs, ref.ID) {
			return true
		}
	}
	return false
}

func carrierLock(carrier, cid string) string { return "carrier\x00" + carrier + "\x00" + cid }

// resolve looks up the carrier ids of ByCarrier updates not resolved yet,
// one query per carrier. An id an update of this call indexes is not
// looked up: that update names its message (a receipt before it in the
// call is applied when it indexes the id, see apply).
func (c *recordCall) resolve(ctx context.Context) error {
	byCarrier := map[string][]string{}
	for i := range c.updates {
		if u := &c.updates[i]; u.MessageID == "" && !c.indexesInCall(u.ByCarrier) {
			if _, ok := c.resolved[i]; !ok {
				byCarrier[u.ByCarrier.Carrier] = append(byCarrier[u.ByCarrier.Carrier], u.ByCarrier.ID)
			}
		}
	}
	var mu sync.Mutex
	found := map[[2]string]carrierRef{}
	err := parallel(mapKeys(byCarrier), func(carrier string) error {
		refs, err := c.s.carrierRefs(ctx, c.session, carrier, sortedUnique(byCarrier[carrier]))
		mu.Lock()
		defer mu.Unlock()
		for cid, r := range refs {
			found[[2]string{carrier, cid}] = r
		}
		return err
	})
	if err != nil {
		return c.s.dbError(err)
	}
	for i := range c.updates {
		u := &c.updates[i]
		if _, ok := c.resolved[i]; u.MessageID != "" || ok {
			continue
		}
		if r, ok := found[[2]string{u.ByCarrier.Carrier, u.ByCarrier.ID}]; ok && !c.indexesInCall(u.ByCarrier) {
			c.resolved[i] = r
			delete(c.park, i)
		} else {
			c.park[i] = true
		}
	}
	return nil
}

// read loads the call's messages (ENOTFOUND if one is missing) and the
// receipts parked for the carrier ids it indexes.
func (c *recordCall) read(ctx context.Context) error {
	var ids []string
	for i := range c.updates {
		u := &c.updates[i]
		switch {
		case u.MessageID != "":
			ids = append(ids, u.MessageID)
		case !c.park[i]:
			ids = append(ids, c.resolved[i].messageID)
		}
	}
	ids = sortedUnique(ids)
	ids = c.takeRecent(ids)
	var cids [][2]string
	for i := range c.updates {
		tr := &c.updates[i].Transition
		if tr.Event.Status == sb.StatusSubmitted || tr.Part >= 0 {
			for _, cid := range tr.CarrierIDs {
				if cid != "" {
					cids = append(cids, [2]string{tr.Event.Carrier, cid})
				}
			}
		}
	}
	var got map[string]stored
	var errMsgs, errParked error
	var wg sync.WaitGroup
	wg.Go(func() { got, errMsgs = c.s.messages(ctx, c.session, ids) })
	wg.Go(func() { errParked = c.readParked(ctx, cids) })
	wg.Wait()
	if err := errors.Join(errMsgs, errParked); err != nil {
		return c.s.dbError(err)
	}
	for _, id := range ids {
		st, ok := got[id]
		if !ok {
			return sb.Errorf(sb.ENOTFOUND, "message %s not found", id)
		}
		w := &working{m: st.m, ts: st.ts, before: st.m.Status, wasPending: st.m.Pending()}
		if listedDue(st.m) {
			w.wasDue = st.m.ReceiptDue
		}
		c.work[id] = w
	}
	return nil
}

// takeRecent takes from recentMessages the messages of ids it may serve
// (every update of the call naming the message by ID carries the token
// the entry was written with; none names it by carrier id) and returns
// the IDs left to read. Every entry of ids goes: the call writes.
func (c *recordCall) takeRecent(ids []string) []string {
	fences := map[string]int64{}
	usable := map[string]bool{}
	for i := range c.updates {
		u := &c.updates[i]
		id := u.MessageID
		if id == "" {
			usable[c.resolved[i].messageID] = false
			continue
		}
		if f, ok := fences[id]; ok && f != u.Fence {
			usable[id] = false
			continue
		}
		fences[id] = u.Fence
		if _, ok := usable[id]; !ok {
			usable[id] = true
		}
	}
	var left []string
	for _, id := range ids {
		e, ok := c.s.recent.take(id, fences[id])
		if !ok || !usable[id] || c.s.doomed.has(id) {
			left = append(left, id)
			continue
		}
		w := &working{m: e.m, ts: e.ts, before: e.m.Status, wasPending: e.m.Pending(), recent: true, fence: e.fence}
		if listedDue(e.m) {
			w.wasDue = e.m.ReceiptDue
		}
		c.work[id] = w
	}
	return left
}

// keepRecent puts back the messages taken from recentMessages that may
// stay there after this call's write landed: no callback queued about
// them, still without carrier ids and not final.
func (c *recordCall) keepRecent() {
	notified := map[string]bool{}
	for i := range c.callbacks {
		notified[c.callbacks[i].MessageID] = true
	}
	for id, w := range c.work {
		if !w.recent || notified[id] {
			continue
		}
		ts := w.ts
		if w.changed {
			ts = w.written
		}
		c.s.recent.put(w.m, ts, w.fence)
	}
}

// listedDue reports whether m has an entry in receipt_due: Overdue lists
// submitted messages with a deadline.
func listedDue(m *sb.Message) bool { return m.Status == sb.StatusSubmitted && !m.ReceiptDue.IsZero() }

// readParked reads the receipts parked for carrier ids, one query per
// carrier.
func (c *recordCall) readParked(ctx context.Context, cids [][2]string) error {
	byCarrier := map[string][]string{}
	for _, k := range cids {
		byCarrier[k[0]] = append(byCarrier[k[0]], k[1])
	}
	var mu sync.Mutex
	return parallel(mapKeys(byCarrier), func(carrier string) error {
		ids := sortedUnique(byCarrier[carrier])
		for len(ids) > 0 {
			n := min(len(ids), maxIn)
			iter := c.session.Query(c.s.cql(`SELECT carrier_id, data FROM %s.parked_receipts WHERE carrier = ? AND carrier_id IN ?`),
				carrier, ids[:n]).WithContext(ctx).Consistency(c.s.opts.readConsistency()).Iter()
			var cid string
			var data []byte
			for iter.Scan(&cid, &data) {
				u, err := decodeParked(data)
				if err != nil {
					iter.Close()
					return err
				}
				k := [2]string{carrier, cid}
				mu.Lock()
				c.parked[k] = append(c.parked[k], parkedRow{update: u, call: -1})
				mu.Unlock()
			}
			if err := iter.Close(); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
}

// apply runs the updates in order and returns the results. An update by
// carrier id whose id an earlier update of this call indexed finds its
// message; one that finds none is parked, and a later update of this
// call that indexes the id applies it (and it is not stored).
func (c *recordCall) apply() ([]*sb.Message, error) {
	results := make([]*sb.Message, len(c.updates))
	for i := range c.updates {
		u := &c.updates[i]
		id, tr := u.MessageID, u.Transition
		if id == "" {
			ref, ok := c.resolved[i]
			if !ok {
				ref, ok = c.indexedHere(u.ByCarrier)
			}
			if !ok {
				k := [2]string{u.ByCarrier.Carrier, u.ByCarrier.ID}
				c.parked[k] = append(c.parked[k], parkedRow{update: *u, call: i})
				continue // nil: parked
			}
			delete(c.park, i)
			id, tr.Part = ref.messageID, ref.part
		}
		w := c.work[id]
		if err := c.applyOne(w, tr, u.Notify); err != nil {
			return nil, err
		}
		results[i] = w.m.Clone()
	}
	return results, nil
}

// indexedHere finds a carrier id an update of this call indexed.
func (c *recordCall) indexedHere(ref *sb.CarrierRef) (carrierRef, bool) {
	for _, r := range c.newRefs {
		if r.carrier == ref.Carrier && r.cid == ref.ID {
			return r, true
		}
	}
	return carrierRef{}, false
}

// applyOne applies one transition to w; when it indexes carrier ids, the
// receipts parked for them follow it. Then n's callbacks are queued for
// the change from the status before to the status after them all: a
// parked receipt queues none of its own.
func (c *recordCall) applyOne(w *working, tr sb.Transition, n *sb.Notify) error {
	before := w.m.Status
	c.applyTransition(w, tr)
	for _, cb := range n.StatusCallbacks(before, w.m) {
		if err := checkCallback(&cb); err != nil {
			return err
		}
		c.callbacks = append(c.callbacks, cb)
	}
	return nil
}

// applyTransition applies tr and, for the carrier ids it gives the
// message, indexes them and applies their parked receipts.
func (c *recordCall) applyTransition(w *working, tr sb.Transition) {
	changed, given := w.m.ApplyGiving(tr)
	if !changed {
		return
	}
	w.changed = true
	for _, part := range given {
		cid := tr.CarrierIDs[part]
		if c.indexed(tr.Event.Carrier, cid) {
			continue
		}
		k := [2]string{tr.Event.Carrier, cid}
		c.newRefs = append(c.newRefs, carrierRef{carrier: k[0], cid: cid, messageID: w.m.ID, part: part,
			place: place{w.m.Key, w.m.Day()}})
		rows := c.parked[k]
		delete(c.parked, k) // applied once, even if indexed again
		stored := false
		for _, p := range rows {
			ptr := p.update.Transition
			ptr.Part = part
			if sb.ParkedReceiptFits(ptr.Event.At, tr) {
				c.applyTransition(w, ptr)
			} else {
				c.s.log.Warn().Str("carrier", k[0]).Str("carrier_message_id", cid).Str("message", w.m.ID).
					Time("receipt_read", ptr.Event.At).Time("submitted", tr.Event.At).
					Msg("scylla: a receipt parked long before this submit is taken for an earlier message with the same carrier id; dropped")
			}
			if p.call >= 0 {
				delete(c.park, p.call) // parked and applied in this call: not stored
			} else {
				stored = true
			}
		}
		if stored {
			c.applied = append(c.applied, k)
		}
	}
}

// indexed reports whether this call indexed a carrier id already.
func (c *recordCall) indexed(carrier, cid string) bool {
	_, ok := c.indexedHere(&sb.CarrierRef{Carrier: carrier, ID: cid})
	return ok
}

// write stores what apply changed, in the three steps described at Record.
func (c *recordCall) write(ctx context.Context) error {
	s := c.s
	ts := s.clock.next()
	first, dones, err := c.firstStep(ctx, ts)
	if err != nil {
		return err
	}
	var rows []stmt
	for _, w := range c.work {
		if !w.changed {
			continue
		}
		w.written = s.clock.after(w.ts)
		row, err := s.messageRow(w.m, w.written)
		if err != nil {
			abandon(dones)
			return err
		}
		rows = append(rows, row)
	}
	err = s.writer.write(ctx, first)
	for _, done := range dones {
		done(err == nil)
	}
	if err == nil {
		err = s.writer.write(ctx, rows)
	}
	if err != nil {
		return err
	}
	c.cleanUp()
	return nil
}

// firstStep builds the rows that point at the new state.
func (c *recordCall) firstStep(ctx context.Context, ts int64) ([]stmt, []func(bool), error) {
	s := c.s
	var stmts []stmt
	var dones []func(bool)
	now := s.now()
	for _, r := range c.newRefs {
		w := c.work[r.messageID]
		ttl := s.messageTTL(w.m)
		if c.endsHere(w) && r.carrier == w.m.Carrier {
			// Final in this very call (its receipt came with its submit):
			// written once, with what the clean-up would shorten it to.
			c.graced = append(c.graced, [2]string{r.carrier, r.cid})
			until := c.graceUntil(w)
			if !until.After(now) {
				continue
			}
			ttl = until.Sub(now)
		}
		stmts = append(stmts, stmt{
			part: "carrier_ids\x00" + r.carrier + "\x00" + r.cid,
			cql:  s.cql(`INSERT INTO %s.carrier_ids (carrier, carrier_id, message_id, part, key, day) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
			args: []any{r.carrier, r.cid, r.messageID, r.part, r.place.key, r.place.day, ttlSeconds(ttl), ts},
		})
	}
	byEndpoint := map[string][]entry{}
	for i := range c.callbacks {
		cb := &c.callbacks[i]
		byEndpoint[cb.Endpoint] = append(byEndpoint[cb.Endpoint], callbackEntry(cb, s.opts.TTL))
	}
	for endpoint, entries := range byEndpoint {
		st, done, err := s.outbox.inserts(ctx, c.session, endpoint, entries, ts)
		if err != nil {
			abandon(dones)
			return nil, nil, s.dbError(err)
		}
		stmts, dones = append(stmts, st...), append(dones, done)
	}
	byShard := map[string][]entry{}
	for _, w := range c.work {
		if w.changed && listedDue(w.m) && !w.m.ReceiptDue.Equal(w.wasDue) {
			shard := dueShard(w.m.ID)
			byShard[shard] = append(byShard[shard], entry{id: dueKey(w.m.ReceiptDue, w.m.ID),
				vals: []any{w.m.Key, w.m.Day()}, ttl: s.messageTTL(w.m)})
		}
	}
	for shard, entries := range byShard {
		st, done, err := s.due.inserts(ctx, c.session, shard, entries, ts)
		if err != nil {
			abandon(dones)
			return nil, nil, s.dbError(err)
		}
		stmts, dones = append(stmts, st...), append(dones, done)
	}
	for i := range c.updates {
		u := &c.updates[i]
		if !c.park[i] || !u.ParkUntil.After(now) {
			continue
		}
		data, err := encodeParked(u)
		if err != nil {
			abandon(dones)
			return nil, nil, err
		}
		ref := u.ByCarrier
		stmts = append(stmts, stmt{
			part: "parked_receipts\x00" + ref.Carrier + "\x00" + ref.ID,
			cql:  s.cql(`INSERT INTO %s.parked_receipts (carrier, carrier_id, seq, data) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
			args: []any{ref.Carrier, ref.ID, fmt.Sprintf("%020d", s.clock.next()), data, ttlSeconds(u.ParkUntil.Sub(now)), ts},
		})
	}
	return stmts, dones, nil
}

// cleanUp deletes the entries that no longer apply; a failure is retried
// in the background (the reads skip stale entries meanwhile).
func (c *recordCall) cleanUp() {
	s := c.s
	ts := s.clock.next()
	var stmts []stmt
	pending := map[string][]string{}
	due := map[string][]string{}
	for _, w := range c.work {
		if !w.changed {
			continue
		}
		if w.wasPending && !w.m.Pending() {
			pending[w.m.Key] = append(pending[w.m.Key], w.m.ID)
		}
		if !w.wasDue.IsZero() && !(listedDue(w.m) && w.m.ReceiptDue.Equal(w.wasDue)) {
			shard := dueShard(w.m.ID)
			due[shard] = append(due[shard], dueKey(w.wasDue, w.m.ID))
		}
	}
	for key, ids := range pending {
		stmts = append(stmts, s.pending.deletes(key, ids, ts)...)
	}
	for shard, keys := range due {
		stmts = append(stmts, s.due.deletes(shard, keys, ts)...)
	}
	graces := c.carrierIDGraces()
	for _, k := range c.applied {
		stmts = append(stmts, stmt{
			part: "parked_receipts\x00" + k[0] + "\x00" + k[1],
			cql:  s.cql(`DELETE FROM %s.parked_receipts USING TIMESTAMP ? WHERE carrier = ? AND carrier_id = ?`),
			args: []any{ts, k[0], k[1]},
		})
	}
	if len(stmts) == 0 && len(graces) == 0 {
		return
	}
	// The caller need not wait: until the deletes land, the reads skip
	// the entries (each is checked against its message), and counts of
	// pending messages wait for them.
	var cleaned []func()
	for key := range pending {
		cleaned = append(cleaned, s.pending.cleaning(key))
	}
	session := c.session
	clean := func(ctx context.Context) {
		defer func() {
			for _, f := range cleaned {
				f()
			}
		}()
		stmts := append(stmts, s.graceStmts(ctx, session, graces)...)
		if err := s.writer.write(context.Background(), stmts); err != nil {
			s.log.Warn().Err(err).Msg("scylla: clean-up after a record failed; retrying in the background")
			s.undoLater(&undo{stmts: stmts})
			return
		}
		for key, ids := range pending {
			s.pending.deleted(key, len(ids))
		}
		for shard, keys := range due {
			s.due.deleted(shard, len(keys))
		}
	}
	// A few clean-ups out at once: beyond that the record waits, so a
	// burst of records cannot queue up clean-ups faster than they land
	// (and reads of pending work, which wait for them, wait longer).
	s.cleanups <- struct{}{}
	run := func(ctx context.Context) {
		defer func() { <-s.cleanups }()
		clean(ctx)
	}
	if !s.background(run) {
		run(context.Background()) // closing: no background work starts
	}
}

// carrierGrace is a carrier id of a message this call made final, and
// when it should stop finding the message.
type carrierGrace struct {
	carrier, cid, messageID string
	until                   time.Time
}

// carrierIDGraces lists the carrier ids of the messages this call made
// final, whose lives the clean-up shortens (graceStmts): they find their
// message for CarrierIDGrace more (late and repeated receipts), then go;
// the message stays its TTL. A message's parts may have gone to different
// carriers (a later try failed over); the message names the first part's,
// and only those ids are shortened.
func (c *recordCall) carrierIDGraces() []carrierGrace {
	var out []carrierGrace
	for _, w := range c.work {
		if !c.endsHere(w) {
			continue
		}
		until := c.graceUntil(w)
		for _, cid := range w.m.CarrierIDs {
			if cid == "" || slices.Contains(c.graced, [2]string{w.m.Carrier, cid}) ||
				slices.ContainsFunc(out, func(g carrierGrace) bool { return g.carrier == w.m.Carrier && g.cid == cid }) {
				continue
			}
			out = append(out, carrierGrace{carrier: w.m.Carrier, cid: cid, messageID: w.m.ID, until: until})
		}
	}
	return out
}

// graceStmts shortens the lives of the carrier ids that still name the
// message made final. A carrier may have reused an id for a newer message
// meanwhile: its row names that one, and is left alone. Each rewrite is
// stamped just after the row it replaces, so a write of the id for
// another message that lands meanwhile, later by its clock, wins over it.
// An id whose row cannot be read keeps its full life.
func (s *Store) graceStmts(ctx context.Context, session *gocql.Session, graces []carrierGrace) []stmt {
	now := s.now()
	var stmts []stmt
	for _, g := range graces {
		var messageID, key, day string
		var part int
		var written int64
		err := session.Query(s.cql(`SELECT message_id, part, key, day, WRITETIME(message_id) FROM %s.carrier_ids WHERE carrier = ? AND carrier_id = ?`),
			g.carrier, g.cid).WithContext(ctx).Consistency(s.opts.readConsistency()).Scan(&messageID, &part, &key, &day, &written)
		if err != nil || messageID != g.messageID {
			if err != nil && !errors.Is(err, gocql.ErrNotFound) {
				s.log.Debug().Err(err).Str("carrier", g.carrier).Msg("scylla: a final message's carrier id could not be read; it keeps its full life")
			}
			continue
		}
		st := stmt{part: "carrier_ids\x00" + g.carrier + "\x00" + g.cid}
		if !g.until.After(now) {
			st.cql = s.cql(`DELETE FROM %s.carrier_ids USING TIMESTAMP ? WHERE carrier = ? AND carrier_id = ?`)
			st.args = []any{written + 1, g.carrier, g.cid}
		} else {
			st.cql = s.cql(`INSERT INTO %s.carrier_ids (carrier, carrier_id, message_id, part, key, day) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`)
			st.args = []any{g.carrier, g.cid, messageID, part, key, day, ttlSeconds(g.until.Sub(now)), written + 1}
		}
		stmts = append(stmts, st)
	}
	return stmts
}

// endsHere reports whether this call made w's message final.
func (c *recordCall) endsHere(w *working) bool {
	return w.changed && w.m.Status.Final() && !w.before.Final()
}

// graceUntil is when the carrier ids of a message made final by this call
// stop finding it: CarrierIDGrace after, or with the message if sooner.
func (c *recordCall) graceUntil(w *working) time.Time {
	until := w.m.UpdatedAt.Add(c.s.opts.CarrierIDGrace)
	if exp := c.s.messageExpiry(w.m); exp.Before(until) {
		until = exp
	}
	return until
}

// dueShards spreads the receipt deadlines over this many queue owners.
const dueShards = 4

func dueShard(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return strconv.Itoa(int(h.Sum32() % dueShards))
}

// carrierRef reads the carrier_ids row of a carrier's message id.
func (s *Store) carrierRef(ctx context.Context, session *gocql.Session, carrier, cid string) (carrierRef, bool, error) {
	refs, err := s.carrierRefs(ctx, session, carrier, []string{cid})
	if err != nil {
		return carrierRef{}, false, err
	}
	r, ok := refs[cid]
	return r, ok, nil
}

// carrierRefs reads the carrier_ids rows of a carrier's message ids, a
// hundred at most a query; ids without one are absent.
func (s *Store) carrierRefs(ctx context.Context, session *gocql.Session, carrier string, cids []string) (map[string]carrierRef, error) {
	out := make(map[string]carrierRef, len(cids))
	for len(cids) > 0 {
		n := min(len(cids), maxIn)
		iter := session.Query(s.cql(`SELECT carrier_id, message_id, part, key, day FROM %s.carrier_ids WHERE carrier = ? AND carrier_id IN ?`),
			carrier, cids[:n]).WithContext(ctx).Consistency(s.opts.readConsistency()).Iter()
		r := carrierRef{carrier: carrier}
		for iter.Scan(&r.cid, &r.messageID, &r.part, &r.place.key, &r.place.day) {
			out[r.cid] = r
			s.places.put(r.messageID, r.place)
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("read carrier %s message ids: %w", carrier, err)
		}
		cids = cids[n:]
	}
	return out, nil
}

// CarrierMessage finds the message and part a carrier's message id
// belongs to, or ENOTFOUND.
func (s *Store) CarrierMessage(ctx context.Context, carrier, carrierID string) (string, int, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("scylla: carrier message: %w", err)
	}
	r, ok, err := s.carrierRef(ctx, session, carrier, carrierID)
	if err != nil {
		return "", 0, fmt.Errorf("scylla: carrier message: %w", s.dbError(err))
	}
	if !ok {
		return "", 0, fmt.Errorf("scylla: carrier message: %w",
			sb.Errorf(sb.ENOTFOUND, "carrier %s message %s not found", carrier, carrierID))
	}
	return r.messageID, r.part, nil
}
