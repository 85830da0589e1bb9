package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/http/sink"
)

// These tests send messages through a whole node and receive their
// callbacks on real HTTP receivers (http/sink) on loopback.

const testWebhookSecret = "whsec_test_0123456789"

// webhookGateway starts a node whose key "cb" sends its callbacks to url
// (and its inbound messages to inboundURL, for its number +447700900999),
// against a simulator of its own.
func webhookGateway(t *testing.T, url, inboundURL, extra string) (*gateway, *smsc.Server) {
	t.Helper()
	return webhookGatewayWith(t, url, inboundURL, "retry_min: 50ms, retry_max: 300ms, timeout: 2s", "", extra)
}

// webhookGatewayWith is webhookGateway with the webhooks settings given
// (besides allow_private_networks) and more settings of the key
// (keySettings: ", name: value" pairs).
func webhookGatewayWith(t *testing.T, url, inboundURL, webhooks, keySettings, extra string) (*gateway, *smsc.Server) {
	t.Helper()
	return webhookGatewaySim(t, smsc.Config{}, url, inboundURL, webhooks, keySettings, extra)
}

// webhookGatewaySim is webhookGatewayWith against a simulator configured
// by simCfg.
func webhookGatewaySim(t *testing.T, simCfg smsc.Config, url, inboundURL, webhooks, keySettings, extra string) (*gateway, *smsc.Server) {
	t.Helper()
	sim := testSim(t, simCfg)
	yaml := fmt.Sprintf(`
carriers:%s
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: cb, secret: %q, rate: 100000, burst: 100000, callback_url: %q, inbound_url: %q,
     webhook_secret: %q, numbers: ["+447700900999"]%s}
webhooks: {allow_private_networks: true, %s}
%s`, carrierYAML("sim", sim.Addr(), 1), testSecret, url, inboundURL, testWebhookSecret, keySettings, webhooks, extra)
	g, _ := startTestGateway(t, yaml)
	return g, sim
}

func verifier(secret string) func(string, []byte) error {
	return func(sig string, body []byte) error {
		return callback.Verify(sig, secret, body, 5*time.Minute, time.Now())
	}
}

func startSink(t *testing.T, opts sink.Options) *sink.Sink {
	t.Helper()
	s, err := sink.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// statusEvents counts the distinct events per status.
func statusEvents(evs []sink.Event) map[string]int {
	n := map[string]int{}
	for _, e := range evs {
		n[e.Status]++
	}
	return n
}

// A receiver that answers 503 for a while and then is not there at all
// gets every event once it is back: none lost, each message's in order,
// every one signed.
func TestCallbacksSurviveReceiverDowntime(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	s := startSink(t, sink.Options{Verify: verifier(testWebhookSecret), Respond: func(sink.Event) sink.Answer {
		if down.Load() {
			return sink.Answer{Status: http.StatusServiceUnavailable}
		}
		return sink.Answer{Status: http.StatusNoContent}
	}})
	addr := s.Addr()
	g, _ := webhookGateway(t, s.URL()+"/hook", "", "")

	const n = 200
	for i := range n {
		if r := send(t, g, fmt.Sprintf("+4477009%05d", i%20), fmt.Sprintf("down-%d", i)); r.status != 202 {
			t.Fatalf("send: %d %v", r.status, r.body)
		}
	}
	// Phase 1: 503s. Wait until attempts have failed, then take the
	// receiver away altogether (connection refused).
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Requests < 5 {
		if time.Now().After(deadline) {
			t.Fatal("no callback attempts reached the receiver")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	time.Sleep(300 * time.Millisecond) // let some attempts meet a closed port (not a synchronisation)

	down.Store(false)
	s2 := startSink(t, sink.Options{Addr: addr, Verify: verifier(testWebhookSecret)})
	if !s2.Wait(30*time.Second, func(evs []sink.Event) bool { return len(evs) >= 2*n }) {
		eps, _ := g.node.Store.CallbackEndpoints(context.Background())
		for _, ep := range eps {
			cbs, _ := g.node.Store.Callbacks(context.Background(), ep, "", "", 100)
			for _, c := range cbs {
				t.Logf("still queued: %s %s %s", ep, c.ID, c.MessageID)
			}
		}
		t.Logf("engine %+v, sink %+v", g.node.Engine.Stats(), s2.Stats())
		t.Fatalf("got %v after the receiver came back, want %d submitted and %d delivered", statusEvents(s2.Events()), n, n)
	}
	st := s2.Stats()
	if c := statusEvents(s2.Events()); c["submitted"] != n || c["delivered"] != n {
		t.Errorf("events %v, want %d submitted and %d delivered", c, n, n)
	}
	if st.OutOfOrder != 0 || st.BadSig != 0 {
		t.Errorf("stats %+v: want no event out of order and every signature valid", st)
	}
	// submitted before delivered for every message
	seen := map[string]string{}
	for _, e := range s2.Events() {
		if e.Status == "delivered" && seen[e.MessageID] != "submitted" {
			t.Errorf("message %s: delivered before submitted", e.MessageID)
		}
		seen[e.MessageID] = e.Status
	}
}

// A key with callback_batch posts JSON arrays: every event arrives, each
// message's in order, none twice, every request signed, no batch above
// the limit; a batch answered 503 is retried whole. Each request is
// answered after 50 ms, so events pile up behind the requests in flight
// and requests carry several: with one request at a time (concurrency 1),
// and with 64 allowed, where batches that are not full wait while two are
// in flight instead of going out one event each.
func TestBatchedCallbacks(t *testing.T) {
	for _, concurrency := range []int{1, 64} {
		t.Run(fmt.Sprintf("concurrency %d", concurrency), func(t *testing.T) { testBatchedCallbacks(t, concurrency) })
	}
}

func testBatchedCallbacks(t *testing.T, concurrency int) {
	var calls atomic.Int64
	s := startSink(t, sink.Options{Verify: verifier(testWebhookSecret), Respond: func(sink.Event) sink.Answer {
		if calls.Add(1) <= 3 { // the first three requests
			return sink.Answer{Status: http.StatusServiceUnavailable}
		}
		return sink.Answer{Status: http.StatusNoContent, Delay: 50 * time.Millisecond}
	}})
	const n, limit = 300, 25
	g, _ := webhookGatewayWith(t, s.URL()+"/hook", "", fmt.Sprintf("retry_min: 50ms, retry_max: 300ms, timeout: 2s, concurrency: %d", concurrency),
		fmt.Sprintf(", callback_batch: %d", limit), "")
	for i := range n {
		if r := send(t, g, fmt.Sprintf("+4477009%05d", i%30), fmt.Sprintf("batch-%d", i)); r.status != 202 {
			t.Fatalf("send: %d %v", r.status, r.body)
		}
	}
	if !s.Wait(30*time.Second, func(evs []sink.Event) bool { return len(evs) >= 2*n }) {
		t.Fatalf("got %v, want %d submitted and %d delivered; sink %+v", statusEvents(s.Events()), n, n, s.Stats())
	}
	if c := statusEvents(s.Events()); c["submitted"] != n || c["delivered"] != n {
		t.Errorf("events %v, want %d submitted and %d delivered", c, n, n)
	}
	st := s.Stats()
	t.Logf("sink %+v", st)
	switch {
	case st.OutOfOrder != 0 || st.BadSig != 0 || st.Duplicates != 0:
		t.Errorf("stats %+v: want every event once, in order, signed", st)
	case st.Batches != st.Requests:
		t.Errorf("%d of %d requests were batches, want all", st.Batches, st.Requests)
	case st.Largest > limit:
		t.Errorf("a batch of %d events, above callback_batch %d", st.Largest, limit)
	case st.Requests > n: // 2n events: at least two per request on average
		t.Errorf("%d requests for %d events: batches did not form", st.Requests, 2*n)
	}
	var retried int
	for _, e := range s.Events() {
		if e.Attempt > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no event arrived on a later attempt, though the first three requests were answered 503")
	}
}

// A batch answered 410 gives up every event in it, each recorded on its
// message, and the URL's later events go without a request. The first
// request (one event) is answered 503 after 300 ms, so the other
// messages' events gather meanwhile and the next request is a batch.
func TestBatchedCallbackGone(t *testing.T) {
	var calls atomic.Int64
	s := startSink(t, sink.Options{Respond: func(sink.Event) sink.Answer {
		if calls.Add(1) == 1 {
			return sink.Answer{Status: http.StatusServiceUnavailable, Delay: 300 * time.Millisecond}
		}
		return sink.Answer{Status: http.StatusGone}
	}})
	g, _ := webhookGatewayWith(t, s.URL()+"/gone", "", "retry_min: 50ms, retry_max: 300ms, timeout: 2s, concurrency: 1", ", callback_batch: 50", "")
	var ids []string
	for i := range 10 {
		r := send(t, g, fmt.Sprintf("+4477009000%02d", i), "gone")
		ids = append(ids, r.body["id"].(string))
	}
	attempted := 0
	for _, id := range ids {
		m := waitFailures(t, g, id, 2) // submitted and delivered
		for _, f := range m["webhook_failures"].([]any) {
			f := f.(map[string]any)
			if f["reason"] != "gone" {
				t.Errorf("message %s: failure %v, want reason gone", id, f)
			}
			if f["attempts"].(float64) > 0 {
				attempted++
			}
		}
	}
	st := s.Stats()
	if st.Largest < 2 || st.Requests != 2 {
		t.Errorf("sink %+v: want two requests, the second a batch", st)
	}
	if attempted < st.Largest {
		t.Errorf("%d failures after an attempt, want at least the %d events of the batch", attempted, st.Largest)
	}
}

// 410 Gone stops: the callback is given up on at once, recorded on the
// message, and the URL's later callbacks are not sent.
func TestCallbackGoneStops(t *testing.T) {
	s := startSink(t, sink.Options{Respond: func(sink.Event) sink.Answer { return sink.Answer{Status: http.StatusGone} }})
	g, _ := webhookGateway(t, s.URL()+"/gone", "", "")
	r := send(t, g, "+447700900001", "gone")
	id := r.body["id"].(string)
	// The submitted callback meets the 410; the delivered one behind it is
	// given up without a request, and so are a second message's.
	m := waitFailures(t, g, id, 2)
	attempts := map[float64]int{}
	for _, f := range m["webhook_failures"].([]any) {
		f := f.(map[string]any)
		if f["reason"] != "gone" || f["type"] != "message.status" {
			t.Errorf("failure %v, want reason gone", f)
		}
		attempts[f["attempts"].(float64)]++
	}
	if attempts[1] != 1 || attempts[0] != 1 {
		t.Errorf("failures %v: want one after 1 attempt and one given up without a request", m["webhook_failures"])
	}
	r2 := send(t, g, "+447700900002", "gone again")
	waitFailures(t, g, r2.body["id"].(string), 2)
	if n := s.Stats().Requests; n != 1 {
		t.Errorf("%d requests reached the receiver, want 1 (the first 410)", n)
	}
}

// A receiver that keeps failing is retried until webhooks.max_age, then
// each event is given up with a failure recorded on the message (reason
// max_age, with its attempts), and the receiver hears no more of it. An
// event that waited behind the given-up one past its own max_age is given
// up without a request.
func TestCallbackGivenUpAfterMaxAge(t *testing.T) {
	var mu sync.Mutex
	requests := map[string]int{} // message ID → requests
	s := startSink(t, sink.Options{Respond: func(e sink.Event) sink.Answer {
		mu.Lock()
		requests[e.MessageID]++
		mu.Unlock()
		return sink.Answer{Status: http.StatusInternalServerError}
	}})
	g, _ := webhookGatewayWith(t, s.URL()+"/failing", "", "retry_min: 20ms, retry_max: 100ms, timeout: 2s, max_age: 1s", "", "")
	start := time.Now()
	r := send(t, g, "+447700900004", "never heard")
	id := r.body["id"].(string)
	m := waitFailures(t, g, id, 2) // the submitted and the delivered callback
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("given up after %v, before max_age (1s)", waited)
	}
	attempted := 0
	for _, f := range m["webhook_failures"].([]any) {
		f := f.(map[string]any)
		if f["reason"] != "max_age" || f["type"] != "message.status" {
			t.Errorf("failure %v, want reason max_age", f)
		}
		if f["attempts"].(float64) >= 2 {
			attempted++
		}
	}
	if attempted == 0 {
		t.Errorf("failures %v: want the first event retried before it was given up", m["webhook_failures"])
	}
	mu.Lock()
	before := requests[id]
	mu.Unlock()
	// Given up means no more requests: a later message's events go the
	// same way meanwhile, long enough for a stray retry of the first to show.
	r2 := send(t, g, "+447700900005", "never heard either")
	waitFailures(t, g, r2.body["id"].(string), 2)
	mu.Lock()
	defer mu.Unlock()
	if requests[id] != before {
		t.Errorf("message %s: %d requests after its events were given up", id, requests[id]-before)
	}
}

// waitFailures waits until message id has n webhook failures.
func waitFailures(t *testing.T, g *gateway, id string, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := call(t, "GET", "http://"+g.Addr()+"/v1/messages/"+id, nil)
		if fs, _ := r.body["webhook_failures"].([]any); len(fs) >= n {
			return r.body
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: %v, want %d webhook failures", id, r.body, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Retry-After is honoured: the attempt after a 429 comes no sooner than
// the receiver asked, even though the configured backoff is shorter.
func TestCallbackRetryAfter(t *testing.T) {
	var mu sync.Mutex
	tries := map[string][]time.Time{}
	s := startSink(t, sink.Options{Respond: func(e sink.Event) sink.Answer {
		mu.Lock()
		defer mu.Unlock()
		tries[e.EventID] = append(tries[e.EventID], time.Now())
		if len(tries[e.EventID]) == 1 {
			return sink.Answer{Status: http.StatusTooManyRequests, RetryAfter: 1}
		}
		return sink.Answer{Status: http.StatusOK}
	}})
	g, _ := webhookGateway(t, s.URL(), "", "")
	send(t, g, "+447700900003", "slow down")
	if !s.Wait(20*time.Second, func(evs []sink.Event) bool { return len(evs) >= 2 }) {
		t.Fatalf("events %v", s.Events())
	}
	mu.Lock()
	defer mu.Unlock()
	for id, ts := range tries {
		if len(ts) != 2 {
			t.Errorf("event %s: %d attempts, want 2", id, len(ts))
			continue
		}
		if gap := ts[1].Sub(ts[0]); gap < time.Second {
			t.Errorf("event %s: retried after %v, Retry-After asked for 1s", id, gap)
		}
	}
	for _, e := range s.Events() {
		if e.Attempt != 2 {
			t.Errorf("event %s delivered with attempt %d, want 2", e.EventID, e.Attempt)
		}
	}
}

// One endpoint that hangs until the timeout and one that answers 500 do
// not keep a healthy endpoint's events from arriving: each endpoint has
// its own concurrency limit and circuit breaker. (The rate comparison is a
// benchmark: docs/benchmarks.md.)
func TestCallbackEndpointsAreIsolated(t *testing.T) {
	healthy := startSink(t, sink.Options{})
	var hung, failed atomic.Int64
	hanging := startSink(t, sink.Options{Respond: func(sink.Event) sink.Answer { hung.Add(1); return sink.Answer{Hang: true} }})
	failing := startSink(t, sink.Options{Respond: func(sink.Event) sink.Answer {
		failed.Add(1)
		return sink.Answer{Status: http.StatusInternalServerError}
	}})
	sim := testSim(t, smsc.Config{})
	yaml := fmt.Sprintf(`
carriers:%s
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: ok, secret: %q, rate: 100000, burst: 100000, callback_url: %q}
  - {id: hang, secret: "hang-secret-0123456789", rate: 100000, burst: 100000, callback_url: %q}
  - {id: fail, secret: "fail-secret-0123456789", rate: 100000, burst: 100000, callback_url: %q}
webhooks: {allow_private_networks: true, retry_min: 50ms, retry_max: 200ms, timeout: 3s, concurrency: 8}
`, carrierYAML("sim", sim.Addr(), 2), testSecret, healthy.URL(), hanging.URL(), failing.URL())
	g, _ := startTestGateway(t, yaml)
	const n = 300
	batch := func(secret string, tag string) {
		msgs := make([]map[string]any, n)
		for i := range msgs {
			msgs[i] = map[string]any{"to": fmt.Sprintf("+4477009%05d", i), "from": "Acme", "body": tag}
		}
		r := callAuth(t, "POST", "http://"+g.Addr()+"/v1/messages/batch", secret, map[string]any{"messages": msgs})
		if r.status != 202 {
			t.Fatalf("batch: %d %v", r.status, r.body)
		}
	}
	batch("hang-secret-0123456789", "hang")
	batch("fail-secret-0123456789", "fail")
	batch(testSecret, "ok")
	if !healthy.Wait(30*time.Second, func(evs []sink.Event) bool { return len(evs) >= 2*n }) {
		t.Fatalf("healthy endpoint got %d of %d events", len(healthy.Events()), 2*n)
	}
	if h := hung.Load(); h > 8 {
		t.Errorf("%d requests reached the hanging endpoint at once, want at most its concurrency 8", h)
	}
	// The failing endpoint's circuit opens after 5 failures; in the time
	// the healthy one took, a few probes at most follow.
	if f := failed.Load(); f > 40 {
		t.Errorf("the failing endpoint got %d attempts; its circuit breaker should have held them back", f)
	}
	if healthy.Stats().Duplicates != 0 {
		t.Errorf("healthy endpoint: %+v", healthy.Stats())
	}
}

// A long inbound message injected by the simulator in three parts, out of
// order, with a duplicate and with a part repeated after the message was
// complete, arrives at the key's inbound URL as one message and can be
// read back through the API.
func TestInboundMessageReassembledAndPosted(t *testing.T) {
	s := startSink(t, sink.Options{Verify: verifier(testWebhookSecret)})
	g, sim := webhookGateway(t, s.URL()+"/status", s.URL()+"/inbound", "inbound: {reassembly_timeout: 300ms}")
	text := strings.Repeat("Inbound long message with an euro sign € and more. ", 7)
	waitBound(t, sim)
	if err := sim.InjectMO("gw", smsc.MO{From: "+447700900555", To: "447700900999", Text: text, Order: []int{3, 1, 3, 2, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.InjectMO("gw", smsc.MO{From: "+447700900555", To: "447700900000", Text: "nobody's number"}); err != nil {
		t.Fatal(err)
	}
	if !s.Wait(20*time.Second, func(evs []sink.Event) bool { return len(evs) >= 1 }) {
		t.Fatal("no inbound callback")
	}
	ev := s.Events()[0]
	if ev.Type != "message.inbound" || ev.Body != text || ev.Partial {
		t.Fatalf("event %+v, want the whole text", ev)
	}
	r := call(t, "GET", "http://"+g.Addr()+"/v1/messages/"+ev.MessageID, nil)
	if r.status != 200 || r.body["direction"] != "inbound" || r.body["status"] != "received" || r.body["body"] != text ||
		r.body["to"] != "+447700900999" || r.body["segments"] != float64(3) {
		t.Fatalf("GET inbound message: %d %v", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.node.Engine.Stats().InboundUnknown != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the message to an unowned number was not counted", g.node.Engine.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The part repeated after completion came before that message on the
	// one bind. Give it twice the reassembly timeout to (wrongly) turn
	// into a partial message of its own.
	time.Sleep(600 * time.Millisecond)
	if st := g.node.Engine.Stats(); st.Inbound != 1 || len(s.Events()) != 1 {
		t.Fatalf("stats %+v, %d events: the repeated part made another message", st, len(s.Events()))
	}
}

// A part that never arrives: the message is delivered as partial after the
// reassembly timeout, with the text that did arrive.
func TestInboundPartialAfterTimeout(t *testing.T) {
	s := startSink(t, sink.Options{})
	_, sim := webhookGateway(t, "", s.URL()+"/inbound", "inbound: {reassembly_timeout: 300ms}")
	waitBound(t, sim)
	text := strings.Repeat("0123456789", 40) // three GSM-7 parts
	if err := sim.InjectMO("gw", smsc.MO{From: "+447700900555", To: "+447700900999", Text: text, SAR: true, Order: []int{1, 3}}); err != nil {
		t.Fatal(err)
	}
	if !s.Wait(20*time.Second, func(evs []sink.Event) bool { return len(evs) >= 1 }) {
		t.Fatal("no inbound callback")
	}
	ev := s.Events()[0]
	if !ev.Partial || len(ev.Body) >= len(text) || !strings.HasPrefix(text, ev.Body[:100]) {
		t.Fatalf("event %+v, want a partial message with parts 1 and 3", ev)
	}
}

// A sender that reuses the reference of a message still waiting for a
// part sends a new message: the waiting one is delivered at once, partial,
// with the parts it had, and the new one whole; no part of either is
// dropped as a repeat or mixed into the other.
func TestInboundReusedReferenceStartsANewMessage(t *testing.T) {
	s := startSink(t, sink.Options{})
	g, sim := webhookGateway(t, "", s.URL()+"/inbound", "")
	waitBound(t, sim)
	first := strings.Repeat("first ", 70)  // three GSM-7 parts
	second := strings.Repeat("other ", 70) // three parts, the same reference
	if err := sim.InjectMO("gw", smsc.MO{From: "+447700900555", To: "+447700900999", Text: first, Ref: 9, Order: []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.node.Engine.Stats().InboundWaiting != 2 { // its third part is lost
		if time.Now().After(deadline) {
			t.Fatalf("the first message's parts are not waiting: %+v", g.node.Engine.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := sim.InjectMO("gw", smsc.MO{From: "+447700900555", To: "+447700900999", Text: second, Ref: 9}); err != nil {
		t.Fatal(err)
	}
	if !s.Wait(20*time.Second, func(evs []sink.Event) bool { return len(evs) >= 2 }) {
		t.Fatalf("inbound events %+v, want two", s.Events())
	}
	var partial, whole int
	for _, ev := range s.Events() {
		switch {
		case ev.Partial && strings.HasPrefix(first, ev.Body) && len(ev.Body) < len(first):
			partial++
		case !ev.Partial && ev.Body == second:
			whole++
		default:
			t.Errorf("unexpected inbound event: partial %v, body %q", ev.Partial, ev.Body)
		}
	}
	if partial != 1 || whole != 1 {
		t.Fatalf("%d partial first messages and %d whole second ones, want one of each", partial, whole)
	}
	if n := g.node.Engine.Stats().InboundWaiting; n != 0 {
		t.Fatalf("%d parts still waiting, want none", n)
	}
}

// waitBound waits until the simulator has a receiver bound.
func waitBound(t *testing.T, sim *smsc.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sim.Stats().Binds < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no receiver bound to the simulator")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Inbound messages and status changes written at the same time, with
// their callbacks to one endpoint: the outbox reader must not pass a
// callback whose write lands after a later one's. Every event arrives.
func TestCallbacksFromConcurrentWritersAllArrive(t *testing.T) {
	s := startSink(t, sink.Options{})
	g, sim := webhookGateway(t, s.URL()+"/status", s.URL()+"/inbound", "")
	waitBound(t, sim)
	const n = 200
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := sim.InjectMO("gw", smsc.MO{From: fmt.Sprintf("+4477009%05d", i), To: "+447700900999", Text: fmt.Sprintf("mo %d", i)}); err != nil {
				t.Errorf("inject: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		msgs := make([]map[string]any, n)
		for i := range msgs {
			msgs[i] = map[string]any{"to": fmt.Sprintf("+4477008%05d", i), "from": "Acme", "body": "mt"}
		}
		if r := call(t, "POST", "http://"+g.Addr()+"/v1/messages/batch", map[string]any{"messages": msgs}); r.status != 202 {
			t.Errorf("batch: %d %v", r.status, r.body)
		}
	}()
	wg.Wait()
	if !s.Wait(30*time.Second, func(evs []sink.Event) bool { return len(evs) >= 3*n }) {
		byType := map[string]int{}
		for _, e := range s.Events() {
			byType[e.Type+"/"+e.Status]++
		}
		t.Fatalf("got %v, want %d inbound and %d each of submitted and delivered", byType, n, n)
	}
	if st := s.Stats(); st.OutOfOrder != 0 || st.Events != 3*n {
		t.Errorf("sink %+v", st)
	}
}
