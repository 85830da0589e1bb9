package scylla

import (
	"context"
	"fmt"

	"github.com/gocql/gocql"
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
	var failed []*sb.FinishedCallback
	for i := range done {
		if done[i].Failure != nil {
			failed = append(failed, &done[i])
		}
	}
	if err := s.addWebhookFailures(ctx, session, failed); err != nil {
		return err
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

// addWebhookFailures adds each given-up callback's failure to its message
// (once per event; a message that does not exist is skipped). It runs on
// the node that delivers the endpoint, not on the messages' owner, whose
// writes of the same rows (a receipt's status) may land between its read
// and its write. So a message is written just above the version read: a
// newer write of the owner's wins, never the other way round (the status
// it wrote would be lost, and its receipt deadline with it), and the next
// round adds the failure to that version. After failureRounds a failure
// still missing is logged, not retried: the status matters more.
func (s *Store) addWebhookFailures(ctx context.Context, session *gocql.Session, failed []*sb.FinishedCallback) error {
	for round := 0; len(failed) > 0; round++ {
		ids := make([]string, len(failed))
		for i, f := range failed {
			ids[i] = f.Callback.MessageID
		}
		ids = sortedUnique(ids)
		if round == failureRounds {
			s.log.Warn().Strs("ids", ids).Msg("scylla: a webhook failure was not recorded: its message kept changing")
			return nil
		}
		missing, err := s.addWebhookFailuresOnce(ctx, session, ids, failed)
		if err != nil {
			return err
		}
		failed = missing
	}
	return nil
}

// failureRounds bounds the rounds of addWebhookFailures.
const failureRounds = 3

// addWebhookFailuresOnce reads the messages, writes those that lack a
// failure with it, and returns the callbacks whose failure it wrote (to
// be checked by the next round's read).
func (s *Store) addWebhookFailuresOnce(ctx context.Context, session *gocql.Session, ids []string, failed []*sb.FinishedCallback) ([]*sb.FinishedCallback, error) {
	unlock := s.locks.lock(ids)
	defer unlock()
	got, err := s.messages(ctx, session, ids)
	if err != nil {
		return nil, s.dbError(err)
	}
	if s.failureRead != nil {
		s.failureRead()
	}
	var written []*sb.FinishedCallback
	changed := map[string]bool{}
	for _, f := range failed {
		st, ok := got[f.Callback.MessageID]
		if !ok || st.m.HasWebhookFailure(f.Failure.EventID) {
			continue
		}
		st.m.WebhookFailures = append(st.m.WebhookFailures, *f.Failure)
		changed[st.m.ID] = true
		written = append(written, f)
	}
	var rows []stmt
	for id := range changed {
		s.recent.drop(id)
		row, err := s.messageRow(got[id].m, got[id].ts+1)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	if err := s.writer.write(ctx, rows); err != nil {
		return nil, err
	}
	return written, nil
}
