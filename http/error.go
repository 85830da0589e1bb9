package http

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// Error codes only HTTP has. They are public API like switchboard's codes.
const (
	EMETHOD          = "method_not_allowed"        // 405, with Allow
	ETIMEOUT         = "request_timeout"           // 408: the request did not arrive within ReadTimeout
	EHEADERSTOOLARGE = "request_headers_too_large" // 431
)

// internalMessage is all a client learns of an internal error.
const internalMessage = "Internal error."

// statusOf returns the HTTP status of an error code, and false for a code
// the API does not know, which then reads as internal. This table is the
// one place where codes become statuses.
func statusOf(code string) (int, bool) {
	switch code {
	case switchboard.EINVALID, switchboard.EINVALIDTO, switchboard.EINVALIDFROM,
		switchboard.EINVALIDBODY, switchboard.ETOOLONG, switchboard.ENOROUTE:
		return fasthttp.StatusBadRequest, true
	case switchboard.EUNAUTHORIZED:
		return fasthttp.StatusUnauthorized, true
	case switchboard.ENOTFOUND:
		return fasthttp.StatusNotFound, true
	case EMETHOD:
		return fasthttp.StatusMethodNotAllowed, true
	case ETIMEOUT:
		return fasthttp.StatusRequestTimeout, true
	case switchboard.ECONFLICT, switchboard.EIDEMPOTENCY, switchboard.EMANAGED:
		return fasthttp.StatusConflict, true
	case switchboard.ETOOLARGE:
		return fasthttp.StatusRequestEntityTooLarge, true
	case switchboard.EMEDIATYPE:
		return fasthttp.StatusUnsupportedMediaType, true
	case switchboard.ERATELIMITED, switchboard.EQUEUEFULL:
		return fasthttp.StatusTooManyRequests, true
	case EHEADERSTOOLARGE:
		return fasthttp.StatusRequestHeaderFieldsTooLarge, true
	case switchboard.EUNAVAILABLE:
		return fasthttp.StatusServiceUnavailable, true
	case switchboard.EINTERNAL:
		return fasthttp.StatusInternalServerError, true
	}
	return fasthttp.StatusInternalServerError, false
}

// publicError is what a client may see of an error.
type publicError struct {
	status     int
	code       string
	message    string
	retryAfter int64 // seconds for Retry-After; 0: no header
}

// toPublic turns err into what a client sees (publicOf). Errors at or
// above 500 are logged here, with the request id and the cause, at error
// level.
func (s *responder) toPublic(ctx *fasthttp.RequestCtx, err error) publicError {
	p := publicOf(err)
	s.logFailed(ctx, err, p.status, 1)
	return p
}

// logFailed logs err at error level if its status is 500 or above, once
// for the request: items is how many of a batch's items failed so (1 for
// a single request), so that a store that refuses a batch of 1,000 writes
// one line, not 1,000.
func (s *responder) logFailed(ctx *fasthttp.RequestCtx, err error, status, items int) {
	if status < 500 || (s.quiet != nil && err == s.quiet) || string(ctx.Path()) == s.quietPath {
		return
	}
	ev := s.log.Error().Err(err).Str("code", switchboard.ErrorCode(err)).Int("status", status).
		Bytes("request_id", ctx.Response.Header.Peek(headerRequestID)).Str("path", string(ctx.Path()))
	if items > 1 {
		ev = ev.Int("items", items)
	}
	ev.Msg("request failed")
}

// publicOf is what a client sees of err: its code and message, or
// internal and "Internal error." for anything that is not a
// *switchboard.Error with a known code.
func publicOf(err error) publicError {
	code := switchboard.ErrorCode(err)
	status, known := statusOf(code)
	p := publicError{status: status, code: code, message: switchboard.ErrorMessage(err)}
	if !known || code == switchboard.EINTERNAL {
		p.code, p.message = switchboard.EINTERNAL, internalMessage
	}
	var e *switchboard.Error
	if errors.As(err, &e) {
		p.retryAfter = retryAfterSeconds(p.code, e.RetryAfter)
	} else {
		p.retryAfter = retryAfterSeconds(p.code, 0)
	}
	return p
}

// retryAfterSeconds is the Retry-After for an error: whole seconds rounded
// up, at least 1 for rate_limited and unavailable, which always carry it,
// and for any other error only when the engine suggested a wait.
func retryAfterSeconds(code string, d time.Duration) int64 {
	secs := int64((d + time.Second - 1) / time.Second)
	switch {
	case code == switchboard.ERATELIMITED || code == switchboard.EUNAVAILABLE:
		return max(secs, 1)
	case d > 0:
		return secs
	}
	return 0
}

// panicked answers a request whose handler panicked (p) with a 500 that
// keeps the request's id, and logs the panic with its stack.
func (s *responder) panicked(ctx *fasthttp.RequestCtx, rt *route, p any) {
	id := append([]byte(nil), ctx.Response.Header.Peek(headerRequestID)...)
	ctx.Response.Reset()
	ctx.Response.Header.SetBytesV(headerRequestID, id)
	s.Error(ctx, fmt.Errorf("panic serving %s: %v\n%s", rt.name(), p, debug.Stack()))
}

// Error writes err as the response {"error":{"code","message"}} with the
// status its code maps to (statusOf), Retry-After where it applies, and
// WWW-Authenticate on 401. Internal causes are logged, never shown.
func (s *responder) Error(ctx *fasthttp.RequestCtx, err error) {
	p := s.toPublic(ctx, err)
	if p.retryAfter > 0 {
		setRetryAfter(ctx, p.retryAfter)
	}
	if p.status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	w := s.writer()
	w.openObject()
	w.key("error")
	w.errorObject(p.code, p.message)
	w.closeObject()
	s.send(ctx, p.status, w)
}

func setRetryAfter(ctx *fasthttp.RequestCtx, secs int64) {
	var buf [20]byte
	ctx.Response.Header.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], secs, 10))
}

// apiError makes an *switchboard.Error without formatting, for the fixed
// messages of the HTTP layer.
func apiError(code, message string) error {
	return &switchboard.Error{Code: code, Message: message}
}
