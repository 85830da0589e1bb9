package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/callback"
)

// These tests read callbacks field by field, as a customer's receiver
// would, on a plain net/http server on loopback.

// rawRequest is one request a rawReceiver got.
type rawRequest struct {
	path, signature, eventID, userAgent string
	body                                []byte
	event                               map[string]any
}

// rawReceiver answers every request with status(n) (n counts from 1) and
// hands each request, whatever the answer, to the test on a channel.
type rawReceiver struct {
	*httptest.Server
	got chan rawRequest
	n   atomic.Int64
}

func startRawReceiver(t *testing.T, status func(n int64) int) *rawReceiver {
	t.Helper()
	r := &rawReceiver{got: make(chan rawRequest, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		in := rawRequest{path: req.URL.Path, signature: req.Header.Get(callback.SignatureHeader),
			eventID: req.Header.Get("Switchboard-Event-Id"), userAgent: req.UserAgent(), body: body}
		_ = json.Unmarshal(body, &in.event)
		w.WriteHeader(status(r.n.Add(1)))
		r.got <- in
	}))
	t.Cleanup(r.Close)
	return r
}

func answer(code int) func(int64) int { return func(int64) int { return code } }

// next returns the next request, failing the test after 20 s without one.
func (r *rawReceiver) next(t *testing.T) rawRequest {
	t.Helper()
	select {
	case in := <-r.got:
		return in
	case <-time.After(20 * time.Second):
		t.Fatal("no callback request within 20 s")
		return rawRequest{}
	}
}

// wantFields checks that ev has exactly the named fields.
func wantFields(t *testing.T, ev map[string]any, names ...string) {
	t.Helper()
	var got []string
	for k := range ev {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("fields %v, want %v", got, names)
	}
}

// wantSigned checks a request's signature and that its Switchboard-Event-Id
// header names its event.
func wantSigned(t *testing.T, in rawRequest) {
	t.Helper()
	if err := callback.Verify(in.signature, testWebhookSecret, in.body, time.Minute, time.Now()); err != nil {
		t.Errorf("signature %q: %v", in.signature, err)
	}
	if in.eventID == "" || in.eventID != in.event["event_id"] {
		t.Errorf("Switchboard-Event-Id %q, event_id %v", in.eventID, in.event["event_id"])
	}
	if in.userAgent != callback.DefaultUserAgent {
		t.Errorf("User-Agent %q", in.userAgent)
	}
}

// wantTime checks that field name of ev is an RFC 3339 time within
// [from, now].
func wantTime(t *testing.T, ev map[string]any, name string, from time.Time) {
	t.Helper()
	s, _ := ev[name].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || at.Before(from.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("%s %q (%v): want a time since %v", name, s, err, from)
	}
}

// A message's own callback_url takes its callbacks instead of the key's,
// and each status callback carries every field docs/webhooks.md lists,
// with the values the API shows for the message; error only on a failure.
func TestStatusCallbackFields(t *testing.T) {
	keyDefault := startRawReceiver(t, answer(http.StatusNoContent))
	own := startRawReceiver(t, answer(http.StatusOK))
	g, _ := webhookGatewaySim(t, smsc.Config{Outcomes: smsc.Outcomes{Undeliverable: 1}},
		keyDefault.URL+"/default", "", "retry_min: 50ms, retry_max: 300ms, timeout: 2s", "", "")
	sent := time.Now()
	r := call(t, "POST", "http://"+g.Addr()+"/v1/messages", map[string]any{
		"to": "+447700900123", "from": "Acme", "body": "fields", "reference": "order-7",
		"callback_url": own.URL + "/own?k=1"})
	if r.status != http.StatusAccepted {
		t.Fatalf("send: %d %v", r.status, r.body)
	}
	id := r.body["id"].(string)

	submitted, failed := own.next(t), own.next(t)
	m := waitStatus(t, g, id, "undeliverable")
	carrierID := submitted.event["carrier_message_id"]
	for i, in := range []rawRequest{submitted, failed} {
		wantSigned(t, in)
		ev := in.event
		if in.path != "/own" {
			t.Errorf("request %d went to %s, want the message's callback_url", i, in.path)
		}
		want := map[string]any{"type": "message.status", "message_id": id, "to": "+447700900123", "from": "Acme",
			"reference": "order-7", "carrier": "sim", "segments": float64(1), "attempt": float64(1)}
		for k, v := range want {
			if ev[k] != v {
				t.Errorf("%s event: %s = %v, want %v", ev["status"], k, ev[k], v)
			}
		}
		if s, _ := carrierID.(string); s == "" || ev["carrier_message_id"] != carrierID {
			t.Errorf("%s event: carrier_message_id %v, want the submit's %v", ev["status"], ev["carrier_message_id"], carrierID)
		}
		wantTime(t, ev, "occurred_at", sent)
	}
	if submitted.event["status"] != "submitted" || failed.event["status"] != "undeliverable" {
		t.Fatalf("statuses %v then %v, want submitted then undeliverable", submitted.event["status"], failed.event["status"])
	}
	if submitted.event["event_id"] == failed.event["event_id"] {
		t.Error("two events share an event_id")
	}
	common := []string{"event_id", "attempt", "type", "message_id", "status", "to", "from", "reference",
		"carrier", "carrier_message_id", "segments", "occurred_at"}
	wantFields(t, submitted.event, common...)
	wantFields(t, failed.event, append(common, "error")...)
	// The API lists the message's events; the last is the receipt's.
	events, _ := m["events"].([]any)
	last, _ := events[len(events)-1].(map[string]any)
	if e, _ := failed.event["error"].(map[string]any); e == nil || e["code"] == "" || e["description"] == "" ||
		!reflect.DeepEqual(e, last["error"]) {
		t.Errorf("error %v, want a code and description as the API's %v", failed.event["error"], last)
	}
	if n := keyDefault.n.Load(); n != 0 {
		t.Errorf("the key's default URL got %d requests", n)
	}
}

// A key's callback_statuses from cluster.yaml decide which events go out:
// with only delivered chosen, submitted (which would come first) never
// does.
func TestCallbackStatusesChosenPerKey(t *testing.T) {
	rcv := startRawReceiver(t, answer(http.StatusNoContent))
	g, _ := webhookGatewayWith(t, rcv.URL+"/hook", "", "retry_min: 50ms, retry_max: 300ms, timeout: 2s",
		", callback_statuses: [delivered]", "")
	var ids []string
	for i := range 3 {
		ids = append(ids, send(t, g, "+44770090010"+string(rune('0'+i)), "only final").body["id"].(string))
	}
	got := map[string]string{}
	for range ids {
		in := rcv.next(t)
		got[in.event["message_id"].(string)] = in.event["status"].(string)
	}
	for _, id := range ids {
		if got[id] != "delivered" {
			t.Errorf("message %s: first event %q, want delivered (and nothing before it)", id, got[id])
		}
	}
}

// An inbound message's callback is retried like a status callback: the
// receiver's 500 is followed by a second attempt of the same event, which
// carries every field docs/webhooks.md lists.
func TestInboundCallbackRetriedWithFields(t *testing.T) {
	rcv := startRawReceiver(t, func(n int64) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	g, sim := webhookGateway(t, "", rcv.URL+"/inbound", "")
	waitBound(t, sim)
	sent := time.Now()
	text := "Привет! " + strings.Repeat("x", 70) // UCS-2: 78 characters, two parts
	if err := sim.InjectMO("gw", smsc.MO{From: "+447700900555", To: "+447700900999", Text: text}); err != nil {
		t.Fatal(err)
	}
	first, second := rcv.next(t), rcv.next(t)
	for _, in := range []rawRequest{first, second} {
		wantSigned(t, in)
	}
	if first.event["event_id"] != second.event["event_id"] || first.event["attempt"] != float64(1) || second.event["attempt"] != float64(2) {
		t.Fatalf("attempts %v/%v of events %v/%v, want the same event twice", first.event["attempt"], second.event["attempt"],
			first.event["event_id"], second.event["event_id"])
	}
	ev := second.event
	wantFields(t, ev, "event_id", "attempt", "type", "message_id", "to", "from", "body", "encoding",
		"segments", "partial", "carrier", "occurred_at")
	want := map[string]any{"type": "message.inbound", "to": "+447700900999", "from": "+447700900555", "body": text,
		"encoding": "ucs2", "segments": float64(2), "partial": false, "carrier": "sim"}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s = %v, want %v", k, ev[k], v)
		}
	}
	wantTime(t, ev, "occurred_at", sent)
	m := call(t, "GET", "http://"+g.Addr()+"/v1/messages/"+ev["message_id"].(string), nil)
	if m.status != http.StatusOK || m.body["body"] != text || m.body["direction"] != "inbound" {
		t.Errorf("GET the inbound message: %d %v", m.status, m.body)
	}
}

// A key without a webhook_secret signs with one generated on its first
// start and kept in the store: the same secret after a restart.
func TestGeneratedWebhookSecretKept(t *testing.T) {
	rcv := startRawReceiver(t, answer(http.StatusNoContent))
	sim := testSim(t, smsc.Config{})
	yaml := fmt.Sprintf(`
carriers:%s
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: cb, secret: %q, rate: 1000, burst: 1000, callback_url: %q, callback_statuses: [delivered]}
webhooks: {allow_private_networks: true}
`, carrierYAML("sim", sim.Addr(), 1), testSecret, rcv.URL+"/hook")
	dir := t.TempDir()
	var secrets []string
	var got []rawRequest
	for range 2 {
		g, _ := openTestGateway(t, dir, yaml)
		stopped := false
		t.Cleanup(func() { // if the test fails before the stop below
			if !stopped {
				stopTestGateway(t, g)
			}
		})
		send(t, g, "+447700900001", "signed")
		got = append(got, rcv.next(t))
		// InitSetting returns what is stored, not the value offered.
		s, err := g.node.Store.InitSetting(context.Background(), "webhook_secret/cb", "not this one")
		stopTestGateway(t, g)
		stopped = true
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	if secrets[0] != secrets[1] || !strings.HasPrefix(secrets[0], "whsec_") || len(secrets[0]) < 32 {
		t.Fatalf("secrets %q then %q, want one generated whsec_ secret kept", secrets[0], secrets[1])
	}
	for i, in := range got {
		if err := callback.Verify(in.signature, secrets[0], in.body, time.Minute, time.Now()); err != nil {
			t.Errorf("callback of run %d: %v", i+1, err)
		}
	}
}
