package switchboard

import (
	"sync"
	"testing"
	"time"
)

func TestKeyRingRotationAndRevocation(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ring := NewKeyRing([]*Key{{ID: "a", SecretHash: HashSecret("secret-a-0123456789")}, {ID: "b", SecretHash: HashSecret("secret-b-0123456789")}})
	ring.Now = func() time.Time { return now }
	auth := func(secret, want string) {
		t.Helper()
		k, ok := ring.Authenticate(secret)
		switch {
		case want == "" && ok:
			t.Fatalf("%q authenticated key %s", secret, k.ID)
		case want != "" && (!ok || k.ID != want):
			t.Fatalf("%q: got %v %v, want key %s", secret, k, ok, want)
		}
	}
	auth("secret-a-0123456789", "a")
	auth("secret-b-0123456789", "b")
	auth("secret-c-0123456789", "")

	// Rotate a's secret with an hour's overlap: both work until it ends.
	a, _ := ring.Key("a")
	rotated := *a
	rotated.PreviousSecretHash, rotated.PreviousSecretUntil = a.SecretHash, now.Add(time.Hour)
	rotated.SecretHash = HashSecret("secret-a-new-0123456789")
	ring.Put(&rotated)
	auth("secret-a-new-0123456789", "a")
	auth("secret-a-0123456789", "a")
	now = now.Add(time.Hour)
	auth("secret-a-0123456789", "")
	auth("secret-a-new-0123456789", "a")
	if a2, _ := ring.Key("a"); a2 != &rotated {
		t.Fatal("Key does not return the key put")
	}
	if all := ring.All(); len(all) != 2 || all[0].ID != "a" || all[1].ID != "b" {
		t.Fatalf("All after Put = %v, want the configuration order", all)
	}

	// Revoked: no secret works, the key is still found by id.
	revoked := rotated
	revoked.Revoked = true
	ring.Put(&revoked)
	auth("secret-a-new-0123456789", "")
	if k, ok := ring.Key("a"); !ok || !k.Revoked {
		t.Fatal("a revoked key is still found by id, marked revoked")
	}

	ring.Replace([]*Key{{ID: "c", SecretHash: HashSecret("secret-c-0123456789"), Numbers: []string{"+447700900123"}}})
	auth("secret-b-0123456789", "")
	auth("secret-c-0123456789", "c")
	if k, ok := ring.ByNumber("00447700900123"); !ok || k.ID != "c" {
		t.Fatal("ByNumber after Replace")
	}
}

func TestKeyWebhookSecrets(t *testing.T) {
	now := time.Now()
	k := &Key{WebhookSecret: "new", PreviousWebhookSecret: "old", PreviousWebhookUntil: now.Add(time.Minute)}
	if got := k.WebhookSecrets(now); len(got) != 2 || got[0] != "new" || got[1] != "old" {
		t.Fatalf("during the overlap: %q", got)
	}
	if got := k.WebhookSecrets(now.Add(time.Minute)); len(got) != 1 || got[0] != "new" {
		t.Fatalf("after the overlap: %q", got)
	}
}

// Readers never see a half-built ring while writers put keys (go test
// -race).
func TestKeyRingConcurrent(t *testing.T) {
	ring := NewKeyRing(nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if k, ok := ring.Authenticate("secret-0123456789"); ok && k.ID != "k" {
					t.Error("wrong key")
				}
				_ = ring.All()
			}
		})
	}
	for i := range 200 {
		ring.Put(&Key{ID: "k", SecretHash: HashSecret("secret-0123456789"), Rate: float64(i)})
	}
	close(stop)
	wg.Wait()
	if k, _ := ring.Key("k"); k.Rate != 199 {
		t.Fatalf("last Put lost: rate %v", k.Rate)
	}
}
