package actors_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// message reads a message back from the store.
func (r *rig) message(id string) *switchboard.Message {
	m, err := r.store.Message(context.Background(), id)
	if err != nil {
		r.t.Fatalf("message %s: %v", id, err)
	}
	return m
}

// submitAll sends n messages of the first key, each to its own number,
// with bodies "key|dest|i", and returns their IDs.
func (r *rig) submitAll(n int) []string {
	r.t.Helper()
	key := r.keys[0]
	ids := make([]string, n)
	for i := range ids {
		to := fmt.Sprintf("+4477009%05d", i)
		res := r.submit(key, to, fmt.Sprintf("%s|%s|%d", key.ID, to, i))
		if res.Err != nil {
			r.t.Fatalf("submit %d: %v", i, res.Err)
		}
		ids[i] = res.Message.ID
	}
	return ids
}

func (r *rig) waitFinal(ids []string, want switchboard.Status, within time.Duration) {
	r.t.Helper()
	for _, id := range ids {
		eventually(r.t, "message "+id+" "+string(want), within, func() bool { return r.status(id) == want })
	}
}

// timesSeen counts the submits the simulators accepted per body.
func (r *rig) timesSeen() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, bodies := range r.order {
		for _, b := range bodies {
			out[k+"|"+b]++
		}
	}
	return out
}

// A receipt that overtakes its submit_sm_resp by 8 s is kept until the
// response names its id, and every message ends delivered. (The gateway
// used to look the id up for 5 s and then drop the receipt.)
func TestReceiptOvertakesALateResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 8 s for the simulator's responses")
	}
	r := newRig(t, rigOptions{responseTimeout: 20 * time.Second, simConfig: smsc.Config{
		Faults: smsc.Faults{ReceiptFirst: true, Latency: smsc.Delay{Min: 8 * time.Second}}}})
	ids := r.submitAll(20)
	r.waitFinal(ids, switchboard.StatusDelivered, 30*time.Second)
	if st := r.engine.Stats(); st.ReceiptsParked == 0 {
		t.Fatalf("no receipt was parked (%+v): the test did not make receipts overtake", st)
	}
	for _, id := range ids {
		m := r.message(id)
		n := len(m.Events)
		if n < 3 || m.Events[n-2].Status != switchboard.StatusSubmitted || m.Events[n-1].Status != switchboard.StatusDelivered {
			t.Fatalf("message %s events %+v, want submitted then delivered at the end", id, m.Events)
		}
	}
}

// A submitted message whose receipt never comes ends unknown after the
// carrier's receipt timeout, with an error saying so.
func TestReceiptTimeoutEndsUnknown(t *testing.T) {
	r := newRig(t, rigOptions{receiptTimeout: 300 * time.Millisecond, receiptSweep: 50 * time.Millisecond,
		simConfig: smsc.Config{ReceiptDelay: smsc.Delay{Min: time.Hour}}})
	ids := r.submitAll(5)
	r.waitFinal(ids, switchboard.StatusUnknown, 10*time.Second)
	m := r.message(ids[0])
	if e := m.Error(); e == nil || e.Code != "receipt_timeout" {
		t.Fatalf("error %+v, want receipt_timeout", e)
	}
	// The counter moves in the record's callback, just after the store
	// shows the status.
	eventually(t, "five unknown counted", 5*time.Second, func() bool { return r.engine.Stats().Unknown == 5 })
	if got := r.engine.Stats().Unknown; got != 5 {
		t.Fatalf("Stats().Unknown = %d, want 5", got)
	}
}

// A message the carrier refuses with a retriable status every time fails
// after max_attempts with the carrier's code, and the message behind it
// to the same number is then delivered.
func TestPoisonMessageFailsAfterMaxAttempts(t *testing.T) {
	r := newRig(t, rigOptions{maxAttempts: 3, simConfig: smsc.Config{Faults: smsc.Faults{
		RefuseText: "poison", RefuseStatus: uint32(data.ESME_RSYSERR)}}})
	key := r.keys[0]
	bad := r.submit(key, "+447700900001", "poison pill")
	next := r.submit(key, "+447700900001", "fine")
	if bad.Err != nil || next.Err != nil {
		t.Fatal(bad.Err, next.Err)
	}
	r.waitFinal([]string{bad.Message.ID}, switchboard.StatusFailed, 30*time.Second)
	r.waitFinal([]string{next.Message.ID}, switchboard.StatusDelivered, 10*time.Second)
	if e := r.message(bad.Message.ID).Error(); e == nil || e.Code != "smpp_0x00000008" {
		t.Fatalf("error %+v, want smpp_0x00000008 (ESME_RSYSERR)", e)
	}
}

// A long message whose second part the carrier refuses once is sent again
// from that part: the first part, already accepted, is not sent twice,
// and the message shows its three parts delivered.
func TestLongMessageRetrySendsOnlyMissingParts(t *testing.T) {
	r := newRig(t, rigOptions{window: 1, simConfig: smsc.Config{Faults: smsc.Faults{
		RefuseText: "POISON", RefuseStatus: uint32(data.ESME_RSYSERR), RefuseTimes: 1}}})
	body := strings.Repeat("a", 153) + "POISON" + strings.Repeat("b", 153-6) + strings.Repeat("c", 100)
	res := r.submit(r.keys[0], "+447700900001", body)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	r.waitFinal([]string{res.Message.ID}, switchboard.StatusDelivered, 30*time.Second)
	r.mu.Lock()
	perPart := map[uint8]int{}
	refs := map[uint16]bool{}
	for _, s := range r.seen {
		if s.Concat != nil {
			perPart[s.Concat.Seq]++
			refs[s.Concat.Ref] = true
		}
	}
	r.mu.Unlock()
	if perPart[1] != 1 || perPart[2] != 1 || perPart[3] != 1 || len(refs) != 1 {
		t.Fatalf("the carrier accepted parts %v with references %v; want each of 3 parts once, under one reference", perPart, refs)
	}
	m := r.message(res.Message.ID)
	parts := m.Parts()
	if len(parts) != 3 {
		t.Fatalf("parts %+v", parts)
	}
	for _, p := range parts {
		if p.Status != switchboard.StatusDelivered || p.CarrierMessageID == "" {
			t.Fatalf("parts %+v, want all delivered with carrier ids", parts)
		}
	}
	var partEvents int
	for _, e := range m.Events {
		if e.Part > 0 {
			partEvents++
		}
	}
	if partEvents < 3 {
		t.Fatalf("events %+v: want the receipts to name their parts", m.Events)
	}
}

// A key actor restarted by its supervisor while its submits are in flight
// does not send them again, and the engine's budgets come back to zero.
func TestRestartedKeyActorDoesNotResend(t *testing.T) {
	r := newRig(t, rigOptions{simConfig: smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 300 * time.Millisecond}}}})
	ids := r.submitAll(50)
	eventually(t, "submits in flight", 5*time.Second, func() bool { return r.engine.Sending() > 0 })
	if !r.engine.RestartKeyActor(r.keys[0].ID) {
		t.Fatal("no key actor to restart")
	}
	after := r.submit(r.keys[0], "+447700900999", "after the restart")
	if after.Err != nil {
		t.Fatalf("submit after the restart: %v", after.Err)
	}
	for _, id := range append(ids, after.Message.ID) {
		deadline := time.Now().Add(30 * time.Second)
		for r.status(id) != switchboard.StatusDelivered {
			if time.Now().After(deadline) {
				t.Fatalf("message %s not delivered: %+v; engine %+v held %d sending %d", id, r.message(id), r.engine.Stats(), r.engine.HeldMessages(), r.engine.Sending())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for body, n := range r.timesSeen() {
		if n != 1 {
			t.Errorf("%s sent %d times", body, n)
		}
	}
	eventually(t, "budgets back to zero", 5*time.Second, func() bool {
		return r.engine.HeldMessages() == 0 && r.engine.Sending() == 0
	})
}

// A key actor that stopped without retiring (its supervisor gave up) is
// spawned again by the next request, which does not wait for a dead one.
func TestStoppedKeyActorComesBackOnTheNextRequest(t *testing.T) {
	r := newRig(t, rigOptions{})
	first := r.submit(r.keys[0], "+447700900001", "first")
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	r.waitFinal([]string{first.Message.ID}, switchboard.StatusDelivered, 10*time.Second)
	if !r.engine.StopKeyActor(r.keys[0].ID) {
		t.Fatal("no key actor to stop")
	}
	began := time.Now()
	second := r.submit(r.keys[0], "+447700900001", "second")
	if second.Err != nil {
		t.Fatalf("submit after the actor stopped: %v (after %v)", second.Err, time.Since(began))
	}
	r.waitFinal([]string{second.Message.ID}, switchboard.StatusDelivered, 10*time.Second)
}

// Carriers suspended and resumed over and over under load: a submit sent to
// a bind as it stops is answered (it went through the bind's intake, not
// its mailbox, whose messages are dropped when the actor stops), so every
// message reaches a final status and the sending budget comes back.
func TestSuspendUnderLoadLosesNoSubmit(t *testing.T) {
	r := newRig(t, rigOptions{keys: 4, window: 16, simConfig: smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: time.Millisecond}}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			time.Sleep(60 * time.Millisecond)
			_ = r.engine.SuspendCarrier(context.Background(), "sim")
			time.Sleep(50 * time.Millisecond)
			_ = r.engine.ResumeCarrier("sim")
		}
	}()
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < 4000; i += 8 {
				k := r.keys[i%4]
				res := r.submit(k, fmt.Sprintf("+4477009%05d", i%500), fmt.Sprintf("%s|%d|%d", k.ID, i%500, i))
				if res.Err != nil {
					t.Error(res.Err)
					return
				}
				mu.Lock()
				ids = append(ids, res.Message.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-done
	for _, id := range ids {
		eventually(t, "message "+id+" final", 60*time.Second, func() bool { return r.status(id).Final() })
	}
	eventually(t, "the sending budget back to zero", 5*time.Second, func() bool { return r.engine.Sending() == 0 })
}

// idemHookStore runs hook on the first Idempotency-Key look-up.
type idemHookStore struct {
	*pebble.Store
	once sync.Once
	hook func()
}

func (s *idemHookStore) Idempotency(ctx context.Context, key, idem string) (switchboard.IdempotencyRecord, error) {
	s.once.Do(func() { s.hook() })
	return s.Store.Idempotency(ctx, key, idem)
}

// A key actor replaced while a request's Idempotency-Key is being looked
// up: the request ends with a message or an error (not with neither), and
// a retry with the key is not refused as "in progress" for ever.
func TestIdempotencyLookupAcrossARestart(t *testing.T) {
	var hs *idemHookStore
	r := newRig(t, rigOptions{wrapStore: func(p *pebble.Store) switchboard.Store {
		hs = &idemHookStore{Store: p}
		return hs
	}})
	if res := r.submit(r.keys[0], "+447700900001", "warm"); res.Err != nil {
		t.Fatal(res.Err)
	}
	hs.hook = func() { r.engine.RestartKeyActor(r.keys[0].ID) }
	req := switchboard.SubmitRequest{To: "+447700900002", From: "Acme", Body: "once", IdempotencyKey: "idem-1", RequestHash: [32]byte{9}}
	first := r.engine.Submit(context.Background(), r.keys[0], []switchboard.SubmitRequest{req})[0]
	if first.Message == nil && first.Err == nil {
		t.Fatal("the request ended with neither a message nor an error")
	}
	var again switchboard.SubmitResult
	eventually(t, "a retry with the key to be answered", 10*time.Second, func() bool {
		again = r.engine.Submit(context.Background(), r.keys[0], []switchboard.SubmitRequest{req})[0]
		return again.Err == nil
	})
	if first.Message != nil && again.Message.ID != first.Message.ID {
		t.Fatalf("the retry made message %s, the first request %s", again.Message.ID, first.Message.ID)
	}
}

// A bind moved away and straight back (a lease renewal that failed, a
// membership flap) starts again once its old instance has drained and
// unbound; the start does not race the stop for the bind's name, which
// would fail the carrier's supervisor and restart its other binds.
func TestBindStoppedAndStartedAtOnce(t *testing.T) {
	// Keep-alives far apart: a reconnect of a slow machine's making would
	// count as a bind the supervisor restarted.
	r := newRig(t, rigOptions{binds: 2, responseTimeout: 5 * time.Second, enquireLink: 10 * time.Second,
		simConfig: smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 500 * time.Millisecond}}}})
	sim := r.sims["sim"]
	eventually(t, "both binds bound", 10*time.Second, func() bool { return sim.Stats().Binds == 2 })
	var ids []string
	for i := range 20 {
		res := r.submit(r.keys[0], fmt.Sprintf("+4917012345%02d", i), "hello")
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		ids = append(ids, res.Message.ID)
	}
	// Both binds have submits waiting for their responses, so the old
	// instance of bind 0 takes about the latency to stop.
	eventually(t, "submits in flight", 5*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.seen) > 0
	})
	stopped := r.engine.StopStartBind(0, 0)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the old bind did not stop")
	}
	eventually(t, "bind 0 bound again", 10*time.Second, func() bool { return sim.Stats().Binds == 2 })
	for _, id := range ids {
		eventually(t, "delivered "+id, 20*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
	if got := sim.Stats().BindsTotal; got != 3 {
		t.Fatalf("%d binds in all, want 3 (two, then bind 0 once more): the other bind was restarted too", got)
	}
}

// A message of more parts than the binds' own default of 10, accepted
// under a higher max_parts, is sent and delivered, every part of it.
func TestLongMessageUnderAHigherPartLimit(t *testing.T) {
	r := newRig(t, rigOptions{maxParts: 20})
	res := r.submit(r.keys[0], "+447700900001", strings.Repeat("a", 14*153))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Message.Segments != 14 {
		t.Fatalf("%d segments, want 14", res.Message.Segments)
	}
	r.waitFinal([]string{res.Message.ID}, switchboard.StatusDelivered, 15*time.Second)
	if n := len(r.message(res.Message.ID).CarrierIDs); n != 14 {
		t.Fatalf("%d carrier ids, want one for each of the 14 parts", n)
	}
}

// An engine stopped while a bind that is stopping waits to start again
// (moved away and back) stops within its budget, and starts no bind: one
// spawned under a supervisor that is itself stopping would never be told
// to stop, and would keep its connection.
func TestStopWhileABindWaitsToRestart(t *testing.T) {
	r := newRig(t, rigOptions{responseTimeout: 5 * time.Second,
		simConfig: smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 500 * time.Millisecond}}}})
	sim := r.sims["sim"]
	eventually(t, "bound", 10*time.Second, func() bool { return sim.Stats().Binds == 1 })
	if res := r.submit(r.keys[0], "+447700900001", "hello"); res.Err != nil {
		t.Fatal(res.Err)
	}
	eventually(t, "a submit in flight", 5*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.seen) > 0
	})
	r.engine.StopStartBind(0, 0) // the old instance drains its submit for ~500 ms
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	began := time.Now()
	r.engine.Stop(ctx)
	if took := time.Since(began); took > 6*time.Second {
		t.Fatalf("Stop took %v: a bind started under the stopping supervisor held it", took)
	}
	eventually(t, "no bind left bound (none started during the stop)", 5*time.Second, func() bool { return sim.Stats().Binds == 0 })
}

// One of a carrier's connections lost with parts in flight is that
// bind's trouble, not the carrier's: the parts are sent again on the
// carrier's binds, and its failover carrier is not used. (The parts used
// to count as failed submits, so a window of them tripped the carrier's
// circuit breaker while its other bind was fine.)
func TestOneLostConnectionKeepsTheCarrierHealthy(t *testing.T) {
	second := smsc.Delay{Min: time.Second, Max: time.Second}
	r := newRig(t, rigOptions{carriers: []string{"primary", "fallback"}, binds: 2, window: 32,
		responseTimeout: 10 * time.Second, simConfig: smsc.Config{Faults: smsc.Faults{Latency: second}}})
	eventually(t, "both binds of primary bound", 5*time.Second, func() bool {
		s := r.bindStates("primary")
		return len(s) == 2 && allIn(s, "bound")
	})
	// Both connections answer submits first: a connection lost before it
	// answered any counts every part (the carrier may drop every submit).
	const warm, n = 8, 24
	r.waitFinal(r.submitAll(warm), switchboard.StatusDelivered, 10*time.Second)
	primary := r.sims["primary"]
	answered := map[uint64]bool{}
	r.mu.Lock()
	for _, s := range r.seen {
		answered[s.BindID] = true
	}
	r.mu.Unlock()
	if len(answered) != 2 {
		t.Fatalf("%d submits answered on %d connections, want both", warm, len(answered))
	}

	ids := r.submitAll(n)
	eventually(t, "every message at primary", 5*time.Second, func() bool { return primary.Stats().Submits == warm+n })
	perBind := map[uint64]int{}
	r.mu.Lock()
	for _, s := range r.seen[warm:] {
		perBind[s.BindID]++
	}
	r.mu.Unlock()
	var busiest uint64
	for id, c := range perBind {
		if c > perBind[busiest] {
			busiest = id
		}
	}
	if perBind[busiest] < 5 {
		t.Fatalf("submits per connection %v: want one with at least five in flight", perBind)
	}
	if !primary.Drop(busiest) {
		t.Fatal("the connection to drop was gone")
	}
	r.waitFinal(ids, switchboard.StatusDelivered, 20*time.Second)
	if got := r.sims["fallback"].Stats().Submits; got != 0 {
		t.Fatalf("the failover carrier was sent %d submits after one of primary's %d connections was lost with %d parts", got, len(perBind), perBind[busiest])
	}
}
