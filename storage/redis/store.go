package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// Options configure the cache Wrap puts in front of a store. The zero
// value is usable.
type Options struct {
	// Prefix begins every key written; default DefaultPrefix.
	Prefix string
	// CarrierTTL is how long a carrier message id is remembered after the
	// write that indexed it; default 72h. Receipts for older ids are
	// resolved by the store.
	CarrierTTL time.Duration
	// Timeout bounds each Redis call; default 200ms. A call that takes
	// longer counts as Redis being unreachable.
	Timeout time.Duration
	// Retry is how long calls skip Redis after it failed to answer, before
	// one call tries it again; default 1s.
	Retry time.Duration
	// Logger gets one line each time Redis stops or starts answering.
	Logger zerolog.Logger
	// Now is the clock idempotency windows are measured with, as the
	// store's own; default time.Now.
	Now func() time.Time
}

const (
	defaultCarrierTTL = 72 * time.Hour
	defaultTimeout    = 200 * time.Millisecond
	defaultRetry      = time.Second
	// reservationTTL bounds how long an idempotency key is held for an
	// Accept that is writing: if the node dies in between, the key is
	// free again after this, and the store decides.
	reservationTTL = 30 * time.Second
)

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.CarrierTTL <= 0 {
		o.CarrierTTL = defaultCarrierTTL
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.Retry <= 0 {
		o.Retry = defaultRetry
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// store is the cache in front of a switchboard.Store. Every method it does
// not define is the inner store's own.
type store struct {
	sb.Store
	rdb        goredis.UniversalClient
	link       *link
	keys       keyspace
	carrierTTL time.Duration
	now        func() time.Time

	// Reservation values are tokenPrefix and a counter: unique to this
	// store among the nodes sharing a Redis.
	tokenPrefix string
	tokens      atomic.Uint64
}

// Wrap returns inner with a Redis cache in front of the reads it can
// spare: receipts' carrier message ids (CarrierMessage, and updates by
// carrier id in Record) and idempotency records (Idempotency; Accept
// reserves the keys with SET NX so racing requests on different nodes
// conflict). Every contract of inner holds: Redis holds only copies of
// what inner made durable and short reservations, so when Redis is
// flushed the answers come from inner again, and while Redis does not
// answer every call goes to inner alone. Close closes inner; the client
// belongs to the caller.
func Wrap(inner sb.Store, client goredis.UniversalClient, opts Options) sb.Store {
	opts.setDefaults()
	var b [8]byte
	rand.Read(b[:])
	return &store{
		Store: inner, rdb: client,
		link:       newLink(client, opts.Logger, "carrier ids and idempotency", opts.Timeout, opts.Retry),
		keys:       keyspace{prefix: opts.Prefix},
		carrierTTL: opts.CarrierTTL, now: opts.Now,
		tokenPrefix: hex.EncodeToString(b[:]),
	}
}

// CarrierMessage answers from Redis when it knows the id, else from the
// store, and then remembers the store's answer.
func (s *store) CarrierMessage(ctx context.Context, carrier, carrierID string) (string, int, error) {
	k := s.keys.carrier(carrier, carrierID)
	if c, cancel, ok := s.link.begin(ctx); ok {
		v, err := s.rdb.Get(c, k).Result()
		cancel()
		s.link.end(err)
		if ref, ok := decodeCarrierRef(v); err == nil && ok {
			return ref.messageID, ref.part, nil
		}
	}
	id, part, err := s.Store.CarrierMessage(ctx, carrier, carrierID)
	if err == nil {
		s.fillCarrier(ctx, map[string]string{k: carrierRef{id, part}.encode()})
	}
	return id, part, err
}

// Record resolves updates by carrier id from Redis where it can, so the
// store is given the message ID; the rest go to the store as they are,
// which resolves or parks them. Afterwards it remembers the carrier ids
// the store indexed.
func (s *store) Record(ctx context.Context, updates []sb.Update) ([]*sb.Message, error) {
	resolved, hits := s.resolve(ctx, updates)
	msgs, err := s.Store.Record(ctx, resolved)
	if err != nil && len(hits) > 0 && sb.ErrorCode(err) == sb.ENOTFOUND {
		// A remembered id names a message the store no longer has
		// (retention ran): forget the ids used and let the store resolve
		// them. A failed Record wrote nothing, so trying again is safe.
		s.forget(ctx, hits)
		resolved, hits = updates, nil
		msgs, err = s.Store.Record(ctx, updates)
	}
	if err != nil {
		return nil, err
	}
	s.remember(ctx, updates, resolved, msgs)
	return msgs, nil
}

// resolve returns updates with those by carrier id that Redis knows named
// by message ID (a copy; updates is not changed), and the Redis keys it
// used. An id that an update of the same call indexes is left to the
// store, which resolves it in order within the call.
func (s *store) resolve(ctx context.Context, updates []sb.Update) ([]sb.Update, []string) {
	var idx []int
	var keys []string
	for i, u := range updates {
		if u.MessageID == "" && u.ByCarrier != nil && !indexedIn(updates, u.ByCarrier) {
			idx = append(idx, i)
			keys = append(keys, s.keys.carrier(u.ByCarrier.Carrier, u.ByCarrier.ID))
		}
	}
	if len(idx) == 0 {
		return updates, nil
	}
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		return updates, nil
	}
	vals, err := s.rdb.MGet(c, keys...).Result()
	cancel()
	s.link.end(err)
	if err != nil {
		return updates, nil
	}
	var out []sb.Update
	var used []string
	for j, v := range vals {
		str, _ := v.(string)
		ref, ok := decodeCarrierRef(str)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]sb.Update(nil), updates...)
		}
		u := &out[idx[j]]
		u.MessageID, u.Transition.Part, u.ByCarrier = ref.messageID, ref.part, nil
		used = append(used, keys[j])
	}
	if out == nil {
		return updates, nil
	}
	return out, used
}

// indexedIn reports whether an update of updates indexes ref: a
// transition that carries the id under the carrier.
func indexedIn(updates []sb.Update, ref *sb.CarrierRef) bool {
	for i := range updates {
		tr := &updates[i].Transition
		if !indexes(tr) || tr.Event.Carrier != ref.Carrier {
			continue
		}
		for _, id := range tr.CarrierIDs {
			if id == ref.ID {
				return true
			}
		}
	}
	return false
}

// indexes reports whether the store indexes tr's carrier ids: a submit,
// or a receipt that also records the submission it overtook.
func indexes(tr *sb.Transition) bool {
	return len(tr.CarrierIDs) > 0 && (tr.Event.Status == sb.StatusSubmitted || tr.Part >= 0)
}

// remember writes to Redis the carrier ids a Record indexed, replacing
// what Redis held for them, and, without replacing anything, the ids the
// store resolved for updates Redis did not know. msgs are the messages
// after each update, as Record returned them.
//
// The store indexes only the ids a transition gave the message
// (Message.ApplyGiving), which needs the ids it held before: the message
// after a first submission held none, but after a retry, which repeats
// the ids of parts accepted before, Redis cannot tell which ids are new.
// Then the entries are deleted instead, and the next look-up reads the
// store's index.
func (s *store) remember(ctx context.Context, updates, resolved []sb.Update, msgs []*sb.Message) {
	set, fill := map[string]string{}, map[string]string{}
	var unsure []string
	for i, m := range msgs {
		if m == nil {
			continue
		}
		if tr := &updates[i].Transition; indexes(tr) {
			first := submissions(m) <= 1
			for part, cid := range tr.CarrierIDs {
				if cid == "" || part >= len(m.CarrierIDs) || m.CarrierIDs[part] != cid {
					continue
				}
				if k := s.keys.carrier(tr.Event.Carrier, cid); first {
					set[k] = carrierRef{m.ID, part}.encode()
				} else {
					unsure = append(unsure, k)
				}
			}
		}
		if ref := resolved[i].ByCarrier; ref != nil && m.Carrier == ref.Carrier {
			if part := onlyPart(m.CarrierIDs, ref.ID); part >= 0 {
				fill[s.keys.carrier(ref.Carrier, ref.ID)] = carrierRef{m.ID, part}.encode()
			}
		}
	}
	for k := range set {
		delete(fill, k)
	}
	for _, k := range unsure {
		delete(set, k)
		delete(fill, k)
	}
	if len(unsure) > 0 {
		s.forget(ctx, unsure)
	}
	if len(set) > 0 {
		s.setCarrier(ctx, set)
	}
	if len(fill) > 0 {
		s.fillCarrier(ctx, fill)
	}
}

// submissions counts m's submitted events: one per try that gave parts
// carrier ids (a try that gave every part at once makes one).
func submissions(m *sb.Message) int {
	n := 0
	for _, e := range m.Events {
		if e.Status == sb.StatusSubmitted {
			n++
		}
	}
	return n
}

// onlyPart returns the part whose carrier id is id, or -1 if none or
// several are.
func onlyPart(ids []string, id string) int {
	found := -1
	for i, x := range ids {
		if x == id {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// setCarrier replaces carrier ids' entries. If that cannot be done, an
// older entry Redis may hold for one of them is stale, and is deleted
// before the cache is used again.
func (s *store) setCarrier(ctx context.Context, entries map[string]string) {
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		s.link.staleKey(keysOf(entries)...)
		return
	}
	defer cancel()
	_, err := s.rdb.Pipelined(c, func(p goredis.Pipeliner) error {
		for k, v := range entries {
			p.Set(c, k, v, s.carrierTTL)
		}
		return nil
	})
	s.link.endWrite(err, keysOf(entries)...)
}

// fillCarrier adds entries for carrier ids Redis does not hold. It never
// replaces one: an entry written meanwhile by the Record that indexed an
// id anew is newer than what the store said a moment ago.
func (s *store) fillCarrier(ctx context.Context, entries map[string]string) {
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		return
	}
	defer cancel()
	_, err := s.rdb.Pipelined(c, func(p goredis.Pipeliner) error {
		for k, v := range entries {
			p.SetNX(c, k, v, s.carrierTTL)
		}
		return nil
	})
	s.link.end(err)
}

// forget deletes entries found to be wrong.
func (s *store) forget(ctx context.Context, keys []string) {
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		s.link.staleKey(keys...)
		return
	}
	defer cancel()
	s.link.endWrite(s.rdb.Del(c, keys...).Err(), keys...)
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Idempotency answers from Redis when it holds the record, else from the
// store, and then remembers the store's answer for the rest of its window.
func (s *store) Idempotency(ctx context.Context, key, idemKey string) (sb.IdempotencyRecord, error) {
	k := s.keys.idempotency(key, idemKey)
	if c, cancel, ok := s.link.begin(ctx); ok {
		v, err := s.rdb.Get(c, k).Result()
		cancel()
		s.link.end(err)
		if rec, ok := decodeIdempotency(v); err == nil && ok && s.live(rec) > 0 {
			return rec, nil
		}
	}
	rec, err := s.Store.Idempotency(ctx, key, idemKey)
	if err != nil {
		return rec, err
	}
	if ttl := s.live(rec); ttl > 0 {
		if c, cancel, ok := s.link.begin(ctx); ok {
			err := s.rdb.SetNX(c, k, encodeIdempotency(rec), ttl).Err()
			cancel()
			s.link.end(err)
		}
	}
	return rec, nil
}

// live returns how long a record has left of its window (<= 0: none).
func (s *store) live(rec sb.IdempotencyRecord) time.Duration {
	return rec.CreatedAt.Add(sb.IdempotencyWindow).Sub(s.now())
}

// Accept reserves the batch's idempotency keys in Redis (SET NX), so that
// a request racing on another node with the same key fails at once,
// stores the batch in the inner store, whose own check decides, and then
// replaces the reservations with the records, or releases them if the
// store refused the batch.
func (s *store) Accept(ctx context.Context, msgs []sb.NewMessage) error {
	keys := s.idempotencyKeys(msgs)
	token, err := s.reserve(ctx, keys)
	if err != nil {
		return err
	}
	if err := s.Store.Accept(ctx, msgs); err != nil {
		if token != "" {
			s.release(ctx, keys, token)
		}
		return err
	}
	if len(keys) > 0 {
		s.commit(ctx, msgs, token)
	}
	return nil
}

// idempotencyKeys returns the distinct Redis keys of the batch's
// idempotency keys.
func (s *store) idempotencyKeys(msgs []sb.NewMessage) []string {
	var keys []string
	seen := map[string]bool{}
	for _, nm := range msgs {
		if nm.IdempotencyKey == "" {
			continue
		}
		k := s.keys.idempotency(nm.Message.Key, nm.IdempotencyKey)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// reserveScript sets every key to a reservation unless one exists; if
// one does, it sets none of them and returns the index (1-based) and
// value of the one found. All or none, so a batch that fails leaves
// nothing reserved.
var reserveScript = goredis.NewScript(`
for i, k in ipairs(KEYS) do
  if not redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then
    local held = redis.call('GET', k)
    for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
    return {i, held}
  end
end
return {0}
`)

// reserve reserves keys for an Accept and returns the reservation's
// value, or "" when Redis was not used. It fails with ECONFLICT if
// another Accept holds one of them or the store made a live record of it;
// anything else Redis holds is left for the store to judge.
func (s *store) reserve(ctx context.Context, keys []string) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		return "", nil
	}
	defer cancel()
	token := reservationTag + s.tokenPrefix + "-" + strconv.FormatUint(s.tokens.Add(1), 10)
	res, err := reserveScript.Run(c, s.rdb, keys, token, reservationTTL.Milliseconds()).Slice()
	s.link.end(err)
	if err != nil || len(res) == 0 {
		return "", nil
	}
	i, _ := res[0].(int64)
	if i == 0 {
		return token, nil
	}
	held := ""
	if len(res) > 1 {
		held, _ = res[1].(string)
	}
	if rec, ok := decodeIdempotency(held); ok && s.live(rec) > 0 {
		return "", sb.Errorf(sb.ECONFLICT, "idempotency key already used by message %s", rec.MessageID)
	}
	if strings.HasPrefix(held, reservationTag) {
		return "", sb.Errorf(sb.ECONFLICT, "a request with this idempotency key is being accepted")
	}
	return "", nil
}

// releaseScript deletes the keys that still hold the reservation ARGV[1].
var releaseScript = goredis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 0
`)

func (s *store) release(ctx context.Context, keys []string, token string) {
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		return // the reservations expire by themselves
	}
	defer cancel()
	s.link.end(releaseScript.Run(c, s.rdb, keys, token).Err())
}

// commitScript writes each key's record for the rest of its window
// (ARGV[2i], ARGV[2i+1] milliseconds), or, for a record whose window has
// passed already, releases the reservation ARGV[1].
var commitScript = goredis.NewScript(`
for i, k in ipairs(KEYS) do
  local ttl = tonumber(ARGV[2*i + 1])
  if ttl > 0 then
    redis.call('SET', k, ARGV[2*i], 'PX', ttl)
  elseif redis.call('GET', k) == ARGV[1] then
    redis.call('DEL', k)
  end
end
return 0
`)

// commit replaces the reservations of an accepted batch with its records.
func (s *store) commit(ctx context.Context, msgs []sb.NewMessage, token string) {
	c, cancel, ok := s.link.begin(ctx)
	if !ok {
		return
	}
	defer cancel()
	var keys []string
	args := []any{token}
	seen := map[string]bool{}
	for _, nm := range msgs {
		if nm.IdempotencyKey == "" {
			continue
		}
		k := s.keys.idempotency(nm.Message.Key, nm.IdempotencyKey)
		if seen[k] {
			continue
		}
		seen[k] = true
		rec := sb.IdempotencyRecord{MessageID: nm.Message.ID, RequestHash: nm.RequestHash, CreatedAt: nm.Message.AcceptedAt}
		ttl := max(s.live(rec).Milliseconds(), 0)
		keys = append(keys, k)
		args = append(args, encodeIdempotency(rec), ttl)
	}
	err := commitScript.Run(c, s.rdb, keys, args...).Err()
	if errors.Is(err, goredis.Nil) {
		err = nil
	}
	s.link.end(err)
}
