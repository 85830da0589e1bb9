package scylla

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// Accept stores new messages, all or none, and returns once every row is
// written at the store's consistency (see the package documentation for
// the order of the writes and what happens when one fails).
func (s *Store) Accept(ctx context.Context, msgs []sb.NewMessage) error {
	if err := s.accept(ctx, msgs); err != nil {
		return fmt.Errorf("scylla: accept: %w", err)
	}
	return nil
}

func (s *Store) accept(ctx context.Context, msgs []sb.NewMessage) error {
	session, err := s.beginWrite(ctx)
	if err != nil || len(msgs) == 0 {
		return err
	}
	names := make([]string, 0, len(msgs))
	for _, nm := range msgs {
		if nm.Message == nil || nm.Message.ID == "" {
			return sb.Errorf(sb.EINVALID, "message without an ID")
		}
		names = append(names, nm.Message.ID)
		if nm.IdempotencyKey != "" {
			names = append(names, idemName(nm.Message.Key, nm.IdempotencyKey))
		}
	}
	if err := s.claims.claim(names); err != nil {
		return err
	}
	defer s.claims.release(names)
	ids := make([]string, len(msgs))
	for i, nm := range msgs {
		ids[i] = nm.Message.ID
	}
	if err := s.checkNew(ctx, ids); err != nil {
		return err
	}
	tokens := fenced{}
	for _, nm := range msgs {
		tokens.add(nm.Message.Key, nm.Message.Fence)
	}
	if err := s.checkFences(ctx, session, tokens); err != nil {
		return err
	}
	claimed, err := s.claimIdempotency(ctx, session, msgs)
	if err != nil {
		return err
	}

	// The rows that find a message go first, its row last: a message row
	// exists only with its indexes, and an index without its message
	// (left by a write cut short) is skipped by the reads that use it.
	ts := s.clock.next()
	var first []stmt
	var dones []func(bool)
	byKey := map[string][]entry{}
	var keys []string
	for _, nm := range msgs {
		m := nm.Message
		first = append(first, s.placeRows(m, ts)...)
		if m.Pending() {
			if _, ok := byKey[m.Key]; !ok {
				keys = append(keys, m.Key)
			}
			byKey[m.Key] = append(byKey[m.Key], entry{id: m.ID, vals: []any{m.Day()}, ttl: s.messageTTL(m)})
		}
	}
	for _, key := range keys {
		stmts, done, err := s.pending.inserts(ctx, session, key, byKey[key], ts)
		if err != nil {
			abandon(dones)
			s.undoAccept(msgs, claimed)
			return s.dbError(err)
		}
		first = append(first, stmts...)
		dones = append(dones, done)
	}
	var rows []stmt
	for _, nm := range msgs {
		row, err := s.messageRow(nm.Message, ts)
		if err != nil {
			abandon(dones)
			s.undoAccept(msgs, claimed)
			return err
		}
		rows = append(rows, row)
	}
	err = s.writer.write(ctx, first)
	if err == nil {
		err = s.writer.write(ctx, rows)
	}
	for _, done := range dones {
		done(err == nil)
	}
	if err == nil && len(tokens) > 0 {
		// A fence raised while the rows were on their way: they may have
		// landed after it, so they go again.
		err = s.checkFences(ctx, session, tokens)
	}
	if err != nil {
		s.undoAccept(msgs, claimed)
		return err
	}
	for _, nm := range msgs {
		s.placed(nm.Message)
		s.recent.put(nm.Message, ts, nm.Message.Fence)
	}
	return nil
}

func idemName(key, idemKey string) string { return "idem\x00" + key + "\x00" + idemKey }

// checkNew fails with ECONFLICT if a message has one of ids.
func (s *Store) checkNew(ctx context.Context, ids []string) error {
	found, err := s.ids.existing(ctx, ids)
	if err != nil {
		return s.dbError(err)
	}
	if len(found) > 0 {
		return sb.Errorf(sb.ECONFLICT, "message %s already exists", found[0])
	}
	return nil
}

// claimIdempotency stores the idempotency records of msgs, each with a
// lightweight transaction, so of two requests racing with one key (on
// any nodes) one wins; the other gets ECONFLICT. A record whose window
// has passed already is not stored. On any failure the records claimed
// are released. It returns the messages whose records it stored.
func (s *Store) claimIdempotency(ctx context.Context, session *gocql.Session, msgs []sb.NewMessage) ([]sb.NewMessage, error) {
	var todo []sb.NewMessage
	for _, nm := range msgs {
		if nm.IdempotencyKey != "" && s.idempotencyTTL(nm.Message.AcceptedAt) > 0 {
			todo = append(todo, nm)
		}
	}
	var mu sync.Mutex
	var claimed, unsure []sb.NewMessage
	err := parallel(todo, func(nm sb.NewMessage) error {
		ok, err := s.claimOne(ctx, session, nm)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ok:
			claimed = append(claimed, nm)
		case err != nil && sb.ErrorCode(err) != sb.ECONFLICT:
			unsure = append(unsure, nm) // the transaction may have landed
		}
		return err
	})
	if err == nil {
		return claimed, nil
	}
	var conflict *sb.Error
	if errors.As(err, &conflict) && conflict.Code == sb.ECONFLICT && len(unsure) == 0 {
		// A key in use: release the others' records now, a plain outcome
		// that needs no undo unless the release itself fails.
		if rerr := s.releaseIdempotency(ctx, session, claimed); rerr != nil {
			s.undoAccept(nil, claimed)
		}
		return nil, conflict
	}
	s.undoAccept(nil, append(claimed, unsure...))
	if conflict != nil && conflict.Code == sb.ECONFLICT {
		return nil, conflict
	}
	return nil, s.dbError(err)
}

// releaseIdempotency deletes the records of claimed where they still name
// their message.
func (s *Store) releaseIdempotency(ctx context.Context, session *gocql.Session, claimed []sb.NewMessage) error {
	for _, st := range s.idempotencyReleases(claimed) {
		_, err := session.Query(st.cql, st.args...).WithContext(ctx).Consistency(s.opts.writeConsistency()).
			SerialConsistency(s.opts.serialConsistency()).MapScanCAS(map[string]any{})
		if err != nil {
			return err
		}
	}
	return nil
}

// idempotencyReleases are the conditional deletes of claimed's records.
func (s *Store) idempotencyReleases(claimed []sb.NewMessage) []stmt {
	stmts := make([]stmt, len(claimed))
	for i, nm := range claimed {
		stmts[i] = stmt{
			cql:  s.cql(`DELETE FROM %s.idempotency WHERE key = ? AND idem_key = ? IF message_id = ?`),
			args: []any{nm.Message.Key, nm.IdempotencyKey, nm.Message.ID},
		}
	}
	return stmts
}

// idempotencyTTL is how long the record of a message accepted at at stays
// live: IdempotencyWindow from then.
func (s *Store) idempotencyTTL(at time.Time) time.Duration {
	return sb.IdempotencyWindow - s.now().Sub(at)
}

// idempotencyTTLMax is the idempotency table's default TTL.
const idempotencyTTLMax = sb.IdempotencyWindow

func (s *Store) claimOne(ctx context.Context, session *gocql.Session, nm sb.NewMessage) (bool, error) {
	m := nm.Message
	ttl := ttlSeconds(s.idempotencyTTL(m.AcceptedAt))
	existing := map[string]any{}
	applied, err := session.Query(s.cql(`INSERT INTO %s.idempotency (key, idem_key, message_id, request_hash, created_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?`),
		m.Key, nm.IdempotencyKey, m.ID, nm.RequestHash[:], m.AcceptedAt, ttl).
		WithContext(ctx).Consistency(s.opts.writeConsistency()).SerialConsistency(s.opts.serialConsistency()).
		MapScanCAS(existing)
	if err != nil {
		return false, err
	}
	if applied {
		return true, nil
	}
	owner, _ := existing["message_id"].(string)
	created, _ := existing["created_at"].(time.Time)
	if owner == m.ID {
		return true, nil // a retry of this very transaction landed
	}
	if s.now().Sub(created) < sb.IdempotencyWindow {
		orphan, err := s.orphaned(ctx, session, owner, created)
		if err != nil {
			return false, err
		}
		if !orphan {
			return false, sb.Errorf(sb.ECONFLICT, "idempotency key %q already used", nm.IdempotencyKey)
		}
	}
	// An expired record the TTL has not removed yet (clocks differ), or
	// one whose message was never stored: take it over, unless another
	// request does first.
	applied, err = session.Query(s.cql(`UPDATE %s.idempotency USING TTL ? SET message_id = ?, request_hash = ?, created_at = ? WHERE key = ? AND idem_key = ? IF message_id = ?`),
		ttl, m.ID, nm.RequestHash[:], m.AcceptedAt, m.Key, nm.IdempotencyKey, owner).
		WithContext(ctx).Consistency(s.opts.writeConsistency()).SerialConsistency(s.opts.serialConsistency()).
		MapScanCAS(map[string]any{})
	if err != nil {
		return false, err
	}
	if !applied {
		return false, sb.Errorf(sb.ECONFLICT, "idempotency key %q already used", nm.IdempotencyKey)
	}
	return true, nil
}

// undoAccept deletes what a failed Accept may have stored: the rows of
// msgs and the idempotency records of claimed (only where they still name
// their message). The deletes are queued in doomed and retried until they
// land; until then reads skip the messages.
func (s *Store) undoAccept(msgs, claimed []sb.NewMessage) {
	ts := s.clock.next()
	u := &undo{}
	for _, nm := range msgs {
		m := nm.Message
		s.recent.drop(m.ID)
		u.ids = append(u.ids, m.ID)
		u.stmts = append(u.stmts, s.unplaceRows(m, ts)...)
		if m.Pending() {
			u.stmts = append(u.stmts, s.pending.deletes(m.Key, []string{m.ID}, ts)...)
		}
	}
	u.cas = s.idempotencyReleases(claimed)
	if len(u.stmts) == 0 && len(u.cas) == 0 {
		return
	}
	s.undoLater(u)
	s.health.failed(errors.New("a write failed part way; undoing it"))
}

// Idempotency returns the record of an Idempotency-Key of key while it is
// younger than IdempotencyWindow by the store's clock, else ENOTFOUND.
func (s *Store) Idempotency(ctx context.Context, key, idemKey string) (sb.IdempotencyRecord, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return sb.IdempotencyRecord{}, fmt.Errorf("scylla: idempotency: %w", err)
	}
	var r sb.IdempotencyRecord
	var hash []byte
	err = session.Query(s.cql(`SELECT message_id, request_hash, created_at FROM %s.idempotency WHERE key = ? AND idem_key = ?`),
		key, idemKey).WithContext(ctx).Consistency(s.opts.readConsistency()).Scan(&r.MessageID, &hash, &r.CreatedAt)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && (s.now().Sub(r.CreatedAt) >= sb.IdempotencyWindow || s.doomed.has(r.MessageID))) {
		return sb.IdempotencyRecord{}, fmt.Errorf("scylla: idempotency: %w", sb.Errorf(sb.ENOTFOUND, "idempotency key not found"))
	}
	if err != nil {
		return sb.IdempotencyRecord{}, fmt.Errorf("scylla: idempotency: %w", s.dbError(err))
	}
	orphan, err := s.orphaned(ctx, session, r.MessageID, r.CreatedAt)
	if err != nil {
		return sb.IdempotencyRecord{}, fmt.Errorf("scylla: idempotency: %w", s.dbError(err))
	}
	if orphan {
		return sb.IdempotencyRecord{}, fmt.Errorf("scylla: idempotency: %w", sb.Errorf(sb.ENOTFOUND, "idempotency key not found"))
	}
	copy(r.RequestHash[:], hash)
	return r, nil
}

// orphaned reports whether an idempotency record names a message that was
// never stored: the process that claimed the key stopped (kill -9, a
// crash) before the message's rows were written, so no undo released it.
// Such a record answers no request (its message cannot be shown) and is
// taken over by the next request with its key. Only a record older than
// orphanAge is judged: an Accept may still be writing a younger one's
// message.
func (s *Store) orphaned(ctx context.Context, session *gocql.Session, id string, created time.Time) (bool, error) {
	if s.now().Sub(created) < orphanAge {
		return false, nil
	}
	got, err := s.messages(ctx, session, []string{id})
	if err != nil {
		return false, err
	}
	_, ok := got[id]
	return !ok, nil
}

// AcceptInbound stores an inbound message (never pending), queues cb
// unless it is nil, and then removes the parts it was assembled from.
// An existing ID is ECONFLICT and writes nothing.
func (s *Store) AcceptInbound(ctx context.Context, m *sb.Message, cb *sb.Callback, parts []sb.InboundPart) error {
	if err := s.acceptInbound(ctx, m, cb, parts); err != nil {
		return fmt.Errorf("scylla: accept inbound: %w", err)
	}
	return nil
}

func (s *Store) acceptInbound(ctx context.Context, m *sb.Message, cb *sb.Callback, parts []sb.InboundPart) error {
	session, err := s.beginWrite(ctx)
	if err != nil {
		return err
	}
	if m == nil || m.ID == "" {
		return sb.Errorf(sb.EINVALID, "message without an ID")
	}
	if cb != nil {
		if err := checkCallback(cb); err != nil {
			return err
		}
	}
	if err := s.claims.claim([]string{m.ID}); err != nil {
		return err
	}
	defer s.claims.release([]string{m.ID})
	if err := s.checkNew(ctx, []string{m.ID}); err != nil {
		return err
	}
	ts := s.clock.next()
	first := s.placeRows(m, ts)
	done := func(bool) {}
	if cb != nil {
		stmts, d, err := s.outbox.inserts(ctx, session, cb.Endpoint, []entry{callbackEntry(cb, s.opts.TTL)}, ts)
		if err != nil {
			return s.dbError(err)
		}
		first, done = append(first, stmts...), d
	}
	row, err := s.messageRow(m, ts)
	if err != nil {
		done(false)
		return err
	}
	err = s.writer.write(ctx, first)
	if err == nil {
		err = s.writer.write(ctx, []stmt{row})
	}
	done(err == nil)
	if err != nil {
		u := &undo{ids: []string{m.ID}, stmts: s.unplaceRows(m, s.clock.next())}
		if cb != nil {
			u.stmts = append(u.stmts, s.outbox.deletes(cb.Endpoint, []string{cb.ID}, s.clock.next())...)
		}
		s.undoLater(u)
		return err
	}
	s.placed(m)
	// The message is stored; parts left behind would be assembled again
	// after a restart, so a failed delete is retried in the background.
	if dels := s.partDeletes(parts, s.clock.next()); len(dels) > 0 {
		if err := s.writer.write(ctx, dels); err != nil {
			s.log.Warn().Err(err).Str("message", m.ID).Msg("scylla: inbound parts of a stored message not removed yet; retrying")
			s.undoLater(&undo{stmts: dels})
		}
	}
	return nil
}

// checkCallback refuses a callback that could not be listed or finished.
func checkCallback(cb *sb.Callback) error {
	if cb.ID == "" || cb.Endpoint == "" {
		return sb.Errorf(sb.EINVALID, "callback for message %s without an ID or endpoint", cb.MessageID)
	}
	return nil
}

// callbackEntry is cb as an outbox entry.
func callbackEntry(cb *sb.Callback, ttl time.Duration) entry {
	return entry{id: cb.ID, vals: []any{cb.Type, cb.Key, cb.URL, cb.MessageID, cb.CreatedAt, cb.Data}, ttl: ttl}
}

// sortedUnique returns the distinct strings of ss, sorted.
func sortedUnique(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}
