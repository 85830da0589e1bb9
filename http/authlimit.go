package http

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// authLimiter throttles failed authentication per client address: after
// limit failures within a window from one address, every request from it
// that needs a key is refused (429) until the window that began with its
// first failure has passed. It is checked before the key, so an address
// that is refused learns nothing about the secrets it tries.
//
// Memory is bounded: at most max addresses are remembered; a new one
// evicts the address whose last failure is oldest.
type authLimiter struct {
	limit  int
	window time.Duration
	max    int

	// anyBlockedUntil is the latest time (UnixNano) until which some
	// address is blocked, so that requests skip the lock and the lookup
	// whenever no address is.
	anyBlockedUntil atomic.Int64

	mu    sync.Mutex
	addrs map[netip.Addr]*list.Element // of *authFailures
	lru   list.List                    // least recently failed first
}

// authFailures are one address's failures in its current window.
type authFailures struct {
	addr  netip.Addr
	start time.Time // the window's first failure
	count int
}

func newAuthLimiter(limit int, window time.Duration, max int) *authLimiter {
	return &authLimiter{limit: limit, window: window, max: max, addrs: map[netip.Addr]*list.Element{}}
}

// blocked reports whether addr may not try a key now, and for how long.
// A nil limiter blocks nothing.
func (l *authLimiter) blocked(addr netip.Addr, now time.Time) (time.Duration, bool) {
	if l == nil || now.UnixNano() >= l.anyBlockedUntil.Load() {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.addrs[addr]
	if !ok {
		return 0, false
	}
	f := e.Value.(*authFailures)
	end := f.start.Add(l.window)
	if f.count < l.limit || !now.Before(end) {
		return 0, false
	}
	return end.Sub(now), true
}

// failed counts a failed authentication from addr and reports whether it
// made addr blocked (the limit-th failure of its window).
func (l *authLimiter) failed(addr netip.Addr, now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var f *authFailures
	if e, ok := l.addrs[addr]; ok {
		f = e.Value.(*authFailures)
		l.lru.MoveToBack(e)
	} else {
		if len(l.addrs) >= l.max {
			oldest := l.lru.Front()
			delete(l.addrs, oldest.Value.(*authFailures).addr)
			l.lru.Remove(oldest)
		}
		f = &authFailures{addr: addr}
		l.addrs[addr] = l.lru.PushBack(f)
	}
	if f.count == 0 || !now.Before(f.start.Add(l.window)) {
		f.start, f.count = now, 0
	}
	f.count++
	if f.count != l.limit {
		return false
	}
	// Written under mu only; read without it.
	if until := f.start.Add(l.window).UnixNano(); until > l.anyBlockedUntil.Load() {
		l.anyBlockedUntil.Store(until)
	}
	return true
}

// clientKey is the address failures are counted under: an IPv4 address,
// or the /64 of an IPv6 one, since one host commonly holds a whole /64 and
// could otherwise try from a new address each time.
func clientKey(ip []byte) netip.Addr {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// size is the number of addresses remembered.
func (l *authLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}
