package http

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// stubEngine stands in for actors.Engine, which is tested end-to-end
// elsewhere. It accepts every request, remembers messages and idempotency
// keys in memory, and fails the requests whose destination is in errs, so
// tests can make the engine answer any error.
type stubEngine struct {
	mu    sync.Mutex
	n     int
	msgs  map[string]*switchboard.Message
	idem  map[string]idemRecord // key id + "\x00" + idempotency key
	errs  map[string]error      // destination → the error Submit answers
	calls [][]switchboard.SubmitRequest
	// gate, when set, makes Submit wait until it is closed, so a test can
	// hold a request in progress.
	gate    chan struct{}
	entered chan struct{} // receives once per Submit that waits on gate
	// msgErr, when set, is what Message and ListMessages answer.
	msgErr error
	// listScan, when set, is how many messages one ListMessages call
	// reads at most, as a store bounds its scans; listCalls counts calls.
	listScan  int
	listCalls int
	lastQuery switchboard.MessageQuery
	// readyErr is what Ready answers.
	readyErr error
}

func (e *stubEngine) Ready() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readyErr
}

func (e *stubEngine) setReady(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.readyErr = err
}

type idemRecord struct {
	id   string
	hash [32]byte
}

func newStubEngine() *stubEngine {
	return &stubEngine{
		msgs: map[string]*switchboard.Message{},
		idem: map[string]idemRecord{},
		errs: map[string]error{},
	}
}

func (e *stubEngine) Submit(ctx context.Context, key *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
	e.mu.Lock()
	gate, entered := e.gate, e.entered
	e.calls = append(e.calls, append([]switchboard.SubmitRequest(nil), reqs...))
	e.mu.Unlock()
	if gate != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		<-gate
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]switchboard.SubmitResult, len(reqs))
	for i := range reqs {
		out[i] = e.submitLocked(key, &reqs[i])
	}
	return out
}

func (e *stubEngine) submitLocked(key *switchboard.Key, r *switchboard.SubmitRequest) switchboard.SubmitResult {
	if err := e.errs[r.To]; err != nil {
		return switchboard.SubmitResult{Err: err}
	}
	if r.IdempotencyKey != "" {
		if rec, ok := e.idem[key.ID+"\x00"+r.IdempotencyKey]; ok {
			if rec.hash != r.RequestHash {
				return switchboard.SubmitResult{Err: switchboard.Errorf(switchboard.EIDEMPOTENCY, "Idempotency-Key reused with another request.")}
			}
			return switchboard.SubmitResult{Message: e.msgs[rec.id]}
		}
	}
	e.n++
	now := time.Date(2025, 1, 2, 3, 4, 5, 600000000, time.UTC)
	m := &switchboard.Message{
		ID:         fmt.Sprintf("msg_01JZZZZZZZZZZZZZZZ%08d", e.n),
		Key:        key.ID,
		To:         r.To,
		From:       r.From,
		Body:       r.Body,
		Reference:  r.Reference,
		Encoding:   "gsm7",
		Segments:   len(r.Body)/153 + 1,
		Status:     switchboard.StatusAccepted,
		AcceptedAt: now,
		UpdatedAt:  now,
		Events:     []switchboard.Event{{Status: switchboard.StatusAccepted, At: now}},
	}
	e.msgs[m.ID] = m
	if r.IdempotencyKey != "" {
		e.idem[key.ID+"\x00"+r.IdempotencyKey] = idemRecord{id: m.ID, hash: r.RequestHash}
	}
	return switchboard.SubmitResult{Message: m}
}

func (e *stubEngine) Message(ctx context.Context, key *switchboard.Key, id string) (*switchboard.Message, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.msgErr != nil {
		return nil, e.msgErr
	}
	// Worded differently, as the real engine and store word them.
	m, ok := e.msgs[id]
	if !ok {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "message not found")
	}
	if m.Key != key.ID {
		return nil, switchboard.Errorf(switchboard.ENOTFOUND, "Message not found.")
	}
	return m, nil
}

func (e *stubEngine) lastCall() []switchboard.SubmitRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.calls) == 0 {
		return nil
	}
	return e.calls[len(e.calls)-1]
}

func (e *stubEngine) setErr(to string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs[to] = err
}

// ListMessages lists like a store: key's messages of q.Day, newest first,
// filtered, reading at most listScan messages per call.
func (e *stubEngine) ListMessages(ctx context.Context, key *switchboard.Key, q switchboard.MessageQuery) ([]*switchboard.Message, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listCalls++
	e.lastQuery = q
	if e.msgErr != nil {
		return nil, "", e.msgErr
	}
	q.Key = key.ID
	var day []*switchboard.Message
	for _, m := range e.msgs {
		if m.Key == q.Key && m.Day() == q.Day && (q.Before == "" || m.ID < q.Before) {
			day = append(day, m)
		}
	}
	slices.SortFunc(day, func(a, b *switchboard.Message) int { return strings.Compare(b.ID, a.ID) })
	var out []*switchboard.Message
	for i, m := range day {
		if e.listScan > 0 && i == e.listScan {
			return out, day[i-1].ID, nil
		}
		if q.Matches(m) {
			out = append(out, m)
		}
		if len(out) == q.Limit {
			if i == len(day)-1 {
				return out, "", nil
			}
			return out, m.ID, nil
		}
	}
	return out, "", nil
}

// put stores a message as if it had been accepted; its ID is made from n.
func (e *stubEngine) put(key string, n int, edit func(*switchboard.Message)) *switchboard.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &switchboard.Message{
		ID: fmt.Sprintf("msg_01JYYYYYYYYYYYYYYY%08d", n), Key: key, To: "+447700900123", From: "Acme", Body: "hi",
		Encoding: "gsm7", Segments: 1, Status: switchboard.StatusAccepted, AcceptedAt: at, UpdatedAt: at,
		Events: []switchboard.Event{{Status: switchboard.StatusAccepted, At: at}},
	}
	if edit != nil {
		edit(m)
	}
	e.msgs[m.ID] = m
	return m
}
