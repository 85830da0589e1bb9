package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// In a cluster a key has one owner, fenced in storage: the node whose key
// actor holds the lease on "key/<id>". The actor takes the lease and raises
// the key's fence to its token before it counts the key's messages
// (takeKey), renews it a few times per lease period, and writes with its
// token, so a node that lost the lease (paused, cut off) cannot commit for
// the key once the new owner has raised the fence. An actor that cannot
// renew stops taking messages at once and stops; the next request for the
// key starts one that tries to take the lease again.

type (
	// handOver says the key now belongs to another node: the actor stops
	// taking messages, lets what it has in flight finish, gives the lease
	// up and stops, so the new owner can take the key.
	handOver struct{}
	// leaseDue is the timer for renewing the lease.
	leaseDue struct{ inst uint64 }
	// leaseRenewed brings a renewal's outcome.
	leaseRenewed struct {
		inst  uint64
		lease switchboard.Lease
		err   error
	}
)

// takeKey takes the lease on a key and raises its fence to the lease's
// token; on a single node it does nothing.
func (e *Engine) takeKey(ctx context.Context, id string) (switchboard.Lease, error) {
	if e.fleet == nil {
		return switchboard.Lease{}, nil
	}
	l, err := e.fleet.leases.Acquire(ctx, "key/"+id, e.fleet.holder, e.fleet.cfg.LeaseTTL)
	if err != nil {
		return l, err
	}
	fence, err := e.store.RaiseFence(ctx, id, l.Token)
	if err != nil {
		return l, err
	}
	if fence > l.Token {
		return l, switchboard.Errorf(switchboard.EUNAVAILABLE, "key %s is fenced by a newer owner", id)
	}
	return l, nil
}

// holdLease keeps the lease the actor started with and schedules its
// renewal.
func (k *keyActor) holdLease(ctx actor.Context, l switchboard.Lease) {
	k.lease = l
	if l.Token == 0 {
		return
	}
	self, root, d := ctx.Self(), k.e.system.Root, &leaseDue{inst: k.inst}
	time.AfterFunc(k.e.fleet.cfg.LeaseTTL/3, func() { root.Send(self, d) })
}

func (k *keyActor) renewLease(ctx actor.Context) {
	self, root, inst, l, ttl := ctx.Self(), k.e.system.Root, k.inst, k.lease, k.e.fleet.cfg.LeaseTTL
	k.e.background(func(stop context.Context) {
		r := &leaseRenewed{inst: inst}
		r.lease, r.err = k.e.fleet.leases.Renew(stop, l, ttl)
		root.Send(self, r)
	})
}

func (k *keyActor) leaseRenewed(ctx actor.Context, m *leaseRenewed) {
	if m.inst != k.inst || k.lease.Token == 0 {
		return
	}
	if m.err != nil {
		k.leaseLost(ctx, m.err)
		return
	}
	k.holdLease(ctx, m.lease)
}

// leaseValid reports whether the actor may write for its key: on a single
// node always; in a cluster while its lease has not run out by its own
// clock (a node that was paused finds it out here, before it writes).
func (k *keyActor) leaseValid(now time.Time) bool {
	return k.lease.Token == 0 || now.Before(k.lease.Expires)
}

// leaseLost stops the actor: another node may own the key now.
func (k *keyActor) leaseLost(ctx actor.Context, why error) {
	if !k.ready {
		return
	}
	k.e.log.Warn().Err(why).Str("key", k.key.ID).Msg("lost the lease on the key; its actor stops here")
	k.ready = false
	k.loadErr = keyMoved(k.key.ID)
	k.work.lost.Store(true)
	ctx.Stop(ctx.Self())
}

func keyMoved(id string) error {
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "Key %s is moving to another node; try again.", id)
}

// handOver starts handing the key to its new owner (see the message).
func (k *keyActor) handOver(ctx actor.Context) {
	if k.handingOver {
		return
	}
	k.handingOver, k.draining = true, true
	k.ready, k.loadErr = false, keyMoved(k.key.ID)
	k.answerStash(k.loadErr)
	k.maybeHandedOver(ctx)
}

// handOverPoll is how often a key being handed over checks that its last
// records have landed.
const handOverPoll = 20 * time.Millisecond

// maybeHandedOver ends the hand-over once nothing the actor started is
// outstanding: its lease is given up, and it stops.
func (k *keyActor) maybeHandedOver(ctx actor.Context) {
	if !k.handingOver || k.inflight > 0 || len(k.pendingCommits) > 0 {
		return
	}
	if !k.work.done() {
		k.setWake(ctx, k.e.now().Add(handOverPoll))
		return
	}
	if l := k.lease; l.Token != 0 {
		k.lease = switchboard.Lease{}
		leases, log := k.e.fleet.leases, k.e.log
		k.e.background(func(stop context.Context) {
			if err := leases.Release(stop, l); err != nil {
				log.Warn().Err(err).Str("lease", l.Name).Msg("giving a lease up failed; it runs out by itself")
			}
		})
	}
	k.e.log.Info().Str("key", k.key.ID).Msg("key handed over to its new owner")
	ctx.Stop(ctx.Self())
}
