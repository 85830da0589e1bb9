// Package pebble is Switchboard's embedded storage: a
// switchboard.MessageStore on a Pebble (github.com/cockroachdb/pebble/v2)
// database in one directory, for a single node.
//
// # Durability
//
// Accept and Record return only after their writes are fsynced. Concurrent
// writes are group-committed: one committer goroutine gathers the queued
// requests into one batch per round, so many callers share one fsync (see
// commit.go). Reads go to Pebble directly and may see a write a moment
// before the call that made it returns, as Pebble publishes a batch before
// its fsync completes.
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
//
// Index entries other than c/ and i/ have empty values: Pending and
// MessagesByDay read the messages they name from one snapshot. IDs are
// "msg_" and a ULID, so the ID order the indexes keep is acceptance order.
//
// # Idempotency
//
// A record's CreatedAt is its message's AcceptedAt, and it is live while
// younger than switchboard.IdempotencyWindow by Options.Now. Accept refuses
// (ECONFLICT) an idempotency key that has a live record, and overwrites an
// expired one. Expired records are not deleted: each is some tens of bytes.
package pebble
