package actors

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// CarrierConfig describes one carrier: its binds share one TPS budget.
type CarrierConfig struct {
	Name  string
	Binds int
	TPS   float64
	// ReceiptTimeout is how long a submitted message waits for its receipt
	// before it ends unknown (default 72h); receipts that match no message
	// yet are kept as long.
	ReceiptTimeout time.Duration
	// MaxAttempts is how many times the carrier may refuse or lose one
	// message (retriable statuses, timeouts, lost connections) before it
	// fails with the last error (default 10).
	MaxAttempts int
	// SMPP is the template for every bind; Name, Limiter and the handlers
	// are filled in by the engine.
	SMPP smpp.Config
}

// Carrier health: after this many failed submits in a row the carrier is
// skipped for probeAfter, then one submit probes it again.
const (
	failureThreshold = 5
	probeAfter       = 5 * time.Second
)

// carrier is what the router and key actors need to know of a carrier at
// any moment: which binds are up and whether it is healthy. Bind actors
// write it, key actors read it; atomics keep reads lock-free on the hot
// path.
type carrier struct {
	name            string
	receiptTimeout  time.Duration
	maxAttempts     int
	responseTimeout time.Duration

	binds   []atomic.Pointer[actor.PID] // set as the supervisor spawns them
	intakes []atomic.Pointer[intake]    // where submits go, while the bind runs
	bound   []atomic.Bool
	info    []bindInfo // what the admin API and metrics show (bindstate.go)
	rr      atomic.Uint32
	// remote holds the bound binds of the carrier that other nodes of a
	// cluster run (fleet.refreshBinds).
	remote   atomic.Pointer[[]bindRef]
	failures atomic.Int32
	lastLost atomic.Uint64 // the connection whose loss was counted last
	downTill atomic.Int64  // unix nanos until which a failing carrier is skipped
}

// Carrier defaults.
const (
	DefaultReceiptTimeout = 72 * time.Hour
	DefaultMaxAttempts    = 10
)

func newCarrier(cc CarrierConfig) *carrier {
	c := &carrier{name: cc.Name, receiptTimeout: cc.ReceiptTimeout, maxAttempts: cc.MaxAttempts,
		responseTimeout: cc.SMPP.ResponseTimeout,
		binds:           make([]atomic.Pointer[actor.PID], cc.Binds), bound: make([]atomic.Bool, cc.Binds),
		intakes: make([]atomic.Pointer[intake], cc.Binds),
		info:    make([]bindInfo, cc.Binds)}
	if c.receiptTimeout <= 0 {
		c.receiptTimeout = DefaultReceiptTimeout
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	return c
}

// pick returns a bound bind, round-robin, or false if none is bound: one
// of this node's if it has any, else, in a cluster, another node's.
func (c *carrier) pick() (bindRef, bool) {
	n := uint32(len(c.binds))
	start := c.rr.Add(1)
	for i := uint32(0); i < n; i++ {
		j := (start + i) % n
		if in := c.intakes[j].Load(); c.bound[j].Load() && in != nil {
			return bindRef{in: in, index: int(j)}, true
		}
	}
	if remote := c.remote.Load(); remote != nil && len(*remote) > 0 {
		return (*remote)[start%uint32(len(*remote))], true
	}
	return bindRef{}, false
}

// healthy reports whether submits should go to this carrier now.
func (c *carrier) healthy(now time.Time) bool {
	if !c.anyBound() {
		return false
	}
	if c.failures.Load() < failureThreshold {
		return true
	}
	// Half-open: once the pause is over, let traffic probe the carrier;
	// the next failure closes it again.
	return now.UnixNano() >= c.downTill.Load()
}

func (c *carrier) anyBound() bool {
	for i := range c.bound {
		if c.bound[i].Load() {
			return true
		}
	}
	remote := c.remote.Load()
	return remote != nil && len(*remote) > 0
}

func (c *carrier) succeeded() { c.failures.Store(0) }

// remoteSendWithin bounds how long a submit sent to a bind on another
// node may wait there (in the bind's queue, for a window slot, for the
// pace) before it is written; remoteTimeout, how long the sender waits for
// its answer: that, the response and the trip there and back. Past
// remoteTimeout the sender sends the message again, so the other node must
// never send it later (CarrierSubmit.send_within_ms).
func (c *carrier) remoteSendWithin() time.Duration { return c.remoteResponseTimeout() + 3*time.Second }

func (c *carrier) remoteTimeout() time.Duration {
	return c.remoteSendWithin() + c.remoteResponseTimeout() + 2*time.Second
}

func (c *carrier) remoteResponseTimeout() time.Duration {
	if c.responseTimeout <= 0 {
		return 10 * time.Second
	}
	return c.responseTimeout
}

// failed counts a failed submit towards the carrier's breaker. A lost
// connection that had answered submits counts once, not once per part it
// had in flight: it is its bind's trouble (the bind is out of the
// rotation until it binds again) unless it goes on happening. One that
// answered none counts every part: the carrier may drop every submit.
func (c *carrier) failed(err error, now time.Time) {
	var lost *smpp.ConnectionLostError
	if errors.As(err, &lost) && lost.Answered && c.lastLost.Swap(lost.Conn) == lost.Conn {
		return
	}
	if c.failures.Add(1) >= failureThreshold {
		c.downTill.Store(now.Add(probeAfter).UnixNano())
	}
}

// carrierSupervisor spawns one bind actor per connection and restarts them
// when they fail. On a single node it runs every bind of the carrier; in a
// cluster only the binds this node owns, which the fleet starts and stops
// (startBind, stopBind) as members come and go.
type carrierSupervisor struct {
	cfg   CarrierConfig
	state *carrier
	deps  bindDeps
	// limiter paces the node's binds together. In a cluster each bind is
	// paced alone at its share of the carrier's TPS (newLimiter), since
	// the binds are spread over nodes.
	limiter    *switchboard.TokenBucket
	newLimiter func() *switchboard.TokenBucket
	fleet      bool
	// stopping holds the binds told to stop that have not yet: a bind
	// drains its window and unbinds first, which can take a response
	// timeout. Its name is taken until then, so a start that comes
	// meanwhile waits for it.
	stopping map[int]*stoppingBind
	// closing: the supervisor itself is stopping (or restarting), and
	// starts no bind: a child spawned now would never be told to stop.
	// revive holds the binds asked to start meanwhile, for a restart.
	closing bool
	revive  map[int]bool
}

// stoppingBind is a bind instance on its way out.
type stoppingBind struct {
	pid     *actor.PID
	waiters []chan struct{} // closed once it has stopped
	restart bool            // a start came meanwhile: spawn a new one then
}

// Messages the fleet sends a carrier's supervisor.
type (
	startBind struct{ index int }
	// stopBind stops a bind; stopped, if set, is closed once it has
	// drained and unbound.
	stopBind struct {
		index   int
		stopped chan struct{}
	}
)

func (s *carrierSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Stopping, *actor.Restarting:
		s.closing = true
	case *actor.Started:
		s.closing = false
		for i := range s.state.binds {
			// A restart (after a failure of this supervisor) stopped the
			// binds with it: in a cluster the fleet, which still holds their
			// leases, sends no new start, so those it had started (a PID
			// left here) or asked for meanwhile start again.
			if !s.fleet || s.state.binds[i].Load() != nil || s.revive[i] {
				s.spawn(ctx, i)
			}
		}
		clear(s.revive)
	case *startBind:
		s.startBind(ctx, m.index)
	case *stopBind:
		s.stopBind(ctx, m)
	case *actor.Terminated:
		s.bindStopped(ctx, m.Who)
	}
}

func (s *carrierSupervisor) startBind(ctx actor.Context, i int) {
	if s.closing {
		if s.revive == nil {
			s.revive = make(map[int]bool)
		}
		s.revive[i] = true
		return
	}
	if st := s.stopping[i]; st != nil {
		st.restart = true
		return
	}
	if s.state.binds[i].Load() == nil {
		s.spawn(ctx, i)
	}
}

func (s *carrierSupervisor) stopBind(ctx actor.Context, m *stopBind) {
	delete(s.revive, m.index)
	st := s.stopping[m.index]
	if pid := s.state.binds[m.index].Swap(nil); pid != nil {
		ctx.Stop(pid)
		st = &stoppingBind{pid: pid}
		if s.stopping == nil {
			s.stopping = make(map[int]*stoppingBind)
		}
		s.stopping[m.index] = st
	}
	if st == nil {
		if m.stopped != nil {
			close(m.stopped)
		}
		return
	}
	st.restart = false // this stop came after any start
	if m.stopped != nil {
		st.waiters = append(st.waiters, m.stopped)
	}
}

// bindStopped runs when a child has stopped (protoactor tells its parent
// after freeing its name): those waiting for it hear so, and a start that
// came meanwhile spawns its successor.
func (s *carrierSupervisor) bindStopped(ctx actor.Context, who *actor.PID) {
	for i, st := range s.stopping {
		if !st.pid.Equal(who) {
			continue
		}
		delete(s.stopping, i)
		for _, w := range st.waiters {
			close(w)
		}
		if st.restart {
			s.startBind(ctx, i)
		}
		return
	}
}

func (s *carrierSupervisor) spawn(ctx actor.Context, i int) {
	b := &bindActor{cfg: s.bindConfig(i), state: s.state, index: i, deps: s.deps}
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return b.fresh() }), bindName(i))
	if err != nil {
		panic(fmt.Errorf("carrier %s: spawn bind %d: %w", s.cfg.Name, i, err))
	}
	s.state.binds[i].Store(pid)
}

func bindName(i int) string { return fmt.Sprintf("bind-%d", i) }

// bindConfig makes bind i's SMPP config from the carrier's template.
func (s *carrierSupervisor) bindConfig(i int) smpp.Config {
	c := s.cfg.SMPP
	c.Name = fmt.Sprintf("%s/%d", s.cfg.Name, i)
	c.Limiter = s.limiter
	if s.newLimiter != nil {
		c.Limiter = s.newLimiter()
	}
	return c
}

// backoffStrategy restarts a failed child after a capped exponential delay
// with full jitter. protoactor's own NewExponentialBackoffStrategy grows
// linearly and without a cap, so it is not used.
type backoffStrategy struct {
	backoff switchboard.Backoff
	// calm is how long a child must run without failing for its count to
	// start again from the first delay.
	calm time.Duration
	log  zerolog.Logger
}

func (s *backoffStrategy) HandleFailure(_ *actor.ActorSystem, supervisor actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, _ any) {
	if rs.NumberOfFailures(s.calm) == 0 {
		rs.Reset()
	}
	rs.Fail()
	delay := s.backoff.Delay(rs.FailureCount() - 1)
	s.log.Error().Str("child", child.Id).Interface("reason", reason).Dur("restart_in", delay).
		Int("failures", rs.FailureCount()).Msg("actor failed; restarting")
	time.AfterFunc(delay, func() { supervisor.RestartChildren(child) })
}
