package http

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFlat checks the fast path against encoding/json: whatever
// decodeFlat accepts, encoding/json (with unknown fields refused, as
// decodeObject uses it) decodes without error to the same value.
func FuzzDecodeFlat(f *testing.F) {
	for _, seed := range []string{
		validBody,
		`{"to":"+447700900123","from":"Acme","body":"Hello","reference":"r","validity":3600,"callback_url":"https://example.com/h"}`,
		` { "to" : "+447700900123" , "body":"x", "validity" : null } `,
		`{"to":"a","to":"b","validity":5,"validity":null}`,
		`{"idempotency_key":"k-1","body":"x"}`,
		`{"validity":-0}`, `{"validity":007}`, `{"validity":1.5}`, `{"validity":1e3}`, `{"validity":123456789012345678}`,
		`{"TO":"x"}`, `{"body":"a\nb"}`, `{"body":"caf` + "\xc3\xa9" + `"}`, `{}`, `{} x`, `{"to":1}`, `{"to":"x",}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, withIdem bool) {
		if !utf8.Valid(data) {
			return
		}
		var fast submitBody
		var fastIdem string
		idem := &fastIdem
		if !withIdem {
			idem = nil
		}
		if !decodeFlat(data, &fast, idem) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		var std batchItem
		var err error
		if withIdem {
			err = dec.Decode(&std)
		} else {
			err = dec.Decode(&std.submitBody)
		}
		if err != nil {
			t.Fatalf("decodeFlat accepted %q; encoding/json: %v", data, err)
		}
		if !reflect.DeepEqual(fast, std.submitBody) || fastIdem != std.IdempotencyKey {
			t.Fatalf("%q: decodeFlat %+v %q, encoding/json %+v %q", data, fast, fastIdem, std.submitBody, std.IdempotencyKey)
		}
	})
}

// The shapes clients send take the fast path; the rest fall back.
func TestDecodeFlatTakes(t *testing.T) {
	for body, want := range map[string]bool{
		validBody: true,
		`{"to":"+447700900123","from":"Acme","body":"Hello","validity":60}`: true,
		`{"to":"+447700900123","from":"Acme","body":"line\nbreak"}`:         false, // an escape
		`{"to":"+447700900123","from":"Acme","body":"x","extra":"y"}`:       false, // an unknown field: encoding/json's error
		`{"To":"+447700900123"}`: false, // case-insensitive match: encoding/json's
		`{"validity":"60"}`:      false, // a wrong type: encoding/json's error
	} {
		var in submitBody
		if got := decodeFlat([]byte(body), &in, nil); got != want {
			t.Errorf("decodeFlat(%s) = %v, want %v", body, got, want)
		}
	}
}
