package smpp

import (
	"errors"
	"fmt"
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

// retriableStatus lists the command_status values that mean "try later".
func retriableStatus(s data.CommandStatusType) bool {
	switch s {
	case data.ESME_RTHROTTLED, data.ESME_RMSGQFUL, data.ESME_RSYSERR:
		return true
	}
	return false
}
