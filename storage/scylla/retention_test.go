package scylla

import (
	"context"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Rows past their time were written with Cassandra's least TTL, a second;
// retention is waiting for it.
func waitExpiry(t *testing.T) {
	t.Helper()
	time.Sleep(1100 * time.Millisecond)
}

// A message whose day is older than the TTL goes with every row that names
// it (its pending entry, its carrier id, its receipt deadline, its day's
// listing); a younger one stays as it was.
func TestRetentionMessages(t *testing.T) {
	const ttl = 10 * 24 * time.Hour
	s := openTest(t, freshKeyspace(t), func(o *Options) { o.TTL = ttl })
	ctx := context.Background()
	now := time.Now()
	old := newTraffic("k", now.Add(-ttl-49*time.Hour), time.Millisecond)
	young := newTraffic("k", now.Add(-ttl+2*time.Hour), time.Millisecond)
	oldPending, oldSubmitted := old.accept(t, s, 1)[0], old.accept(t, s, 1)[0]
	youngPending := young.accept(t, s, 1)[0]
	due := now.Add(time.Hour)
	if _, err := s.Record(ctx, []sb.Update{{MessageID: oldSubmitted.ID, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "sandbox"}, Part: -1,
		CarrierIDs: []string{"old-1"}, ReceiptDue: due}}}); err != nil {
		t.Fatal(err)
	}
	waitExpiry(t)

	for _, m := range []*sb.Message{oldPending, oldSubmitted} {
		if _, err := s.Message(ctx, m.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatalf("Message %s past the TTL: %v, want %s", m.ID, err, sb.ENOTFOUND)
		}
	}
	if _, _, err := s.CarrierMessage(ctx, "sandbox", "old-1"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("carrier id of an expired message: %v", err)
	}
	if ids, err := s.Overdue(ctx, due.Add(time.Minute), 10); err != nil || len(ids) != 0 {
		t.Fatalf("Overdue = %v, %v; want none", ids, err)
	}
	if got := pendingIDs(t, s, "k", "", 10); len(got) != 1 || got[0] != youngPending.ID {
		t.Fatalf("pending %v, want only %s", got, youngPending.ID)
	}
	if n, err := s.PendingCount(ctx, "k"); err != nil || n != 1 {
		t.Fatalf("PendingCount = %d, %v; want 1", n, err)
	}
	msgs, _, err := s.ListMessages(ctx, sb.MessageQuery{Key: "k", Day: oldPending.Day(), Limit: 10})
	if err != nil || len(msgs) != 0 {
		t.Fatalf("listing of the expired day = %d messages, %v", len(msgs), err)
	}
	if got, err := s.Message(ctx, youngPending.ID); err != nil || got.ID != youngPending.ID {
		t.Fatalf("Message within the TTL: %v", err)
	}
}

// A carrier id finds its message for CarrierIDGrace after the message
// turned final, then expires while the message stays; a receipt parked
// until a time now past is not applied.
func TestRetentionCarrierIDsAndParked(t *testing.T) {
	const grace = 72 * time.Hour
	s := openTest(t, freshKeyspace(t), func(o *Options) { o.CarrierIDGrace = grace })
	ctx := context.Background()
	now := time.Now()
	g := newTraffic("k", now.Add(-grace-4*time.Hour), time.Millisecond)
	ended, recent, parked := g.accept(t, s, 1)[0], g.accept(t, s, 1)[0], g.accept(t, s, 1)[0]
	long := now.Add(-grace - 2*time.Hour)
	submit := func(m *sb.Message, at time.Time, cid string) sb.Update {
		return sb.Update{MessageID: m.ID, Transition: sb.Transition{
			Event: sb.Event{Status: sb.StatusSubmitted, At: at, Carrier: "sandbox"}, Part: -1, CarrierIDs: []string{cid}}}
	}
	receipt := func(m *sb.Message, at time.Time) sb.Update {
		return sb.Update{MessageID: m.ID, Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at}, Part: 0}}
	}
	past := sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "sandbox", ID: "p-past"}, ParkUntil: now.Add(-time.Minute),
		Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: now}, Part: 0}}
	if _, err := s.Record(ctx, []sb.Update{submit(ended, long, "long"), receipt(ended, long),
		submit(recent, now, "recent"), receipt(recent, now), past}); err != nil {
		t.Fatal(err)
	}
	waitExpiry(t)

	if _, _, err := s.CarrierMessage(ctx, "sandbox", "long"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("carrier id past its grace: %v, want %s", err, sb.ENOTFOUND)
	}
	if _, err := s.Message(ctx, ended.ID); err != nil {
		t.Fatalf("the message of an expired carrier id: %v", err)
	}
	if id, _, err := s.CarrierMessage(ctx, "sandbox", "recent"); err != nil || id != recent.ID {
		t.Fatalf("carrier id within its grace = %s, %v", id, err)
	}
	got, err := s.Record(ctx, []sb.Update{submit(parked, now, "p-past")})
	if err != nil || got[0].Status != sb.StatusSubmitted {
		t.Fatalf("a receipt parked until a past time was applied: %+v, %v", got, err)
	}
}
