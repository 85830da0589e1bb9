package http

import (
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

const headerRequestID = "X-Request-Id"

// authorize authenticates the request unless its client address has had
// too many failures this minute (429 rate_limited until it is over, and
// the secret is not even looked at), and counts a failure.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, now time.Time) (*switchboard.Key, error) {
	if s.authLimit == nil {
		return s.authenticate(ctx)
	}
	addr := clientKey(ctx.RemoteIP())
	if wait, blocked := s.authLimit.blocked(addr, now); blocked {
		return nil, &switchboard.Error{Code: switchboard.ERATELIMITED, RetryAfter: wait,
			Message: "Too many failed authentications from this address; retry after Retry-After seconds."}
	}
	key, err := s.authenticate(ctx)
	if err == errUnauthorized && s.authLimit.failed(addr, now) {
		s.log.Warn().Str("client", addr.String()).Int("failures", s.cfg.AuthFailuresPerMinute).
			Msg("failed authentications: client refused until its minute is over")
	}
	return key, err
}

// authenticate returns the API key of "Authorization: Bearer <secret>".
// Missing, malformed and unknown secrets get the same answer, so it tells
// a caller nothing about which keys exist.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (*switchboard.Key, error) {
	if key, ok := s.keyOf(&ctx.Request.Header); ok {
		return key, nil
	}
	if s.cfg.KeysLoading != nil && s.cfg.KeysLoading() {
		return nil, errKeysLoading
	}
	return nil, errUnauthorized
}

var (
	errUnauthorized = apiError(switchboard.EUNAUTHORIZED, "Missing or invalid API key; send Authorization: Bearer <secret>.")
	errKeysLoading  = &switchboard.Error{Code: switchboard.EUNAVAILABLE, Message: "The gateway is starting.", RetryAfter: time.Second}
)

// keyOf returns the API key the request's Authorization header names.
func (s *Server) keyOf(h *fasthttp.RequestHeader) (*switchboard.Key, bool) {
	const scheme = "bearer "
	v := h.Peek("Authorization")
	if len(v) <= len(scheme) || !asciiEqualFold(v[:len(scheme)], scheme) {
		return nil, false
	}
	secret := v[len(scheme):]
	for len(secret) > 0 && secret[0] == ' ' {
		secret = secret[1:]
	}
	if len(secret) == 0 {
		return nil, false
	}
	return s.keys.Authenticate(string(secret))
}

// asciiEqualFold compares b with a lower-case ASCII string, ignoring case.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// maxRequestID bounds an X-Request-Id taken from the client.
const maxRequestID = 64

// setRequestID sets X-Request-Id on the response: the client's, if it sent
// a sane one (so its logs and ours meet), else a random one.
func setRequestID(ctx *fasthttp.RequestCtx) {
	if id := ctx.Request.Header.Peek(headerRequestID); saneRequestID(id) {
		ctx.Response.Header.SetBytesV(headerRequestID, id)
		return
	}
	var buf [16]byte
	n := rand.Uint64() // the runtime's per-thread generator: fast, no lock
	for i := range buf {
		buf[i] = hexDigits[n&0xf]
		n >>= 4
	}
	ctx.Response.Header.SetBytesV(headerRequestID, buf[:])
}

// saneRequestID accepts 1..64 printable ASCII characters without spaces.
func saneRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
