package switchboard

import "time"

// Receipt is a carrier's delivery report for one submitted part, already
// decoded from its wire form. It carries the carrier's message id, not ours:
// correlation goes through the store's carrier-id index, because a receipt may
// arrive on any bind of the carrier.
type Receipt struct {
	// Carrier is the configured carrier name the receipt arrived from.
	Carrier string
	// CarrierMessageID is normalised with the carrier's id format, so it
	// compares equal to the id normalised from submit_sm_resp.
	CarrierMessageID string
	// Status is the final status this receipt moves the message to, or "" for
	// an intermediate report (ENROUTE, ACCEPTD).
	Status Status
	// State is the carrier's own word (DELIVRD, UNDELIV, ...), kept for the record.
	State string
	// ErrorCode is the carrier's error code (network_error_code TLV or the
	// text's err: field), "" when none was given.
	ErrorCode   string
	SubmittedAt time.Time // the carrier's "submit date", zero if absent
	DoneAt      time.Time // the carrier's "done date", zero if absent
	ReceivedAt  time.Time // when the gateway read it
}

// InboundPart is one mobile-originated SMS as it came off the wire. A long
// message arrives as several parts sharing Concat.Ref; reassembly happens
// above the carrier layer, which only reports what each part says.
type InboundPart struct {
	Carrier    string
	From, To   string
	DataCoding byte
	// Payload is the user data with any UDH removed, still in DataCoding.
	Payload []byte
	// Concat is set when the part belongs to a concatenated message (from a
	// UDH with an 8- or 16-bit reference, or from the SAR TLVs).
	Concat     *Concat
	ReceivedAt time.Time
}

// Concat identifies one part of a concatenated message.
type Concat struct {
	Ref   uint16
	Total uint8
	Seq   uint8 // 1-based
}

// Event is the event a receipt records. It is stamped when the gateway
// read the receipt: the receipt's own done date has minute precision and
// the carrier's clock and time zone. A receipt that did not deliver says
// why in the event's error: the carrier's error code and its state word.
func (r *Receipt) Event() Event {
	ev := Event{Status: r.Status, At: r.ReceivedAt, Carrier: r.Carrier, CarrierMessageID: r.CarrierMessageID}
	if r.Status != StatusDelivered {
		ev.Error = &EventError{Code: r.ErrorCode, Description: r.State}
	}
	return ev
}
