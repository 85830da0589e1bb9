package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// router maps a destination to a carrier and one of its binds. It is
// immutable after start (carrier health lives in the carriers themselves),
// so key actors call it directly instead of through a mailbox.
type router struct {
	routes   switchboard.Routes
	carriers map[string]*carrier
}

// routable reports whether any route matches to.
func (r *router) routable(to string) bool { return len(r.routes.Match(to)) > 0 }

// pick returns the first healthy carrier for to, in failover order, and a
// bound bind of it; nil when none can take the message now.
func (r *router) pick(to string, now time.Time) (*carrier, *actor.PID) {
	for _, name := range r.routes.Match(to) {
		c := r.carriers[name]
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
	c := r.carriers[name]
	if c == nil || !c.healthy(now) {
		return nil, nil
	}
	if pid := c.pick(); pid != nil {
		return c, pid
	}
	return nil, nil
}
