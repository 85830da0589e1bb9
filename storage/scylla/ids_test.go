package scylla

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// Buckets, due keys and ID floors sort as the times they stand for, and a
// bucket spans about 33 seconds of ULIDs.
func TestIDTimes(t *testing.T) {
	base := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	entropy := ulid.Monotonic(rand.Reader, 0)
	id := func(at time.Time) string { return "msg_" + ulid.MustNew(ulid.Timestamp(at), entropy).String() }
	a, b, c := id(base), id(base.Add(10*time.Second)), id(base.Add(time.Minute))
	if bucketOf(a) > bucketOf(b) || bucketOf(b) > bucketOf(c) || bucketOf(a) == bucketOf(c) {
		t.Errorf("buckets %s %s %s: want ordered, a minute apart in different buckets", bucketOf(a), bucketOf(b), bucketOf(c))
	}
	if n := len(bucketOf(a)); n != bucketChars {
		t.Errorf("bucket %q has %d characters", bucketOf(a), n)
	}
	if got := bucketOf("evt_00"); got != "00" {
		t.Errorf("bucket of a short ID = %q", got)
	}
	if f := idFloor("msg_", base.Add(5*time.Second)); !(a < f && f < b) {
		t.Errorf("floor %s not between %s and %s", f, a, b)
	}
	if at, ok := idTime("msg_", b); !ok || !at.Equal(base.Add(10*time.Second)) {
		t.Errorf("idTime = %v, %v", at, ok)
	}
	if _, ok := idTime("msg_", "msg_1733212345678"); ok {
		t.Error("idTime read a time from an ID that is no ULID")
	}
	d1, d2 := dueKey(base.Add(time.Nanosecond), a), dueKey(base.Add(2*time.Nanosecond), a)
	if !(d1 < d2) || !(dueTime(base) < d1) || dueMessage(d1) != a {
		t.Errorf("due keys %s %s", d1, d2)
	}
	if s := sliceOf(a); !strings.HasPrefix(s, bucketOf(a)+"/") || len(s) != bucketChars+2 {
		t.Errorf("slice %q", s)
	}
}
