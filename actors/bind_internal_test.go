package actors

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// A submit from another node that cannot be written before its sendBy
// (here: the only window slot is taken) is answered stale, as our side's
// failure, and never reaches the carrier: its sender, which stops waiting
// soon after, sends it again.
func TestStaleRemoteSubmitIsNotSent(t *testing.T) {
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop(),
		Faults: smsc.Faults{Latency: smsc.Delay{Min: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c, err := smpp.NewClient(smpp.Config{Addr: sim.Addr(), SystemID: "gw", Window: 1, Log: zerolog.Nop(),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	waitTrue(t, "bound", c.Bound)

	outcome := func(sendBy time.Time) chan error {
		ch := make(chan error, 1)
		job := &submitJob{msg: smpp.Message{From: "Acme", To: "447700900001", Text: "hi"},
			done: func(_ smpp.Result, err error) { ch <- err }, sendBy: sendBy}
		go submit(ctx, c, job)
		return ch
	}
	first := outcome(time.Now().Add(time.Minute)) // takes the window for 500 ms
	waitTrue(t, "the first submit sent", func() bool { return c.Stats().Submits == 1 })
	stale := outcome(time.Now().Add(100 * time.Millisecond))
	if err := <-stale; !errors.Is(err, errStale) || !errors.Is(err, smpp.ErrClosed) {
		t.Fatalf("a submit past its sendBy: %v, want errStale (ErrClosed)", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first submit: %v", err)
	}
	if err := <-outcome(time.Now().Add(-time.Second)); !errors.Is(err, errStale) {
		t.Fatalf("a submit stale on arrival: %v, want errStale", err)
	}
	if n := sim.Stats().Submits; n != 1 {
		t.Fatalf("the carrier got %d submits, want only the first", n)
	}
}

// waitTrue polls cond for up to 5 s.
func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A part accepted without a message id (smpp.NoID) gets an id of our own,
// whether or not a later part failed, so it is recorded as submitted and
// never sent again; the ids of other parts are kept as they are.
func TestFillMissingIDs(t *testing.T) {
	e, c := &Engine{log: zerolog.Nop()}, &carrier{name: "c"}
	got := fillMissingIDs(e, c, "msg_1", []string{smpp.NoID, "a", ""})
	if want := []string{"none:msg_1/1", "a", ""}; !slices.Equal(got, want) {
		t.Fatalf("fillMissingIDs: %q, want %q", got, want)
	}
	if ids := []string{"a", ""}; !slices.Equal(fillMissingIDs(e, c, "msg_1", ids), ids) {
		t.Fatal("ids without NoID changed")
	}
}

// In transmitter_receiver mode a lost receiver leaves the transmitter
// submitting: the bind shows the receiver's error but stays bound, rather
// than down until the transmitter happens to bind again.
func TestALostReceiverLeavesTheBindBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	defer func() { ln.Close(); conns.Wait() }()
	txBound := make(chan struct{})
	var txOnce sync.Once
	var rxBinds atomic.Int32
	serve := func(nc net.Conn) {
		c := smpp.NewConn(nc, time.Second)
		defer c.Close()
		f, err := c.ReadPDU()
		if err != nil {
			return
		}
		req := f.PDU.(*pdu.BindRequest)
		_ = c.Send(pdu.NewBindResp(*req))
		if req.BindingType == pdu.Transmitter {
			txOnce.Do(func() { close(txBound) })
		} else if rxBinds.Add(1) == 1 {
			<-txBound // lose the first receiver once the transmitter is up
			c.Abort()
			return
		}
		for {
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			if f.PDU.CanResponse() {
				_ = c.Send(smpp.Response(f.PDU, data.ESME_ROK))
			}
		}
	}
	conns.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { serve(nc) })
		}
	})

	cc := CarrierConfig{Name: "c", Binds: 1, SMPP: smpp.Config{Addr: ln.Addr().String(), SystemID: "gw",
		Mode: smpp.TransmitterReceiver, Log: zerolog.Nop(),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}}
	b := &bindActor{cfg: cc.SMPP, state: newCarrier(cc), deps: bindDeps{log: zerolog.Nop(), onBound: func() {}}}
	b.start()
	defer b.stop()
	waitTrue(t, "the receiver bound again", func() bool { return rxBinds.Load() >= 2 })
	st := b.state.info[0].status("c", 0)
	if st.LastError == "" || st.State != BindBound {
		t.Fatalf("after the receiver was lost: state %q, last error %q; want bound, with the error", st.State, st.LastError)
	}
}
