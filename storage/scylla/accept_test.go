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
