package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/linxGnu/gosmpp/data"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors/wire"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// A carrier's `binds: N` means N connections fleet-wide: carriers limit
// binds per account. Each bind (carrier, index) is placed on a node by its
// identity, like a key, and the node takes a lease on it before it binds,
// so a bind never runs twice even while nodes disagree about membership.
// Nodes gossip the state of the binds they run, so a key's owner can send
// through a bind on another node when it has none of the carrier's.

const kindBind = "bind"

// bindsState is the gossip key under which a node publishes its binds.
const bindsState = "switchboard.binds"

// bindLease is a bind this node runs, with its lease.
type bindLease struct {
	sup   *actor.PID
	index int
	lease switchboard.Lease
}

// drainingBind is a bind this node stopped that may still be draining its
// window and unbinding (stopped is closed once it has). Its lease is kept,
// and renewed, until then, so the bind's next node never binds while this
// node's connection is still open; it is given up after.
type drainingBind struct {
	bindLease
	stopped <-chan struct{}
}

// reconcileBinds starts the binds this node owns (once it holds their
// lease) and stops the ones it no longer owns or whose lease it lost.
func (f *fleet) reconcileBinds(ctx context.Context) {
	for ci, cc := range f.e.cfg.Carriers {
		for i := range cc.Binds {
			name := fmt.Sprintf("%s/%s/%d", kindBind, cc.Name, i)
			held, running := f.binds[name]
			want := f.mine(kindBind, name[len(kindBind)+1:])
			if d, ok := f.draining[name]; ok {
				f.tendDraining(ctx, name, d, want)
				continue
			}
			switch {
			case want && running:
				f.renewRunning(ctx, name, held)
			case want:
				l, err := f.leases.Acquire(ctx, name, f.holder, f.cfg.LeaseTTL)
				if err != nil {
					continue // another node still holds it; try again next time
				}
				sup := f.e.carriers[ci]
				f.binds[name] = bindLease{sup: sup, index: i, lease: l}
				f.e.system.Root.Send(sup, &startBind{index: i})
			case running:
				f.stopBind(name, held, true)
			}
		}
	}
}

// renewRunning renews the lease of a bind this node runs, and stops the
// bind once the lease is lost or may run out before the next round.
func (f *fleet) renewRunning(ctx context.Context, name string, held bindLease) {
	l, err := f.renewBind(ctx, held.lease)
	switch {
	case err == nil:
		held.lease = l
		f.binds[name] = held
	case f.renewalMayPass(err, held.lease):
		f.e.log.Warn().Err(err).Str("bind", name).Msg("renewing a bind's lease failed; trying again")
	default:
		f.e.log.Warn().Err(err).Str("bind", name).Msg("lost the lease on a bind; stopping it")
		f.stopBind(name, held, false)
	}
}

// stopBind stops a bind this node runs. If it still holds the bind's
// lease (release), the lease is kept while the bind drains and unbinds
// (tendDraining) and given up after.
func (f *fleet) stopBind(name string, b bindLease, release bool) {
	delete(f.binds, name)
	stopped := make(chan struct{})
	f.e.system.Root.Send(b.sup, &stopBind{index: b.index, stopped: stopped})
	if release {
		f.draining[name] = drainingBind{bindLease: b, stopped: stopped}
	}
}

// tendDraining looks after a bind that is stopping: once it has stopped,
// its lease is given up, unless this node owns the bind again (a
// membership flap), when it keeps the lease and starts the bind again;
// meanwhile the lease is renewed. The supervisor starts a bind asked for
// while its old instance stops once that has stopped.
func (f *fleet) tendDraining(ctx context.Context, name string, d drainingBind, want bool) {
	stopped := false
	select {
	case <-d.stopped:
		stopped = true
	default:
	}
	if stopped && !want {
		delete(f.draining, name)
		if err := f.leases.Release(ctx, d.lease); err != nil {
			f.e.log.Warn().Err(err).Str("bind", name).Msg("giving a bind's lease up failed; it runs out by itself")
		}
		return
	}
	l, err := f.renewBind(ctx, d.lease)
	if err != nil {
		if time.Now().Before(d.lease.Expires) {
			return // a failed renewal may be passing (Redis slow): try again next time
		}
		delete(f.draining, name) // run out: nothing left to give up
		f.e.log.Warn().Err(err).Str("bind", name).Msg("lost the lease on a bind while it stopped")
		return
	}
	d.lease = l
	if !want {
		f.draining[name] = d
		return
	}
	delete(f.draining, name)
	f.binds[name] = d.bindLease
	f.e.system.Root.Send(d.sup, &startBind{index: d.index})
}

// renewalMayPass reports whether a running bind whose renewal failed may
// go on until the next round tries again: the renewal went unanswered
// (Redis slow or unreachable for a moment), not refused, and the lease
// outlasts the next round by half a round, time for the bind to unbind
// should that renewal fail too. Only then: another node may bind once
// the lease has run out.
func (f *fleet) renewalMayPass(err error, held switchboard.Lease) bool {
	round := f.cfg.LeaseTTL / 3
	return switchboard.ErrorCode(err) != switchboard.ECONFLICT && time.Until(held.Expires) > round+round/2
}

// renewBind renews a bind's lease; a renewal that came after the lease
// ran out by this node's clock counts as lost.
func (f *fleet) renewBind(ctx context.Context, held switchboard.Lease) (switchboard.Lease, error) {
	l, err := f.leases.Renew(ctx, held, f.cfg.LeaseTTL)
	if err == nil && time.Now().After(l.Expires) {
		err = errors.New("the renewal came after the lease ran out")
	}
	return l, err
}

// localBinds are the binds this node runs, as it gossips them.
func (f *fleet) localBinds() *wire.Binds {
	msg := &wire.Binds{}
	for _, cc := range f.e.cfg.Carriers {
		c := f.e.router.carrier(cc.Name)
		for i := range c.binds {
			if pid := c.binds[i].Load(); pid != nil {
				msg.Binds = append(msg.Binds, &wire.Bind{Carrier: c.name, Index: int32(i), Bound: c.bound[i].Load(),
					Address: pid.Address, Id: pid.Id})
			}
		}
	}
	return msg
}

// publishBinds gossips the state of this node's binds.
func (f *fleet) publishBinds() { f.c.Gossip.SetState(bindsState, f.localBinds()) }

// remoteBinds are the binds the other members gossip.
func (f *fleet) remoteBinds() []*wire.Bind {
	states, err := f.c.Gossip.GetState(bindsState)
	if err != nil {
		return nil
	}
	live := map[string]bool{}
	f.mu.Lock()
	for _, m := range f.members {
		live[m.Id] = true
	}
	f.mu.Unlock()
	var out []*wire.Bind
	for member, kv := range states {
		// A member that left may still have state in the gossip.
		if member == f.holder || !live[member] || kv.GetValue() == nil {
			continue
		}
		var b wire.Binds
		if kv.GetValue().UnmarshalTo(&b) != nil {
			continue
		}
		out = append(out, b.Binds...)
	}
	return out
}

// bindStates are every bind of the fleet this node knows of.
func (f *fleet) bindStates() []*wire.Bind {
	return append(f.localBinds().Binds, f.remoteBinds()...)
}

// refreshBinds reads the binds the other nodes gossip and gives each
// carrier the list of its bound binds elsewhere. A carrier that gains a
// bound bind wakes the keys waiting for one.
func (f *fleet) refreshBinds() {
	remote := map[string][]bindRef{}
	for _, x := range f.remoteBinds() {
		if x.Bound {
			remote[x.Carrier] = append(remote[x.Carrier], bindRef{remote: x.Address, index: int(x.Index)})
		}
	}
	woke := false
	for name, c := range f.e.router.load().carriers {
		pids := remote[name]
		old := c.remote.Swap(&pids)
		if len(pids) > 0 && (old == nil || len(*old) == 0) {
			woke = true
		}
	}
	if woke {
		f.e.carrierUp()
	}
}

// remoteSubmit sends a submit to a bind on another node and hands its
// answer to job.done, as a local bind would. An answer that does not come
// (the node left, or timed out) is our side's failure, not the carrier's:
// the submit is tried again, and the carrier's health and the message's
// attempts are not charged for it. A node that left the membership may
// still reach the carrier: its answer is waited for until the submit
// would have gone stale there (SendWithinMs), so that the retry does not
// send a copy it may still be sending.
func (f *fleet) remoteSubmit(b bindRef, c *carrier, job *submitJob, messageID string) {
	m := job.msg
	within, now := c.remoteSendWithin(), time.Now()
	req := &wire.CarrierSubmit{Carrier: c.name, Bind: int32(b.index), MessageId: messageID, From: m.From, To: m.To,
		Text: m.Text, ValidityMs: m.Validity.Milliseconds(), Ref: uint32(m.Ref), Accepted: m.Accepted,
		SendWithinMs: within.Milliseconds(), SentAtUnixMs: now.UnixMilli()}
	// A second for the nodes' clocks, which the other node's bound from
	// sent_at_unix_ms reads by its own.
	hold := now.Add(within + time.Second)
	fut := f.e.system.Root.RequestFuture(nodePID(b.remote), req, c.remoteTimeout())
	f.e.background(func(stop context.Context) {
		res, err := f.awaitHolding(stop, fut, b.remote, hold)
		reply, ok := res.(*wire.CarrierSubmitReply)
		if err != nil || !ok {
			job.done(smpp.Result{}, fmt.Errorf("%w: bind %s/%d on %s did not answer: %v", smpp.ErrClosed, c.name, b.index, b.remote, err))
			return
		}
		job.done(smpp.Result{CarrierIDs: reply.CarrierIds}, failureFromWire(reply.Failure))
	})
}

// carrierSubmit hands a submit another node sent to one of this node's
// binds, whose outcome goes back to the sender.
func (e *Engine) carrierSubmit(m *wire.CarrierSubmit, sender *actor.PID) {
	root := e.system.Root
	job := &submitJob{
		msg: smpp.Message{From: m.From, To: m.To, Text: m.Text, Validity: time.Duration(m.ValidityMs) * time.Millisecond,
			Ref: byte(m.Ref), UseRef: true, Accepted: m.Accepted},
		done: func(res smpp.Result, err error) {
			root.Send(sender, &wire.CarrierSubmitReply{CarrierIds: res.CarrierIDs, Failure: failureToWire(err)})
		},
	}
	now := time.Now()
	if job.sendBy = sendBy(m, now); !job.sendBy.IsZero() && job.sendBy.Before(now) {
		e.fleet.warnStale(m, now)
	}
	c := e.router.carrier(m.Carrier)
	if c == nil || int(m.Bind) < 0 || int(m.Bind) >= len(c.intakes) {
		job.done(smpp.Result{}, smpp.ErrNotBound)
		return
	}
	in := c.intakes[m.Bind].Load()
	if in == nil {
		job.done(smpp.Result{}, smpp.ErrNotBound)
		return
	}
	in.submit(job)
}

// sendBy is when a submit from another node goes stale (zero: never):
// send_within_ms after it arrived, or after it was sent, if sooner (it
// arrives late from a node that was paused, and its sender has given up).
func sendBy(m *wire.CarrierSubmit, arrived time.Time) time.Time {
	if m.SendWithinMs <= 0 {
		return time.Time{}
	}
	within := time.Duration(m.SendWithinMs) * time.Millisecond
	by := arrived.Add(within)
	if sent := time.UnixMilli(m.SentAtUnixMs).Add(within); m.SentAtUnixMs > 0 && sent.Before(by) {
		by = sent
	}
	return by
}

// warnStale says, at most every 10 s, that submits from other nodes
// arrive stale: one or two after a pause of this node are expected, a
// steady stream means the nodes' clocks differ by more than the window.
func (f *fleet) warnStale(m *wire.CarrierSubmit, now time.Time) {
	last := f.staleWarned.Load()
	if now.UnixNano()-last < int64(10*time.Second) || !f.staleWarned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	f.e.log.Warn().Dur("age", now.Sub(time.UnixMilli(m.SentAtUnixMs))).Str("carrier", m.Carrier).
		Msg("a submit from another node arrived stale by its sender's clock: this node was paused, or the nodes' clocks differ (run NTP); answered stale, the sender sends it again")
}

func failureToWire(err error) *wire.SubmitFailure {
	if err == nil {
		return nil
	}
	w := &wire.SubmitFailure{Kind: wire.SubmitFailure_OTHER, Retriable: smpp.Retriable(err), Message: err.Error()}
	var se *smpp.SubmitError
	var ae *switchboard.Error
	var lost *smpp.ConnectionLostError
	switch {
	case errors.As(err, &lost):
		w.Kind, w.Message = wire.SubmitFailure_CONNECTION_LOST, lost.Cause.Error()
		if lost.Answered {
			w.Connection = lost.Conn
		}
	case errors.As(err, &se):
		w.Kind, w.Status, w.RetryAfterMs = wire.SubmitFailure_STATUS, uint32(se.Status), se.RetryAfter.Milliseconds()
	case errors.As(err, &ae):
		w.Kind, w.Retriable, w.Message = wire.SubmitFailure_INVALID, false, ae.Code+": "+ae.Message
	case errors.Is(err, smpp.ErrNotBound):
		w.Kind = wire.SubmitFailure_NOT_BOUND
	case errors.Is(err, smpp.ErrClosed), errors.Is(err, context.Canceled):
		w.Kind = wire.SubmitFailure_CLOSED
	case errors.Is(err, errBindBusy):
		w.Kind = wire.SubmitFailure_BUSY
	case errors.Is(err, smpp.ErrResponseTimeout):
		w.Kind = wire.SubmitFailure_RESPONSE_TIMEOUT
	case errors.Is(err, smpp.ErrConnectionLost):
		w.Kind = wire.SubmitFailure_CONNECTION_LOST
	}
	return w
}

func smppStatus(s uint32) data.CommandStatusType { return data.CommandStatusType(s) }

func failureFromWire(w *wire.SubmitFailure) error {
	if w == nil {
		return nil
	}
	switch w.Kind {
	case wire.SubmitFailure_STATUS:
		return &smpp.SubmitError{Status: smppStatus(w.Status), Retriable: w.Retriable, RetryAfter: time.Duration(w.RetryAfterMs) * time.Millisecond}
	case wire.SubmitFailure_INVALID:
		return switchboard.Errorf(switchboard.EINVALID, "%s", w.Message)
	case wire.SubmitFailure_NOT_BOUND:
		return smpp.ErrNotBound
	case wire.SubmitFailure_CLOSED:
		return smpp.ErrClosed
	case wire.SubmitFailure_BUSY:
		return errBindBusy
	case wire.SubmitFailure_RESPONSE_TIMEOUT:
		return smpp.ErrResponseTimeout
	case wire.SubmitFailure_CONNECTION_LOST:
		if w.Connection == 0 {
			return smpp.ErrConnectionLost // each part counts
		}
		return &smpp.ConnectionLostError{Conn: w.Connection, Answered: true, Cause: errors.New(w.Message)}
	}
	return fmt.Errorf("bind on another node: %s", w.Message)
}
