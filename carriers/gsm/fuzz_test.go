package gsm_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

func addTextSeeds(f *testing.F) {
	for _, s := range []string{
		"", "a", "Hello, world!", "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà",
		"\f^{}\\[~]|€", "ç", "`", "\x1b", "ш", "😀", "a\xffb", "\xed\xa0\x80",
		strings.Repeat("a", 161), strings.Repeat("€", 81), strings.Repeat("ш", 71), strings.Repeat("😀", 36),
		strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152),
		strings.Repeat("b", 66) + "😀" + strings.Repeat("b", 10),
	} {
		f.Add(s)
	}
}

func FuzzGSM7RoundTrip(f *testing.F) {
	addTextSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		septets, err := gsm.EncodeGSM7(nil, s)
		if err != nil {
			if gsm.IsGSM7(s) {
				t.Fatalf("EncodeGSM7(%q) failed though IsGSM7: %v", s, err)
			}
			return
		}
		if !gsm.IsGSM7(s) {
			t.Fatalf("EncodeGSM7(%q) succeeded though not IsGSM7", s)
		}
		got, err := gsm.DecodeGSM7(septets)
		if err != nil || got != s {
			t.Fatalf("DecodeGSM7(EncodeGSM7(%q)) = %q, %v", s, got, err)
		}
		packed := gsm.Pack7(nil, septets)
		if un := gsm.Unpack7(nil, packed, len(septets)); !bytes.Equal(un, septets) {
			t.Fatalf("Unpack7(Pack7(% X)) = % X", septets, un)
		}
	})
}

// FuzzSplitRejoin checks the input and, because random strings seldom are
// long GSM7 or UCS2 texts with pairs at part boundaries, two texts made
// from its bytes that are.
func FuzzSplitRejoin(f *testing.F) {
	addTextSeeds(f)
	f.Add(strings.Repeat("\x00\x01\x02\xff", 45))
	alphabet := gsmAlphabet()
	f.Fuzz(func(t *testing.T, s string) {
		checkSplit(t, s)
		checkSplit(t, fromBytes(s, alphabet))
		checkSplit(t, fromBytes(s, []rune{'ш', '😀', 'a', '€'}))
	})
}

// gsmAlphabet returns every character of the default and extension tables.
func gsmAlphabet() []rune {
	var rs []rune
	for c := range byte(0x80) {
		if r, ok := specDefault()[c]; ok {
			rs = append(rs, r)
		}
		if r, ok := specExtension[c]; ok {
			rs = append(rs, r)
		}
	}
	return rs
}

func fromBytes(s string, alphabet []rune) string {
	rs := make([]rune, len(s))
	for i := range len(s) {
		rs[i] = alphabet[int(s[i])%len(alphabet)]
	}
	return string(rs)
}

func checkSplit(t *testing.T, s string) {
	t.Helper()
	seg, err := gsm.Split(s, 255)
	if s == "" || !utf8.ValidString(s) {
		if code := switchboard.ErrorCode(err); code != switchboard.EINVALIDBODY {
			t.Fatalf("Split(%q) code %q, want %q", s, code, switchboard.EINVALIDBODY)
		}
		return
	}
	coding, units, parts := gsm.Count(s)
	if err != nil {
		if switchboard.ErrorCode(err) != switchboard.ETOOLONG || parts <= 255 {
			t.Fatalf("Split(%q): %v, though Count says %d parts", s, err, parts)
		}
		return
	}
	if coding != seg.Coding || units != seg.Units || parts != len(seg.Parts) {
		t.Fatalf("Count = %v, %d, %d; Split gave %v, %d, %d", coding, units, parts, seg.Coding, seg.Units, len(seg.Parts))
	}
	if (seg.Coding == gsm.GSM7) != gsm.IsGSM7(s) {
		t.Fatalf("Split(%q) chose %v", s, seg.Coding)
	}
	checkParts(t, seg)
	if got := rejoin(t, seg); got != s {
		t.Fatalf("rejoined %q, want %q", got, s)
	}
	ucs2, err := gsm.DecodeUCS2(gsm.EncodeUCS2(nil, s))
	if err != nil || ucs2 != s {
		t.Fatalf("UCS2 round trip = %q, %v", ucs2, err)
	}
}

// checkParts checks the segment rules: capacities, no pair cut, and every
// part but the last as full as a pair allows.
func checkParts(t *testing.T, seg gsm.Segments) {
	t.Helper()
	single, concat, size := 160, 153, 1
	if seg.Coding == gsm.UCS2 {
		single, concat, size = 140, 134, 2
	}
	total := 0
	for i, p := range seg.Parts {
		total += len(p)
		limit := concat
		if len(seg.Parts) == 1 {
			limit = single
		}
		if len(p) == 0 || len(p) > limit || len(p)%size != 0 {
			t.Fatalf("part %d has %d octets, limit %d", i, len(p), limit)
		}
		if firstHalf(p[len(p)-size:], seg.Coding) || (seg.Coding == gsm.UCS2 && p[0]&0xFC == 0xDC) {
			t.Fatalf("part %d cuts a pair: % X", i, p)
		}
		if i+1 < len(seg.Parts) {
			next := size
			if firstHalf(seg.Parts[i+1], seg.Coding) {
				next *= 2
			}
			if len(p)+next <= concat {
				t.Fatalf("part %d has %d octets, but the next character (%d octets) would fit", i, len(p), next)
			}
		}
	}
	if total != seg.Units*size {
		t.Fatalf("parts hold %d octets for %d units", total, seg.Units)
	}
}

func firstHalf(u []byte, c gsm.Coding) bool {
	if c == gsm.GSM7 {
		return u[0] == 0x1B
	}
	return u[0]&0xFC == 0xD8
}

func rejoin(t *testing.T, seg gsm.Segments) string {
	t.Helper()
	var b strings.Builder
	for i, p := range seg.Parts {
		s, err := gsm.Decode(seg.Coding, p)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		b.WriteString(s)
	}
	return b.String()
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []struct {
		data   []byte
		coding byte
		n      int
	}{
		{nil, 0, 0},
		{[]byte{0x05, 0x00, 0x03, 0x2A, 0x03, 0x01, 'h', 'i'}, 0, 8},
		{[]byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02}, 8, 7},
		{[]byte{0xFF, 0x00}, 3, 100},
		{[]byte{0x1B, 0x65, 0x1B, 0x1B, 0x1B}, 0, 5},
		{[]byte{0xD8, 0x3D, 0xDE, 0x00, 0xD8}, 8, -1},
		{[]byte{0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37}, 1, 10},
		{[]byte{0x80, 0xFF}, 0xF5, 3},
	} {
		f.Add(seed.data, seed.coding, seed.n)
	}
	f.Fuzz(func(t *testing.T, data []byte, coding byte, n int) {
		if s, err := gsm.Decode(gsm.Coding(coding), data); err == nil && !utf8.ValidString(s) {
			t.Fatalf("Decode(%v) gave invalid UTF-8 %q", gsm.Coding(coding), s)
		}
		checkUDH(t, data)
		septets := gsm.Unpack7(nil, data, n)
		if len(septets) > max(0, n) || len(septets) > len(data)*8/7 {
			t.Fatalf("Unpack7(%d octets, %d) gave %d septets", len(data), n, len(septets))
		}
		all := gsm.Unpack7(nil, data, len(data)*8/7)
		for _, c := range all {
			if c > 0x7F {
				t.Fatalf("Unpack7 gave octet 0x%02X", c)
			}
		}
		if len(data)%7 == 0 && !bytes.Equal(gsm.Pack7(nil, all), data) {
			t.Fatalf("Pack7(Unpack7(% X)) differs", data)
		}
	})
}

func checkUDH(t *testing.T, data []byte) {
	t.Helper()
	c, found, n, err := gsm.ParseUDH(data)
	if err != nil {
		if found || n != 0 {
			t.Fatalf("ParseUDH error with found %v, n %d", found, n)
		}
		return
	}
	if n < 1 || n > len(data) {
		t.Fatalf("ParseUDH n = %d for %d octets", n, len(data))
	}
	if found && (c.Seq == 0 || c.Seq > c.Total) {
		t.Fatalf("ParseUDH found invalid %+v", c)
	}
}
