package node

import (
	"context"
	"sync/atomic"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
)

// gate is the engine the API serves: until the engine has started (the
// store is still connecting), every call is unavailable with the store's
// reason; from then on it is the engine.
type gate struct {
	// store, once open, says why the gateway is not ready yet.
	store  atomic.Pointer[storeRef]
	engine atomic.Pointer[actors.Engine]
	// closed is why the gate closed after the engine had run ("": it has
	// not run yet).
	closed atomic.Pointer[string]
}

type storeRef struct{ switchboard.Store }

func (g *gate) opened(s switchboard.Store) { g.store.Store(&storeRef{s}) }

func (g *gate) open(e *actors.Engine) { g.engine.Store(e) }

// loadingKeys says no engine has run yet: the key ring lacks the keys the
// admin API made until the node has read them from its store.
func (g *gate) loadingKeys() bool { return g.engine.Load() == nil && g.closed.Load() == nil }

// close answers every call with 503 and why until the next open.
func (g *gate) close(why string) {
	g.closed.Store(&why)
	g.engine.Store(nil)
}

// starting is the error of a call made while no engine runs.
func (g *gate) starting() error {
	if why := g.closed.Load(); why != nil {
		return switchboard.Errorf(switchboard.EUNAVAILABLE, "%s", *why)
	}
	if s := g.store.Load(); s != nil {
		if err := s.Writable(); err != nil {
			return switchboard.Errorf(switchboard.EUNAVAILABLE, "The gateway is starting: %s", switchboard.ErrorMessage(err))
		}
	}
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "The gateway is starting.")
}

func (g *gate) Submit(ctx context.Context, key *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult {
	if e := g.engine.Load(); e != nil {
		return e.Submit(ctx, key, reqs)
	}
	out := make([]switchboard.SubmitResult, len(reqs))
	err := g.starting()
	for i := range out {
		out[i].Err = err
	}
	return out
}

func (g *gate) Message(ctx context.Context, key *switchboard.Key, id string) (*switchboard.Message, error) {
	if e := g.engine.Load(); e != nil {
		return e.Message(ctx, key, id)
	}
	return nil, g.starting()
}

func (g *gate) ListMessages(ctx context.Context, key *switchboard.Key, q switchboard.MessageQuery) ([]*switchboard.Message, string, error) {
	if e := g.engine.Load(); e != nil {
		return e.ListMessages(ctx, key, q)
	}
	return nil, "", g.starting()
}

// Ready is the engine's readiness once it runs; before, never ready.
func (g *gate) Ready() error {
	if e := g.engine.Load(); e != nil {
		return e.Ready()
	}
	return g.starting()
}
