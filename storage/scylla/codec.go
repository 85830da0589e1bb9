package scylla

import (
	"encoding/json"
	"fmt"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// A message is stored as JSON in one blob column (messages.data), with its
// status beside it in a column of its own for people reading the table.
// JSON keeps every time to the nanosecond, reads in cqlsh, and lets the
// message gain fields without a schema change; its events and webhook
// failures use the API's own JSON form. The field names below are the
// stored format: never rename one. Every value carries a version ("v"): a
// binary refuses a version newer than it knows rather than read it, drop
// the fields it does not know and write it back without them.
const recordVersion = 1

type messageRecord struct {
	V               int                 `json:"v"`
	ID              string              `json:"id"`
	Key             string              `json:"key"`
	To              string              `json:"to"`
	From            string              `json:"from"`
	Body            string              `json:"body"`
	Reference       string              `json:"ref,omitempty"`
	CallbackURL     string              `json:"callback_url,omitempty"`
	Encoding        string              `json:"encoding"`
	Segments        int                 `json:"segments"`
	Status          sb.Status           `json:"status"`
	AcceptedAt      time.Time           `json:"accepted_at"`
	UpdatedAt       time.Time           `json:"updated_at"`
	ExpiresAt       time.Time           `json:"expires_at"`
	Carrier         string              `json:"carrier,omitempty"`
	CarrierIDs      []string            `json:"carrier_ids"`
	PartStatus      []sb.Status         `json:"part_status"`
	Attempts        int                 `json:"attempts,omitempty"`
	ReceiptDue      time.Time           `json:"receipt_due"`
	Events          []sb.Event          `json:"events"`
	Direction       string              `json:"direction,omitempty"`
	Partial         bool                `json:"partial,omitempty"`
	WebhookFailures []sb.WebhookFailure `json:"webhook_failures"`
	Fence           int64               `json:"fence,omitempty"`
}

func encodeMessage(m *sb.Message) ([]byte, error) {
	r := messageRecord{
		V: recordVersion, ID: m.ID, Key: m.Key, To: m.To, From: m.From, Body: m.Body,
		Reference: m.Reference, CallbackURL: m.CallbackURL, Encoding: m.Encoding, Segments: m.Segments,
		Status: m.Status, AcceptedAt: m.AcceptedAt, UpdatedAt: m.UpdatedAt, ExpiresAt: m.ExpiresAt,
		Carrier: m.Carrier, CarrierIDs: m.CarrierIDs, PartStatus: m.PartStatus, Attempts: m.Attempts,
		ReceiptDue: m.ReceiptDue, Events: m.Events, Direction: m.Direction, Partial: m.Partial,
		WebhookFailures: m.WebhookFailures, Fence: m.Fence,
	}
	b, err := json.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	return b, nil
}

func decodeMessage(b []byte) (*sb.Message, error) {
	var r messageRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	if r.V < 1 || r.V > recordVersion {
		return nil, fmt.Errorf("decode message %s: version %d, this binary knows up to %d", r.ID, r.V, recordVersion)
	}
	return &sb.Message{
		ID: r.ID, Key: r.Key, To: r.To, From: r.From, Body: r.Body, Reference: r.Reference,
		CallbackURL: r.CallbackURL, Encoding: r.Encoding, Segments: r.Segments, Status: r.Status,
		AcceptedAt: r.AcceptedAt, UpdatedAt: r.UpdatedAt, ExpiresAt: r.ExpiresAt, Carrier: r.Carrier,
		CarrierIDs: r.CarrierIDs, PartStatus: r.PartStatus, Attempts: r.Attempts, ReceiptDue: r.ReceiptDue,
		Events: r.Events, Direction: r.Direction, Partial: r.Partial, WebhookFailures: r.WebhookFailures,
		Fence: r.Fence,
	}, nil
}

// parkedRecord is a parked receipt (Update.ByCarrier): its transition.
// Its Notify is not kept: the Record that applies it queues the callbacks
// for the change as a whole.
type parkedRecord struct {
	V          int       `json:"v"`
	Event      sb.Event  `json:"event"`
	Part       int       `json:"part"`
	CarrierIDs []string  `json:"carrier_ids,omitempty"`
	ReceiptDue time.Time `json:"receipt_due"`
}

func encodeParked(u *sb.Update) ([]byte, error) {
	t := &u.Transition
	return json.Marshal(&parkedRecord{V: recordVersion, Event: t.Event, Part: t.Part, CarrierIDs: t.CarrierIDs, ReceiptDue: t.ReceiptDue})
}

func decodeParked(b []byte) (sb.Update, error) {
	var r parkedRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return sb.Update{}, fmt.Errorf("decode parked receipt: %w", err)
	}
	if r.V < 1 || r.V > recordVersion {
		return sb.Update{}, fmt.Errorf("decode parked receipt: version %d, this binary knows up to %d", r.V, recordVersion)
	}
	return sb.Update{Transition: sb.Transition{Event: r.Event, Part: r.Part, CarrierIDs: r.CarrierIDs, ReceiptDue: r.ReceiptDue}}, nil
}
