package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// A child that panics is restarted by the backoff strategy each time, after
// a delay no longer than the capped ceiling for its failure count.
func TestBackoffStrategyRestartsFailedChildren(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	starts := make(chan time.Time, 16)
	child := actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			starts <- time.Now()
		case string:
			panic("boom")
		}
	})
	strategy := &backoffStrategy{
		backoff: switchboard.Backoff{Min: 20 * time.Millisecond, Max: 80 * time.Millisecond},
		calm:    time.Hour, log: zerolog.Nop(),
	}
	var childPID *actor.PID
	ready := make(chan struct{})
	parent := actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			childPID = ctx.Spawn(child)
			close(ready)
		case string:
			ctx.Send(childPID, m)
		}
	}, actor.WithSupervisor(strategy))
	pid := system.Root.Spawn(parent)
	<-ready
	<-starts
	ceilings := []time.Duration{20, 40, 80, 80, 80}
	for i, ceil := range ceilings {
		failedAt := time.Now()
		system.Root.Send(pid, "fail")
		select {
		case at := <-starts:
			// Scheduling adds a little; the jittered delay itself is at most ceil.
			if took := at.Sub(failedAt); took > ceil*time.Millisecond+500*time.Millisecond {
				t.Fatalf("restart %d took %v, ceiling %v", i+1, took, ceil*time.Millisecond)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("child not restarted after failure %d", i+1)
		}
	}
}

func TestCarrierHealthOpensAndProbes(t *testing.T) {
	c := newCarrier(CarrierConfig{Name: "c", Binds: 1})
	now := time.Unix(1000, 0)
	if c.healthy(now) {
		t.Fatal("healthy with no bind up")
	}
	c.bound[0].Store(true)
	c.binds[0].Store(&actor.PID{Id: "b"})
	if !c.healthy(now) {
		t.Fatal("unhealthy with a bind up")
	}
	for range failureThreshold {
		c.failed(smpp.ErrResponseTimeout, now)
	}
	if c.healthy(now) {
		t.Fatal("still healthy after the failure threshold")
	}
	if !c.healthy(now.Add(probeAfter)) {
		t.Fatal("not probed again after the pause")
	}
	c.succeeded()
	if !c.healthy(now) {
		t.Fatal("a success did not close the breaker")
	}
}

// A lost connection that had answered submits counts once towards the
// breaker however many parts it had in flight; losing connection after
// connection opens it, as does one that never answered a submit.
func TestCarrierCountsALostConnectionOnce(t *testing.T) {
	c := newCarrier(CarrierConfig{Name: "c", Binds: 2})
	c.bound[0].Store(true)
	c.binds[0].Store(&actor.PID{Id: "b"})
	now := time.Unix(1000, 0)
	lost := func(conn uint64) error {
		return &smpp.ConnectionLostError{Conn: conn, Answered: true, Cause: errors.New("connection reset by peer")}
	}
	for range 4 * failureThreshold { // a window of parts lost with one connection
		c.failed(lost(7), now)
	}
	if !c.healthy(now) {
		t.Fatal("one lost connection opened the breaker")
	}
	for conn := range uint64(failureThreshold) {
		c.failed(lost(100+conn), now)
	}
	if c.healthy(now) {
		t.Fatal("connection after connection lost did not open the breaker")
	}

	c.succeeded()
	for range failureThreshold { // one window lost with a connection that answered nothing
		c.failed(&smpp.ConnectionLostError{Conn: 9, Cause: errors.New("EOF")}, now)
	}
	if c.healthy(now) {
		t.Fatal("a window lost with a connection that never answered a submit did not open the breaker")
	}
}
