package switchboard

import (
	"context"
	"time"
)

// Lease is the right of one holder to act for a name (an API key's owner
// actor, a carrier's bind) until Expires. Token is the lease's fencing
// token: a store that is given it with each write refuses writes with a
// lower token than one it has seen for the name, so a holder that lost
// its lease without knowing (paused, cut off) cannot overwrite the work
// of the one that took over.
type Lease struct {
	Name   string
	Holder string
	Token  int64
	// Expires is when the lease ends unless renewed, by the holder's
	// clock: it is measured from before the request that took or renewed
	// the lease was sent, so it never outlasts the lease in the backend.
	// A holder stops acting for the name before it passes.
	Expires time.Time
}

// Leases grants leases with fencing tokens.
//
// Contracts every backend keeps (storage/storagetest checks them):
//   - One holder at a time: while a lease on a name is held and has not
//     expired, Acquire by another holder fails with ECONFLICT.
//   - Tokens strictly increase across holders: a lease granted to a holder
//     that did not hold the name has a token greater than every token
//     granted for the name before, by any holder, also after the backend
//     lost its state (a flushed Redis, a restarted process): tokens are
//     the backend's clock in microseconds, or one more than the last
//     token of the name, whichever is greater. They stay above earlier
//     ones as long as that clock does not go back; if it does, a store
//     that checks tokens refuses the new holder's writes until the clock
//     has caught up, which is safe.
//   - An expired lease can be taken by another holder, with a higher
//     token; the old holder's Renew then fails with ECONFLICT and its
//     Release does nothing.
//   - Acquire by the holder that holds the name renews the lease and keeps
//     its token (a retried Acquire is harmless). A holder is one
//     incarnation: a process that restarts uses a new holder name.
//   - Renew extends the lease it is given if it is still held with that
//     token and has not expired; else it fails with ECONFLICT, and the
//     holder must stop acting for the name and Acquire it again.
//   - Release ends the lease it is given if it is still held with that
//     token; releasing a lease that is not held (expired, taken over,
//     released already) is not an error.
//   - A name, a holder and a ttl of at least a millisecond are required
//     (EINVALID otherwise). A backend that cannot be reached fails with
//     EUNAVAILABLE: leases have nothing to fall back on.
type Leases interface {
	// Acquire takes the lease on name for holder for ttl.
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// Renew extends a held lease by ttl from now.
	Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// Release gives a lease up.
	Release(ctx context.Context, l Lease) error
}

// CheckLease checks the arguments of an Acquire or Renew: a name, a holder
// and a ttl of at least a millisecond (backends keep time to the
// millisecond).
func CheckLease(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return Errorf(EINVALID, "lease: no name")
	case holder == "":
		return Errorf(EINVALID, "lease %s: no holder", name)
	case ttl < time.Millisecond:
		return Errorf(EINVALID, "lease %s: ttl %v is below 1ms", name, ttl)
	}
	return nil
}

// NextLeaseToken returns the token for a new holder of a name: now in
// microseconds since the Unix epoch, or last+1 if that is not greater.
// Every Leases backend computes tokens with it (Redis's script does the
// same with Redis's clock).
func NextLeaseToken(last int64, now time.Time) int64 {
	return max(now.UnixMicro(), last+1)
}
