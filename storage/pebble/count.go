package pebble

import (
	"context"
	"errors"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// Pending counters. Each API key's number of pending messages is kept
// under k/⟨key⟩, so PendingCount is one read however many messages the
// key has had. The committer keeps them: a request notes the changes it
// makes to the pending index (deltas), and flush writes each counter that
// changed once per batch, in the batch, from the cache it keeps of every
// counter it has read. A database from before the counters gets them at
// Open (migrate.go).

// PendingCount returns the number of pending messages of key.
func (s *Store) PendingCount(ctx context.Context, key string) (int, error) {
	if err := s.beginRead(ctx); err != nil {
		return 0, fmt.Errorf("pebble: pending count %s: %w", key, err)
	}
	defer s.rw.RUnlock()
	n, err := readCounter(s.db, countKey(nil, key))
	if err == nil {
		err = s.durable(ctx, n > 0)
	}
	if err != nil {
		return 0, fmt.Errorf("pebble: pending count %s: %w", key, err)
	}
	return int(n), nil
}

// readCounter reads a counter; a missing one is 0.
func readCounter(g getter, k []byte) (int64, error) {
	v, closer, err := g.Get(k)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	n, err := decodeCounter(v)
	if err != nil {
		return 0, fmt.Errorf("counter %q: %w", k, err)
	}
	return n, nil
}

// writeCounts adds the counters the batch changed to it.
func (c *committer) writeCounts(b *pebbledb.Batch) error {
	defer clear(c.deltas)
	for key, d := range c.deltas {
		if d == 0 {
			continue
		}
		n, ok := c.counts[key]
		if !ok {
			var err error
			if n, err = readCounter(c.db, countKey(c.key[:0], key)); err != nil {
				return err
			}
		}
		n += d
		c.counts[key] = n
		c.val = appendCounter(c.val[:0], n)
		if err := b.Set(countKey(c.key[:0], key), c.val, nil); err != nil {
			return err
		}
	}
	return nil
}
