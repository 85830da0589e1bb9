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

	Carrier    string   // the carrier that accepted it
	CarrierIDs []string // one per part, from submit_sm_resp, normalised
	// PartStatus holds the final status of each part as receipts arrive;
	// the message is final when every part is.
	PartStatus []Status
	Attempts   int // submits tried, including retries

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

// DirectionInbound marks a mobile-originated message.
const DirectionInbound = "inbound"

// Event is one status transition, as shown in GET /v1/messages/{id}.
type Event struct {
	Status           Status      `json:"status"`
	At               time.Time   `json:"at"`
	Carrier          string      `json:"carrier,omitempty"`
	CarrierMessageID string      `json:"carrier_message_id,omitempty"`
	Error            *EventError `json:"error,omitempty"`
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
