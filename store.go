package switchboard

import (
	"context"
	"time"
)

// IdempotencyWindow is how long an Idempotency-Key is remembered.
const IdempotencyWindow = 24 * time.Hour

// NewMessage is a message to store on acceptance, with the idempotency
// record that must be stored atomically with it (empty Key: none).
type NewMessage struct {
	Message        *Message
	IdempotencyKey string
	// RequestHash identifies the request body, so a reused key with another
	// body can be told apart (409) from a retry (the first response).
	RequestHash [32]byte
}

// IdempotencyRecord remembers which message an Idempotency-Key produced.
type IdempotencyRecord struct {
	MessageID   string
	RequestHash [32]byte
	CreatedAt   time.Time
}

// Transition is one change to a stored message, applied by Message.Apply
// so every backend computes statuses the same way.
type Transition struct {
	Event Event
	// Part is the 0-based part a receipt is for; -1 for the whole message.
	Part int
	// CarrierIDs are set with StatusSubmitted: one id per part, indexed so
	// receipts (which name only the carrier's id) find the message.
	CarrierIDs []string
}

// MessageStore keeps messages durably. Every write returns only once it is
// synced to stable storage (or, for a replicated backend, written at the
// configured consistency): a crash after a write returned loses nothing.
// Implementations are safe for concurrent use and are expected to share the
// cost of syncing among concurrent writers (group commit).
//
// Contracts every backend keeps (storage/storagetest checks them):
//   - IDs are unique; Accept of an existing ID fails with ECONFLICT.
//   - Messages of a key are pending from Accept until a transition to
//     submitted or to a final status; Pending lists them in ID order,
//     which is acceptance order.
//   - Message, Pending and MessagesByDay return copies the caller may keep.
//   - A lookup that finds nothing returns an *Error with ENOTFOUND.
//   - Accept stores each message exactly as given: the caller sets status
//     accepted and the first event. An idempotency record's CreatedAt is
//     its message's AcceptedAt; Accept with an idempotency key that still
//     has a live record fails with ECONFLICT, so two racing requests with
//     one key produce one message.
//   - Record returns one message per update, as it stood after that
//     update; an update that changes nothing (Apply returns false) is not
//     an error.
//   - Nothing is deleted yet: retention is a decision still to be made.
type MessageStore interface {
	// Accept stores new messages in status accepted, each with its first
	// event, their idempotency records, and marks them pending. All or none.
	Accept(ctx context.Context, msgs []NewMessage) error

	// Idempotency returns the record of an Idempotency-Key of a key, or
	// ENOTFOUND if there is none younger than IdempotencyWindow.
	Idempotency(ctx context.Context, key, idempotencyKey string) (IdempotencyRecord, error)

	// Message returns a message by ID.
	Message(ctx context.Context, id string) (*Message, error)

	// Record applies transitions to messages (Message.Apply) and stores the
	// results, all or none. With StatusSubmitted it indexes the carrier
	// ids; leaving pending happens as Message.Pending says.
	Record(ctx context.Context, updates []Update) ([]*Message, error)

	// Pending lists up to limit pending messages of key with ID > afterID,
	// in ID order.
	Pending(ctx context.Context, key, afterID string, limit int) ([]*Message, error)

	// PendingCount counts the pending messages of key.
	PendingCount(ctx context.Context, key string) (int, error)

	// PendingKeys lists the keys that have pending messages, for recovery.
	PendingKeys(ctx context.Context) ([]string, error)

	// CarrierMessage finds the message and part a carrier's message id
	// belongs to.
	CarrierMessage(ctx context.Context, carrier, carrierID string) (messageID string, part int, err error)

	// MessagesByDay lists up to limit messages of key accepted on day
	// (YYYY-MM-DD, UTC) with ID > afterID, in ID order.
	MessagesByDay(ctx context.Context, key, day, afterID string, limit int) ([]*Message, error)

	// Close flushes and releases the store. Calls after Close fail.
	Close() error
}

// Update is one transition for one message.
type Update struct {
	MessageID  string
	Transition Transition
}
