package sink

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Decoding events. With encoding/json it was 5 % of the CPU of a bench run
// with callbacks: the receiver's cost, paid on the gateway's own two cores
// because the bench runs the sink in the same process. scanEvents reads the
// shape the gateway sends (objects of known names whose strings have no
// escapes) without reflection, and gives up on anything else, which
// decodeEvents then hands to encoding/json. Whatever scanEvents accepts,
// encoding/json decodes to the same events (FuzzScanEvents), so the sink
// behaves as encoding/json alone would.

// decodeEvents reads one event (a JSON object) or a batch (an array of
// at least one); every event needs an event_id.
func decodeEvents(body []byte) ([]Event, bool) {
	evs, ok := scanEvents(body)
	if !ok {
		var err error
		if evs, err = jsonEvents(body); err != nil {
			return nil, false
		}
	}
	if len(evs) == 0 {
		return nil, false
	}
	for _, ev := range evs {
		if ev.EventID == "" {
			return nil, false
		}
	}
	return evs, true
}

// jsonEvents decodes body with encoding/json: an array of events, or one.
func jsonEvents(body []byte) ([]Event, error) {
	if isArray(body) {
		var evs []Event
		err := json.Unmarshal(body, &evs)
		return evs, err
	}
	evs := make([]Event, 1)
	return evs, json.Unmarshal(body, &evs[0])
}

// isArray reports whether body's first byte other than JSON space is '['.
func isArray(body []byte) bool {
	s := scanner{data: body}
	s.space()
	return s.peek() == '['
}

// maxDepth bounds the nesting scanEvents follows inside a value it skips.
const maxDepth = 8

// scanner reads JSON from data at i. Every method returns false when the
// input is not what it reads, leaving i anywhere: the caller then gives up.
type scanner struct {
	data []byte
	i    int
}

// scanEvents decodes body if it is an object or an array of objects that
// scanner.event reads, with nothing but space around it.
func scanEvents(body []byte) ([]Event, bool) {
	if !utf8.Valid(body) { // encoding/json would replace invalid bytes
		return nil, false
	}
	s := scanner{data: body}
	s.space()
	var evs []Event
	if s.peek() == '[' {
		evs = []Event{} // as encoding/json gives for []
		ok := s.array(func() bool {
			var ev Event
			ok := s.event(&ev)
			evs = append(evs, ev)
			return ok
		})
		if !ok {
			return nil, false
		}
	} else {
		evs = make([]Event, 1)
		if !s.event(&evs[0]) {
			return nil, false
		}
	}
	s.space()
	return evs, s.i == len(s.data)
}

// peek is the byte at i, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// event reads an object into ev. The Event fields' names must be written
// exactly; the gateway's other fields are skipped; any other name gives up
// (encoding/json would match it case-insensitively to a field).
func (s *scanner) event(ev *Event) bool {
	return s.object(func(name string) bool {
		var ok bool
		switch name {
		case "event_id":
			ev.EventID, ok = s.plain()
		case "type":
			ev.Type, ok = s.plain()
		case "message_id":
			ev.MessageID, ok = s.plain()
		case "status":
			ev.Status, ok = s.plain()
		case "body":
			ev.Body, ok = s.plain()
		case "attempt":
			ev.Attempt, ok = s.integer()
		case "partial":
			ev.Partial, ok = s.boolean()
		case "to", "from", "reference", "carrier", "carrier_message_id", "error",
			"segments", "occurred_at", "encoding":
			ok = s.skip(0)
		}
		return ok
	})
}

// object reads {"name": value, ...}, calling value for each name with i at
// the value.
func (s *scanner) object(value func(name string) bool) bool {
	return s.list('{', '}', func() bool {
		name, ok := s.plain()
		if !ok {
			return false
		}
		s.space()
		if s.peek() != ':' {
			return false
		}
		s.i++
		s.space()
		return value(name)
	})
}

// array reads [value, ...], calling value with i at each.
func (s *scanner) array(value func() bool) bool { return s.list('[', ']', value) }

// list reads open, items separated by commas, and end, calling item with i
// at each.
func (s *scanner) list(open, end byte, item func() bool) bool {
	if s.peek() != open {
		return false
	}
	s.i++
	s.space()
	if s.peek() == end {
		s.i++
		return true
	}
	for {
		if !item() {
			return false
		}
		s.space()
		switch s.peek() {
		case end:
			s.i++
			return true
		case ',':
			s.i++
			s.space()
		default:
			return false
		}
	}
}

// plain reads a string without escapes or control characters, whose bytes
// are its value.
func (s *scanner) plain() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	for j := s.i + 1; j < len(s.data); j++ {
		switch c := s.data[j]; {
		case c == '"':
			v := string(s.data[s.i+1 : j])
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// integer reads a number without fraction or exponent that fits an int
// (as encoding/json decodes into one).
func (s *scanner) integer() (int, bool) {
	start := s.i
	if !s.number() || bytes.ContainsAny(s.data[start:s.i], ".eE") {
		return 0, false
	}
	n, err := strconv.Atoi(string(s.data[start:s.i]))
	return n, err == nil
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

func (s *scanner) boolean() (bool, bool) {
	switch {
	case s.literal("true"):
		return true, true
	case s.literal("false"):
		return false, true
	}
	return false, false
}

// literal reads word if it is next.
func (s *scanner) literal(word string) bool {
	if len(s.data)-s.i >= len(word) && string(s.data[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// skip reads a value whose content does not matter: a plain string, a
// number, true, false, null, or an object or array of those.
func (s *scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.plain()
		return ok
	case c == '{':
		return s.object(func(string) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return s.literal("true") || s.literal("false") || s.literal("null")
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	first := s.peek()
	digits := s.digits()
	if digits == 0 || (digits > 1 && first == '0') {
		return false
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}
