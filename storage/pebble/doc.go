// Package pebble is Switchboard's embedded storage: a switchboard.Store
// (messages, the callback outbox, the inbox of inbound parts, settings) on
// a Pebble (github.com/cockroachdb/pebble/v2) database in one directory,
// for a single node.
//
// # Durability
//
// Every write (Accept, Record, FinishCallbacks, AddInboundPart,
// AcceptInbound, InitSetting) returns only after it is fsynced. Concurrent
// writes are group-committed: one committer goroutine gathers the queued
// requests into one batch per round, so many callers share one fsync (see
// commit.go). A callback is written in the same batch as the change it
// reports (Record with Update.Notify, AcceptInbound), so neither exists
// without the other after a crash. Reads go to Pebble directly and may see
// a write a moment before the call that made it returns, as Pebble
// publishes a batch before its fsync completes.
//
// # Key layout
//
// Keys begin with a two-byte prefix naming their kind. A component written
// ⟨s⟩ below is a uvarint length followed by the bytes, which keeps API keys
// and carrier names apart from what follows them whatever they contain; a
// trailing ID or carrier id is written bare, so indexes sort by it.
//
//	v/layout                    layout version (1 byte)
//	m/<id>                      the message (encoding in codec.go)
//	p/⟨key⟩<id>                 pending index: present while Message.Pending
//	d/⟨key⟩⟨YYYY-MM-DD⟩<id>     by-day index, UTC day of AcceptedAt
//	c/⟨carrier⟩<carrier id>     carrier index: version, part, message ID
//	i/⟨key⟩<idempotency key>    idempotency record: version, message ID,
//	                            request hash, CreatedAt
//	o/⟨endpoint⟩<callback id>   outbox: a queued callback (appendCallback;
//	                            its ID and Endpoint are the key's)
//	n/⟨carrier⟩⟨from⟩⟨to⟩<ref><total><seq>
//	                            inbound part, ref 2 bytes big-endian,
//	                            total and seq a byte each: the whole part
//	                            (appendInboundPart)
//	s/<name>                    setting: version, the value's bytes
//
// Index entries other than c/ and i/ have empty values: Pending and
// MessagesByDay read the messages they name from one snapshot. IDs are
// "msg_" and a ULID, so the ID order the indexes keep is acceptance order;
// callback IDs are "evt_" and a ULID, so an endpoint's outbox lists in
// creation order. CallbackEndpoints, like PendingKeys, seeks from one
// endpoint's prefix to the next, so an endpoint with a million queued
// callbacks costs one seek.
//
// An inbound message (AcceptInbound) has m/ and d/ entries like an
// accepted one, but never p/: it is not pending. Its parts' n/ entries are
// deleted in the same batch.
//
// The kinds added with the outbox (o/, n/, s/) left the layout version at
// 1: a database from before has none of them and reads as empty outbox,
// inbox and settings. Message values took a version 2 (see codec.go).
//
// # Idempotency
//
// A record's CreatedAt is its message's AcceptedAt, and it is live while
// younger than switchboard.IdempotencyWindow by Options.Now. Accept refuses
// (ECONFLICT) an idempotency key that has a live record, and overwrites an
// expired one. Expired records are not deleted: each is some tens of bytes.
package pebble
