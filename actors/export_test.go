package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// RestartKeyActor makes the key's actor restart as its supervisor would
// after a panic: protoactor replaces the instance under the same PID.
func (e *Engine) RestartKeyActor(keyID string) bool {
	pid := e.keyPID(keyID)
	if pid == nil {
		return false
	}
	proc, ok := e.system.ProcessRegistry.Get(pid)
	if !ok {
		return false
	}
	proc.SendSystemMessage(pid, &actor.Restart{})
	return true
}

// StopKeyActor stops the key's actor without going through the registry,
// as a supervisor that gave up on it would.
func (e *Engine) StopKeyActor(keyID string) bool {
	pid := e.keyPID(keyID)
	if pid == nil {
		return false
	}
	return e.system.Root.StopFuture(pid).Wait() == nil
}

func (e *Engine) keyPID(keyID string) *actor.PID {
	e.registry.mu.Lock()
	defer e.registry.mu.Unlock()
	if ent := e.registry.keys[keyID]; ent != nil {
		return ent.pid
	}
	return nil
}

// KeyOwner says which node owns a key in a cluster: its address, and
// whether it is another node than e's.
func (e *Engine) KeyOwner(keyID string) (string, bool) { return e.fleet.keyOwner(keyID) }

// StopStartBind sends bind i of the carrier (by its place in the config)
// what the fleet sends when it moves a bind away and straight back: a stop,
// then at once a start. The channel closes once the old instance stopped.
func (e *Engine) StopStartBind(carrier, i int) <-chan struct{} {
	stopped := make(chan struct{})
	sup := e.carriers[carrier]
	e.system.Root.Send(sup, &stopBind{index: i, stopped: stopped})
	e.system.Root.Send(sup, &startBind{index: i})
	return stopped
}

// CarrierSupervisor returns the PID of the carrier's running supervisor.
func (e *Engine) CarrierSupervisor(name string) *actor.PID {
	e.live.mu.Lock()
	defer e.live.mu.Unlock()
	if lc := e.live.carriers[name]; lc != nil {
		return lc.pid
	}
	return nil
}

// ForwardSubmit sends a submit to owner as a node that does not own the
// key does, with the request timeout given.
func (e *Engine) ForwardSubmit(owner string, key *switchboard.Key, reqs []switchboard.SubmitRequest, timeout time.Duration) []switchboard.SubmitResult {
	res, _ := e.fleet.forwardSubmit(context.Background(), owner, key, reqs, timeout)
	return res
}

// DrainKey sends the key's actor what Stop sends it and waits for the
// answer: nothing of the key's is out any more.
func (e *Engine) DrainKey(keyID string, timeout time.Duration) error {
	pid := e.keyPID(keyID)
	if pid == nil {
		return switchboard.Errorf(switchboard.ENOTFOUND, "no actor for key %s", keyID)
	}
	_, err := e.system.Root.RequestFuture(pid, &drain{}, timeout).Result()
	return err
}

// HandOverKey sends the key's actor what the fleet sends when the key
// moves to another node.
func (e *Engine) HandOverKey(keyID string) bool {
	pid := e.keyPID(keyID)
	if pid == nil {
		return false
	}
	e.system.Root.Send(pid, &handOver{})
	return true
}
