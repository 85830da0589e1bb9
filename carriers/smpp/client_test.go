package smpp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// These tests run the client against the SMSC simulator over real TCP on
// 127.0.0.1.

func startSim(t *testing.T, cfg smsc.Config) *smsc.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Log = zerolog.Nop()
	s, err := smsc.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fastConfig(addr string) smpp.Config {
	return smpp.Config{
		Name: "sim", Addr: addr, SystemID: "sb", Password: "pw",
		Window: 16, ResponseTimeout: 2 * time.Second,
		EnquireLinkInterval: time.Second, EnquireLinkTimeout: time.Second,
		BindTimeout: 2 * time.Second, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		ThrottlePause: 20 * time.Millisecond, ThrottleMax: 100 * time.Millisecond,
		Log: zerolog.Nop(),
	}
}

// start makes and runs a client and waits until it is bound; it stops
// when the test ends.
func start(t *testing.T, cfg smpp.Config) *smpp.Client {
	t.Helper()
	c := startUnbound(t, cfg)
	eventually(t, "bound", c.Bound)
	return c
}

// startUnbound makes and runs a client without waiting for its bind.
func startUnbound(t *testing.T, cfg smpp.Config) *smpp.Client {
	t.Helper()
	c, err := smpp.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// receipts collects receipts by carrier id.
type receipts struct {
	mu   sync.Mutex
	byID map[string]switchboard.Receipt
	n    int
}

func newReceipts() *receipts { return &receipts{byID: map[string]switchboard.Receipt{}} }

func (r *receipts) handle(rc switchboard.Receipt, ack func(error)) {
	r.mu.Lock()
	r.byID[rc.CarrierMessageID] = rc
	r.n++
	r.mu.Unlock()
	ack(nil)
}

func (r *receipts) get(id string) (switchboard.Receipt, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc, ok := r.byID[id]
	return rc, ok
}

func (r *receipts) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func msg(text string) *smpp.Message {
	return &smpp.Message{From: "Acme", To: "+447700900123", Text: text, Validity: time.Hour}
}

// Receipts of a carrier that writes ids in hex in its responses and in
// decimal in its receipts' text find their messages, with the TLVs (whose
// id is the response's) and without them (the text alone).
func TestSubmitAndReceiptWithHexRespDecimalReceipt(t *testing.T) {
	for _, textOnly := range []bool{false, true} {
		sim := startSim(t, smsc.Config{IDFormat: receipt.IDHexResp, Outcomes: smsc.Outcomes{Rejected: 1}, TextOnlyReceipts: textOnly})
		rs := newReceipts()
		cfg := fastConfig(sim.Addr())
		cfg.IDFormat = receipt.IDHexResp
		cfg.OnReceipt = rs.handle
		c := start(t, cfg)

		res, err := c.Submit(context.Background(), msg("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.CarrierIDs) != 1 || res.CarrierIDs[0] == "" {
			t.Fatalf("result %+v, want one carrier id", res)
		}
		id := res.CarrierIDs[0]
		eventually(t, "the receipt", func() bool { _, ok := rs.get(id); return ok })
		rc, _ := rs.get(id)
		if rc.Status != switchboard.StatusRejected || rc.State != "REJECTD" || rc.Carrier != "sim" {
			t.Fatalf("text only %v: receipt %+v, want rejected from carrier sim", textOnly, rc)
		}
	}
}

func TestLongMessageGetsOneIDAndReceiptPerPart(t *testing.T) {
	sim := startSim(t, smsc.Config{})
	rs := newReceipts()
	cfg := fastConfig(sim.Addr())
	cfg.OnReceipt = rs.handle
	c := start(t, cfg)

	res, err := c.Submit(context.Background(), msg(strings.Repeat("ш", 150))) // UCS-2: 67+67+16
	if err != nil {
		t.Fatal(err)
	}
	if len(res.CarrierIDs) != 3 {
		t.Fatalf("%d ids, want 3", len(res.CarrierIDs))
	}
	for _, id := range res.CarrierIDs {
		eventually(t, "receipt "+id, func() bool { _, ok := rs.get(id); return ok })
	}
}

// The simulator drops the connection mid-window: every message must be
// answered exactly once, either accepted or handed back as retriable.
func TestDropMidWindowAccountsForEveryMessage(t *testing.T) {
	sim := startSim(t, smsc.Config{Faults: smsc.Faults{DropAfter: 37, Latency: smsc.Delay{Min: time.Millisecond, Max: 3 * time.Millisecond}}})
	cfg := fastConfig(sim.Addr())
	cfg.Window = 32
	c := start(t, cfg)

	const n = 300
	var (
		calls     [n]atomic.Int32
		accepted  atomic.Int32
		retriable atomic.Int32
		other     atomic.Int32
		wg        sync.WaitGroup
		mu        sync.Mutex
		conns     = map[uint64]int{} // parts lost per connection
		answered  atomic.Int32       // of them, lost with a connection that had answered
	)
	wg.Add(n)
	for i := 0; i < n; i++ {
		c.SubmitAsync(context.Background(), msg("drop test"), func(r smpp.Result, err error) {
			calls[i].Add(1)
			var lost *smpp.ConnectionLostError
			if errors.As(err, &lost) {
				mu.Lock()
				conns[lost.Conn]++
				mu.Unlock()
				if lost.Answered {
					answered.Add(1)
				}
				if errors.Is(err, smpp.ErrClosed) {
					t.Errorf("a lost part's error %v is taken for the client's own close", err)
				}
			}
			switch {
			case err == nil:
				accepted.Add(1)
			case smpp.Retriable(err):
				retriable.Add(1)
			default:
				other.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	for i := range calls {
		if got := calls[i].Load(); got != 1 {
			t.Fatalf("message %d answered %d times", i, got)
		}
	}
	if other.Load() != 0 {
		t.Fatalf("%d messages failed permanently; a dropped connection must be retriable", other.Load())
	}
	if accepted.Load()+retriable.Load() != n || retriable.Load() == 0 {
		t.Fatalf("accepted %d + retriable %d, want %d with some retriable", accepted.Load(), retriable.Load(), n)
	}
	if st := c.Stats(); st.Lost == 0 {
		t.Fatalf("stats %+v: no part counted lost with its connection", st)
	}
	// Parts lost together name the connection they were lost with, so a
	// caller can count each loss once.
	if drops := sim.Stats().Drops; len(conns) == 0 || int64(len(conns)) > drops || conns[0] != 0 {
		t.Fatalf("parts lost per connection %v over %d dropped connections", conns, drops)
	}
	if answered.Load() == 0 {
		t.Fatal("no lost part said its connection had answered submits before (the simulator answers 36 before each drop)")
	}
	// The simulator accepted at least what we were told was accepted; the
	// difference is the at-least-once window (answered but resp lost).
	if got := sim.Stats().Submits; got < int64(accepted.Load()) {
		t.Fatalf("simulator accepted %d, client saw %d accepted", got, accepted.Load())
	}
}

// ESME_RTHROTTLED makes the bind pause before its next submit.
func TestThrottlingSlowsTheClient(t *testing.T) {
	sim := startSim(t, smsc.Config{Faults: smsc.Faults{ThrottleEvery: 2}})
	cfg := fastConfig(sim.Addr())
	cfg.ThrottlePause, cfg.ThrottleMax = 30*time.Millisecond, 30*time.Millisecond
	c := start(t, cfg)

	began := time.Now()
	throttles := 0
	for sent := 0; sent < 10; {
		_, err := c.Submit(context.Background(), msg("x"))
		var se *smpp.SubmitError
		switch {
		case err == nil:
			sent++
		case errors.As(err, &se) && se.Retriable && se.RetryAfter > 0:
			throttles++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	// Each throttle holds the next submit back by the pause: a lower bound
	// on the elapsed time, which no slow machine can break.
	if min := time.Duration(throttles) * cfg.ThrottlePause; time.Since(began) < min {
		t.Fatalf("%d throttles took %v, want at least %v of pauses", throttles, time.Since(began), min)
	}
	if throttles < 5 || c.Stats().Throttled != int64(throttles) {
		t.Fatalf("throttles %d, stats %+v", throttles, c.Stats())
	}
}

// A simulator that stops answering: submits time out as retriable, the
// unanswered enquire_link ends the connection, and the client reconnects.
func TestHungSimulatorTimesOutAndReconnects(t *testing.T) {
	sim := startSim(t, smsc.Config{})
	cfg := fastConfig(sim.Addr())
	cfg.ResponseTimeout = 200 * time.Millisecond
	cfg.EnquireLinkInterval, cfg.EnquireLinkTimeout = 100*time.Millisecond, 200*time.Millisecond
	c := start(t, cfg)

	sim.SetFaults(smsc.Faults{Hang: true})
	_, err := c.Submit(context.Background(), msg("into the void"))
	if !errors.Is(err, smpp.ErrResponseTimeout) || !smpp.Retriable(err) {
		t.Fatalf("err = %v, want a retriable response timeout", err)
	}
	eventually(t, "a reconnect after the dead peer", func() bool { return c.Stats().Reconnects >= 1 })

	sim.SetFaults(smsc.Faults{})
	eventually(t, "bound again", c.Bound)
	eventually(t, "a submit after recovery", func() bool {
		_, err := c.Submit(context.Background(), msg("back"))
		return err == nil
	})
}

func TestTransmitterReceiverPair(t *testing.T) {
	sim := startSim(t, smsc.Config{})
	rs := newReceipts()
	cfg := fastConfig(sim.Addr())
	cfg.Mode = smpp.TransmitterReceiver
	cfg.OnReceipt = rs.handle
	c := start(t, cfg)
	eventually(t, "both binds", func() bool { return sim.Stats().Binds == 2 })

	res, err := c.Submit(context.Background(), msg("tx rx"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the receipt on the receiver", func() bool { _, ok := rs.get(res.CarrierIDs[0]); return ok })
}

func TestRefusedBindsRetryUntilAllowed(t *testing.T) {
	sim := startSim(t, smsc.Config{Faults: smsc.Faults{RefuseBinds: true}})
	c := startUnbound(t, fastConfig(sim.Addr()))

	eventually(t, "refused binds", func() bool { return sim.Stats().BindsRefused >= 2 })
	if _, err := c.Submit(context.Background(), msg("x")); !errors.Is(err, smpp.ErrNotBound) {
		t.Fatalf("submit while unbound: %v, want ErrNotBound", err)
	}
	sim.SetFaults(smsc.Faults{})
	eventually(t, "bound", c.Bound)
}

func TestInboundMessagesCarryConcatInfo(t *testing.T) {
	sim := startSim(t, smsc.Config{})
	var mu sync.Mutex
	var parts []switchboard.InboundPart
	cfg := fastConfig(sim.Addr())
	cfg.OnInbound = func(p switchboard.InboundPart, ack func(error)) {
		mu.Lock()
		parts = append(parts, p)
		mu.Unlock()
		ack(nil)
	}
	start(t, cfg)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(parts) }

	long := strings.Repeat("b", 200) // 2 GSM-7 parts
	cases := []struct {
		name string
		mo   smsc.MO
		n    int
	}{
		{"single", smsc.MO{From: "+447700900999", To: "12345", Text: "hi"}, 1},
		{"udh 8-bit", smsc.MO{From: "+447700900999", To: "12345", Text: long}, 2},
		{"udh 16-bit", smsc.MO{From: "+447700900999", To: "12345", Text: long, Wide: true}, 2},
		{"sar", smsc.MO{From: "+447700900999", To: "12345", Text: long, SAR: true}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			parts = nil
			mu.Unlock()
			if err := sim.InjectMO("sb", tc.mo); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the parts", func() bool { return count() == tc.n })
			mu.Lock()
			defer mu.Unlock()
			seen := map[uint8]bool{}
			for _, p := range parts {
				if p.From != "+447700900999" || p.To != "12345" || p.DataCoding != 0 {
					t.Fatalf("part %+v", p)
				}
				if tc.n == 1 {
					if p.Concat != nil || string(p.Payload) != "hi" {
						t.Fatalf("single part %+v", p)
					}
					continue
				}
				if p.Concat == nil || p.Concat.Total != 2 {
					t.Fatalf("part without concat info: %+v", p)
				}
				seen[p.Concat.Seq] = true
			}
			if tc.n > 1 && (!seen[1] || !seen[2]) {
				t.Fatalf("parts seen %v, want 1 and 2", seen)
			}
		})
	}
}

// Receipts the handler cannot store are refused with ESME_RX_T_APPN, and
// the simulator sends them again.
func TestRefusedReceiptIsDeliveredAgain(t *testing.T) {
	sim := startSim(t, smsc.Config{RetryDelay: 10 * time.Millisecond})
	var refusals atomic.Int32
	rs := newReceipts()
	cfg := fastConfig(sim.Addr())
	cfg.OnReceipt = func(r switchboard.Receipt, ack func(error)) {
		if refusals.Add(1) <= 2 {
			ack(errors.New("store unavailable"))
			return
		}
		rs.handle(r, ack)
	}
	c := start(t, cfg)
	res, err := c.Submit(context.Background(), msg("retry my receipt"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the receipt after two refusals", func() bool { _, ok := rs.get(res.CarrierIDs[0]); return ok })
}

// Cancelling Run waits for submits in flight, then unbinds.
func TestStopDrainsThenUnbinds(t *testing.T) {
	sim := startSim(t, smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 50 * time.Millisecond}}})
	c, err := smpp.NewClient(fastConfig(sim.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	eventually(t, "bound", c.Bound)

	const n = 10
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		c.SubmitAsync(context.Background(), msg("drain"), func(_ smpp.Result, err error) { results <- err })
	}
	cancel()
	<-done
	for i := 0; i < n; i++ {
		if err := <-results; err != nil {
			t.Fatalf("submit in flight at stop: %v, want answered before unbind", err)
		}
	}
	eventually(t, "the simulator to see the unbind", func() bool { return sim.Stats().Binds == 0 })
}

// A submit's callback that is slow to return (its store is slow) holds
// the reader up, and the answers behind it stay unread: the wait does not
// count against their deadlines, so a healthy peer is not declared dead
// and a submit it accepted is not failed (and sent again) as timed out.
func TestSlowSubmitCallbackIsNotAPeerTimeout(t *testing.T) {
	sim := startSim(t, smsc.Config{})
	cfg := fastConfig(sim.Addr())
	// Deadlines of 200 ms; waits credited up to 800 ms (four times it).
	cfg.EnquireLinkInterval, cfg.EnquireLinkTimeout, cfg.ResponseTimeout = 50*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	c := start(t, cfg)

	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the client stops, should the test fail
	first := make(chan error, 1)
	c.SubmitAsync(context.Background(), msg("first"), func(_ smpp.Result, err error) {
		<-hold // the store is slow: the reader waits here
		first <- err
	})
	eventually(t, "the first submit answered", func() bool { return sim.Stats().Submits == 1 })
	second := make(chan error, 1)
	c.SubmitAsync(context.Background(), msg("second"), func(_ smpp.Result, err error) { second <- err })
	// Past every deadline: the second submit's, and an enquire_link's
	// sent after it (the simulator counts them as it reads them).
	eventually(t, "the second submit at the simulator", func() bool { return sim.Stats().Submits == 2 })
	from := sim.Stats().EnquireLinks
	eventually(t, "enquire_links past the response timeout", func() bool { return sim.Stats().EnquireLinks >= from+8 })
	release()
	if err := <-first; err != nil {
		t.Fatalf("first submit: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("a submit to a healthy peer while the reader waited: %v", err)
	}
	if st := c.Stats(); st.Reconnects != 0 || st.Timeouts != 0 {
		t.Fatalf("stats %+v: want no reconnect and no timeout", st)
	}
}
