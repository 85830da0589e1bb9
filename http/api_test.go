package http

import (
	"context"
	"errors"
	"fmt"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-sms/switchboard"
)

func TestSubmit(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, body := ts.do(t, "POST", "/v1/messages",
		`{"to":"+447700900123","from":"Acme","body":"Hello","reference":"order-42","validity":3600,"callback_url":"https://example.com/hook"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := decode[acceptedBody](t, body)
	want := acceptedBody{ID: got.ID, Status: "accepted", To: "+447700900123", From: "Acme", Segments: 1,
		Encoding: "gsm7", AcceptedAt: "2025-01-02T03:04:05.6Z", Reference: "order-42"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !validMessageID([]byte(got.ID)) {
		t.Errorf("id %q", got.ID)
	}
	reqs := ts.engine.lastCall()
	if len(reqs) != 1 {
		t.Fatalf("engine got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Validity != time.Hour || r.CallbackURL != "https://example.com/hook" || r.Reference != "order-42" || r.Body != "Hello" {
		t.Errorf("engine got %+v", r)
	}
	if r.IdempotencyKey != "" || r.RequestHash != ([32]byte{}) {
		t.Errorf("no Idempotency-Key, but the request has %q %x", r.IdempotencyKey, r.RequestHash)
	}
}

// validity is checked against the configured maximum (limits.max_validity),
// with one message whatever was wrong with it.
func TestValidityLimit(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxValidity = time.Hour })
	for _, v := range []string{"3601", "0", "-1", "1.5", `"1h"`, "99999999999999999999"} {
		resp, body := ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":`+v+`}`)
		if e := wantError(t, resp, body, 400, switchboard.EINVALID); e.Error.Message != `"validity" must be a whole number of seconds from 1 to 3600.` {
			t.Errorf("validity %s: %q", v, e.Error.Message)
		}
	}
	for _, v := range []string{"1", "3600", "null"} {
		if resp, body := ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":`+v+`}`); resp.StatusCode != 202 {
			t.Errorf("validity %s: %d %s", v, resp.StatusCode, body)
		}
	}
}

func TestSubmitContentTypeParams(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\"", "application/json ; foo=bar"} {
		resp, body := ts.do(t, "POST", "/v1/messages", validBody, "Content-Type", ct)
		if resp.StatusCode != 202 {
			t.Errorf("%q: %d %s", ct, resp.StatusCode, body)
		}
	}
	for _, ct := range []string{"", "text/plain", "application/json; charset=latin1", "application/jsonx", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"} {
		resp, body := ts.do(t, "POST", "/v1/messages", validBody, "Content-Type", ct)
		wantError(t, resp, body, 415, switchboard.EMEDIATYPE)
		resp, body = ts.do(t, "POST", "/v1/messages/batch", `{"messages":[`+validBody+`]}`, "Content-Type", ct)
		wantError(t, resp, body, 415, switchboard.EMEDIATYPE)
	}
}

func TestIdempotency(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, first := ts.do(t, "POST", "/v1/messages", validBody, "Idempotency-Key", "order-42/attempt")
	if resp.StatusCode != 202 {
		t.Fatalf("%d %s", resp.StatusCode, first)
	}
	hash := ts.engine.lastCall()[0].RequestHash
	if hash == ([32]byte{}) || ts.engine.lastCall()[0].IdempotencyKey != "order-42/attempt" {
		t.Fatalf("engine got %+v", ts.engine.lastCall()[0])
	}
	// The same fields, spelt differently: the same request.
	same := "{ \"body\" : \"Hel\\u006co\",\n \"from\":\"Acme\", \"to\":\"+447700900123\", \"validity\": null }"
	resp, replay := ts.do(t, "POST", "/v1/messages", same, "Idempotency-Key", "order-42/attempt")
	if resp.StatusCode != 202 || string(replay) != string(first) {
		t.Errorf("replay: %d %s, want 202 %s", resp.StatusCode, replay, first)
	}
	if got := ts.engine.lastCall()[0].RequestHash; got != hash {
		t.Errorf("hash changed with spelling: %x != %x", got, hash)
	}
	// Another body: a conflict.
	resp, body := ts.do(t, "POST", "/v1/messages", strings.Replace(validBody, "Hello", "Hello!", 1), "Idempotency-Key", "order-42/attempt")
	wantError(t, resp, body, 409, switchboard.EIDEMPOTENCY)
	// Every field is part of the hash.
	base := switchboard.SubmitRequest{To: "+447700900123", From: "Acme", Body: "Hi", CallbackURL: "https://x.test/", Reference: "r", Validity: time.Hour}
	seen := map[[32]byte]string{requestHash(&base): "base"}
	for name, edit := range map[string]func(*switchboard.SubmitRequest){
		"to":       func(r *switchboard.SubmitRequest) { r.To = "+447700900124" },
		"from":     func(r *switchboard.SubmitRequest) { r.From = "Acme2" },
		"body":     func(r *switchboard.SubmitRequest) { r.Body = "Hi!" },
		"callback": func(r *switchboard.SubmitRequest) { r.CallbackURL = "" },
		"ref":      func(r *switchboard.SubmitRequest) { r.Reference = "" },
		"validity": func(r *switchboard.SubmitRequest) { r.Validity = 2 * time.Hour },
		"shift":    func(r *switchboard.SubmitRequest) { r.From, r.Body = "AcmeH", "i" },
	} {
		r := base
		edit(&r)
		h := requestHash(&r)
		if other, dup := seen[h]; dup {
			t.Errorf("%s hashes like %s", name, other)
		}
		seen[h] = name
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, key := range []string{strings.Repeat("k", 256), "caf\u00e9"} {
		resp, body := ts.do(t, "POST", "/v1/messages", validBody, "Idempotency-Key", key)
		wantError(t, resp, body, 400, switchboard.EINVALID)
	}
	resp, body := ts.do(t, "POST", "/v1/messages", validBody, "Idempotency-Key", strings.Repeat("k", 255))
	if resp.StatusCode != 202 {
		t.Errorf("255 characters: %d %s", resp.StatusCode, body)
	}
	// Control characters cannot be sent by net/http; a raw request can.
	raw := rawRequest(t, ts, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testSecret+
		"\r\nContent-Type: application/json\r\nIdempotency-Key: a\x01b\r\nContent-Length: "+fmt.Sprint(len(validBody))+"\r\n\r\n"+validBody)
	if !strings.HasPrefix(raw, "HTTP/1.1 400") {
		t.Errorf("control character: %q", raw)
	}
}

func TestBatch(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.engine.setErr("+447700900999", &switchboard.Error{Code: switchboard.ERATELIMITED, Message: "Slow down.", RetryAfter: 1500 * time.Millisecond})
	batch := `{"messages":[
		{"to":"+447700900123","from":"Acme","body":"one","idempotency_key":"k1"},
		{"to":"123","from":"Acme","body":"bad to"},
		{"to":"+447700900123","from":"Acme","body":"two","extra":1},
		{"to":"+447700900999","from":"Acme","body":"limited"},
		{"to":"+447700900123","from":"Acme","body":"three","validity":"1h"},
		[1,2],
		{"to":"+447700900124","from":"Acme","body":"four","reference":"r4"}
	]}`
	resp, body := ts.do(t, "POST", "/v1/messages/batch", batch)
	if resp.StatusCode != 202 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	type item struct {
		Index    int    `json:"index"`
		ID       string `json:"id"`
		Status   string `json:"status"`
		Segments int    `json:"segments"`
		Error    *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	got := decode[struct {
		Results  []item `json:"results"`
		Accepted int    `json:"accepted"`
		Rejected int    `json:"rejected"`
	}](t, body)
	if got.Accepted != 2 || got.Rejected != 5 || len(got.Results) != 7 {
		t.Fatalf("%s", body)
	}
	wantCodes := []string{"", switchboard.EINVALIDTO, switchboard.EINVALID, switchboard.ERATELIMITED, switchboard.EINVALID, switchboard.EINVALID, ""}
	for i, r := range got.Results {
		if r.Index != i {
			t.Errorf("result %d has index %d", i, r.Index)
		}
		switch {
		case wantCodes[i] == "" && (r.Error != nil || r.ID == "" || r.Status != "accepted" || r.Segments != 1):
			t.Errorf("item %d: %+v", i, r)
		case wantCodes[i] != "" && (r.Error == nil || r.Error.Code != wantCodes[i] || r.ID != ""):
			t.Errorf("item %d: %+v, want %s", i, r, wantCodes[i])
		}
	}
	if msg := got.Results[2].Error.Message; !strings.Contains(msg, `"extra"`) {
		t.Errorf("unknown field not named: %q", msg)
	}
	if msg := got.Results[4].Error.Message; !strings.Contains(msg, `"validity"`) {
		t.Errorf("wrong type not named: %q", msg)
	}
	// Valid items went to the engine in one call, in order.
	reqs := ts.engine.lastCall()
	if len(reqs) != 3 || reqs[0].Body != "one" || reqs[1].Body != "limited" || reqs[2].Body != "four" {
		t.Errorf("engine got %+v", reqs)
	}
	if reqs[0].IdempotencyKey != "k1" || reqs[0].RequestHash == ([32]byte{}) {
		t.Errorf("per-item idempotency key lost: %+v", reqs[0])
	}
}

// An item whose text is not valid UTF-8, or holds a lone surrogate, is
// refused alone; the batch's other items are accepted.
func TestBatchBadTextFailsOnlyItsItem(t *testing.T) {
	ts := newTestServer(t, nil)
	good := `{"to":"+447700900123","from":"Acme","body":"fine"}`
	for _, bad := range []string{
		`{"to":"+447700900123","from":"Acme","body":"\ud83d"}`,
		"{\"to\":\"+447700900123\",\"from\":\"Acme\",\"body\":\"\xff\"}",
	} {
		resp, body := ts.do(t, "POST", "/v1/messages/batch", `{"messages":[`+good+`,`+bad+`]}`)
		if resp.StatusCode != 202 || !strings.Contains(string(body), `"accepted":1,"rejected":1`) ||
			!strings.Contains(string(body), `"index":1,"error":{"code":"invalid"`) {
			t.Errorf("%q: %d %s", bad, resp.StatusCode, body)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	ts := newTestServer(t, nil)
	item := `{"to":"+447700900123","from":"Acme","body":"x"}`
	batch := func(n int) string {
		return `{"messages":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	resp, body := ts.do(t, "POST", "/v1/messages/batch", batch(1000))
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"accepted":1000,"rejected":0`) {
		t.Fatalf("1000: %d %.200s", resp.StatusCode, body)
	}
	for _, b := range []string{batch(1001), `{"messages":[]}`, `{"messages":null}`, `{}`} {
		resp, body = ts.do(t, "POST", "/v1/messages/batch", b)
		wantError(t, resp, body, 400, switchboard.EINVALID)
	}
	for _, b := range []string{`{"messages":[` + item + `}`, `{"messages":[` + item + `]} x`, `{"messages":{}}`, `{"message":[]}`, `[]`} {
		resp, body = ts.do(t, "POST", "/v1/messages/batch", b)
		wantError(t, resp, body, 400, switchboard.EINVALID)
	}
	resp, body = ts.do(t, "POST", "/v1/messages/batch", batch(1), "Idempotency-Key", "k")
	wantError(t, resp, body, 400, switchboard.EINVALID)
}

func TestGetMessage(t *testing.T) {
	ts := newTestServer(t, nil)
	_, body := ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"Hi <there> & \"you\"\n","reference":"r1"}`)
	id := decode[acceptedBody](t, body).ID
	at := time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC)
	ts.engine.mu.Lock()
	m := ts.engine.msgs[id]
	m.Status = switchboard.StatusUndeliverable
	m.Carrier, m.CarrierIDs, m.PartStatus = "sandbox", []string{"c1"}, []switchboard.Status{switchboard.StatusUndeliverable}
	m.Events = append(m.Events, switchboard.Event{Status: switchboard.StatusUndeliverable, At: at, Carrier: "sandbox",
		CarrierMessageID: "c1", Error: &switchboard.EventError{Code: "001", Description: "absent subscriber"}})
	ts.engine.mu.Unlock()

	resp, body := ts.do(t, "GET", "/v1/messages/"+id, "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	want := `{"id":"` + id + `","direction":"outbound","status":"undeliverable","error":{"code":"001","description":"absent subscriber"},` +
		`"to":"+447700900123","from":"Acme",` +
		`"body":"Hi \u003cthere\u003e \u0026 \"you\"\n","reference":"r1","callback_url":"","segments":1,"encoding":"gsm7",` +
		`"accepted_at":"2025-01-02T03:04:05.6Z","updated_at":"2025-01-02T03:04:05.6Z","expires_at":null,"carrier":"sandbox",` +
		`"carrier_message_ids":["c1"],"parts":[{"index":1,"carrier_message_id":"c1","status":"undeliverable"}],` +
		`"events":[{"status":"accepted","at":"2025-01-02T03:04:05.6Z"},` +
		`{"status":"undeliverable","at":"2025-01-02T03:04:06Z","carrier":"sandbox","carrier_message_id":"c1","error":{"code":"001","description":"absent subscriber"}}],"webhook_failures":[]}`
	if string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
	// Another key's message, an unknown id and ids of the wrong shape: the
	// same 404, word for word, so no answer tells which ids exist.
	resp, body = ts.do(t, "GET", "/v1/messages/"+id, "", "Authorization", "Bearer "+otherSecret)
	if e := wantError(t, resp, body, 404, switchboard.ENOTFOUND); e.Error.Message != "No such message." {
		t.Errorf("another key's message: %q", e.Error.Message)
	}
	for _, bad := range []string{"msg_01JZZZZZZZZZZZZZZZ99999999", "msg_01jzzzzzzzzzzzzzzz00000001", "msg_01JZZZZZZZZZZZZZZZ0000000I",
		"msg_01JZZZZZZZZZZZZZZZ0000001", "x", "msg_", strings.Repeat("A", 300), "msg_01JZZZZZZZZZZZZZZZ00000001x"} {
		resp, body = ts.do(t, "GET", "/v1/messages/"+bad, "")
		if e := wantError(t, resp, body, 404, switchboard.ENOTFOUND); e.Error.Message != "No such message." {
			t.Errorf("%s: %q", bad, e.Error.Message)
		}
	}
	ts.engine.mu.Lock()
	ts.engine.msgErr = errors.New("disk on fire")
	ts.engine.mu.Unlock()
	resp, body = ts.do(t, "GET", "/v1/messages/"+id, "")
	wantError(t, resp, body, 500, switchboard.EINTERNAL)
}

// TestGetMessageParts shows a long message part by part: each part's
// carrier id and status, the part each event is about, and the error of
// the message once it ended unsuccessfully.
func TestGetMessageParts(t *testing.T) {
	ts := newTestServer(t, nil)
	_, body := ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"`+strings.Repeat("x", 400)+`"}`)
	id := decode[acceptedBody](t, body).ID
	at := time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC)
	type part struct {
		Index            int    `json:"index"`
		CarrierMessageID string `json:"carrier_message_id"`
		Status           string `json:"status"`
	}
	type event struct {
		Status string `json:"status"`
		Part   int    `json:"part"`
	}
	type message struct {
		Status string          `json:"status"`
		Error  *map[string]any `json:"error"`
		Parts  []part          `json:"parts"`
		Events []event         `json:"events"`
	}
	get := func() message {
		t.Helper()
		resp, body := ts.do(t, "GET", "/v1/messages/"+id, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		return decode[message](t, body)
	}
	// Accepted, nothing sent yet: every part shows the message's status.
	m := get()
	if want := []part{{1, "", "accepted"}, {2, "", "accepted"}, {3, "", "accepted"}}; fmt.Sprint(m.Parts) != fmt.Sprint(want) || m.Error != nil {
		t.Errorf("accepted: parts %+v error %v, want %+v and no error", m.Parts, m.Error, want)
	}
	// Parts 1 and 2 taken by the carrier one at a time, part 1 delivered.
	ts.engine.mu.Lock()
	sm := ts.engine.msgs[id]
	sm.Status, sm.Carrier = switchboard.StatusQueued, "sandbox"
	sm.CarrierIDs = []string{"c1", "c2", ""}
	sm.PartStatus = []switchboard.Status{switchboard.StatusDelivered, "", ""}
	sm.Events = append(sm.Events,
		switchboard.Event{Status: switchboard.StatusSubmitted, At: at, Carrier: "sandbox", CarrierMessageID: "c1", Part: 1},
		switchboard.Event{Status: switchboard.StatusSubmitted, At: at, Carrier: "sandbox", CarrierMessageID: "c2", Part: 2},
		switchboard.Event{Status: switchboard.StatusDelivered, At: at, Carrier: "sandbox", CarrierMessageID: "c1", Part: 1})
	ts.engine.mu.Unlock()
	m = get()
	if want := []part{{1, "c1", "delivered"}, {2, "c2", "submitted"}, {3, "", "queued"}}; fmt.Sprint(m.Parts) != fmt.Sprint(want) {
		t.Errorf("parts %+v, want %+v", m.Parts, want)
	}
	if want := []event{{"accepted", 0}, {"submitted", 1}, {"submitted", 2}, {"delivered", 1}}; fmt.Sprint(m.Events) != fmt.Sprint(want) {
		t.Errorf("events %+v, want %+v", m.Events, want)
	}
	if m.Error != nil {
		t.Errorf("error %v on a message still under way", *m.Error)
	}
	// It ends: the error names why, from the event that ended it or, if
	// that had none, the status itself.
	for _, c := range []struct {
		status switchboard.Status
		err    *switchboard.EventError
		want   string
	}{
		{switchboard.StatusFailed, &switchboard.EventError{Code: "smpp_0x0000000B", Description: "invalid destination"}, `{"code":"smpp_0x0000000B","description":"invalid destination"}`},
		{switchboard.StatusUnknown, nil, `{"code":"unknown"}`},
		{switchboard.StatusCanceled, nil, `{"code":"canceled"}`},
	} {
		ts.engine.mu.Lock()
		sm.Status = c.status
		sm.Events = append(sm.Events[:4:4], switchboard.Event{Status: c.status, At: at, Error: c.err})
		ts.engine.mu.Unlock()
		_, body := ts.do(t, "GET", "/v1/messages/"+id, "")
		if want := `"status":"` + string(c.status) + `","error":` + c.want + `,`; !strings.Contains(string(body), want) {
			t.Errorf("%s: body %s lacks %s", c.status, body, want)
		}
	}
}

func TestHealth(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := ts.do(t, "GET", path, "", "Authorization", "")
		if resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestReadyz: /readyz is 503 with the reason while the engine is not
// ready, and says so in the log once per change, not once per probe;
// /healthz stays 200.
func TestReadyz(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Log = c.Log.Level(zerolog.InfoLevel) })
	probe := func() (*nethttp.Response, []byte) {
		t.Helper()
		resp, body := ts.do(t, "GET", "/readyz", "", "Authorization", "")
		if h, _ := ts.do(t, "GET", "/healthz", "", "Authorization", ""); h.StatusCode != 200 {
			t.Errorf("healthz %d while readyz %d", h.StatusCode, resp.StatusCode)
		}
		return resp, body
	}
	if resp, body := probe(); resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
		t.Fatalf("ready engine: %d %s", resp.StatusCode, body)
	}
	ts.engine.setReady(switchboard.Errorf(switchboard.EUNAVAILABLE, "Carrier sandbox has no bound bind."))
	for range 3 {
		resp, body := probe()
		if e := wantError(t, resp, body, 503, switchboard.EUNAVAILABLE); e.Error.Message != "Carrier sandbox has no bound bind." {
			t.Errorf("reason %q", e.Error.Message)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	}
	ts.engine.setReady(switchboard.Errorf(switchboard.EUNAVAILABLE, "Storage is failing."))
	resp, body := probe()
	if e := wantError(t, resp, body, 503, switchboard.EUNAVAILABLE); e.Error.Message != "Storage is failing." {
		t.Errorf("reason %q", e.Error.Message)
	}
	// An error that is not meant for clients is logged and not shown.
	ts.engine.setReady(errors.New("secret cause"))
	resp, body = probe()
	if e := wantError(t, resp, body, 503, switchboard.EUNAVAILABLE); strings.Contains(e.Error.Message, "secret") {
		t.Errorf("internal cause shown: %q", e.Error.Message)
	}
	ts.engine.setReady(nil)
	if resp, body := probe(); resp.StatusCode != 200 {
		t.Errorf("ready again: %d %s", resp.StatusCode, body)
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, `"message":"not ready"`); n != 3 {
		t.Errorf("%d not-ready lines, want 3 (one per reason):\n%s", n, logs)
	}
	if !strings.Contains(logs, `"reason":"Carrier sandbox has no bound bind."`) || strings.Count(logs, `"message":"ready"`) != 1 {
		t.Errorf("readiness changes not logged:\n%s", logs)
	}
	// Draining wins over everything.
	ts.Drain()
	resp, body = probe()
	wantError(t, resp, body, 503, switchboard.EUNAVAILABLE)
}

func TestAuth(t *testing.T) {
	// Many failures from one address: TestAuthFailuresThrottled tests the limit.
	ts := newTestServer(t, func(c *Config) { c.AuthFailuresPerMinute = -1 })
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic " + testSecret, testSecret, "Bearer " + testSecret + "x"} {
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/v1/messages", validBody},
			{"POST", "/v1/messages/batch", `{"messages":[` + validBody + `]}`},
			{"GET", "/v1/messages/msg_01JZZZZZZZZZZZZZZZ00000001", ""},
		} {
			resp, body := ts.do(t, rt.method, rt.path, rt.body, "Authorization", auth)
			wantError(t, resp, body, 401, switchboard.EUNAUTHORIZED)
			if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("WWW-Authenticate %q", h)
			}
		}
	}
	for _, auth := range []string{"bearer " + testSecret, "BEARER  " + testSecret} {
		if resp, body := ts.do(t, "POST", "/v1/messages", validBody, "Authorization", auth); resp.StatusCode != 202 {
			t.Errorf("%q: %d %s", auth, resp.StatusCode, body)
		}
	}
}

func TestRoutingErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/messages", "GET, POST"},
		{"PUT", "/v1/messages/batch", "POST"},
		{"GET", "/v1/messages/batch", "POST"},
		{"DELETE", "/v1/messages/msg_01JZZZZZZZZZZZZZZZ00000001", "GET"},
		{"POST", "/healthz", "GET"},
	} {
		resp, body := ts.do(t, c.method, c.path, "")
		wantError(t, resp, body, 405, EMETHOD)
		if a := resp.Header.Get("Allow"); a != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, a, c.allow)
		}
	}
	for _, path := range []string{"/", "/v1", "/v1/messages/", "/v1/messages/a/b", "/v2/messages", "/healthz/x", "/v1/messages/batch/x"} {
		resp, body := ts.do(t, "GET", path, "")
		wantError(t, resp, body, 404, switchboard.ENOTFOUND)
	}
}

// TestEngineErrors checks every code the engine may answer against its
// status, and that internal causes are logged but never shown.
func TestEngineErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	cases := []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{switchboard.Errorf(switchboard.EINVALID, "bad"), 400, switchboard.EINVALID, ""},
		{switchboard.Errorf(switchboard.EINVALIDTO, "bad"), 400, switchboard.EINVALIDTO, ""},
		{switchboard.Errorf(switchboard.EINVALIDFROM, "bad"), 400, switchboard.EINVALIDFROM, ""},
		{switchboard.Errorf(switchboard.EINVALIDBODY, "bad"), 400, switchboard.EINVALIDBODY, ""},
		{switchboard.Errorf(switchboard.ETOOLONG, "long"), 400, switchboard.ETOOLONG, ""},
		{switchboard.Errorf(switchboard.ENOROUTE, "none"), 400, switchboard.ENOROUTE, ""},
		{switchboard.Errorf(switchboard.EUNAUTHORIZED, "no"), 401, switchboard.EUNAUTHORIZED, ""},
		{switchboard.Errorf(switchboard.ENOTFOUND, "no"), 404, switchboard.ENOTFOUND, ""},
		{switchboard.Errorf(switchboard.ECONFLICT, "dup"), 409, switchboard.ECONFLICT, ""},
		{switchboard.Errorf(switchboard.EIDEMPOTENCY, "dup"), 409, switchboard.EIDEMPOTENCY, ""},
		{&switchboard.Error{Code: switchboard.ERATELIMITED, Message: "slow", RetryAfter: 2100 * time.Millisecond}, 429, switchboard.ERATELIMITED, "3"},
		{&switchboard.Error{Code: switchboard.ERATELIMITED, Message: "slow", RetryAfter: 10 * time.Millisecond}, 429, switchboard.ERATELIMITED, "1"},
		{&switchboard.Error{Code: switchboard.ERATELIMITED, Message: "slow"}, 429, switchboard.ERATELIMITED, "1"},
		{switchboard.Errorf(switchboard.EQUEUEFULL, "full"), 429, switchboard.EQUEUEFULL, ""},
		{&switchboard.Error{Code: switchboard.EQUEUEFULL, Message: "full", RetryAfter: 5 * time.Second}, 429, switchboard.EQUEUEFULL, "5"},
		{switchboard.Errorf(switchboard.EUNAVAILABLE, "down"), 503, switchboard.EUNAVAILABLE, "1"},
		{fmt.Errorf("wrapped: %w", switchboard.Errorf(switchboard.EQUEUEFULL, "full")), 429, switchboard.EQUEUEFULL, ""},
		{errors.New("secret cause 1"), 500, switchboard.EINTERNAL, ""},
		{switchboard.Errorf(switchboard.EINTERNAL, "secret cause 2"), 500, switchboard.EINTERNAL, ""},
		{switchboard.Errorf("made_up_code", "secret cause 3"), 500, switchboard.EINTERNAL, ""},
		{context.DeadlineExceeded, 500, switchboard.EINTERNAL, ""},
	}
	for i, c := range cases {
		to := fmt.Sprintf("+4477009%05d", i)
		ts.engine.setErr(to, c.err)
		resp, body := ts.do(t, "POST", "/v1/messages", `{"to":"`+to+`","from":"Acme","body":"x"}`, "X-Request-Id", fmt.Sprintf("case-%d", i))
		e := wantError(t, resp, body, c.status, c.code)
		if ra := resp.Header.Get("Retry-After"); ra != c.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", c.err, ra, c.retryAfter)
		}
		if c.code == switchboard.EINTERNAL {
			if e.Error.Message != "Internal error." {
				t.Errorf("%v shown as %q", c.err, e.Error.Message)
			}
			if logs := ts.logs.String(); !strings.Contains(logs, fmt.Sprintf(`"request_id":"case-%d"`, i)) || !strings.Contains(logs, `"level":"error"`) {
				t.Errorf("%v not logged at error with its request id", c.err)
			}
		}
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "secret cause 1") {
		t.Error("internal cause not logged")
	}
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, _ := ts.do(t, "GET", "/healthz", "", "X-Request-Id", "abc-123")
	if id := resp.Header.Get("X-Request-Id"); id != "abc-123" {
		t.Errorf("sane id not echoed: %q", id)
	}
	for _, bad := range []string{strings.Repeat("a", 65), "has space"} {
		resp, _ = ts.do(t, "GET", "/healthz", "", "X-Request-Id", bad)
		if id := resp.Header.Get("X-Request-Id"); id == bad || len(id) != 16 {
			t.Errorf("insane id %q answered with %q", bad, id)
		}
	}
	seen := map[string]bool{}
	for range 20 {
		resp, _ = ts.do(t, "GET", "/healthz", "")
		seen[resp.Header.Get("X-Request-Id")] = true
	}
	if len(seen) != 20 {
		t.Errorf("generated ids repeat: %v", seen)
	}
}

func TestDebugLog(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"very private words"}`)
	logs := ts.logs.String()
	for _, want := range []string{`"route":"/v1/messages"`, `"status":202`, `"key":"test"`, `"method":"POST"`, `"duration":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("request line lacks %s: %s", want, logs)
		}
	}
	for _, secret := range []string{"very private words", testSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds %q", secret)
		}
	}
}

func TestDrain(t *testing.T) {
	ts := newTestServer(t, nil)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	ts.engine.mu.Lock()
	ts.engine.gate, ts.engine.entered = gate, entered
	ts.engine.mu.Unlock()

	inflight := make(chan int, 1)
	go func() {
		resp, err := nethttp.DefaultClient.Do(mustRequest(t, "POST", ts.url+"/v1/messages", validBody))
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-entered
	ts.Drain()
	resp, body := ts.do(t, "POST", "/v1/messages", validBody)
	wantError(t, resp, body, 503, switchboard.EUNAVAILABLE)
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q", ra)
	}
	if !resp.Close {
		t.Error("a drain's 503 keeps the connection open; the client would not move to another node")
	}
	resp, body = ts.do(t, "GET", "/readyz", "")
	wantError(t, resp, body, 503, switchboard.EUNAVAILABLE)
	if resp, _ = ts.do(t, "GET", "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("healthz while draining: %d", resp.StatusCode)
	}
	close(gate)
	if status := <-inflight; status != 202 {
		t.Errorf("request in progress during Drain got %d", status)
	}
	if strings.Contains(ts.logs.String(), `"level":"error"`) {
		t.Error("a drain's 503s are logged as errors")
	}
}

func TestShutdownWaitsForRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	ts.engine.mu.Lock()
	ts.engine.gate, ts.engine.entered = gate, entered
	ts.engine.mu.Unlock()
	inflight := make(chan int, 1)
	go func() {
		resp, err := nethttp.DefaultClient.Do(mustRequest(t, "POST", ts.url+"/v1/messages", validBody))
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	if status := <-inflight; status != 202 {
		t.Errorf("request in progress during Shutdown got %d", status)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := nethttp.Get(ts.url + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
}

func TestShutdownTimeout(t *testing.T) {
	ts := newTestServer(t, nil)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	defer close(gate)
	ts.engine.mu.Lock()
	ts.engine.gate, ts.engine.entered = gate, entered
	ts.engine.mu.Unlock()
	go func() {
		if resp, err := nethttp.DefaultClient.Do(mustRequest(t, "POST", ts.url+"/v1/messages", validBody)); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	if ts.ctx.Err() == nil {
		t.Error("engine context not cancelled when Shutdown gave up")
	}
}

func TestOpen(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Engine: newStubEngine(), Keys: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	var addr string
	for addr == "" {
		addr = s.Addr()
		time.Sleep(time.Millisecond)
	}
	resp, err := nethttp.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNewConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Keys: testKeys()},
		{Engine: newStubEngine()},
		{Engine: newStubEngine(), Keys: testKeys(), MaxBodySize: 10 << 20},
		{Engine: newStubEngine(), Keys: testKeys(), MaxBatch: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	s, err := New(Config{Engine: newStubEngine(), Keys: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.Addr != DefaultAddr || c.ReadTimeout != 10*time.Second || c.WriteTimeout != 10*time.Second || c.IdleTimeout != 120*time.Second ||
		c.MaxBodySize != 64<<10 || c.MaxBatchBodySize != 4<<20 || c.MaxBatch != 1000 || c.MaxConns != 20000 {
		t.Errorf("defaults: %+v", c)
	}
}

func mustRequest(t testing.TB, method, url, body string) *nethttp.Request {
	req, err := nethttp.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testSecret)
	return req
}

// A batch whose items the store refuses (503 each) logs one error line
// with how many items failed, not one per item: a disk near full must not
// be filled faster by the log.
func TestBatchFailureLogsOnce(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.engine.setErr("+447700900999", switchboard.Errorf(switchboard.EUNAVAILABLE, "storage cannot commit"))
	var items []string
	for range 50 {
		items = append(items, `{"to":"+447700900999","from":"Acme","body":"x"}`)
	}
	resp, body := ts.do(t, "POST", "/v1/messages/batch", `{"messages":[`+strings.Join(items, ",")+`]}`)
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"accepted":0,"rejected":50`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, `"level":"error"`); n != 1 || !strings.Contains(logs, `"items":50`) {
		t.Fatalf("%d error lines, want 1 saying 50 items:\n%s", n, logs)
	}
}
