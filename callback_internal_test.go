package switchboard

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzStatusEventJSON checks the plain writer against encoding/json: what
// appendPlain writes, json.Marshal writes byte for byte.
func FuzzStatusEventJSON(f *testing.F) {
	f.Add("01JZ1111111111111111111111", "+447700900123", "Acme", "order-7", "alpha", "c-9", "001", "UNDELIV", 2, int64(1796414400), int64(123456789), true)
	f.Add("m", "+1", "Acme & Co", "<ref>", "", "", "", "", 1, int64(0), int64(0), false)
	f.Add("m", "+1", "Café", "a\"b\\c", "x\u2028", "\x7f", "code", "", 0, int64(-62135596800), int64(0), true) // year 1
	f.Add("m", "+1", "Acme", "", "", "", "", "", 1, int64(-62167219201), int64(5), false)                      // year -1
	f.Add("m", "+1", "Acme", "", "", "", "", "", 1, int64(253402300800), int64(5), false)                      // year 10000
	f.Fuzz(func(t *testing.T, id, to, from, ref, carrier, carrierID, code, desc string, segments int, sec, nsec int64, withErr bool) {
		ev := statusEvent{Type: CallbackStatus, MessageID: id, Status: StatusUndeliverable, To: to, From: from,
			Reference: ref, Carrier: carrier, CarrierMessageID: carrierID, Segments: segments,
			OccurredAt: time.Unix(sec, nsec%1e9).UTC()}
		if withErr {
			ev.Error = &EventError{Code: code, Description: desc}
		}
		got, ok := ev.appendPlain(nil)
		if !ok {
			return
		}
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("appendPlain wrote %s; json.Marshal: %v", got, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendPlain %s\njson.Marshal %s", got, want)
		}
	})
}

// A typical event takes the plain path; one with a non-ASCII sender goes
// to encoding/json, and both are valid JSON of the same event.
func TestStatusDataPlainAndFallback(t *testing.T) {
	at := time.Date(2026, 11, 27, 20, 0, 0, 123000000, time.UTC)
	m := &Message{ID: "01JZ1111111111111111111111", To: "+447700900123", From: "Acme", Reference: "order-7",
		Carrier: "alpha", Segments: 1, UpdatedAt: at,
		Events: []Event{{Status: StatusDelivered, At: at, Carrier: "alpha", CarrierMessageID: "c-9"}}}
	plain := statusEvent{Type: CallbackStatus, MessageID: m.ID, Status: StatusDelivered, To: m.To, From: m.From}
	if _, ok := plain.appendPlain(nil); !ok {
		t.Fatal("a plain event did not take the plain path")
	}
	for _, from := range []string{"Acme", "Café"} {
		m.From = from
		var ev statusEvent
		if err := json.Unmarshal(statusData(m, StatusDelivered), &ev); err != nil {
			t.Fatal(err)
		}
		want := statusEvent{Type: CallbackStatus, MessageID: m.ID, Status: StatusDelivered, To: m.To, From: from,
			Reference: "order-7", Carrier: "alpha", CarrierMessageID: "c-9", Segments: 1, OccurredAt: at}
		if ev != want {
			t.Errorf("from %q: got %+v, want %+v", from, ev, want)
		}
	}
}

// A status event says why the message ended unsuccessfully as the message
// itself does (Message.Error): with the event's own error, or, where the
// event named none (expired before it was sent, canceled), the status as
// the code. Intermediate and delivered events carry none of their own.
func TestStatusDataSaysWhy(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		status Status
		err    *EventError
		want   string // the error's JSON; "" none
	}{
		{StatusExpired, nil, `{"code":"expired"}`},
		{StatusCanceled, nil, `{"code":"canceled"}`},
		{StatusUndeliverable, &EventError{Description: "UNDELIV"}, `{"code":"undeliverable","description":"UNDELIV"}`},
		{StatusFailed, &EventError{Code: "body_too_long", Description: "too long"}, `{"code":"body_too_long","description":"too long"}`},
		{StatusDelivered, nil, ""},
		{StatusSubmitted, nil, ""},
	} {
		m := &Message{ID: "msg_1", To: "+447700900123", From: "Acme", Status: tc.status, UpdatedAt: at,
			Events: []Event{{Status: StatusAccepted, At: at}, {Status: tc.status, At: at, Error: tc.err}}}
		var got struct {
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(statusData(m, tc.status), &got); err != nil {
			t.Fatal(err)
		}
		if string(got.Error) != tc.want {
			t.Errorf("%s: error %s, want %s", tc.status, got.Error, tc.want)
		}
	}
}

// A callback URL's endpoint is scheme://host:port with the default port
// filled in; a URL the HTTP client would read otherwise (an empty port
// after its colon) is refused here, where the client hears at once.
func TestCallbackEndpoint(t *testing.T) {
	for raw, want := range map[string]string{
		"https://Example.com/hook":     "https://example.com:443",
		"http://example.com:8080/hook": "http://example.com:8080",
		"http://[2001:db8::1]/x":       "http://[2001:db8::1]:80",
	} {
		if got, err := CallbackEndpoint(raw); err != nil || got != want {
			t.Errorf("CallbackEndpoint(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{"https://example.com:/hook", "http://[2001:db8::1]:/", "ftp://example.com/", "https:///x"} {
		if _, err := CallbackEndpoint(raw); ErrorCode(err) != EINVALID {
			t.Errorf("CallbackEndpoint(%q): %v, want invalid", raw, err)
		}
	}
}
