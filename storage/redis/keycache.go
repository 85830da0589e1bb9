package redis

import (
	"context"
	"encoding/json"
	"time"

	goredis "github.com/redis/go-redis/v9"
	sb "github.com/switchboard-sms/switchboard"
)

// KeyCache keeps API keys by the SHA-256 of their secret, for nodes that
// authenticate against keys kept elsewhere (the configuration today, an
// admin API later). It is a cache: a miss, or Redis not answering, means
// "ask the source".
type KeyCache struct {
	rdb  goredis.UniversalClient
	link *link
	keys keyspace
	ttl  time.Duration
}

// DefaultKeyTTL is how long a cached key lives when KeyCacheOptions.TTL
// is zero: a key changed at its source is seen everywhere within it.
const DefaultKeyTTL = 5 * time.Minute

// KeyCacheOptions configure a KeyCache; the zero value is usable.
type KeyCacheOptions struct {
	Options
	// TTL is how long a key stays cached after Put; default DefaultKeyTTL.
	TTL time.Duration
}

// NewKeyCache returns a key cache on client.
func NewKeyCache(client goredis.UniversalClient, opts KeyCacheOptions) *KeyCache {
	opts.setDefaults()
	if opts.TTL <= 0 {
		opts.TTL = DefaultKeyTTL
	}
	return &KeyCache{
		rdb: client, keys: keyspace{prefix: opts.Prefix}, ttl: opts.TTL,
		link: newLink(client, opts.Logger, "api keys", opts.Timeout, opts.Retry),
	}
}

// cachedKey is a Key as Redis holds it.
type cachedKey struct {
	ID               string       `json:"id"`
	Rate             float64      `json:"rate"`
	Burst            int          `json:"burst"`
	MaxQueued        int          `json:"max_queued"`
	CallbackURL      string       `json:"callback_url,omitempty"`
	WebhookSecret    string       `json:"webhook_secret,omitempty"`
	CallbackStatuses sb.StatusSet `json:"callback_statuses"`
	CallbackBatch    int          `json:"callback_batch,omitempty"`
	InboundURL       string       `json:"inbound_url,omitempty"`
	Numbers          []string     `json:"numbers,omitempty"`
}

// Get returns the key whose secret hashes to hash, if it is cached and
// Redis answers.
func (c *KeyCache) Get(ctx context.Context, hash [32]byte) (*sb.Key, bool) {
	rc, cancel, ok := c.link.begin(ctx)
	if !ok {
		return nil, false
	}
	v, err := c.rdb.Get(rc, c.keys.apiKey(hash)).Bytes()
	cancel()
	c.link.end(err)
	if err != nil {
		return nil, false
	}
	var ck cachedKey
	if json.Unmarshal(v, &ck) != nil || ck.ID == "" {
		return nil, false
	}
	return &sb.Key{
		ID: ck.ID, SecretHash: hash, Rate: ck.Rate, Burst: ck.Burst, MaxQueued: ck.MaxQueued,
		CallbackURL: ck.CallbackURL, WebhookSecret: ck.WebhookSecret, CallbackStatuses: ck.CallbackStatuses,
		CallbackBatch: ck.CallbackBatch, InboundURL: ck.InboundURL, Numbers: ck.Numbers,
	}, true
}

// Put caches k under its SecretHash for the cache's TTL. An error means
// it is not cached (Redis did not answer); the source still has it.
func (c *KeyCache) Put(ctx context.Context, k *sb.Key) error {
	v, err := json.Marshal(cachedKey{
		ID: k.ID, Rate: k.Rate, Burst: k.Burst, MaxQueued: k.MaxQueued, CallbackURL: k.CallbackURL,
		WebhookSecret: k.WebhookSecret, CallbackStatuses: k.CallbackStatuses, CallbackBatch: k.CallbackBatch,
		InboundURL: k.InboundURL, Numbers: k.Numbers,
	})
	if err != nil {
		return err
	}
	rc, cancel, ok := c.link.begin(ctx)
	if !ok {
		return sb.Errorf(sb.EUNAVAILABLE, "key cache: redis is unreachable")
	}
	err = c.rdb.Set(rc, c.keys.apiKey(k.SecretHash), v, c.ttl).Err()
	cancel()
	c.link.end(err)
	if err != nil {
		return sb.Errorf(sb.EUNAVAILABLE, "key cache: put: %v", err)
	}
	return nil
}

// Delete removes the key whose secret hashes to hash, so a revoked or
// changed key is not served from the cache. If Redis does not answer, the
// entry is deleted as soon as it answers again, before the cache is read,
// and the error says so.
func (c *KeyCache) Delete(ctx context.Context, hash [32]byte) error {
	k := c.keys.apiKey(hash)
	rc, cancel, ok := c.link.begin(ctx)
	if !ok {
		c.link.staleKey(k)
		return sb.Errorf(sb.EUNAVAILABLE, "key cache: redis is unreachable; the key is deleted when it answers")
	}
	err := c.rdb.Del(rc, k).Err()
	cancel()
	c.link.endWrite(err, k)
	if err != nil {
		return sb.Errorf(sb.EUNAVAILABLE, "key cache: delete: %v; the key is deleted when redis answers", err)
	}
	return nil
}
