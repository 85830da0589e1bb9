package storagetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// The endpoint of the fixture messages' CallbackURL, and a key's default.
const (
	messageEndpoint = "https://example.com:443"
	defaultURL      = "http://hooks.example.org:8080/default"
	defaultEndpoint = "http://hooks.example.org:8080"
)

// notify asks for a callback, with a new event ID, when an update moves a
// message to one of statuses.
func (f *fixture) notify(statuses ...sb.Status) *sb.Notify {
	set, ok := sb.NewStatusSet(statuses...)
	if !ok {
		panic(fmt.Sprintf("no callbacks for %v", statuses))
	}
	return &sb.Notify{EventID: f.ids.event(), DefaultURL: defaultURL, Statuses: set, At: now()}
}

func (f *fixture) callbacks(t *testing.T, endpoint, afterID string, limit int) []sb.Callback {
	t.Helper()
	return f.callbacksBetween(t, endpoint, afterID, "", limit)
}

func (f *fixture) callbacksBetween(t *testing.T, endpoint, afterID, beforeID string, limit int) []sb.Callback {
	t.Helper()
	cbs, err := f.s.Callbacks(f.ctx, endpoint, afterID, beforeID, limit)
	if err != nil {
		t.Fatalf("Callbacks(%q, %q, %q, %d): %v", endpoint, afterID, beforeID, limit, err)
	}
	return cbs
}

// wantCallbackIDs fails the test unless cbs have exactly the given IDs, in
// order.
func wantCallbackIDs(t *testing.T, cbs []sb.Callback, ids ...string) {
	t.Helper()
	got := make([]string, len(cbs))
	for i, cb := range cbs {
		got[i] = cb.ID
	}
	if len(ids) == 0 {
		ids = []string{}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("callback IDs\n got: %v\nwant: %v", got, ids)
	}
}

// wantCallback fails the test unless got and want are the same callback,
// comparing CreatedAt as an instant.
func wantCallback(t *testing.T, got, want sb.Callback) {
	t.Helper()
	same := got.ID == want.ID && got.Type == want.Type && got.Key == want.Key && got.URL == want.URL &&
		got.Endpoint == want.Endpoint && got.MessageID == want.MessageID &&
		got.CreatedAt.Equal(want.CreatedAt) && bytes.Equal(got.Data, want.Data)
	if !same {
		t.Fatalf("callback differs\n got: %+v\nwant: %+v", got, want)
	}
}

// wantStatusEvent fails the test unless cb is a message.status callback
// about message id whose event says status.
func wantStatusEvent(t *testing.T, cb sb.Callback, id string, status sb.Status) {
	t.Helper()
	var ev struct {
		Type      string    `json:"type"`
		MessageID string    `json:"message_id"`
		Status    sb.Status `json:"status"`
	}
	if err := json.Unmarshal(cb.Data, &ev); err != nil {
		t.Fatalf("callback %s: data %q: %v", cb.ID, cb.Data, err)
	}
	if cb.Type != sb.CallbackStatus || cb.MessageID != id || ev.Type != sb.CallbackStatus ||
		ev.MessageID != id || ev.Status != status {
		t.Fatalf("callback %+v with data %s; want a status callback about %s, status %s", cb, cb.Data, id, status)
	}
}

func (f *fixture) wantEndpoints(t *testing.T, want ...string) {
	t.Helper()
	got, err := f.s.CallbackEndpoints(f.ctx)
	if err != nil {
		t.Fatalf("CallbackEndpoints: %v", err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) == 0 {
		want = nil
	}
	if len(got) == 0 {
		got = nil
	}
	if !slices.Equal(got, want) {
		t.Fatalf("CallbackEndpoints = %v, want %v", got, want)
	}
}

// A Notify queues a callback exactly when its update changes the status
// into one it wants: not for a status it does not want, not for an update
// that changes nothing, not for one that changes the message but not its
// status. The callback is Notify.StatusCallbacks's, listed once Record
// returns.
func testNotifyQueuesOnStatusChange(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 2
	f.accept(t, m)
	wants := []sb.Status{sb.StatusSubmitted, sb.StatusDelivered}

	f.record(t, sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusQueued), Notify: f.notify(wants...)})
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10))

	n := f.notify(wants...)
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "a", "b"), Notify: n})[0]
	cbs := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, cbs, n.EventID)
	want := n.StatusCallbacks(sb.StatusQueued, got)
	if len(want) != 1 {
		t.Fatalf("StatusCallbacks returned %d callbacks, want 1", len(want))
	}
	wantCallback(t, cbs[0], want[0])
	wantStatusEvent(t, cbs[0], m.ID, sb.StatusSubmitted)
	if cbs[0].Key != "k1" || cbs[0].URL != m.CallbackURL || cbs[0].Endpoint != messageEndpoint || !cbs[0].CreatedAt.Equal(n.At) {
		t.Fatalf("callback %+v: want key k1, the message's URL and endpoint, CreatedAt %v", cbs[0], n.At)
	}

	// Apply refuses a second submitted: no change, no callback.
	f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "c", "d"), Notify: f.notify(wants...)})
	// One part of two: the message changes, its status does not.
	f.record(t, sb.Update{MessageID: m.ID, Transition: receipt(now(), 0, sb.StatusDelivered), Notify: f.notify(wants...)})
	// Without a Notify, nothing is queued.
	f.record(t, sb.Update{MessageID: m.ID, Transition: receipt(now(), 1, sb.StatusDelivered)})
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10), n.EventID)
	f.wantEndpoints(t, messageEndpoint)
}

// The message's CallbackURL wins over the key's default; with neither, or
// with a URL that is not a valid callback URL, nothing is queued.
func testNotifyURLs(t *testing.T, f *fixture) {
	own, byDefault, neither, invalid := f.message("k1", now()), f.message("k1", now()), f.message("k1", now()), f.message("k1", now())
	byDefault.CallbackURL, neither.CallbackURL, invalid.CallbackURL = "", "", "ftp://example.com/hook"
	f.accept(t, own, byDefault, neither, invalid)
	nOwn, nDefault, nNeither, nInvalid := f.notify(sb.StatusFailed), f.notify(sb.StatusFailed), f.notify(sb.StatusFailed), f.notify(sb.StatusFailed)
	nNeither.DefaultURL = ""
	f.record(t,
		sb.Update{MessageID: own.ID, Transition: status(now(), sb.StatusFailed), Notify: nOwn},
		sb.Update{MessageID: byDefault.ID, Transition: status(now(), sb.StatusFailed), Notify: nDefault},
		sb.Update{MessageID: neither.ID, Transition: status(now(), sb.StatusFailed), Notify: nNeither},
		sb.Update{MessageID: invalid.ID, Transition: status(now(), sb.StatusFailed), Notify: nInvalid},
	)
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10), nOwn.EventID)
	cbs := f.callbacks(t, defaultEndpoint, "", 10)
	wantCallbackIDs(t, cbs, nDefault.EventID)
	if cbs[0].URL != defaultURL || cbs[0].MessageID != byDefault.ID {
		t.Fatalf("callback %+v: want URL %s for message %s", cbs[0], defaultURL, byDefault.ID)
	}
	f.wantEndpoints(t, messageEndpoint, defaultEndpoint)
}

// Several updates to one message in one Record each queue the callback for
// the change they made: the status before an update is the status after
// the one before it.
func testNotifySeveralUpdates(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Segments = 2
	f.accept(t, m)
	all := []sb.Status{sb.StatusQueued, sb.StatusSubmitted, sb.StatusDelivered}
	nQueued, nSubmitted, nPart, nDelivered := f.notify(all...), f.notify(all...), f.notify(all...), f.notify(all...)
	t0 := now()
	got := f.record(t,
		sb.Update{MessageID: m.ID, Transition: status(t0, sb.StatusQueued), Notify: nQueued},
		sb.Update{MessageID: m.ID, Transition: submitted(t0.Add(time.Millisecond), "sandbox", "a", "b"), Notify: nSubmitted},
		sb.Update{MessageID: m.ID, Transition: receipt(t0.Add(2*time.Millisecond), 0, sb.StatusDelivered), Notify: nPart},
		sb.Update{MessageID: m.ID, Transition: receipt(t0.Add(3*time.Millisecond), 1, sb.StatusDelivered), Notify: nDelivered},
	)
	cbs := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, cbs, nQueued.EventID, nSubmitted.EventID, nDelivered.EventID)
	wantStatusEvent(t, cbs[0], m.ID, sb.StatusQueued)
	wantStatusEvent(t, cbs[1], m.ID, sb.StatusSubmitted)
	wantStatusEvent(t, cbs[2], m.ID, sb.StatusDelivered)
	// Each callback describes the message as its update left it.
	for i, j := range []int{0, 1, 3} {
		want := []*sb.Notify{nQueued, nSubmitted, nDelivered}[i].StatusCallbacks(
			[]sb.Status{sb.StatusAccepted, sb.StatusQueued, sb.StatusSubmitted}[i], got[j])
		if len(want) != 1 {
			t.Fatalf("update %d: StatusCallbacks queues %d, want 1", j, len(want))
		}
		wantCallback(t, cbs[i], want[0])
	}
}

// A Record that fails (an unknown message) queues none of its callbacks.
func testNotifyAllOrNone(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	_, err := f.s.Record(f.ctx, []sb.Update{
		{MessageID: m.ID, Transition: status(now(), sb.StatusFailed), Notify: f.notify(sb.StatusFailed)},
		{MessageID: f.ids.next(), Transition: status(now(), sb.StatusFailed), Notify: f.notify(sb.StatusFailed)},
	})
	wantCode(t, err, sb.ENOTFOUND)
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10))
	f.wantEndpoints(t)
	wantEqual(t, f.get(t, m.ID), m)
}

// A Notify without an EventID would queue a callback that cannot be listed
// or finished: the Record fails with EINVALID and stores nothing. The same
// Notify on an update that queues nothing is harmless.
func testNotifyWithoutEventID(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	n := f.notify(sb.StatusFailed)
	n.EventID = ""
	f.record(t, sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusQueued), Notify: n})
	_, err := f.s.Record(f.ctx, []sb.Update{{MessageID: m.ID, Transition: status(now(), sb.StatusFailed), Notify: n}})
	wantCode(t, err, sb.EINVALID)
	if got := f.get(t, m.ID); got.Status != sb.StatusQueued {
		t.Fatalf("status %s after a refused Record, want queued", got.Status)
	}
	f.wantEndpoints(t)
}

// Receipts for every part of one message recorded concurrently, each with
// a Notify: the one that makes the message final queues the only callback,
// so concurrent Records see each other's status.
func testNotifyConcurrentReceipts(t *testing.T, f *fixture) {
	const parts = 8
	m := f.submittedParts(t, parts)
	updates := make([]sb.Update, parts)
	for part := range parts {
		updates[part] = sb.Update{MessageID: m.ID, Transition: receipt(now(), part, sb.StatusDelivered),
			Notify: f.notify(sb.StatusSubmitted, sb.StatusDelivered)}
	}
	f.recordConcurrently(t, updates...)
	cbs := f.callbacks(t, messageEndpoint, "", 100)
	if len(cbs) != 1 {
		t.Fatalf("%d callbacks queued, want 1: %+v", len(cbs), cbs)
	}
	wantStatusEvent(t, cbs[0], m.ID, sb.StatusDelivered)
}

// inbound returns a new inbound message of key, as the engine builds one
// from a carrier's deliver_sm.
func (f *fixture) inbound(key string, at time.Time) *sb.Message {
	return &sb.Message{
		ID: f.ids.next(), Key: key, To: "+4915112345678", From: "+491701234567", Body: "Hello back",
		Encoding: "gsm7", Segments: 1, Status: sb.StatusReceived, AcceptedAt: at, UpdatedAt: at,
		Carrier: "sandbox", Events: []sb.Event{{Status: sb.StatusReceived, At: at, Carrier: "sandbox"}},
		Direction: sb.DirectionInbound,
	}
}

// queue stores a new inbound message of key k1 with its callback to url,
// with the given event ID, and returns the callback.
func (f *fixture) queue(t *testing.T, url, eventID string) sb.Callback {
	t.Helper()
	m := f.inbound("k1", now())
	cb, ok := sb.InboundCallback(eventID, url, m)
	if !ok {
		t.Fatalf("InboundCallback(%q) refused the URL", url)
	}
	if err := f.s.AcceptInbound(f.ctx, m, &cb, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}
	return cb
}

// Callbacks lists an endpoint's callbacks in ID order, whatever order they
// were queued in, and only that endpoint's; paging by afterID walks them
// once.
func testCallbacksOrderAndPaging(t *testing.T, f *fixture) {
	const urlA, urlB = "https://a.example/hook", "https://b.example/hook"
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = f.ids.event()
	}
	queued := map[string]sb.Callback{}
	for _, i := range []int{3, 0, 9, 5, 1, 8, 2, 7, 4, 6} {
		queued[ids[i]] = f.queue(t, urlA, ids[i])
		f.queue(t, urlB, f.ids.event())
	}
	const a = "https://a.example:443"
	got := f.callbacks(t, a, "", 100)
	wantCallbackIDs(t, got, ids...)
	for _, cb := range got {
		wantCallback(t, cb, queued[cb.ID])
	}
	var paged []string
	for after := ""; ; {
		page := f.callbacks(t, a, after, 3)
		if len(page) > 3 {
			t.Fatalf("page of %d callbacks, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, cb := range page {
			paged = append(paged, cb.ID)
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(paged, ids) {
		t.Fatalf("paged IDs\n got: %v\nwant: %v", paged, ids)
	}
	wantCallbackIDs(t, f.callbacks(t, a, ids[4], 2), ids[5:7]...)
	between := func(afterID, beforeID string, limit int) []sb.Callback {
		t.Helper()
		return f.callbacksBetween(t, a, afterID, beforeID, limit)
	}
	wantCallbackIDs(t, between("", ids[3], 100), ids[:3]...)
	wantCallbackIDs(t, between(ids[1], ids[6], 100), ids[2:6]...)
	wantCallbackIDs(t, between(ids[1], ids[6], 2), ids[2:4]...)
	wantCallbackIDs(t, between(ids[1], ids[3]+"~", 100), ids[2:4]...)
	wantCallbackIDs(t, between(ids[5], ids[5], 100))
	wantCallbackIDs(t, between(ids[6], ids[5], 100))
	wantCallbackIDs(t, f.callbacks(t, a, ids[4]+"~", 1), ids[5])
	wantCallbackIDs(t, f.callbacks(t, a, "", 0))
	wantCallbackIDs(t, f.callbacks(t, "https://c.example:443", "", 10))
	if n := len(f.callbacks(t, "https://b.example:443", "", 100)); n != 10 {
		t.Fatalf("endpoint b has %d callbacks, want 10", n)
	}
}

// CallbackEndpoints lists each endpoint with queued callbacks once, also
// endpoints whose names are prefixes of each other, and forgets one when
// its last callback is finished.
func testCallbackEndpoints(t *testing.T, f *fixture) {
	f.wantEndpoints(t)
	var short []sb.Callback
	for range 3 {
		short = append(short, f.queue(t, "http://h.example/x", f.ids.event()))
		f.queue(t, "http://h.example:8080/x", f.ids.event())
	}
	f.queue(t, "https://other.example/", f.ids.event())
	f.wantEndpoints(t, "http://h.example:80", "http://h.example:8080", "https://other.example:443")
	done := make([]sb.FinishedCallback, len(short))
	for i, cb := range short {
		done[i] = sb.FinishedCallback{Callback: cb}
	}
	if err := f.s.FinishCallbacks(f.ctx, done); err != nil {
		t.Fatalf("FinishCallbacks: %v", err)
	}
	f.wantEndpoints(t, "http://h.example:8080", "https://other.example:443")
}

// FinishCallbacks removes delivered and given-up callbacks alike, records
// the failures on their messages (in the order given), skips a message
// that does not exist, and takes a callback that is not queued in its
// stride.
func testFinishCallbacks(t *testing.T, f *fixture) {
	const url = "https://example.com/hooks/sms"
	m := f.message("k1", now())
	f.accept(t, m)
	n1, n2 := f.notify(sb.StatusQueued, sb.StatusFailed), f.notify(sb.StatusQueued, sb.StatusFailed)
	f.record(t,
		sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusQueued), Notify: n1},
		sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusFailed), Notify: n2},
	)
	other := f.queue(t, url, f.ids.event())
	cbs := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, cbs, n1.EventID, n2.EventID, other.ID)

	at := now()
	fail1 := sb.WebhookFailure{EventID: n1.EventID, Type: sb.CallbackStatus, URL: url, Reason: sb.WebhookGone, Attempts: 1, At: at}
	fail2 := sb.WebhookFailure{EventID: n2.EventID, Type: sb.CallbackStatus, URL: url, Reason: sb.WebhookMaxAge, Attempts: 17, At: at.Add(time.Second)}
	ghost := sb.Callback{ID: f.ids.event(), Endpoint: messageEndpoint, MessageID: f.ids.next()}
	err := f.s.FinishCallbacks(f.ctx, []sb.FinishedCallback{
		{Callback: cbs[0], Failure: &fail1},
		{Callback: cbs[2]},
		{Callback: ghost, Failure: &sb.WebhookFailure{EventID: ghost.ID, Reason: sb.WebhookGone}},
		{Callback: cbs[1], Failure: &fail2},
	})
	if err != nil {
		t.Fatalf("FinishCallbacks: %v", err)
	}
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10))
	f.wantEndpoints(t)
	got := f.get(t, m.ID)
	want := normalize(got)
	want.WebhookFailures = []sb.WebhookFailure{fail1, fail2}
	wantEqual(t, got, want)
	if got.Status != sb.StatusFailed {
		t.Fatalf("status %s, want failed", got.Status)
	}
	if w := f.get(t, other.MessageID).WebhookFailures; len(w) != 0 {
		t.Fatalf("a delivered callback recorded failures %+v", w)
	}
	f.wantMissing(t, ghost.MessageID)

	// Finished already: not an error.
	if err := f.s.FinishCallbacks(f.ctx, []sb.FinishedCallback{{Callback: cbs[2]}}); err != nil {
		t.Fatalf("FinishCallbacks of a finished callback: %v", err)
	}
	if err := f.s.FinishCallbacks(f.ctx, nil); err != nil {
		t.Fatalf("FinishCallbacks of none: %v", err)
	}
}

// A failure is recorded once per event ID: finishing a given-up callback
// again, in a later call or twice in one, does not repeat it.
func testFinishCallbacksFailureOnce(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	f.accept(t, m)
	n := f.notify(sb.StatusFailed)
	f.record(t, sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusFailed), Notify: n})
	cb := f.callbacks(t, messageEndpoint, "", 10)[0]
	fail := sb.WebhookFailure{EventID: cb.ID, Type: cb.Type, URL: cb.URL, Reason: sb.WebhookMaxAge, Attempts: 3, At: now()}
	done := []sb.FinishedCallback{{Callback: cb, Failure: &fail}, {Callback: cb, Failure: &fail}}
	for range 2 {
		if err := f.s.FinishCallbacks(f.ctx, done); err != nil {
			t.Fatalf("FinishCallbacks: %v", err)
		}
	}
	if got := f.get(t, m.ID).WebhookFailures; len(got) != 1 || got[0].EventID != cb.ID {
		t.Fatalf("WebhookFailures = %+v, want the one failure of %s", got, cb.ID)
	}
}

// Failures of one message finished concurrently all land: the append is an
// atomic read-modify-write, like Record's.
func testFinishCallbacksConcurrentFailures(t *testing.T, f *fixture) {
	const n = 16
	m := f.message("k1", now())
	f.accept(t, m)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		cb := sb.Callback{ID: fmt.Sprintf("evt_%02d", i), Endpoint: messageEndpoint, MessageID: m.ID}
		wg.Go(func() {
			errs <- f.s.FinishCallbacks(f.ctx, []sb.FinishedCallback{{Callback: cb,
				Failure: &sb.WebhookFailure{EventID: cb.ID, Reason: sb.WebhookGone, Attempts: 1, At: now()}}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("FinishCallbacks: %v", err)
		}
	}
	got := f.get(t, m.ID).WebhookFailures
	seen := map[string]bool{}
	for _, w := range got {
		seen[w.EventID] = true
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("%d failures (%d distinct) recorded, want %d", len(got), len(seen), n)
	}
}
