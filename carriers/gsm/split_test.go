package gsm_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		coding gsm.Coding
		units  int
		runes  []int // runes in each part
		octets []int // octets in each part
	}{
		{"160 GSM fit one part", strings.Repeat("a", 160), gsm.GSM7, 160, []int{160}, []int{160}},
		{"161 GSM need two", strings.Repeat("a", 161), gsm.GSM7, 161, []int{153, 8}, []int{153, 8}},
		{"306 GSM fill two", strings.Repeat("a", 306), gsm.GSM7, 306, []int{153, 153}, []int{153, 153}},
		{"80 euro fit one part", strings.Repeat("€", 80), gsm.GSM7, 160, []int{80}, []int{160}},
		{"81 euro never split a pair", strings.Repeat("€", 81), gsm.GSM7, 162, []int{76, 5}, []int{152, 10}},
		{"moved pair adds a part", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), gsm.GSM7, 306, []int{152, 152, 1}, []int{152, 153, 1}},
		{"pair at boundary moves", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 10), gsm.GSM7, 164, []int{152, 11}, []int{152, 12}},
		{"extension fills to the brim", strings.Repeat("a", 151) + "€" + strings.Repeat("a", 10), gsm.GSM7, 163, []int{152, 10}, []int{153, 10}},
		{"70 cyrillic fit one part", strings.Repeat("ш", 70), gsm.UCS2, 70, []int{70}, []int{140}},
		{"71 cyrillic need two", strings.Repeat("ш", 71), gsm.UCS2, 71, []int{67, 4}, []int{134, 8}},
		{"35 emoji fit one part", strings.Repeat("😀", 35), gsm.UCS2, 70, []int{35}, []int{140}},
		{"36 emoji never split a pair", strings.Repeat("😀", 36), gsm.UCS2, 72, []int{33, 3}, []int{132, 12}},
		{"one non-GSM rune makes all UCS2", strings.Repeat("a", 69) + "ç", gsm.UCS2, 70, []int{70}, []int{140}},
		{"GSM text past 70 units goes UCS2 by one rune", strings.Repeat("a", 70) + "ç", gsm.UCS2, 71, []int{67, 4}, []int{134, 8}},
		{"Greek and Latin-1 stay GSM", "ΔΦΓΛΩΠΨΣΘΞ£¥èÇ", gsm.GSM7, 14, []int{14}, []int{14}},
		{"short", "Hi", gsm.GSM7, 2, []int{2}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seg, err := gsm.Split(tt.text, 0)
			if err != nil {
				t.Fatal(err)
			}
			if seg.Coding != tt.coding || seg.Units != tt.units {
				t.Errorf("coding, units = %v, %d; want %v, %d", seg.Coding, seg.Units, tt.coding, tt.units)
			}
			if len(seg.Parts) != len(tt.runes) {
				t.Fatalf("%d parts, want %d", len(seg.Parts), len(tt.runes))
			}
			var joined strings.Builder
			for i, p := range seg.Parts {
				s, err := gsm.Decode(seg.Coding, p)
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				if n := utf8.RuneCountInString(s); n != tt.runes[i] || len(p) != tt.octets[i] {
					t.Errorf("part %d has %d runes in %d octets, want %d in %d", i, n, len(p), tt.runes[i], tt.octets[i])
				}
				joined.WriteString(s)
			}
			if joined.String() != tt.text {
				t.Errorf("joined parts = %q, want %q", joined.String(), tt.text)
			}
			coding, units, parts := gsm.Count(tt.text)
			if coding != seg.Coding || units != seg.Units || parts != len(seg.Parts) {
				t.Errorf("Count = %v, %d, %d; Split gave %v, %d, %d", coding, units, parts, seg.Coding, seg.Units, len(seg.Parts))
			}
		})
	}
}

func TestSplitMaxParts(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		maxParts int
		parts    int
		code     string
	}{
		{"10 parts allowed by default", strings.Repeat("a", 1530), 0, 10, ""},
		{"11 parts refused by default", strings.Repeat("a", 1531), 0, 11, switchboard.ETOOLONG},
		{"negative means default", strings.Repeat("a", 1531), -1, 11, switchboard.ETOOLONG},
		{"10 UCS2 parts allowed", strings.Repeat("ш", 670), 10, 10, ""},
		{"11 UCS2 parts refused", strings.Repeat("ш", 671), 10, 11, switchboard.ETOOLONG},
		{"one part limit", strings.Repeat("a", 161), 1, 2, switchboard.ETOOLONG},
		{"larger limit", strings.Repeat("a", 1531), 11, 11, ""},
		{"limit above 255 is 255", strings.Repeat("a", 153*256), 1000, 256, switchboard.ETOOLONG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seg, err := gsm.Split(tt.text, tt.maxParts)
			if got := switchboard.ErrorCode(err); got != tt.code {
				t.Fatalf("ErrorCode = %q, want %q (%v)", got, tt.code, err)
			}
			if _, _, n := gsm.Count(tt.text); n != tt.parts {
				t.Errorf("Count parts = %d, want %d", n, tt.parts)
			}
			if err == nil && len(seg.Parts) != tt.parts {
				t.Errorf("%d parts, want %d", len(seg.Parts), tt.parts)
			}
		})
	}
}

func TestSplitTooLongMessage(t *testing.T) {
	_, err := gsm.Split(strings.Repeat("a", 1531), 0)
	msg := switchboard.ErrorMessage(err)
	if !strings.Contains(msg, "11 parts") || !strings.Contains(msg, "10") {
		t.Errorf("message %q does not give the parts needed and the maximum", msg)
	}
}

func TestSplitInvalidBody(t *testing.T) {
	for _, text := range []string{"", "abc\xff", "\xc3", "\xed\xa0\x80"} {
		seg, err := gsm.Split(text, 0)
		if code := switchboard.ErrorCode(err); code != switchboard.EINVALIDBODY {
			t.Errorf("Split(%q) code = %q, want %q", text, code, switchboard.EINVALIDBODY)
		}
		if seg.Parts != nil {
			t.Errorf("Split(%q) returned parts on error", text)
		}
	}
}

func TestSplitPartsDoNotOverlap(t *testing.T) {
	seg, err := gsm.Split(strings.Repeat("a", 200), 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(seg.Parts[0], 'X')
	if seg.Parts[1][0] != 'a' {
		t.Error("appending to part 0 overwrote part 1")
	}
}

func TestSplitInto(t *testing.T) {
	var seg gsm.Segments
	buf := make([]byte, 0, 160*gsm.DefaultMaxParts)
	for _, text := range []string{strings.Repeat("€", 81), "short", strings.Repeat("😀", 36)} {
		if err := gsm.SplitInto(&seg, buf, text, 0); err != nil {
			t.Fatal(err)
		}
		want, _ := gsm.Split(text, 0)
		if seg.Coding != want.Coding || seg.Units != want.Units || len(seg.Parts) != len(want.Parts) {
			t.Fatalf("SplitInto(%q) = %v, %d, %d parts; Split gave %v, %d, %d", text, seg.Coding, seg.Units, len(seg.Parts), want.Coding, want.Units, len(want.Parts))
		}
		for i := range seg.Parts {
			if string(seg.Parts[i]) != string(want.Parts[i]) {
				t.Errorf("SplitInto(%q) part %d differs from Split", text, i)
			}
		}
	}
	before := seg
	if err := gsm.SplitInto(&seg, buf, "", 0); switchboard.ErrorCode(err) != switchboard.EINVALIDBODY {
		t.Errorf("SplitInto(\"\") error %v", err)
	}
	if seg.Units != before.Units || len(seg.Parts) != len(before.Parts) {
		t.Error("SplitInto changed seg on error")
	}
}

func TestAllocations(t *testing.T) {
	text := strings.Repeat("Hello {world} ", 109)[:1200]
	ucs2 := text + "ш"
	var seg gsm.Segments
	buf := make([]byte, 0, 160*gsm.DefaultMaxParts)
	if err := gsm.SplitInto(&seg, buf, text, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Count", 0, func() { gsm.Count(text) }},
		{"Count UCS2", 0, func() { gsm.Count(ucs2) }},
		{"SplitInto", 0, func() { _ = gsm.SplitInto(&seg, buf, text, 0) }},
		{"Split", 2, func() { _, _ = gsm.Split(text, 0) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n > tt.max {
			t.Errorf("%s: %v allocations, want at most %v", tt.name, n, tt.max)
		}
	}
}

func TestCountEmptyAndInvalid(t *testing.T) {
	if c, u, p := gsm.Count(""); c != gsm.GSM7 || u != 0 || p != 0 {
		t.Errorf("Count(\"\") = %v, %d, %d", c, u, p)
	}
	if c, u, p := gsm.Count("a\xff"); c != gsm.UCS2 || u != 2 || p != 1 {
		t.Errorf("Count(invalid) = %v, %d, %d", c, u, p)
	}
}
