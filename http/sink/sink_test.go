package sink

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func post(t *testing.T, s *Sink, body string) int {
	t.Helper()
	resp, err := http.Post(s.URL()+"/hook", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func start(t *testing.T, opts Options) *Sink {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wantStats(t *testing.T, s *Sink, want Stats) {
	t.Helper()
	if got := s.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// The sink counts an event once, a repeat of its event_id as a duplicate,
// and an event older than one already accepted for its message as out of
// order.
func TestSinkCountsDuplicatesAndOrder(t *testing.T) {
	s := start(t, Options{})
	for _, b := range []string{
		`{"event_id":"evt_2","message_id":"m1","status":"submitted"}`,
		`{"event_id":"evt_2","message_id":"m1","status":"submitted","attempt":2}`,
		`{"event_id":"evt_3","message_id":"m1","status":"delivered"}`,
		`{"event_id":"evt_1","message_id":"m1","status":"queued"}`,
		`{"event_id":"evt_0","message_id":"m2","status":"delivered"}`,
	} {
		if code := post(t, s, b); code != http.StatusNoContent {
			t.Fatalf("%s: %d", b, code)
		}
	}
	if code := post(t, s, `not json`); code != http.StatusBadRequest {
		t.Errorf("bad body: %d, want 400", code)
	}
	wantStats(t, s, Stats{Requests: 6, Events: 4, Duplicates: 1, OutOfOrder: 1})
	if evs := s.Events(); len(evs) != 4 || evs[0].EventID != "evt_2" || evs[3].MessageID != "m2" {
		t.Errorf("events %+v", evs)
	}
}

// A batch (a JSON array) records each of its events, or none when one
// of them is answered with an error; an array with an event lacking its
// event_id, or an empty one, is a bad request.
func TestSinkTakesBatches(t *testing.T) {
	s := start(t, Options{Respond: func(e Event) Answer {
		if e.Status == "busy" {
			return Answer{Status: http.StatusServiceUnavailable}
		}
		return Answer{Status: http.StatusNoContent}
	}})
	cases := []struct {
		body string
		code int
	}{
		{`[{"event_id":"evt_1","message_id":"m1","status":"submitted"},{"event_id":"evt_2","message_id":"m2","status":"submitted"}]`, http.StatusNoContent},
		{`[{"event_id":"evt_3","message_id":"m1","status":"delivered"},{"event_id":"evt_4","message_id":"m3","status":"busy"}]`, http.StatusServiceUnavailable},
		{`[{"event_id":"evt_5","message_id":"m4"},{"message_id":"m5"}]`, http.StatusBadRequest},
		{`[]`, http.StatusBadRequest},
	}
	for _, c := range cases {
		if code := post(t, s, c.body); code != c.code {
			t.Errorf("%s: %d, want %d", c.body, code, c.code)
		}
	}
	wantStats(t, s, Stats{Requests: 4, Batches: 2, Largest: 2, Events: 2})
	if evs := s.Events(); len(evs) != 2 || evs[0].EventID != "evt_1" || evs[1].MessageID != "m2" {
		t.Errorf("events %+v", evs)
	}
}

// A failing answer is not an accepted event; Retry-After is sent; a bad
// signature is refused and counted.
func TestSinkAnswersAndVerifies(t *testing.T) {
	s := start(t, Options{
		Verify: func(sig string, _ []byte) error {
			if sig != "good" {
				return errors.New("bad")
			}
			return nil
		},
		Respond: func(e Event) Answer {
			if e.Status == "busy" {
				return Answer{Status: http.StatusTooManyRequests, RetryAfter: 7}
			}
			return Answer{Status: http.StatusOK}
		},
	})
	req, _ := http.NewRequest("POST", s.URL(), strings.NewReader(`{"event_id":"e1","message_id":"m","status":"busy"}`))
	req.Header.Set("Switchboard-Signature", "good")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("busy: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := post(t, s, `{"event_id":"e2","message_id":"m","status":"delivered"}`); code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d, want 401", code)
	}
	if st := s.Stats(); st.Events != 0 || st.BadSig != 1 || st.Requests != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Wait returns as soon as its condition holds, and a hanging request is
// released by Close.
func TestSinkWaitAndHang(t *testing.T) {
	s := start(t, Options{Respond: func(e Event) Answer { return Answer{Status: 204, Hang: e.Status == "hang"} }})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(s.URL(), "application/json", strings.NewReader(`{"event_id":"h","status":"hang"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	go func() {
		resp, err := http.Post(s.URL(), "application/json", strings.NewReader(`{"event_id":"e","message_id":"m","status":"delivered"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	if !s.Wait(10*time.Second, func(evs []Event) bool { return len(evs) == 1 }) {
		t.Fatal("Wait did not see the event")
	}
	if s.Wait(50*time.Millisecond, func(evs []Event) bool { return len(evs) == 2 }) {
		t.Fatal("Wait reported a condition that cannot hold")
	}
	s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a hanging request outlived Close")
	}
}

// OnEvent sees each distinct event once, duplicates are counted, and a
// delayed answer arrives after the delay.
func TestSinkOnEventAndDelay(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s := start(t, Options{
		Discard: true,
		OnEvent: func(e Event) {
			mu.Lock()
			got = append(got, e.EventID+"/"+e.Status)
			mu.Unlock()
		},
		Respond: func(e Event) Answer { return Answer{Status: http.StatusOK, Delay: 150 * time.Millisecond} },
	})
	t0 := time.Now()
	for _, b := range []string{
		`{"event_id":"e1","message_id":"m1","status":"submitted"}`,
		`{"event_id":"e2","message_id":"m1","status":"delivered"}`,
		`{"event_id":"e2","message_id":"m1","status":"delivered","attempt":2}`,
	} {
		if code := post(t, s, b); code != http.StatusOK {
			t.Fatalf("%s: %d", b, code)
		}
	}
	if el := time.Since(t0); el < 3*150*time.Millisecond {
		t.Errorf("three delayed answers took %v, want at least 450ms", el)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, " ") != "e1/submitted e2/delivered" {
		t.Errorf("OnEvent saw %q", got)
	}
	if st := s.Stats(); st.Events != 2 || st.Duplicates != 1 {
		t.Errorf("stats %+v", st)
	}
	if evs := s.Events(); len(evs) != 0 {
		t.Errorf("Discard kept %d events", len(evs))
	}
}

// A delayed answer is released by Close.
func TestSinkDelayReleasedByClose(t *testing.T) {
	s := start(t, Options{Respond: func(Event) Answer { return Answer{Status: 204, Delay: time.Hour} }})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(s.URL(), "application/json", strings.NewReader(`{"event_id":"e","message_id":"m"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	for s.Stats().Requests == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a delayed request outlived Close")
	}
	if st := s.Stats(); st.Events != 0 {
		t.Errorf("an answer cut by Close counted: %+v", st)
	}
}

// Kannel's delivery reports (GET /kannel?n=N&status=T) become events of
// message kannel-N: 1 delivered, 2 and 16 failed, 8 submitted
// (intermediate); a repeat is a duplicate; nonsense is 400.
func TestSinkKannelDLR(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	s := start(t, Options{OnEvent: func(e Event) { mu.Lock(); got = append(got, e); mu.Unlock() }})
	get := func(q string) int {
		t.Helper()
		resp, err := http.Get(s.URL() + "/kannel?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for q, want := range map[string]int{
		"n=7&status=8": 200, "n=7&status=1": 200, "n=9&status=2": 200, "n=10&status=16": 200,
		"n=11&status=3": 400, "status=1": 400, "n=a-b&status=1": 400,
	} {
		if code := get(q); code != want {
			t.Errorf("%s: %d, want %d", q, code, want)
		}
	}
	if code := get("n=7&status=1"); code != 200 {
		t.Errorf("repeat: %d", code)
	}
	mu.Lock()
	byID := map[string]Event{}
	for _, e := range got {
		byID[e.EventID] = e
	}
	mu.Unlock()
	for id, want := range map[string][2]string{
		"kannel-7-8": {"kannel-7", "submitted"}, "kannel-7-1": {"kannel-7", "delivered"},
		"kannel-9-2": {"kannel-9", "failed"}, "kannel-10-16": {"kannel-10", "failed"},
	} {
		e, ok := byID[id]
		if !ok || e.MessageID != want[0] || e.Status != want[1] || e.Type != KannelType {
			t.Errorf("%s: %+v (ok %v), want %v", id, e, ok, want)
		}
	}
	if st := s.Stats(); st.Events != 4 || st.Duplicates != 1 {
		t.Errorf("stats %+v", st)
	}
}

// An answer without a status is the default (204), and what the sink
// answers as a success it records: a delay alone does not make the
// gateway see 200 for an event the sink then leaves out.
func TestSinkAnswerWithoutStatusIsTheDefault(t *testing.T) {
	s := start(t, Options{Respond: func(Event) Answer { return Answer{Delay: time.Millisecond} }})
	if code := post(t, s, `{"event_id":"e1","message_id":"m1","status":"delivered"}`); code != http.StatusNoContent {
		t.Fatalf("answered %d, want 204", code)
	}
	if evs := s.Events(); len(evs) != 1 || evs[0].EventID != "e1" {
		t.Fatalf("recorded %+v, want e1", evs)
	}
}
