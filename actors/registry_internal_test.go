package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// Once the engine stops, the registry spawns no key actor (Stop drains
// only those running when it began) and counts no user for the refusal;
// a running actor is still found, so requests under way finish.
func TestRegistrySpawnsNoKeyActorWhileStopping(t *testing.T) {
	e := &Engine{}
	r := newRegistry(e)
	running := actor.NewPID("nonhost", "key-k1")
	r.keys["k1"] = &regEntry{pid: running}
	r.keys["k3"] = &regEntry{users: 1} // its actor stopped; a request is on its way
	e.stopping.Store(true)
	if pid := r.lookup("k2"); pid != nil || r.keys["k2"] != nil {
		t.Fatalf("lookup of a key with no actor while stopping: %v, entry %v; want nil and none", pid, r.keys["k2"])
	}
	r.wake("k3")
	if pid, users := r.keys["k3"].pid, r.keys["k3"].users; pid != nil || users != 1 {
		t.Fatalf("wake while stopping: pid %v, users %d; want no actor and the 1 user kept", pid, users)
	}
	if pid := r.lookup("k1"); !pid.Equal(running) || r.keys["k1"].users != 1 {
		t.Fatalf("lookup of a running actor while stopping: %v (users %d), want it, counted", pid, r.keys["k1"].users)
	}
}
