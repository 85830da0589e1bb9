package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignatureHeader is the header that carries a callback's signature:
//
//	Switchboard-Signature: t=1718029831,v1=f541243fc16cae82d9889dda1549ee5c95042c68003b953f1354a29c914bd4c4
//
// v1 is the lower-case hex HMAC-SHA256, keyed with the key's webhook secret,
// of the timestamp t (Unix seconds), a ".", and the raw request body.
const SignatureHeader = "Switchboard-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock before Verify treats the request as a replay.
const DefaultTolerance = 5 * time.Minute

// SignatureError is an error Verify returns: one of the constants below,
// never wrapped, so callers compare with == or errors.Is.
type SignatureError string

func (e SignatureError) Error() string { return string(e) }

// Why Verify refused a request.
const (
	ErrSignatureMissing   SignatureError = "callback: no signature"
	ErrSignatureMalformed SignatureError = "callback: malformed signature header"
	ErrSignatureMismatch  SignatureError = "callback: signature does not match"
	ErrSignatureStale     SignatureError = "callback: signature timestamp outside the tolerance"
)

// Sign returns the SignatureHeader value for body sent at t. With more
// than one secret (a secret being rotated: the new one, then the old) the
// header carries one v1 per secret, in that order, so a receiver that
// knows either accepts the request.
func Sign(secret string, t time.Time, body []byte, more ...string) string {
	return (*macs)(nil).sign(secret, t, body, more)
}

// sign is Sign, with the keyed HMACs from m.
func (m *macs) sign(secret string, t time.Time, body []byte, more []string) string {
	ts := t.Unix()
	// "t=" + up to 20 digits + (",v1=" + 64 hex digits) per secret.
	b := make([]byte, 0, 2+20+(1+len(more))*(4+2*sha256.Size))
	b = append(b, "t="...)
	b = strconv.AppendInt(b, ts, 10)
	for i := -1; i < len(more); i++ {
		s := secret
		if i >= 0 {
			s = more[i]
		}
		mac := m.mac(s, ts, body)
		b = append(b, ",v1="...)
		b = hex.AppendEncode(b, mac[:])
	}
	return string(b)
}

// mac is HMAC-SHA256(secret, "<ts>.<body>").
func mac(secret string, ts int64, body []byte) [sha256.Size]byte {
	return (*macs)(nil).mac(secret, ts, body)
}

// maxSecrets bounds the secrets macs keeps states for.
const maxSecrets = 1024

// macs keeps keyed HMAC-SHA256 states per secret for reuse. Keying a state
// allocates it and hashes the secret's pads; resetting one keyed before
// restores its keyed start instead, and a key signs every one of its
// callbacks with the same secret. A nil *macs keys a new state each time.
type macs struct{ pools *boundedMap[*sync.Pool] }

func newMACs() *macs { return &macs{pools: newBoundedMap[*sync.Pool](maxSecrets)} }

func (m *macs) mac(secret string, ts int64, body []byte) [sha256.Size]byte {
	h := m.get(secret)
	var num [20]byte
	h.Write(strconv.AppendInt(num[:0], ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	m.put(secret, h)
	return sum
}

// get returns a state keyed with secret, ready to write to.
func (m *macs) get(secret string) hash.Hash {
	if m != nil {
		if h, ok := m.pool(secret).Get().(hash.Hash); ok {
			return h
		}
	}
	return hmac.New(sha256.New, []byte(secret))
}

// put resets h, keyed with secret, and keeps it for the next get.
func (m *macs) put(secret string, h hash.Hash) {
	if m == nil {
		return
	}
	h.Reset()
	m.pool(secret).Put(h)
}

func (m *macs) pool(secret string) *sync.Pool {
	if p, ok := m.pools.get(secret); ok {
		return p
	}
	return m.pools.add(strings.Clone(secret), new(sync.Pool))
}

// Verify checks a SignatureHeader value against body and secret. The header
// is a comma-separated list of key=value items: exactly one t (Unix
// seconds) and one or more v1 (more than one while a secret is being
// rotated); unknown keys and spaces around items are ignored. The body
// matches if any v1 is its HMAC, compared in constant time. A timestamp
// more than tolerance before or after now is refused as a replay;
// tolerance <= 0 means DefaultTolerance. The timestamp is checked after the
// HMAC, so a stale error means the signature itself was genuine.
func Verify(header, secret string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if strings.TrimSpace(header) == "" {
		return ErrSignatureMissing
	}
	// First pass: the form of every item, and the timestamp.
	var ts int64
	haveTS, haveSig := false, false
	for item := range strings.SplitSeq(header, ",") {
		key, value, ok := splitItem(item)
		if !ok {
			return ErrSignatureMalformed
		}
		switch key {
		case "":
			// An empty item, as in "t=1,,v1=…" or a trailing comma.
		case "t":
			n, ok := parseUnix(value)
			if !ok || haveTS {
				return ErrSignatureMalformed
			}
			ts, haveTS = n, true
		case "v1":
			haveSig = true
		}
	}
	if !haveTS {
		return ErrSignatureMalformed
	}
	if !haveSig {
		return ErrSignatureMissing
	}
	// Second pass: does any v1 match? Each comparison is constant-time;
	// one that is not 64 hex digits simply does not match.
	want := mac(secret, ts, body)
	match := false
	for item := range strings.SplitSeq(header, ",") {
		key, value, _ := splitItem(item)
		if key != "v1" || len(value) != hex.EncodedLen(sha256.Size) {
			continue
		}
		var got [sha256.Size]byte
		if _, err := hex.Decode(got[:], []byte(value)); err != nil {
			continue
		}
		if hmac.Equal(got[:], want[:]) {
			match = true
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	if age := now.Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return ErrSignatureStale
	}
	return nil
}

// splitItem splits one "key=value" item of the header, trimming spaces.
// An empty item gives an empty key and ok; an item without "=" is not ok.
func splitItem(item string) (key, value string, ok bool) {
	item = strings.TrimSpace(item)
	if item == "" {
		return "", "", true
	}
	key, value, ok = strings.Cut(item, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	return key, value, ok && key != ""
}

// parseUnix parses a non-negative decimal number of seconds: digits only,
// no sign, at most 12 of them (year 33658).
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
