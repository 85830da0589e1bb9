package http

import (
	"strconv"
	"unicode/utf8"
)

// The fast path of request decoding. encoding/json with reflection was
// 2.7% of the gateway's CPU at full load, for bodies that are nearly always
// the same simple shape: one flat object of plain strings. decodeFlat reads
// exactly that shape and nothing else; for anything it does not recognise it
// gives up, and the caller decodes with encoding/json, which then produces
// the same value or the error a client sees. What it accepts, encoding/json
// decodes identically (FuzzDecodeFlat checks this), so there is one
// behaviour, not two.

// decodeFlat decodes data into in (and idem, for a batch item; nil refuses
// "idempotency_key") if data is one JSON object whose names are exactly
// the fields' and whose values are strings without escapes or control
// characters, or, for "validity", an integer or null, all valid UTF-8
// (encoding/json would replace invalid bytes; decodeObject refuses them).
// It reports whether it did.
func decodeFlat(data []byte, in *submitBody, idem *string) bool {
	if !utf8.Valid(data) {
		return false
	}
	var out submitBody
	var outIdem string
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return finishFlat(data, i+1, in, &out, idem, outIdem)
	}
	for {
		name, j, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, j)
		if i == len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if name == "validity" {
			if i, ok = flatValidity(data, i, &out.Validity); !ok {
				return false
			}
		} else {
			var s string
			if s, i, ok = plainString(data, i); !ok {
				return false
			}
			if !setFlat(&out, name, s, idem != nil, &outIdem) {
				return false
			}
		}
		i = skipSpace(data, i)
		if i == len(data) {
			return false
		}
		switch data[i] {
		case '}':
			return finishFlat(data, i+1, in, &out, idem, outIdem)
		case ',':
			i = skipSpace(data, i+1)
		default:
			return false
		}
	}
}

// finishFlat checks that nothing but space follows the object at i and,
// if so, stores the result.
func finishFlat(data []byte, i int, in, out *submitBody, idem *string, outIdem string) bool {
	if skipSpace(data, i) != len(data) {
		return false
	}
	*in = *out
	if idem != nil {
		*idem = outIdem
	}
	return true
}

// setFlat stores one string field; false for a name it does not know
// exactly (encoding/json matches names case-insensitively and refuses
// unknown ones: both are its to handle).
func setFlat(out *submitBody, name, s string, withIdem bool, idem *string) bool {
	switch name {
	case "to":
		out.To = s
	case "from":
		out.From = s
	case "body":
		out.Body = s
	case "callback_url":
		out.CallbackURL = s
	case "reference":
		out.Reference = s
	case "idempotency_key":
		if !withIdem {
			return false
		}
		*idem = s
	default:
		return false
	}
	return true
}

// plainString reads a JSON string at i that has no escapes and no control
// characters, so its bytes are its value.
func plainString(data []byte, i int) (string, int, bool) {
	if i == len(data) || data[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return string(data[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		}
	}
	return "", i, false
}

// flatValidity reads null or an integer of at most 18 digits (no sign
// other than '-', no leading zero, no fraction or exponent) at i.
func flatValidity(data []byte, i int, v **int64) (int, bool) {
	if len(data)-i >= 4 && string(data[i:i+4]) == "null" {
		*v = nil
		return i + 4, true
	}
	j := i
	if j < len(data) && data[j] == '-' {
		j++
	}
	start := j
	for j < len(data) && data[j] >= '0' && data[j] <= '9' {
		j++
	}
	digits := j - start
	if digits == 0 || digits > 18 || (digits > 1 && data[start] == '0') {
		return i, false
	}
	if j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E') {
		return i, false
	}
	n, err := strconv.ParseInt(string(data[i:j]), 10, 64)
	if err != nil {
		return i, false
	}
	*v = &n
	return j, true
}
