package gsm

import (
	"slices"
	"unicode/utf8"

	"github.com/switchboard-sms/switchboard"
)

// DefaultMaxParts is the part limit when a caller sets none. Every part is
// billed as one message, so a limit keeps a runaway body from costing
// hundreds; ten parts (1530 GSM7 characters) covers real messages.
const DefaultMaxParts = 10

// maxConcatParts is the most parts a concatenation element can number.
const maxConcatParts = 255

// Part capacities in units, TS 23.040 §9.2.3.24.1.
const (
	singleSeptets = 160
	concatSeptets = 153
	singleUnits   = 70
	concatUnits   = 67
)

// Segments is a text encoded and cut into parts.
type Segments struct {
	Coding Coding
	Units  int      // septets (GSM7, extension characters count 2) or UTF-16 code units (UCS2) in the whole text
	Parts  [][]byte // each part's user data without a UDH: unpacked septets for GSM7, UTF-16BE for UCS2
}

// Split chooses the coding of text, encodes it and cuts it into parts, as
// the package documentation describes. maxParts <= 0 means
// DefaultMaxParts, and more than 255 means 255, the most a concatenation
// header can number.
//
// An empty text or invalid UTF-8 is a *switchboard.Error with code
// EINVALIDBODY; a text needing more than maxParts parts is ETOOLONG.
func Split(text string, maxParts int) (Segments, error) {
	l, err := plan(text, maxParts)
	if err != nil {
		return Segments{}, err
	}
	// Exact sizes make these the only two allocations.
	seg := Segments{Parts: make([][]byte, 0, l.parts)}
	l.fill(&seg, make([]byte, 0, l.octets()), text)
	return seg, nil
}

// SplitInto is Split reusing memory, for callers that send many messages:
// the encoded text goes into buf[:0] and the parts into seg.Parts[:0]. It
// does not allocate when cap(buf) is at least 160 times the part limit and
// cap(seg.Parts) at least the limit; otherwise it grows them as append does.
// The parts alias that memory, so buf must not be reused while they are in
// use. On error seg is left as it was.
func SplitInto(seg *Segments, buf []byte, text string, maxParts int) error {
	l, err := plan(text, maxParts)
	if err != nil {
		return err
	}
	l.fill(seg, buf, text)
	return nil
}

// Count returns what Split would choose for text, the text's length in
// units, and the number of parts, without encoding or allocating. It does
// not validate: invalid UTF-8 counts as U+FFFD, and "" needs 0 parts.
func Count(text string) (coding Coding, units int, parts int) {
	if septets, ok := septetLen(text); ok {
		return GSM7, septets, partsGSM7(text, septets)
	}
	units = utf16Len(text)
	return UCS2, units, partsUCS2(text, units)
}

// layout is the outcome of Count for a text that passed validation.
type layout struct {
	coding       Coding
	units, parts int
}

func plan(text string, maxParts int) (layout, error) {
	if text == "" {
		return layout{}, switchboard.Errorf(switchboard.EINVALIDBODY, "The message body is empty.")
	}
	if !utf8.ValidString(text) {
		return layout{}, switchboard.Errorf(switchboard.EINVALIDBODY, "The message body is not valid UTF-8.")
	}
	if maxParts <= 0 {
		maxParts = DefaultMaxParts
	}
	maxParts = min(maxParts, maxConcatParts)
	var l layout
	l.coding, l.units, l.parts = Count(text)
	if l.parts > maxParts {
		return layout{}, switchboard.Errorf(switchboard.ETOOLONG,
			"The message body needs %d parts; at most %d are allowed.", l.parts, maxParts)
	}
	return l, nil
}

func (l layout) octets() int {
	if l.coding == UCS2 {
		return 2 * l.units
	}
	return l.units
}

// fill encodes text into buf[:0], growing it if needed, and cuts it into
// seg.Parts[:0].
func (l layout) fill(seg *Segments, buf []byte, text string) {
	buf = slices.Grow(buf[:0], l.octets())[:l.octets()]
	if l.coding == GSM7 {
		putGSM7(buf, text)
	} else {
		putUCS2(buf, text)
	}
	seg.Coding, seg.Units = l.coding, l.units
	seg.Parts = cut(seg.Parts[:0], buf, l.coding)
}

// septetLen returns the length of text in septets, or false if a rune is
// not in the alphabet.
func septetLen(text string) (int, bool) {
	n := 0
	for _, r := range text {
		w := lookup(r).septets()
		if w == 0 {
			return 0, false
		}
		n += w
	}
	return n, true
}

func utf16Len(text string) int {
	n := 0
	for _, r := range text {
		n += utf16Width(r)
	}
	return n
}

func utf16Width(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// partsGSM7 fills parts the way cut does, a character at a time, so that a
// pair that would straddle a boundary moves to the next part. Most texts fit
// one part, so the walk is skipped for them.
func partsGSM7(text string, septets int) int {
	if septets <= singleSeptets {
		return min(septets, 1)
	}
	parts, used := 1, 0
	for _, r := range text {
		w := lookup(r).septets()
		if used += w; used > concatSeptets {
			parts++
			used = w
		}
	}
	return parts
}

// partsUCS2 is partsGSM7 for UTF-16 code units.
func partsUCS2(text string, units int) int {
	if units <= singleUnits {
		return min(units, 1)
	}
	parts, used := 1, 0
	for _, r := range text {
		w := utf16Width(r)
		if used += w; used > concatUnits {
			parts++
			used = w
		}
	}
	return parts
}

// cut appends to parts the pieces of encoded text b. Each piece has its
// capacity clipped so that appending to one cannot overwrite the next.
func cut(parts [][]byte, b []byte, c Coding) [][]byte {
	single, concat := capacity(c)
	size := unitSize(c)
	if len(b) <= single*size {
		return append(parts, b[:len(b):len(b)])
	}
	for len(b) > 0 {
		n := min(len(b), concat*size)
		if n < len(b) && startsPair(b[n-size:], c) {
			n -= size
		}
		parts = append(parts, b[:n:n])
		b = b[n:]
	}
	return parts
}

// startsPair reports whether the unit at the start of u is the first half of
// an escape pair or a surrogate pair. An esc septet always is, because no
// extension code is esc.
func startsPair(u []byte, c Coding) bool {
	if c == GSM7 {
		return u[0] == esc
	}
	return u[0]&0xFC == 0xD8
}

func capacity(c Coding) (single, concat int) {
	if c == GSM7 {
		return singleSeptets, concatSeptets
	}
	return singleUnits, concatUnits
}

func unitSize(c Coding) int {
	if c == GSM7 {
		return 1
	}
	return 2
}
