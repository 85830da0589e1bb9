package receipt

import "strings"

// State is the final (or intermediate) message state an SMSC reports.
type State string

// The seven-letter words of SMPP 3.4 Appendix B, plus ENROUTE, which some
// SMSCs send for intermediate notifications.
const (
	Delivered     State = "DELIVRD"
	Expired       State = "EXPIRED"
	Deleted       State = "DELETED"
	Undeliverable State = "UNDELIV"
	Accepted      State = "ACCEPTD"
	Unknown       State = "UNKNOWN"
	Rejected      State = "REJECTD"
	Enroute       State = "ENROUTE"
)

// StateFromMessageState maps the SMPP message_state TLV value (1 ENROUTE,
// 2 DELIVERED, 3 EXPIRED, 4 DELETED, 5 UNDELIVERABLE, 6 ACCEPTED, 7 UNKNOWN,
// 8 REJECTED) to a State. Values outside 1–8 (SMPP 5.0's SCHEDULED and
// SKIPPED, vendor values) map to Unknown, because a caller holding such a
// value knows no more than that.
func StateFromMessageState(v byte) State {
	switch v {
	case 1:
		return Enroute
	case 2:
		return Delivered
	case 3:
		return Expired
	case 4:
		return Deleted
	case 5:
		return Undeliverable
	case 6:
		return Accepted
	case 8:
		return Rejected
	default:
		return Unknown
	}
}

// MessageState is the inverse of StateFromMessageState. States without a TLV
// value (empty, or words the spec does not define) give 7 (UNKNOWN), so the
// simulator never sends a value outside the spec's range.
func (s State) MessageState() byte {
	switch s {
	case Enroute:
		return 1
	case Delivered:
		return 2
	case Expired:
		return 3
	case Deleted:
		return 4
	case Undeliverable:
		return 5
	case Accepted:
		return 6
	case Rejected:
		return 8
	default:
		return 7
	}
}

// Final reports whether the state ends the message's life. ENROUTE and
// ACCEPTD are intermediate: the SMSC may still report the outcome. UNKNOWN is
// final because SMSCs send it when they have given up tracking the message,
// and no further receipt will come. Words this package does not know are
// final too, for the same reason; the empty State (no stat field) is not,
// because nothing was reported.
func (s State) Final() bool {
	switch s {
	case "", Enroute, Accepted:
		return false
	default:
		return true
	}
}

// normalizeState upper-cases a stat value and folds the long spellings some
// SMSCs use onto the spec's seven-letter words, so callers can compare with
// the constants. Known words come back as the constants, which avoids
// keeping a reference into the receipt text.
func normalizeState(v string) State {
	if v == "" {
		return ""
	}
	u := strings.ToUpper(v)
	switch u {
	case string(Delivered), "DELIVERED":
		return Delivered
	case string(Expired):
		return Expired
	case string(Deleted):
		return Deleted
	case string(Undeliverable), "UNDELIVERABLE", "UNDELIVERED":
		return Undeliverable
	case string(Accepted), "ACCEPTED":
		return Accepted
	case string(Unknown):
		return Unknown
	case string(Rejected), "REJECTED":
		return Rejected
	case string(Enroute):
		return Enroute
	}
	return State(u)
}
