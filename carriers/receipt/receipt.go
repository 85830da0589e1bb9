// Package receipt parses SMPP delivery receipt text (SMPP 3.4 Appendix B)
// and normalises carrier message ids, so that a receipt can be matched to the
// message whose submit_sm_resp carried the same id.
//
// The spec's form is
//
//	id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...
//
// but real SMSCs deviate from it, so Parse is lenient: field names and states
// in any case, fields missing, reordered or unknown, "submit_date" for
// "submit date", runs of whitespace, and dates with or without seconds. The
// spec is only a convention between SMSCs and clients, so leniency costs
// nothing, while strictness would lose receipts.
package receipt

import (
	"errors"
	"strings"
	"time"
)

// ErrNotReceipt is returned by Parse for text that has neither an id nor a
// stat value: an ordinary message sent with the receipt flag, or garbage.
// The error does not quote the text, which may be a subscriber's message.
var ErrNotReceipt = errors.New("receipt: text has neither id nor stat field")

// Fields are the values of one receipt. Strings are as the SMSC sent them;
// only Stat is normalised, because callers branch on it.
type Fields struct {
	ID         string
	Sub, Dlvrd string    // as given, may be empty
	SubmitDate time.Time // zero if absent or unparseable
	DoneDate   time.Time // zero if absent or unparseable
	Stat       State     // upper-cased; empty if absent; unknown words kept upper-cased
	Err        string    // as given, e.g. "000"
	Text       string    // everything after "text:", verbatim
}

// field names a receipt field Parse knows; fieldOther is any other name,
// whose value is skipped.
type field int

const (
	fieldOther field = iota
	fieldID
	fieldSub
	fieldDlvrd
	fieldSubmitDate
	fieldDoneDate
	fieldStat
	fieldErr
	fieldText
)

// Parse parses receipt text. loc is the time zone the SMSC writes its dates
// in (nil means UTC); two-digit years are taken as 2000–2099. Values are the
// first occurrence of each field. A field whose name is followed by
// whitespace takes the next word as its value unless that word is itself a
// field name, so both "err: 000" and "err: text:..." read as intended.
//
// Parse returns ErrNotReceipt only when the text has neither a non-empty id
// nor a non-empty stat, i.e. it does not look like a receipt at all. It never
// panics.
func Parse(text string, loc *time.Location) (Fields, error) {
	if loc == nil {
		loc = time.UTC
	}
	var f Fields
	var seen [fieldText + 1]bool
	for i := skipSpace(text, 0); i < len(text); i = skipSpace(text, i) {
		name, vstart, ok := keyAt(text, i)
		if !ok {
			i = skipWord(text, i)
			continue
		}
		k := classify(name)
		if k == fieldText {
			f.Text = text[vstart:]
			break
		}
		var v string
		v, i = valueAt(text, vstart)
		if k != fieldOther && !seen[k] {
			seen[k] = true
			f.set(k, v, loc)
		}
	}
	if f.ID == "" && f.Stat == "" {
		return Fields{}, ErrNotReceipt
	}
	return f, nil
}

func (f *Fields) set(k field, v string, loc *time.Location) {
	switch k {
	case fieldID:
		f.ID = v
	case fieldSub:
		f.Sub = v
	case fieldDlvrd:
		f.Dlvrd = v
	case fieldSubmitDate:
		f.SubmitDate = parseDate(v, loc)
	case fieldDoneDate:
		f.DoneDate = parseDate(v, loc)
	case fieldStat:
		f.Stat = normalizeState(v)
	case fieldErr:
		f.Err = v
	}
}

// isSpace is ASCII whitespace only, and NUL: receipts are ASCII, and
// treating Unicode spaces as separators would cut values in the free-form
// text of unknown fields for no gain; many SMSCs end the text with a NUL,
// as a C string, which must not stick to the last value ("DELIVRD\x00"
// is no state we know).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func skipWord(s string, i int) int {
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return i
}

func isLetter(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// isNameByte limits field names to what SMSCs use, so that a value such as
// "12:30" or a URL is not mistaken for a field name by valueAt's look-ahead.
func isNameByte(c byte) bool {
	return isLetter(c) || ('0' <= c && c <= '9') || c == '_' || c == '-'
}

// nameAt returns the end of the field-name word starting at i, or i if there
// is none.
func nameAt(s string, i int) int {
	if i >= len(s) || !isLetter(s[i]) {
		return i
	}
	j := i + 1
	for j < len(s) && isNameByte(s[j]) {
		j++
	}
	return j
}

// keyAt recognises a field name followed by ':' at i, and returns the name
// and the index just after the colon. The two-word names "submit date" and
// "done date" are the only names containing whitespace.
func keyAt(s string, i int) (name string, vstart int, ok bool) {
	j := nameAt(s, i)
	if j == i || j >= len(s) {
		return "", 0, false
	}
	if s[j] == ':' {
		return s[i:j], j + 1, true
	}
	if !isSpace(s[j]) {
		return "", 0, false
	}
	w := s[i:j]
	if !strings.EqualFold(w, "submit") && !strings.EqualFold(w, "done") {
		return "", 0, false
	}
	k := skipSpace(s, j)
	e := nameAt(s, k)
	if e < len(s) && s[e] == ':' && strings.EqualFold(s[k:e], "date") {
		return s[i:e], e + 1, true
	}
	return "", 0, false
}

// valueAt returns the value starting at i (just after a colon) and the index
// after it.
func valueAt(s string, i int) (string, int) {
	if i < len(s) && !isSpace(s[i]) {
		e := skipWord(s, i)
		return s[i:e], e
	}
	k := skipSpace(s, i)
	if k >= len(s) {
		return "", k
	}
	if _, _, ok := keyAt(s, k); ok {
		return "", k
	}
	e := skipWord(s, k)
	return s[k:e], e
}

func classify(name string) field {
	switch {
	case strings.EqualFold(name, "id"):
		return fieldID
	case strings.EqualFold(name, "sub"):
		return fieldSub
	case strings.EqualFold(name, "dlvrd"):
		return fieldDlvrd
	case strings.EqualFold(name, "stat"):
		return fieldStat
	case strings.EqualFold(name, "err"):
		return fieldErr
	case strings.EqualFold(name, "text"):
		return fieldText
	case isDateName(name, "submit"):
		return fieldSubmitDate
	case isDateName(name, "done"):
		return fieldDoneDate
	}
	return fieldOther
}

// isDateName matches prefix+"date" joined by whitespace, '_', '-' or
// nothing, in any case: SMSCs write all of these.
func isDateName(name, prefix string) bool {
	if len(name) < len(prefix) || !strings.EqualFold(name[:len(prefix)], prefix) {
		return false
	}
	rest := name[len(prefix):]
	i := 0
	for i < len(rest) && (isSpace(rest[i]) || rest[i] == '_' || rest[i] == '-') {
		i++
	}
	return strings.EqualFold(rest[i:], "date")
}

// parseDate reads YYMMDDhhmm or YYMMDDhhmmss. It rejects out-of-range parts
// rather than letting time.Date normalise them, because a date like
// 2302301200 is a corrupt receipt, not the 2nd of March.
func parseDate(v string, loc *time.Location) time.Time {
	if len(v) != 10 && len(v) != 12 {
		return time.Time{}
	}
	var n [6]int
	for k := 0; k < len(v)/2; k++ {
		a, b := v[2*k], v[2*k+1]
		if a < '0' || a > '9' || b < '0' || b > '9' {
			return time.Time{}
		}
		n[k] = int(a-'0')*10 + int(b-'0')
	}
	year, month, day := 2000+n[0], time.Month(n[1]), n[2]
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		n[3] > 23 || n[4] > 59 || n[5] > 59 {
		return time.Time{}
	}
	return time.Date(year, month, day, n[3], n[4], n[5], 0, loc)
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
