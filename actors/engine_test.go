package actors_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// rig is an engine on a real Pebble store, sending to real SMSC simulators
// over loopback TCP.
type rig struct {
	t      *testing.T
	engine *actors.Engine
	store  *pebble.Store
	sims   map[string]*smsc.Server
	keys   []*switchboard.Key
	mu     sync.Mutex
	order  map[string][]string // key|dest → bodies in the order the simulators saw them
	seen   []smsc.Submit       // every submit the simulators accepted
	opts   rigOptions
	// carriers and ring are what the engine was started with.
	carriers []actors.CarrierConfig
	ring     *switchboard.KeyRing
}

type rigOptions struct {
	keys      int
	rate      float64
	burst     int
	maxQueued int
	maxParts  int
	carriers  []string // in failover order; each gets its own simulator
	binds     int
	window    int
	simConfig smsc.Config
	keyWindow int
	maxHeld   int
	maxSend   int
	idle      time.Duration
	tps       float64
	// wrapStore, if set, stands between the engine and the store.
	wrapStore func(*pebble.Store) switchboard.Store
	now       func() time.Time // the engine's clock; nil: time.Now
	// Carrier settings (0: the rig's or the engine's defaults).
	responseTimeout time.Duration
	enquireLink     time.Duration // interval and timeout; 0: 200 ms
	receiptTimeout  time.Duration
	maxAttempts     int
	receiptSweep    time.Duration
	// Webhooks: every key's callback URL, and what posts them.
	callbackURL string
	webhooks    actors.WebhookConfig
	metrics     actors.Metrics
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	r := &rig{t: t, sims: map[string]*smsc.Server{}, order: map[string][]string{}, opts: o}
	if len(o.carriers) == 0 {
		o.carriers = []string{"sim"}
	}
	var carriers []actors.CarrierConfig
	for _, name := range o.carriers {
		cfg := o.simConfig
		cfg.Addr, cfg.Log = "127.0.0.1:0", zerolog.Nop()
		cfg.OnSubmit = r.sawSubmit
		sim, err := smsc.Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		r.sims[name] = sim
		carriers = append(carriers, actors.CarrierConfig{Name: name, Binds: max(o.binds, 1), TPS: o.tps,
			ReceiptTimeout: o.receiptTimeout, MaxAttempts: o.maxAttempts, SMPP: smpp.Config{
				Addr: sim.Addr(), SystemID: "gw", Password: "pw", Window: max(o.window, 16),
				EnquireLinkInterval: time.Duration(or(float64(o.enquireLink), float64(200*time.Millisecond))),
				EnquireLinkTimeout:  time.Duration(or(float64(o.enquireLink), float64(200*time.Millisecond))),
				ResponseTimeout:     time.Duration(or(float64(o.responseTimeout), float64(time.Second))),
				ReconnectMin:        10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
			}})
	}
	for i := 0; i < max(o.keys, 1); i++ {
		r.keys = append(r.keys, &switchboard.Key{
			ID: fmt.Sprintf("k%d", i), SecretHash: switchboard.HashSecret(fmt.Sprintf("secret-%d", i)),
			Rate: or(o.rate, 1e6), Burst: orInt(o.burst, 1e6), MaxQueued: orInt(o.maxQueued, 1e6),
			CallbackURL: o.callbackURL, WebhookSecret: "whsec-test",
		})
	}
	r.carriers, r.ring = carriers, switchboard.NewKeyRing(r.keys)
	store, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.store = store
	var engineStore switchboard.Store = store
	if o.wrapStore != nil {
		engineStore = o.wrapStore(store)
	}
	e, err := actors.New(actors.Config{
		Store: engineStore, Keys: r.ring,
		Routes:   []switchboard.Route{{Prefix: "", Carriers: o.carriers}},
		Carriers: carriers, RestartMin: 10 * time.Millisecond, RestartMax: 100 * time.Millisecond,
		KeyWindow: o.keyWindow, MaxHeld: o.maxHeld, MaxParts: o.maxParts, MaxSending: o.maxSend, IdleTimeout: o.idle, Log: testLog(),
		Now: o.now, ReceiptSweep: o.receiptSweep, Webhooks: o.webhooks, Metrics: o.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.engine = e
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Stop(ctx)
		store.Close()
	})
	return r
}

func or(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func (r *rig) sawSubmit(s smsc.Submit) {
	r.mu.Lock()
	r.seen = append(r.seen, s)
	r.mu.Unlock()
	// Bodies are "key|dest|n": record n per (key, dest).
	text, err := gsm.Decode(gsm.Coding(s.DataCoding), s.Data)
	if err != nil {
		r.t.Errorf("simulator got undecodable data: %v", err)
		return
	}
	parts := strings.Split(text, "|")
	if len(parts) != 3 {
		return
	}
	r.mu.Lock()
	k := parts[0] + "|" + parts[1]
	r.order[k] = append(r.order[k], parts[2])
	r.mu.Unlock()
}

func (r *rig) submit(key *switchboard.Key, to, body string) switchboard.SubmitResult {
	res := r.engine.Submit(context.Background(), key, []switchboard.SubmitRequest{{To: to, From: "Acme", Body: body}})
	return res[0]
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) status(id string) switchboard.Status {
	m, err := r.store.Message(context.Background(), id)
	if err != nil {
		r.t.Fatalf("message %s: %v", id, err)
	}
	return m.Status
}

// 10,000 messages across 50 keys, 20 destinations each: all delivered, and
// each (key, destination) reached the carrier in acceptance order.
func TestManyKeysAllDeliveredInOrder(t *testing.T) {
	r := newRig(t, rigOptions{keys: 50, binds: 2, window: 64})
	const perKey = 200
	ids := make([][]string, len(r.keys))
	var wg sync.WaitGroup
	for ki, key := range r.keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perKey; n++ {
				to := fmt.Sprintf("+4477009%05d", n%20)
				res := r.submit(key, to, fmt.Sprintf("%s|%s|%d", key.ID, to, n))
				if res.Err != nil {
					t.Errorf("submit: %v", res.Err)
					return
				}
				ids[ki] = append(ids[ki], res.Message.ID)
			}
		}()
	}
	wg.Wait()
	for _, keyIDs := range ids {
		for _, id := range keyIDs {
			deadline := time.Now().Add(60 * time.Second)
			for r.status(id) != switchboard.StatusDelivered {
				if time.Now().After(deadline) {
					m, _ := r.store.Message(context.Background(), id)
					t.Fatalf("message %s not delivered: %+v; engine %+v; sim %+v", id, m, r.engine.Stats(), r.sims["sim"].Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) != 50*20 {
		t.Fatalf("order recorded for %d (key, destination) pairs, want %d", len(r.order), 50*20)
	}
	repeats := 0
	for k, seen := range r.order {
		last := -1
		for _, s := range seen {
			var n int
			fmt.Sscan(s, &n)
			switch {
			case n < last:
				t.Fatalf("%s: %d reached the carrier after %d", k, n, last)
			case n == last:
				// At least once: a submit whose response came after the
				// rig's 1 s timeout (a loaded machine) is sent again, right
				// behind itself.
				repeats++
			}
			last = n
		}
	}
	if repeats > 0 {
		t.Logf("%d submits were repeated after a response timeout", repeats)
	}
	if got := r.sims["sim"].Stats().Submits; got < 50*perKey {
		t.Fatalf("simulator accepted %d submits, want at least %d", got, 50*perKey)
	}
}

func testLog() zerolog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		return zerolog.New(os.Stderr).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}
