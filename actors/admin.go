package actors

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// What an operator changes while the engine runs: carriers and routes
// (Reconfigure), a carrier's binds suspended and resumed, keys changed in
// the key ring (KeysChanged), and queued messages canceled. The admin API
// (http/) and SIGHUP (cmd/switchboard) call these.

// liveState holds the running carriers: their configuration, their state
// and their supervisor. mu serialises changes; readers of the routing
// table do not take it.
type liveState struct {
	mu       sync.Mutex
	carriers map[string]*liveCarrier
	// used holds the supervisor names spawned: a carrier started again
	// gets a new one, since the old may not have stopped yet.
	used     map[string]bool
	strategy actor.SupervisorStrategy
	deps     bindDeps
	// started: the engine's first carriers are spawned; later ones are
	// the live changes'.
	started bool
	// paused is the set of suspended carriers, replaced under mu and read
	// without it (Ready must not wait for a reconfiguration).
	paused atomic.Pointer[map[string]bool]
}

type liveCarrier struct {
	cfg       CarrierConfig
	state     *carrier
	pid       *actor.PID // nil while suspended
	suspended bool
}

func (l *liveState) init(strategy actor.SupervisorStrategy, deps bindDeps) {
	l.carriers = make(map[string]*liveCarrier)
	l.used = make(map[string]bool)
	l.strategy, l.deps = strategy, deps
}

// pids returns the supervisors running.
func (l *liveState) pids() []*actor.PID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*actor.PID
	for _, c := range l.carriers {
		if c.pid != nil {
			out = append(out, c.pid)
		}
	}
	return out
}

func (l *liveState) suspended(name string) bool {
	p := l.paused.Load()
	return p != nil && (*p)[name]
}

// notePaused publishes the set of suspended carriers; l.mu is held.
func (l *liveState) notePaused() {
	p := map[string]bool{}
	for name, c := range l.carriers {
		if c.suspended {
			p[name] = true
		}
	}
	l.paused.Store(&p)
}

// startCarrier spawns the supervisor of a carrier (which spawns its
// binds) with state as the carrier's shared state; l.mu is held or the
// engine is starting.
func (e *Engine) startCarrier(cc CarrierConfig, state *carrier) error {
	l := &e.live
	run := cc // lc.cfg keeps cc as given, to compare with the next one
	if run.SMPP.MaxParts == 0 {
		// The binds split what admission let through (Config.MaxParts):
		// with their own default of 10 a longer message accepted under a
		// higher limit would fail at the carrier.
		run.SMPP.MaxParts = e.cfg.MaxParts
	}
	sup := &carrierSupervisor{cfg: run, state: state, deps: l.deps, limiter: smpp.NewLimiter(cc.TPS), fleet: e.fleet != nil}
	if sup.fleet && cc.TPS > 0 {
		share := cc.TPS / float64(cc.Binds)
		sup.newLimiter = func() *switchboard.TokenBucket { return smpp.NewLimiter(share) }
	}
	props := actor.PropsFromProducer(func() actor.Actor { return sup }, actor.WithSupervisor(l.strategy))
	name := "carrier-" + cc.Name
	for n := 2; l.used[name]; n++ {
		name = fmt.Sprintf("carrier-%s.%d", cc.Name, n)
	}
	l.used[name] = true
	pid, err := e.system.Root.SpawnNamed(props, name)
	if err != nil {
		return fmt.Errorf("actors: spawn carrier %s: %w", cc.Name, err)
	}
	lc := l.carriers[cc.Name]
	if lc == nil {
		lc = &liveCarrier{}
		l.carriers[cc.Name] = lc
	}
	lc.cfg, lc.state, lc.pid, lc.suspended = cc, state, pid, false
	l.notePaused()
	if !l.started {
		e.carriers = append(e.carriers, pid)
	}
	return nil
}

// stopSupervisor stops a carrier's supervisor, whose binds drain their
// windows and unbind, and waits until it is down or ctx ends. Submits it
// had queued go back to their key actors as retriable, which send them to
// another carrier of the route or wait for one.
func (e *Engine) stopSupervisor(ctx context.Context, lc *liveCarrier) {
	if lc.pid == nil {
		return
	}
	f := e.system.Root.StopFuture(lc.pid)
	lc.pid = nil
	done := make(chan struct{})
	go func() { _ = f.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Warn().Str("carrier", lc.cfg.Name).Msg("carrier still stopping; going on")
	}
}

// Reconfigure makes carriers and routes the engine's, live: routes switch
// at once; a new carrier starts its binds; a removed one stops them (its
// binds drain their windows and unbind; the submits it had queued fail
// over to another carrier of their route, or wait for one, and none is
// lost); a changed one restarts with its new settings. A suspended
// carrier stays suspended (with its new settings, if they changed). Invalid input (a route
// naming an unknown carrier, a carrier without a name or a bind, a name
// twice) changes nothing and is an EINVALID error. ctx bounds the wait
// for binds to stop.
func (e *Engine) Reconfigure(ctx context.Context, carriers []CarrierConfig, routes []switchboard.Route) error {
	next := make(map[string]CarrierConfig, len(carriers))
	for _, cc := range carriers {
		switch {
		case cc.Name == "" || cc.Binds < 1:
			return switchboard.Errorf(switchboard.EINVALID, "Carrier %q needs a name and at least one bind.", cc.Name)
		case next[cc.Name].Name != "":
			return switchboard.Errorf(switchboard.EINVALID, "Carrier %q is defined twice.", cc.Name)
		}
		next[cc.Name] = cc
	}
	for _, r := range routes {
		if len(r.Carriers) == 0 {
			return switchboard.Errorf(switchboard.EINVALID, "Route %q has no carrier.", r.Prefix)
		}
		for _, name := range r.Carriers {
			if _, ok := next[name]; !ok {
				return switchboard.Errorf(switchboard.EINVALID, "Route %q names unknown carrier %q.", r.Prefix, name)
			}
		}
	}
	l := &e.live
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started = true
	old := e.router.load()
	states := make(map[string]*carrier, len(next))
	var stop, start []*liveCarrier
	var starting []CarrierConfig
	for name, lc := range l.carriers {
		cc, keep := next[name]
		switch {
		case !keep:
			stop = append(stop, lc)
		case !sameCarrier(lc.cfg, cc):
			stop = append(stop, lc)
			starting = append(starting, cc)
		default:
			states[name] = lc.state
		}
	}
	for name, cc := range next {
		if l.carriers[name] == nil {
			starting = append(starting, cc)
		}
	}
	if e.fleet != nil && (len(stop) > 0 || len(starting) > 0) {
		return ErrFleetCarriers
	}
	for _, cc := range starting {
		states[cc.Name] = newCarrier(cc)
	}
	// Routes move first, so no new submit goes to a carrier that is
	// stopping; then the old binds stop and the new ones start.
	e.router.tab.Store(&routing{routes: switchboard.NewRoutes(routes), carriers: states})
	for _, lc := range stop {
		e.stopSupervisor(ctx, lc)
		if _, keep := next[lc.cfg.Name]; !keep {
			delete(l.carriers, lc.cfg.Name)
			l.notePaused()
			e.log.Info().Str("carrier", lc.cfg.Name).Msg("carrier removed")
		}
	}
	var errs []error
	for _, cc := range starting {
		if lc := l.carriers[cc.Name]; lc != nil && lc.suspended {
			// Changed while suspended: it starts with its new settings
			// when it is resumed.
			lc.cfg, lc.state = cc, states[cc.Name]
			for i := range lc.state.info {
				lc.state.info[i].suspend(true)
			}
			continue
		}
		if err := e.startCarrier(cc, states[cc.Name]); err != nil {
			errs = append(errs, err)
			continue
		}
		start = append(start, l.carriers[cc.Name])
		e.log.Info().Str("carrier", cc.Name).Int("binds", cc.Binds).Msg("carrier started")
	}
	if len(start) > 0 || len(old.routes) != len(routes) {
		e.carrierUp() // destinations that waited for a carrier may have one now
	}
	if len(errs) > 0 {
		return fmt.Errorf("actors: reconfigure: %v", errs)
	}
	return nil
}

// ErrFleetCarriers refuses a change of carriers in a cluster: the fleet
// places a carrier's binds over the nodes by the configuration every node
// started with, and leases them, so there carriers change by restart.
var ErrFleetCarriers = switchboard.Errorf(switchboard.EUNAVAILABLE,
	"In a cluster carriers change by restart: change every node's cluster.yaml and restart the nodes one by one; routes and keys change live.")

// sameCarrier reports whether two carrier configurations run the same
// binds. Loggers are the engine's to set and do not count.
func sameCarrier(a, b CarrierConfig) bool {
	a.SMPP.Log, b.SMPP.Log = zerolog.Logger{}, zerolog.Logger{}
	return reflect.DeepEqual(a, b)
}

// lockCarrier finds a running carrier by name with the live set locked;
// the caller unlocks. A fleet's carriers are not changed this way.
func (e *Engine) lockCarrier(name string) (*liveCarrier, func(), error) {
	if e.fleet != nil {
		return nil, nil, ErrFleetCarriers
	}
	l := &e.live
	l.mu.Lock()
	lc := l.carriers[name]
	if lc == nil {
		l.mu.Unlock()
		return nil, nil, switchboard.Errorf(switchboard.ENOTFOUND, "No carrier %q.", name)
	}
	return lc, l.mu.Unlock, nil
}

// SuspendCarrier stops a carrier's binds (they drain their windows and
// unbind) until ResumeCarrier, as Kannel's stop-smsc: messages go to the
// next carrier of their route or wait. ctx bounds the wait for the binds
// to stop.
func (e *Engine) SuspendCarrier(ctx context.Context, name string) error {
	lc, unlock, err := e.lockCarrier(name)
	if err != nil {
		return err
	}
	defer unlock()
	l := &e.live
	if lc.suspended {
		return nil
	}
	l.started = true
	lc.suspended = true
	l.notePaused()
	for i := range lc.state.info {
		lc.state.info[i].suspend(true)
	}
	e.stopSupervisor(ctx, lc)
	e.log.Info().Str("carrier", name).Msg("carrier suspended")
	return nil
}

// ResumeCarrier starts a suspended carrier's binds again.
func (e *Engine) ResumeCarrier(name string) error {
	lc, unlock, err := e.lockCarrier(name)
	if err != nil {
		return err
	}
	defer unlock()
	if !lc.suspended {
		return nil
	}
	for i := range lc.state.info {
		lc.state.info[i].suspend(false)
	}
	if err := e.startCarrier(lc.cfg, lc.state); err != nil {
		return err
	}
	e.log.Info().Str("carrier", name).Msg("carrier resumed")
	return nil
}

// CarrierStatus is what an operator sees of one carrier.
type CarrierStatus struct {
	Name      string
	Suspended bool
	Binds     []BindStatus
}

// Carriers returns every carrier with its binds, by name.
func (e *Engine) Carriers() []CarrierStatus {
	t := e.router.load()
	out := make([]CarrierStatus, 0, len(t.carriers))
	for _, name := range sortedNames(t.carriers) {
		c := t.carriers[name]
		cs := CarrierStatus{Name: name, Suspended: e.live.suspended(name)}
		for i := range c.info {
			cs.Binds = append(cs.Binds, c.info[i].status(name, i))
		}
		out = append(out, cs)
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// keyChanged tells a key actor that its key changed in the key ring.
type keyChanged struct{}

// KeysChanged tells the running actors of these keys that their keys
// changed in the key ring (rate, burst, max_queued, callbacks), so the
// next request is admitted by the new settings. The ring itself is the
// caller's to change first; requests authenticate against it at once.
func (e *Engine) KeysChanged(ids ...string) {
	for _, id := range ids {
		if pid := e.registry.running(id); pid != nil {
			e.system.Root.Send(pid, &keyChanged{})
		}
	}
	e.webhooks.keysChanged()
}

// running returns the PID of a key's actor if one runs, without spawning
// one.
func (r *registry) running(keyID string) *actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ent := r.keys[keyID]; ent != nil {
		return ent.pid
	}
	return nil
}

// keyChanged takes the key's new settings from the ring. A token bucket
// with a new rate or burst starts full; a key gone from the ring keeps the
// settings it had, for the messages it still holds.
func (k *keyActor) keyChanged() {
	nk, ok := k.e.cfg.Keys.Key(k.key.ID)
	if !ok {
		return
	}
	if nk.Rate != k.key.Rate || nk.Burst != k.key.Burst {
		k.bucket = switchboard.NewTokenBucket(nk.Rate, nk.Burst)
	}
	k.key = nk
}

// cancelReq asks a key actor to cancel one of its queued messages; the
// answer (nil, or why not) comes on reply once the cancel is recorded.
type cancelReq struct {
	id, to string
	reply  chan error
}

// errCancelBusy says a message cannot be canceled this instant (its
// commit is landing, or the key is starting): the caller tries again.
var errCancelBusy = switchboard.Errorf(switchboard.EUNAVAILABLE, "The message is busy; try again.")

// CancelMessage ends a message that is still queued (accepted or queued,
// no part submitted) with the status canceled and its event (and
// callback, as for any status). A message being submitted, submitted or
// final cannot be canceled: ECONFLICT. It returns the message as stored
// after the cancel.
func (e *Engine) CancelMessage(ctx context.Context, id string) (*switchboard.Message, error) {
	backoff := switchboard.Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}
	for {
		m, err := e.store.Message(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := cancelable(m); err != nil {
			return nil, err
		}
		err = e.cancel(ctx, m)
		if err == nil {
			return e.store.Message(ctx, id)
		}
		if err != errCancelBusy {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff.Next()):
		}
	}
}

// cancelable says why m cannot be canceled, or nil.
func cancelable(m *switchboard.Message) error {
	switch {
	case m.Direction == switchboard.DirectionInbound:
		return switchboard.Errorf(switchboard.ECONFLICT, "An inbound message cannot be canceled.")
	case !m.Pending():
		return switchboard.Errorf(switchboard.ECONFLICT, "The message is %s; only a queued message can be canceled.", m.Status)
	case slices.ContainsFunc(m.CarrierIDs, func(id string) bool { return id != "" }):
		return switchboard.Errorf(switchboard.ECONFLICT, "Part of the message was submitted already.")
	}
	return nil
}

func (e *Engine) cancel(ctx context.Context, m *switchboard.Message) error {
	if e.stopping.Load() {
		return errShuttingDown
	}
	if _, ok := e.cfg.Keys.Key(m.Key); !ok && e.registry.running(m.Key) == nil {
		return e.cancelStranded(ctx, m)
	}
	pid := e.registry.lookup(m.Key)
	if pid == nil {
		return errShuttingDown
	}
	defer e.registry.done(m.Key)
	req := &cancelReq{id: m.ID, to: m.To, reply: make(chan error, 1)}
	e.system.Root.Send(pid, req)
	return e.awaitCancel(ctx, req.reply)
}

// awaitCancel waits for a cancel's answer, at most RequestTimeout.
func (e *Engine) awaitCancel(ctx context.Context, reply <-chan error) error {
	t := time.NewTimer(e.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case err := <-reply:
		return err
	case <-t.C:
		return switchboard.Errorf(switchboard.EUNAVAILABLE, "The gateway is busy; try again.")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cancelStranded cancels a message of a key gone from the key ring. No
// actor runs such a key (Start leaves its messages stored, unsent), so the
// record alone ends the message. In a cluster another node, whose key
// ring may still hold the key, could be sending it: refused there.
func (e *Engine) cancelStranded(ctx context.Context, m *switchboard.Message) error {
	if e.fleet != nil {
		return switchboard.Errorf(switchboard.ECONFLICT, "The message's key %s is not configured on this node.", m.Key)
	}
	recorded := make(chan error, 1)
	ev := switchboard.Event{Status: switchboard.StatusCanceled, At: e.now()}
	u := switchboard.Update{MessageID: m.ID, Transition: switchboard.Transition{Event: ev, Part: -1}}
	e.recordInOrder(m.ID, []switchboard.Update{u}, &work{}, func() { recorded <- nil })
	return e.awaitCancel(ctx, recorded)
}

// cancel removes a queued message from the key, in memory or only in the
// store, and records it canceled; the reply waits for the record.
func (k *keyActor) cancel(ctx actor.Context, r *cancelReq) {
	if !k.ready || k.draining {
		r.reply <- errCancelBusy
		return
	}
	q := k.dests[r.to]
	var e *entry
	at := -1
	if q != nil {
		for i, qe := range q.entries {
			if qe.msg.ID == r.id {
				e, at = qe, i
				break
			}
		}
	}
	switch {
	case e == nil && r.id <= k.lastLoaded:
		// It was in memory and left it: sent, or being sent.
		r.reply <- switchboard.Errorf(switchboard.ECONFLICT, "The message is being submitted; it can no longer be canceled.")
		return
	case e == nil && k.canceled[r.id]:
		// Canceled already, its record on its way: once it lands, the
		// caller reads the message canceled and hears so.
		r.reply <- errCancelBusy
		return
	case e == nil:
		// Only in the store: a page read now must not bring it in.
		if k.canceled == nil {
			k.canceled = make(map[string]bool)
		}
		k.canceled[r.id] = true
		k.setQueued(k.queued - 1)
	case e.dropped:
		r.reply <- switchboard.Errorf(switchboard.ENOTFOUND, "No such message.")
		return
	case !e.durable:
		r.reply <- errCancelBusy
		return
	case at == 0 && q.busy, len(e.ids) > 0:
		r.reply <- switchboard.Errorf(switchboard.ECONFLICT, "The message is being submitted; it can no longer be canceled.")
		return
	default:
		q.entries = slices.Delete(q.entries, at, at+1)
		if at == 0 {
			q.attempts, q.retryAt = 0, time.Time{}
		}
		k.lagLeft(q, 1)
		k.leave()
		k.list(q) // its next message may go now, or the empty queue is dropped
	}
	w, reply, id := k.work, r.reply, r.id
	w.start()
	ev := switchboard.Event{Status: switchboard.StatusCanceled, At: k.e.now()}
	u := switchboard.Update{MessageID: id, Transition: switchboard.Transition{Event: ev, Part: -1}, Fence: k.fence()}
	k.e.recordInOrder(id, []switchboard.Update{u}, w, func() {
		w.end()
		reply <- nil
	})
	k.dispatch(ctx)
}

// skipCanceled reports whether a message a page read was canceled while
// it waited only in the store (cancel). Paging goes on above it, and the
// unit of the held budget taken for it goes back.
func (k *keyActor) skipCanceled(m *switchboard.Message) bool {
	if !k.canceled[m.ID] {
		return false
	}
	delete(k.canceled, m.ID)
	k.lastLoaded = max(k.lastLoaded, m.ID)
	k.e.held.release(1)
	return true
}
