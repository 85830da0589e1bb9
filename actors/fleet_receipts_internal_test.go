package actors

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
)

// unreadableMessages finds every carrier id but fails every read of a
// message, as a database timing out does.
type unreadableMessages struct {
	switchboard.Store
	reads atomic.Int32
}

func (s *unreadableMessages) CarrierMessage(context.Context, string, string) (string, int, error) {
	return "m1", 1, nil
}

func (s *unreadableMessages) Message(context.Context, string) (*switchboard.Message, error) {
	s.reads.Add(1)
	return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, "read timeout")
}

// A parked receipt whose hand-over to its key's owner fails is tried again
// at each later look. Before, the first failure ended the looks: the SMSC
// had been answered, so the receipt waited parked until it ran out and its
// message ended unknown.
func TestAParkedReceiptIsTriedAgainAfterAFailedHandOver(t *testing.T) {
	st := &unreadableMessages{}
	e := &Engine{cfg: Config{Now: time.Now}, log: zerolog.Nop(), store: st, bg: newTasks()}
	f := &fleet{e: e, parkedRechecks: []time.Duration{0, time.Millisecond, time.Millisecond}}
	e.fleet = f
	f.recheckParked(context.Background(), switchboard.Receipt{Carrier: "sim", CarrierMessageID: "c1", Status: switchboard.StatusDelivered})
	if n := st.reads.Load(); n != 3 {
		t.Fatalf("the receipt's message was read %d times, want once at each of the 3 looks", n)
	}
}
