package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
)

// BenchmarkMessageLife measures the store calls of one message's life as
// the engine makes them, in batches of 100 messages: Accept (with an
// Idempotency-Key), Record of the submit, Record of the receipt by
// carrier id. "pebble" is the store alone, "redis" the cache in front of
// it (SWITCHBOARD_TEST_REDIS). One op is one message.
func BenchmarkMessageLife(b *testing.B) {
	addr := redistest.Shared(b)
	for _, cached := range []bool{false, true} {
		name := map[bool]string{false: "pebble", true: "redis"}[cached]
		b.Run(name, func(b *testing.B) {
			inner := openPebble(b)
			var s sb.Store = inner
			if cached {
				c := NewClient(ClientOptions{Addr: addr})
				b.Cleanup(func() { c.Close() })
				s = Wrap(inner, c, Options{Prefix: redistest.Prefix(b)})
			}
			messageLife(b, s)
		})
	}
}

func messageLife(b *testing.B, s sb.Store) {
	ctx := context.Background()
	const batch = 100
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		now := time.Now().UTC()
		news := make([]sb.NewMessage, batch)
		subs := make([]sb.Update, batch)
		rcpts := make([]sb.Update, batch)
		for i := range news {
			id := "msg_" + ulid.Make().String()
			m := &sb.Message{ID: id, Key: "k1", To: "+447700900123", From: "Acme", Body: "hello", Encoding: "gsm7",
				Segments: 1, Status: sb.StatusAccepted, AcceptedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
				Events: []sb.Event{{Status: sb.StatusAccepted, At: now}}}
			news[i] = sb.NewMessage{Message: m, IdempotencyKey: id}
			cid := fmt.Sprintf("c-%s", id)
			subs[i] = sb.Update{MessageID: id, Transition: sb.Transition{
				Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "sandbox"}, Part: -1, CarrierIDs: []string{cid}}}
			rcpts[i] = sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "sandbox", ID: cid}, ParkUntil: now.Add(time.Hour),
				Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: now}}}
		}
		for i := range news {
			if _, err := s.Idempotency(ctx, "k1", news[i].IdempotencyKey); sb.ErrorCode(err) != sb.ENOTFOUND {
				b.Fatal(err)
			}
		}
		if err := s.Accept(ctx, news); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Record(ctx, subs); err != nil {
			b.Fatal(err)
		}
		got, err := s.Record(ctx, rcpts)
		if err != nil || got[0] == nil || got[0].Status != sb.StatusDelivered {
			b.Fatalf("receipts: %v, %v", got[0], err)
		}
	}
}
