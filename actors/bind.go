package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// bindDeps is what a bind needs from the engine.
type bindDeps struct {
	log       zerolog.Logger
	onReceipt func(switchboard.Receipt, func(error))
	onInbound func(switchboard.InboundPart, func(error))
	onBound   func()  // a bind has come up: keys waiting for a carrier may go
	metrics   Metrics // the submit → response time of every part
}

// submitJob asks a bind to send one message. done is called exactly once,
// from any goroutine, with the result.
type submitJob struct {
	msg  smpp.Message
	done func(smpp.Result, error)
	// sendBy, if set, is when the job goes stale: a submit from another
	// node whose sender stops waiting soon after. Not sent later.
	sendBy time.Time
}

// errStale answers a job that was not sent by its sendBy: our side's
// failure, retried by its sender without charging the carrier.
var errStale = fmt.Errorf("%w: not sent before its sender stopped waiting", smpp.ErrClosed)

// bindQueue is how many jobs a bind holds beyond its window.
const bindQueue = 16384

// errBindBusy says a bind's queue is full: the sender should try another
// bind or wait. Retriable, like every error that is not a permanent SMPP
// status.
var errBindBusy = errors.New("bind queue full")

// bindActor owns one SMPP Client. The client's Run loop and a pump that
// feeds it submits run in goroutines the actor starts and stops with
// itself, so a restart by the carrier supervisor is a clean new bind.
type bindActor struct {
	cfg   smpp.Config
	state *carrier
	index int
	deps  bindDeps

	in     *intake
	cancel context.CancelFunc
	done   chan struct{}
}

// fresh returns a new instance for the actor's producer: protoactor makes
// a new one on every restart.
func (b *bindActor) fresh() *bindActor {
	return &bindActor{cfg: b.cfg, state: b.state, index: b.index, deps: b.deps}
}

func (b *bindActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		b.start()
	case *actor.Stopping, *actor.Restarting:
		b.stop()
	}
}

func (b *bindActor) start() {
	cfg := b.cfg
	cfg.Log = b.deps.log
	// Receipts name the carrier, not the bind: correlation is per carrier,
	// since a receipt may come back on any of its binds.
	cfg.OnReceipt = func(r switchboard.Receipt, ack func(error)) {
		r.Carrier = b.state.name
		b.deps.onReceipt(r, ack)
	}
	cfg.OnInbound = func(p switchboard.InboundPart, ack func(error)) {
		p.Carrier = b.state.name
		b.deps.onInbound(p, ack)
	}
	cfg.OnState = func(up bool) {
		b.state.info[b.index].setBound(up)
		if !b.state.bound[b.index].Swap(up) && up {
			b.deps.onBound()
		}
	}
	// In transmitter_receiver mode the receiver's connection may fail while
	// the transmitter still submits: the error is shown, the state stays.
	cfg.OnDown = func(err error) { b.state.info[b.index].setError(err, b.state.bound[b.index].Load()) }
	cfg.OnResponse = func(d time.Duration) { b.deps.metrics.CarrierSubmit(b.state.name, d) }
	client, err := smpp.NewClient(cfg)
	if err != nil {
		// Configuration is checked before the engine starts; failing here
		// lets the supervisor log it and retry with backoff.
		b.state.info[b.index].setError(err, false)
		panic(err)
	}
	b.state.info[b.index].started(client)
	// The queue is deep enough that key actors (each with up to
	// maxInflightPerKey submits out) rarely find it full: a full queue
	// bounces the job back for a retry, which costs far more than a slot.
	b.in = newIntake()
	b.state.intakes[b.index].Store(b.in)
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		pumpDone := make(chan struct{})
		go func() { defer close(pumpDone); b.pump(ctx, client) }()
		client.Run(ctx)
		<-pumpDone
	}()
}

// pump hands queued jobs to the client; SubmitAsync waits for the window.
func (b *bindActor) pump(ctx context.Context, c *smpp.Client) {
	for {
		select {
		case <-ctx.Done():
			b.failQueued(smpp.ErrClosed)
			return
		case job := <-b.in.queue:
			submit(ctx, c, job)
		}
	}
}

// submit hands a job to the client. One with a sendBy is not sent at all
// once it is stale, and waits for a window slot and the pace only until
// then; once a part is written its response is awaited as any other's.
func submit(ctx context.Context, c *smpp.Client, job *submitJob) {
	if job.sendBy.IsZero() {
		c.SubmitAsync(ctx, &job.msg, job.done)
		return
	}
	if !time.Now().Before(job.sendBy) {
		job.done(smpp.Result{}, errStale)
		return
	}
	ctx, cancel := context.WithDeadline(ctx, job.sendBy)
	c.SubmitAsync(ctx, &job.msg, func(res smpp.Result, err error) {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = errStale
		}
		job.done(res, err)
	})
}

// failQueued hands back jobs that were never sent, as retriable.
func (b *bindActor) failQueued(err error) {
	for {
		select {
		case job := <-b.in.queue:
			job.done(smpp.Result{}, err)
		default:
			return
		}
	}
}

// stop ends the client (draining its window and unbinding) and waits.
func (b *bindActor) stop() {
	if b.cancel == nil {
		return
	}
	b.state.bound[b.index].Store(false)
	// No submit gets in from here on; the pump answers what is queued.
	b.in.close()
	b.state.intakes[b.index].CompareAndSwap(b.in, nil)
	b.cancel()
	<-b.done // the pump has handed back what was queued
	b.cancel = nil
	b.state.info[b.index].stopped()
}
