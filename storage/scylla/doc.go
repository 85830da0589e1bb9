// Package scylla is a switchboard.Store on ScyllaDB or Apache Cassandra
// (CQL, through Scylla's fork of gocql): messages, the callback outbox,
// the inbox of inbound parts and settings, for one node now and for many
// nodes sharing a cluster later.
//
// # Tables
//
// schema.go creates and migrates them (versioned, under a lock, so nodes
// starting together migrate once). A bucket is the first 7 characters of
// an ID's ULID, about 33 seconds (ids.go).
//
//	messages        ((key, day, bucket), id DESC)  the message log: status, data (codec.go)
//	message_days    ((key, day), bucket DESC)      the buckets of a key's day, for listings
//	message_ids     ((slice), id)                  ID → key and day; slice = bucket + hash shard
//	carrier_ids     ((carrier, carrier_id))        carrier's id → message, part
//	parked_receipts ((carrier, carrier_id), seq)   receipts waiting for their submit's record
//	idempotency     ((key, idem_key))              Idempotency-Key records
//	pending         ((owner, bucket), id)          queue: pending messages per API key
//	outbox          ((owner, bucket), id)          queue: callbacks per endpoint
//	receipt_due     ((owner, bucket), id)          queue: receipt deadlines, 4 shards
//	queue_marks     ((kind), owner)                each queue owner's low-water mark
//	queue_buckets   ((kind, owner), bucket)        the buckets each queue owner has used
//	inbound_parts   ((shard), carrier, …, seq)     parts of long inbound messages
//	fences          ((key))                        each key's fencing token (fence.go)
//	settings, health, schema_version, schema_lock
//
// Every row about a message is written with what is left of its TTL: it
// expires when the UTC day the message was accepted on is older than
// Options.TTL; the tables of those rows compact in time windows sized to
// it. The queues are written and deleted without becoming the queue
// anti-pattern: see queue.go.
//
// # Writes
//
// A write returns when every row is written at Options.Consistency. The
// rows of concurrent calls are grouped by partition into unlogged batches,
// and where every node replicates every partition (one node; three with
// replication factor 3) packed into as few batches as the size limits
// allow, with a few batches in flight per node, so the busier the store
// the fewer requests per message (writer.go, topology.go). A call's rows
// go in steps, the rows that point at a state before the state itself, so
// a failure part way leaves no message without its indexes (Accept:
// indexes, then the message; Record: carrier ids, callbacks and
// deadlines, then the messages). The clean-up after a Record (queue
// entries and deadlines no longer needed, carrier ids shortened to their
// grace) is written after Record returns; reads of the queue skip what it
// has not deleted yet, and counts and reads of pending work wait for the
// clean-ups begun before them. A read deletes an entry its message does
// not match only when the message's row was written after the entry
// (read.go staleEntry): a row older than its entry, or none, may be a
// write still on its way, on this node or another.
//
// Reads are spared where that is safe: the checks that new IDs are
// unused of concurrent Accepts share queries (idcheck.go); a Record of a
// message this process accepted, before it has carrier ids or a
// callback, uses the copy this process wrote instead of reading it
// (recent.go, which says why no other node can have written it); the
// carrier ids and parked receipts a Record looks up go in one query per
// carrier.
//
// Every statement carries its own write time and is idempotent, so the
// driver retries it on a timeout (retryPolicy). A write that still fails
// fails its call with EUNAVAILABLE: its outcome is unknown, and the caller
// is told so, never a success. An Accept that failed is undone: its rows
// are deleted with a later write time, retried until the delete lands
// (doomed), and reads do not show the message meanwhile; a Record is
// recorded again by the engine, which Message.Apply makes harmless. After
// any failed query the store refuses writes (Writable says why) until a
// write probe at the store's consistency lands (health.go).
//
// Idempotency-Key records and settings are claimed with lightweight
// transactions, so two requests with one key make one message on any
// nodes. Nothing else is: a message's read-modify-write (Record,
// FinishCallbacks) holds a lock on the message in this process, which
// serializes the updates of one message here; updates of one message from
// two nodes at once are not serialized (see docs/operations.md).
//
// Reads use the consistency that overlaps the writes' (read and write
// replicas together exceed the replication factor), so a read sees every
// write that returned.
package scylla
