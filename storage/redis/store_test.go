package redis

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

func openPebble(t testing.TB) *pebble.Store {
	t.Helper()
	s, err := pebble.Open(t.TempDir(), pebble.Options{MemTableSize: 4 << 20, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("pebble: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testClient returns a client as the gateway makes one, closed when the
// test ends.
func testClient(t *testing.T, addr string) *goredis.Client {
	c := NewClient(ClientOptions{Addr: addr, Timeout: 100 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// The cache in front of Pebble keeps every contract of the store.
func TestConformance(t *testing.T) {
	client := testClient(t, redistest.Shared(t))
	storagetest.Run(t, func(t *testing.T) sb.Store {
		return Wrap(openPebble(t), client, Options{Prefix: redistest.Prefix(t)})
	})
}

// So it does with Redis gone from the start: every call falls back.
func TestConformanceRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	client := testClient(t, srv.Addr)
	srv.Stop()
	storagetest.Run(t, func(t *testing.T) sb.Store {
		return Wrap(openPebble(t), client, Options{Prefix: redistest.Prefix(t), Retry: time.Millisecond})
	})
}

// counting is the inner store, counting the reads the cache should spare
// and keeping the updates Record was given.
type counting struct {
	sb.Store
	mu             sync.Mutex
	carrierReads   int
	idemReads      int
	recorded       []sb.Update
	acceptGate     chan struct{} // if set, Accept waits for it
	acceptEntered  chan struct{}
	failNextAccept error
}

func (c *counting) CarrierMessage(ctx context.Context, carrier, id string) (string, int, error) {
	c.mu.Lock()
	c.carrierReads++
	c.mu.Unlock()
	return c.Store.CarrierMessage(ctx, carrier, id)
}

func (c *counting) Idempotency(ctx context.Context, key, idemKey string) (sb.IdempotencyRecord, error) {
	c.mu.Lock()
	c.idemReads++
	c.mu.Unlock()
	return c.Store.Idempotency(ctx, key, idemKey)
}

func (c *counting) Record(ctx context.Context, updates []sb.Update) ([]*sb.Message, error) {
	c.mu.Lock()
	c.recorded = append(c.recorded, updates...)
	c.mu.Unlock()
	return c.Store.Record(ctx, updates)
}

func (c *counting) Accept(ctx context.Context, msgs []sb.NewMessage) error {
	c.mu.Lock()
	gate, entered, fail := c.acceptGate, c.acceptEntered, c.failNextAccept
	c.failNextAccept = nil
	c.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return fail
	}
	return c.Store.Accept(ctx, msgs)
}

func (c *counting) reads() (carrier, idem int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.carrierReads, c.idemReads
}

// lastRecorded returns the last update the inner store was given.
func (c *counting) lastRecorded() sb.Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recorded[len(c.recorded)-1]
}

// rig is a cache in front of a counted Pebble store, on a Redis server
// of the test's own.
type rig struct {
	t      *testing.T
	srv    *redistest.Server
	client *goredis.Client
	inner  *counting
	s      *store
	logs   *syncBuffer
	ctx    context.Context
}

func newRig(t *testing.T) *rig {
	srv := redistest.Start(t)
	r := &rig{t: t, srv: srv, client: testClient(t, srv.Addr), logs: &syncBuffer{}, ctx: t.Context()}
	r.inner = &counting{Store: openPebble(t)}
	t.Cleanup(func() { r.inner.Close() })
	r.s = r.wrap(r.inner)
	return r
}

func (r *rig) wrap(inner sb.Store) *store {
	return Wrap(inner, r.client, Options{
		Timeout: 100 * time.Millisecond, Retry: 20 * time.Millisecond,
		Logger: zerolog.New(r.logs),
	}).(*store)
}

// message accepts a new message of key k1, with an idempotency key if
// idemKey is not empty.
func (r *rig) message(idemKey string) *sb.Message {
	r.t.Helper()
	m := r.newMessage()
	if err := r.s.Accept(r.ctx, []sb.NewMessage{{Message: m, IdempotencyKey: idemKey}}); err != nil {
		r.t.Fatalf("Accept: %v", err)
	}
	return m
}

// newMessage returns a message of key k1 as the engine builds one.
func (r *rig) newMessage() *sb.Message {
	at := time.Now().UTC().Truncate(time.Millisecond)
	return &sb.Message{
		ID:  "msg_" + ulid.Make().String(),
		Key: "k1", To: "+491701234567", From: "Switchboard", Body: "hello", Encoding: "gsm7", Segments: 1,
		Status: sb.StatusAccepted, AcceptedAt: at, UpdatedAt: at, ExpiresAt: at.Add(48 * time.Hour),
		Events: []sb.Event{{Status: sb.StatusAccepted, At: at}},
	}
}

// submit records m as submitted with one carrier id per part.
func (r *rig) submit(m *sb.Message, ids ...string) {
	r.t.Helper()
	tr := sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: time.Now(), Carrier: "sandbox"}, Part: -1, CarrierIDs: ids}
	if _, err := r.s.Record(r.ctx, []sb.Update{{MessageID: m.ID, Transition: tr}}); err != nil {
		r.t.Fatalf("Record submitted: %v", err)
	}
}

// receipt records a delivery receipt by carrier id and returns the
// message as Record returned it (nil: parked).
func (r *rig) receipt(id string) *sb.Message {
	r.t.Helper()
	got, err := r.s.Record(r.ctx, []sb.Update{{
		ByCarrier: &sb.CarrierRef{Carrier: "sandbox", ID: id}, ParkUntil: time.Now().Add(time.Hour),
		Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: time.Now()}},
	}})
	if err != nil {
		r.t.Fatalf("Record receipt %s: %v", id, err)
	}
	return got[0]
}

// wantCarrier checks CarrierMessage's answer and whether the store was
// asked.
func (r *rig) wantCarrier(id, wantMsg string, wantPart int, storeAsked bool) {
	r.t.Helper()
	before, _ := r.inner.reads()
	got, part, err := r.s.CarrierMessage(r.ctx, "sandbox", id)
	if err != nil || got != wantMsg || part != wantPart {
		r.t.Fatalf("CarrierMessage(%s) = %s, %d, %v; want %s, %d", id, got, part, err, wantMsg, wantPart)
	}
	after, _ := r.inner.reads()
	if asked := after > before; asked != storeAsked {
		r.t.Fatalf("CarrierMessage(%s): store asked %v, want %v", id, asked, storeAsked)
	}
}

// waitUp waits until the cache uses Redis again (a call must find it).
func (r *rig) waitUp() {
	r.t.Helper()
	// Any call may be the one that tries Redis again.
	waitFor(r.t, func() bool { return !r.s.link.isDown() }, func() { r.s.Idempotency(r.ctx, "k1", "probe") })
}

func (r *rig) logCount(msg string) int { return strings.Count(r.logs.String(), msg) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
