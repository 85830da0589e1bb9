package scylla

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// Fences (MessageStore.RaiseFence): a key's fencing token in the fences
// table, raised with lightweight transactions, so of owners racing to
// fence a key the highest token stays.
//
// A write that carries a token (Message.Fence, Update.Fence) reads its
// keys' fences before it writes anything and is refused (EUNAVAILABLE,
// nothing stored) if one is higher; unfenced writes (token 0, a single
// node, receipts) read nothing. The read and the write are not one atomic
// step: a fence raised while a write is in flight is found by a second
// read after it, and then an Accept is undone (its rows deleted, as for a
// write whose outcome is unknown) and fails; a Record fails, but what it
// wrote stays, so a stale owner's update can land in the milliseconds of
// one write. Making every fenced write a lightweight transaction would
// close that, at six times the cost of a write (docs/benchmarks.md).

// RaiseFence raises key's fence to token if token is higher, and returns
// the fence in force.
func (s *Store) RaiseFence(ctx context.Context, key string, token int64) (int64, error) {
	session, err := s.beginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("scylla: raise fence %s: %w", key, err)
	}
	unlock := s.locks.lock([]string{"fence\x00" + key})
	defer unlock()
	for {
		current, found, err := s.fence(ctx, session, key, true)
		if err != nil {
			return 0, fmt.Errorf("scylla: raise fence %s: %w", key, s.dbError(err))
		}
		if current >= token {
			return current, nil
		}
		q := session.Query(s.cql(`UPDATE %s.fences SET fence = ? WHERE key = ? IF fence = ?`), token, key, current)
		if !found {
			q = session.Query(s.cql(`INSERT INTO %s.fences (key, fence) VALUES (?, ?) IF NOT EXISTS`), key, token)
		}
		applied, err := q.WithContext(ctx).Consistency(s.opts.writeConsistency()).
			SerialConsistency(s.opts.serialConsistency()).MapScanCAS(map[string]any{})
		if err != nil {
			return 0, fmt.Errorf("scylla: raise fence %s: %w", key, s.dbError(err))
		}
		if applied {
			return token, nil
		}
		// Another node raised it meanwhile: read it again.
	}
}

// fence reads key's fence; serial reads see a lightweight transaction in
// progress through.
func (s *Store) fence(ctx context.Context, session *gocql.Session, key string, serial bool) (int64, bool, error) {
	cl := s.opts.readConsistency()
	if serial {
		cl = s.opts.serialConsistency()
	}
	var token int64
	err := session.Query(s.cql(`SELECT fence FROM %s.fences WHERE key = ?`), key).
		WithContext(ctx).Consistency(cl).Scan(&token)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the fence of %s: %w", key, err)
	}
	return token, true, nil
}

// fenced are the tokens a write carries, by key: the lowest per key, the
// one that matters.
type fenced map[string]int64

func (f fenced) add(key string, token int64) {
	if token == 0 {
		return
	}
	if cur, ok := f[key]; !ok || token < cur {
		f[key] = token
	}
}

// checkFences refuses (EUNAVAILABLE) a write whose token for a key is
// below that key's fence.
func (s *Store) checkFences(ctx context.Context, session *gocql.Session, f fenced) error {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		current, _, err := s.fence(ctx, session, key, false)
		if err != nil {
			return s.dbError(err)
		}
		if current > f[key] {
			return sb.Errorf(sb.EUNAVAILABLE, "key %s is fenced at %d; this write carries %d: another node owns the key now",
				key, current, f[key])
		}
	}
	return nil
}
