package main

import (
	"os"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
)

// TestScyllaBinaryRidesOutServerRestarts runs the gateway binary under
// load on a Cassandra node and a redis-server of the test's own, and stops
// and starts each of them mid-run, as an operator or a crash would:
//
//   - Cassandra stopped (SIGTERM to its PID): new messages get 503
//     unavailable, never a 202 (nothing can be made durable), and /readyz
//     is 503; started again on its data, the gateway takes messages again
//     by itself, and every message accepted before, during and after ends
//     in a final status;
//   - Redis stopped, then started again empty: messages keep being
//     accepted (Redis holds nothing a message needs), and none is lost or
//     sent to the carrier twice because of it.
//
// Outside CI it runs where SWITCHBOARD_TEST_CQL says Cassandra tests are
// wanted; it starts its own node all the same (it stops it), with
// deploy/local/cassandra/start.sh.
func TestScyllaBinaryRidesOutServerRestarts(t *testing.T) {
	if os.Getenv("CI") != "true" {
		if testing.Short() {
			t.Skip("starts Cassandra twice and the binary")
		}
		testCQL(t) // skips without Cassandra tests wanted
	}
	db := startCassandra(t)
	red := redistest.Start(t)
	r := newBinaryRig(t, db.Addr, "faults", red.Addr, 0)
	r.start()
	defer r.stop()

	l := r.startLoad("cassandra", 4, 5*time.Millisecond, nil)
	defer func() {
		select {
		case <-l.stopped:
		default:
			l.stop()
		}
	}()
	accepting := func(what string, n int) {
		t.Helper()
		from := time.Now()
		if !waitFor(120*time.Second, func() bool { return l.acceptedSince(from) >= n }) {
			accepted, refused, transport, other := l.counts()
			t.Fatalf("%s: not %d messages accepted in 120 s (%d accepted in all, %d refused, %d transport errors, other answers %v)",
				what, n, accepted, refused, transport, other)
		}
	}
	accepting("before the faults", 200)

	// Cassandra stops.
	db.stop()
	down := time.Now()
	if !waitFor(30*time.Second, func() bool { return readyz(r.addr) == 503 }) {
		t.Fatal("/readyz did not turn 503 within 30 s of Cassandra stopping")
	}
	_, refusedBefore, _, _ := l.counts()
	if !waitFor(30*time.Second, func() bool { _, n, _, _ := l.counts(); return n >= refusedBefore+20 }) {
		t.Fatal("new messages were not refused with 503 unavailable within 30 s of Cassandra stopping")
	}
	if n := l.acceptedSince(down); n > 0 {
		t.Fatalf("%d messages got a 202 for requests sent after Cassandra had stopped", n)
	}
	if code := readyz(r.addr); code != 503 {
		t.Fatalf("/readyz %d while Cassandra is down, want 503", code)
	}
	t.Logf("Cassandra stopped: /readyz 503, new messages refused")

	// Cassandra starts again on its data: the gateway resumes by itself.
	restart := time.Now()
	db.start(false)
	if n := l.acceptedSince(down); n > 0 {
		t.Fatalf("%d messages got a 202 while Cassandra was down", n)
	}
	accepting("after Cassandra started again", 200)
	if !waitFor(30*time.Second, func() bool { return readyz(r.addr) == 200 }) {
		t.Fatal("/readyz not 200 again after Cassandra came back")
	}
	t.Logf("Cassandra back: messages accepted again %v after it was started", time.Since(restart).Round(time.Millisecond))
	l.stop()
	if _, _, transport, other := l.counts(); len(other) > 0 || transport > 0 {
		t.Fatalf("answers other than 202 and 503 across Cassandra's restart: %v (%d transport errors)", other, transport)
	}
	ids := l.ids()
	if missing := r.waitFinal(ids, 120*time.Second); missing > 0 {
		t.Fatalf("%d of %d accepted messages have no final status 120 s after Cassandra came back (e.g. %v)",
			missing, len(ids), r.missingFinal(ids, 5))
	}
	distinct, dupsCassandra := r.duplicates()
	t.Logf("every one of %d accepted messages is final (%v); the carrier got %d, %d of them twice", len(ids), r.statuses(ids),
		distinct, dupsCassandra)
	if dupsCassandra > r.binds*r.window {
		t.Errorf("%d messages sent again across Cassandra's restart, more than the submits in flight (%d)", dupsCassandra, r.binds*r.window)
	}

	// Redis stops and starts again empty.
	l = r.startLoad("redis", 4, 5*time.Millisecond, nil)
	accepting("before Redis stops", 100)
	red.Stop()
	accepting("while Redis is stopped", 200)
	red.Restart()
	accepting("after Redis started again", 200)
	l.stop()
	_, _, transport, other := l.counts()
	if len(other) > 0 || transport > 0 {
		t.Fatalf("answers other than 202 and 503 across Redis's restart: %v (%d transport errors)", other, transport)
	}
	more := l.ids()
	if missing := r.waitFinal(more, 60*time.Second); missing > 0 {
		t.Fatalf("%d of %d messages accepted across Redis's restart have no final status after 60 s (e.g. %v)",
			missing, len(more), r.missingFinal(more, 5))
	}
	_, dups := r.duplicates()
	if dups != dupsCassandra {
		t.Fatalf("%d messages sent twice across Redis's restart", dups-dupsCassandra)
	}
	t.Logf("Redis stopped and started again: %d messages accepted meanwhile, all final (%v), none sent twice",
		len(more), r.statuses(more))
}
