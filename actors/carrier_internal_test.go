package actors

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// In a cluster, a carrier's supervisor that fails is restarted with its
// binds stopped; the fleet, which still holds their leases, sends no new
// start, so the supervisor starts again the binds it ran, and leaves
// alone those it was never given.
func TestFleetSupervisorRestartStartsItsBindsAgain(t *testing.T) {
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()
	cc := CarrierConfig{Name: "sim", Binds: 2, SMPP: smpp.Config{Addr: sim.Addr(), SystemID: "gw", Password: "pw",
		Window: 8, Log: zerolog.Nop(), ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}}
	sup := &carrierSupervisor{cfg: cc, state: newCarrier(cc), fleet: true, limiter: smpp.NewLimiter(0),
		deps: bindDeps{log: zerolog.Nop(), onBound: func() {}, metrics: noMetrics{}}}
	strategy := &backoffStrategy{backoff: switchboard.Backoff{Min: time.Millisecond, Max: time.Millisecond},
		calm: time.Minute, log: zerolog.Nop()}
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return sup }, actor.WithSupervisor(strategy)))
	defer func() { _ = system.Root.StopFuture(pid).Wait() }()

	system.Root.Send(pid, &startBind{index: 1}) // this node owns bind 1 only
	waitTrue(t, "bind 1 bound", func() bool { return sim.Stats().Binds == 1 })

	proc, _ := system.ProcessRegistry.Get(pid)
	proc.SendSystemMessage(pid, &actor.Restart{}) // as its parent does after a failure
	waitTrue(t, "bind 1 bound again after the restart", func() bool {
		st := sim.Stats()
		return st.BindsTotal == 2 && st.Binds == 1
	})
	if sup.state.binds[0].Load() != nil {
		t.Fatal("the restart started bind 0, which the fleet never gave this node")
	}

	// A start that comes while the supervisor restarts is kept for after.
	proc.SendSystemMessage(pid, &actor.Restart{})
	system.Root.Send(pid, &startBind{index: 0})
	waitTrue(t, "both binds bound after a start during a restart", func() bool { return sim.Stats().Binds == 2 })
}
