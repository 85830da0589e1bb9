package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// PendingCount counts the pending messages of key by walking the pending
// index: keys only, no message is decoded, so a million entries take well
// under a second. Key actors call it once when they start.
func (s *Store) PendingCount(ctx context.Context, key string) (int, error) {
	if err := s.beginRead(ctx); err != nil {
		return 0, fmt.Errorf("pebble: pending count %s: %w", key, err)
	}
	defer s.rw.RUnlock()
	prefix := pendingPrefix(nil, key)
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return 0, fmt.Errorf("pebble: pending count %s: %w", key, err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return 0, fmt.Errorf("pebble: pending count %s: %w", key, ctx.Err())
		}
	}
	return n, nil
}
