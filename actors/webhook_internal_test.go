package actors

import (
	"testing"

	"github.com/switchboard-sms/switchboard"
)

// The policy hands the store the endpoint parsed when the keys last
// changed, and none (so the store parses the URL itself) while the ring
// holds a URL that has not been parsed yet: a key changed in the ring
// before KeysChanged never queues callbacks under its old endpoint.
func TestPolicyEndpointFollowsKeyChanges(t *testing.T) {
	ring := switchboard.NewKeyRing([]*switchboard.Key{{ID: "k", CallbackURL: "https://old.example.com/hook"}})
	d := newDispatcher(&Engine{cfg: Config{Keys: ring}}, WebhookConfig{}, nil)

	if got := d.policy("k"); got.URL != "https://old.example.com/hook" || got.Endpoint != "https://old.example.com:443" ||
		got.Statuses != switchboard.DefaultCallbackStatuses {
		t.Fatalf("policy: %+v, want the old URL, its endpoint and the default statuses", got)
	}
	ring.Put(&switchboard.Key{ID: "k", CallbackURL: "http://new.example.com:8080/hook"})
	if got := d.policy("k"); got.URL != "http://new.example.com:8080/hook" || got.Endpoint != "" {
		t.Fatalf("policy after the ring changed: %+v, want the new URL and no endpoint yet", got)
	}
	d.keysChanged()
	if got := d.policy("k"); got.Endpoint != "http://new.example.com:8080" {
		t.Fatalf("policy after KeysChanged: %+v, want the new URL's endpoint", got)
	}
	if got := d.policy("unknown"); got != (switchboard.KeyCallbacks{}) {
		t.Fatalf("policy of an unknown key: %+v, want nothing", got)
	}
}
