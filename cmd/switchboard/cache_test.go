package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/redis/redistest"
)

// A node with cache.backend redis, whose Redis is flushed, stopped and
// restarted empty while it works: every request is accepted, every
// message delivered once, and a retried request (same Idempotency-Key)
// gets its first message back, whatever Redis lost.
func TestRedisCacheLostWhileRunning(t *testing.T) {
	srv := redistest.Start(t)
	sim := testSim(t, smsc.Config{ReceiptTarget: smsc.TargetAny})
	g, _ := startTestGateway(t, fmt.Sprintf("cache: {backend: redis, addr: %q}\ncarriers:", srv.Addr)+
		carrierYAML("a", sim.Addr(), 2)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+keyYAML(1000, 1000, 1000))

	ids, to := map[string]string{}, map[string]string{} // by idempotency key: message ID, number
	sendSome := func(phase string) {
		t.Helper()
		for i := range 10 {
			key := fmt.Sprintf("%s-%d", phase, i)
			to[key] = fmt.Sprintf("+4477009002%02d", len(ids))
			r := sendIdempotent(t, g, key, to[key])
			if r.status != 202 {
				t.Fatalf("%s: POST %d %v", key, r.status, r.body)
			}
			ids[key] = r.body["id"].(string)
		}
	}
	sendSome("up")
	if n := countKeys(t, srv.Addr, "switchboard:idem:*"); n != 10 {
		t.Fatalf("Redis holds %d idempotency records, want 10: is the cache in use?", n)
	}
	srv.Flush()
	sendSome("flushed")
	srv.Stop()
	sendSome("stopped")
	srv.Restart()
	sendSome("restarted")

	for key, id := range ids {
		waitStatus(t, g, id, "delivered")
		r := sendIdempotent(t, g, key, "+447700900999") // another body: refused, not sent
		if r.status != 409 {
			t.Fatalf("%s with another body: %d %v, want 409", key, r.status, r.body)
		}
	}
	srv.Flush()
	for key, id := range ids {
		r := sendIdempotent(t, g, key, to[key]) // the same request again
		if r.status != 202 || r.body["id"] != id {
			t.Fatalf("%s retried after FLUSHALL: %d %v, want 202 with %s", key, r.status, r.body, id)
		}
	}
	if st := sim.Stats(); st.Submits != int64(len(ids)) {
		t.Fatalf("the carrier got %d submits for %d messages", st.Submits, len(ids))
	}
}

// sendIdempotent posts a message to a number with an Idempotency-Key.
func sendIdempotent(t *testing.T, g *gateway, key, to string) apiResponse {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"to": to, "from": "Acme", "body": "once only"})
	req, _ := http.NewRequest("POST", "http://"+g.Addr()+"/v1/messages", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := apiResponse{status: resp.StatusCode, header: resp.Header}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	return out
}

func countKeys(t *testing.T, addr, pattern string) int {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: time.Second})
	defer c.Close()
	keys, err := c.Keys(t.Context(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}
