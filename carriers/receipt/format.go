package receipt

import (
	"strings"
	"time"
)

// maxText is the spec's limit on the text field: the first 20 characters of
// the original message, enough to recognise it without resending it.
const maxText = 20

// zeroDate stands in for a zero time, so that Parse reads it back as zero
// instead of as 1 January 2001.
const zeroDate = "0000000000"

// Format builds the canonical receipt text, for the SMSC simulator:
//
//	id:%s sub:%s dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s
//
// Empty fields get the values a real SMSC would send: sub "001", dlvrd "001"
// for DELIVRD and "000" otherwise, err "000". Dates are written as
// YYMMDDhhmm in the time's own location (convert with In first), a zero time
// as 0000000000. Text is cut to 20 characters (runes, so UTF-8 stays valid).
// Values are written as given, so an ID containing whitespace will not
// survive Parse.
func Format(f Fields) string {
	var b strings.Builder
	b.Grow(100 + len(f.ID) + len(f.Stat) + len(f.Err) + 4*maxText)
	b.WriteString("id:")
	b.WriteString(f.ID)
	b.WriteString(" sub:")
	b.WriteString(orDefault(f.Sub, "001"))
	b.WriteString(" dlvrd:")
	b.WriteString(orDefault(f.Dlvrd, defaultDlvrd(f.Stat)))
	b.WriteString(" submit date:")
	b.WriteString(formatDate(f.SubmitDate))
	b.WriteString(" done date:")
	b.WriteString(formatDate(f.DoneDate))
	b.WriteString(" stat:")
	b.WriteString(string(f.Stat))
	b.WriteString(" err:")
	b.WriteString(orDefault(f.Err, "000"))
	b.WriteString(" text:")
	b.WriteString(truncate(f.Text, maxText))
	return b.String()
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func defaultDlvrd(s State) string {
	if s == Delivered {
		return "001"
	}
	return "000"
}

func formatDate(t time.Time) string {
	if t.IsZero() {
		return zeroDate
	}
	return t.Format("0601021504")
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
