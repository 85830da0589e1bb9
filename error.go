package switchboard

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. They are part of the public API: clients branch on them, and
// http/ maps each to one HTTP status. Add codes; never change one's meaning.
const (
	EINVALID      = "invalid"       // malformed input not covered by a more specific code
	EINVALIDTO    = "invalid_to"    // destination is not "+" and 8–15 digits
	EINVALIDFROM  = "invalid_from"  // sender is neither ≤ 11 alphanumerics nor E.164
	EINVALIDBODY  = "invalid_body"  // empty body, or not valid UTF-8
	ETOOLONG      = "body_too_long" // body needs more segments than allowed
	EUNAUTHORIZED = "unauthorized"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	ERATELIMITED  = "rate_limited"
	EQUEUEFULL    = "queue_full"
	EUNAVAILABLE  = "unavailable" // shutting down, or storage cannot commit
	EINTERNAL     = "internal"

	EIDEMPOTENCY = "idempotency_conflict"   // Idempotency-Key reused with another body
	ETOOLARGE    = "payload_too_large"      // request body over the limit
	EMEDIATYPE   = "unsupported_media_type" // not application/json
	ENOROUTE     = "no_route"               // no route matches the destination
	// EMANAGED: the admin API may not change what cluster.yaml defines;
	// change the file (and send SIGHUP) instead.
	EMANAGED = "managed_by_config"
)

// Error is an application error: a machine code for clients and a message a
// person can read. Anything that is not an *Error reads as EINTERNAL, so
// internal causes never reach a client.
type Error struct {
	Code    string
	Message string
	// RetryAfter tells a client when to try again (rate_limited); zero
	// when it does not apply.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("switchboard error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or
// "Internal error." for any other error, and "" for nil.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
