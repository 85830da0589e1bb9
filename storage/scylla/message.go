package scylla

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// Reading and writing message rows.

// stored is a message as read, with the write time of its row: a rewrite
// must be later (clock.after), whichever node wrote it.
type stored struct {
	m  *sb.Message
	ts int64
}

// locate finds the places of messages: from the cache, else from
// message_ids, one query per slice. IDs not found are absent from the
// result.
func (s *Store) locate(ctx context.Context, session *gocql.Session, ids []string) (map[string]place, error) {
	out := make(map[string]place, len(ids))
	bySlice := map[string][]string{}
	for _, id := range ids {
		if p, ok := s.places.get(id); ok {
			out[id] = p
			continue
		}
		bySlice[sliceOf(id)] = append(bySlice[sliceOf(id)], id)
	}
	var mu sync.Mutex
	err := parallel(mapKeys(bySlice), func(slice string) error {
		for ids := bySlice[slice]; len(ids) > 0; {
			n := min(len(ids), maxIn)
			iter := session.Query(s.cql(`SELECT id, key, day FROM %s.message_ids WHERE slice = ? AND id IN ?`),
				slice, ids[:n]).WithContext(ctx).Consistency(s.opts.readConsistency()).Iter()
			var id string
			var p place
			for iter.Scan(&id, &p.key, &p.day) {
				mu.Lock()
				out[id] = p
				mu.Unlock()
				s.places.put(id, p)
			}
			if err := iter.Close(); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("locate messages: %w", err)
	}
	return out, nil
}

// partition names the messages partition of a message.
type partition struct{ key, day, bucket string }

// load reads the messages at places, one query per partition; IDs not
// found (or being undone) are absent from the result.
func (s *Store) load(ctx context.Context, session *gocql.Session, places map[string]place) (map[string]stored, error) {
	byPart := map[partition][]string{}
	for id, p := range places {
		k := partition{p.key, p.day, bucketOf(id)}
		byPart[k] = append(byPart[k], id)
	}
	out := make(map[string]stored, len(places))
	var mu sync.Mutex
	err := parallel(mapKeys(byPart), func(k partition) error {
		ids := byPart[k]
		for len(ids) > 0 {
			n := min(len(ids), maxIn)
			iter := session.Query(s.cql(`SELECT data, WRITETIME(data) FROM %s.messages WHERE key = ? AND day = ? AND bucket = ? AND id IN ?`),
				k.key, k.day, k.bucket, ids[:n]).WithContext(ctx).Consistency(s.opts.readConsistency()).Iter()
			var data []byte
			var ts int64
			for iter.Scan(&data, &ts) {
				m, err := decodeMessage(data)
				if err != nil {
					iter.Close()
					return err
				}
				if s.doomed.has(m.ID) {
					continue
				}
				mu.Lock()
				out[m.ID] = stored{m, ts}
				mu.Unlock()
			}
			if err := iter.Close(); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return out, nil
}

// maxIn bounds the values of one IN restriction.
const maxIn = 100

// Message returns a message by ID, or ENOTFOUND.
func (s *Store) Message(ctx context.Context, id string) (*sb.Message, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: message: %w", err)
	}
	got, err := s.messages(ctx, session, []string{id})
	if err != nil {
		return nil, fmt.Errorf("scylla: message %s: %w", id, s.dbError(err))
	}
	st, ok := got[id]
	if !ok {
		return nil, fmt.Errorf("scylla: message %s: %w", id, sb.Errorf(sb.ENOTFOUND, "message not found"))
	}
	return st.m, nil
}

// messages locates and reads messages by ID; those not found are absent.
func (s *Store) messages(ctx context.Context, session *gocql.Session, ids []string) (map[string]stored, error) {
	places, err := s.locate(ctx, session, ids)
	if err != nil {
		return nil, err
	}
	return s.load(ctx, session, places)
}

// messageTTL is what is left of m's TTL. A message is kept until the UTC
// day it was accepted on is older than the store's TTL (so one day's
// listing partitions expire together), and everything about it expires
// with it. At least a second, as Cassandra takes no TTL of 0 for "already
// expired"; such a row is gone a second later.
func (s *Store) messageTTL(m *sb.Message) time.Duration {
	return ttlUntil(s.messageExpiry(m), s.now())
}

// messageExpiry is when m is deleted: its day's end plus the TTL.
func (s *Store) messageExpiry(m *sb.Message) time.Time {
	if m.AcceptedAt.IsZero() {
		return s.now().Add(s.opts.TTL)
	}
	day := m.AcceptedAt.UTC().Truncate(24 * time.Hour)
	return day.Add(24*time.Hour + s.opts.TTL)
}

// ttlUntil is the TTL of a row that must be gone at t: at least a second.
func ttlUntil(t, now time.Time) time.Duration { return max(t.Sub(now), time.Second) }

// messageRow is the statement that writes m's row with write time ts.
func (s *Store) messageRow(m *sb.Message, ts int64) (stmt, error) {
	data, err := encodeMessage(m)
	if err != nil {
		return stmt{}, err
	}
	day, b := m.Day(), bucketOf(m.ID)
	return stmt{
		part: "messages\x00" + m.Key + "\x00" + day + "\x00" + b,
		cql:  s.cql(`INSERT INTO %s.messages (key, day, bucket, id, status, data) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
		args: []any{m.Key, day, b, m.ID, string(m.Status), data, ttlSeconds(s.messageTTL(m)), ts},
	}, nil
}

// placeRows are the statements that make a new message findable: its
// message_ids row and its bucket in message_days (until a write of that
// row has landed: see placed).
func (s *Store) placeRows(m *sb.Message, ts int64) []stmt {
	day, b, slice := m.Day(), bucketOf(m.ID), sliceOf(m.ID)
	// Every message of a day expires at the same moment (messageExpiry),
	// so the day's bucket row, written with the same TTL, expires with
	// them: never before a message a listing should still show.
	ttl := ttlSeconds(s.messageTTL(m))
	stmts := []stmt{{
		part: "message_ids\x00" + slice,
		cql:  s.cql(`INSERT INTO %s.message_ids (slice, id, key, day) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
		args: []any{slice, m.ID, m.Key, day, ttl, ts},
	}}
	if !s.days.has(dayBucket(m.Key, day, b)) {
		stmts = append(stmts, stmt{
			part: "message_days\x00" + m.Key + "\x00" + day,
			cql:  s.cql(`INSERT INTO %s.message_days (key, day, bucket) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
			args: []any{m.Key, day, b, ttl, ts},
		})
	}
	return stmts
}

// placed records that m's placeRows landed, so later messages of its
// bucket skip the bucket's row. Only a write that landed counts: were a
// failed one remembered, the rest of the bucket would never be listed.
func (s *Store) placed(m *sb.Message) {
	day := m.Day()
	s.days.add(dayBucket(m.Key, day, bucketOf(m.ID)))
	s.places.put(m.ID, place{m.Key, day})
}

// dayBucket names a key's bucket row of a day in message_days.
func dayBucket(key, day, bucket string) string { return key + "\x00" + day + "\x00" + bucket }

// unplaceRows undo placeRows and messageRow (not the day's bucket row,
// which other messages may need).
func (s *Store) unplaceRows(m *sb.Message, ts int64) []stmt {
	return []stmt{
		{cql: s.cql(`DELETE FROM %s.message_ids USING TIMESTAMP ? WHERE slice = ? AND id = ?`),
			args: []any{ts, sliceOf(m.ID), m.ID}},
		{cql: s.cql(`DELETE FROM %s.messages USING TIMESTAMP ? WHERE key = ? AND day = ? AND bucket = ? AND id = ?`),
			args: []any{ts, m.Key, m.Day(), bucketOf(m.ID), m.ID}},
	}
}

// dayBuckets remembers the message_days rows this process wrote, so each
// is written once; bounded, it starts over when full.
type dayBuckets struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// has reports whether k was written.
func (d *dayBuckets) has(k string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.seen[k]
	return ok
}

// add remembers that k was written.
func (d *dayBuckets) add(k string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil || len(d.seen) > 1<<16 {
		d.seen = make(map[string]struct{})
	}
	d.seen[k] = struct{}{}
}

// parallel runs f for each item, up to 16 at once, and returns their
// errors.
func parallel[T any](items []T, f func(T) error) error {
	if len(items) == 1 {
		return f(items[0])
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(it); err != nil {
				mu.Lock()
				first = errors.Join(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
