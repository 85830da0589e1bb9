package receipt

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse checks two things: Parse survives any text, and whatever Format
// writes from whitespace-free id, stat and err comes back through Parse.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"id:1234567890 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Hello world",
		"Id:abc-DEF sub:001 Submit_date:230115103005 DONE DATE:2301151031 STAT:undeliv ErrCode:5 err:005 mcc:234 text:a:b stat:x",
		"stat:EXPIRED err: text:",
		"id: stat: text:",
		"submit date: done date:",
		"submit   done date:1",
		"text:",
		"::: id",
		"\x00\xff\xfe\t\r\n",
		"id:ü stat:ß",
	}
	for i, s := range seeds {
		f.Add(s, "0A1B", []string{"DELIVRD", "undeliv", "", "BUFFRED"}[i%4], "000", "hello")
	}
	f.Fuzz(func(t *testing.T, text, id, stat, errCode, body string) {
		_, _ = Parse(text, nil)
		_, _ = Parse(text, time.FixedZone("X", -5*3600))

		if strings.ContainsFunc(id+stat+errCode, isSpaceRune) {
			return
		}
		in := Fields{ID: id, Stat: State(stat), Err: errCode, Text: body}
		out, err := Parse(Format(in), nil)
		if id == "" && stat == "" {
			if err == nil {
				t.Fatalf("Parse(Format(%+v)) = %+v, want ErrNotReceipt", in, out)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(Format(%+v)): %v", in, err)
		}
		wantErr := errCode
		if wantErr == "" {
			wantErr = "000"
		}
		if out.ID != id || out.Stat != normalizeState(stat) || out.Err != wantErr || out.Text != truncate(body, maxText) {
			t.Fatalf("round trip of %+v gave %+v", in, out)
		}
	})
}

func isSpaceRune(r rune) bool {
	return r < 0x80 && isSpace(byte(r))
}
