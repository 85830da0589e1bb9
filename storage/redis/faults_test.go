package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
)

// Carrier ids: a submit's Record fills Redis, CarrierMessage is answered
// from it; flushed or stopped, the answers come from the store, and the
// cache fills again once Redis is back.
func TestCarrierIDsFlushedAndStopped(t *testing.T) {
	r := newRig(t)
	m := r.message("")
	r.submit(m, "c-0", "c-1")
	r.wantCarrier("c-1", m.ID, 1, false)

	r.srv.Flush()
	r.wantCarrier("c-1", m.ID, 1, true)
	r.wantCarrier("c-1", m.ID, 1, false) // filled from the store's answer

	r.srv.Stop()
	r.wantCarrier("c-0", m.ID, 0, true)
	r.wantCarrier("c-0", m.ID, 0, true)
	m2 := r.message("")
	r.submit(m2, "c-2") // recorded while Redis is down
	r.wantCarrier("c-2", m2.ID, 0, true)

	r.srv.Restart() // empty
	r.waitUp()
	r.wantCarrier("c-2", m2.ID, 0, true)
	r.wantCarrier("c-2", m2.ID, 0, false)
	if n := r.logCount("redis unreachable"); n != 1 {
		t.Errorf("%d lines say Redis is unreachable, want 1:\n%s", n, r.logs)
	}
	if n := r.logCount("redis reachable again"); n != 1 {
		t.Errorf("%d lines say Redis is back, want 1:\n%s", n, r.logs)
	}
}

// A carrier id given to a new message while Redis could not be written
// (paused: it still holds the old entry) is not resolved to the old
// message once Redis answers again: the entry is deleted first.
func TestReusedCarrierIDWhileRedisPaused(t *testing.T) {
	r := newRig(t)
	old := r.message("")
	r.submit(old, "x-1")
	r.wantCarrier("x-1", old.ID, 0, false)

	r.srv.Pause()
	fresh := r.message("")
	r.submit(fresh, "x-1") // the carrier reused the id
	r.wantCarrier("x-1", fresh.ID, 0, true)
	r.srv.Resume()
	r.waitUp()
	r.wantCarrier("x-1", fresh.ID, 0, true)
	r.wantCarrier("x-1", fresh.ID, 0, false)
}

// Idempotency records are read from Redis; flushed or stopped, from the
// store, and a retried request never makes a second message.
func TestIdempotencyFlushedAndStopped(t *testing.T) {
	r := newRig(t)
	wantRecord := func(idemKey string, m *sb.Message, storeAsked bool) {
		t.Helper()
		_, before := r.inner.reads()
		rec, err := r.s.Idempotency(r.ctx, "k1", idemKey)
		if err != nil || rec.MessageID != m.ID || !rec.CreatedAt.Equal(m.AcceptedAt) {
			t.Fatalf("Idempotency(%s) = %+v, %v; want message %s", idemKey, rec, err, m.ID)
		}
		if _, after := r.inner.reads(); (after > before) != storeAsked {
			t.Fatalf("Idempotency(%s): store asked %v, want %v", idemKey, after > before, storeAsked)
		}
	}
	wantRetryRefused := func(idemKey string) {
		t.Helper()
		retry := r.newMessage()
		err := r.s.Accept(r.ctx, []sb.NewMessage{{Message: retry, IdempotencyKey: idemKey}})
		if sb.ErrorCode(err) != sb.ECONFLICT {
			t.Fatalf("a second Accept with key %s: %v, want %s", idemKey, err, sb.ECONFLICT)
		}
		if _, err := r.s.Message(r.ctx, retry.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatalf("the refused message was stored: %v", err)
		}
	}
	m := r.message("order-1")
	wantRecord("order-1", m, false)
	wantRetryRefused("order-1")

	r.srv.Flush()
	wantRetryRefused("order-1") // the store's check stays the truth
	wantRecord("order-1", m, true)
	wantRecord("order-1", m, false)

	r.srv.Stop()
	wantRecord("order-1", m, true)
	wantRetryRefused("order-1")
	m2 := r.message("order-2") // accepted with Redis down
	wantRecord("order-2", m2, true)

	r.srv.Restart()
	r.waitUp()
	wantRetryRefused("order-2")
	wantRecord("order-2", m2, true)
	wantRecord("order-2", m2, false)
	if _, err := r.s.Idempotency(r.ctx, "k1", "order-3"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("an unknown key: %v, want %s", err, sb.ENOTFOUND)
	}
}

// Two nodes on one store: while one is accepting a message with a key,
// the other's request with the same key fails at once (the reservation),
// and afterwards it finds the first node's record in Redis.
func TestIdempotencyRaceAcrossNodes(t *testing.T) {
	r := newRig(t)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	r.inner.mu.Lock()
	r.inner.acceptGate, r.inner.acceptEntered = gate, entered
	r.inner.mu.Unlock()
	otherInner := &counting{Store: r.inner.Store}
	other := r.wrap(otherInner)

	first, second := r.newMessage(), r.newMessage()
	done := make(chan error, 1)
	go func() { done <- r.s.Accept(r.ctx, []sb.NewMessage{{Message: first, IdempotencyKey: "race"}}) }()
	<-entered
	err := other.Accept(r.ctx, []sb.NewMessage{{Message: second, IdempotencyKey: "race"}})
	if sb.ErrorCode(err) != sb.ECONFLICT {
		t.Fatalf("the racing Accept: %v, want %s", err, sb.ECONFLICT)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("the first Accept: %v", err)
	}
	err = other.Accept(r.ctx, []sb.NewMessage{{Message: second, IdempotencyKey: "race"}})
	if sb.ErrorCode(err) != sb.ECONFLICT {
		t.Fatalf("Accept after the first landed: %v, want %s", err, sb.ECONFLICT)
	}
	if _, err := other.Message(r.ctx, second.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("the refused message was stored: %v", err)
	}
	rec, err := other.Idempotency(r.ctx, "k1", "race")
	if err != nil || rec.MessageID != first.ID {
		t.Fatalf("the other node's Idempotency = %+v, %v; want %s", rec, err, first.ID)
	}
	if _, reads := otherInner.reads(); reads != 0 {
		t.Fatalf("the other node read the store %d times, want the record from Redis", reads)
	}
}

// An Accept the store refuses releases its reservations: the key is free
// for the next request at once.
func TestIdempotencyReleasedWhenStoreFails(t *testing.T) {
	r := newRig(t)
	r.inner.mu.Lock()
	r.inner.failNextAccept = sb.Errorf(sb.EUNAVAILABLE, "disk full")
	r.inner.mu.Unlock()
	m := r.newMessage()
	err := r.s.Accept(r.ctx, []sb.NewMessage{{Message: m, IdempotencyKey: "again"}})
	if sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Accept: %v, want the store's error", err)
	}
	r.message("again")
}

// A Redis that hangs costs one timeout: the call that meets it falls back,
// later calls skip Redis until it answers.
func TestRedisPaused(t *testing.T) {
	r := newRig(t)
	m := r.message("p-1")
	r.submit(m, "p-1")
	r.srv.Pause()
	defer r.srv.Resume()
	start := time.Now()
	for range 20 {
		r.wantCarrier("p-1", m.ID, 0, true)
	}
	if _, err := r.s.Idempotency(r.ctx, "k1", "p-1"); err != nil {
		t.Fatal(err)
	}
	r.message("p-2")
	if !r.s.link.isDown() {
		t.Fatal("the cache did not notice Redis hanging")
	}
	t.Logf("24 calls with Redis paused took %v", time.Since(start))
	r.srv.Resume()
	r.waitUp()
	r.wantCarrier("p-1", m.ID, 0, false)
}

// Entries live as long as they are worth keeping: a carrier id for
// CarrierTTL, an idempotency record for what is left of its window, a
// reservation not at all once its Accept is done.
func TestEntryTTLs(t *testing.T) {
	r := newRig(t)
	m := r.message("ttl-1")
	r.submit(m, "t-1")
	if d := redisTTL(t, r.srv.Addr, r.s.keys.carrier("sandbox", "t-1")); d < 72*time.Hour-time.Minute || d > 72*time.Hour {
		t.Errorf("carrier id TTL %v, want 72h", d)
	}
	if d := redisTTL(t, r.srv.Addr, r.s.keys.idempotency("k1", "ttl-1")); d < sb.IdempotencyWindow-time.Minute || d > sb.IdempotencyWindow {
		t.Errorf("idempotency record TTL %v, want 24h", d)
	}
	old := r.newMessage()
	old.AcceptedAt = old.AcceptedAt.Add(-23 * time.Hour)
	if err := r.s.Accept(r.ctx, []sb.NewMessage{{Message: old, IdempotencyKey: "ttl-2"}}); err != nil {
		t.Fatal(err)
	}
	if d := redisTTL(t, r.srv.Addr, r.s.keys.idempotency("k1", "ttl-2")); d < time.Hour-time.Minute || d > time.Hour {
		t.Errorf("TTL of a record accepted 23h ago: %v, want 1h", d)
	}
	expired := r.newMessage()
	expired.AcceptedAt = expired.AcceptedAt.Add(-25 * time.Hour)
	if err := r.s.Accept(r.ctx, []sb.NewMessage{{Message: expired, IdempotencyKey: "ttl-3"}}); err != nil {
		t.Fatal(err)
	}
	if d := redisTTL(t, r.srv.Addr, r.s.keys.idempotency("k1", "ttl-3")); d != -2*time.Nanosecond {
		t.Errorf("a record past its window is in Redis (TTL %v)", d)
	}
}

// markingClient is a real client whose deletes first run during, as a
// write another call makes while Redis comes back.
type markingClient struct {
	goredis.UniversalClient
	during func()
}

func (c *markingClient) Del(ctx context.Context, keys ...string) *goredis.IntCmd {
	if f := c.during; f != nil {
		c.during = nil
		f()
	}
	return c.UniversalClient.Del(ctx, keys...)
}

// An entry marked stale while the link deletes the stale entries (a call
// that saw Redis down a moment before) is deleted too before the link is
// used again.
func TestEntryMarkedStaleWhileRecovering(t *testing.T) {
	client := testClient(t, redistest.Shared(t))
	prefix := redistest.Prefix(t)
	a, b := prefix+"a", prefix+"b"
	ctx := context.Background()
	for _, k := range []string{a, b} {
		if err := client.Set(ctx, k, "old", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	mc := &markingClient{UniversalClient: client}
	l := newLink(mc, zerolog.Nop(), "test", time.Second, 0)
	l.fail(errors.New("unreachable"))
	l.staleKey(a)
	mc.during = func() { l.staleKey(b) }
	_, cancel, ok := l.begin(ctx)
	if !ok {
		t.Fatal("the link did not come back")
	}
	cancel()
	if n, err := client.Exists(ctx, a, b).Result(); err != nil || n != 0 {
		t.Fatalf("%d of the two stale entries left in Redis (%v), want none", n, err)
	}
}

// A caller that found the link down marks its keys stale after; if the
// link came back in between (its recovery has run), they are deleted at
// once, not left for the next outage's recovery.
func TestEntryMarkedStaleAfterRecovery(t *testing.T) {
	client := testClient(t, redistest.Shared(t))
	k := redistest.Prefix(t) + "k"
	ctx := context.Background()
	if err := client.Set(ctx, k, "old", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	l := newLink(client, zerolog.Nop(), "test", time.Second, 0)
	l.staleKey(k) // the link is up
	if n, err := client.Exists(ctx, k).Result(); err != nil || n != 0 {
		t.Fatalf("the stale entry is still in Redis (%d, %v)", n, err)
	}
}

// redisTTL is the time key has left in the Redis at addr.
func redisTTL(t *testing.T, addr, key string) time.Duration {
	t.Helper()
	c := testClient(t, addr)
	d, err := c.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFor polls cond, calling poke between tries, for up to 10 s.
func waitFor(t *testing.T, cond func() bool, poke func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		poke()
		time.Sleep(5 * time.Millisecond) // a retry interval or a TTL has to pass
	}
}
