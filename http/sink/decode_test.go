package sink

import (
	"reflect"
	"testing"
)

// Bodies the gateway sends: a status event with an error, an inbound
// event, and a batch.
const (
	statusBody  = `{"event_id":"01JZ0000000000000000000000","attempt":3,"type":"message.status","message_id":"01JZ1111111111111111111111","status":"undeliverable","to":"+447700900123","from":"Acme","reference":"order-7","carrier":"alpha","carrier_message_id":"c-9","error":{"code":"carrier_rejected","description":"destination barred"},"segments":2,"occurred_at":"2026-11-27T20:00:00.123456789Z"}`
	inboundBody = `{"event_id":"e-in","attempt":1,"type":"message.inbound","message_id":"m-in","to":"+447700900000","from":"+447700900123","body":"Hi there","encoding":"gsm7","segments":1,"partial":true,"carrier":"alpha","occurred_at":"2026-11-27T20:00:00Z"}`
)

// The gateway's bodies take the fast path, and give what encoding/json
// gives.
func TestScanEventsReadsGatewayBodies(t *testing.T) {
	for _, body := range []string{statusBody, inboundBody, "[" + statusBody + " , " + inboundBody + "]"} {
		fast, ok := scanEvents([]byte(body))
		if !ok {
			t.Fatalf("scanEvents gave up on %s", body)
		}
		std, err := jsonEvents([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Errorf("%s:\nscanEvents %+v\nencoding/json %+v", body, fast, std)
		}
	}
	evs, _ := scanEvents([]byte(inboundBody))
	want := Event{EventID: "e-in", Attempt: 1, Type: "message.inbound", MessageID: "m-in", Body: "Hi there", Partial: true}
	if len(evs) != 1 || evs[0] != want {
		t.Errorf("got %+v, want %+v", evs, want)
	}
}

// What the fast path leaves to encoding/json still decodes, and what
// neither takes is refused.
func TestDecodeEventsFallsBack(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
		want string // the first event's body
	}{
		{`{"event_id":"a","body":"line\nbreak"}`, true, "line\nbreak"},
		{`{"EVENT_ID":"a","body":"x"}`, true, "x"},
		{`{"event_id":"a","custom":{"deep":[1,2,{"x":null}]},"body":"y"}`, true, "y"},
		{`{"event_id":"a","attempt":1.0}`, false, ""},
		{`{"body":"no id"}`, false, ""},
		{`[]`, false, ""},
		{`{"event_id":"a"} trailing`, false, ""},
		{`{"event_id":"a","segments":01}`, false, ""},
	} {
		evs, ok := decodeEvents([]byte(tc.body))
		if ok != tc.ok || ok && evs[0].Body != tc.want {
			t.Errorf("%s: got %+v %v, want ok %v body %q", tc.body, evs, ok, tc.ok, tc.want)
		}
	}
}

// FuzzScanEvents checks the fast path against encoding/json: whatever
// scanEvents accepts, encoding/json decodes without error to the same
// events.
func FuzzScanEvents(f *testing.F) {
	for _, seed := range []string{
		statusBody, inboundBody, "[" + statusBody + "," + inboundBody + "]",
		`[]`, `[ ]`, `{}`, `[{}]`, `{"event_id":"a","event_id":"b"}`, `{"attempt":-0}`, `{"attempt":007}`,
		`{"attempt":123456789012345678}`, `{"attempt":1e3}`, `{"partial":null}`, `{"Status":"x"}`,
		`{"error":{"code":"x","nested":[[[]]],"n":-1.5e+3}}`, `{"segments":0.}`, `{"to":"\u0041"}`,
		`[{"event_id":"a"},]`, `{"body":"caf` + "\xc3\xa9" + `"}`, "{\"body\":\"a\x01\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := scanEvents(data)
		if !ok {
			return
		}
		std, err := jsonEvents(data)
		if err != nil {
			t.Fatalf("scanEvents accepted %q; encoding/json: %v", data, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: scanEvents %+v, encoding/json %+v", data, fast, std)
		}
	})
}
