package scylla

import (
	"context"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// A webhook failure is added on the node that delivers the endpoint while
// the message's owner may record its receipt: the receipt's status is
// never overwritten by the failure's write, and the failure is added to
// the newer version. (The failure used to be written at the writer's
// clock, after the receipt it had not read: the message stayed submitted
// for good, its receipt deadline gone with it.)
func TestWebhookFailureNeverOverwritesANewerStatus(t *testing.T) {
	ks := freshKeyspace(t)
	owner, endpoint := openTest(t, ks, nil), openTest(t, ks, nil)
	ctx := context.Background()
	now := time.Now()
	m := newTraffic("k1", now, time.Millisecond).next()
	if err := owner.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
		t.Fatal(err)
	}
	set, _ := sb.NewStatusSet(sb.StatusSubmitted, sb.StatusDelivered)
	notify := &sb.Notify{EventID: "evt_1", DefaultURL: "https://hooks.example.com/sms", Statuses: set, At: now}
	if _, err := owner.Record(ctx, []sb.Update{{MessageID: m.ID, Notify: notify, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "sandbox"}, Part: -1,
		CarrierIDs: []string{"c-1"}, ReceiptDue: now.Add(72 * time.Hour)}}}); err != nil {
		t.Fatal(err)
	}

	receipts := 0
	endpoint.failureRead = func() { // the owner records the receipt now
		if receipts++; receipts > 1 {
			return
		}
		if _, err := owner.Record(ctx, []sb.Update{{ByCarrier: &sb.CarrierRef{Carrier: "sandbox", ID: "c-1"},
			ParkUntil: now.Add(time.Hour), Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: now}, Part: 0}}}); err != nil {
			t.Error(err)
		}
	}
	failure := sb.WebhookFailure{EventID: "evt_1", Type: sb.CallbackStatus, URL: "https://hooks.example.com/sms",
		Reason: sb.WebhookMaxAge, Attempts: 3, At: now}
	cb := sb.Callback{ID: "evt_1", Endpoint: "https://hooks.example.com:443", MessageID: m.ID}
	if err := endpoint.FinishCallbacks(ctx, []sb.FinishedCallback{{Callback: cb, Failure: &failure}}); err != nil {
		t.Fatal(err)
	}
	got, err := endpoint.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != sb.StatusDelivered {
		t.Fatalf("status %s after a webhook failure was added beside the receipt, want delivered", got.Status)
	}
	if !got.HasWebhookFailure("evt_1") {
		t.Fatal("the webhook failure was not added to the newer version")
	}
}
