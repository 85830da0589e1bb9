package switchboard

import (
	"strings"
	"time"
	"unicode/utf8"
)

// SubmitRequest is one message as a client asked for it, before it is
// accepted. The HTTP layer fills it from JSON; the engine validates it,
// counts its segments and accepts or refuses it.
type SubmitRequest struct {
	To, From, Body string
	CallbackURL    string
	Reference      string
	// Validity is how long the gateway and the carrier may keep trying;
	// zero takes the configured default.
	Validity time.Duration
	// IdempotencyKey, if set, makes a retried request return the first
	// response; RequestHash identifies the body it was first used with.
	IdempotencyKey string
	RequestHash    [32]byte
}

// SubmitResult is the outcome of one SubmitRequest: the accepted message,
// or an error (an *Error with a code, for the client).
type SubmitResult struct {
	Message *Message
	Err     error
}

// Limits on request fields, part of the public API.
const (
	MaxReferenceLength = 128
	MaxURLLength       = 2048
	MaxBodyBytes       = 4096 // far above 10 parts of UCS-2; segment count is the real limit
)

// Validate checks the fields that need no configuration: formats of to and
// from, a non-empty UTF-8 body, sane lengths. The engine checks the rest
// (segments, validity bounds, routes).
func (r *SubmitRequest) Validate() error {
	if !ValidMSISDN(r.To) {
		return Errorf(EINVALIDTO, `"to" must be "+" followed by 8 to 15 digits.`)
	}
	if !ValidSender(r.From) {
		return Errorf(EINVALIDFROM, `"from" must be up to 11 letters, digits or spaces (starting with a letter or digit), or "+" followed by 8 to 15 digits.`)
	}
	switch {
	case r.Body == "":
		return Errorf(EINVALIDBODY, `"body" must not be empty.`)
	case !utf8.ValidString(r.Body):
		return Errorf(EINVALIDBODY, `"body" is not valid UTF-8.`)
	case strings.IndexByte(r.Body, 0) >= 0:
		return Errorf(EINVALIDBODY, `"body" must not contain NUL characters.`)
	case len(r.Body) > MaxBodyBytes:
		return Errorf(ETOOLONG, `"body" is longer than %d bytes.`, MaxBodyBytes)
	case len(r.Reference) > MaxReferenceLength || !utf8.ValidString(r.Reference):
		return Errorf(EINVALID, `"reference" must be valid UTF-8 of at most %d bytes.`, MaxReferenceLength)
	case r.Validity < 0:
		return Errorf(EINVALID, `"validity" must not be negative.`)
	}
	return nil
}

// ValidMSISDN reports whether s is "+" and 8–15 digits (E.164).
func ValidMSISDN(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidSender reports whether s is an E.164 number or an alphanumeric
// sender id of 1–11 ASCII letters, digits and inner spaces.
func ValidSender(s string) bool {
	if ValidMSISDN(s) {
		return true
	}
	if len(s) == 0 || len(s) > 11 || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}
