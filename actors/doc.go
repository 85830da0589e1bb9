// Package actors is Switchboard's engine, built on protoactor-go. Reading
// the files in this order follows a message:
//
//	engine.go      Engine: the API the http package calls; owns the actor
//	               system, the key registry (the one seam where an identity
//	               becomes a PID) and recovery on start
//	key.go         one actor per API key: rate limit, queue bound, durable
//	               acceptance, per-destination FIFO, dispatch and retries
//	router.go      longest-prefix routes to carriers in failover order,
//	               carrier health
//	carrier.go     one supervisor actor per carrier, restarting its binds
//	               with capped exponential backoff and full jitter
//	bind.go        one actor per SMPP bind, owning a carriers/smpp Client
//	receipts.go    receipt correlation (carrier id → message) and the
//	               batched recording of status transitions
//
// Supervision is decided where children are spawned: the engine's root
// spawns key actors and carrier supervisors; each carrier supervisor spawns
// its binds with the backoff strategy in carrier.go.
package actors
