package switchboard_test

import (
	"reflect"
	"testing"

	sb "github.com/switchboard-sms/switchboard"
)

// A clone equals its original and shares nothing with it: changing the
// clone's slices, events and their errors leaves the original as it was.
func TestCloneSharesNothing(t *testing.T) {
	full := func() *sb.Message { // every slice set, and an event with an error
		m := newMsg(2)
		m.Apply(submitted("a", "b"))
		m.Apply(sb.Transition{Event: sb.Event{Status: sb.StatusUndeliverable, At: at(3),
			Error: &sb.EventError{Code: "x", Description: "first"}}, Part: 0})
		m.WebhookFailures = []sb.WebhookFailure{{EventID: "evt_1", Attempts: 3}}
		return m
	}
	m, want := full(), full()

	c := m.Clone()
	if !reflect.DeepEqual(c, m) {
		t.Fatalf("clone %+v differs from %+v", c, m)
	}
	c.CarrierIDs[0] = "changed"
	c.PartStatus[1] = sb.StatusFailed
	c.Events[0].Status = sb.StatusFailed
	for i := range c.Events {
		if c.Events[i].Error != nil {
			c.Events[i].Error.Description = "changed"
		}
	}
	c.WebhookFailures[0].Attempts = 99
	c.Apply(receiptFor(1, sb.StatusDelivered, 4))
	if !reflect.DeepEqual(m, want) {
		t.Errorf("changing the clone changed the original:\n got %+v\nwant %+v", m, want)
	}
}

func TestCloneKeepsNilSlicesNil(t *testing.T) {
	c := (&sb.Message{ID: "msg_1"}).Clone()
	if c.CarrierIDs != nil || c.PartStatus != nil || c.Events != nil || c.WebhookFailures != nil {
		t.Errorf("nil slices became empty ones: %+v", c)
	}
}

func TestHasWebhookFailure(t *testing.T) {
	m := &sb.Message{WebhookFailures: []sb.WebhookFailure{{EventID: "evt_1"}, {EventID: "evt_2"}}}
	if !m.HasWebhookFailure("evt_2") || m.HasWebhookFailure("evt_3") || (&sb.Message{}).HasWebhookFailure("evt_1") {
		t.Errorf("HasWebhookFailure: evt_2 %v, evt_3 %v, none %v", m.HasWebhookFailure("evt_2"),
			m.HasWebhookFailure("evt_3"), (&sb.Message{}).HasWebhookFailure("evt_1"))
	}
}
