package main

import (
	"os"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
)

// TestScyllaBinaryDeliversAndSurvivesKill9 runs the gateway binary on
// Cassandra and Redis (SWITCHBOARD_TEST_CQL, SWITCHBOARD_TEST_REDIS), in a
// keyspace of its own: it delivers 10,000 messages through the simulator;
// then, under a load of single-message requests, it is killed with
// SIGKILL and started again on the same keyspace, and every message that
// got a 202 reaches a final status. The carrier, which outlives the crash
// as a real SMSC would, got each message once, but for at most the
// submits in flight when the gateway died (binds × window) sent again.
func TestScyllaBinaryDeliversAndSurvivesKill9(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds the binary, runs it on Cassandra and crashes it")
	}
	host := testCQL(t)
	redisAddr := redistest.Shared(t)
	r := newBinaryRig(t, host, freshKeyspace(t, host), redisAddr, 5)
	r.start()

	const total, batch = 10_000, 1000
	start := time.Now()
	var delivered []string
	for b := range total / batch {
		delivered = append(delivered, r.sendBatch("e2e-"+string(rune('a'+b)), batch)...)
	}
	if len(delivered) != total {
		t.Fatalf("%d of %d messages accepted", len(delivered), total)
	}
	if missing := r.waitFinal(delivered, 90*time.Second); missing > 0 {
		t.Fatalf("%d of %d messages have no final status after 90 s (e.g. %v)", missing, total, r.missingFinal(delivered, 5))
	}
	if st := r.statuses(delivered); st["delivered"] != total {
		t.Fatalf("final statuses %v, want %d delivered", st, total)
	}
	t.Logf("%d messages accepted and delivered in %v", total, time.Since(start).Round(time.Millisecond))

	// Under load: SIGKILL once 500 more are accepted.
	killed := make(chan struct{})
	l := r.startLoad("load", 8, 0, func(n int) {
		if n == 500 {
			close(killed)
		}
	})
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		l.stop()
		n, refused, transport, other := l.counts()
		t.Fatalf("500 messages not accepted in 60 s under load: %d accepted, %d refused, %d transport errors, other %v",
			n, refused, transport, other)
	}
	r.kill()
	l.stop()
	accepted, refused, _, other := l.counts()
	if len(other) > 0 {
		t.Fatalf("answers other than 202 and 503 under load: %v", other)
	}
	t.Logf("killed with SIGKILL: %d accepted under load, %d refused (503)", accepted, refused)

	r.start()
	defer r.stop()
	ids := append(delivered, l.ids()...)
	if missing := r.waitFinal(ids, 90*time.Second); missing > 0 {
		t.Fatalf("after the restart %d of %d accepted messages have no final status after 90 s (e.g. %v)",
			missing, len(ids), r.missingFinal(ids, 5))
	}
	distinct, dups := r.duplicates()
	t.Logf("every one of %d accepted messages is final (%v); the carrier got %d messages, %d of them twice or more; %v in all",
		len(ids), r.statuses(ids), distinct, dups, time.Since(start).Round(time.Millisecond))
	if dups > r.binds*r.window {
		t.Errorf("%d messages sent again, more than the submits in flight (%d binds × window %d)", dups, r.binds, r.window)
	}
}
