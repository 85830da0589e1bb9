package redis

import (
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
)

func testKey(id string) *sb.Key {
	statuses, _ := sb.NewStatusSet(sb.StatusDelivered, sb.StatusFailed)
	return &sb.Key{
		ID: id, SecretHash: sb.HashSecret("secret-of-" + id), Rate: 12.5, Burst: 20, MaxQueued: 1000,
		CallbackURL: "https://example.com/hooks", WebhookSecret: "whsec", CallbackStatuses: statuses,
		CallbackBatch: 10, InboundURL: "https://example.com/in", Numbers: []string{"+447700900123"},
	}
}

func TestKeyCache(t *testing.T) {
	srv := redistest.Start(t)
	logs := &syncBuffer{}
	c := NewKeyCache(testClient(t, srv.Addr), KeyCacheOptions{
		Options: Options{Timeout: 100 * time.Millisecond, Retry: 20 * time.Millisecond, Logger: zerolog.New(logs)},
	})
	ctx := t.Context()
	k := testKey("k1")
	if _, ok := c.Get(ctx, k.SecretHash); ok {
		t.Fatal("Get of a key never put found one")
	}
	if err := c.Put(ctx, k); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, ok := c.Get(ctx, k.SecretHash)
	if !ok || !reflect.DeepEqual(got, k) {
		t.Fatalf("Get = %+v, %v; want %+v", got, ok, k)
	}
	if err := c.Delete(ctx, k.SecretHash); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok := c.Get(ctx, k.SecretHash); ok {
		t.Fatal("Get after Delete found the key")
	}

	// Flushed: a miss, so the caller asks the source.
	c.Put(ctx, k)
	srv.Flush()
	if _, ok := c.Get(ctx, k.SecretHash); ok {
		t.Fatal("Get after FLUSHALL found the key")
	}

	// A delete Redis did not take (paused, so it keeps the key) is done
	// when it answers again, before the cache is read.
	c.Put(ctx, k)
	srv.Pause()
	if err := c.Delete(ctx, k.SecretHash); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Delete with Redis paused: %v, want %s", err, sb.EUNAVAILABLE)
	}
	if _, ok := c.Get(ctx, k.SecretHash); ok {
		t.Fatal("Get with Redis paused found the key")
	}
	srv.Resume()
	waitFor(t, func() bool { return !c.link.isDown() }, func() { c.Get(ctx, k.SecretHash) })
	if _, ok := c.Get(ctx, k.SecretHash); ok {
		t.Fatal("a key deleted while Redis was paused is served after it came back")
	}

	// Stopped: misses and errors, nothing hangs.
	srv.Stop()
	if _, ok := c.Get(ctx, k.SecretHash); ok {
		t.Fatal("Get with Redis stopped found a key")
	}
	if err := c.Put(ctx, k); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Put with Redis stopped: %v, want %s", err, sb.EUNAVAILABLE)
	}
	srv.Restart()
	waitFor(t, func() bool { return !c.link.isDown() }, func() { c.Get(ctx, k.SecretHash) })
	if err := c.Put(ctx, k); err != nil {
		t.Fatalf("Put after Redis came back: %v", err)
	}
	if _, ok := c.Get(ctx, k.SecretHash); !ok {
		t.Fatal("Get after Redis came back missed")
	}
}

// A key lives for the cache's TTL.
func TestKeyCacheTTL(t *testing.T) {
	srv := redistest.Start(t)
	c := NewKeyCache(testClient(t, srv.Addr), KeyCacheOptions{TTL: 50 * time.Millisecond})
	k := testKey("k1")
	if err := c.Put(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	ttl := redisTTL(t, srv.Addr, c.keys.apiKey(k.SecretHash))
	if ttl <= 0 || ttl > 50*time.Millisecond {
		t.Fatalf("TTL %v, want (0, 50ms]", ttl)
	}
	waitFor(t, func() bool { _, ok := c.Get(t.Context(), k.SecretHash); return !ok }, func() {})
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

func redisTTL(t *testing.T, addr, key string) time.Duration {
	t.Helper()
	c := testClient(t, addr)
	d, err := c.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
