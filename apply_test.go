package switchboard_test

import (
	"strings"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

func at(s int) time.Time { return time.Unix(1_700_000_000+int64(s), 0).UTC() }

func submitted(ids ...string) sb.Transition {
	return sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(2), Carrier: "c"}, Part: -1, CarrierIDs: ids}
}

func receiptFor(part int, s sb.Status, sec int) sb.Transition {
	return sb.Transition{Event: sb.Event{Status: s, At: at(sec)}, Part: part}
}

func newMsg(segments int) *sb.Message {
	return &sb.Message{ID: "msg_1", Status: sb.StatusAccepted, Segments: segments, AcceptedAt: at(0),
		Events: []sb.Event{{Status: sb.StatusAccepted, At: at(0)}}}
}

func TestApplyInOrder(t *testing.T) {
	m := newMsg(2)
	if !m.Apply(submitted("a", "b")) || m.Status != sb.StatusSubmitted || m.Carrier != "c" {
		t.Fatalf("after submit: %+v", m)
	}
	m.Apply(receiptFor(1, sb.StatusDelivered, 3))
	if m.Status != sb.StatusSubmitted {
		t.Fatalf("one of two parts delivered: status %s, want submitted", m.Status)
	}
	m.Apply(receiptFor(0, sb.StatusUndeliverable, 4))
	if m.Status != sb.StatusUndeliverable {
		t.Fatalf("status %s, want undeliverable", m.Status)
	}
	if m.Apply(receiptFor(0, sb.StatusDelivered, 5)) {
		t.Fatal("a repeated receipt changed a final message")
	}
	if len(m.Events) != 4 {
		t.Fatalf("%d events, want 4", len(m.Events))
	}
}

func TestApplyReceiptBeforeSubmitted(t *testing.T) {
	m := newMsg(1)
	m.Apply(receiptFor(0, sb.StatusDelivered, 3))
	if m.Status != sb.StatusDelivered {
		t.Fatalf("status %s, want delivered", m.Status)
	}
	if !m.Apply(submitted("a")) || m.Carrier != "c" || m.CarrierIDs[0] != "a" {
		t.Fatalf("late submitted not recorded: %+v", m)
	}
	if m.Status != sb.StatusDelivered {
		t.Fatalf("late submitted changed a final status to %s", m.Status)
	}
	for i := 1; i < len(m.Events); i++ {
		if m.Events[i].At.Before(m.Events[i-1].At) {
			t.Fatalf("events out of order: %+v", m.Events)
		}
	}
}

func TestApplyIgnoresIntermediateAndLateStatuses(t *testing.T) {
	m := newMsg(1)
	m.Apply(submitted("a"))
	if m.Apply(receiptFor(0, "", 3)) {
		t.Fatal("intermediate receipt changed the message")
	}
	if m.Apply(receiptFor(9999, sb.StatusDelivered, 3)) {
		t.Fatal("absurd part index accepted")
	}
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusFailed, At: at(4)}, Part: -1})
	if m.Status != sb.StatusFailed || !m.Status.Final() || m.Pending() {
		t.Fatalf("status %s", m.Status)
	}
	if m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusQueued, At: at(5)}, Part: -1}) {
		t.Fatal("queued applied to a final message")
	}
}

// A receipt stamped a moment before its submit (clocks on two goroutines)
// still comes after it in the events, whichever is recorded first.
func TestApplyKeepsCausalOrder(t *testing.T) {
	early := sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(1), CarrierMessageID: "a"}, Part: 0}
	for name, order := range map[string][]sb.Transition{
		"receipt first": {early, submitted("a")},
		"submit first":  {submitted("a"), early},
	} {
		m := newMsg(1)
		for _, tr := range order {
			m.Apply(tr)
		}
		var got []sb.Status
		for _, e := range m.Events {
			got = append(got, e.Status)
		}
		if len(got) != 3 || got[1] != sb.StatusSubmitted || got[2] != sb.StatusDelivered {
			t.Errorf("%s: events %v, want accepted, submitted, delivered", name, got)
		}
	}
}

func TestApplyLateQueuedDoesNotUndoSubmitted(t *testing.T) {
	m := newMsg(1)
	m.Apply(submitted("a"))
	if m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusQueued, At: at(3)}, Part: -1}) {
		t.Fatal("a late queued changed a submitted message")
	}
	if m.Status != sb.StatusSubmitted || m.Pending() {
		t.Fatalf("status %s, pending %v", m.Status, m.Pending())
	}
}

// A receipt that overtook its submit's record carries the carrier ids:
// the submission is recorded with it, so a crash before the submit's own
// record lands cannot leave a delivered message without its carrier.
func TestApplyReceiptCarriesSubmission(t *testing.T) {
	m := newMsg(1)
	r := sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(3), Carrier: "c", CarrierMessageID: "a"}, Part: 0, CarrierIDs: []string{"a"}}
	if !m.Apply(r) || m.Status != sb.StatusDelivered || m.Carrier != "c" || len(m.CarrierIDs) != 1 || m.Attempts != 1 {
		t.Fatalf("after the receipt: %+v", m)
	}
	if len(m.Events) != 3 || m.Events[1].Status != sb.StatusSubmitted || m.Events[2].Status != sb.StatusDelivered {
		t.Fatalf("events %+v, want accepted, submitted, delivered", m.Events)
	}
	if m.Apply(submitted("a")) {
		t.Fatal("the submit's own record, landing later, changed the message again")
	}
}

// A receipt for one part of a long message that overtook its submit's
// record records the submission with the receipt's deadline: if the
// submit's own record never lands (a crash) and the other part's receipt
// is lost, the message still ends at the deadline.
func TestApplyReceiptCarriesASubmissionDeadline(t *testing.T) {
	m := newMsg(2)
	due := at(60)
	r := sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(3), Carrier: "c"}, Part: 0,
		CarrierIDs: []string{"a", "b"}, ReceiptDue: due}
	if !m.Apply(r) || m.Status != sb.StatusSubmitted || m.Pending() {
		t.Fatalf("after the receipt: status %s pending %v", m.Status, m.Pending())
	}
	if !m.ReceiptDue.Equal(due) {
		t.Fatalf("receipt due %v, want %v", m.ReceiptDue, due)
	}
}

// An update that passes through submitted to a final status (a receipt
// carrying its submission) queues the submitted callback first, then the
// final one, with IDs in that order.
func TestStatusCallbacksPassingSubmitted(t *testing.T) {
	m := newMsg(1)
	m.Key, m.CallbackURL = "k", "https://hooks.example.com/sms"
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(3), Carrier: "c"}, Part: 0, CarrierIDs: []string{"a"}})
	n := &sb.Notify{EventID: "evt_01", Statuses: sb.DefaultCallbackStatuses, At: at(3)}
	cbs := n.StatusCallbacks(sb.StatusAccepted, m)
	if len(cbs) != 2 || cbs[0].ID >= cbs[1].ID {
		t.Fatalf("callbacks %+v, want submitted then delivered in ID order", cbs)
	}
	for i, want := range []string{`"status":"submitted"`, `"status":"delivered"`} {
		if !strings.Contains(string(cbs[i].Data), want) || cbs[i].Endpoint != "https://hooks.example.com:443" {
			t.Errorf("callback %d: %s at %s, want %s", i, cbs[i].Data, cbs[i].Endpoint, want)
		}
	}
	only, _ := sb.NewStatusSet(sb.StatusDelivered)
	n.Statuses = only
	if cbs := n.StatusCallbacks(sb.StatusAccepted, m); len(cbs) != 1 || cbs[0].ID != "evt_01" {
		t.Fatalf("a key wanting only delivered: %+v", cbs)
	}
}

// A long message the carrier took only part of before it failed was never
// submitted: its failure is reported alone, without a submitted callback.
func TestStatusCallbacksPartlySubmittedThenFailed(t *testing.T) {
	m := newMsg(2)
	m.Key, m.CallbackURL = "k", "https://hooks.example.com/sms"
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(2), Carrier: "c"}, Part: -1, CarrierIDs: []string{"a", ""}})
	before := m.Status
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusFailed, At: at(3), Error: &sb.EventError{Code: "smpp_0x00000045"}}, Part: -1})
	n := &sb.Notify{EventID: "evt_01", Statuses: sb.DefaultCallbackStatuses, At: at(3)}
	cbs := n.StatusCallbacks(before, m)
	if len(cbs) != 1 || !strings.Contains(string(cbs[0].Data), `"status":"failed"`) {
		t.Fatalf("callbacks %+v, want the failure alone", cbs)
	}
}

// The key's endpoint, when the writer has it, is taken as given; without
// it the URL is parsed; a message's own URL is always parsed.
func TestStatusCallbacksKeyEndpoint(t *testing.T) {
	delivered := func(ownURL string) *sb.Message {
		m := newMsg(1)
		m.Key, m.CallbackURL = "k", ownURL
		m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(3), Carrier: "c"}, Part: 0, CarrierIDs: []string{"a"}})
		return m
	}
	only, _ := sb.NewStatusSet(sb.StatusDelivered)
	const keyURL, keyEndpoint = "https://Hooks.Example.com/sms", "https://hooks.example.com:443"
	for _, tc := range []struct {
		name              string
		ownURL, endpoint  string
		wantURL, wantEP   string
		fromPolicy, given bool
	}{
		{name: "parsed", wantURL: keyURL, wantEP: keyEndpoint},
		{name: "given", endpoint: "https://parsed-once:443", wantURL: keyURL, wantEP: "https://parsed-once:443"},
		{name: "given by the policy", endpoint: "https://parsed-once:443", wantURL: keyURL, wantEP: "https://parsed-once:443", fromPolicy: true},
		{name: "own URL", ownURL: "http://own.example.com:8080/x", endpoint: "https://parsed-once:443",
			wantURL: "http://own.example.com:8080/x", wantEP: "http://own.example.com:8080"},
	} {
		n := &sb.Notify{EventID: "evt_01", DefaultURL: keyURL, DefaultEndpoint: tc.endpoint, Statuses: only, At: at(3)}
		if tc.fromPolicy {
			n = &sb.Notify{EventID: "evt_01", At: at(3), Policy: func(key string) sb.KeyCallbacks {
				return sb.KeyCallbacks{URL: keyURL, Endpoint: tc.endpoint, Statuses: only}
			}}
		}
		cbs := n.StatusCallbacks(sb.StatusAccepted, delivered(tc.ownURL))
		if len(cbs) != 1 || cbs[0].URL != tc.wantURL || cbs[0].Endpoint != tc.wantEP {
			t.Errorf("%s: %+v, want one callback to %s at %s", tc.name, cbs, tc.wantURL, tc.wantEP)
		}
	}
}

func TestStatusSetStatuses(t *testing.T) {
	set, ok := sb.NewStatusSet(sb.StatusFailed, sb.StatusSubmitted)
	if got := set.Statuses(); !ok || len(got) != 2 || got[0] != sb.StatusSubmitted || got[1] != sb.StatusFailed {
		t.Fatalf("Statuses() = %v, want [submitted failed]", got)
	}
}

func TestApplyPartialSubmission(t *testing.T) {
	m := newMsg(3)
	due := at(100)
	first := sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(2), Carrier: "c"}, Part: -1,
		CarrierIDs: []string{"a", "", ""}, ReceiptDue: due}
	if !m.Apply(first) || m.Status != sb.StatusAccepted || !m.Pending() {
		t.Fatalf("one of three parts accepted: status %s, pending %v; want still pending", m.Status, m.Pending())
	}
	if m.Apply(first) {
		t.Fatal("the same part recorded twice")
	}
	rest := sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(3), Carrier: "c"}, Part: -1,
		CarrierIDs: []string{"x", "b", "c"}, ReceiptDue: due}
	if !m.Apply(rest) || m.Status != sb.StatusSubmitted || m.Pending() || !m.ReceiptDue.Equal(due) {
		t.Fatalf("all parts accepted: %+v", m)
	}
	if got := m.CarrierIDs; got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("carrier ids %v: an accepted part's id was replaced", got)
	}
	var parts []int
	for _, e := range m.Events {
		if e.Status == sb.StatusSubmitted {
			parts = append(parts, e.Part)
		}
	}
	if len(parts) != 3 || parts[0] != 1 || parts[1] != 2 || parts[2] != 3 {
		t.Fatalf("submitted events name parts %v, want [1 2 3]", parts)
	}
	m.Apply(receiptFor(1, sb.StatusUndeliverable, 5))
	if e := m.Events[len(m.Events)-1]; e.Part != 2 {
		t.Fatalf("receipt event names part %d, want 2", e.Part)
	}
	ps := m.Parts()
	if len(ps) != 3 || ps[1].Status != sb.StatusUndeliverable || ps[0].Status != sb.StatusSubmitted || ps[2].CarrierMessageID != "c" {
		t.Fatalf("parts %+v", ps)
	}
}

func TestApplyWholeSubmissionIsOneEvent(t *testing.T) {
	m := newMsg(2)
	m.Apply(submitted("a", "b"))
	if n := len(m.Events); n != 2 || m.Events[1].Part != 0 {
		t.Fatalf("events %+v, want accepted and one submitted for the whole message", m.Events)
	}
}

func TestMessageError(t *testing.T) {
	m := newMsg(1)
	if m.Error() != nil {
		t.Fatal("a pending message has an error")
	}
	m.Apply(submitted("a"))
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusUndeliverable, At: at(3), Error: &sb.EventError{Description: "UNDELIV"}}, Part: 0})
	if e := m.Error(); e == nil || e.Code != "undeliverable" || e.Description != "UNDELIV" {
		t.Fatalf("error %+v, want the status as code with the carrier's word", e)
	}
	d := newMsg(1)
	d.Apply(submitted("a"))
	d.Apply(receiptFor(0, sb.StatusDelivered, 3))
	if d.Error() != nil {
		t.Fatal("a delivered message has an error")
	}
	f := newMsg(1)
	f.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusFailed, At: at(1), Error: &sb.EventError{Code: "smpp_0x0000000B"}}, Part: -1})
	if e := f.Error(); e == nil || e.Code != "smpp_0x0000000B" {
		t.Fatalf("error %+v", e)
	}
}

func TestApplyUnknownEndsSubmitted(t *testing.T) {
	m := newMsg(1)
	m.Apply(submitted("a"))
	if !m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusUnknown, At: at(9)}, Part: -1}) || !m.Status.Final() {
		t.Fatalf("status %s, want unknown (final)", m.Status)
	}
	if m.Apply(receiptFor(0, sb.StatusDelivered, 10)) && m.Status != sb.StatusUnknown {
		t.Fatalf("a late receipt changed a final unknown to %s", m.Status)
	}
}

// An SMSC that answers every part of a long message with one id sends one
// receipt for them all: the receipt settles every part with that id, and
// names none of them.
func TestApplyReceiptSettlesPartsSharingAnID(t *testing.T) {
	m := newMsg(3)
	m.Apply(submitted("s", "s", "t"))
	if !m.Apply(receiptFor(1, sb.StatusDelivered, 3)) {
		t.Fatal("receipt for a shared id changed nothing")
	}
	if ps := m.PartStatus; ps[0] != sb.StatusDelivered || ps[1] != sb.StatusDelivered || ps[2] != "" {
		t.Fatalf("part statuses %q, want the two parts with id s delivered", ps)
	}
	if e := m.Events[len(m.Events)-1]; e.Part != 0 {
		t.Fatalf("receipt for two parts names part %d, want none", e.Part)
	}
	if m.Apply(receiptFor(0, sb.StatusUndeliverable, 4)) {
		t.Fatal("a second receipt for the shared id changed settled parts")
	}
	m.Apply(receiptFor(2, sb.StatusDelivered, 5))
	if m.Status != sb.StatusDelivered {
		t.Fatalf("status %s, want delivered", m.Status)
	}
	if e := m.Events[len(m.Events)-1]; e.Part != 3 {
		t.Fatalf("receipt for the last part names part %d, want 3", e.Part)
	}
}

// A part accepted on a later try is recorded as submitted when it was,
// not before an earlier part's receipt: only a receipt of the parts a
// submission gives ids (one that overtook it) moves its event back.
func TestApplyLaterPartIsNotBackdatedBeforeAnotherPartsReceipt(t *testing.T) {
	m := newMsg(2)
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(2), Carrier: "c"}, Part: -1, CarrierIDs: []string{"a", ""}})
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(3), CarrierMessageID: "a"}, Part: 0})
	m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(40), Carrier: "c"}, Part: -1, CarrierIDs: []string{"a", "b"}})
	var second sb.Event
	for _, e := range m.Events {
		if e.Status == sb.StatusSubmitted && e.Part == 2 {
			second = e
		}
	}
	if !second.At.Equal(at(40)) {
		t.Fatalf("part 2 submitted at %v, want %v: events %+v", second.At, at(40), m.Events)
	}

	// A receipt that overtook its own submit still moves it back.
	o := newMsg(1)
	o.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at(3), CarrierMessageID: "z"}, Part: 0})
	o.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at(5), Carrier: "c"}, Part: -1, CarrierIDs: []string{"z"}})
	for i := 1; i < len(o.Events); i++ {
		if o.Events[i].At.Before(o.Events[i-1].At) || (o.Events[i].Status == sb.StatusSubmitted && i != 1) {
			t.Fatalf("the submit its receipt overtook is not placed before it: %+v", o.Events)
		}
	}
}
