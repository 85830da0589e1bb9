package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// RaiseFence raises key's fencing token and returns the one in force (see
// switchboard.MessageStore). An embedded store serves one node, which is
// never fenced out; the fence is kept all the same, so the contract holds
// for every backend.
func (s *Store) RaiseFence(ctx context.Context, key string, token int64) (int64, error) {
	var inForce int64
	write := func(c *committer, b *pebbledb.Batch) (err error) {
		inForce, err = c.raiseFence(key, token, b)
		return err
	}
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return 0, fmt.Errorf("pebble: raise fence of %s: %w", key, err)
	}
	return inForce, nil
}

// fence returns key's token, from the committer's cache or the database.
// Only the committer reads and writes fences, so the cache is the truth
// once loaded.
func (c *committer) fence(key string) (int64, error) {
	if t, ok := c.fences[key]; ok {
		return t, nil
	}
	v, closer, err := c.db.Get(fenceKey(nil, key))
	if errors.Is(err, pebbledb.ErrNotFound) {
		c.fences[key] = 0
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	t, n := binary.Varint(v)
	if n <= 0 {
		return 0, fmt.Errorf("fence of %s: %w", key, errCorrupt)
	}
	c.fences[key] = t
	return t, nil
}

func (c *committer) raiseFence(key string, token int64, b *pebbledb.Batch) (int64, error) {
	cur, err := c.fence(key)
	if err != nil || token <= cur {
		return cur, err
	}
	if err := b.Set(fenceKey(nil, key), binary.AppendVarint(nil, token), nil); err != nil {
		return 0, c.writeFailed(err)
	}
	c.fences[key] = token
	return token, nil
}

// checkFence refuses a write of key's with a token below its fence.
func (c *committer) checkFence(key string, token int64) error {
	if token == 0 {
		return nil
	}
	cur, err := c.fence(key)
	if err != nil {
		return fmt.Errorf("fence of %s: %w", key, err)
	}
	if token < cur {
		return sb.Errorf(sb.EUNAVAILABLE, "key %s is fenced at %d by another owner; this writer's token is %d", key, cur, token)
	}
	return nil
}
