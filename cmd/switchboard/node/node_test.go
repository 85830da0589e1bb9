package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/scylla"
)

// A node that cannot open its store fails with the step named, and closes
// the listener it was given: the caller has nothing left to release.
func TestOpenFailureReleasesListener(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), Config{DataDir: file, Listener: ln, Engine: actors.Config{Keys: switchboard.NewKeyRing(nil)}})
	if err == nil || n != nil {
		t.Fatalf("Open on a file as data dir: %v, %v; want an error", n, err)
	}
	if got := err.Error(); len(got) < 8 || got[:8] != "storage:" {
		t.Errorf("error %q, want it to start with the step, storage:", got)
	}
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the listener still accepts after a failed Open")
	}
}

// A node whose ScyllaDB cannot be reached waits for it (the store retries)
// and serves the API meanwhile: messages get 503 unavailable, saying the
// gateway is starting and why (in general terms: the causes are logged),
// and /readyz is 503. When the wait
// ends without a store, Open fails naming the storage step and releases
// the listener.
func TestOpenWaitsForUnreachableStorage(t *testing.T) {
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close() // nothing listens there now
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret(secret), Rate: 10, Burst: 10, MaxQueued: 10}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		n   *Node
		err error
	}
	opened := make(chan result, 1)
	go func() {
		n, err := Open(ctx, Config{
			Scylla:   &scylla.Options{Hosts: []string{downAddr}, Keyspace: "sb", ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond},
			Engine:   actors.Config{Keys: switchboard.NewKeyRing([]*switchboard.Key{key})},
			Listener: ln,
		})
		opened <- result{n, err}
	}()

	var status int
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body = post(t, "http://"+apiAddr+"/v1/messages")
		if status == 503 && strings.Contains(body, "The gateway is starting: storage is not reachable yet") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST while the storage is down: %d %s; want 503 saying the gateway is starting and why", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, `"code":"unavailable"`) {
		t.Errorf("body %s, want code unavailable", body)
	}
	resp, err := http.Get("http://" + apiAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(ready), "storage is not reachable yet") {
		t.Errorf("/readyz while the storage is down: %d %s; want 503 saying why", resp.StatusCode, ready)
	}
	select {
	case r := <-opened:
		t.Fatalf("Open returned while the storage is down: %v, %v", r.n, r.err)
	default:
	}

	cancel()
	r := <-opened
	if r.err == nil || r.n != nil || !strings.HasPrefix(r.err.Error(), "storage: ") {
		t.Fatalf("Open after its context ended: %v, %v; want a storage: error", r.n, r.err)
	}
	if c, err := net.Dial("tcp", apiAddr); err == nil {
		c.Close()
		t.Error("the API still listens after a failed Open")
	}
}

const secret = "node-test-secret-0123"

func post(t *testing.T, url string) (int, string) { return postWith(t, url, secret) }

func postWith(t *testing.T, url, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"to":"+447700900123","from":"Acme","body":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lockHeldFS holds the embedded store's open (its directory lock) until
// release is closed, as a long log replay or layout upgrade would.
type lockHeldFS struct {
	vfs.FS
	release chan struct{}
}

func (f lockHeldFS) Lock(name string) (io.Closer, error) {
	<-f.release
	return f.FS.Lock(name)
}

// The API answers while the embedded store opens: 503, the gateway is
// starting. Before, the listener was served only once the store was open,
// and a client's request waited unanswered for as long as that took.
func TestAPIAnswersWhileTheEmbeddedStoreOpens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	release := make(chan struct{})
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret(secret), Rate: 10, Burst: 10, MaxQueued: 10}
	opened := make(chan error, 1)
	var n *Node
	go func() {
		var err error
		n, err = Open(context.Background(), Config{
			DataDir:  t.TempDir(),
			Store:    pebble.Options{FS: lockHeldFS{FS: vfs.Default, release: release}},
			Engine:   actors.Config{Keys: switchboard.NewKeyRing([]*switchboard.Key{key})},
			Listener: ln,
		})
		opened <- err
	}()
	status, body := post(t, "http://"+apiAddr+"/v1/messages")
	if status != 503 || !strings.Contains(body, "The gateway is starting.") {
		t.Fatalf("POST while the store opens: %d %s; want 503, starting", status, body)
	}
	// A secret the ring does not know yet may be a key the admin API made,
	// read from the store once it is open: 503 too, not 401.
	status, body = postWith(t, "http://"+apiAddr+"/v1/messages", "made-through-the-admin-api")
	if status != 503 || !strings.Contains(body, "The gateway is starting.") {
		t.Fatalf("POST with a key not loaded yet: %d %s; want 503, starting", status, body)
	}
	close(release)
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	defer n.Stop(context.Background())
	// The engine answers now (no carrier is configured: no route), and an
	// unknown secret is refused.
	if status, body := post(t, "http://"+apiAddr+"/v1/messages"); status != 400 || !strings.Contains(body, "no_route") {
		t.Fatalf("POST once open: %d %s; want the engine's no_route", status, body)
	}
	if status, body := postWith(t, "http://"+apiAddr+"/v1/messages", "made-through-the-admin-api"); status != 401 {
		t.Fatalf("POST with an unknown key once open: %d %s; want 401", status, body)
	}
}
