package switchboard

import (
	"slices"
	"time"
)

// Apply changes m by t and reports whether anything changed. It is the one
// place where statuses are computed, so every store agrees. It tolerates
// transitions arriving out of order, because a receipt can be handled (on
// another bind, or another node) before the submit that caused it is
// recorded:
//   - submitted records the carrier and its ids once; later ones are
//     duplicates of a retried submit and are ignored;
//   - a receipt (Part >= 0) settles one part, once; intermediate states are
//     ignored. One that carries CarrierIDs (its submit's record had not
//     landed when it arrived) records the submission first if it is
//     missing. When every part is settled the message is final: delivered
//     if all parts were, else the first part's failure in part order;
//   - any other status (failed, expired) applies to a message that is not
//     final yet; queued only to one still pending (a late queued record
//     never takes a submitted message back);
//   - a final message never changes status again, so repeated receipts are
//     harmless.
//
// Events are kept in time order, and in causal order: clocks on different
// goroutines (a receipt read on one bind, the submit's response on another)
// can stamp a receipt a hair before the submit it answers, so a receipt
// is never placed before its message's submitted event.
func (m *Message) Apply(t Transition) bool {
	ev := t.Event
	switch {
	case ev.Status == StatusSubmitted:
		if m.Carrier != "" {
			return false // recorded already (Carrier, not CarrierIDs: some stores read an empty list back as null)
		}
		if first, ok := m.firstReceiptAt(); ok && !first.After(ev.At) {
			ev.At = first.Add(-time.Nanosecond)
		}
		m.Carrier = ev.Carrier
		m.CarrierIDs = append([]string{}, t.CarrierIDs...)
		m.Attempts++
		m.growParts(len(t.CarrierIDs))
		if !m.Status.Final() {
			m.Status = StatusSubmitted
			m.settle()
		}
	case t.Part >= 0:
		if !ev.Status.Final() || t.Part >= maxParts {
			return false
		}
		if m.Carrier == "" && len(t.CarrierIDs) > 0 {
			// The receipt overtook the record of its submit: record the
			// submission first, so the message never ends without it.
			m.Apply(Transition{Event: Event{Status: StatusSubmitted, At: ev.At, Carrier: ev.Carrier,
				CarrierMessageID: ev.CarrierMessageID}, Part: -1, CarrierIDs: t.CarrierIDs})
		}
		m.growParts(max(m.Segments, t.Part+1))
		if m.PartStatus[t.Part].Final() {
			return false
		}
		m.PartStatus[t.Part] = ev.Status
		m.settle()
		if at, ok := m.submittedAt(); ok && ev.At.Before(at) {
			ev.At = at
		}
	default:
		// A late "queued" (recorded concurrently with a retry that then
		// succeeded) must not take a submitted message back to pending.
		if m.Status.Final() || (ev.Status == StatusQueued && !m.Pending()) {
			return false
		}
		m.Status = ev.Status
	}
	m.insertEvent(ev)
	return true
}

// submittedAt returns the time of the submitted event, if there is one.
func (m *Message) submittedAt() (time.Time, bool) {
	for _, e := range m.Events {
		if e.Status == StatusSubmitted {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// firstReceiptAt returns the time of the earliest receipt event, if any:
// events after the submitted one that carry a carrier message id.
func (m *Message) firstReceiptAt() (time.Time, bool) {
	for _, e := range m.Events {
		if e.Status.Final() && e.CarrierMessageID != "" {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// maxParts bounds a receipt's part index, so a bad index cannot make a
// message allocate without limit.
const maxParts = 255

func (m *Message) growParts(n int) {
	if len(m.PartStatus) < n {
		m.PartStatus = append(m.PartStatus, make([]Status, n-len(m.PartStatus))...)
	}
}

// settle makes the message final once every part has a final status.
func (m *Message) settle() {
	if m.Status.Final() || len(m.PartStatus) == 0 {
		return
	}
	result := StatusDelivered
	for _, s := range m.PartStatus {
		if !s.Final() {
			return
		}
		if s != StatusDelivered && result == StatusDelivered {
			result = s
		}
	}
	m.Status = result
}

func (m *Message) insertEvent(ev Event) {
	i := len(m.Events)
	for i > 0 && m.Events[i-1].At.After(ev.At) {
		i--
	}
	m.Events = slices.Insert(m.Events, i, ev)
	if ev.At.After(m.UpdatedAt) {
		m.UpdatedAt = ev.At
	}
}

// Pending reports whether m still waits to be submitted: accepted or queued.
func (m *Message) Pending() bool {
	return m.Status == StatusAccepted || m.Status == StatusQueued
}
