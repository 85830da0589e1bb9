package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// Bind states as the admin API and the switchboard_binds metric show them.
const (
	BindBound     = "bound"     // can submit
	BindDown      = "down"      // connecting, or lost and waiting to reconnect
	BindSuspended = "suspended" // stopped by an operator (SuspendCarrier)
	BindStopped   = "stopped"   // not running: the carrier is being removed or restarted
)

// BindStatus is what an operator sees of one bind.
type BindStatus struct {
	Carrier string
	Index   int
	State   string
	// Since is when the bind entered State.
	Since time.Time
	// InFlight is how many submit_sm parts wait for their response.
	InFlight int
	// TPS is the submit_sm parts per second written over the last
	// sampling interval (about a second).
	TPS float64
	// LastError is why the bind last failed to bind or was lost, and
	// LastErrorAt when ("" and zero if it never failed).
	LastError   string
	LastErrorAt time.Time
}

// bindInfo is one bind's state for BindStatus. The bind actor writes it
// (from the SMPP client's callbacks), the sampler and readers read it.
type bindInfo struct {
	mu        sync.Mutex
	state     string
	since     time.Time
	lastErr   string
	lastErrAt time.Time
	// suspended makes the state read "suspended" while the binds are
	// stopped by an operator.
	suspended bool

	client atomic.Pointer[smpp.Client]
	// The sampler's last reading of the client's submits.
	sampledAt time.Time
	submits   int64
	tps       float64
}

func (b *bindInfo) set(state string) {
	if b.state != state {
		b.state, b.since = state, time.Now()
	}
}

// started: a new SMPP client is connecting.
func (b *bindInfo) started(c *smpp.Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.client.Store(c)
	b.sampledAt, b.submits, b.tps = time.Now(), 0, 0
	b.set(BindDown)
}

func (b *bindInfo) setBound(up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if up {
		b.set(BindBound)
	} else {
		b.set(BindDown)
	}
}

// setError records why a connection failed; the bind is down unless it
// can still submit.
func (b *bindInfo) setError(err error, canSubmit bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastErr, b.lastErrAt = err.Error(), time.Now()
	if !canSubmit {
		b.set(BindDown)
	}
}

// stopped: the bind actor has unbound and its client is gone.
func (b *bindInfo) stopped() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.client.Store(nil)
	b.tps = 0
	b.set(BindStopped)
}

func (b *bindInfo) suspend(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.suspended = on
	if on {
		b.set(BindSuspended)
	} else if b.state == BindSuspended {
		b.set(BindStopped)
	}
}

// status reads the bind's state.
func (b *bindInfo) status(carrier string, index int) BindStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BindStatus{Carrier: carrier, Index: index, State: b.state, Since: b.since, TPS: b.tps,
		LastError: b.lastErr, LastErrorAt: b.lastErrAt}
	if st.State == "" {
		st.State = BindDown
	}
	if b.suspended && st.State != BindBound {
		st.State = BindSuspended
	}
	if c := b.client.Load(); c != nil {
		st.InFlight = c.InFlight()
	}
	return st
}

// sample updates the bind's TPS from its client's submit count.
func (b *bindInfo) sample(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.client.Load()
	if c == nil {
		b.tps = 0
		return
	}
	n := c.Stats().Submits
	if dt := now.Sub(b.sampledAt).Seconds(); dt > 0 && !b.sampledAt.IsZero() {
		b.tps = float64(n-b.submits) / dt
	}
	b.sampledAt, b.submits = now, n
}

// bindSampleInterval is how often binds' TPS is measured.
const bindSampleInterval = time.Second

// sampleBinds measures every bind's TPS each interval until stop ends.
func (e *Engine) sampleBinds(stop context.Context) {
	t := time.NewTicker(bindSampleInterval)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case now := <-t.C:
			for _, c := range e.router.load().carriers {
				for i := range c.info {
					c.info[i].sample(now)
				}
			}
		}
	}
}

// Binds returns the state of every bind of every carrier, by carrier name
// and bind index.
func (e *Engine) Binds() []BindStatus {
	t := e.router.load()
	var out []BindStatus
	for _, name := range sortedNames(t.carriers) {
		c := t.carriers[name]
		for i := range c.info {
			out = append(out, c.info[i].status(name, i))
		}
	}
	return out
}
