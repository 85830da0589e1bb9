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
	// CarrierIDs are set with StatusSubmitted: one id per part ("" for a
	// part the carrier has not accepted), indexed so receipts (which name
	// only the carrier's id) find the message. A receipt that arrived
	// before its submit was recorded carries them too (Apply records the
	// submission with it), and they are indexed the same way.
	CarrierIDs []string
	// ReceiptDue goes with StatusSubmitted: when the message ends unknown
	// if no receipt has made it final (Message.ReceiptDue). A receipt that
	// carries CarrierIDs carries one too, so a submission it records has
	// a deadline even if its submit's record never lands (a crash).
	ReceiptDue time.Time
}

// MessageStore keeps messages durably. Every write returns only once it is
// synced to stable storage (or, for a replicated backend, written at the
// configured consistency): a crash after a write returned loses nothing.
// Implementations are safe for concurrent use and are expected to share the
// cost of syncing among concurrent writers (group commit).
//
// Contracts every backend keeps (storage/storagetest checks them):
//   - IDs are unique; Accept of an existing ID fails with ECONFLICT.
//   - Messages of a key are pending from Accept until every part is
//     submitted or the message is final (Message.Pending); Pending lists
//     them in ID order, which is acceptance order. PendingCount costs the
//     same however many messages a key has had (a counter, not a scan).
//   - Message, Pending and ListMessages return copies the caller may keep.
//   - A lookup that finds nothing returns an *Error with ENOTFOUND.
//   - Accept stores each message exactly as given: the caller sets status
//     accepted and the first event. An idempotency record's CreatedAt is
//     its message's AcceptedAt; Accept with an idempotency key that still
//     has a live record fails with ECONFLICT, so two racing requests with
//     one key produce one message.
//   - Record returns one message per update, as it stood after that
//     update (nil for an update it parked, see Update.ByCarrier); an
//     update that changes nothing (Apply returns false) is not an error.
//     An update with Notify queues the callback Notify.StatusCallbacks
//     returns (status before the update, message after it), in the same
//     write.
//   - A message that is submitted (not final) with a ReceiptDue is listed
//     by Overdue from that time until it is final.
//   - A store that cannot take writes now says so through Writable, and
//     every write then fails with EUNAVAILABLE: nothing is acknowledged
//     that is not durable, and nothing a failed write touched is read back
//     as if it had landed.
//   - Retention: a message, and every index that names it, is deleted
//     once it is older than the store's TTL (storage.ttl); an idempotency
//     record once IdempotencyWindow has passed; a parked receipt at its
//     ParkUntil. Until then everything stays readable.
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
	// ids and applies the receipts parked for them; leaving pending
	// happens as Message.Pending says.
	Record(ctx context.Context, updates []Update) ([]*Message, error)

	// Pending lists up to limit pending messages of key with afterID < ID
	// < beforeID, in ID order; beforeID "" sets no upper bound.
	Pending(ctx context.Context, key, afterID, beforeID string, limit int) ([]*Message, error)

	// PendingCount counts the pending messages of key.
	PendingCount(ctx context.Context, key string) (int, error)

	// PendingKeys lists the keys that have pending messages, for recovery.
	PendingKeys(ctx context.Context) ([]string, error)

	// CarrierMessage finds the message and part a carrier's message id
	// belongs to.
	CarrierMessage(ctx context.Context, carrier, carrierID string) (messageID string, part int, err error)

	// Overdue lists up to limit IDs of submitted messages whose ReceiptDue
	// is before before, earliest due first.
	Overdue(ctx context.Context, before time.Time, limit int) ([]string, error)

	// ListMessages lists one key's messages of one UTC day, newest first,
	// filtered as q says. It reads at most a bounded number of messages
	// per call, so it may return fewer than q.Limit with a non-empty next:
	// next is the Before of the following call, "" when the day is done.
	ListMessages(ctx context.Context, q MessageQuery) (msgs []*Message, next string, err error)

	// RaiseFence raises key's fence to token, if token is higher, and
	// returns the fence in force. In a cluster, the node that owns a key
	// holds a lease on it with a fencing token (Leases); it raises the
	// fence before it writes, and its writes carry the token. From then on
	// the store refuses (EUNAVAILABLE, storing nothing) every write that
	// carries a lower token for that key — an Accept of one of its
	// messages (Message.Fence), or a Record of an update of one
	// (Update.Fence) — so an owner that lost its lease while paused or cut
	// off cannot commit for the key once a newer owner has fenced it.
	// Writes with Fence 0 are not checked. A message keeps the token it
	// was accepted with, so who committed what can be checked afterwards.
	RaiseFence(ctx context.Context, key string, token int64) (int64, error)

	// Writable reports whether writes can be taken now: nil, or an *Error
	// with EUNAVAILABLE saying why not (the store failed, the disk is
	// nearly full, the database cannot be reached). It is cheap enough to
	// call on every request.
	Writable() error

	// Close flushes and releases the store. Calls after Close fail.
	Close() error
}

// MessageQuery selects messages for ListMessages.
type MessageQuery struct {
	Key string
	Day string // YYYY-MM-DD, UTC: the day the message was accepted
	// Before is an exclusive upper bound on the message ID ("": the
	// newest); listing pages pass the previous call's next here.
	Before string
	// Filters; zero values select everything.
	Status    Status
	Direction string // "outbound" or DirectionInbound
	To        string
	Limit     int // the most messages to return; at least 1
}

// Matches reports whether m passes q's filters (not Key, Day or Before).
// Every backend filters with it.
func (q *MessageQuery) Matches(m *Message) bool {
	switch {
	case q.Status != "" && m.Status != q.Status:
		return false
	case q.Direction == DirectionInbound && m.Direction != DirectionInbound,
		q.Direction == DirectionOutbound && m.Direction == DirectionInbound:
		return false
	case q.To != "" && m.To != q.To:
		return false
	}
	return true
}

// Update is one transition for one message.
type Update struct {
	MessageID  string
	Transition Transition
	// Notify, if set, asks for a status callback when the transition
	// changes the message's status (Notify.StatusCallbacks decides); the
	// callback is queued in the outbox in the same write.
	Notify *Notify
	// ByCarrier, when MessageID is empty, names the message by a carrier's
	// id instead: a receipt knows only the carrier's id. The store finds
	// the message and its part through the index it keeps for submitted
	// transitions (Transition.Part is set from it). If no message has the
	// id yet (the receipt overtook its submit_sm_resp or the record of
	// its submit), the store parks the update until ParkUntil and Record
	// returns nil for it; the Record that indexes the id applies it, in
	// the same write, after the submitted transition, if it can be that
	// submit's (ParkedReceiptFits), and drops it otherwise. With a zero
	// (or past) ParkUntil nothing is parked: Record returns nil, which
	// says the id is not known yet.
	ByCarrier *CarrierRef
	ParkUntil time.Time
	// Fence is the writer's fencing token for the message's key (see
	// MessageStore.RaiseFence); 0 writes unfenced, as receipts do.
	Fence int64
}

// ReceiptLead is how long before the transition that gives a carrier id
// a receipt for that id can have been read: a receipt overtakes its
// submit's response (or the record of it) by moments, and a submit is
// answered within its carrier's response timeout, well under this.
const ReceiptLead = 10 * time.Minute

// ParkedReceiptFits reports whether a parked update whose event is at
// parked can answer the transition that gives its carrier id to a
// message. One parked longer than ReceiptLead before a submitted
// transition is a receipt for an earlier message the carrier gave the
// same id (a repeat of it, sent after that message's id left the index):
// carriers reuse ids, and that receipt must not settle the new message.
// A receipt that carries its submission (it overtook the record of its
// submit) gives the ids at its own time, not the submit's, so it is no
// measure: what is parked applies. Nodes' clocks must agree within
// minutes (the receipt may be read on another node than its submit's
// answer).
func ParkedReceiptFits(parked time.Time, indexing Transition) bool {
	return indexing.Event.Status != StatusSubmitted || !parked.Before(indexing.Event.At.Add(-ReceiptLead))
}

// CarrierRef is a carrier's message id, normalised, and the carrier's name.
type CarrierRef struct {
	Carrier string
	ID      string
}

// Store is everything a node keeps: messages, the callback outbox, the
// inbound messages' parts and a few settings. One backend implements all
// of it, so a message and the callback about it are written together.
type Store interface {
	MessageStore
	Outbox
	Inbox
	Settings
}

// Outbox keeps callbacks from the write that created them until they are
// delivered or given up. Record (through Update.Notify) and AcceptInbound
// queue them; the webhook dispatcher lists and finishes them.
//
// Contracts (storage/storagetest checks them):
//   - Callbacks of an endpoint list in ID order; a callback is listed from
//     the moment the write that queued it returns until FinishCallbacks
//     removes it.
//   - Finishing a callback that is not queued (finished already) is not an
//     error, so a delivery repeated after a crash is harmless.
type Outbox interface {
	// Callbacks lists up to limit queued callbacks of endpoint with
	// afterID < ID < beforeID ("": no upper bound), in ID order.
	Callbacks(ctx context.Context, endpoint, afterID, beforeID string, limit int) ([]Callback, error)

	// CallbackEndpoints lists the endpoints that have queued callbacks, for
	// recovery.
	CallbackEndpoints(ctx context.Context) ([]string, error)

	// FinishCallbacks removes callbacks from the outbox. For one given up
	// (Failure set) it also appends the failure to its message's
	// WebhookFailures. All or none; a message that no longer exists is
	// skipped.
	FinishCallbacks(ctx context.Context, done []FinishedCallback) error
}

// FinishedCallback is a callback that was delivered (Failure nil) or given
// up on.
type FinishedCallback struct {
	Callback Callback // ID, Endpoint and MessageID are what is needed
	Failure  *WebhookFailure
}

// Inbox keeps inbound (mobile-originated) messages and, until a long
// message is complete, its parts, so a part acknowledged to the carrier
// survives a crash.
//
// Contracts: a part is identified by carrier, from, to and its Concat
// (ref, total, seq); storing one with the identity of a stored part
// replaces it. AcceptInbound's message is stored like an accepted one
// (by ID and in the by-day index) but is never pending.
type Inbox interface {
	// AddInboundPart stores one part of a concatenated message.
	AddInboundPart(ctx context.Context, p InboundPart) error

	// InboundParts lists every stored part, for reassembly after a restart.
	InboundParts(ctx context.Context) ([]InboundPart, error)

	// AcceptInbound stores an inbound message, queues its callback (nil:
	// none) and removes the parts it was assembled from (which may include
	// parts never stored). The message and its callback are one write; the
	// removal may be another (Cassandra), which a crash can cut off: the
	// engine gives a long message the same ID each time its parts are
	// assembled, so parts left behind are refused here (an existing ID is
	// ECONFLICT) rather than stored twice.
	AcceptInbound(ctx context.Context, m *Message, cb *Callback, parts []InboundPart) error

	// DeleteInboundParts removes stored parts whose message will not be
	// stored (its number belongs to no key any more). Parts not stored
	// are skipped.
	DeleteInboundParts(ctx context.Context, parts []InboundPart) error
}

// Settings keeps small values a node must remember across restarts, such
// as generated webhook secrets and the keys, carriers and routes created
// through the admin API. Names are non-empty UTF-8 strings; a value may
// be any UTF-8 string, empty included. Every write is durable when it returns, like
// MessageStore's, and is seen by every read that starts after it returned.
type Settings interface {
	// InitSetting stores value under name unless a value is stored there
	// already, and returns the stored value: so two nodes (or two starts)
	// racing to generate a secret agree on one.
	InitSetting(ctx context.Context, name, value string) (string, error)

	// PutSetting stores value under name, replacing any value stored.
	PutSetting(ctx context.Context, name, value string) error

	// DeleteSetting removes name; a name with no value is not an error.
	DeleteSetting(ctx context.Context, name string) error

	// ListSettings returns every setting whose name starts with prefix
	// ("" lists all), in name order (bytewise).
	ListSettings(ctx context.Context, prefix string) ([]Setting, error)
}

// Setting is one named value of Settings.
type Setting struct {
	Name, Value string
}
