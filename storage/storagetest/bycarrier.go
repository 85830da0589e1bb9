package storagetest

import (
	"fmt"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// byCarrier returns an update that names its message by a carrier's id,
// as a receipt does, parked for an hour if the id is not indexed yet.
func byCarrier(carrier, id string, tr sb.Transition) sb.Update {
	return sb.Update{ByCarrier: &sb.CarrierRef{Carrier: carrier, ID: id}, ParkUntil: now().Add(time.Hour), Transition: tr}
}

// wantCarrierMessage fails the test unless carrier's id names message id,
// part part.
func (f *fixture) wantCarrierMessage(t *testing.T, carrier, cid, id string, part int) {
	t.Helper()
	got, p, err := f.s.CarrierMessage(f.ctx, carrier, cid)
	if err != nil || got != id || p != part {
		t.Fatalf("CarrierMessage(%s, %s) = %s, %d, %v; want %s, %d", carrier, cid, got, p, err, id, part)
	}
}

// An update by carrier id finds its message and part through the index:
// the part comes from the index, not from the update, and the update's
// Notify works as with a message ID. Another carrier's id of the same
// value is another id.
func testRecordByCarrier(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 2
	f.accept(t, m)
	f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "a-0", "a-1")})

	got := f.record(t, byCarrier("sandbox", "a-1", receipt(now(), 0, sb.StatusDelivered)))
	if got[0] == nil || got[0].ID != m.ID {
		t.Fatalf("Record by carrier id returned %+v, want message %s", got[0], m.ID)
	}
	if ps := got[0].PartStatus; len(ps) != 2 || ps[0] != "" || ps[1] != sb.StatusDelivered {
		t.Fatalf("part statuses %q, want part 2 delivered", ps)
	}
	n := f.notify(sb.StatusUndeliverable)
	u := byCarrier("sandbox", "a-0", receipt(now(), 1, sb.StatusUndeliverable))
	u.Notify = n
	got = f.record(t, u)
	if got[0] == nil || got[0].Status != sb.StatusUndeliverable {
		t.Fatalf("after both receipts: %+v, want undeliverable", got[0])
	}
	wantEqual(t, f.get(t, m.ID), got[0])
	cbs := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, cbs, n.EventID)
	wantStatusEvent(t, cbs[0], m.ID, sb.StatusUndeliverable)

	other := f.record(t, byCarrier("other-carrier", "a-0", receipt(now(), 0, sb.StatusDelivered)))
	if other[0] != nil {
		t.Fatalf("another carrier's id found %+v, want it parked (nil)", other[0])
	}
}

// A receipt whose carrier id is not indexed yet is parked: Record returns
// nil for it and changes nothing, queues no callback, and succeeds. The
// Record that indexes the id applies it in the same write, after the
// submission, so the submit's Notify sees the whole change and queues both
// the submitted and the final callback. What was parked is then gone: a
// later message the carrier gives the same id does not get it.
func testRecordByCarrierParked(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	t0 := now()
	early := byCarrier("sandbox", "late-1", receipt(t0.Add(time.Second), 0, sb.StatusDelivered))
	early.Notify = f.notify(sb.StatusDelivered)
	if got := f.record(t, early); got[0] != nil {
		t.Fatalf("Record of an unknown carrier id returned %+v, want nil", got[0])
	}
	wantEqual(t, f.get(t, m.ID), m)
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10))
	_, _, err := f.s.CarrierMessage(f.ctx, "sandbox", "late-1")
	wantCode(t, err, sb.ENOTFOUND)

	n := f.notify(sb.StatusSubmitted, sb.StatusDelivered)
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(t0, "sandbox", "late-1"), Notify: n})[0]
	if got.Status != sb.StatusDelivered {
		t.Fatalf("submit with a parked receipt: status %s, want delivered", got.Status)
	}
	want := []sb.Status{sb.StatusAccepted, sb.StatusSubmitted, sb.StatusDelivered}
	if len(got.Events) != len(want) {
		t.Fatalf("events %+v, want %v", got.Events, want)
	}
	for i, s := range want {
		if got.Events[i].Status != s {
			t.Fatalf("events %+v, want %v", got.Events, want)
		}
	}
	wantEqual(t, f.get(t, m.ID), got)
	wantIDs(t, f.pending(t, "k1", "", 10))
	f.wantCarrierMessage(t, "sandbox", "late-1", m.ID, 0)
	cbs := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, cbs, n.EventID, n.EventID+"-2")
	wantStatusEvent(t, cbs[0], m.ID, sb.StatusSubmitted)
	wantStatusEvent(t, cbs[1], m.ID, sb.StatusDelivered)

	reused := f.message("k1", now())
	f.accept(t, reused)
	if got := f.record(t, sb.Update{MessageID: reused.ID, Transition: submitted(now(), "sandbox", "late-1")})[0]; got.Status != sb.StatusSubmitted {
		t.Fatalf("a later message with the same carrier id: status %s, want submitted (the parked receipt was used)", got.Status)
	}
}

// A receipt parked long before the submit that indexes its id (more than
// sb.ReceiptLead) is a repeat of an earlier message's, whose id the
// carrier gave again: it is dropped, not applied to the new message,
// which ends with its own receipt.
func testRecordByCarrierParkedLongBefore(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	t0 := now()
	old := byCarrier("sandbox", "reused-9", receipt(t0.Add(-sb.ReceiptLead-time.Minute), 0, sb.StatusUndeliverable))
	if got := f.record(t, old); got[0] != nil {
		t.Fatalf("Record of an unknown carrier id returned %+v, want nil", got[0])
	}
	n := f.notify(sb.StatusSubmitted, sb.StatusUndeliverable)
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(t0, "sandbox", "reused-9"), Notify: n})[0]
	if got.Status != sb.StatusSubmitted {
		t.Fatalf("submit of an id with a receipt parked %v before: status %s, want submitted", sb.ReceiptLead+time.Minute, got.Status)
	}
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10), n.EventID)
	got = f.record(t, byCarrier("sandbox", "reused-9", receipt(now(), 0, sb.StatusDelivered)))[0]
	if got == nil || got.Status != sb.StatusDelivered {
		t.Fatalf("the message's own receipt: %+v, want delivered", got)
	}

	// A receipt that carries its submission (it overtook the record of
	// its submit, after a store outage perhaps) gives the ids at its own
	// time, which says nothing of when the submit was: what is parked for
	// the other part applies.
	long := f.message("k1", now())
	long.Segments = 2
	f.accept(t, long)
	early := byCarrier("sandbox", "long-2", receipt(t0.Add(-sb.ReceiptLead-time.Minute), 0, sb.StatusDelivered))
	if got := f.record(t, early); got[0] != nil {
		t.Fatalf("Record of an unknown carrier id returned %+v, want nil", got[0])
	}
	carried := receipt(t0, 0, sb.StatusDelivered)
	carried.Event.Carrier, carried.CarrierIDs = "sandbox", []string{"long-1", "long-2"}
	got = f.record(t, sb.Update{MessageID: long.ID, Transition: carried})[0]
	if got.Status != sb.StatusDelivered {
		t.Fatalf("a receipt carrying its submission, with the other part's receipt parked before it: status %s (parts %q), want delivered", got.Status, got.PartStatus)
	}
}

// An update by carrier id without a ParkUntil asks only whether the id is
// known: for an unknown id Record returns nil and keeps nothing, so the
// Record that indexes the id later applies nothing.
func testRecordByCarrierNotParked(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	ask := byCarrier("sandbox", "ask-1", receipt(now(), 0, sb.StatusDelivered))
	ask.ParkUntil = time.Time{}
	if got := f.record(t, ask); got[0] != nil {
		t.Fatalf("Record of an unknown carrier id returned %+v, want nil", got[0])
	}
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "ask-1")})[0]
	if got.Status != sb.StatusSubmitted {
		t.Fatalf("status %s after the submit, want submitted: an update without ParkUntil was kept", got.Status)
	}
	if got := f.record(t, ask); got[0] == nil || got[0].Status != sb.StatusDelivered {
		t.Fatalf("the same update once the id is indexed: %+v, want the message delivered", got[0])
	}
}

// Receipts parked for several parts, one of them in the same Record call
// as the submit (before it), all apply when the parts are indexed, also
// when the parts are indexed one try at a time.
func testRecordByCarrierParkedParts(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 3
	f.accept(t, m)
	f.record(t,
		byCarrier("sandbox", "p-1", receipt(now(), 0, sb.StatusDelivered)),
		byCarrier("sandbox", "p-2", receipt(now(), 0, sb.StatusRejected)),
	)
	// The first try: the carrier took parts 1 and 3.
	got := f.record(t,
		byCarrier("sandbox", "p-0", receipt(now(), 0, sb.StatusDelivered)),
		sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "p-0", "", "p-2")},
	)
	if got[0] != nil {
		t.Fatalf("receipt before its submit in one call returned %+v, want nil", got[0])
	}
	if got[1].Status != sb.StatusAccepted || !got[1].Pending() {
		t.Fatalf("two parts of three submitted: status %s, want accepted (pending)", got[1].Status)
	}
	if ps := got[1].PartStatus; len(ps) != 3 || ps[0] != sb.StatusDelivered || ps[1] != "" || ps[2] != sb.StatusRejected {
		t.Fatalf("part statuses %q, want delivered, -, rejected", ps)
	}
	wantIDs(t, f.pending(t, "k1", "", 10), m.ID)
	got = f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "", "p-1", "")})
	if got[0].Status != sb.StatusRejected {
		t.Fatalf("every part submitted and settled: status %s, want rejected", got[0].Status)
	}
	wantIDs(t, f.pending(t, "k1", "", 10))
	for part, cid := range []string{"p-0", "p-1", "p-2"} {
		f.wantCarrierMessage(t, "sandbox", cid, m.ID, part)
	}
	_, _, err := f.s.CarrierMessage(f.ctx, "sandbox", "")
	wantCode(t, err, sb.ENOTFOUND)
}

// An update by carrier id after the update that indexes it, in the same
// Record call, finds the message.
func testRecordByCarrierSameCall(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	got := f.record(t,
		sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "s-0")},
		byCarrier("sandbox", "s-0", receipt(now(), 0, sb.StatusExpired)),
	)
	if got[0].Status != sb.StatusSubmitted || got[1] == nil || got[1].Status != sb.StatusExpired {
		t.Fatalf("results %+v, %+v; want submitted, then expired", got[0], got[1])
	}
	wantEqual(t, f.get(t, m.ID), got[1])
}

// Receipts by carrier id recorded concurrently with the submit that
// indexes them all land, whether each was parked or found the index: the
// store parks and indexes atomically.
func testRecordByCarrierConcurrent(t *testing.T, f *fixture) {
	const parts = 8
	m := f.message("k1", now())
	m.Segments = parts
	f.accept(t, m)
	cids := make([]string, parts)
	for i := range cids {
		cids[i] = fmt.Sprintf("cc-%d", i)
	}
	var updates []sb.Update
	for _, cid := range cids {
		updates = append(updates, byCarrier("sandbox", cid, receipt(now(), 0, sb.StatusDelivered)))
	}
	f.recordConcurrently(t, append(updates, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", cids...)})...)
	got := f.get(t, m.ID)
	if got.Status != sb.StatusDelivered || len(got.Events) != 2+parts {
		t.Fatalf("status %s with %d events, want delivered with %d", got.Status, len(got.Events), 2+parts)
	}
}

// A long message whose parts the carrier gave one id is settled by the
// one receipt for that id, whichever part the index names: delivered, not
// left waiting for receipts that never come. A receipt that was parked
// before the submit settles it the same way.
func testRecordByCarrierSharedID(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 3
	f.accept(t, m)
	f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "same", "same", "same")})
	u := byCarrier("sandbox", "same", receipt(now(), 0, sb.StatusDelivered))
	u.Notify = f.notify(sb.StatusDelivered)
	got := f.record(t, u)
	if got[0] == nil || got[0].Status != sb.StatusDelivered {
		t.Fatalf("after the receipt for the shared id: %+v, want delivered", got[0])
	}
	wantEqual(t, f.get(t, m.ID), got[0])
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10), u.Notify.EventID)

	parked := f.message("k1", now())
	parked.Segments = 2
	f.accept(t, parked)
	if got := f.record(t, byCarrier("sandbox", "early", receipt(now(), 0, sb.StatusDelivered))); got[0] != nil {
		t.Fatalf("receipt for an unknown id returned %+v, want it parked", got[0])
	}
	got = f.record(t, sb.Update{MessageID: parked.ID, Transition: submitted(now(), "sandbox", "early", "early")})
	if got[0] == nil || got[0].Status != sb.StatusDelivered {
		t.Fatalf("after the submit that unparks it: %+v, want delivered", got[0])
	}
}

// A retried submit repeats the ids of the parts accepted before; only the
// ids it gives parts are indexed. A repeated id stays indexed under the
// carrier that gave it: a retry on another carrier does not index it
// under that one, and one the carrier has since given another message
// keeps naming that message.
func testRecordByCarrierRetryRepeatsIDs(t *testing.T, f *fixture) {
	moved := f.message("k1", now())
	moved.Segments = 2
	f.accept(t, moved)
	f.record(t, sb.Update{MessageID: moved.ID, Transition: submitted(now(), "first", "a-1", "")})
	f.record(t, sb.Update{MessageID: moved.ID, Transition: submitted(now(), "second", "a-1", "b-2")})
	f.wantCarrierMessage(t, "first", "a-1", moved.ID, 0)
	f.wantCarrierMessage(t, "second", "b-2", moved.ID, 1)
	if _, _, err := f.s.CarrierMessage(f.ctx, "second", "a-1"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("CarrierMessage(second, a-1): %v, want not found: the other carrier gave that id", err)
	}

	retried, other := f.message("k1", now()), f.message("k1", now())
	retried.Segments = 2
	f.accept(t, retried, other)
	f.record(t, sb.Update{MessageID: retried.ID, Transition: submitted(now(), "sandbox", "x", "")})
	f.record(t, sb.Update{MessageID: other.ID, Transition: submitted(now(), "sandbox", "x")}) // the carrier reused x
	f.record(t, sb.Update{MessageID: retried.ID, Transition: submitted(now(), "sandbox", "x", "y")})
	f.wantCarrierMessage(t, "sandbox", "x", other.ID, 0)
	f.wantCarrierMessage(t, "sandbox", "y", retried.ID, 1)
}
