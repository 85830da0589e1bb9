package scylla

import (
	"strings"
	"testing"
	"time"
)

// dayRows counts the message_days statements among stmts and returns the
// TTL of the last one.
func dayRows(stmts []stmt) (n int, ttl any) {
	for _, st := range stmts {
		if strings.Contains(st.cql, ".message_days ") {
			n++
			ttl = st.args[3]
		}
	}
	return n, ttl
}

// A bucket's message_days row is left out only once a write of it has
// landed: after a failed Accept, the next message of the bucket writes it
// again, or the bucket would never be listed.
func TestDayBucketRowUntilOneLanded(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 5, 0, 0, time.UTC)
	s := &Store{opts: Options{Keyspace: "ks", TTL: 30 * 24 * time.Hour, Now: func() time.Time { return now }}}
	g := newTraffic("k", now, time.Millisecond)
	failed, next, later := g.next(), g.next(), g.next()

	if n, _ := dayRows(s.placeRows(failed, 1)); n != 1 {
		t.Fatalf("first message of the bucket: %d message_days rows, want 1", n)
	}
	// failed's write did not land: placed is not called.
	if n, _ := dayRows(s.placeRows(next, 2)); n != 1 {
		t.Fatalf("after a write that did not land: %d message_days rows, want 1", n)
	}
	s.placed(next)
	if n, _ := dayRows(s.placeRows(later, 3)); n != 0 {
		t.Fatalf("after a write that landed: %d message_days rows, want 0", n)
	}
}

// The day's bucket row expires with the day's messages, not a TTL after
// it was written: a listing finds every message still kept.
func TestDayBucketRowExpiresWithItsMessages(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 5, 0, 0, time.UTC)
	s := &Store{opts: Options{Keyspace: "ks", TTL: 30 * 24 * time.Hour, Now: func() time.Time { return now }}}
	m := newTraffic("k", now, time.Millisecond).next()
	_, ttl := dayRows(s.placeRows(m, 1))
	row, err := s.messageRow(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := ttlSeconds(s.messageTTL(m))
	if ttl != want || row.args[6] != want {
		t.Fatalf("TTLs: message_days %v, messages %v; want both %d (the day's end plus the TTL)", ttl, row.args[6], want)
	}
	if want <= ttlSeconds(s.opts.TTL) {
		t.Fatalf("message TTL %d is not past the store's TTL %d: the test shows nothing", want, ttlSeconds(s.opts.TTL))
	}
}
