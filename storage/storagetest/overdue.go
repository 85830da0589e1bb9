package storagetest

import (
	"slices"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// submittedDue returns a submitted transition with a receipt deadline.
func submittedDue(at, due time.Time, carrier string, carrierIDs ...string) sb.Transition {
	tr := submitted(at, carrier, carrierIDs...)
	tr.ReceiptDue = due
	return tr
}

func (f *fixture) wantOverdue(t *testing.T, before time.Time, limit int, want ...string) {
	t.Helper()
	got, err := f.s.Overdue(f.ctx, before, limit)
	if err != nil {
		t.Fatalf("Overdue(%v, %d): %v", before, limit, err)
	}
	if len(want) == 0 {
		want = nil
	}
	if len(got) == 0 {
		got = nil
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Overdue(%v, %d)\n got: %v\nwant: %v", before, limit, got, want)
	}
}

// Overdue lists submitted messages whose ReceiptDue is before the given
// time, earliest due first, up to the limit, until they are final: a
// receipt or a final status (unknown, as the engine records on a timeout)
// takes them out. A submitted message without a ReceiptDue is never
// listed, nor is a pending one.
func testOverdue(t *testing.T, f *fixture) {
	base := now()
	var ms []*sb.Message
	for range 5 {
		m := f.message("k1", base)
		ms = append(ms, m)
		f.accept(t, m)
	}
	a, b, c, noDue, pending := ms[0], ms[1], ms[2], ms[3], ms[4]
	f.record(t,
		sb.Update{MessageID: a.ID, Transition: submittedDue(base, base.Add(3*time.Hour), "sandbox", "a")},
		sb.Update{MessageID: b.ID, Transition: submittedDue(base, base.Add(time.Hour), "sandbox", "b")},
		sb.Update{MessageID: c.ID, Transition: submittedDue(base, base.Add(2*time.Hour), "sandbox", "c")},
		sb.Update{MessageID: noDue.ID, Transition: submitted(base, "sandbox", "n")},
		sb.Update{MessageID: pending.ID, Transition: status(base, sb.StatusQueued)},
	)
	if got := f.get(t, b.ID); !got.ReceiptDue.Equal(base.Add(time.Hour)) {
		t.Fatalf("ReceiptDue = %v, want %v", got.ReceiptDue, base.Add(time.Hour))
	}
	f.wantOverdue(t, base.Add(150*time.Minute), 10, b.ID, c.ID)
	f.wantOverdue(t, base.Add(4*time.Hour), 2, b.ID, c.ID)
	f.wantOverdue(t, base.Add(time.Hour), 10) // strictly before
	f.wantOverdue(t, base.Add(4*time.Hour), 0)
	f.record(t, sb.Update{MessageID: b.ID, Transition: receipt(now(), 0, sb.StatusDelivered)})
	f.wantOverdue(t, base.Add(4*time.Hour), 10, c.ID, a.ID)
	f.record(t, sb.Update{MessageID: c.ID, Transition: status(now(), sb.StatusUnknown)})
	f.wantOverdue(t, base.Add(4*time.Hour), 10, a.ID)
}

// A message becomes overdue-listed when its ReceiptDue is set: when its
// last part is submitted (not while parts are missing), or when the
// submit's record lands after a receipt that carried the submission.
func testOverdueDueSetLate(t *testing.T, f *fixture) {
	base := now()
	parts, overtaken := f.message("k1", base), f.message("k1", base)
	parts.Segments, overtaken.Segments = 2, 2
	f.accept(t, parts, overtaken)
	due := base.Add(time.Hour)
	f.record(t, sb.Update{MessageID: parts.ID, Transition: submittedDue(base, due, "sandbox", "x-0", "")})
	carried := receipt(base, 0, sb.StatusDelivered)
	carried.CarrierIDs = []string{"y-0", "y-1"}
	carried.Event.Carrier = "sandbox"
	f.record(t, sb.Update{MessageID: overtaken.ID, Transition: carried})
	f.wantOverdue(t, due.Add(time.Minute), 10)

	f.record(t,
		sb.Update{MessageID: parts.ID, Transition: submittedDue(base, due, "sandbox", "", "x-1")},
		sb.Update{MessageID: overtaken.ID, Transition: submittedDue(base, due.Add(time.Second), "sandbox", "y-0", "y-1")},
	)
	f.wantOverdue(t, due.Add(time.Minute), 10, parts.ID, overtaken.ID)
}
