package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
	sb "github.com/switchboard-sms/switchboard"
)

// Leases is switchboard.Leases on Redis: each operation is one Lua script,
// so it is atomic. A lease is a hash (holder, token) that expires with the
// lease; the last token of a name is kept beside it for a day longer.
//
// Tokens are Redis's clock (TIME) in microseconds, or one more than the
// last token of the name, whichever is greater (switchboard.NextLeaseToken).
// So when Redis loses everything (flushed, restarted without persistence)
// the next token is still greater than every token granted before it, as
// long as Redis's clock has not gone back meanwhile; the clock, not the
// lost counter, carries the order.
type Leases struct {
	rdb     goredis.UniversalClient
	keys    keyspace
	timeout time.Duration
}

var _ sb.Leases = (*Leases)(nil)

// tokenKeep is how long a name's last token outlives its lease.
const tokenKeep = 24 * time.Hour

// NewLeases returns leases on client. Of opts, Prefix and Timeout apply.
func NewLeases(client goredis.UniversalClient, opts Options) *Leases {
	opts.setDefaults()
	return &Leases{rdb: client, keys: keyspace{prefix: opts.Prefix}, timeout: opts.Timeout}
}

// acquireScript: KEYS lease, last token; ARGV holder, ttl ms, token keep
// ms. Returns {1, token} when granted (or renewed for the same holder),
// {0, holder} when another holder has it.
var acquireScript = goredis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'holder', 'token')
if h[1] then
  if h[1] ~= ARGV[1] then return {0, h[1]} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, h[2]}
end
local t = redis.call('TIME')
local token = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if last >= token then token = last + 1 end
local s = string.format('%.0f', token)
redis.call('SET', KEYS[2], s, 'PX', ARGV[3])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', s)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, s}
`)

// renewScript: KEYS lease; ARGV holder, token, ttl ms. 1 if renewed.
var renewScript = goredis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'holder', 'token')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// releaseLeaseScript: KEYS lease; ARGV holder, token.
var releaseLeaseScript = goredis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'holder', 'token')
if h[1] == ARGV[1] and h[2] == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 0
`)

// Acquire takes the lease on name for holder (see switchboard.Leases).
func (ls *Leases) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (sb.Lease, error) {
	if err := sb.CheckLease(name, holder, ttl); err != nil {
		return sb.Lease{}, err
	}
	start := time.Now()
	c, cancel := context.WithTimeout(ctx, ls.timeout)
	defer cancel()
	res, err := acquireScript.Run(c, ls.rdb, []string{ls.keys.lease(name), ls.keys.leaseToken(name)},
		holder, ttl.Milliseconds(), (ttl + tokenKeep).Milliseconds()).Slice()
	if err != nil {
		return sb.Lease{}, unavailable(name, err)
	}
	if len(res) != 2 {
		return sb.Lease{}, sb.Errorf(sb.EINTERNAL, "lease %s: unexpected reply %v", name, res)
	}
	granted, _ := res[0].(int64)
	v, _ := res[1].(string)
	if granted != 1 {
		return sb.Lease{}, sb.Errorf(sb.ECONFLICT, "lease %s is held by %s", name, v)
	}
	token, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return sb.Lease{}, sb.Errorf(sb.EINTERNAL, "lease %s: token %q: %v", name, v, err)
	}
	return sb.Lease{Name: name, Holder: holder, Token: token, Expires: start.Add(ttl)}, nil
}

// Renew extends a lease still held with its token.
func (ls *Leases) Renew(ctx context.Context, l sb.Lease, ttl time.Duration) (sb.Lease, error) {
	if err := sb.CheckLease(l.Name, l.Holder, ttl); err != nil {
		return sb.Lease{}, err
	}
	start := time.Now()
	c, cancel := context.WithTimeout(ctx, ls.timeout)
	defer cancel()
	ok, err := renewScript.Run(c, ls.rdb, []string{ls.keys.lease(l.Name)},
		l.Holder, strconv.FormatInt(l.Token, 10), ttl.Milliseconds()).Int()
	if err != nil {
		return sb.Lease{}, unavailable(l.Name, err)
	}
	if ok != 1 {
		return sb.Lease{}, sb.Errorf(sb.ECONFLICT, "lease %s token %d is no longer held by %s", l.Name, l.Token, l.Holder)
	}
	l.Expires = start.Add(ttl)
	return l, nil
}

// Release gives up a lease still held with its token; otherwise it does
// nothing.
func (ls *Leases) Release(ctx context.Context, l sb.Lease) error {
	c, cancel := context.WithTimeout(ctx, ls.timeout)
	defer cancel()
	err := releaseLeaseScript.Run(c, ls.rdb, []string{ls.keys.lease(l.Name)}, l.Holder, strconv.FormatInt(l.Token, 10)).Err()
	if err != nil {
		return unavailable(l.Name, err)
	}
	return nil
}

func unavailable(name string, err error) error {
	return sb.Errorf(sb.EUNAVAILABLE, "lease %s: redis: %v", name, err)
}
