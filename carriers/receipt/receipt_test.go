package receipt

import (
	"errors"
	"testing"
	"time"
)

func date(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

func TestParse(t *testing.T) {
	submit := date(2023, 1, 15, 10, 30, 0)
	done := date(2023, 1, 15, 10, 31, 0)
	tests := []struct {
		name string
		in   string
		want Fields
	}{
		{
			name: "canonical",
			in:   "id:1234567890 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Hello world",
			want: Fields{ID: "1234567890", Sub: "001", Dlvrd: "001", SubmitDate: submit, DoneDate: done, Stat: Delivered, Err: "000", Text: "Hello world"},
		},
		{
			name: "mixed case names and state",
			in:   "Id:42 SUB:001 Dlvrd:000 Submit Date:2301151030 DONE DATE:2301151031 Stat:undeliv Err:005 Text:x",
			want: Fields{ID: "42", Sub: "001", Dlvrd: "000", SubmitDate: submit, DoneDate: done, Stat: Undeliverable, Err: "005", Text: "x"},
		},
		{
			name: "underscore date names",
			in:   "id:42 submit_date:2301151030 Done_Date:2301151031 stat:DELIVRD",
			want: Fields{ID: "42", SubmitDate: submit, DoneDate: done, Stat: Delivered},
		},
		{
			name: "no text",
			in:   "id:42 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000",
			want: Fields{ID: "42", Sub: "001", Dlvrd: "001", SubmitDate: submit, DoneDate: done, Stat: Delivered, Err: "000"},
		},
		{
			name: "no dates no err",
			in:   "id:42 stat:EXPIRED text:",
			want: Fields{ID: "42", Stat: Expired},
		},
		{
			name: "id only",
			in:   "id:42",
			want: Fields{ID: "42"},
		},
		{
			name: "stat only",
			in:   "stat:REJECTD",
			want: Fields{Stat: Rejected},
		},
		{
			name: "extra unknown fields",
			in:   "id:42 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 ErrCode:0 mcc:234 mnc:15 text:hi",
			want: Fields{ID: "42", Sub: "001", Dlvrd: "001", SubmitDate: submit, DoneDate: done, Stat: Delivered, Err: "000", Text: "hi"},
		},
		{
			name: "reordered",
			in:   "stat:DELIVRD err:000 done date:2301151031 id:42 dlvrd:001 submit date:2301151030 sub:001 text:t",
			want: Fields{ID: "42", Sub: "001", Dlvrd: "001", SubmitDate: submit, DoneDate: done, Stat: Delivered, Err: "000", Text: "t"},
		},
		{
			name: "multiple spaces tabs and newlines",
			in:   "  id:42   sub:001\tdlvrd:001  submit   date:2301151030\r\ndone date:2301151031  stat:DELIVRD   err:000   text:a  b",
			want: Fields{ID: "42", Sub: "001", Dlvrd: "001", SubmitDate: submit, DoneDate: done, Stat: Delivered, Err: "000", Text: "a  b"},
		},
		{
			name: "12-digit dates",
			in:   "id:42 submit date:230115103005 done date:230115103159 stat:DELIVRD",
			want: Fields{ID: "42", SubmitDate: date(2023, 1, 15, 10, 30, 5), DoneDate: date(2023, 1, 15, 10, 31, 59), Stat: Delivered},
		},
		{
			name: "text containing fields and colons",
			in:   "id:42 stat:DELIVRD err:000 text:stat:REJECTD id:7 at 10:30 err:1",
			want: Fields{ID: "42", Stat: Delivered, Err: "000", Text: "stat:REJECTD id:7 at 10:30 err:1"},
		},
		{
			name: "text kept verbatim including leading space",
			in:   "id:42 stat:DELIVRD text: spaced ",
			want: Fields{ID: "42", Stat: Delivered, Text: " spaced "},
		},
		{
			name: "uuid-like id with dashes and hex letters",
			in:   "id:3f2a9c1e-7b4d-4e8a-9f00-0a1b2c3d4e5f sub:001 stat:ACCEPTD",
			want: Fields{ID: "3f2a9c1e-7b4d-4e8a-9f00-0a1b2c3d4e5f", Sub: "001", Stat: Accepted},
		},
		{
			name: "hex id",
			in:   "id:0A1B2C3D stat:ENROUTE",
			want: Fields{ID: "0A1B2C3D", Stat: Enroute},
		},
		{
			name: "space after colon",
			in:   "id: 42 stat: DELIVRD err: 000",
			want: Fields{ID: "42", Stat: Delivered, Err: "000"},
		},
		{
			name: "empty values",
			in:   "id:42 sub: dlvrd: submit date: done date: stat:DELIVRD err: text:",
			want: Fields{ID: "42", Stat: Delivered},
		},
		{
			name: "unrecognised state kept upper-cased",
			in:   "id:42 stat:buffred",
			want: Fields{ID: "42", Stat: State("BUFFRED")},
		},
		{
			name: "long state spelling",
			in:   "id:42 stat:Delivered",
			want: Fields{ID: "42", Stat: Delivered},
		},
		{
			name: "invalid dates are zero",
			in:   "id:42 submit date:2302301200 done date:23011510 stat:DELIVRD",
			want: Fields{ID: "42", Stat: Delivered},
		},
		{
			name: "leap day",
			in:   "id:42 done date:2402291200",
			want: Fields{ID: "42", DoneDate: date(2024, 2, 29, 12, 0, 0)},
		},
		{
			name: "first occurrence wins",
			in:   "id:1 id:2 stat:DELIVRD stat:UNDELIV",
			want: Fields{ID: "1", Stat: Delivered},
		},
		{
			name: "leading junk words",
			in:   "DLR: id:42 stat:DELIVRD",
			want: Fields{ID: "42", Stat: Delivered},
		},
		{
			name: "value glued to colon may contain colons",
			in:   "id:ab:cd stat:DELIVRD",
			want: Fields{ID: "ab:cd", Stat: Delivered},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, nil)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			assertFields(t, got, tt.want)
		})
	}
}

func assertFields(t *testing.T, got, want Fields) {
	t.Helper()
	if got.ID != want.ID || got.Sub != want.Sub || got.Dlvrd != want.Dlvrd ||
		got.Stat != want.Stat || got.Err != want.Err || got.Text != want.Text {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if !got.SubmitDate.Equal(want.SubmitDate) {
		t.Errorf("SubmitDate = %v, want %v", got.SubmitDate, want.SubmitDate)
	}
	if !got.DoneDate.Equal(want.DoneDate) {
		t.Errorf("DoneDate = %v, want %v", got.DoneDate, want.DoneDate)
	}
}

func TestParseNotReceipt(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"hello, are we still on for 10:30?",
		"sub:001 dlvrd:001 err:000 text:no id or stat",
		"id: stat: text:id:1 stat:DELIVRD",
		"\x00\xff\xfe:::",
		"text:id:42 stat:DELIVRD",
	} {
		f, err := Parse(in, nil)
		if !errors.Is(err, ErrNotReceipt) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrNotReceipt", in, f, err)
		}
	}
}

func TestParseLocation(t *testing.T) {
	loc := time.FixedZone("UTC+3", 3*3600)
	f, err := Parse("id:1 done date:2301151030", loc)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2023, 1, 15, 7, 30, 0, 0, time.UTC)
	if !f.DoneDate.Equal(want) || f.DoneDate.Location() != loc {
		t.Errorf("DoneDate = %v, want %v in %v", f.DoneDate, want, loc)
	}
}

func TestFormat(t *testing.T) {
	f := Fields{
		ID:         "abc-123",
		SubmitDate: date(2023, 1, 15, 10, 30, 45),
		DoneDate:   date(2023, 1, 15, 10, 31, 0),
		Stat:       Delivered,
		Text:       "Hello world, this is longer than twenty",
	}
	want := "id:abc-123 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Hello world, this is"
	if got := Format(f); got != want {
		t.Errorf("Format = %q\nwant     %q", got, want)
	}
}

func TestFormatDefaults(t *testing.T) {
	got := Format(Fields{ID: "1", Stat: Undeliverable, Err: "005", Text: "ÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßxyz"})
	want := "id:1 sub:001 dlvrd:000 submit date:0000000000 done date:0000000000 stat:UNDELIV err:005 text:ÄÖÜäöüßÄÖÜäöüßÄÖÜäöü"
	if got != want {
		t.Errorf("Format = %q\nwant     %q", got, want)
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	in := Fields{
		ID:         "0A1B2C3D",
		Sub:        "001",
		Dlvrd:      "000",
		SubmitDate: date(2024, 2, 29, 23, 59, 0),
		DoneDate:   date(2024, 3, 1, 0, 1, 0),
		Stat:       Expired,
		Err:        "027",
		Text:       "stat:DELIVRD id:9 x:",
	}
	got, err := Parse(Format(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	assertFields(t, got, in)

	zero, err := Parse(Format(Fields{ID: "1"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !zero.SubmitDate.IsZero() || !zero.DoneDate.IsZero() || zero.Stat != "" {
		t.Errorf("zero fields did not round-trip: %+v", zero)
	}
}

func TestStateMessageState(t *testing.T) {
	for v := byte(1); v <= 8; v++ {
		if got := StateFromMessageState(v).MessageState(); got != v {
			t.Errorf("round trip of %d = %d", v, got)
		}
	}
	for _, v := range []byte{0, 9, 255} {
		if got := StateFromMessageState(v); got != Unknown {
			t.Errorf("StateFromMessageState(%d) = %q, want UNKNOWN", v, got)
		}
	}
	if got := State("BUFFRED").MessageState(); got != 7 {
		t.Errorf("unrecognised state MessageState = %d, want 7", got)
	}
}

func TestStateFinal(t *testing.T) {
	tests := map[State]bool{
		Delivered: true, Expired: true, Deleted: true, Undeliverable: true,
		Unknown: true, Rejected: true, "BUFFRED": true,
		Accepted: false, Enroute: false, "": false,
	}
	for s, want := range tests {
		if got := s.Final(); got != want {
			t.Errorf("%q.Final() = %v, want %v", s, got, want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	const in = "id:1234567890 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Hello world"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(in, nil); err != nil {
			b.Fatal(err)
		}
	}
}
