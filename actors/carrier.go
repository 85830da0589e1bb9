package actors

import (
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
	name           string
	receiptTimeout time.Duration
	maxAttempts    int

	binds    []atomic.Pointer[actor.PID] // set as the supervisor spawns them
	bound    []atomic.Bool
	rr       atomic.Uint32
	failures atomic.Int32
	downTill atomic.Int64 // unix nanos until which a failing carrier is skipped
}

// Carrier defaults.
const (
	DefaultReceiptTimeout = 72 * time.Hour
	DefaultMaxAttempts    = 10
)

func newCarrier(cc CarrierConfig) *carrier {
	c := &carrier{name: cc.Name, receiptTimeout: cc.ReceiptTimeout, maxAttempts: cc.MaxAttempts,
		binds: make([]atomic.Pointer[actor.PID], cc.Binds), bound: make([]atomic.Bool, cc.Binds)}
	if c.receiptTimeout <= 0 {
		c.receiptTimeout = DefaultReceiptTimeout
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	return c
}

// pick returns a bound bind, round-robin, or nil if none is bound.
func (c *carrier) pick() *actor.PID {
	n := uint32(len(c.binds))
	start := c.rr.Add(1)
	for i := uint32(0); i < n; i++ {
		j := (start + i) % n
		if pid := c.binds[j].Load(); c.bound[j].Load() && pid != nil {
			return pid
		}
	}
	return nil
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
	return false
}

func (c *carrier) succeeded() { c.failures.Store(0) }

func (c *carrier) failed(now time.Time) {
	if c.failures.Add(1) >= failureThreshold {
		c.downTill.Store(now.Add(probeAfter).UnixNano())
	}
}

// carrierSupervisor spawns one bind actor per connection and restarts them
// when they fail. It handles no messages of its own.
type carrierSupervisor struct {
	cfg     CarrierConfig
	state   *carrier
	deps    bindDeps
	limiter *switchboard.TokenBucket
}

func (s *carrierSupervisor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); !ok {
		return
	}
	for i := range s.state.binds {
		b := &bindActor{cfg: s.bindConfig(i), state: s.state, index: i, deps: s.deps}
		pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return b.fresh() }), fmt.Sprintf("bind-%d", i))
		if err != nil {
			panic(fmt.Errorf("carrier %s: spawn bind %d: %w", s.cfg.Name, i, err))
		}
		s.state.binds[i].Store(pid)
	}
}

// bindConfig makes bind i's SMPP config from the carrier's template. All
// binds share one limiter, so the carrier's TPS holds however many are up.
func (s *carrierSupervisor) bindConfig(i int) smpp.Config {
	c := s.cfg.SMPP
	c.Name = fmt.Sprintf("%s/%d", s.cfg.Name, i)
	c.Limiter = s.limiter
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
