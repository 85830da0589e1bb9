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
//   - submitted records the carrier ids of the parts the carrier accepted
//     (one per part, "" for a part not accepted yet); ids already recorded
//     stay, so a duplicate of a retried submit changes nothing. The message
//     is submitted once every part has an id; until then it stays pending
//     and only its missing parts are sent again;
//   - a receipt (Part >= 0) settles one part, once, and with it every
//     part the carrier gave the same id; intermediate states are ignored. One that carries CarrierIDs (its submit's record had not
//     landed when it arrived) records the submission first. When every
//     part is settled the message is final: delivered if all parts were,
//     else the first part's failure in part order;
//   - any other status (failed, expired, unknown, canceled) applies to a
//     message that is not final yet; queued only to one still pending (a
//     late queued record never takes a submitted message back);
//   - a final message never changes status again, so repeated receipts are
//     harmless.
//
// Events are kept in time order, and in causal order: clocks on different
// goroutines (a receipt read on one bind, the submit's response on another)
// can stamp a receipt a hair before the submit it answers, so a receipt
// is never placed before its message's submitted event. An event about one
// part of a long message names it (Event.Part); one that settled several
// parts at once names none.
func (m *Message) Apply(t Transition) bool {
	changed, _ := m.ApplyGiving(t)
	return changed
}

// ApplyGiving is Apply, and also returns the parts whose carrier ids t
// gave m: the ids a store indexes. Not an id for a part that has one (a
// retried submit repeats the ids of parts accepted before: those were
// indexed when given, under the carrier that gave them, and may since be
// the carrier's ids for other messages), nor "" for a part not accepted.
func (m *Message) ApplyGiving(t Transition) (changed bool, given []int) {
	ev := t.Event
	switch {
	case ev.Status == StatusSubmitted:
		return m.applySubmitted(t)
	case t.Part >= 0:
		if !ev.Status.Final() || t.Part >= maxParts {
			return false, nil
		}
		if len(t.CarrierIDs) > 0 {
			// The receipt may have overtaken the record of its submit:
			// record the submission first, so the message never ends
			// without it (a no-op when it is recorded already).
			sub := Event{Status: StatusSubmitted, At: ev.At, Carrier: ev.Carrier}
			if len(t.CarrierIDs) == 1 {
				sub.CarrierMessageID = ev.CarrierMessageID
			}
			_, given = m.applySubmitted(Transition{Event: sub, Part: -1, CarrierIDs: t.CarrierIDs, ReceiptDue: t.ReceiptDue})
		}
		m.growParts(max(m.Segments, t.Part+1))
		settled := m.settleParts(t.Part, ev.Status)
		if settled == 0 {
			return false, nil
		}
		m.settle()
		if at, ok := m.submittedAt(); ok && ev.At.Before(at) {
			ev.At = at
		}
		if len(m.PartStatus) > 1 && settled == 1 {
			ev.Part = t.Part + 1
		}
	default:
		// A late "queued" (recorded concurrently with a retry that then
		// succeeded) must not take a submitted message back to pending.
		if m.Status.Final() || (ev.Status == StatusQueued && !m.Pending()) {
			return false, nil
		}
		m.Status = ev.Status
	}
	m.insertEvent(ev)
	return true, given
}

// applySubmitted records the parts a carrier accepted (see Apply) and
// returns the parts it gave ids. All parts accepted at once make one
// event; parts accepted one try at a time make one event each, naming the
// part.
func (m *Message) applySubmitted(t Transition) (bool, []int) {
	ev := t.Event
	hadAny := m.Carrier != ""
	filled := m.mergeCarrierIDs(t.CarrierIDs)
	if len(filled) == 0 {
		// A duplicate; but a submission first recorded by a receipt that
		// overtook it has no receipt deadline yet.
		if m.Status == StatusSubmitted && m.ReceiptDue.IsZero() && !t.ReceiptDue.IsZero() {
			m.ReceiptDue = t.ReceiptDue
			return true, nil
		}
		return false, nil
	}
	if first, ok := m.firstReceiptFor(filled); ok && !first.After(ev.At) {
		ev.At = first.Add(-time.Nanosecond)
	}
	if m.Carrier == "" {
		m.Carrier = ev.Carrier
	}
	m.Attempts++
	m.growParts(len(m.CarrierIDs))
	complete := m.allSubmitted()
	if complete && !m.Status.Final() {
		m.Status = StatusSubmitted
		m.ReceiptDue = t.ReceiptDue
		m.settle()
	}
	if !hadAny && complete {
		m.insertEvent(ev)
		return true, filled
	}
	for _, i := range filled {
		pe := ev
		pe.Part, pe.CarrierMessageID = i+1, m.CarrierIDs[i]
		m.insertEvent(pe)
	}
	return true, filled
}

// mergeCarrierIDs fills the parts that have no carrier id yet from ids and
// returns the indexes it filled.
func (m *Message) mergeCarrierIDs(ids []string) []int {
	if len(ids) > maxParts {
		ids = ids[:maxParts]
	}
	var filled []int
	for i, id := range ids {
		if id == "" {
			continue
		}
		if i >= len(m.CarrierIDs) {
			m.CarrierIDs = append(m.CarrierIDs, make([]string, i+1-len(m.CarrierIDs))...)
		}
		if m.CarrierIDs[i] == "" {
			m.CarrierIDs[i] = id
			filled = append(filled, i)
		}
	}
	return filled
}

// settleParts gives part, and every other part the carrier gave the same
// id, status s, unless it is final already, and returns how many it
// settled. Some SMSCs answer every part of a long message with one id and
// send one receipt for it: the receipt is the whole message's, and the
// carrier index finds only one of its parts.
func (m *Message) settleParts(part int, s Status) int {
	id := ""
	if part < len(m.CarrierIDs) {
		id = m.CarrierIDs[part]
	}
	n := 0
	for i := range m.PartStatus {
		same := i == part || (id != "" && i < len(m.CarrierIDs) && m.CarrierIDs[i] == id)
		if same && !m.PartStatus[i].Final() {
			m.PartStatus[i] = s
			n++
		}
	}
	return n
}

// allSubmitted reports whether every part has a carrier id.
func (m *Message) allSubmitted() bool {
	if len(m.CarrierIDs) == 0 || len(m.CarrierIDs) < m.Segments {
		return false
	}
	for _, id := range m.CarrierIDs {
		if id == "" {
			return false
		}
	}
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

// firstReceiptFor returns the time of the earliest receipt event of the
// parts given (by the carrier message id it carries), if any: a receipt
// that overtook the record of its submit. A receipt of another part,
// accepted earlier, says nothing of when these were submitted.
func (m *Message) firstReceiptFor(parts []int) (time.Time, bool) {
	for _, e := range m.Events {
		if !e.Status.Final() || e.CarrierMessageID == "" {
			continue
		}
		for _, i := range parts {
			if m.CarrierIDs[i] == e.CarrierMessageID {
				return e.At, true
			}
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
