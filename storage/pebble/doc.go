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
// without the other after a crash. Pebble makes a batch visible to reads
// before its fsync completes; a read that found something while a batch
// was syncing waits for that fsync before it returns (Store.durable), so
// nothing is read back that a crash or a failed sync could take away. A
// read that found nothing does not wait: an Idempotency-Key seen for the
// first time costs no fsync. If an fsync or a write
// fails, the store refuses every write and every read from then on
// (fail-stop) until it is reopened, which replays the write-ahead log.
//
// # The disk
//
// Below Options.MinFree of free space the store refuses new messages
// (Accept, AcceptInbound, AddInboundPart) and Writable says so, while every
// other write goes on: messages already accepted still reach a final
// status, and retention goes on freeing space (disk.go).
//
// # Key layout
//
// Keys begin with a two-byte prefix naming their kind. A component written
// ⟨s⟩ below is a uvarint length followed by the bytes, which keeps API keys
// and carrier names apart from what follows them whatever they contain; a
// trailing ID or carrier id is written bare, so indexes sort by it. A
// <time> is 12 bytes that sort in time order: Unix seconds, big-endian,
// sign bit flipped, then nanoseconds (appendTimeKey).
//
//	v/layout                    layout version (1 byte)
//	m/<id>                      the message (encoding in codec.go)
//	p/⟨key⟩<id>                 pending index: present while Message.Pending
//	k/⟨key⟩                     the key's number of pending messages
//	d/⟨key⟩⟨YYYY-MM-DD⟩<id>     by-day index, UTC day of AcceptedAt
//	u/<receipt due><id>         receipt-due index: present while the message
//	                            is submitted with a ReceiptDue (Overdue)
//	c/⟨carrier⟩<carrier id>     carrier index: version, part, message ID
//	r/⟨carrier⟩⟨carrier id⟩     updates parked by carrier id: version, then
//	                            each one's ParkUntil, event, carrier ids and
//	                            ReceiptDue (park.go)
//	i/⟨key⟩<idempotency key>    idempotency record: version, message ID,
//	                            request hash, CreatedAt
//	x/<kind><time><record key>  expiry queue (retention.go): kind c (a
//	                            carrier index entry, at its message's
//	                            final time; no longer written), i (an
//	                            idempotency record, at its CreatedAt) or r
//	                            (parked updates, at ParkUntil); the value
//	                            is the message ID the record must still
//	                            name to be deleted
//	x/g<time><sequence>         expiry queue, kind g: the carrier index
//	                            entries whose messages turned final in one
//	                            batch within one second, at the end of it
//	                            (finalrefs.go); the value is the version,
//	                            their number, then each one's key and
//	                            message ID
//	o/⟨endpoint⟩<callback id>   outbox: a queued callback (appendCallback;
//	                            its ID and Endpoint are the key's)
//	n/⟨carrier⟩⟨from⟩⟨to⟩<ref><total><seq>
//	                            inbound part, ref 2 bytes big-endian,
//	                            total and seq a byte each: the whole part
//	                            (appendInboundPart)
//	s/<name>                    setting: version, the value's bytes
//	f/⟨key⟩                     the key's fencing token, a varint
//	                            (RaiseFence, fence.go)
//
// Index entries p/, d/ and u/ have empty values: Pending and ListMessages
// read the messages they name from one snapshot. IDs are "msg_" and a
// ULID, so the ID order the indexes keep is acceptance order; callback IDs
// are "evt_" and a ULID, so an endpoint's outbox lists in creation order.
// CallbackEndpoints, like PendingKeys, seeks from one endpoint's prefix to
// the next, so an endpoint with a million queued callbacks costs one seek.
// Every table records, per block and for the whole table, the times (the
// ULID milliseconds) of the o/ entries it holds, a block property named
// switchboard.outbox-times; a listing after a callback skips the tables
// and blocks with nothing at or after that callback's time unopened
// (outboxtimes.go). A table without the property is always read.
//
// An inbound message (AcceptInbound) has m/ and d/ entries like an
// accepted one, but never p/: it is not pending. Its parts' n/ entries are
// deleted in the same batch.
//
// The committer writes k/ once per batch for each key whose pending index
// the batch changed, from the counts it keeps, so PendingCount is one read.
// Record writes c/ for the carrier ids a transition records (never "" nor
// an id a part has already), and with them applies and deletes what r/
// holds for each id. A parked update's r/ key is found with a Get (a
// bloom filter answers the usual miss), so a submit costs no seek for it.
//
// # Single deletes
//
// Most entries live for seconds: a message's p/ from its accept to its
// submit, its u/ from the submit to its receipt, a callback's o/ from the
// status change to the webhook's answer. A Delete would leave a tombstone
// for each, which a flush writes to disk even when the entry it hides
// never got there, and compactions carry it on until it reaches the
// bottom level; an outbox listing after a restart steps over every one.
// These three kinds are removed with Pebble's SingleDelete instead, which
// cancels against the one version under it and leaves nothing once they
// meet, in the memtable being flushed or in a compaction.
//
// A single delete is only correct for a key set once before it: over two
// versions it removes the newer and the older comes back. Each of these
// keys is: p/ is set when a message is accepted and removed once it is
// submitted or final, and a submitted message never becomes pending again
// (Message.Apply); u/ names its due time and is set once, when the
// message is submitted, and removed when it turns final; an o/ key holds
// the callback's own ID, written once. The committer decides both from
// the stored message (touchedMessage.wasPending and wasDue), as it does
// the pending counters. Retention removes entries of messages it deletes
// with plain deletes, which are always correct. If Pebble finds a single
// delete that met two versions in a compaction, the store logs it at
// error level (log.go).
//
// # Versions
//
// The kinds added with the outbox (o/, n/, s/) left the layout version at
// 1: a database from before has none of them and reads as empty outbox,
// inbox and settings. Layout 2 added k/, u/, r/, x/ and f/; Open migrates
// a layout 1 database once (migrate.go), counting k/ from p/ and queueing
// its idempotency records in x/ (the others start empty). The grouped
// expiry entries (x/g) came within layout 2: retention reads the single
// ones (x/c) a database from before holds as well, and a binary from
// before that opens a newer database leaves the groups alone, so their
// carrier ids last until their messages' TTL instead of the grace.
// Message values took versions 2 and 3 (see codec.go).
//
// # Retention
//
// A housekeeping goroutine deletes, in bounded batches through the
// committer: messages (with m/, d/, p/, k/'s count, u/ and the c/ entries
// that still name them) once the UTC day they were accepted on is older
// than Options.TTL; c/ entries Options.CarrierIDGrace after their message
// turned final; idempotency records after switchboard.IdempotencyWindow;
// parked updates at their ParkUntil (retention.go).
//
// # Idempotency
//
// A record's CreatedAt is its message's AcceptedAt, and it is live while
// younger than switchboard.IdempotencyWindow by Options.Now. Accept refuses
// (ECONFLICT) an idempotency key that has a live record, and overwrites an
// expired one. Retention deletes expired records.
package pebble
