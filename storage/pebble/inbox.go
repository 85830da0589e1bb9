package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// The inbox: parts of inbound messages under
// n/⟨carrier⟩⟨from⟩⟨to⟩<ref><total><seq> until AcceptInbound stores the
// message assembled from them.

// AddInboundPart stores one part of a concatenated message, replacing a
// stored part with the same carrier, from, to and Concat, and returns once
// it is synced. A part without a Concat is EINVALID.
func (s *Store) AddInboundPart(ctx context.Context, p sb.InboundPart) error {
	if err := s.disk.check(); err != nil {
		return fmt.Errorf("pebble: add inbound part: %w", err)
	}
	write := func(c *committer, b *pebbledb.Batch) error { return c.addPart(&p, b) }
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return fmt.Errorf("pebble: add inbound part: %w", err)
	}
	return nil
}

// InboundParts lists every stored part, ordered by carrier, from, to,
// reference and sequence number.
func (s *Store) InboundParts(ctx context.Context) ([]sb.InboundPart, error) {
	parts, err := s.inboundParts(ctx)
	if err != nil {
		return nil, fmt.Errorf("pebble: inbound parts: %w", err)
	}
	return parts, nil
}

func (s *Store) inboundParts(ctx context.Context) ([]sb.InboundPart, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, err
	}
	defer s.rw.RUnlock()
	prefix := []byte(prefixPart)
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var parts []sb.InboundPart
	for ok := it.First(); ok; ok = it.Next() {
		if len(parts)%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		p, err := decodeInboundPart(v)
		if err != nil {
			return nil, fmt.Errorf("part %q: %w", it.Key(), err)
		}
		parts = append(parts, p)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return parts, s.durable(ctx, len(parts) > 0)
}

// AcceptInbound stores an inbound message by ID and in the by-day index
// (never the pending index), queues cb unless it is nil, and deletes the
// parts, in one batch, returning once it is synced. An existing ID is
// ECONFLICT and writes nothing. The message is stored as given.
func (s *Store) AcceptInbound(ctx context.Context, m *sb.Message, cb *sb.Callback, parts []sb.InboundPart) error {
	if err := s.disk.check(); err != nil {
		return fmt.Errorf("pebble: accept inbound: %w", err)
	}
	write := func(c *committer, b *pebbledb.Batch) error { return c.acceptInbound(m, cb, parts, b) }
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return fmt.Errorf("pebble: accept inbound: %w", err)
	}
	return nil
}

// DeleteInboundParts removes stored parts in one synced write.
func (s *Store) DeleteInboundParts(ctx context.Context, parts []sb.InboundPart) error {
	write := func(c *committer, b *pebbledb.Batch) error {
		if err := c.deleteParts(parts, b); err != nil {
			return c.writeFailed(err)
		}
		return nil
	}
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return fmt.Errorf("pebble: delete inbound parts: %w", err)
	}
	return nil
}
