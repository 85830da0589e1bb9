package redis

import (
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

// The suite on a Redis of the test's own, which it flushes (FLUSHALL) to
// check that tokens still increase.
func TestLeases(t *testing.T) {
	srv := redistest.Start(t)
	client := testClient(t, srv.Addr)
	storagetest.RunLeases(t,
		func(t *testing.T) sb.Leases { return NewLeases(client, Options{}) },
		func(t *testing.T, l sb.Leases) sb.Leases { srv.Flush(); return l })
}

// And on the shared Redis, by several clients at once.
func TestLeasesShared(t *testing.T) {
	addr := redistest.Shared(t)
	prefix := redistest.Prefix(t)
	storagetest.RunLeases(t,
		func(t *testing.T) sb.Leases { return NewLeases(testClient(t, addr), Options{Prefix: prefix}) }, nil)
}

// With Redis stopped there are no leases (EUNAVAILABLE); restarted empty,
// it grants them again with tokens above those before.
func TestLeasesRedisStopped(t *testing.T) {
	srv := redistest.Start(t)
	ls := NewLeases(testClient(t, srv.Addr), Options{Timeout: 100 * time.Millisecond})
	ctx := t.Context()
	a, err := ls.Acquire(ctx, "key/k1", "node-a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := ls.Acquire(ctx, "key/k1", "node-b", time.Hour); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Acquire with Redis stopped: %v, want %s", err, sb.EUNAVAILABLE)
	}
	if _, err := ls.Renew(ctx, a, time.Hour); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Renew with Redis stopped: %v, want %s", err, sb.EUNAVAILABLE)
	}
	if err := ls.Release(ctx, a); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Release with Redis stopped: %v, want %s", err, sb.EUNAVAILABLE)
	}
	srv.Restart()
	var b sb.Lease
	waitFor(t, func() bool { b, err = ls.Acquire(ctx, "key/k1", "node-b", time.Hour); return err == nil }, func() {})
	if b.Token <= a.Token {
		t.Fatalf("token after Redis restarted empty: %d, want above %d", b.Token, a.Token)
	}
	if _, err := ls.Renew(ctx, a, time.Hour); sb.ErrorCode(err) != sb.ECONFLICT {
		t.Fatalf("Renew of the lease Redis lost: %v, want %s", err, sb.ECONFLICT)
	}
}
