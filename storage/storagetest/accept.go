package storagetest

import (
	"crypto/sha256"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Accept then Message returns an equal copy, which the caller may change
// without changing the store; changing the accepted value afterwards does
// not change the store either.
func testAcceptThenMessage(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 2
	m.Events[0].Error = &sb.EventError{Code: "x", Description: "kept as given"}
	want := normalize(m)
	f.accept(t, m)
	m.Body, m.Events[0].Error.Code = "changed after Accept", "y"

	got := f.get(t, m.ID)
	wantEqual(t, got, want)
	got.Body, got.Status = "changed by the reader", sb.StatusFailed
	got.Events[0].Error.Code = "z"
	got.Events = append(got.Events, sb.Event{Status: sb.StatusFailed})
	wantEqual(t, f.get(t, m.ID), want)
}

func testMessageNotFound(t *testing.T, f *fixture) {
	_, err := f.s.Message(f.ctx, f.ids.next())
	wantCode(t, err, sb.ENOTFOUND)
}

// Accept of an existing ID fails with ECONFLICT and stores nothing of its
// batch.
func testAcceptExistingID(t *testing.T, f *fixture) {
	old := f.message("k1", now())
	f.accept(t, old)
	fresh, dup := f.message("k1", now()), f.message("k1", now())
	dup.ID, dup.Body = old.ID, "a different body"
	err := f.s.Accept(f.ctx, []sb.NewMessage{
		{Message: fresh, IdempotencyKey: "idem-fresh"}, {Message: dup},
	})
	wantCode(t, err, sb.ECONFLICT)
	f.wantMissing(t, fresh.ID)
	wantEqual(t, f.get(t, old.ID), old)
	wantIDs(t, f.pending(t, "k1", "", 10), old.ID)
	_, err = f.s.Idempotency(f.ctx, "k1", "idem-fresh")
	wantCode(t, err, sb.ENOTFOUND)
}

// An ID twice in one batch is a conflict too, and the batch stores nothing.
func testAcceptDuplicateInBatch(t *testing.T, f *fixture) {
	a, b := f.message("k1", now()), f.message("k1", now())
	err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: a}, {Message: b}, {Message: a}})
	wantCode(t, err, sb.ECONFLICT)
	f.wantMissing(t, a.ID)
	f.wantMissing(t, b.ID)
	// The failed batch left nothing behind that blocks a retry.
	if err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: a}, {Message: b}}); err != nil {
		t.Fatalf("retry after a failed batch: %v", err)
	}
}

func testAcceptEmpty(t *testing.T, f *fixture) {
	if err := f.s.Accept(f.ctx, nil); err != nil {
		t.Fatalf("Accept of no messages: %v", err)
	}
}

// Idempotency finds the record stored with a message, per API key.
func testIdempotency(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	hash := sha256.Sum256([]byte(`{"to":"+491701234567"}`))
	err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: m, IdempotencyKey: "order-42", RequestHash: hash}})
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	rec, err := f.s.Idempotency(f.ctx, "k1", "order-42")
	if err != nil {
		t.Fatalf("Idempotency: %v", err)
	}
	if rec.MessageID != m.ID || rec.RequestHash != hash || !rec.CreatedAt.Equal(m.AcceptedAt) {
		t.Fatalf("record %+v, want message %s, hash %x, created %v", rec, m.ID, hash, m.AcceptedAt)
	}
	_, err = f.s.Idempotency(f.ctx, "k1", "order-43")
	wantCode(t, err, sb.ENOTFOUND)
	_, err = f.s.Idempotency(f.ctx, "k2", "order-42")
	wantCode(t, err, sb.ENOTFOUND)
}

// A record older than IdempotencyWindow is not found; a younger one is.
func testIdempotencyExpired(t *testing.T, f *fixture) {
	old := f.message("k1", now().Add(-sb.IdempotencyWindow-time.Hour))
	young := f.message("k1", now().Add(-sb.IdempotencyWindow+time.Hour))
	err := f.s.Accept(f.ctx, []sb.NewMessage{
		{Message: old, IdempotencyKey: "old"}, {Message: young, IdempotencyKey: "young"},
	})
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	_, err = f.s.Idempotency(f.ctx, "k1", "old")
	wantCode(t, err, sb.ENOTFOUND)
	if rec, err := f.s.Idempotency(f.ctx, "k1", "young"); err != nil || rec.MessageID != young.ID {
		t.Fatalf("Idempotency(young) = %+v, %v; want message %s", rec, err, young.ID)
	}
}

// A live idempotency key cannot be stored twice (ECONFLICT, nothing of the
// batch stored), in one batch or two; an expired one can, and the new
// record replaces it. Other API keys have their own keys.
func testIdempotencyKeyReuse(t *testing.T, f *fixture) {
	first, second := f.message("k1", now()), f.message("k1", now())
	f.acceptWithKey(t, first, "once")
	err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: second, IdempotencyKey: "once"}})
	wantCode(t, err, sb.ECONFLICT)
	f.wantMissing(t, second.ID)

	a, b := f.message("k1", now()), f.message("k1", now())
	err = f.s.Accept(f.ctx, []sb.NewMessage{{Message: a, IdempotencyKey: "twice"}, {Message: b, IdempotencyKey: "twice"}})
	wantCode(t, err, sb.ECONFLICT)
	f.wantMissing(t, a.ID)

	f.acceptWithKey(t, f.message("k2", now()), "once")

	expired := f.message("k1", now().Add(-sb.IdempotencyWindow-time.Minute))
	f.acceptWithKey(t, expired, "again")
	renewed := f.message("k1", now())
	f.acceptWithKey(t, renewed, "again")
	if rec, err := f.s.Idempotency(f.ctx, "k1", "again"); err != nil || rec.MessageID != renewed.ID {
		t.Fatalf("Idempotency(again) = %+v, %v; want message %s", rec, err, renewed.ID)
	}
}

func (f *fixture) acceptWithKey(t *testing.T, m *sb.Message, idemKey string) {
	t.Helper()
	if err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: m, IdempotencyKey: idemKey}}); err != nil {
		t.Fatalf("Accept %s with key %q: %v", m.ID, idemKey, err)
	}
}
