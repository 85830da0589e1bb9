// Package memory holds the in-process implementations of the storage
// interfaces that need no server, for a single node (cache.backend:
// memory).
package memory

import (
	"context"
	"sync"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Leases is switchboard.Leases in this process's memory: for a single
// node, whose parts take leases as a cluster's nodes would. Tokens come
// from the wall clock (switchboard.NextLeaseToken), so they keep
// increasing across restarts of the process too.
type Leases struct {
	mu    sync.Mutex
	names map[string]*lease
}

// lease is the state of one name: its holder ("" once released) and the
// last token granted, kept after release so the next is greater.
type lease struct {
	holder  string
	token   int64
	expires time.Time // monotonic: expiry is immune to wall clock steps
}

var _ sb.Leases = (*Leases)(nil)

// NewLeases returns an empty set of leases.
func NewLeases() *Leases { return &Leases{names: map[string]*lease{}} }

// Acquire takes the lease on name for holder (see switchboard.Leases).
func (ls *Leases) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (sb.Lease, error) {
	if err := begin(ctx, name, holder, ttl); err != nil {
		return sb.Lease{}, err
	}
	now := time.Now()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.names[name]
	if l == nil {
		l = &lease{}
		ls.names[name] = l
	}
	if l.holder != "" && now.Before(l.expires) && l.holder != holder {
		return sb.Lease{}, sb.Errorf(sb.ECONFLICT, "lease %s is held by %s", name, l.holder)
	}
	if l.holder != holder || !now.Before(l.expires) {
		l.holder, l.token = holder, sb.NextLeaseToken(l.token, now)
	}
	l.expires = now.Add(ttl)
	return sb.Lease{Name: name, Holder: holder, Token: l.token, Expires: l.expires}, nil
}

// Renew extends a lease still held with its token.
func (ls *Leases) Renew(ctx context.Context, held sb.Lease, ttl time.Duration) (sb.Lease, error) {
	if err := begin(ctx, held.Name, held.Holder, ttl); err != nil {
		return sb.Lease{}, err
	}
	now := time.Now()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.names[held.Name]
	if l == nil || l.holder != held.Holder || l.token != held.Token || !now.Before(l.expires) {
		return sb.Lease{}, sb.Errorf(sb.ECONFLICT, "lease %s token %d is no longer held by %s", held.Name, held.Token, held.Holder)
	}
	l.expires = now.Add(ttl)
	held.Expires = l.expires
	return held, nil
}

// Release gives up a lease still held with its token; otherwise it does
// nothing.
func (ls *Leases) Release(ctx context.Context, held sb.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.names[held.Name]; l != nil && l.holder == held.Holder && l.token == held.Token {
		l.holder = ""
	}
	return nil
}

func begin(ctx context.Context, name, holder string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return sb.CheckLease(name, holder, ttl)
}
