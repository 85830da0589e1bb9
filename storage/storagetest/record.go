package storagetest

import (
	"testing"

	sb "github.com/switchboard-sms/switchboard"
)

// Submitted takes a message out of pending and indexes its carrier ids, so
// CarrierMessage finds the message and part of each.
func testRecordSubmitted(t *testing.T, f *fixture) {
	m, other := f.message("k1", now()), f.message("k1", now())
	m.Segments = 2
	f.accept(t, m, other)
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "c-0", "c-1")})
	if got[0].Status != sb.StatusSubmitted || got[0].Carrier != "sandbox" || len(got[0].CarrierIDs) != 2 {
		t.Fatalf("after submitted: %+v", got[0])
	}
	wantEqual(t, f.get(t, m.ID), got[0])
	wantIDs(t, f.pending(t, "k1", "", 10), other.ID)
	for part, cid := range []string{"c-0", "c-1"} {
		id, p, err := f.s.CarrierMessage(f.ctx, "sandbox", cid)
		if err != nil || id != m.ID || p != part {
			t.Fatalf("CarrierMessage(sandbox, %s) = %s, %d, %v; want %s, %d", cid, id, p, err, m.ID, part)
		}
	}
	_, _, err := f.s.CarrierMessage(f.ctx, "sandbox", "c-2")
	wantCode(t, err, sb.ENOTFOUND)
	_, _, err = f.s.CarrierMessage(f.ctx, "other-carrier", "c-0")
	wantCode(t, err, sb.ENOTFOUND)
}

// A multi-part message settles only when every part has a final receipt,
// and then takes the first failure in part order.
func testRecordReceipts(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 3
	f.accept(t, m)
	t0 := now()
	f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(t0, "sandbox", "a", "b", "c")})
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: receipt(t0.Add(2e9), 2, sb.StatusDelivered)})
	if got[0].Status != sb.StatusSubmitted {
		t.Fatalf("one part of three delivered: status %s, want submitted", got[0].Status)
	}
	got = f.record(t,
		sb.Update{MessageID: m.ID, Transition: receipt(t0.Add(3e9), 1, sb.StatusUndeliverable)},
		sb.Update{MessageID: m.ID, Transition: receipt(t0.Add(1e9), 0, sb.StatusDelivered)},
	)
	final := got[1]
	if final.Status != sb.StatusUndeliverable {
		t.Fatalf("status %s, want undeliverable", final.Status)
	}
	if len(final.Events) != 5 {
		t.Fatalf("%d events, want 5: %+v", len(final.Events), final.Events)
	}
	for i := 1; i < len(final.Events); i++ {
		if final.Events[i].At.Before(final.Events[i-1].At) {
			t.Fatalf("events out of time order: %+v", final.Events)
		}
	}
	wantEqual(t, f.get(t, m.ID), final)
}

// Record naming an unknown message fails with ENOTFOUND and applies none of
// its updates.
func testRecordUnknownMessage(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	_, err := f.s.Record(f.ctx, []sb.Update{
		{MessageID: m.ID, Transition: submitted(now(), "sandbox", "x")},
		{MessageID: f.ids.next(), Transition: status(now(), sb.StatusFailed)},
	})
	wantCode(t, err, sb.ENOTFOUND)
	wantEqual(t, f.get(t, m.ID), m)
	wantIDs(t, f.pending(t, "k1", "", 10), m.ID)
	_, _, err = f.s.CarrierMessage(f.ctx, "sandbox", "x")
	wantCode(t, err, sb.ENOTFOUND)
}

// A transition that changes nothing (Apply returns false) is not an error:
// Record returns the message as it is and stores nothing new.
func testRecordNoChange(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	before := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "first")})[0]
	got := f.record(t,
		sb.Update{MessageID: m.ID, Transition: submitted(now(), "other", "second")},
		sb.Update{MessageID: m.ID, Transition: receipt(now(), 0, "")},
	)
	wantEqual(t, got[1], before)
	wantEqual(t, f.get(t, m.ID), before)
	_, _, err := f.s.CarrierMessage(f.ctx, "other", "second")
	wantCode(t, err, sb.ENOTFOUND)
}

// The pending index follows Message.Pending through every transition:
// queued stays pending, a final status leaves, and a late queued record
// after submitted changes nothing (Apply refuses it), so the message stays
// out of pending.
func testRecordPendingFollowsStatus(t *testing.T, f *fixture) {
	queued, failed, requeued := f.message("k1", now()), f.message("k1", now()), f.message("k1", now())
	f.accept(t, queued, failed, requeued)
	f.record(t,
		sb.Update{MessageID: queued.ID, Transition: status(now(), sb.StatusQueued)},
		sb.Update{MessageID: failed.ID, Transition: status(now(), sb.StatusFailed)},
		sb.Update{MessageID: requeued.ID, Transition: submitted(now(), "sandbox", "r")},
	)
	wantIDs(t, f.pending(t, "k1", "", 10), queued.ID)
	if got := f.get(t, queued.ID); got.Status != sb.StatusQueued {
		t.Fatalf("status %s, want queued", got.Status)
	}
	f.record(t, sb.Update{MessageID: requeued.ID, Transition: status(now(), sb.StatusQueued)})
	wantIDs(t, f.pending(t, "k1", "", 10), queued.ID)
	if got := f.get(t, requeued.ID); got.Status != sb.StatusSubmitted {
		t.Fatalf("late queued: status %s, want submitted", got.Status)
	}
}

// Updates of one message in one Record apply in order; each result is the
// message after its own update, and results are copies.
func testRecordSameMessageTwice(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	got := f.record(t,
		sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusQueued)},
		sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "s")},
	)
	if got[0].Status != sb.StatusQueued || got[1].Status != sb.StatusSubmitted {
		t.Fatalf("statuses %s, %s; want queued, submitted", got[0].Status, got[1].Status)
	}
	if len(got[0].Events) != 2 || len(got[1].Events) != 3 {
		t.Fatalf("%d and %d events, want 2 and 3", len(got[0].Events), len(got[1].Events))
	}
	want := normalize(got[1])
	got[1].Status, got[1].Events[0].Status = sb.StatusFailed, sb.StatusFailed
	wantEqual(t, f.get(t, m.ID), want)
}
