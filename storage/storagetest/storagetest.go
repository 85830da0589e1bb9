// Package storagetest is the conformance suite for switchboard.Store: the
// message store, the callback outbox, the inbox of inbound parts and the
// settings. Every storage backend runs it from its own tests, so each is
// held to the contracts written on the interfaces and to the semantics of
// Message.Apply and Notify.StatusCallbacks:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) switchboard.Store { ... })
//	}
//
// Run opens a fresh store per subtest and closes it at the end. RunDurable
// adds reopen tests for backends that keep data across Close, and
// RunRetention tests retention (storage.ttl and the shorter lives of
// idempotency records, carrier ids and parked receipts), given a way to
// open a store with a retention and to apply it now:
//
//	storagetest.RunRetention(t, func(t *testing.T, r storagetest.Retention) (switchboard.Store, func(context.Context) error) {
//		s := ... // open with r.TTL and r.CarrierIDGrace
//		return s, s.Housekeep // or a wait for native TTLs
//	})
//
// Where the interface's doc comments leave a choice open, the suite settles
// it, and every backend follows:
//   - The caller builds a message completely before Accept (status
//     accepted, its first event); the store keeps it as given.
//   - Times survive to the millisecond and may come back in another
//     location; the suite compares instants.
//   - An idempotency record's CreatedAt is its message's AcceptedAt, and
//     the window is measured from it with the store's clock. The suite ages
//     records by accepting messages with an AcceptedAt in the past, so it
//     needs no clock hooks and works with the wall clock.
//   - Accept refuses an idempotency key (per API key) that has a live
//     record with ECONFLICT, so two racing requests with one key make one
//     message. The root contract does not say this yet (IdempotencyKeyReuse).
//   - Record returns one message per update: the message after that update.
//   - An update's Notify sees the status before that update: the status
//     after the previous update of the message, whether that was in the
//     same Record call or in another call committed just before. So of
//     several updates to one message, each queues the callback for the
//     change it made, and of concurrent receipts that settle a message,
//     only the one that makes it final queues a callback.
//   - A callback without an ID or an Endpoint cannot be listed or
//     finished: the write that would queue it (Record with such a Notify,
//     AcceptInbound) fails with EINVALID and stores nothing.
//   - FinishCallbacks records a failure once per event: a failure whose
//     EventID the message lists already is not appended again, so a
//     FinishCallbacks repeated after an error that hid its success does not
//     duplicate it. Finishing a callback that is not queued still records
//     its failure (once).
//   - Callbacks with a limit of 0 or less lists nothing.
//   - AddInboundPart of a part without a Concat fails with EINVALID: the
//     identity of a part includes it, and a message in one part needs no
//     reassembly. InboundParts lists parts in no particular order, and a
//     Payload may come back nil for an empty one. AcceptInbound skips the
//     parts without a Concat (never stored).
//   - AcceptInbound stores the message as given and never in the pending
//     index, whatever its status; its ECONFLICT (the ID exists as any
//     message, inbound or not) stores nothing: no callback, no part removed.
//   - An update by carrier id takes its part from the index, whatever its
//     Transition.Part says. One parked (nil result) queues no callback of
//     its own: the Record that indexes its id applies it after that
//     record's own transition, and that record's Notify sees the status
//     before its transition and after both. Parked updates for an id are
//     applied once: indexing the id again (a carrier reusing an id for
//     another message) finds none. Only a carrier id the message now
//     holds for a part is indexed ("" is a part not accepted).
//   - The suite's messages are accepted within the last few days, so any
//     retention of a week or more (the default is 30 days) keeps them;
//     RunRetention tests retention itself.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// A test is one subtest of the suite: it gets a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, f *fixture)
}

// Run runs the conformance suite. open must return a new, empty store; the
// suite closes it when the subtest ends, and calls Close a second time
// expecting an error, not a panic.
func Run(t *testing.T, open func(t *testing.T) sb.Store) {
	tests := []test{
		{"AcceptThenMessage", testAcceptThenMessage},
		{"MessageNotFound", testMessageNotFound},
		{"AcceptExistingID", testAcceptExistingID},
		{"AcceptDuplicateInBatch", testAcceptDuplicateInBatch},
		{"AcceptEmpty", testAcceptEmpty},
		{"Idempotency", testIdempotency},
		{"IdempotencyExpired", testIdempotencyExpired},
		{"IdempotencyKeyReuse", testIdempotencyKeyReuse},
		{"PendingOrder", testPendingOrder},
		{"PendingPaging", testPendingPaging},
		{"PendingKeys", testPendingKeys},
		{"PendingCount", testPendingCount},
		{"PendingCountLifecycle", testPendingCountLifecycle},
		{"RecordSubmitted", testRecordSubmitted},
		{"RecordReceipts", testRecordReceipts},
		{"RecordUnknownMessage", testRecordUnknownMessage},
		{"RecordNoChange", testRecordNoChange},
		{"RecordPendingFollowsStatus", testRecordPendingFollowsStatus},
		{"RecordSameMessageTwice", testRecordSameMessageTwice},
		{"RecordByCarrier", testRecordByCarrier},
		{"RecordByCarrierParked", testRecordByCarrierParked},
		{"RecordByCarrierNotParked", testRecordByCarrierNotParked},
		{"RecordByCarrierParkedLongBefore", testRecordByCarrierParkedLongBefore},
		{"RecordByCarrierParkedParts", testRecordByCarrierParkedParts},
		{"RecordByCarrierSameCall", testRecordByCarrierSameCall},
		{"RecordByCarrierSharedID", testRecordByCarrierSharedID},
		{"RecordByCarrierConcurrent", testRecordByCarrierConcurrent},
		{"RecordByCarrierRetryRepeatsIDs", testRecordByCarrierRetryRepeatsIDs},
		{"Overdue", testOverdue},
		{"OverdueDueSetLate", testOverdueDueSetLate},
		{"ListMessages", testListMessages},
		{"ListMessagesPaging", testListMessagesPaging},
		{"Writable", testWritable},
		{"FenceRaises", testFenceRaises},
		{"FenceRace", testFenceRace},
		{"FenceAccept", testFenceAccept},
		{"FenceRecord", testFenceRecord},
		{"ConcurrentAccept", testConcurrentAccept},
		{"ConcurrentReceipts", testConcurrentReceipts},
		{"CanceledContext", testCanceledContext},
		{"Close", testClose},

		{"NotifyQueuesOnStatusChange", testNotifyQueuesOnStatusChange},
		{"NotifyURLs", testNotifyURLs},
		{"NotifySeveralUpdates", testNotifySeveralUpdates},
		{"NotifyAllOrNone", testNotifyAllOrNone},
		{"NotifyWithoutEventID", testNotifyWithoutEventID},
		{"NotifyConcurrentReceipts", testNotifyConcurrentReceipts},
		{"CallbacksOrderAndPaging", testCallbacksOrderAndPaging},
		{"CallbackEndpoints", testCallbackEndpoints},
		{"FinishCallbacks", testFinishCallbacks},
		{"FinishCallbacksFailureOnce", testFinishCallbacksFailureOnce},
		{"FinishCallbacksConcurrentFailures", testFinishCallbacksConcurrentFailures},

		{"AcceptInbound", testAcceptInbound},
		{"AcceptInboundConflict", testAcceptInboundConflict},
		{"InboundParts", testInboundParts},
		{"InboundPartsRemovedByAccept", testInboundPartsRemovedByAccept},
		{"DeleteInboundParts", testDeleteInboundParts},

		{"InitSetting", testInitSetting},
		{"InitSettingRace", testInitSettingRace},
		{"PutListDeleteSettings", testPutListDeleteSettings},
		{"SettingsConcurrent", testSettingsConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, newFixture(t, s))
		})
	}
}

// fixture is what a subtest works with: the store and a message factory.
type fixture struct {
	s   sb.Store
	ctx context.Context
	ids *idGen
}

func newFixture(t *testing.T, s sb.Store) *fixture {
	return &fixture{s: s, ctx: t.Context(), ids: newIDGen()}
}

// idGen makes IDs shaped like the gateway's ("msg_" and 26 characters)
// that sort in the order they are made, as ULIDs from one process do.
type idGen struct {
	prefix string
	n      int
}

func newIDGen() *idGen {
	// The time prefix keeps IDs from different generators (a reopened
	// store) apart and in order.
	return &idGen{prefix: fmt.Sprintf("%013d", time.Now().UnixMilli())}
}

func (g *idGen) next() string {
	g.n++
	return fmt.Sprintf("msg_%s%013d", g.prefix, g.n)
}

// event makes a callback ID ("evt_" and 26 characters), in the same order.
func (g *idGen) event() string {
	g.n++
	return fmt.Sprintf("evt_%s%013d", g.prefix, g.n)
}

// body is a full single-segment GSM-7 body, the typical message.
var body = strings.Repeat("Your code is 123456. ", 8)[:160]

// now is the suite's notion of the present, at millisecond precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// message returns a new message of key accepted at at, as the engine
// builds one before Accept.
func (f *fixture) message(key string, at time.Time) *sb.Message {
	id := f.ids.next()
	return &sb.Message{
		ID: id, Key: key, To: "+491701234567", From: "Switchboard", Body: body,
		Reference: "ref-" + id, CallbackURL: "https://example.com/hooks/sms",
		Encoding: "gsm7", Segments: 1, Status: sb.StatusAccepted,
		AcceptedAt: at, UpdatedAt: at, ExpiresAt: at.Add(48 * time.Hour),
		Events: []sb.Event{{Status: sb.StatusAccepted, At: at}},
	}
}

// accept stores messages, each in its own Accept call, and fails the test
// on an error.
func (f *fixture) accept(t *testing.T, msgs ...*sb.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: m}}); err != nil {
			t.Fatalf("Accept %s: %v", m.ID, err)
		}
	}
}

func (f *fixture) record(t *testing.T, updates ...sb.Update) []*sb.Message {
	t.Helper()
	got, err := f.s.Record(f.ctx, updates)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if len(got) != len(updates) {
		t.Fatalf("Record returned %d messages for %d updates", len(got), len(updates))
	}
	return got
}

// recordConcurrently records each update in a Record call of its own, all
// at once, as receipts arriving on different binds do, and fails the test
// if any of them fails.
func (f *fixture) recordConcurrently(t *testing.T, updates ...sb.Update) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(updates))
	for i := range updates {
		wg.Go(func() { _, errs[i] = f.s.Record(f.ctx, updates[i:i+1]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Record: %v", err)
	}
}

func (f *fixture) get(t *testing.T, id string) *sb.Message {
	t.Helper()
	m, err := f.s.Message(f.ctx, id)
	if err != nil {
		t.Fatalf("Message %s: %v", id, err)
	}
	return m
}

func (f *fixture) pending(t *testing.T, key, afterID string, limit int) []*sb.Message {
	t.Helper()
	return f.pendingBefore(t, key, afterID, "", limit)
}

func (f *fixture) pendingBefore(t *testing.T, key, afterID, beforeID string, limit int) []*sb.Message {
	t.Helper()
	msgs, err := f.s.Pending(f.ctx, key, afterID, beforeID, limit)
	if err != nil {
		t.Fatalf("Pending(%q, %q, %q, %d): %v", key, afterID, beforeID, limit, err)
	}
	return msgs
}

// byDay lists every message of key accepted on day, newest first.
func (f *fixture) byDay(t *testing.T, key, day string) []*sb.Message {
	t.Helper()
	msgs, _, err := f.s.ListMessages(f.ctx, sb.MessageQuery{Key: key, Day: day, Limit: 1000})
	if err != nil {
		t.Fatalf("ListMessages(%s, %s): %v", key, day, err)
	}
	return msgs
}

// submitted returns the transition a submit_sm_resp makes.
func submitted(at time.Time, carrier string, carrierIDs ...string) sb.Transition {
	return sb.Transition{
		Event:      sb.Event{Status: sb.StatusSubmitted, At: at, Carrier: carrier},
		Part:       -1,
		CarrierIDs: carrierIDs,
	}
}

// receipt returns the transition a delivery receipt for one part makes.
func receipt(at time.Time, part int, s sb.Status) sb.Transition {
	return sb.Transition{Event: sb.Event{Status: s, At: at}, Part: part}
}

// status returns a whole-message transition (queued, failed, expired).
func status(at time.Time, s sb.Status) sb.Transition {
	return sb.Transition{Event: sb.Event{Status: s, At: at}, Part: -1}
}

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := sb.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

// wantMissing fails the test unless no message has id.
func (f *fixture) wantMissing(t *testing.T, id string) {
	t.Helper()
	_, err := f.s.Message(f.ctx, id)
	wantCode(t, err, sb.ENOTFOUND)
}

// wantEqual fails the test unless got and want are the same message,
// comparing times as instants.
func wantEqual(t *testing.T, got, want *sb.Message) {
	t.Helper()
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("message differs\n got: %+v\nwant: %+v", got, want)
	}
}

// wantIDs fails the test unless msgs have exactly the given IDs, in order.
func wantIDs(t *testing.T, msgs []*sb.Message, ids ...string) {
	t.Helper()
	got := make([]string, len(msgs))
	for i, m := range msgs {
		got[i] = m.ID
	}
	if len(ids) == 0 {
		ids = []string{}
	}
	if !reflect.DeepEqual(got, ids) {
		t.Fatalf("IDs\n got: %v\nwant: %v", got, ids)
	}
}

// normalize returns a deep copy of m with every time in UTC and without a
// monotonic reading, so reflect.DeepEqual compares instants.
func normalize(m *sb.Message) *sb.Message {
	if m == nil {
		return nil
	}
	c := *m
	c.AcceptedAt, c.UpdatedAt, c.ExpiresAt = utc(m.AcceptedAt), utc(m.UpdatedAt), utc(m.ExpiresAt)
	c.CarrierIDs = append([]string(nil), m.CarrierIDs...)
	c.PartStatus = append([]sb.Status(nil), m.PartStatus...)
	c.Events = nil
	for _, e := range m.Events {
		e.At = utc(e.At)
		if e.Error != nil {
			errCopy := *e.Error
			e.Error = &errCopy
		}
		c.Events = append(c.Events, e)
	}
	c.WebhookFailures = nil
	for _, w := range m.WebhookFailures {
		w.At = utc(w.At)
		c.WebhookFailures = append(c.WebhookFailures, w)
	}
	return &c
}

func utc(t time.Time) time.Time { return t.UTC().Round(0) }

// ids returns the IDs of msgs.
func ids(msgs ...*sb.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
