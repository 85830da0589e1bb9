package switchboard

// Status is where a message is in its life. The order of the constants is
// the order a message moves through them; every status from delivered on is
// final. StatusReceived, for inbound messages, is final too.
type Status string

const (
	StatusAccepted      Status = "accepted"      // durable, not yet handed to a carrier
	StatusQueued        Status = "queued"        // waiting for a window, a token or a healthy carrier
	StatusSubmitted     Status = "submitted"     // the carrier answered submit_sm with an id
	StatusDelivered     Status = "delivered"     // receipt: DELIVRD
	StatusUndeliverable Status = "undeliverable" // receipt: UNDELIV, DELETED or UNKNOWN
	StatusExpired       Status = "expired"       // receipt: EXPIRED, or validity passed before submit
	StatusRejected      Status = "rejected"      // receipt: REJECTD
	StatusFailed        Status = "failed"        // the gateway gave up: permanent carrier error, attempts exhausted
	// StatusUnknown: submitted, but no receipt came within the carrier's
	// receipt timeout; the carrier may or may not have delivered it.
	StatusUnknown Status = "unknown"
	// StatusCanceled: an operator cancelled it while it was still queued.
	StatusCanceled Status = "canceled"

	// StatusReceived is the one status of an inbound (mobile-originated)
	// message: stored as it arrived, nothing follows.
	StatusReceived Status = "received"
)

// Final reports whether no further transition can follow s.
func (s Status) Final() bool {
	switch s {
	case StatusDelivered, StatusUndeliverable, StatusExpired, StatusRejected, StatusFailed,
		StatusUnknown, StatusCanceled, StatusReceived:
		return true
	}
	return false
}
