// Package redis puts Redis (github.com/redis/go-redis/v9) beside a
// switchboard.Store, for nodes that share storage:
//
//   - Wrap: a cache in front of the store for the reads every node makes
//     and any node may need — a carrier's message id → message and part
//     (receipts arrive on any bind of any node), and idempotency records,
//     with Accept reserving Idempotency-Keys (SET NX) so that racing
//     requests on different nodes conflict at once;
//   - Leases: switchboard.Leases, leases with fencing tokens, one Lua
//     script per operation.
//
// # What Redis holds, and what if it is lost
//
// The cache holds copies of what the store has made durable, and
// reservations that live 30 s at most: nothing whose loss loses a message.
// A write is acknowledged only when the store took it. If Redis is flushed,
// every answer comes from the store again (which refills the cache); the
// store's own idempotency check still refuses a second message with the
// same key. While Redis does not answer, every call goes to the store
// alone: each Redis call is bounded by a short timeout, the first failure
// makes calls skip Redis, and one call a second tries it again; each
// change is logged once. Entries this node could not replace or delete
// meanwhile are deleted before the cache is read again.
//
// Leases have no store to fall back on: while Redis does not answer,
// Acquire, Renew and Release fail with EUNAVAILABLE, and a holder stops
// acting for a name when its lease's Expires passes. If Redis loses the
// leases, each holder's Renew fails (ECONFLICT) and the names are taken
// again, with tokens above the lost ones (see Leases).
//
// Keys are listed in keys.go.
package redis
