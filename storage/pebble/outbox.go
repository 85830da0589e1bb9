package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// The outbox: callbacks queued by Record (through Update.Notify) and
// AcceptInbound, in the same batch as the change they report, under
// o/⟨endpoint⟩<callback id>, until FinishCallbacks deletes them.

// Callbacks lists up to limit queued callbacks of endpoint with afterID <
// ID < beforeID ("": no upper bound), in ID order: a range scan of the
// endpoint's outbox prefix.
func (s *Store) Callbacks(ctx context.Context, endpoint, afterID, beforeID string, limit int) ([]sb.Callback, error) {
	cbs, err := s.callbacks(ctx, endpoint, afterID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("pebble: callbacks of %s: %w", endpoint, err)
	}
	return cbs, nil
}

func (s *Store) callbacks(ctx context.Context, endpoint, afterID, beforeID string, limit int) ([]sb.Callback, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, err
	}
	defer s.rw.RUnlock()
	if limit <= 0 || (beforeID != "" && afterID >= beforeID) {
		return nil, nil
	}
	prefix := outboxPrefix(nil, endpoint)
	lower := append(prefix[:len(prefix):len(prefix)], afterID...)
	if afterID != "" {
		lower = after(lower)
	}
	upper := successor(prefix)
	if beforeID != "" {
		upper = append(prefix[:len(prefix):len(prefix)], beforeID...)
	}
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: upper, PointKeyFilters: outboxFilter(afterID)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var cbs []sb.Callback
	for ok := it.First(); ok && len(cbs) < limit; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		cb, err := decodeCallback(endpoint, string(it.Key()[len(prefix):]), v)
		if err != nil {
			return nil, fmt.Errorf("outbox entry %q: %w", it.Key(), err)
		}
		cbs = append(cbs, cb)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return cbs, s.durable(ctx, len(cbs) > 0)
}

// CallbackEndpoints lists the endpoints that have queued callbacks, with
// one seek per endpoint however many callbacks each holds.
func (s *Store) CallbackEndpoints(ctx context.Context) ([]string, error) {
	endpoints, err := s.distinct(ctx, prefixOutbox)
	if err != nil {
		return nil, fmt.Errorf("pebble: callback endpoints: %w", err)
	}
	return endpoints, nil
}

// FinishCallbacks deletes callbacks from the outbox (one not there is not
// an error) and appends the failure of each given up on to its message's
// WebhookFailures, skipping a message that does not exist; all in one
// batch, returning once it is synced. The batch rides with the next round
// another write starts, within defaultLazyDelay (see Lazy requests in commit.go).
func (s *Store) FinishCallbacks(ctx context.Context, done []sb.FinishedCallback) error {
	write := func(c *committer, b *pebbledb.Batch) error { return c.finish(done, b) }
	if err := s.committer.do(ctx, &request{write: write, lazy: true}); err != nil {
		return fmt.Errorf("pebble: finish callbacks: %w", err)
	}
	return nil
}
