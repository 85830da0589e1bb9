package pebble

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// Past maxParked carrier ids with parked receipts the store stops keeping
// their set in memory and asks the database for each: every parked
// receipt is still applied when its id is indexed.
func TestParkedKeysBounded(t *testing.T) {
	var logs strings.Builder
	s, err := Open(t.TempDir(), Options{Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.committer.maxParked = 3 // before the first write: the committer reads it then
	ctx := t.Context()
	now := time.Now().UTC()
	const n = 5
	for i := range n {
		u := sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "x", ID: fmt.Sprint("early-", i)}, ParkUntil: now.Add(time.Hour),
			Transition: sb.Transition{Part: 0, Event: sb.Event{Status: sb.StatusDelivered, At: now, Carrier: "x"}}}
		if got, err := s.Record(ctx, []sb.Update{u}); err != nil || got[0] != nil {
			t.Fatalf("park %d: %+v, %v", i, got, err)
		}
	}
	for i := range n {
		m := &sb.Message{ID: fmt.Sprintf("msg_%03d", i), Key: "k", Segments: 1, Status: sb.StatusAccepted,
			AcceptedAt: now, Events: []sb.Event{{Status: sb.StatusAccepted, At: now}}}
		if err := s.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Record(ctx, []sb.Update{{MessageID: m.ID, Transition: sb.Transition{Part: -1,
			Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "x"}, CarrierIDs: []string{fmt.Sprint("early-", i)}}}})
		if err != nil || got[0].Status != sb.StatusDelivered {
			t.Fatalf("message %d with a parked receipt: %+v, %v; want delivered", i, got, err)
		}
	}
	s.Close() // the committer has stopped: its log is read here alone
	if !strings.Contains(logs.String(), "each look-up now asks the database") {
		t.Errorf("the set of parked ids was not dropped past its bound; log:\n%s", logs.String())
	}
}
