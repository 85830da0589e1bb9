package switchboard

import "time"

// Message is one SMS a client asked us to send, with everything that
// happened to it. Its ID is "msg_" and a ULID, so IDs sort in acceptance
// order, which the pending listing and the per-destination order rely on.
type Message struct {
	ID        string
	Key       string // the API key that sent it
	To, From  string
	Body      string
	Reference string // the client's own reference, echoed back
	// CallbackURL overrides the key's default for this message's events.
	CallbackURL string

	Encoding string // "gsm7" or "ucs2"
	Segments int

	Status     Status
	AcceptedAt time.Time
	UpdatedAt  time.Time
	// ExpiresAt is when the validity runs out: a message not submitted by
	// then ends expired.
	ExpiresAt time.Time

	Carrier string // the carrier that accepted it (its first part)
	// CarrierIDs has one id per part, from submit_sm_resp, normalised; ""
	// for a part the carrier has not accepted yet (a long message whose
	// later part failed is sent again from that part on).
	CarrierIDs []string
	// PartStatus holds the final status of each part as receipts arrive;
	// the message is final when every part is.
	PartStatus []Status
	Attempts   int // submits tried, including retries
	// ReceiptDue is when a submitted message whose receipt has not come
	// ends unknown (the carrier's receipt timeout after the submit).
	ReceiptDue time.Time
	// Fence is the fencing token of the node that accepted the message,
	// in a cluster (MessageStore.RaiseFence); 0 on a single node.
	Fence int64

	Events []Event

	// Direction is DirectionInbound for a mobile-originated message a
	// carrier delivered to one of the key's numbers; "" is outbound.
	Direction string
	// Partial marks an inbound message assembled with parts missing: the
	// rest did not arrive within the reassembly timeout.
	Partial bool
	// WebhookFailures lists the callbacks about this message that were
	// given up on, so the record shows what the customer never heard.
	WebhookFailures []WebhookFailure
}

// HasWebhookFailure reports whether m records the giving up of the
// callback with this event ID, so recording it again can be skipped.
func (m *Message) HasWebhookFailure(eventID string) bool {
	for i := range m.WebhookFailures {
		if m.WebhookFailures[i].EventID == eventID {
			return true
		}
	}
	return false
}

// Directions of a message: DirectionInbound marks a mobile-originated
// message; an outbound one has "" (shown as DirectionOutbound).
const (
	DirectionInbound  = "inbound"
	DirectionOutbound = "outbound"
)

// Event is one status transition, as shown in GET /v1/messages/{id}.
type Event struct {
	Status           Status      `json:"status"`
	At               time.Time   `json:"at"`
	Carrier          string      `json:"carrier,omitempty"`
	CarrierMessageID string      `json:"carrier_message_id,omitempty"`
	Error            *EventError `json:"error,omitempty"`
	// Part is the 1-based part of a long message the event is about (a
	// receipt, or one part accepted on its own); 0: the whole message.
	Part int `json:"part,omitempty"`
}

// EventError says why a message failed or was not delivered: our code or
// the carrier's (an SMPP command_status or a receipt's err: field).
type EventError struct {
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
}

// Day is the UTC date a message was accepted on, the second half of the
// (key, day) partition that message listings use.
func (m *Message) Day() string { return m.AcceptedAt.UTC().Format("2006-01-02") }

// Clone returns a deep copy of m, so that changing one never changes the
// other; nil slices stay nil. Stores hand out copies of what they hold.
func (m *Message) Clone() *Message {
	c := *m
	if m.CarrierIDs != nil {
		c.CarrierIDs = append(make([]string, 0, len(m.CarrierIDs)), m.CarrierIDs...)
	}
	if m.PartStatus != nil {
		c.PartStatus = append(make([]Status, 0, len(m.PartStatus)), m.PartStatus...)
	}
	if m.Events != nil {
		// Room for one more: a copy is mostly taken to apply a transition
		// to, which adds an event.
		c.Events = append(make([]Event, 0, len(m.Events)+1), m.Events...)
		for i, e := range c.Events {
			if e.Error != nil {
				errCopy := *e.Error
				c.Events[i].Error = &errCopy
			}
		}
	}
	if m.WebhookFailures != nil {
		c.WebhookFailures = append(make([]WebhookFailure, 0, len(m.WebhookFailures)), m.WebhookFailures...)
	}
	return &c
}

// PartState is one part of a message as the API shows it.
type PartState struct {
	Index            int    `json:"index"` // 1-based, as in the concatenation header
	CarrierMessageID string `json:"carrier_message_id,omitempty"`
	Status           Status `json:"status"`
}

// Parts returns the state of each part: the status its receipt gave it,
// else submitted once the carrier accepted it, else the message's own
// status (accepted, queued, or the final status it ended with unsent).
func (m *Message) Parts() []PartState {
	n := max(m.Segments, len(m.CarrierIDs), len(m.PartStatus))
	out := make([]PartState, n)
	for i := range out {
		p := PartState{Index: i + 1, Status: m.Status}
		if i < len(m.CarrierIDs) && m.CarrierIDs[i] != "" {
			p.CarrierMessageID, p.Status = m.CarrierIDs[i], StatusSubmitted
		}
		if i < len(m.PartStatus) && m.PartStatus[i] != "" {
			p.Status = m.PartStatus[i]
		}
		out[i] = p
	}
	return out
}

// Error says why a message ended unsuccessfully: the error of the event
// that made it final, or, where that event named none (a receipt without
// an error code), a code for the status itself. Nil while the message is
// not final, and for delivered or received messages.
func (m *Message) Error() *EventError { return m.errorOf(m.Status) }

// errorOf is Error for the status s (a callback's, which may be older
// than the message's status).
func (m *Message) errorOf(s Status) *EventError {
	if !s.Final() || s == StatusDelivered || s == StatusReceived {
		return nil
	}
	for i := len(m.Events) - 1; i >= 0; i-- {
		e := m.Events[i]
		if e.Status != s {
			continue
		}
		if e.Error != nil && e.Error.Code != "" {
			return e.Error
		}
		why := &EventError{Code: string(s)}
		if e.Error != nil {
			why.Description = e.Error.Description
		}
		return why
	}
	return &EventError{Code: string(s)}
}
