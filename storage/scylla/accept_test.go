package scylla

import (
	"context"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// An Idempotency-Key in use is a plain conflict: the batch's other
// records are released and the store stays writable.
func TestIdempotencyConflictKeepsTheStoreWritable(t *testing.T) {
	s := openTest(t, freshKeyspace(t), nil)
	ctx := context.Background()
	g := newTraffic("k", time.Now(), time.Millisecond)
	if err := s.Accept(ctx, []sb.NewMessage{{Message: g.next(), IdempotencyKey: "taken"}}); err != nil {
		t.Fatal(err)
	}
	err := s.Accept(ctx, []sb.NewMessage{{Message: g.next(), IdempotencyKey: "free"}, {Message: g.next(), IdempotencyKey: "taken"}})
	if sb.ErrorCode(err) != sb.ECONFLICT {
		t.Fatalf("Accept with a key in use: %v, want %s", err, sb.ECONFLICT)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("Writable after a conflict: %v", err)
	}
	if _, err := s.Idempotency(ctx, "k", "free"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("the other key of the refused batch: %v, want %s", err, sb.ENOTFOUND)
	}
}

// An idempotency record whose message was never stored (the node that
// claimed the key stopped between the claim and the message's write)
// is, once older than orphanAge, neither shown nor in the way: a retry
// with the key makes its message. A younger one still holds the key,
// since its Accept may still be writing.
func TestOrphanedIdempotencyRecordIsTakenOver(t *testing.T) {
	s := openTest(t, freshKeyspace(t), nil)
	ctx := context.Background()
	session := s.session.Load()
	claim := func(idemKey string, age time.Duration) {
		err := session.Query(s.cql(`INSERT INTO %s.idempotency (key, idem_key, message_id, request_hash, created_at) VALUES (?, ?, ?, ?, ?) USING TTL 86400`),
			"k1", idemKey, "msg_never_stored_"+idemKey, make([]byte, 32), time.Now().Add(-age)).Exec()
		if err != nil {
			t.Fatal(err)
		}
	}
	g := newTraffic("k1", time.Now(), time.Millisecond)

	claim("old", orphanAge+time.Minute)
	if _, err := s.Idempotency(ctx, "k1", "old"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("an orphaned record was read as %v, want not found", err)
	}
	m := g.next()
	if err := s.Accept(ctx, []sb.NewMessage{{Message: m, IdempotencyKey: "old"}}); err != nil {
		t.Fatalf("a retry with the orphaned record's key: %v", err)
	}
	if r, err := s.Idempotency(ctx, "k1", "old"); err != nil || r.MessageID != m.ID {
		t.Fatalf("the key names %q (%v), want the retry's message %s", r.MessageID, err, m.ID)
	}

	claim("young", time.Minute)
	if r, err := s.Idempotency(ctx, "k1", "young"); err != nil || r.MessageID != "msg_never_stored_young" {
		t.Fatalf("a record whose Accept may still be writing: %+v (%v), want it read", r, err)
	}
	if err := s.Accept(ctx, []sb.NewMessage{{Message: g.next(), IdempotencyKey: "young"}}); sb.ErrorCode(err) != sb.ECONFLICT {
		t.Fatalf("a key whose Accept may still be writing taken by another request: %v, want a conflict", err)
	}
}
