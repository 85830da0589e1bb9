package scylla

import (
	"context"
	"fmt"

	sb "github.com/switchboard-sms/switchboard"
)

// The outbox is a queue (queue.go) per endpoint: Record and AcceptInbound
// insert callbacks with all their fields, FinishCallbacks deletes them.

// Callbacks lists up to limit queued callbacks of endpoint with afterID <
// ID < beforeID ("": no upper bound), in ID order.
func (s *Store) Callbacks(ctx context.Context, endpoint, afterID, beforeID string, limit int) ([]sb.Callback, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: callbacks of %s: %w", endpoint, err)
	}
	rows, err := s.outbox.read(ctx, session, endpoint, afterID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("scylla: callbacks of %s: %w", endpoint, s.dbError(err))
	}
	cbs := make([]sb.Callback, len(rows))
	for i, r := range rows {
		cbs[i] = sb.Callback{ID: r.id, Type: r.typ, Key: r.key, URL: r.url, Endpoint: endpoint,
			MessageID: r.messageID, CreatedAt: r.createdAt, Data: r.data}
	}
	return cbs, nil
}

// CallbackEndpoints lists the endpoints that have queued callbacks.
func (s *Store) CallbackEndpoints(ctx context.Context) ([]string, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("scylla: callback endpoints: %w", err)
	}
	endpoints, err := s.liveOwners(ctx, session, s.outbox)
	if err != nil {
		return nil, fmt.Errorf("scylla: callback endpoints: %w", s.dbError(err))
	}
	return endpoints, nil
}

// FinishCallbacks records the failures of the callbacks given up on (each
// once per event, skipping messages that do not exist), then removes the
// callbacks from the outbox; a callback not queued is no error.
func (s *Store) FinishCallbacks(ctx context.Context, done []sb.FinishedCallback) error {
	if err := s.finish(ctx, done); err != nil {
		return fmt.Errorf("scylla: finish callbacks: %w", err)
	}
	return nil
}

func (s *Store) finish(ctx context.Context, done []sb.FinishedCallback) error {
	session, err := s.beginWrite(ctx)
	if err != nil || len(done) == 0 {
		return err
	}
	var ids []string
	for i := range done {
		if done[i].Failure != nil {
			ids = append(ids, done[i].Callback.MessageID)
		}
	}
	ids = sortedUnique(ids)
	if len(ids) > 0 {
		unlock := s.locks.lock(ids)
		defer unlock()
		got, err := s.messages(ctx, session, ids)
		if err != nil {
			return s.dbError(err)
		}
		changed := map[string]bool{}
		for i := range done {
			f := &done[i]
			st, ok := got[f.Callback.MessageID]
			if f.Failure == nil || !ok || st.m.HasWebhookFailure(f.Failure.EventID) {
				continue
			}
			st.m.WebhookFailures = append(st.m.WebhookFailures, *f.Failure)
			changed[st.m.ID] = true
		}
		var rows []stmt
		for id := range changed {
			s.recent.drop(id)
			row, err := s.messageRow(got[id].m, s.clock.after(got[id].ts))
			if err != nil {
				return err
			}
			rows = append(rows, row)
		}
		if err := s.writer.write(ctx, rows); err != nil {
			return err
		}
	}
	ts := s.clock.next()
	byEndpoint := map[string][]string{}
	for i := range done {
		cb := &done[i].Callback
		byEndpoint[cb.Endpoint] = append(byEndpoint[cb.Endpoint], cb.ID)
	}
	var stmts []stmt
	for endpoint, cbIDs := range byEndpoint {
		stmts = append(stmts, s.outbox.deletes(endpoint, sortedUnique(cbIDs), ts)...)
	}
	if err := s.writer.write(ctx, stmts); err != nil {
		return err
	}
	for endpoint, cbIDs := range byEndpoint {
		s.outbox.deleted(endpoint, len(cbIDs))
	}
	return nil
}
