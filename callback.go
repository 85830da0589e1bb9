package switchboard

import (
	"encoding/json"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Callback event types: the "type" field of the JSON a customer receives.
const (
	CallbackStatus  = "message.status"
	CallbackInbound = "message.inbound"
)

// Callback is one event waiting to be POSTed to a customer's URL. It is
// written to the store's outbox in the same write as the change it reports,
// so a crash cannot lose it, and removed once delivered or given up.
type Callback struct {
	// ID is "evt_" and a ULID: the event_id receivers drop duplicates by.
	// IDs sort in creation order, and events of one message are delivered
	// in ID order.
	ID   string
	Type string
	Key  string
	URL  string
	// Endpoint is the URL's scheme://host:port (CallbackEndpoint): the unit
	// of concurrency limits, circuit breaking and outbox listings.
	Endpoint  string
	MessageID string
	CreatedAt time.Time
	// Data is the event as a JSON object without event_id and attempt,
	// which are added each time it is sent.
	Data []byte
}

// WebhookFailure records a callback that was given up on.
type WebhookFailure struct {
	EventID  string    `json:"event_id"`
	Type     string    `json:"type"`
	URL      string    `json:"url"`
	Reason   string    `json:"reason"` // WebhookMaxAge, WebhookGone, WebhookRefused or WebhookKeyRemoved
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"`
}

// Reasons a callback is given up on.
const (
	WebhookMaxAge = "max_age"
	WebhookGone   = "gone"
	// WebhookRefused: the URL may never be called (not http(s), carries
	// credentials, or names an address the policy refuses).
	WebhookRefused = "refused"
	// WebhookKeyRemoved: the callback's key was not configured (removed,
	// or never known to the node delivering it) for a while, so there was
	// no secret to sign it with and it was never sent.
	WebhookKeyRemoved = "key_removed"
)

// StatusSet is a set of statuses: the ones a key wants callbacks for.
type StatusSet uint16

var statusBits = []Status{StatusQueued, StatusSubmitted, StatusDelivered, StatusUndeliverable,
	StatusExpired, StatusRejected, StatusFailed, StatusUnknown, StatusCanceled}

func statusBit(s Status) StatusSet {
	for i, b := range statusBits {
		if b == s {
			return 1 << i
		}
	}
	return 0
}

// NewStatusSet returns the set of the given statuses; ok is false if one of
// them cannot have a callback (accepted, received, or not a status).
func NewStatusSet(statuses ...Status) (set StatusSet, ok bool) {
	for _, s := range statuses {
		b := statusBit(s)
		if b == 0 {
			return 0, false
		}
		set |= b
	}
	return set, true
}

// DefaultCallbackStatuses is what a key hears about unless it says
// otherwise: submitted and every final status.
var DefaultCallbackStatuses StatusSet = statusBit(StatusSubmitted) | statusBit(StatusDelivered) |
	statusBit(StatusUndeliverable) | statusBit(StatusExpired) | statusBit(StatusRejected) | statusBit(StatusFailed) |
	statusBit(StatusUnknown) | statusBit(StatusCanceled)

// Statuses lists the statuses in the set, in the order a message moves
// through them.
func (set StatusSet) Statuses() []Status {
	var out []Status
	for _, s := range statusBits {
		if set.Has(s) {
			out = append(out, s)
		}
	}
	return out
}

// Has reports whether s is in the set.
func (set StatusSet) Has(s Status) bool { b := statusBit(s); return b != 0 && set&b != 0 }

// Notify asks Record to queue status callbacks along with an update, when
// the update moves the message to a status in Statuses. The callback is
// stored in the same write as the status, so one cannot exist without the
// other.
type Notify struct {
	// EventID becomes the callback's ID if one is queued (see
	// StatusCallbacks for a second).
	EventID string
	// DefaultURL is the key's callback URL, used when the message has
	// none of its own. With neither, nothing is queued.
	DefaultURL string
	// DefaultEndpoint, if set, is CallbackEndpoint(DefaultURL), which the
	// writer parsed once: StatusCallbacks then need not parse the URL
	// inside the store's commit. Empty: it is parsed when needed.
	DefaultEndpoint string
	Statuses        StatusSet
	// Policy, if set, replaces DefaultURL, DefaultEndpoint and Statuses
	// with the message's key's: for writers that do not know which key a
	// message belongs to (a receipt names only the carrier's id).
	Policy func(key string) KeyCallbacks
	At     time.Time // the callback's CreatedAt

	// Before, Queued and Endpoint are results: StatusCallbacks sets them
	// as the store computes the update's callbacks, and the writer reads
	// them once Record has returned (for its metrics, and to tell the
	// endpoint to look): the status before the update, how many callbacks
	// it queued, and the endpoint they were queued to. Zero if the update
	// was parked.
	Before   Status
	Queued   int
	Endpoint string
}

// KeyCallbacks is what an API key asks of status callbacks: its default
// URL, that URL's endpoint (CallbackEndpoint; empty if not parsed yet) and
// the statuses it wants to hear of.
type KeyCallbacks struct {
	URL      string
	Endpoint string
	Statuses StatusSet
}

// StatusCallbacks returns the callbacks n asks for after an update moved
// m from status before to its present one: none, one, or two when the
// update passed through submitted on its way to a final status (a receipt
// that overtook its submit's record carries the submission: Apply), so a
// key that wants submitted hears of it, before the final one. The first
// has ID n.EventID, a second n.EventID+"-2", which sorts right after it.
// Every store calls this, so all agree on what is sent.
func (n *Notify) StatusCallbacks(before Status, m *Message) []Callback {
	if n == nil {
		return nil
	}
	n.Before, n.Queued, n.Endpoint = before, 0, ""
	if m.Status == before {
		return nil
	}
	key := KeyCallbacks{URL: n.DefaultURL, Endpoint: n.DefaultEndpoint, Statuses: n.Statuses}
	if n.Policy != nil {
		key = n.Policy(m.Key)
	}
	statuses := key.Statuses
	// The statuses the update reached that the key wants, decided before
	// any URL is parsed: most transitions (queued, a key without a URL)
	// want none, and this runs inside the store's commit.
	var wanted []Status
	// A message that went from pending to final with every part taken by
	// the carrier skipped submitted (a receipt overtook the record of its
	// submit): it is reported too. One some parts of which the carrier
	// never took (a long message that failed, expired or was canceled
	// part-way) was never submitted.
	if statuses.Has(StatusSubmitted) && (before == StatusAccepted || before == StatusQueued) && m.Status.Final() && m.allSubmitted() {
		wanted = append(wanted, StatusSubmitted)
	}
	if statuses.Has(m.Status) {
		wanted = append(wanted, m.Status)
	}
	u, endpoint := m.CallbackURL, ""
	if u == "" {
		u, endpoint = key.URL, key.Endpoint
	}
	if len(wanted) == 0 || u == "" {
		return nil
	}
	if endpoint == "" {
		var err error
		if endpoint, err = CallbackEndpoint(u); err != nil {
			return nil
		}
	}
	cbs := make([]Callback, len(wanted))
	for i, s := range wanted {
		id := n.EventID
		if i > 0 {
			id += "-2"
		}
		cbs[i] = Callback{
			ID: id, Type: CallbackStatus, Key: m.Key, URL: u, Endpoint: endpoint,
			MessageID: m.ID, CreatedAt: n.At, Data: statusData(m, s),
		}
	}
	n.Queued, n.Endpoint = len(cbs), endpoint
	return cbs
}

// statusEvent is the JSON of a message.status callback, less event_id and
// attempt.
type statusEvent struct {
	Type             string      `json:"type"`
	MessageID        string      `json:"message_id"`
	Status           Status      `json:"status"`
	To               string      `json:"to"`
	From             string      `json:"from"`
	Reference        string      `json:"reference,omitempty"`
	Carrier          string      `json:"carrier,omitempty"`
	CarrierMessageID string      `json:"carrier_message_id,omitempty"`
	Error            *EventError `json:"error,omitempty"`
	Segments         int         `json:"segments"`
	OccurredAt       time.Time   `json:"occurred_at"`
}

// statusData is the JSON of m's event of status s.
func statusData(m *Message, s Status) []byte {
	ev := statusEvent{Type: CallbackStatus, MessageID: m.ID, Status: s, To: m.To, From: m.From,
		Reference: m.Reference, Carrier: m.Carrier, Segments: m.Segments, OccurredAt: m.UpdatedAt.UTC()}
	// The event that set the status: the last one with that status.
	for i := len(m.Events) - 1; i >= 0; i-- {
		if e := m.Events[i]; e.Status == s {
			ev.OccurredAt, ev.Error = e.At.UTC(), e.Error
			ev.CarrierMessageID = e.CarrierMessageID
			if e.Carrier != "" {
				ev.Carrier = e.Carrier
			}
			break
		}
	}
	if why := m.errorOf(s); why != nil {
		// As GET /v1/messages/{id} says it: an expired or canceled
		// message, or a receipt without an error code, still says why.
		ev.Error = why
	}
	if ev.CarrierMessageID == "" && len(m.CarrierIDs) > 0 {
		ev.CarrierMessageID = m.CarrierIDs[0]
	}
	if b, ok := ev.appendPlain(make([]byte, 0, 320)); ok {
		return b
	}
	b, _ := json.Marshal(ev) // cannot fail: strings, ints and times of years 0-9999
	return b
}

// appendPlain appends ev's JSON as json.Marshal writes it, if every string
// in it is plain (see appendPlainString) and its time's year has four
// digits; otherwise it reports false and json.Marshal writes it. Events are
// built inside the store's single commit loop, where encoding/json's
// reflection was a quarter of the time spent on callbacks, and nearly every
// event is plain: IDs, E.164 numbers, ASCII sender IDs and carrier names.
func (ev *statusEvent) appendPlain(b []byte) ([]byte, bool) {
	if y := ev.OccurredAt.Year(); y < 0 || y > 9999 {
		return nil, false
	}
	ok, first := true, true
	str := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		ok = ok && appendPlainString(&b, v)
	}
	b = append(b, '{')
	str("type", ev.Type, false)
	str("message_id", ev.MessageID, false)
	str("status", string(ev.Status), false)
	str("to", ev.To, false)
	str("from", ev.From, false)
	str("reference", ev.Reference, true)
	str("carrier", ev.Carrier, true)
	str("carrier_message_id", ev.CarrierMessageID, true)
	if e := ev.Error; e != nil {
		b = append(b, `,"error":{"code":`...)
		ok = ok && appendPlainString(&b, e.Code)
		if e.Description != "" {
			b = append(b, `,"description":`...)
			ok = ok && appendPlainString(&b, e.Description)
		}
		b = append(b, '}')
	}
	b = append(b, `,"segments":`...)
	b = strconv.AppendInt(b, int64(ev.Segments), 10)
	b = append(b, `,"occurred_at":"`...)
	b = ev.OccurredAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b, ok
}

// appendPlainString appends s quoted if it needs no escaping in
// encoding/json's default output: printable ASCII other than the quote,
// the backslash and the HTML characters <, > and &, which json.Marshal
// escapes. It reports whether it did.
func appendPlainString(b *[]byte, s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	*b = append(*b, '"')
	*b = append(*b, s...)
	*b = append(*b, '"')
	return true
}

// inboundEvent is the JSON of a message.inbound callback, less event_id and
// attempt.
type inboundEvent struct {
	Type       string    `json:"type"`
	MessageID  string    `json:"message_id"`
	To         string    `json:"to"`
	From       string    `json:"from"`
	Body       string    `json:"body"`
	Encoding   string    `json:"encoding"`
	Segments   int       `json:"segments"`
	Partial    bool      `json:"partial"`
	Carrier    string    `json:"carrier"`
	OccurredAt time.Time `json:"occurred_at"`
}

// InboundCallback returns the message.inbound callback for a stored
// inbound message, to url; false if url is not a valid callback URL.
func InboundCallback(eventID, url string, m *Message) (Callback, bool) {
	endpoint, err := CallbackEndpoint(url)
	if err != nil {
		return Callback{}, false
	}
	b, _ := json.Marshal(inboundEvent{Type: CallbackInbound, MessageID: m.ID, To: m.To, From: m.From,
		Body: m.Body, Encoding: m.Encoding, Segments: m.Segments, Partial: m.Partial,
		Carrier: m.Carrier, OccurredAt: m.AcceptedAt.UTC()})
	return Callback{ID: eventID, Type: CallbackInbound, Key: m.Key, URL: url, Endpoint: endpoint,
		MessageID: m.ID, CreatedAt: m.AcceptedAt, Data: b}, true
}

// CallbackEndpoint returns scheme://host:port of an http(s) URL, with the
// default port filled in, or an EINVALID error saying why the URL cannot
// be used. It checks the form only; whether the address may be reached is
// the HTTP client's check, at connect time.
func CallbackEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", Errorf(EINVALID, "callback URL: %v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
	default:
		return "", Errorf(EINVALID, "callback URL must be http or https")
	}
	if u.User != nil {
		return "", Errorf(EINVALID, "callback URL must not carry credentials")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", Errorf(EINVALID, "callback URL has no host")
	}
	if strings.HasSuffix(u.Host, ":") {
		// Read as the default port here, but as the host "example.com:"
		// by the HTTP client, which would refuse it at every send.
		return "", Errorf(EINVALID, "callback URL has an empty port")
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}
