package actors

import (
	"context"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors/wire"
)

// Each node runs one actor under a well-known name for what the other nodes
// send it that belongs to no key grain: hints that callbacks were queued
// for an endpoint this node delivers, and parts of inbound messages for a
// number whose key this node owns.

const (
	nodeActorName = "switchboard-node"
	kindEndpoint  = "endpoint"
)

type nodeActor struct{ e *Engine }

func (a *nodeActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *wire.CallbackHint:
		a.e.webhooks.hintLocal(m.Endpoint)
	case *wire.SubmitBatch:
		sender, e := ctx.Sender(), a.e
		e.background(func(stop context.Context) { e.system.Root.Send(sender, e.submitForwarded(stop, m)) })
	case *wire.CarrierSubmit:
		a.e.carrierSubmit(m, ctx.Sender())
	case *wire.Receipt:
		sender, root := ctx.Sender(), a.e.system.Root
		r, key, id, part := receiptFromWire(m)
		a.e.recordReceipt(r, a.e.receiptUpdate(r, key, id, part), func(err error) { root.Send(sender, ackToWire(err)) })
	case *wire.InboundPart:
		sender, root := ctx.Sender(), a.e.system.Root
		a.e.inboundLocal(inboundFromWire(m), func(err error) { root.Send(sender, ackToWire(err)) })
	}
}

// ackToWire answers a request that needs no more than done or not.
func ackToWire(err error) any {
	if err != nil {
		return errorToWire(err)
	}
	return &wire.Ack{}
}

// nodePID is the node actor of the node at address.
func nodePID(address string) *actor.PID { return actor.NewPID(address, nodeActorName) }

// hinter sends endpoint hints to the nodes that deliver them, at most one
// per endpoint per hintSpacing, with one more at the end of a burst so the
// last write is always followed by a hint.
type hinter struct {
	f       *fleet
	mu      sync.Mutex
	last    map[string]time.Time
	pending map[string]bool
	sweepAt int // size of last at which hints older than hintSpacing go
}

const hintSpacing = 20 * time.Millisecond

func newHinter(f *fleet) *hinter {
	return &hinter{f: f, last: map[string]time.Time{}, pending: map[string]bool{}, sweepAt: minHintSweep}
}

// minHintSweep is the least size of hinter.last swept: endpoints given
// per message would otherwise be remembered for the process's life.
const minHintSweep = 1024

// noted records a hint sent to endpoint at now; h.mu is held. Only hints
// younger than hintSpacing matter, so once the map has doubled since it
// was last swept, the older ones go (amortised O(1) per hint).
func (h *hinter) noted(endpoint string, now time.Time) {
	h.last[endpoint] = now
	if len(h.last) < h.sweepAt {
		return
	}
	for ep, at := range h.last {
		if now.Sub(at) >= hintSpacing && !h.pending[ep] {
			delete(h.last, ep)
		}
	}
	h.sweepAt = max(minHintSweep, 2*len(h.last))
}

func (h *hinter) hint(owner, endpoint string) {
	h.mu.Lock()
	now := time.Now()
	if since := now.Sub(h.last[endpoint]); since < hintSpacing {
		if !h.pending[endpoint] {
			h.pending[endpoint] = true
			time.AfterFunc(hintSpacing-since, func() {
				h.mu.Lock()
				delete(h.pending, endpoint)
				h.noted(endpoint, time.Now())
				h.mu.Unlock()
				h.send(endpoint)
			})
		}
		h.mu.Unlock()
		return
	}
	h.noted(endpoint, now)
	h.mu.Unlock()
	h.f.e.system.Root.Send(nodePID(owner), &wire.CallbackHint{Endpoint: endpoint})
}

// send hints an endpoint's owner as placement says now.
func (h *hinter) send(endpoint string) {
	owner := h.f.owner(kindEndpoint, endpoint)
	if owner == h.f.address {
		h.f.e.webhooks.hintLocal(endpoint)
		return
	}
	if owner != "" {
		h.f.e.system.Root.Send(nodePID(owner), &wire.CallbackHint{Endpoint: endpoint})
	}
}

// reconcileEndpoints starts delivery for the endpoints with queued
// callbacks that this node owns, and stops the endpoint actors it runs for
// endpoints another node owns now. (While nodes disagree, an endpoint may
// be delivered by two for a moment: callbacks are at least once, and
// carry an event ID to drop repeats by.)
func (f *fleet) reconcileEndpoints(ctx context.Context) {
	d := f.e.webhooks
	eps, err := f.e.store.CallbackEndpoints(ctx)
	if err != nil {
		f.e.log.Error().Err(err).Msg("listing endpoints with queued callbacks failed; will retry")
		return
	}
	for _, ep := range eps {
		if f.mine(kindEndpoint, ep) {
			d.hintLocal(ep)
		}
	}
	d.stopEndpoints(func(ep string) bool { return !f.mine(kindEndpoint, ep) })
}

// inboundToOwner sends an inbound part to the node that owns its number's
// key; ack answers the SMSC once that node has stored it.
func (f *fleet) inboundToOwner(owner string, p switchboard.InboundPart, ack func(error)) {
	fut := f.e.system.Root.RequestFuture(nodePID(owner), inboundToWire(p), f.e.cfg.RequestTimeout)
	f.e.background(func(context.Context) {
		res, err := f.await(fut, owner)
		switch r := res.(type) {
		case *wire.Ack:
			ack(nil)
		case *wire.Error:
			ack(errorFromWire(r))
		default:
			ack(switchboard.Errorf(switchboard.EUNAVAILABLE, "the node that owns the number did not answer: %v", err))
		}
	})
}

func inboundToWire(p switchboard.InboundPart) *wire.InboundPart {
	w := &wire.InboundPart{Carrier: p.Carrier, From: p.From, To: p.To, DataCoding: uint32(p.DataCoding),
		Payload: p.Payload, ReceivedAt: p.ReceivedAt.UnixNano()}
	if c := p.Concat; c != nil {
		w.Concat, w.ConcatRef, w.ConcatTotal, w.ConcatSeq = true, uint32(c.Ref), uint32(c.Total), uint32(c.Seq)
	}
	return w
}

func inboundFromWire(w *wire.InboundPart) switchboard.InboundPart {
	p := switchboard.InboundPart{Carrier: w.Carrier, From: w.From, To: w.To, DataCoding: byte(w.DataCoding),
		Payload: w.Payload, ReceivedAt: time.Unix(0, w.ReceivedAt).UTC()}
	if w.Concat {
		p.Concat = &switchboard.Concat{Ref: uint16(w.ConcatRef), Total: uint8(w.ConcatTotal), Seq: uint8(w.ConcatSeq)}
	}
	return p
}
