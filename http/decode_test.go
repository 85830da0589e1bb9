package http

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-sms/switchboard"
)

// FuzzDecodeSubmit feeds the request decoder anything: it never panics,
// every failure is a 4xx code, and every request it accepts passes
// Validate and keeps the text it was sent.
func FuzzDecodeSubmit(f *testing.F) {
	for _, seed := range []string{
		validBody,
		`{"to":"+447700900123","from":"Acme","body":"Hello","reference":"r","validity":3600,"callback_url":"https://example.com/h"}`,
		`{"to":"+447700900123","from":"+447700900124","body":"\ud83d\ude00 \u00e9\n","validity":null}`,
		`{"to":"+447700900123","from":"Acme","body":"a\u0000b"}`,
		`{"to":"+447700900123","from":"Acme","body":"\ud800"}`,
		`{"to":"+447700900123","from":"Acme","body":"x","validity":1e400}`,
		`{"to":"+447700900123","from":"Acme","body":"x","extra":[[[[]]]]}`,
		"{\"to\":\"+447700900123\",\"from\":\"Acme\",\"body\":\"caf\xe9\"}",
		`{"to":` + strings.Repeat("[", 1000),
		`{} {}`, ``, `null`, `[]`, `"x"`,
	} {
		f.Add([]byte(seed), "")
		f.Add([]byte(seed), "key-1")
	}
	f.Fuzz(func(t *testing.T, body []byte, idempotencyKey string) {
		req, err := decodeSubmit(body, idempotencyKey, testRules)
		if err != nil {
			code := switchboard.ErrorCode(err)
			if status, known := statusOf(code); !known || status >= 500 || status < 400 {
				t.Fatalf("error %v has code %q (status %d)", err, code, status)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted a request Validate refuses: %v", err)
		}
		if !utf8.Valid(body) || !utf8.ValidString(req.Body) || strings.ContainsRune(req.Body, 0) {
			t.Fatalf("accepted bad text: %q", req.Body)
		}
		if req.Validity < 0 || req.Validity.Seconds() > float64(testRules.maxValidity) {
			t.Fatalf("validity %v", req.Validity)
		}
		if (req.IdempotencyKey != "") != (req.RequestHash != [32]byte{}) {
			t.Fatalf("key %q with hash %x", req.IdempotencyKey, req.RequestHash)
		}
		// Nothing was replaced on the way: a U+FFFD in the body was sent as one.
		if strings.ContainsRune(req.Body, utf8.RuneError) && !strings.ContainsRune(string(body), utf8.RuneError) &&
			!strings.Contains(strings.ToLower(string(body)), `\ufffd`) {
			t.Fatalf("body changed: %q", req.Body)
		}
	})
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " backslash \ slash /`, "\x00\x01\x1f\x7f", "<script>&amp;</script>",
		"\u2028\u2029", "caf\xe9", "\xff\xfe", "😀 é ü ß", strings.Repeat("ab\n", 100)} {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%q → %s: %v", s, b, err)
			continue
		}
		var want string // encoding/json also replaces each invalid byte
		std, _ := json.Marshal(s)
		json.Unmarshal(std, &want)
		if back != want {
			t.Errorf("%q → %s → %q", s, b, back)
		}
		if utf8.ValidString(s) && string(std) != string(b) {
			t.Errorf("%q: %s, encoding/json %s", s, b, std)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello \"world\" \x00 \u2028 <&>")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q → %q", s, back)
		}
	})
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "APPLICATION/JSON": true, "application/json;charset=utf-8": true,
		"application/json; charset=UTF-8; x=y": true, `application/json; charset="utf-8"`: true, " application/json ": true,
		"": false, "application/json; charset=utf-16": false, "text/json": false, "application/json-seq": false,
		"application/problem+json": false, "application/jsonp": false,
	} {
		if got := isJSONContentType([]byte(ct)); got != want {
			t.Errorf("%q: %v", ct, got)
		}
	}
}

func TestValidSurrogates(t *testing.T) {
	for s, want := range map[string]bool{
		`"a"`: true, `"\ud83d\ude00"`: true, `"\\ud800"`: true, `"\\\ud83d\ude00"`: true, `"\u00e9"`: true, `"\n\t\""`: true,
		`"\ud800"`: false, `"\udfff"`: false, `"\ud800\u0041"`: false, `"\\\ud800"`: false, `"\ud800\\"`: false, `\`: true, `\u12`: true,
	} {
		if got := validSurrogates([]byte(s)); got != want {
			t.Errorf("%s: %v", s, got)
		}
	}
}

func TestRouterMatch(t *testing.T) {
	s := &Server{}
	rt := newRouter(s.routes())
	for _, c := range []struct {
		method, path, pattern, param, allow string
	}{
		{"POST", "/v1/messages", pathMessages, "", ""},
		{"POST", "/v1/messages/batch", pathBatch, "", ""},
		{"GET", "/v1/messages/batch", "", "", "POST"},
		{"GET", "/v1/messages/msg_X", pathMessage, "msg_X", ""},
		{"POST", "/v1/messages/msg_X", "", "", "GET"},
		{"GET", "/v1/messages/", "", "", ""},
		{"GET", "/v1/messages/a/b", "", "", ""},
		{"GET", "/healthz", pathHealthz, "", ""},
		{"GET", "/healthzz", "", "", ""},
	} {
		r, param, allow := rt.match([]byte(c.method), []byte(c.path))
		if r.name() != c.pattern && !(r == nil && c.pattern == "") || string(param) != c.param || allow != c.allow {
			t.Errorf("%s %s: %s %q %q", c.method, c.path, r.name(), param, allow)
		}
	}
}

func TestStatusOfCodes(t *testing.T) {
	// Every code has a status; none but internal and unavailable is a 5xx.
	for _, code := range allCodes {
		if status, known := statusOf(code); !known || status >= 500 && code != switchboard.EINTERNAL && code != switchboard.EUNAVAILABLE {
			t.Errorf("%s: %d %v", code, status, known)
		}
	}
}

// A batch of more items than allowed is refused once the count is past the
// limit, without the rest decoded: a 4 MiB body of two million tiny items
// allocates a small multiple of its size, not tens of times it.
func TestDecodeBatchStopsPastTheLimit(t *testing.T) {
	body := []byte(`{"messages":[0` + strings.Repeat(",0", 2_000_000) + `]}`)
	var err error
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = decodeBatch(body, 1000)
	runtime.ReadMemStats(&after)
	if switchboard.ErrorCode(err) != switchboard.EINVALID || !strings.Contains(err.Error(), "must hold 1 to 1000 messages") {
		t.Fatalf("decodeBatch of 2,000,001 items: %v, want invalid: must hold 1 to 1000", err)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*len(body)); got > limit {
		t.Fatalf("decoding allocated %d bytes for a %d-byte body, want at most %d", got, len(body), limit)
	}
	for body, want := range map[string]string{
		`{"messages":[]}`:                   "it holds none",
		`{"messages":null}`:                 "it holds none",
		`{"messages":[{}],"messages":null}`: "it holds none", // the last wins
		`{"messages":5}`:                    `"messages" must be an array`,
	} {
		if _, err := decodeBatch([]byte(body), 1000); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("decodeBatch(%s): %v, want %q", body, err, want)
		}
	}
	if items, err := decodeBatch([]byte(`{"messages":[1,2],"messages":[3]}`), 1000); err != nil || len(items) != 1 || string(items[0]) != "3" {
		t.Errorf("a repeated \"messages\": %s, %v; want the last, [3]", items, err)
	}
}
