package actors_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// pageGateStore is a fake standing in for a store whose writes land out of
// order while a page is read: it passes calls to a real Pebble store, but
// holds the Accept of one chosen body, and the first unbounded Pending
// read, until the test lets them go — an interleaving no real store
// produces on demand.
type pageGateStore struct {
	*pebble.Store
	holdBody   string
	accepting  chan struct{} // closed when the held Accept arrives
	acceptGo   chan struct{}
	paging     chan struct{} // closed when the first unbounded Pending arrives
	pageGo     chan struct{}
	acceptOnce sync.Once
	pageOnce   sync.Once
}

func (s *pageGateStore) Accept(ctx context.Context, msgs []switchboard.NewMessage) error {
	for _, nm := range msgs {
		if nm.Message.Body == s.holdBody {
			s.acceptOnce.Do(func() { close(s.accepting) })
			<-s.acceptGo
		}
	}
	return s.Store.Accept(ctx, msgs)
}

func (s *pageGateStore) Pending(ctx context.Context, key, after, before string, limit int) ([]*switchboard.Message, error) {
	held := false
	if before == "" {
		s.pageOnce.Do(func() { held = true; close(s.paging) })
	}
	if held {
		<-s.pageGo
	}
	return s.Store.Pending(ctx, key, after, before, limit)
}

// seedPending stores one pending message of key, as a node that stopped
// would leave it, so the key's actor starts with messages to page in.
func seedPending(t *testing.T, s *pebble.Store, key, to, body string) string {
	t.Helper()
	at := time.Now().Add(-time.Second)
	m := &switchboard.Message{
		ID: "msg_" + ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(), Key: key,
		To: to, From: "Acme", Body: body, Encoding: "gsm7", Segments: 1, Status: switchboard.StatusAccepted,
		AcceptedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour),
		Events: []switchboard.Event{{Status: switchboard.StatusAccepted, At: at}},
	}
	if err := s.Accept(context.Background(), []switchboard.NewMessage{{Message: m}}); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// A page read while two of the key's commits are on their way, the later
// one landing first, must not move past the earlier one: both are sent
// once the earlier lands, each once. (The read sees the later message and
// not the earlier; a key that paged on above what it read would never
// send the earlier.)
func TestPageReadDoesNotSkipACommitLandingLate(t *testing.T) {
	gate := &pageGateStore{holdBody: "k0|+447700900001|early", accepting: make(chan struct{}), acceptGo: make(chan struct{}),
		paging: make(chan struct{}), pageGo: make(chan struct{})}
	var seeded string
	r := newRig(t, rigOptions{wrapStore: func(s *pebble.Store) switchboard.Store {
		seeded = seedPending(t, s, "k0", "+447700900003", "k0|+447700900003|left")
		gate.Store = s
		return gate
	}})
	<-gate.paging // the key's actor reads its first page, and waits here

	early := make(chan switchboard.SubmitResult, 1)
	go func() { early <- r.submit(r.keys[0], "+447700900001", gate.holdBody) }()
	<-gate.accepting // admitted; its Accept waits
	late := r.submit(r.keys[0], "+447700900002", "k0|+447700900002|late")
	if late.Err != nil {
		t.Fatal(late.Err)
	}
	close(gate.pageGo) // the page finds the seeded and the late message, not the early one
	r.waitFinal([]string{seeded}, switchboard.StatusDelivered, 10*time.Second)

	close(gate.acceptGo)
	res := <-early
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	r.waitFinal([]string{res.Message.ID, late.Message.ID}, switchboard.StatusDelivered, 10*time.Second)
	for body, n := range r.timesSeen() {
		if n != 1 {
			t.Errorf("%s sent %d times", body, n)
		}
	}
}
