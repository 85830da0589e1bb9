package actors

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// A key's new message IDs lie above every ID it issued or loaded, even in
// the millisecond an earlier run (with a clock ahead of this one's) used,
// where fresh entropy is as likely below as above: a new message below the
// last one paged in would never be paged.
func TestNewIDsLieAboveLoadedOnes(t *testing.T) {
	k := &keyActor{ids: ulid.Monotonic(rand.NewChaCha8([32]byte{1}), 0)}
	now := time.Now()
	var high ulid.ULID
	if err := high.SetTime(ulid.Timestamp(now)); err != nil {
		t.Fatal(err)
	}
	if err := high.SetEntropy(bytes.Repeat([]byte{0xF0}, 10)); err != nil {
		t.Fatal(err)
	}
	k.loaded("msg_" + high.String())
	prev := high
	for _, at := range []time.Time{now, now.Add(-time.Minute), now} {
		id, err := k.newID(at)
		if err != nil {
			t.Fatal(err)
		}
		if id.Compare(prev) <= 0 {
			t.Fatalf("new ID %s at %v is not above %s", id, at, prev)
		}
		prev = id
	}
	k.loaded("msg_" + high.String()) // an older load does not lower it
	if k.lastID != prev {
		t.Fatalf("lastID went back to %s from %s", k.lastID, prev)
	}
}

// successor carries a full entropy into the next millisecond.
func TestSuccessorCarries(t *testing.T) {
	var u ulid.ULID
	_ = u.SetTime(1000)
	_ = u.SetEntropy(bytes.Repeat([]byte{0xFF}, 10))
	next, err := successor(u)
	if err != nil || next.Time() != 1001 || !bytes.Equal(next.Entropy(), make([]byte, 10)) {
		t.Fatalf("successor of %s = %s (%v), want the next millisecond with zero entropy", u, next, err)
	}
}
