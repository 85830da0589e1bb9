package pebble

import (
	"testing"

	sb "github.com/switchboard-sms/switchboard"
)

// The memory of messages in flight is bounded (the oldest go first, and
// are read from Pebble again), forgets a message once it is final with the
// carrier index entries it held, and keeps an index entry only while its
// message is remembered.
func TestInFlightIsBoundedAndForgetsFinalMessages(t *testing.T) {
	f := newInFlight(2)
	a := &sb.Message{ID: "msg_a", Status: sb.StatusSubmitted, Carrier: "sim", CarrierIDs: []string{"c-a"}}
	b := &sb.Message{ID: "msg_b", Status: sb.StatusAccepted}
	c := &sb.Message{ID: "msg_c", Status: sb.StatusAccepted}
	f.put(a)
	ka := string(carrierKey(nil, "sim", "c-a"))
	f.putRef(ka, refEntry{messageID: "msg_a"})
	f.putRef("orphan", refEntry{messageID: "msg_x"}) // its message is not remembered
	if _, ok := f.ref("orphan"); ok {
		t.Fatal("kept an index entry whose message is not remembered")
	}
	f.put(b)
	f.put(c) // evicts a, the oldest
	if _, ok := f.message("msg_a"); ok {
		t.Fatal("more messages remembered than the bound")
	}
	if _, ok := f.ref(ka); ok {
		t.Fatal("an evicted message's carrier index entry is still remembered")
	}
	for _, id := range []string{"msg_b", "msg_c"} {
		if _, ok := f.message(id); !ok {
			t.Fatalf("%s forgotten", id)
		}
	}
	done := &sb.Message{ID: "msg_b", Status: sb.StatusDelivered}
	f.put(done)
	if _, ok := f.message("msg_b"); ok {
		t.Fatal("a final message is still remembered")
	}
	// Its slot in the ring is a no-op now: c stays until two more come.
	f.put(&sb.Message{ID: "msg_d", Status: sb.StatusAccepted})
	if _, ok := f.message("msg_c"); !ok {
		t.Fatal("msg_c evicted early")
	}
}
