package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// These tests run the admin listener of a whole node: its API changes
// keys, carriers and routes live, and what it creates survives a restart.

const testAdminToken = "admin-token-0123456789abcdef"

// adminCall calls the admin API with the admin token; body is JSON text.
func adminCall(t *testing.T, g *gateway, method, path, body string) apiResponse {
	t.Helper()
	return adminCallToken(t, g, method, path, testAdminToken, body)
}

func adminCallToken(t *testing.T, g *gateway, method, path, token, body string) apiResponse {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+g.ops.adminLn.Addr().String()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := apiResponse{status: resp.StatusCode, header: resp.Header}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	return out
}

func adminYAML(sim string) string {
	return fmt.Sprintf(`
node: {admin_token: %q}
carriers:%s
routes:
  - {prefix: "", carriers: [sim]}
%s`, testAdminToken, carrierYAML("sim", sim, 1), keyYAML(1000, 1000, 1000))
}

func field(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("no %v in %v", path, m)
		}
		v = mm[p]
	}
	return v
}

func sendWith(t *testing.T, g apiAddr, secret, to string) apiResponse {
	t.Helper()
	return callAuth(t, "POST", "http://"+g.Addr()+"/v1/messages", secret, map[string]any{"to": to, "from": "Acme", "body": "hi"})
}

// Keys through the admin API: created with a secret shown once, usable at
// once, updated, rotated with an overlap, revoked (refused on the next
// request); the file's key is shown and cannot be changed; all of it
// survives a restart.
func TestAdminKeysLive(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	dir := t.TempDir()
	g, _ := openTestGateway(t, dir, adminYAML(sim.Addr()))
	defer func() { stopTestGateway(t, g) }()

	r := adminCall(t, g, "GET", "/admin/v1/keys", "")
	keys := r.body["keys"].([]any)
	if r.status != 200 || len(keys) != 1 || field(t, keys[0].(map[string]any), "source") != "file" {
		t.Fatalf("keys: %d %v", r.status, r.body)
	}
	if _, ok := keys[0].(map[string]any)["secret_sha256"]; ok {
		t.Fatal("a key's listing shows its secret's hash")
	}
	if r := adminCall(t, g, "PATCH", "/admin/v1/keys/test", `{"rate": 5}`); r.status != 409 || errorCode(r) != "managed_by_config" {
		t.Fatalf("changing the file's key: %d %v", r.status, r.body)
	}

	r = adminCall(t, g, "POST", "/admin/v1/keys", `{"id": "api1", "rate": 100, "numbers": ["+447700900555"]}`)
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	secret := r.body["secret"].(string)
	if !strings.HasPrefix(secret, "sk_") || !strings.HasPrefix(r.body["webhook_secret"].(string), "whsec_") ||
		field(t, r.body, "key", "source") != "api" || field(t, r.body, "key", "burst") != float64(100) {
		t.Fatalf("create: %v", r.body)
	}
	if r := sendWith(t, g, secret, "+447700900123"); r.status != 202 {
		t.Fatalf("submit with the new key: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/keys/api1", ""); r.status != 200 || r.body["secret"] != nil {
		t.Fatalf("get: %d %v", r.status, r.body)
	}
	for _, bad := range []string{`{"id": "api1", "rate": 1}`, `{"id": "x", "rate": 1, "secret": "0123456789abcdef0"}`,
		`{"id": "y", "rate": "fast"}`, `{"id": "z", "rate": 1, "numbers": ["+447700900555"]}`, `[1]`, `{"id": "w", "rat": 1}`,
		`{"id": 7, "rate": 1}`, `{"id": "v", "rate": 1, "numbers": [null]}`, `{"id": "u", "rate": 1, "callback_batch": 2.5}`} {
		r := adminCall(t, g, "POST", "/admin/v1/keys", bad)
		if r.status != 400 && r.status != 409 || r.body["error"] == nil {
			t.Fatalf("create %s: %d %v", bad, r.status, r.body)
		}
	}

	// Update: the new rate limits at once.
	if r := adminCall(t, g, "PATCH", "/admin/v1/keys/api1", `{"rate": 1, "burst": 1}`); r.status != 200 || r.body["rate"] != float64(1) {
		t.Fatalf("update: %d %v", r.status, r.body)
	}
	limited := false
	for range 5 {
		if r := sendWith(t, g, secret, "+447700900123"); r.status == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("the updated rate does not limit")
	}
	adminCall(t, g, "PATCH", "/admin/v1/keys/api1", `{"rate": 1000, "burst": 1000}`)

	// Rotate with an overlap: both secrets work; with none, the old stops.
	r = adminCall(t, g, "POST", "/admin/v1/keys/api1/rotate-secret", `{"overlap": "1h"}`)
	second := r.body["secret"].(string)
	if r.status != 200 || second == secret || r.body["previous_secret_valid_until"] == nil {
		t.Fatalf("rotate: %d %v", r.status, r.body)
	}
	for _, s := range []string{secret, second} {
		if r := sendWith(t, g, s, "+447700900123"); r.status != 202 {
			t.Fatalf("during the overlap, %s: %d", s[:6], r.status)
		}
	}
	r = adminCall(t, g, "POST", "/admin/v1/keys/api1/rotate-secret", `{"overlap": "0s"}`)
	third := r.body["secret"].(string)
	if r := sendWith(t, g, second, "+447700900123"); r.status != 401 {
		t.Fatalf("the replaced secret after a rotation without overlap: %d", r.status)
	}
	if r := sendWith(t, g, third, "+447700900123"); r.status != 202 {
		t.Fatalf("the new secret: %d", r.status)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/keys/api1/rotate-secret", `{"overlap": "-1s"}`); r.status != 400 {
		t.Fatalf("negative overlap: %d", r.status)
	}

	// Changing keys leaves the carriers' binds alone.
	if n := sim.Stats().Binds; n != 1 {
		t.Fatalf("the simulator saw %d binds; changing keys restarted the carrier", n)
	}

	// Revoke: refused on the very next request.
	start := time.Now()
	if r := adminCall(t, g, "POST", "/admin/v1/keys/api1/revoke", ""); r.status != 200 || r.body["revoked"] != true {
		t.Fatalf("revoke: %d %v", r.status, r.body)
	}
	if r := sendWith(t, g, third, "+447700900123"); r.status != 401 {
		t.Fatalf("a revoked key: %d", r.status)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("revocation took %v", d)
	}
	if r := adminCall(t, g, "PATCH", "/admin/v1/keys/api1", `{"rate": 5}`); r.status != 409 {
		t.Fatalf("changing a revoked key: %d", r.status)
	}
	// Its number is free again; its id is not.
	if r := adminCall(t, g, "POST", "/admin/v1/keys", `{"id": "api2", "rate": 10, "numbers": ["+447700900555"]}`); r.status != 201 {
		t.Fatalf("reusing a revoked key's number: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/keys", `{"id": "api1", "rate": 10}`); r.status != 409 {
		t.Fatalf("reusing a revoked key's id: %d", r.status)
	}

	// A restart keeps what the API created.
	stopTestGateway(t, g)
	g, _ = openTestGateway(t, dir, adminYAML(sim.Addr()))
	r = adminCall(t, g, "GET", "/admin/v1/keys/api1", "")
	if r.status != 200 || r.body["revoked"] != true || r.body["source"] != "api" {
		t.Fatalf("after a restart: %d %v", r.status, r.body)
	}
	if r := sendWith(t, g, third, "+447700900123"); r.status != 401 {
		t.Fatalf("a revoked key after a restart: %d", r.status)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/keys/api2", ""); r.status != 200 {
		t.Fatalf("api2 after a restart: %d", r.status)
	}
}

// A revocation written to the store by another node (here: straight to
// the store, as another node would) stops the key within a second.
func TestAdminRevocationFromAnotherNode(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	g, _ := startTestGateway(t, adminYAML(sim.Addr()))
	r := adminCall(t, g, "POST", "/admin/v1/keys", `{"id": "shared", "rate": 100}`)
	secret := r.body["secret"].(string)
	if r := sendWith(t, g, secret, "+447700900123"); r.status != 202 {
		t.Fatalf("submit: %d", r.status)
	}
	// Another node's revocation: the stored record with revoked_at.
	ctx := context.Background()
	settings, err := g.node.Store.ListSettings(ctx, settingKey+"shared")
	if err != nil || len(settings) != 1 {
		t.Fatalf("stored key: %v %v", settings, err)
	}
	revoked := settings[0].Value + fmt.Sprintf("revoked_at: %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	start := time.Now()
	if err := g.node.Store.PutSetting(ctx, settings[0].Name, revoked); err != nil {
		t.Fatal(err)
	}
	for sendWith(t, g, secret, "+447700900123").status != 401 {
		if time.Since(start) > 2*time.Second {
			t.Fatal("a revocation in the store was not applied within a second")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("revocation from the store took %v", d)
	}
}

// hookRecorder is a webhook receiver that keeps each request's signature
// header and body.
type hookRecorder struct {
	mu   sync.Mutex
	reqs []hookRequest
	url  string
}

type hookRequest struct {
	sig  string
	body []byte
}

func startHookRecorder(t *testing.T) *hookRecorder {
	t.Helper()
	h := &hookRecorder{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{sig: r.Header.Get(callback.SignatureHeader), body: b})
		h.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	h.url = "http://" + ln.Addr().String() + "/hook"
	return h
}

func (h *hookRecorder) since(n int) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs[min(n, len(h.reqs)):]...)
}

func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reqs)
}

// A webhook secret rotated with an overlap signs with both secrets (the
// new one first), so a receiver holding either accepts the callbacks;
// the current secret can be read back.
func TestAdminWebhookSecretRotation(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	hooks := startHookRecorder(t)
	g, _ := startTestGateway(t, adminYAML(sim.Addr())+"webhooks: {allow_private_networks: true}\n")
	r := adminCall(t, g, "POST", "/admin/v1/keys", fmt.Sprintf(`{"id": "hooked", "rate": 100, "callback_url": %q, "callback_statuses": ["delivered"]}`, hooks.url))
	secret, old := r.body["secret"].(string), r.body["webhook_secret"].(string)
	if r := adminCall(t, g, "GET", "/admin/v1/keys/hooked/webhook-secret", ""); r.body["webhook_secret"] != old {
		t.Fatalf("read the webhook secret: %v", r.body)
	}
	// One callback before the rotation: one signature, the old secret's.
	deliverOne := func() hookRequest {
		t.Helper()
		n := hooks.count()
		if r := sendWith(t, g, secret, "+447700900123"); r.status != 202 {
			t.Fatalf("submit: %d", r.status)
		}
		deadline := time.Now().Add(10 * time.Second)
		for hooks.count() == n {
			if time.Now().After(deadline) {
				t.Fatal("no callback")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return hooks.since(n)[0]
	}
	before := deliverOne()
	if strings.Count(before.sig, "v1=") != 1 || callback.Verify(before.sig, old, before.body, time.Minute, time.Now()) != nil {
		t.Fatalf("before the rotation: %q", before.sig)
	}
	r = adminCall(t, g, "POST", "/admin/v1/keys/hooked/rotate-webhook-secret", `{"overlap": "1h"}`)
	next := r.body["webhook_secret"].(string)
	if r.status != 200 || next == old {
		t.Fatalf("rotate: %d %v", r.status, r.body)
	}
	during := deliverOne()
	if strings.Count(during.sig, "v1=") != 2 {
		t.Fatalf("during the overlap: %q, want two signatures", during.sig)
	}
	for _, s := range []string{old, next} {
		if err := callback.Verify(during.sig, s, during.body, time.Minute, time.Now()); err != nil {
			t.Fatalf("verify with %s: %v", s[:8], err)
		}
	}
	// The new secret's signature comes first.
	items := strings.Split(during.sig, ",")
	if err := callback.Verify(items[0]+","+items[1], next, during.body, time.Minute, time.Now()); err != nil {
		t.Fatalf("the first signature is not the new secret's: %q", during.sig)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/keys/hooked/webhook-secret", ""); r.body["webhook_secret"] != next ||
		r.body["previous_webhook_secret_valid_until"] == nil {
		t.Fatalf("read after the rotation: %v", r.body)
	}
	adminCall(t, g, "POST", "/admin/v1/keys/hooked/rotate-webhook-secret", `{"overlap": "0s"}`)
	latest := adminCall(t, g, "GET", "/admin/v1/keys/hooked/webhook-secret", "").body["webhook_secret"].(string)
	after := deliverOne()
	if strings.Count(after.sig, "v1=") != 1 || callback.Verify(after.sig, latest, after.body, time.Minute, time.Now()) != nil ||
		callback.Verify(after.sig, next, after.body, time.Minute, time.Now()) == nil {
		t.Fatalf("after the overlap: %q", after.sig)
	}
	// A file key's secret is the file's to change.
	if r := adminCall(t, g, "POST", "/admin/v1/keys/test/rotate-webhook-secret", ""); r.status != 409 || errorCode(r) != "managed_by_config" {
		t.Fatalf("rotating a file key's webhook secret: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/keys/test/webhook-secret", ""); r.status != 200 || !strings.HasPrefix(fmt.Sprint(r.body["webhook_secret"]), "whsec_") {
		t.Fatalf("a file key's generated webhook secret: %d %v", r.status, r.body)
	}
}

// Carriers and routes through the admin API start and stop binds live;
// suspend and resume stop and start them; bind states show; messages
// held by a suspended carrier are canceled or sent on resume.
func TestAdminCarriersRoutesLive(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	other := testSim(t, smsc.Config{})
	g, _ := startTestGateway(t, adminYAML(sim.Addr()))
	if r := adminCall(t, g, "PATCH", "/admin/v1/carriers/sim", `{"binds": 2}`); r.status != 409 || errorCode(r) != "managed_by_config" {
		t.Fatalf("changing the file's carrier: %d %v", r.status, r.body)
	}
	r := adminCall(t, g, "POST", "/admin/v1/carriers", fmt.Sprintf(
		`{"name": "de", "host": %q, "system_id": "gw", "password": "pw", "binds": 2, "enquire_link": "200ms", "reconnect_min": "10ms", "reconnect_max": "100ms"}`, other.Addr()))
	if r.status != 201 || r.body["source"] != "api" || r.body["password"] != nil || r.body["window"] != float64(64) {
		t.Fatalf("add carrier: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/carriers", `{"name": "bad", "host": "nowhere", "binds": 99}`); r.status != 400 ||
		!strings.Contains(fmt.Sprint(r.body), "binds") || !strings.Contains(fmt.Sprint(r.body), "host") {
		t.Fatalf("invalid carrier: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/carriers", `{"name": "simmy", "host": "127.0.0.1:1", "simulator": true}`); r.status != 400 {
		t.Fatalf("a simulator through the API: %d %v", r.status, r.body)
	}
	waitBinds := func(carrier, state string, n int) []any {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := adminCall(t, g, "GET", "/admin/v1/carriers/"+carrier, "")
			binds, _ := r.body["bind_states"].([]any)
			ok := len(binds) == n
			for _, b := range binds {
				ok = ok && b.(map[string]any)["state"] == state
			}
			if ok {
				return binds
			}
			if time.Now().After(deadline) {
				t.Fatalf("carrier %s: %v, want %d binds %s", carrier, r.body, n, state)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitBinds("de", "bound", 2)

	if r := adminCall(t, g, "POST", "/admin/v1/routes", `{"prefix": "+49", "carriers": ["de", "sim"]}`); r.status != 201 || r.body["id"] != "49" {
		t.Fatalf("add route: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/routes", `{"prefix": "+44", "carriers": ["nope"]}`); r.status != 400 {
		t.Fatalf("route to an unknown carrier: %d %v", r.status, r.body)
	}
	id := send(t, g, "+4915112345678", "to germany").body["id"].(string)
	if m := waitStatus(t, g, id, "delivered"); m["carrier"] != "de" {
		t.Fatalf("through the new route: %v", m)
	}
	if r := adminCall(t, g, "DELETE", "/admin/v1/carriers/de", ""); r.status != 409 {
		t.Fatalf("removing a carrier a route uses: %d %v", r.status, r.body)
	}

	// Suspend: binds stop, messages wait (queued) and can be canceled.
	if r := adminCall(t, g, "POST", "/admin/v1/carriers/sim/suspend", ""); r.status != 200 || r.body["suspended"] != true {
		t.Fatalf("suspend: %d %v", r.status, r.body)
	}
	waitBinds("sim", "suspended", 1)
	keep := send(t, g, "+447700900123", "waits").body["id"].(string)
	drop := send(t, g, "+447700900123", "canceled").body["id"].(string)
	waitStatus(t, g, keep, "queued") // the head waits for a carrier; drop waits behind it
	r = adminCall(t, g, "POST", "/admin/v1/messages/"+drop+"/cancel", "")
	if r.status != 200 || r.body["status"] != "canceled" {
		t.Fatalf("cancel: %d %v", r.status, r.body)
	}
	events := call(t, "GET", "http://"+g.Addr()+"/v1/messages/"+drop, nil).body["events"].([]any)
	if last := events[len(events)-1].(map[string]any); last["status"] != "canceled" {
		t.Fatalf("events after cancel: %v", events)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/carriers/sim/resume", ""); r.status != 200 {
		t.Fatalf("resume: %d %v", r.status, r.body)
	}
	waitStatus(t, g, keep, "delivered")
	if r := adminCall(t, g, "POST", "/admin/v1/messages/"+keep+"/cancel", ""); r.status != 409 {
		t.Fatalf("cancel a delivered message: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/binds", ""); r.status != 200 || len(r.body["binds"].([]any)) != 3 {
		t.Fatalf("binds: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/fleet", ""); r.status != 404 {
		t.Fatalf("fleet on a single node: %d %v", r.status, r.body)
	}

	// Change the carrier: its binds restart with one bind; remove route
	// and carrier: its binds stop.
	if r := adminCall(t, g, "PATCH", "/admin/v1/carriers/de", `{"binds": 1}`); r.status != 200 || r.body["binds"] == nil {
		t.Fatalf("update carrier: %d %v", r.status, r.body)
	}
	waitBinds("de", "bound", 1)
	if r := adminCall(t, g, "PATCH", "/admin/v1/routes/+49", `{"carriers": ["sim"]}`); r.status != 200 {
		t.Fatalf("update route: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "DELETE", "/admin/v1/routes/default", ""); r.status != 409 {
		t.Fatalf("removing the file's route: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "DELETE", "/admin/v1/routes/49", ""); r.status != 204 {
		t.Fatalf("remove route: %d %v", r.status, r.body)
	}
	if r := adminCall(t, g, "DELETE", "/admin/v1/carriers/de", ""); r.status != 204 {
		t.Fatalf("remove carrier: %d %v", r.status, r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for other.Stats().Binds != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/carriers", ""); len(r.body["carriers"].([]any)) != 1 {
		t.Fatalf("carriers after the removal: %v", r.body)
	}
}

// SIGHUP's reload applies the file's keys, carriers and routes; a file
// that does not validate changes nothing.
func TestReloadAppliesTheFile(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.yaml")
	g, _ := openTestGateway(t, dir, adminYAML(sim.Addr()))
	defer stopTestGateway(t, g)
	sets := []string{"node.data_dir=" + filepath.Join(dir, "data"), "node.http=127.0.0.1:0", "node.admin=127.0.0.1:0"}
	load := configLoader(path, sets)
	const added = "added-secret-0123456789"
	if r := sendWith(t, g, added, "+447700900123"); r.status != 401 {
		t.Fatalf("before the reload: %d", r.status)
	}
	// Invalid: a route to a carrier that does not exist.
	bad := adminYAML(sim.Addr()) + "  - {id: added, secret: " + added + ", rate: 10}\n"
	bad = strings.Replace(bad, "carriers: [sim]", "carriers: [nope]", 1)
	os.WriteFile(path, []byte(bad), 0o600)
	if err := g.reload(context.Background(), load); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("reload of an invalid file: %v", err)
	}
	if r := sendWith(t, g, added, "+447700900123"); r.status != 401 {
		t.Fatalf("an invalid file changed the keys: %d", r.status)
	}
	good := adminYAML(sim.Addr()) + "  - {id: added, secret: " + added + ", rate: 10}\n"
	good = strings.Replace(good, "admin_token: ", "drain_period: 1s, admin_token: ", 1)
	os.WriteFile(path, []byte(good), 0o600)
	if err := g.reload(context.Background(), load); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r := sendWith(t, g, added, "+447700900123"); r.status != 202 {
		t.Fatalf("a key added to the file: %d", r.status)
	}
	r := adminCall(t, g, "GET", "/admin/v1/keys/added", "")
	if r.status != 200 || r.body["source"] != "file" {
		t.Fatalf("the added key: %d %v", r.status, r.body)
	}
	// A setting that needs a restart does not apply at a reload, and the
	// keys are checked against what runs: a key whose callback URL only
	// the new webhooks.allow_private_networks would allow is refused (its
	// callbacks would be refused at every send until a restart).
	private := good +
		"  - {id: private, secret: private-secret-0123456789, rate: 1, callback_url: \"http://127.0.0.1:9/hook\"}\n" +
		"webhooks: {allow_private_networks: true}\n"
	os.WriteFile(path, []byte(private), 0o600)
	if err := g.reload(context.Background(), load); err == nil || !strings.Contains(err.Error(), "allow_private_networks") {
		t.Fatalf("reload with a private callback URL allowed only after a restart: %v", err)
	}
	if r := adminCall(t, g, "GET", "/admin/v1/keys/private", ""); r.status != 404 {
		t.Fatalf("the refused key: %d %v", r.status, r.body)
	}
	// A key the admin API created and one the file now defines with its
	// id cannot both be: the reload is refused, and both stay as they were.
	adminCall(t, g, "POST", "/admin/v1/keys", `{"id": "clash", "rate": 1}`)
	os.WriteFile(path, []byte(good+"  - {id: clash, secret: clash-secret-0123456789, rate: 1}\n"), 0o600)
	if err := g.reload(context.Background(), load); err == nil {
		t.Fatal("a file key with an API key's id was accepted")
	}
}

// The real binary re-reads its file on SIGHUP.
func TestSIGHUPReloadsTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	sim := testSim(t, smsc.Config{})
	path := filepath.Join(dir, "cluster.yaml")
	write := func(extra string) {
		cfg := fmt.Sprintf(`
node: {http: "127.0.0.1:0", admin: "127.0.0.1:0", data_dir: %q, drain_period: 100ms}
log: {level: info, format: json}
carriers:%s
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: first, secret: %q, rate: 100}
%s`, filepath.Join(dir, "data"), carrierYAML("sim", sim.Addr(), 1), testSecret, extra)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	cmd, addr := startBinary(t, bin, path)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	const second = "second-secret-0123456789"
	if r := sendWith(t, processAddr(addr), second, "+447700900123"); r.status != 401 {
		t.Fatalf("before SIGHUP: %d", r.status)
	}
	write(fmt.Sprintf("  - {id: second, secret: %q, rate: 100}\n", second))
	if err := cmd.Process.Signal(sighup); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sendWith(t, processAddr(addr), second, "+447700900123").status != 202 {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not add the key")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var sighup = syscall.SIGHUP

// A change made on this node just after another node revoked the key
// (within the poll's second) does not write the key back unrevoked: a
// change starts from the store's items, the revocation included.
func TestAdminChangeAfterAnotherNodesRevocation(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	g, _ := startTestGateway(t, adminYAML(sim.Addr()))
	r := adminCall(t, g, "POST", "/admin/v1/keys", `{"id": "shared", "rate": 100}`)
	secret := r.body["secret"].(string)
	ctx := context.Background()
	settings, err := g.node.Store.ListSettings(ctx, settingKey+"shared")
	if err != nil || len(settings) != 1 {
		t.Fatalf("stored key: %v %v", settings, err)
	}
	revoked := settings[0].Value + fmt.Sprintf("revoked_at: %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	if err := g.node.Store.PutSetting(ctx, settings[0].Name, revoked); err != nil {
		t.Fatal(err)
	}
	if r := adminCall(t, g, "PATCH", "/admin/v1/keys/shared", `{"rate": 200}`); r.status != 409 {
		t.Fatalf("PATCH of a key another node revoked: %d %v, want 409", r.status, r.body)
	}
	if r := sendWith(t, g, secret, "+447700900123"); r.status != 401 {
		t.Fatalf("the revoked key's secret: %d, want 401", r.status)
	}
}

// In a cluster a carrier change through the API is refused before
// anything is stored: carriers change by restart, and a stored carrier no
// engine runs would make every later change fail.
func TestAdminCarrierChangeRefusedInACluster(t *testing.T) {
	cfg := &Config{Cluster: ClusterConfig{Enabled: true}}
	store, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := newCatalog(cfg, zerolog.Nop())
	c.store = store
	c.attach(unstartedEngine(t, store))
	ctx := context.Background()
	if _, err := c.AddCarrier(ctx, []byte(`{"name": "acme", "host": "127.0.0.1:2775", "system_id": "acme"}`)); switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE ||
		!strings.Contains(err.Error(), "restart") {
		t.Fatalf("AddCarrier in a cluster: %v, want %s saying carriers change by restart", err, switchboard.EUNAVAILABLE)
	}
	if err := c.RemoveCarrier(ctx, "acme"); switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
		t.Fatalf("RemoveCarrier in a cluster: %v, want %s", err, switchboard.EUNAVAILABLE)
	}
	if stored, err := store.ListSettings(ctx, settingCarrier); err != nil || len(stored) != 0 {
		t.Fatalf("stored carriers %v (%v), want none", stored, err)
	}
}

// unstartedEngine is an engine on store that was never started, for a
// catalog that needs one to exist.
func unstartedEngine(t *testing.T, store switchboard.Store) func() *actors.Engine {
	t.Helper()
	e, err := actors.New(actors.Config{Store: store, Keys: switchboard.NewKeyRing(nil), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return func() *actors.Engine { return e }
}

// While the node starts (its engine's preparation has read the store, the
// engine is not running yet), the admin API changes nothing: before, a new
// key was stored but answered 503, its secret lost, and a retry was told
// the key exists.
func TestAdminChangesWaitForTheEngine(t *testing.T) {
	store, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := newCatalog(&Config{}, zerolog.Nop())
	c.store = store // prepare read it; no engine attached yet
	ctx := context.Background()
	if _, err := c.CreateKey(ctx, []byte(`{"id": "k1", "rate": 10}`)); switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
		t.Fatalf("CreateKey while the node starts: %v, want %s", err, switchboard.EUNAVAILABLE)
	}
	if stored, err := store.ListSettings(ctx, settingsAdmin); err != nil || len(stored) != 0 {
		t.Fatalf("stored admin items %v (%v), want none", stored, err)
	}
	if _, err := c.ListKeys(ctx); switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
		t.Fatalf("ListKeys while the node starts: %v, want %s", err, switchboard.EUNAVAILABLE)
	}
}

// A gateway whose file configures no carrier takes its first one through
// the admin API: the carrier first (it binds; destinations stay no_route
// until a route names it), then its route, and messages flow.
func TestAdminFirstCarrierThroughTheAPI(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	g, _ := startTestGateway(t, fmt.Sprintf("\nnode: {admin_token: %q}\n%s", testAdminToken, keyYAML(1000, 1000, 1000)))
	if r := send(t, g, "+4915112345678", "hi"); r.status != 400 || errorCode(r) != "no_route" {
		t.Fatalf("a message with no carrier: %d %v, want 400 no_route", r.status, r.body)
	}
	r := adminCall(t, g, "POST", "/admin/v1/carriers", fmt.Sprintf(
		`{"name": "first", "host": %q, "system_id": "gw", "password": "pw", "reconnect_min": "10ms", "reconnect_max": "100ms"}`, sim.Addr()))
	if r.status != 201 {
		t.Fatalf("the first carrier: %d %v, want 201", r.status, r.body)
	}
	if r := send(t, g, "+4915112345678", "hi"); r.status != 400 || errorCode(r) != "no_route" {
		t.Fatalf("a message with a carrier but no route: %d %v, want 400 no_route", r.status, r.body)
	}
	if r := adminCall(t, g, "POST", "/admin/v1/routes", `{"prefix": "", "carriers": ["first"]}`); r.status != 201 {
		t.Fatalf("the first route: %d %v, want 201", r.status, r.body)
	}
	r = send(t, g, "+4915112345678", "hi")
	if r.status != 202 {
		t.Fatalf("a message with a carrier and a route: %d %v, want 202", r.status, r.body)
	}
	waitStatus(t, g, r.body["id"].(string), "delivered")
}
