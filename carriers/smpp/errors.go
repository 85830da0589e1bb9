package smpp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/linxGnu/gosmpp/data"
)

// Reasons a submit did not get an id. All of them are retriable: the message
// may go again on this bind later or on another bind or carrier now.
var (
	ErrNotBound        = errors.New("smpp: not bound")
	ErrConnectionLost  = errors.New("smpp: connection lost with the submit in flight")
	ErrResponseTimeout = errors.New("smpp: no submit_sm_resp within the response timeout")
	ErrClosed          = errors.New("smpp: client closed")
)

// ConnectionLostError is ErrConnectionLost for one connection. The parts
// in flight on a connection when it is lost carry the same Conn, so a
// caller can count the loss once, however many parts it had in flight.
type ConnectionLostError struct {
	// Conn names the connection: random, so connections of different
	// clients (and processes) are told apart too.
	Conn uint64
	// Answered is whether the connection had answered a submit before it
	// was lost. One that never did (an SMSC that takes binds and drops
	// them on the first submit) tells of every submit, not of one
	// connection.
	Answered bool
	Cause    error
}

func (e *ConnectionLostError) Error() string {
	return ErrConnectionLost.Error() + ": " + e.Cause.Error()
}

// Is makes errors.Is(err, ErrConnectionLost) true. The cause is not
// unwrapped: a connection lost for ErrClosed (a bind stopping with parts
// unanswered) is still a lost connection, the part's fate unknown.
func (e *ConnectionLostError) Is(target error) bool { return target == ErrConnectionLost }

// SubmitError is a submit_sm_resp (or generic_nack) with a non-zero status.
type SubmitError struct {
	Status data.CommandStatusType
	// Retriable is true for statuses that say "not now" rather than "never":
	// throttled, message queue full, system error.
	Retriable bool
	// RetryAfter is the pause this bind itself now keeps before its next
	// submit (after throttling); a caller that retries elsewhere may ignore it.
	RetryAfter time.Duration
}

func (e *SubmitError) Error() string {
	kind := "permanent"
	if e.Retriable {
		kind = "retriable"
	}
	return fmt.Sprintf("smpp: submit_sm_resp %s (0x%08X, %s)", e.Status, uint32(e.Status), kind)
}

// Retriable reports whether a submit that failed with err may be tried again:
// every error except a SubmitError with a permanent status.
func Retriable(err error) bool {
	if err == nil {
		return false
	}
	var se *SubmitError
	if errors.As(err, &se) {
		return se.Retriable
	}
	return true
}

// Statuses says which command_status values of a submit_sm_resp (or
// generic_nack) are retriable — "not now": the message may go again later
// or elsewhere — and which are permanent — "never": the message fails with
// the carrier's code. It maps a status to true (retriable) or false
// (permanent); statuses it does not name follow DefaultRetriable. Carriers
// differ (some answer a full queue with ESME_RSUBMITFAIL), so each carrier
// may override the defaults (cluster.yaml: retriable_statuses,
// permanent_statuses).
type Statuses map[data.CommandStatusType]bool

// Retriable reports whether a submit refused with status may be tried
// again.
func (t Statuses) Retriable(status data.CommandStatusType) bool {
	if r, ok := t[status]; ok {
		return r
	}
	return DefaultRetriable(status)
}

// DefaultRetriable is SMPP 3.4's reading of a refused submit: the statuses
// that describe the SMSC's or the bind's state rather than the message are
// retriable; everything that faults the message itself (a bad address, an
// invalid parameter, a barred destination) is permanent.
func DefaultRetriable(s data.CommandStatusType) bool {
	switch s {
	case data.ESME_RINVBNDSTS, // the bind was not in a state to submit
		data.ESME_RSYSERR,          // system error
		data.ESME_RMSGQFUL,         // message queue full
		data.ESME_RTHROTTLED,       // throttling error
		data.ESME_RX_T_APPN,        // ESME receiver temporary app error
		data.ESME_RDELIVERYFAILURE, // delivery failure (data_sm; transient by the spec)
		data.ESME_RUNKNOWNERR:      // unknown error
		return true
	}
	return false
}

// ParseStatus reads a command_status as cluster.yaml writes it: hex
// ("0x00000045", "0x45"), decimal ("69") or its SMPP name
// ("ESME_RSUBMITFAIL", any case).
func ParseStatus(s string) (data.CommandStatusType, error) {
	t := strings.TrimSpace(s)
	if v, err := strconv.ParseUint(t, 0, 32); err == nil {
		return data.CommandStatusType(v), nil
	}
	name := strings.ToUpper(t)
	for v := range uint32(0x500) {
		if data.CommandStatusType(v).String() == name {
			return data.CommandStatusType(v), nil
		}
	}
	return 0, fmt.Errorf("%q is not a command_status: want 0x… hex, a number, or a name such as ESME_RSUBMITFAIL", s)
}
