package scylla

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// Pending lists up to limit pending messages of key with afterID < ID <
// beforeID ("": no upper bound), in ID order. The pending queue is an
// index: each entry's message is read from the log and listed only if it
// is still pending there, so an entry a failed clean-up left behind is
// skipped (and deleted).
func (s *Store) Pending(ctx context.Context, key, afterID, beforeID string, limit int) ([]*sb.Message, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: pending %s: %w", key, err)
	}
	msgs, err := s.pendingMessages(ctx, session, key, afterID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("scylla: pending %s: %w", key, s.dbError(err))
	}
	return msgs, nil
}

func (s *Store) pendingMessages(ctx context.Context, session *gocql.Session, key, after, before string, limit int) ([]*sb.Message, error) {
	var out []*sb.Message
	for len(out) < limit {
		want := limit - len(out)
		rows, err := s.pending.read(ctx, session, key, after, before, want)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			break
		}
		places := make(map[string]place, len(rows))
		for _, r := range rows {
			places[r.id] = place{key, r.day}
		}
		got, err := s.load(ctx, session, places)
		if err != nil {
			return nil, err
		}
		var stale []string
		for _, r := range rows {
			st, ok := got[r.id]
			if ok && st.m.Pending() {
				out = append(out, st.m)
			} else if s.staleEntry(r.id, r.written, st, ok) {
				stale = append(stale, r.id)
			}
		}
		s.dropStale(s.pending, key, stale)
		if len(rows) < want {
			break
		}
		after = rows[len(rows)-1].id
	}
	return out, nil
}

// staleEntry reports whether a queue entry (written at written) that its
// message does not match (st, found: the message's row as read) may be
// deleted. Only a row
// written after the entry says so: a write that inserts an entry (an
// accept, a record) writes the message's row after it, so a row older
// than the entry, or none at all, may be that write still on its way, and
// deleting the entry then would lose the message for good (it would never
// be read as pending). An entry whose message has no row orphanAge after
// the entry was written belongs to a write that never finished (undone,
// or cut short by a crash).
func (s *Store) staleEntry(messageID string, written int64, st stored, found bool) bool {
	if s.doomed.has(messageID) {
		return false
	}
	if found {
		return st.ts >= written
	}
	return s.clock.next()-written > orphanAge.Microseconds()
}

// orphanAge is how long after its entry a message row that does not exist
// is taken never to come: far beyond a write's timeouts and retries.
const orphanAge = 5 * time.Minute

// dropStale deletes queue entries whose message no longer needs them, in
// the background.
func (s *Store) dropStale(q *queue, owner string, ids []string) {
	if len(ids) == 0 {
		return
	}
	stmts := q.deletes(owner, ids, s.clock.next())
	s.dropping.Add(1)
	if !s.background(func(ctx context.Context) {
		defer s.dropping.Done()
		if err := s.writer.write(ctx, stmts); err == nil {
			q.deleted(owner, len(ids))
		}
	}) {
		s.dropping.Done()
	}
}

// PendingCount counts the pending entries of key from its mark on (see
// queue.go): its cost follows the messages pending now, not how many the
// key has had.
func (s *Store) PendingCount(ctx context.Context, key string) (int, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("scylla: pending count %s: %w", key, err)
	}
	n, err := s.pending.count(ctx, session, key)
	if err != nil {
		return 0, fmt.Errorf("scylla: pending count %s: %w", key, s.dbError(err))
	}
	return n, nil
}

// PendingKeys lists the keys that have pending messages.
func (s *Store) PendingKeys(ctx context.Context) ([]string, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: pending keys: %w", err)
	}
	keys, err := s.liveOwners(ctx, session, s.pending)
	if err != nil {
		return nil, fmt.Errorf("scylla: pending keys: %w", s.dbError(err))
	}
	return keys, nil
}

// liveOwners lists the owners of q that have a live entry.
func (s *Store) liveOwners(ctx context.Context, session *gocql.Session, q *queue) ([]string, error) {
	owners, err := q.owners(ctx, session)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var live []string
	err = parallel(owners, func(name string) error {
		rows, err := q.read(ctx, session, name, "", "", 1)
		if err == nil && len(rows) > 0 {
			mu.Lock()
			live = append(live, name)
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(live)
	return live, nil
}

// Overdue lists up to limit IDs of submitted messages whose ReceiptDue is
// before before, earliest due first: the receipt_due queue's shards read
// from their heads and merged, each entry checked against its message.
func (s *Store) Overdue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: overdue: %w", err)
	}
	ids, err := s.overdue(ctx, session, before, limit)
	if err != nil {
		return nil, fmt.Errorf("scylla: overdue: %w", s.dbError(err))
	}
	return ids, nil
}

func (s *Store) overdue(ctx context.Context, session *gocql.Session, before time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	bound := dueTime(before)
	type shardRow struct {
		shard string
		qRow
	}
	var mu sync.Mutex
	var rows []shardRow
	shards := make([]string, dueShards)
	for i := range shards {
		shards[i] = strconv.Itoa(i)
	}
	err := parallel(shards, func(shard string) error {
		got, err := s.due.read(ctx, session, shard, "", bound, limit)
		mu.Lock()
		for _, r := range got {
			rows = append(rows, shardRow{shard, r})
		}
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b shardRow) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	rows = rows[:min(len(rows), limit)]
	places := make(map[string]place, len(rows))
	for _, r := range rows {
		places[dueMessage(r.id)] = place{r.key, r.day}
	}
	got, err := s.load(ctx, session, places)
	if err != nil {
		return nil, err
	}
	var ids []string
	stale := map[string][]string{}
	for _, r := range rows {
		id := dueMessage(r.id)
		st, ok := got[id]
		if ok && listedDue(st.m) && dueKey(st.m.ReceiptDue, id) == r.id {
			ids = append(ids, id)
		} else if s.staleEntry(id, r.written, st, ok) {
			stale[r.shard] = append(stale[r.shard], r.id)
		}
	}
	for shard, keys := range stale {
		s.dropStale(s.due, shard, keys)
	}
	return ids, nil
}

// listScanLimit bounds the messages one ListMessages call reads, so a
// filter that matches little cannot make one call read a whole day.
const listScanLimit = 5000

// ListMessages lists a key's messages of one UTC day, newest first, with
// q's filters: the day's buckets from message_days, newest first, each a
// partition of the log read in ID order, newest first.
func (s *Store) ListMessages(ctx context.Context, q sb.MessageQuery) ([]*sb.Message, string, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("scylla: list messages: %w", err)
	}
	msgs, next, err := s.list(ctx, session, q)
	if err != nil {
		return nil, "", fmt.Errorf("scylla: list messages: %w", s.dbError(err))
	}
	return msgs, next, nil
}

func (s *Store) list(ctx context.Context, session *gocql.Session, q sb.MessageQuery) ([]*sb.Message, string, error) {
	if q.Limit <= 0 {
		return nil, "", nil
	}
	cql := `SELECT bucket FROM %s.message_days WHERE key = ? AND day = ?`
	args := []any{q.Key, q.Day}
	if q.Before != "" {
		cql += ` AND bucket <= ?`
		args = append(args, bucketOf(q.Before))
	}
	iter := session.Query(s.cql(cql), args...).WithContext(ctx).Consistency(s.opts.readConsistency()).Iter()
	var buckets []string
	var b string
	for iter.Scan(&b) {
		buckets = append(buckets, b)
	}
	if err := iter.Close(); err != nil {
		return nil, "", err
	}
	var out []*sb.Message
	lastRead, scanned := "", 0
	for _, b := range buckets {
		cql := `SELECT id, data FROM %s.messages WHERE key = ? AND day = ? AND bucket = ?`
		args := []any{q.Key, q.Day, b}
		if q.Before != "" {
			cql += ` AND id < ?`
			args = append(args, q.Before)
		}
		iter := session.Query(s.cql(cql+` LIMIT ?`), append(args, listScanLimit-scanned)...).
			WithContext(ctx).Consistency(s.opts.readConsistency()).PageSize(500).Iter()
		var id string
		var data []byte
		for len(out) < q.Limit && scanned < listScanLimit && iter.Scan(&id, &data) {
			lastRead = id
			scanned++
			if s.doomed.has(id) {
				continue
			}
			m, err := decodeMessage(data)
			if err != nil {
				iter.Close()
				return nil, "", fmt.Errorf("message %s: %w", id, err)
			}
			if q.Matches(m) {
				out = append(out, m)
			}
		}
		if err := iter.Close(); err != nil {
			return nil, "", err
		}
		if len(out) >= q.Limit || scanned >= listScanLimit {
			if more, err := s.listHasMore(ctx, session, q, buckets, b, lastRead); err != nil || !more {
				return out, "", err
			}
			return out, lastRead, nil
		}
	}
	return out, "", nil
}

// listHasMore reports whether the day has messages below lastRead, which
// was read from bucket b: so the last page of a day says it is the last.
func (s *Store) listHasMore(ctx context.Context, session *gocql.Session, q sb.MessageQuery, buckets []string, b, lastRead string) (bool, error) {
	var id string
	err := session.Query(s.cql(`SELECT id FROM %s.messages WHERE key = ? AND day = ? AND bucket = ? AND id < ? LIMIT 1`),
		q.Key, q.Day, b, lastRead).WithContext(ctx).Consistency(s.opts.readConsistency()).Scan(&id)
	if err == nil {
		return true, nil
	}
	if err != gocql.ErrNotFound {
		return false, err
	}
	return buckets[len(buckets)-1] != b, nil
}
