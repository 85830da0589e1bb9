package storagetest

import (
	"context"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Retention is the retention a store is opened with for RunRetention.
type Retention struct {
	TTL            time.Duration // storage.ttl
	CarrierIDGrace time.Duration // storage.carrier_id_grace
}

// RetentionOpener opens a new, empty store with the given retention. It
// returns the store and a function that applies retention now: when it
// returns, everything due at the moment it was called is deleted. (A
// backend with native TTLs may simply wait for them.)
type RetentionOpener func(t *testing.T, r Retention) (sb.Store, func(ctx context.Context) error)

// testRetention is the retention used by every retention test: long
// enough that the suite's fresh messages are far from it, short enough
// that messages "accepted" a little over it ago are still recent.
var testRetention = Retention{TTL: 10 * 24 * time.Hour, CarrierIDGrace: 72 * time.Hour}

// RunRetention runs the retention tests: what is past its time is deleted
// with every index that names it, and nothing younger is touched. Each
// subtest opens its own store and closes it.
func RunRetention(t *testing.T, open RetentionOpener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture, expire func(context.Context) error)
	}{
		{"Messages", testRetentionMessages},
		{"CarrierIDs", testRetentionCarrierIDs},
		{"CarrierIDsReused", testRetentionCarrierIDsReused},
		{"Parked", testRetentionParked},
		{"Idempotency", testRetentionIdempotency},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, expire := open(t, testRetention)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, newFixture(t, s), expire)
		})
	}
}

func (f *fixture) expire(t *testing.T, expire func(context.Context) error) {
	t.Helper()
	if err := expire(f.ctx); err != nil {
		t.Fatalf("applying retention: %v", err)
	}
}

// Messages whose day is past the TTL go, with their by-day, pending,
// receipt-due and carrier index entries, pending counts and keys; messages
// within it stay exactly as they were, and the store goes on working.
func testRetentionMessages(t *testing.T, f *fixture, expire func(context.Context) error) {
	base := now()
	oldAt := base.Add(-testRetention.TTL - 49*time.Hour) // over a whole day past the TTL
	youngAt := base.Add(-testRetention.TTL + 2*time.Hour)
	due := base.Add(time.Hour)

	oldPending, oldSubmitted, oldFinal, oldOther := f.message("k1", oldAt), f.message("k1", oldAt), f.message("k1", oldAt), f.message("k2", oldAt)
	youngPending, youngSubmitted := f.message("k1", youngAt), f.message("k1", youngAt)
	f.accept(t, oldPending, oldSubmitted, oldFinal, oldOther, youngPending, youngSubmitted)
	oldIn := f.inbound("k1", oldAt)
	if err := f.s.AcceptInbound(f.ctx, oldIn, nil, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}
	// A store may delete messages past the TTL at any time (a native
	// TTL does at once), so these may find them gone already.
	for _, u := range []sb.Update{
		{MessageID: oldSubmitted.ID, Transition: submittedDue(base, due, "sandbox", "old-s")},
		{MessageID: oldFinal.ID, Transition: submitted(base, "sandbox", "old-f")},
		{MessageID: oldFinal.ID, Transition: receipt(base, 0, sb.StatusDelivered)},
	} {
		if _, err := f.s.Record(f.ctx, []sb.Update{u}); err != nil && sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatalf("Record: %v", err)
		}
	}
	f.record(t, sb.Update{MessageID: youngSubmitted.ID, Transition: submittedDue(base, due, "sandbox", "young-s")})
	keep := []*sb.Message{f.get(t, youngPending.ID), f.get(t, youngSubmitted.ID)}

	f.expire(t, expire)
	for _, m := range []*sb.Message{oldPending, oldSubmitted, oldFinal, oldOther, oldIn} {
		f.wantMissing(t, m.ID)
	}
	wantIDs(t, f.byDay(t, "k1", oldAt.Format(time.DateOnly)))
	wantIDs(t, f.byDay(t, "k2", oldAt.Format(time.DateOnly)))
	for _, cid := range []string{"old-s", "old-f"} {
		_, _, err := f.s.CarrierMessage(f.ctx, "sandbox", cid)
		wantCode(t, err, sb.ENOTFOUND)
	}
	wantIDs(t, f.pending(t, "k1", "", 10), youngPending.ID)
	wantIDs(t, f.pending(t, "k2", "", 10))
	f.wantPendingCount(t, "k1", 1)
	f.wantPendingCount(t, "k2", 0)
	f.wantPendingKeys(t, "k1")
	f.wantOverdue(t, due.Add(time.Minute), 10, youngSubmitted.ID)

	for _, m := range keep {
		wantEqual(t, f.get(t, m.ID), m)
	}
	wantIDs(t, f.byDay(t, "k1", youngAt.Format(time.DateOnly)), youngSubmitted.ID, youngPending.ID)
	f.wantCarrierMessage(t, "sandbox", "young-s", youngSubmitted.ID, 0)

	// The store goes on: a second pass deletes nothing more, and new
	// messages count.
	f.expire(t, expire)
	wantEqual(t, f.get(t, youngPending.ID), keep[0])
	f.accept(t, f.message("k1", now()), f.message("k2", now()))
	f.wantPendingCount(t, "k1", 2)
	f.wantPendingCount(t, "k2", 1)
}

// A carrier id stops finding its message CarrierIDGrace after the message
// turned final, while the message stays; a later receipt for it is then
// parked, as for an unknown id. Ids of messages final more recently, or
// not final, stay.
func testRetentionCarrierIDs(t *testing.T, f *fixture, expire func(context.Context) error) {
	grace := testRetention.CarrierIDGrace
	long, recent := now().Add(-grace-3*time.Hour), now().Add(-grace+3*time.Hour)
	endedLong, endedRecently, open := f.message("k1", long), f.message("k1", recent), f.message("k1", long)
	f.accept(t, endedLong, endedRecently, open)
	f.record(t,
		sb.Update{MessageID: endedLong.ID, Transition: submitted(long.Add(time.Minute), "sandbox", "long")},
		sb.Update{MessageID: endedLong.ID, Transition: receipt(long.Add(time.Hour), 0, sb.StatusDelivered)},
		sb.Update{MessageID: endedRecently.ID, Transition: submitted(recent.Add(time.Minute), "sandbox", "recent")},
		sb.Update{MessageID: endedRecently.ID, Transition: receipt(recent.Add(time.Hour), 0, sb.StatusDelivered)},
		sb.Update{MessageID: open.ID, Transition: submitted(long.Add(time.Minute), "sandbox", "open")},
	)
	ended := f.get(t, endedLong.ID)

	f.expire(t, expire)
	_, _, err := f.s.CarrierMessage(f.ctx, "sandbox", "long")
	wantCode(t, err, sb.ENOTFOUND)
	wantEqual(t, f.get(t, endedLong.ID), ended)
	f.wantCarrierMessage(t, "sandbox", "recent", endedRecently.ID, 0)
	f.wantCarrierMessage(t, "sandbox", "open", open.ID, 0)
	if got := f.record(t, byCarrier("sandbox", "long", receipt(now(), 0, sb.StatusUndeliverable))); got[0] != nil {
		t.Fatalf("a receipt for an expired carrier id found %+v, want it parked", got[0])
	}
	wantEqual(t, f.get(t, endedLong.ID), ended)
}

// A carrier id the carrier reused for a newer message finds the newer one
// after the older turned final, whether the older's grace has passed
// (its id would go) or not (its id would be kept for it): the end of the
// older message touches the id only while it still names that message.
func testRetentionCarrierIDsReused(t *testing.T, f *fixture, expire func(context.Context) error) {
	grace := testRetention.CarrierIDGrace
	long, recent := now().Add(-grace-3*time.Hour), now().Add(-grace+3*time.Hour)
	endedLong, endedRecently := f.message("k1", long), f.message("k1", recent)
	reusedLong, reusedRecently := f.message("k1", now()), f.message("k1", now())
	f.accept(t, endedLong, endedRecently, reusedLong, reusedRecently)
	f.record(t,
		sb.Update{MessageID: endedLong.ID, Transition: submitted(long.Add(time.Minute), "sandbox", "r-long")},
		sb.Update{MessageID: endedRecently.ID, Transition: submitted(recent.Add(time.Minute), "sandbox", "r-recent")},
	)
	f.record(t,
		sb.Update{MessageID: reusedLong.ID, Transition: submitted(now(), "sandbox", "r-long")},
		sb.Update{MessageID: reusedRecently.ID, Transition: submitted(now(), "sandbox", "r-recent")},
	)
	f.record(t,
		sb.Update{MessageID: endedLong.ID, Transition: receipt(long.Add(time.Hour), 0, sb.StatusDelivered)},
		sb.Update{MessageID: endedRecently.ID, Transition: receipt(recent.Add(time.Hour), 0, sb.StatusDelivered)},
	)

	f.expire(t, expire)
	f.wantCarrierMessage(t, "sandbox", "r-long", reusedLong.ID, 0)
	f.wantCarrierMessage(t, "sandbox", "r-recent", reusedRecently.ID, 0)
}

// A parked update goes at its ParkUntil: indexing its id afterwards finds
// nothing to apply. One parked until later is still applied.
func testRetentionParked(t *testing.T, f *fixture, expire func(context.Context) error) {
	gone, kept := f.message("k1", now()), f.message("k1", now())
	f.accept(t, gone, kept)
	past := byCarrier("sandbox", "p-past", receipt(now(), 0, sb.StatusDelivered))
	past.ParkUntil = now().Add(-time.Minute)
	f.record(t, past, byCarrier("sandbox", "p-later", receipt(now(), 0, sb.StatusDelivered)))

	f.expire(t, expire)
	got := f.record(t,
		sb.Update{MessageID: gone.ID, Transition: submitted(now(), "sandbox", "p-past")},
		sb.Update{MessageID: kept.ID, Transition: submitted(now(), "sandbox", "p-later")},
	)
	if got[0].Status != sb.StatusSubmitted {
		t.Fatalf("receipt parked until a time passed was applied: status %s, want submitted", got[0].Status)
	}
	if got[1].Status != sb.StatusDelivered {
		t.Fatalf("receipt parked until later: status %s, want delivered", got[1].Status)
	}
}

// Idempotency records go after IdempotencyWindow; a key used again after
// its record expired keeps its new record, and younger records stay.
func testRetentionIdempotency(t *testing.T, f *fixture, expire func(context.Context) error) {
	expiredAt := now().Add(-sb.IdempotencyWindow - time.Hour)
	expired, again := f.message("k1", expiredAt), f.message("k1", expiredAt)
	young, reused := f.message("k1", now().Add(-time.Hour)), f.message("k1", now())
	f.acceptWithKey(t, expired, "once")
	f.acceptWithKey(t, again, "twice")
	f.acceptWithKey(t, young, "young")
	f.acceptWithKey(t, reused, "twice") // the record of again had expired

	f.expire(t, expire)
	_, err := f.s.Idempotency(f.ctx, "k1", "once")
	wantCode(t, err, sb.ENOTFOUND)
	for key, id := range map[string]string{"twice": reused.ID, "young": young.ID} {
		if rec, err := f.s.Idempotency(f.ctx, "k1", key); err != nil || rec.MessageID != id {
			t.Fatalf("Idempotency(%s) = %+v, %v; want message %s", key, rec, err, id)
		}
	}
	// The messages stay: they are within the TTL.
	wantEqual(t, f.get(t, expired.ID), expired)
	f.acceptWithKey(t, f.message("k1", now()), "once")
}
