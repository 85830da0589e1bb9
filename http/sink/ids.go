package sink

import (
	"strings"

	"github.com/oklog/ulid/v2"
)

// The sink remembers every event_id it accepted (to count duplicates) and
// each message's latest event_id (to notice events out of order). A long
// bench run sends millions: kept as strings they were hundreds of MB of
// pointers for the garbage collector to scan, on the gateway's own cores.
// The gateway's IDs ("evt_" or "msg_", a ULID, for events sometimes "-2")
// are packed into fixed-size arrays that hold no pointers; any other ID
// (Kannel's, a test's) is kept as a string.

// packed is a ULID's 16 bytes and a suffix digit (0 for none). Packed IDs
// sort as their strings do.
type packed [17]byte

// pack packs prefix + ULID [+ "-" + digit 1-9]; false for anything else.
func pack(id, prefix string) (packed, bool) {
	var p packed
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || (len(rest) != ulid.EncodedSize && len(rest) != ulid.EncodedSize+2) || rest[0] > '7' {
		return p, false
	}
	if len(rest) > ulid.EncodedSize {
		d := rest[ulid.EncodedSize+1]
		if rest[ulid.EncodedSize] != '-' || d < '1' || d > '9' {
			return p, false
		}
		p[16] = d - '0'
	}
	text := rest[:ulid.EncodedSize]
	for i := 0; i < len(text); i++ {
		if c := text[i]; c >= 'a' && c <= 'z' { // ParseStrict takes either case; one string per ID
			return p, false
		}
	}
	u, err := ulid.ParseStrict(text)
	if err != nil {
		return p, false
	}
	copy(p[:16], u[:])
	return p, true
}

// seenIDs counts receipts per event_id and keeps each message's latest
// event_id.
type seenIDs struct {
	times      map[packed]int32
	timesOther map[string]int32
	last       map[packed]packed // message → its latest event
	lastOther  map[string]string
}

func newSeenIDs() *seenIDs {
	return &seenIDs{times: map[packed]int32{}, timesOther: map[string]int32{},
		last: map[packed]packed{}, lastOther: map[string]string{}}
}

// add counts one receipt of eventID and returns how many there have been.
func (s *seenIDs) add(eventID string) int {
	if p, ok := pack(eventID, "evt_"); ok {
		s.times[p]++
		return int(s.times[p])
	}
	s.timesOther[eventID]++
	return int(s.timesOther[eventID])
}

// later records eventID as messageID's latest unless a later one was,
// and reports whether it was (false: it came out of order). A message's
// events are compared among themselves only if all are of one shape (the
// gateway's IDs, or others), as every sender's are.
func (s *seenIDs) later(messageID, eventID string) bool {
	m, okM := pack(messageID, "msg_")
	e, okE := pack(eventID, "evt_")
	if okM && okE {
		if last, ok := s.last[m]; ok && string(last[:]) > string(e[:]) {
			return false
		}
		s.last[m] = e
		return true
	}
	if last := s.lastOther[messageID]; last > eventID {
		return false
	}
	s.lastOther[messageID] = eventID
	return true
}
