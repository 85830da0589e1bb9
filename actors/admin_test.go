package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// addSim starts another simulator, recorded like the rig's own, and
// returns a carrier for it made like the rig's first.
func (r *rig) addSim(name string, cfg smsc.Config) actors.CarrierConfig {
	r.t.Helper()
	cfg.Addr, cfg.Log, cfg.OnSubmit = "127.0.0.1:0", zerolog.Nop(), r.sawSubmit
	sim, err := smsc.Listen(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { sim.Close() })
	r.sims[name] = sim
	cc := r.carriers[0]
	cc.Name, cc.SMPP.Addr = name, sim.Addr()
	return cc
}

func (r *rig) reconfigure(carriers []actors.CarrierConfig, routes ...switchboard.Route) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.engine.Reconfigure(ctx, carriers, routes); err != nil {
		r.t.Fatalf("Reconfigure: %v", err)
	}
}

func route(carriers ...string) switchboard.Route {
	return switchboard.Route{Prefix: "", Carriers: carriers}
}

func (r *rig) bindStates(carrier string) []string {
	var out []string
	for _, b := range r.engine.Binds() {
		if b.Carrier == carrier {
			out = append(out, b.State)
		}
	}
	return out
}

func allIn(states []string, want string) bool {
	for _, s := range states {
		if s != want {
			return false
		}
	}
	return len(states) > 0
}

// A carrier added while the engine runs binds and takes the route; the
// carrier it replaces is removed with submits in flight and queued at its
// binds, and every message still ends delivered: none vanishes with the
// removed carrier.
func TestReconfigureCarriersLive(t *testing.T) {
	r := newRig(t, rigOptions{carriers: []string{"a"}, binds: 2, window: 16})
	ids := r.submitAll(5)
	r.waitFinal(ids, switchboard.StatusDelivered, 10*time.Second)

	b := r.addSim("b", smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 200 * time.Millisecond}}})
	r.reconfigure([]actors.CarrierConfig{r.carriers[0], b}, route("b"))
	eventually(t, "carrier b bound", 5*time.Second, func() bool { return allIn(r.bindStates("b"), actors.BindBound) })

	// Slow responses keep submits at b while it is removed.
	var more []string
	for i := range 60 {
		res := r.submit(r.keys[0], fmt.Sprintf("+4478009%05d", i), fmt.Sprintf("k0|x%d|%d", i, i))
		if res.Err != nil {
			t.Fatalf("submit: %v", res.Err)
		}
		more = append(more, res.Message.ID)
	}
	eventually(t, "submits in flight at b", 5*time.Second, func() bool { return r.sims["b"].Stats().Submits > 0 })
	r.reconfigure([]actors.CarrierConfig{r.carriers[0]}, route("a"))
	if got := r.bindStates("b"); len(got) != 0 {
		t.Fatalf("binds of the removed carrier still listed: %v", got)
	}
	r.waitFinal(more, switchboard.StatusDelivered, 30*time.Second)
	for _, id := range more {
		if c := r.message(id).Carrier; c != "a" && c != "b" {
			t.Fatalf("message %s delivered through %q", id, c)
		}
	}

	// A changed carrier restarts with its new settings: one bind, not two.
	one := r.carriers[0]
	one.Binds = 1
	r.reconfigure([]actors.CarrierConfig{one}, route("a"))
	eventually(t, "carrier a back with one bind", 5*time.Second, func() bool {
		s := r.bindStates("a")
		return len(s) == 1 && s[0] == actors.BindBound
	})
	r.waitFinal(r.submitAll(3), switchboard.StatusDelivered, 10*time.Second)

	// Invalid: a route naming no known carrier changes nothing.
	ctx := context.Background()
	if err := r.engine.Reconfigure(ctx, []actors.CarrierConfig{one}, []switchboard.Route{route("nope")}); switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Fatalf("route to an unknown carrier: %v, want invalid", err)
	}
	if got := r.bindStates("a"); len(got) != 1 {
		t.Fatalf("an invalid reconfiguration changed the binds: %v", got)
	}
}

// A suspended carrier's binds unbind and its messages wait (queued);
// resumed, it binds again and sends them. Bind states say so, with
// since, in flight, TPS and the last error.
func TestSuspendAndResumeCarrier(t *testing.T) {
	r := newRig(t, rigOptions{binds: 2})
	eventually(t, "binds bound", 5*time.Second, func() bool { return allIn(r.bindStates("sim"), actors.BindBound) })
	before := r.engine.Binds()[0].Since
	if err := r.engine.SuspendCarrier(context.Background(), "sim"); err != nil {
		t.Fatal(err)
	}
	if got := r.bindStates("sim"); !allIn(got, actors.BindSuspended) {
		t.Fatalf("suspended binds read %v", got)
	}
	if err := r.engine.Ready(); err != nil {
		t.Fatalf("a suspended first carrier makes the node unready: %v", err)
	}
	ids := r.submitAll(4)
	r.waitFinal(ids, switchboard.StatusQueued, 10*time.Second)
	if n := r.sims["sim"].Stats().Submits; n != 0 {
		t.Fatalf("a suspended carrier got %d submits", n)
	}
	if err := r.engine.ResumeCarrier("sim"); err != nil {
		t.Fatal(err)
	}
	r.waitFinal(ids, switchboard.StatusDelivered, 10*time.Second)
	eventually(t, "binds bound again", 5*time.Second, func() bool { return allIn(r.bindStates("sim"), actors.BindBound) })
	st := r.engine.Binds()[0]
	if !st.Since.After(before) {
		t.Fatalf("since %v did not move past %v", st.Since, before)
	}
	if err := r.engine.SuspendCarrier(context.Background(), "nope"); switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
		t.Fatalf("suspend unknown carrier: %v", err)
	}

	// TPS and in flight under load: a slow simulator keeps the window full.
	r.sims["sim"].SetFaults(smsc.Faults{Latency: smsc.Delay{Min: 300 * time.Millisecond}})
	r.submitAll(40)
	total := func(f func(actors.BindStatus) float64) float64 {
		n := 0.0
		for _, b := range r.engine.Binds() {
			n += f(b)
		}
		return n
	}
	eventually(t, "submits in flight", 5*time.Second, func() bool {
		return total(func(b actors.BindStatus) float64 { return float64(b.InFlight) }) > 0
	})
	eventually(t, "a TPS", 5*time.Second, func() bool {
		return total(func(b actors.BindStatus) float64 { return b.TPS }) > 0
	})

	// A lost bind reports why.
	r.sims["sim"].SetFaults(smsc.Faults{RefuseBinds: true})
	r.sims["sim"].DropAll()
	eventually(t, "the last error of a refused bind", 5*time.Second, func() bool {
		b := r.engine.Binds()[0]
		return b.LastError != "" && !b.LastErrorAt.IsZero() && b.State == actors.BindDown
	})
}

// A queued message is canceled whether it waits in memory or only in the
// store: it ends canceled with its event, is never sent, and the messages
// around it go on. Submitted or final messages are not canceled.
func TestCancelQueuedMessage(t *testing.T) {
	r := newRig(t, rigOptions{keyWindow: 3})
	ctx := context.Background()
	ids := r.queueSuspended(10)
	// ids[1] is in memory (the window holds 3), ids[8] only in the store.
	for _, id := range []string{ids[1], ids[8]} {
		m, err := r.engine.CancelMessage(ctx, id)
		if err != nil {
			t.Fatalf("cancel %s: %v", id, err)
		}
		if m.Status != switchboard.StatusCanceled || m.Events[len(m.Events)-1].Status != switchboard.StatusCanceled {
			t.Fatalf("canceled message: %s, events %+v", m.Status, m.Events)
		}
	}
	if _, err := r.engine.CancelMessage(ctx, ids[1]); switchboard.ErrorCode(err) != switchboard.ECONFLICT {
		t.Fatalf("cancel twice: %v, want conflict", err)
	}
	if _, err := r.engine.CancelMessage(ctx, "msg_01J00000000000000000000000"); switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
		t.Fatalf("cancel unknown: %v, want not found", err)
	}
	lag := r.engine.Gauges().QueueLag
	if total := sum(lag); total != 8 {
		t.Fatalf("queue lag %v sums to %d, want the 8 messages left", lag, total)
	}
	if err := r.engine.ResumeCarrier("sim"); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for i, id := range ids {
		if i != 1 && i != 8 {
			rest = append(rest, id)
		}
	}
	r.waitFinal(rest, switchboard.StatusDelivered, 15*time.Second)
	seen := r.timesSeen()
	for _, n := range []int{1, 8} {
		if seen[fmt.Sprintf("k0|+447700900001|%d", n)] != 0 {
			t.Fatalf("canceled message %d was sent", n)
		}
	}
	if _, err := r.engine.CancelMessage(ctx, ids[0]); switchboard.ErrorCode(err) != switchboard.ECONFLICT {
		t.Fatalf("cancel delivered: %v, want conflict", err)
	}
	eventually(t, "queue lag back to 0", 5*time.Second, func() bool { return sum(r.engine.Gauges().QueueLag) == 0 })
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// A key's new rate applies to the running key actor at once.
func TestKeysChangedAppliesNewLimits(t *testing.T) {
	r := newRig(t, rigOptions{rate: 1, burst: 1})
	key := r.keys[0]
	if res := r.submit(key, "+447700900001", "one"); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := r.submit(key, "+447700900001", "two"); switchboard.ErrorCode(res.Err) != switchboard.ERATELIMITED {
		t.Fatalf("second submit at rate 1: %v, want rate_limited", res.Err)
	}
	faster := *key
	faster.Rate, faster.Burst = 1000, 1000
	r.ring.Put(&faster)
	r.engine.KeysChanged(key.ID)
	eventually(t, "the new rate", 5*time.Second, func() bool {
		return r.submit(&faster, "+447700900001", "three").Err == nil
	})
	for i := range 20 {
		if res := r.submit(&faster, "+447700900001", fmt.Sprint(i)); res.Err != nil {
			t.Fatalf("submit %d at the new rate: %v", i, res.Err)
		}
	}
}

// A key actor that replaces one that panicked takes the key's settings
// as the key ring has them then, not as they were when the key's first
// actor was spawned.
func TestRestartedKeyActorTakesCurrentSettings(t *testing.T) {
	r := newRig(t, rigOptions{rate: 1, burst: 1})
	key := r.keys[0]
	if res := r.submit(key, "+447700900001", "one"); res.Err != nil {
		t.Fatal(res.Err)
	}
	faster := *key
	faster.Rate, faster.Burst = 1000, 1000
	r.ring.Put(&faster)
	if !r.engine.RestartKeyActor(key.ID) {
		t.Fatal("no key actor to restart")
	}
	for i := range 20 {
		if res := r.submit(&faster, "+447700900001", fmt.Sprint(i)); res.Err != nil {
			t.Fatalf("submit %d after the restart: %v, want the ring's new rate", i, res.Err)
		}
	}
}

// recordingMetrics counts what the engine reports.
type recordingMetrics struct {
	mu       sync.Mutex
	submits  map[string]int
	receipts map[string]int
	finals   map[switchboard.Status]int
	writes   map[string]int
}

func newRecordingMetrics() *recordingMetrics {
	return &recordingMetrics{submits: map[string]int{}, receipts: map[string]int{},
		finals: map[switchboard.Status]int{}, writes: map[string]int{}}
}

func (m *recordingMetrics) CarrierSubmit(c string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d > 0 {
		m.submits[c]++
	}
}

func (m *recordingMetrics) Receipt(c, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.receipts[c+"/"+state]++
}

func (m *recordingMetrics) MessageFinal(s switchboard.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.finals[s]++
}

func (m *recordingMetrics) StoreWrite(op string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes[op]++
}

func (m *recordingMetrics) get(f func() bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f()
}

// The engine reports submits, receipts, final statuses and store writes,
// and its gauges count the queue and the webhook backlog.
func TestEngineMetrics(t *testing.T) {
	m := newRecordingMetrics()
	r := newRig(t, rigOptions{metrics: m, callbackURL: "http://127.0.0.1:9/hook",
		simConfig: smsc.Config{Outcomes: smsc.Outcomes{Delivered: 1, Undeliverable: 1}}})
	ids := r.submitAll(20)
	eventually(t, "every message final", 15*time.Second, func() bool {
		for _, id := range ids {
			if !r.status(id).Final() {
				return false
			}
		}
		return true
	})
	eventually(t, "metrics of 20 messages", 5*time.Second, func() bool {
		return m.get(func() bool {
			return m.finals[switchboard.StatusDelivered]+m.finals[switchboard.StatusUndeliverable] == 20 &&
				m.receipts["sim/delivered"]+m.receipts["sim/undeliverable"] == 20 && m.submits["sim"] >= 20 &&
				m.writes["accept"] > 0 && m.writes["record"] > 0
		})
	})
	// No poster: every callback waits for its next attempt, queued.
	g := r.engine.Gauges()
	if g.WebhookBacklog < 20 {
		t.Fatalf("webhook backlog %d, want at least the 20 final callbacks", g.WebhookBacklog)
	}
	eventually(t, "callback attempts retried", 10*time.Second, func() bool { return r.engine.Gauges().Webhooks.Retried > 0 })
	if sum(g.QueueLag) != 0 {
		t.Fatalf("queue lag %v with every message final", g.QueueLag)
	}
	if _, ok := g.QueueLag["sim"]; !ok {
		t.Fatal("no queue lag series for carrier sim")
	}
	if len(g.Binds) != 1 || g.MaxHeld == 0 || g.MaxSending == 0 {
		t.Fatalf("gauges %+v", g)
	}
}

// Two cancels of one message waiting only in the store, the second before
// the first's record lands, take it off the key's queue once: the key's
// max_queued still holds.
func TestCancelTwiceCountsOnce(t *testing.T) {
	r, fs := faultyRig(t, rigOptions{keyWindow: 3, maxQueued: 10})
	ctx := context.Background()
	ids := r.queueSuspended(10)
	key := r.keys[0]
	fs.set("Record", fault{delay: 300 * time.Millisecond})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := r.engine.CancelMessage(ctx, ids[8]) // only in the store
			errs <- err
		}()
	}
	var ok, conflict int
	for range 2 {
		switch err := <-errs; switchboard.ErrorCode(err) {
		case "":
			ok++
		case switchboard.ECONFLICT:
			conflict++
		default:
			t.Fatalf("cancel: %v", err)
		}
	}
	if ok != 1 || conflict != 1 {
		t.Fatalf("%d cancels succeeded and %d conflicted, want one each", ok, conflict)
	}
	fs.set("Record", fault{})
	if res := r.submit(key, "+447700900001", "k0|+447700900001|10"); res.Err != nil {
		t.Fatalf("the tenth queued message: %v", res.Err)
	}
	if res := r.submit(key, "+447700900001", "k0|+447700900001|11"); switchboard.ErrorCode(res.Err) != switchboard.EQUEUEFULL {
		t.Fatalf("the eleventh queued message: %v, want %s", res.Err, switchboard.EQUEUEFULL)
	}
}

// queueSuspended suspends the carrier and queues n messages of the first
// key to one destination, bodies "k0|+447700900001|i"; it returns their IDs.
func (r *rig) queueSuspended(n int) []string {
	r.t.Helper()
	if err := r.engine.SuspendCarrier(context.Background(), "sim"); err != nil {
		r.t.Fatal(err)
	}
	var ids []string
	for i := range n {
		res := r.submit(r.keys[0], "+447700900001", fmt.Sprintf("k0|+447700900001|%d", i))
		if res.Err != nil {
			r.t.Fatal(res.Err)
		}
		ids = append(ids, res.Message.ID)
	}
	return ids
}

// Reconfiguring with the carriers as they are (every key or route change
// of the catalog does) leaves them running: nothing is stopped, no bind
// reconnects.
func TestReconfigureUnchangedKeepsCarriers(t *testing.T) {
	r := newRig(t, rigOptions{})
	before := r.engine.CarrierSupervisor("sim")
	if before == nil {
		t.Fatal("no supervisor for the carrier")
	}
	r.reconfigure(r.carriers, route("sim"))
	if after := r.engine.CarrierSupervisor("sim"); !after.Equal(before) {
		t.Fatalf("supervisor %v replaced by %v: the unchanged carrier was restarted", before, after)
	}
}
