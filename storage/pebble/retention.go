package pebble

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// Retention. A housekeeping goroutine, started by Open and stopped by
// Close, runs a pass every Options.HousekeepingInterval, the first one
// interval after Open, so a node's start is not slowed by it (Housekeep
// runs one at once). A pass deletes
//
//   - messages whose UTC day of acceptance is older than Options.TTL, with
//     every index entry that names them. It finds them through the by-day
//     index: for each API key, the entries of days before the cutoff come
//     first (d/⟨key⟩⟨day⟩<id>), so a key costs one seek when it has none;
//   - carrier index entries once their message has been final for
//     Options.CarrierIDGrace, idempotency records once they are older than
//     switchboard.IdempotencyWindow, and parked updates at their
//     ParkUntil. These are found through the expiry queue, x/<kind><time>
//     <key of the record>, which the writes that create them (or, for a
//     carrier id, make its message final) fill, in time order per kind.
//
// Finding happens on the housekeeping goroutine, reading the database;
// deleting goes through the committer like any write, retentionBatch
// records per request, so a pass never holds other writes up for long.
// The committer checks each record again against the database and the
// round's overlay: a message deleted in a round is gone for the requests
// after it in the round, and an expiry entry deletes its record only if
// the record still belongs to the message it was queued for (a carrier may
// reuse an id; an idempotency key may be used again once expired).

// retentionBatch bounds the records one retention request deletes.
const retentionBatch = 256

// housekeeper owns the goroutine that runs retention passes.
type housekeeper struct {
	mu     sync.Mutex // one pass at a time
	cancel context.CancelFunc
	done   chan struct{}
}

// startHousekeeping sets s.keeper and starts its goroutine, unless
// Options.HousekeepingInterval is below zero.
func (s *Store) startHousekeeping() {
	ctx, cancel := context.WithCancel(context.Background())
	s.keeper = &housekeeper{cancel: cancel, done: make(chan struct{})}
	if s.opts.HousekeepingInterval < 0 {
		close(s.keeper.done)
		return
	}
	go s.runHousekeeping(ctx, s.keeper.done)
}

// stop ends the goroutine, interrupting a pass, and waits for it.
func (h *housekeeper) stop() {
	h.cancel()
	<-h.done
}

func (s *Store) runHousekeeping(ctx context.Context, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(s.opts.HousekeepingInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if err := s.housekeep(ctx); err != nil && ctx.Err() == nil && s.committer.failure() == nil {
			s.opts.Logger.Error().Err(err).Msg("pebble: retention pass failed; will try again")
		}
	}
}

// Housekeep runs a retention pass now and returns when it is done (a pass
// the housekeeping goroutine is running finishes first).
func (s *Store) Housekeep(ctx context.Context) error {
	if err := s.housekeep(ctx); err != nil {
		return fmt.Errorf("pebble: housekeep: %w", err)
	}
	return nil
}

// retentionStats counts what one pass deleted.
type retentionStats struct {
	messages, carrierIDs, idempotency, parked int
}

func (s *Store) housekeep(ctx context.Context) error {
	s.keeper.mu.Lock()
	defer s.keeper.mu.Unlock()
	now := s.now()
	var st retentionStats
	cutoffDay := now.Add(-s.opts.TTL).UTC().Format(time.DateOnly)
	n, err := s.expireMessages(ctx, cutoffDay)
	st.messages = n
	queues := []struct {
		kind   byte
		cutoff time.Time
		count  *int
	}{
		{expiryCarrierRef, now.Add(-s.opts.CarrierIDGrace), &st.carrierIDs},
		{expiryCarrierRefs, now.Add(-s.opts.CarrierIDGrace), &st.carrierIDs},
		{expiryIdempotency, now.Add(-sb.IdempotencyWindow), &st.idempotency},
		{expiryParked, now, &st.parked},
	}
	// Each queue on its own: one that fails (a disk error) does not keep
	// the others from expiring what they hold.
	errs := []error{err}
	for _, q := range queues {
		if ctx.Err() != nil {
			break
		}
		n, err := s.expireQueue(ctx, q.kind, q.cutoff, now)
		*q.count += n
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	log := s.opts.Logger.Debug()
	if st.messages > 0 {
		log = s.opts.Logger.Info()
	}
	log.Int("messages", st.messages).Str("accepted_before", cutoffDay).Int("carrier_ids", st.carrierIDs).
		Int("idempotency_records", st.idempotency).Int("parked_updates", st.parked).Msg("pebble: retention pass")
	return err
}

// dayEntry is a by-day index entry.
type dayEntry struct{ key, day, id string }

// expireMessages deletes the messages accepted on days before cutoffDay
// and returns how many by-day entries it removed.
func (s *Store) expireMessages(ctx context.Context, cutoffDay string) (int, error) {
	from, total := []byte(prefixDay), 0
	for {
		entries, next, err := s.oldDays(ctx, from, cutoffDay)
		if err != nil || len(entries) == 0 {
			return total, err
		}
		write := func(c *committer, b *pebbledb.Batch) error { return c.deleteMessages(entries, b) }
		if err := s.committer.do(ctx, &request{write: write}); err != nil {
			return total, err
		}
		total += len(entries)
		from = next
	}
}

// oldDays lists up to retentionBatch by-day entries at or after from of
// days before cutoffDay, skipping from each key's first recent day to the
// next key, and returns where to go on.
func (s *Store) oldDays(ctx context.Context, from []byte, cutoffDay string) ([]dayEntry, []byte, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, nil, err
	}
	defer s.rw.RUnlock()
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: from, UpperBound: successor([]byte(prefixDay))})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var entries []dayEntry
	var next []byte
	for ok := it.First(); ok && len(entries) < retentionBatch; {
		c, id, valid := components(it.Key(), 2)
		if !valid {
			return nil, nil, fmt.Errorf("bad key %q", it.Key())
		}
		if c[1] >= cutoffDay {
			ok = it.SeekGE(successor(appendComponent([]byte(prefixDay), c[0])))
			continue
		}
		entries = append(entries, dayEntry{key: c[0], day: c[1], id: string(id)})
		next = after(append(next[:0], it.Key()...))
		ok = it.Next()
	}
	return entries, next, it.Error()
}

// deleteMessages writes one retention request: each entry's by-day index
// entry goes, and its message with every other entry that names it, if
// the message is still there and is the one the entry names.
func (c *committer) deleteMessages(entries []dayEntry, b *pebbledb.Batch) error {
	defer c.endTouch()
	for _, e := range entries {
		// Read first: a message that cannot be read keeps its by-day entry
		// (the only way here to it), rather than lose it with nothing else.
		t, err := c.current(e.id)
		if err != nil && sb.ErrorCode(err) != sb.ENOTFOUND {
			if err = c.unreadable("message", []byte(e.id), err); err != nil {
				return err
			}
			continue
		}
		// Read the rest before writing: a read that fails leaves this
		// entry whole, and the entries before it done.
		del := noop
		if t != nil && t.m.Key == e.key && t.m.Day() == e.day {
			if del, err = c.deleteMessage(t.m, b); err != nil {
				return err
			}
		}
		if err := b.Delete(dayKey(c.key[:0], e.key, e.day, e.id), nil); err != nil {
			return c.writeFailed(err)
		}
		if err := del(); err != nil {
			return c.writeFailed(err)
		}
	}
	return nil
}

// deleteMessage reads the carrier index entries of a message and returns
// the write that deletes it, its pending and receipt-due index entries
// and the carrier index entries that still name it, and marks it deleted
// for the rest of the round.
func (c *committer) deleteMessage(m *sb.Message, b *pebbledb.Batch) (func() error, error) {
	var refs []func() error
	for _, r := range carrierRefs(m) {
		op, err := c.deleteRef(carrierKey(nil, r.carrier, r.carrierID), m.ID, b)
		if err != nil {
			return noop, err
		}
		refs = append(refs, op)
	}
	return func() error {
		if err := b.Delete(messageKey(c.key[:0], m.ID), nil); err != nil {
			return err
		}
		if indexedPending(m) {
			c.deltas[m.Key]--
			if err := b.Delete(pendingKey(c.key[:0], m.Key, m.ID), nil); err != nil {
				return err
			}
		}
		if due := dueOf(m); !due.IsZero() {
			if err := b.Delete(dueKey(c.key[:0], due, m.ID), nil); err != nil {
				return err
			}
		}
		for _, op := range refs {
			if err := op(); err != nil {
				return err
			}
		}
		delete(c.overlay.msgs, m.ID)
		delete(c.touched, m.ID)
		c.overlay.deleted[m.ID] = struct{}{}
		c.inflight.forget(m)
		return nil
	}, nil
}

// deleteRef reads a carrier index entry and returns the write that
// deletes it if it names messageID.
func (c *committer) deleteRef(k []byte, messageID string, b *pebbledb.Batch) (func() error, error) {
	r, found, err := c.lookupRef(k)
	if err != nil {
		return noop, c.unreadable("carrier index entry", k, err)
	}
	if !found || r.messageID != messageID {
		return noop, nil
	}
	return func() error {
		c.overlay.refs[string(k)] = refEntry{gone: true}
		c.inflight.dropRef(string(k))
		return b.Delete(k, nil)
	}, nil
}

// unreadable handles a record retention could not read: one that does
// not decode (damaged, or written by a newer version) is left in place,
// with an error logged, so that it does not stop the store, which would
// then stop again after every restart; any other error (the disk) is
// returned.
func (c *committer) unreadable(what string, k []byte, err error) error {
	if !errors.Is(err, errCorrupt) {
		return err
	}
	c.log.Error().Err(err).Str("record", what).Bytes("key", k).Msg("pebble: retention left a record it cannot read in place")
	return nil
}

// queued is an expiry queue entry. One of carrier index entries lists
// them in refs, whichever of the two kinds it is; of any other kind, guard
// is its value.
type queued struct {
	key   []byte
	guard string
	refs  []queuedRef
}

// records is how many records e names.
func (e *queued) records() int { return max(1, len(e.refs)) }

// expireQueue handles the entries of one kind of the expiry queue whose
// time is before cutoff, and returns how many records they named.
func (s *Store) expireQueue(ctx context.Context, kind byte, cutoff, now time.Time) (int, error) {
	prefix := expiryPrefix(nil, kind)
	upper := appendTimeKey(expiryPrefix(nil, kind), cutoff)
	from, total := prefix, 0
	for {
		entries, records, err := s.dueEntries(ctx, kind, from, upper)
		if err != nil || len(entries) == 0 {
			return total, err
		}
		write := func(c *committer, b *pebbledb.Batch) error { return c.expire(kind, entries, now, b) }
		if err := s.committer.do(ctx, &request{write: write}); err != nil {
			return total, err
		}
		total += records
		from = after(entries[len(entries)-1].key)
	}
}

// dueEntries lists the expiry queue entries of kind in [from, upper) that
// name up to about retentionBatch records (at least one entry), and how
// many records they name.
func (s *Store) dueEntries(ctx context.Context, kind byte, from, upper []byte) ([]queued, int, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, 0, err
	}
	defer s.rw.RUnlock()
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: from, UpperBound: upper})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var entries []queued
	records := 0
	for ok := it.First(); ok && records < retentionBatch; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, 0, err
		}
		e := queued{key: append([]byte(nil), it.Key()...)}
		switch kind {
		case expiryCarrierRefs:
			e.refs, err = decodeRefGroup(v)
		case expiryCarrierRef: // a group of one, written before groups
			e.guard, err = decodeGuard(v)
			if target := expiryTarget(e.key); target != nil {
				e.refs = []queuedRef{{target: string(target), guard: e.guard}}
			}
		default:
			e.guard, err = decodeGuard(v)
		}
		if err != nil {
			// Damaged, or written by a newer version: left in place, as
			// unreadable does with records, so that it does not stop
			// every pass at it.
			s.opts.Logger.Error().Err(err).Bytes("key", it.Key()).Msg("pebble: retention left an expiry entry it cannot read in place")
			continue
		}
		entries = append(entries, e)
		records += e.records()
	}
	return entries, records, it.Error()
}

// expire writes one retention request of expiry queue entries: each entry
// goes, and the record it names if that is still due. Everything is read
// before anything enters the round's batch, so a read that fails (the
// disk) fails this request alone; only a failure to add to the batch
// stops the store.
func (c *committer) expire(kind byte, entries []queued, now time.Time, b *pebbledb.Batch) error {
	var ops []func() error
	for _, e := range entries {
		ops = append(ops, func() error { return b.Delete(e.key, nil) })
		for _, r := range e.refs {
			op, err := c.deleteRef([]byte(r.target), r.guard, b)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		target := expiryTarget(e.key)
		if len(e.refs) > 0 || target == nil {
			continue // carrier index entries, done; or no record named
		}
		var op func() error
		var err error
		switch kind {
		case expiryIdempotency:
			op, err = c.deleteIdempotency(target, e.guard, b)
		case expiryParked:
			op, err = c.expireParked(string(target), now, b)
		}
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	for _, op := range ops {
		if err := op(); err != nil {
			return c.writeFailed(err)
		}
	}
	return nil
}

// noop is the write of a record that is not to be deleted after all.
func noop() error { return nil }

// expiryTarget returns the key of the record an expiry queue entry names
// after its kind and time (expiryKey), or nil if it names none.
func expiryTarget(k []byte) []byte {
	if len(k) < len(prefixExpiry)+1+timeKeyLen {
		return nil
	}
	return k[len(prefixExpiry)+1+timeKeyLen:]
}

// deleteIdempotency reads an idempotency record and returns the write
// that deletes it if it names messageID and no request of the round has
// used its key again.
func (c *committer) deleteIdempotency(k []byte, messageID string, b *pebbledb.Batch) (func() error, error) {
	if _, reused := c.overlay.idem[string(k)]; reused {
		return noop, nil
	}
	r, found, err := readIdempotency(c.db, k)
	if err != nil {
		return noop, c.unreadable("idempotency record", k, err)
	}
	if !found || r.MessageID != messageID {
		return noop, nil
	}
	return func() error { return b.Delete(k, nil) }, nil
}

// expireParked reads the updates parked under k and returns the write
// that drops those whose ParkUntil is not after now.
func (c *committer) expireParked(k string, now time.Time, b *pebbledb.Batch) (func() error, error) {
	ps, err := c.parkedAt(k)
	if err != nil {
		return noop, c.unreadable("parked receipt", []byte(k), err)
	}
	var keep []parkedUpdate
	for _, p := range ps {
		if p.until.After(now) {
			keep = append(keep, p)
		}
	}
	if len(keep) == len(ps) {
		return noop, nil
	}
	return func() error { return c.writeParked(k, parkedEntry{ps: keep, gone: len(keep) == 0}, b) }, nil
}
