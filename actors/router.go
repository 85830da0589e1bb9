package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// router maps a destination to a carrier and one of its binds. Its table
// of routes and carriers is replaced whole when they change (admin.go:
// Reconfigure), never modified, so key actors call it directly instead of
// through a mailbox, and carrier health lives in the carriers themselves.
type router struct {
	tab atomic.Pointer[routing]
}

// routing is one version of the table.
type routing struct {
	routes   switchboard.Routes
	carriers map[string]*carrier
}

func newRouter(routes []switchboard.Route, carriers map[string]*carrier) *router {
	r := &router{}
	r.tab.Store(&routing{routes: switchboard.NewRoutes(routes), carriers: carriers})
	return r
}

func (r *router) load() *routing { return r.tab.Load() }

// carrier returns the named carrier's state, nil if there is none.
func (r *router) carrier(name string) *carrier { return r.load().carriers[name] }

// routable reports whether any route matches to.
func (r *router) routable(to string) bool { return len(r.load().routes.Match(to)) > 0 }

// pick returns the first healthy carrier for to, in failover order, and a
// bound bind of it; nil when none can take the message now.
func (r *router) pick(to string, now time.Time) (*carrier, *actor.PID) {
	t := r.load()
	for _, name := range t.routes.Match(to) {
		c := t.carriers[name]
		if c == nil || !c.healthy(now) {
			continue
		}
		if pid := c.pick(); pid != nil {
			return c, pid
		}
	}
	return nil, nil
}

// pickCarrier returns a bound bind of the named carrier if it is healthy;
// nil otherwise.
func (r *router) pickCarrier(name string, now time.Time) (*carrier, *actor.PID) {
	c := r.carrier(name)
	if c == nil || !c.healthy(now) {
		return nil, nil
	}
	if pid := c.pick(); pid != nil {
		return c, pid
	}
	return nil, nil
}
