package concat_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/concat"
)

// FuzzReassemble cuts a text into parts of a random size and adds them in
// a random order with duplicates, leaving some out until an Expire in the
// middle, with a memory limit or none. It checks that nothing panics,
// that every part accepted comes back exactly once (completed, expired or
// given up for room), that a message with every part equals the text,
// and that a partial one holds what its parts hold.
func FuzzReassemble(f *testing.F) {
	for _, s := range []struct {
		text  string
		size  uint8
		order []byte
		limit uint16
	}{
		{"hello", 2, []byte{2, 0, 1}, 0},
		{strings.Repeat("€{}", 30), 7, []byte{5, 5, 1, 0, 200, 3}, 0},
		{strings.Repeat("😀ш", 40), 5, []byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 0},
		{"ab😀cd", 6, []byte{1, 1, 1, 0}, 0},
		{"", 1, nil, 0},
		{strings.Repeat("abc", 100), 20, []byte{3, 1, 4, 1, 5, 9, 2, 6}, 600},
		{strings.Repeat("xyz", 50), 9, []byte{1, 0, 2, 1}, 200},
	} {
		f.Add(s.text, s.size, s.order, s.limit)
	}
	f.Fuzz(func(t *testing.T, text string, size uint8, order []byte, limit uint16) {
		if text == "" || !utf8.ValidString(text) {
			return
		}
		_, ud := encode(t, text)
		n := max(int(size), 1, (len(ud)+254)/255)
		parts := msg{from: "447700900123", to: "12345", text: text, ref: 77, size: n}.parts(t)

		r := concat.New(timeout, concat.Limits{Bytes: int(limit)})
		var got []concat.Assembled
		accepted := 0
		feed := func(p switchboard.InboundPart) {
			res, err := r.Add(p)
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if !res.Duplicate {
				accepted++
			}
			if res.Evicted != nil && limit == 0 {
				t.Fatalf("evicted without a limit: %+v", res.Evicted)
			}
			got = append(got, res.Evicted...)
			if res.Complete {
				got = append(got, res.Message)
			}
		}
		// The order bytes pick parts; a byte's high bit expires what is
		// pending at that point (the time is far past every part).
		for _, b := range order {
			if b&0x80 != 0 {
				got = append(got, r.Expire(t0.Add(24*time.Hour))...)
				continue
			}
			feed(parts[int(b)%len(parts)])
		}
		for _, p := range parts {
			feed(p)
		}
		got = append(got, r.Expire(t0.Add(24*time.Hour))...)

		returned, complete := 0, 0
		for _, m := range got {
			returned += len(m.Parts)
			body, _ := concat.Decode(m.Parts)
			if m.Body != body || !utf8.ValidString(m.Body) {
				t.Fatalf("body %q, Decode of its parts %q", m.Body, body)
			}
			if m.Partial != (len(m.Parts) < len(parts)) || m.Segments != len(parts) {
				t.Fatalf("%d of %d parts, partial %v, segments %d", len(m.Parts), len(parts), m.Partial, m.Segments)
			}
			if !m.Partial {
				complete++
				if m.Body != text {
					t.Fatalf("assembled %q, want %q", m.Body, text)
				}
			}
		}
		if returned != accepted || (complete == 0 && limit == 0) || r.Pending() != 0 {
			t.Fatalf("%d parts accepted, %d returned, %d complete, %d pending", accepted, returned, complete, r.Pending())
		}
	})
}

// FuzzDecode feeds arbitrary payloads in any coding, cut anywhere.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("\x1b\x65abc"), byte(0), uint8(1))
	f.Add([]byte{0xD8, 0x3D, 0xDE, 0x00, 0xD8}, byte(8), uint8(3))
	f.Add([]byte{0xFF, 0x00}, byte(0xF4), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, coding byte, size uint8) {
		chunks := cut(data, max(int(size), 1, (len(data)+254)/255))
		parts := make([]switchboard.InboundPart, len(chunks))
		for i, c := range chunks {
			parts[i] = switchboard.InboundPart{DataCoding: coding, Payload: c,
				Concat: &switchboard.Concat{Total: uint8(len(chunks)), Seq: uint8(len(chunks) - i)}}
		}
		body, enc := concat.Decode(parts)
		if !utf8.ValidString(body) {
			t.Fatalf("invalid UTF-8 %q", body)
		}
		switch enc {
		case "gsm7", "ucs2", "latin1", "ascii", "binary":
		case "":
			if len(parts) != 0 {
				t.Fatal("no encoding")
			}
		default:
			t.Fatalf("encoding %q", enc)
		}
	})
}
