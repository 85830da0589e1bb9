package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Values are encoded by hand rather than with encoding/json: a message is
// written once on Accept and rewritten on every Record, so the encoding sits
// on the hot path, and this format is several times faster than JSON both
// ways and under half the size (BenchmarkCodec measures both). Every value
// starts with a version byte so the format can evolve.
//
// A message is, in order: the version; the strings ID, Key, To, From, Body,
// Reference, CallbackURL, Encoding; Segments; Status; AcceptedAt, UpdatedAt,
// ExpiresAt; Carrier; CarrierIDs; PartStatus; Attempts; Events; from
// version 2 on, Direction, Partial (one byte, 0 or 1) and WebhookFailures;
// in version 3, ReceiptDue and Fence.
// Strings are a uvarint length and the bytes; ints are varints; slices are
// a uvarint count plus one (0 means nil, so nil and empty survive a round
// trip, which Message.Apply relies on for CarrierIDs); times are described
// at appendTime; statuses at statusCode.
//
// Versioning. Version 2 added the fields of inbound messages and webhook
// failures. A message that has none of them (every outbound message until
// a callback about it is given up on) is still written as version 1, byte
// for byte as before, and any other as version 2; both decode, version 1
// with the new fields zero. So values already on disk need no migration,
// the common value does not grow, and a previous binary, rolled back to,
// still reads every message but the inbound ones and those with webhook
// failures, which it refuses as an unknown version rather than misreads.
// Version 3 added ReceiptDue and Fence, written (as version 3) only for
// messages that have one, the same way. An event's flags byte says whether an error
// (1) and a part (2) follow; a previous binary knows only 0 and 1 and
// refuses a value with a part as corrupt rather than misreads it.
// Every other value (idempotency records, carrier refs, callbacks, inbound
// parts, settings) is version 1.
const (
	valueVersion      = 1 // every value but a message that needs version 2 or 3
	messageVersion2   = 2
	messageVersion3   = 3
	maxMessageVersion = messageVersion3
)

// Event flags.
const (
	eventHasError byte = 1 << iota
	eventHasPart
)

// errCorrupt reports a value that does not decode; the store wraps it with
// the key it came from.
var errCorrupt = errors.New("corrupt value")

// Each known status has one byte on disk. The numbers are part of the
// format: add statuses at the end, never renumber. A status without a code
// is written as statusOther and its string.
const (
	statusNone byte = iota // "": a part without a final receipt yet
	statusAccepted
	statusQueued
	statusSubmitted
	statusDelivered
	statusUndeliverable
	statusExpired
	statusRejected
	statusFailed
	statusReceived
	statusOther byte = 0xff
)

func statusCode(s sb.Status) byte {
	switch s {
	case "":
		return statusNone
	case sb.StatusAccepted:
		return statusAccepted
	case sb.StatusQueued:
		return statusQueued
	case sb.StatusSubmitted:
		return statusSubmitted
	case sb.StatusDelivered:
		return statusDelivered
	case sb.StatusUndeliverable:
		return statusUndeliverable
	case sb.StatusExpired:
		return statusExpired
	case sb.StatusRejected:
		return statusRejected
	case sb.StatusFailed:
		return statusFailed
	case sb.StatusReceived:
		return statusReceived
	}
	return statusOther
}

// statusOf is the inverse of statusCode; ok is false for statusOther and
// unknown codes.
func statusOf(c byte) (s sb.Status, ok bool) {
	switch c {
	case statusNone:
		return "", true
	case statusAccepted:
		return sb.StatusAccepted, true
	case statusQueued:
		return sb.StatusQueued, true
	case statusSubmitted:
		return sb.StatusSubmitted, true
	case statusDelivered:
		return sb.StatusDelivered, true
	case statusUndeliverable:
		return sb.StatusUndeliverable, true
	case statusExpired:
		return sb.StatusExpired, true
	case statusRejected:
		return sb.StatusRejected, true
	case statusFailed:
		return sb.StatusFailed, true
	case statusReceived:
		return sb.StatusReceived, true
	}
	return "", false
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStatus(dst []byte, s sb.Status) []byte {
	c := statusCode(s)
	dst = append(dst, c)
	if c == statusOther {
		dst = appendString(dst, string(s))
	}
	return dst
}

// appendTime writes the zero time as a single 0, and any other time as a
// uvarint of nanoseconds*2+1 followed by a varint of Unix seconds. Times
// decode in UTC: the instant survives, the location does not.
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(t.Nanosecond())<<1|1)
	return binary.AppendVarint(dst, t.Unix())
}

// appendCount writes a slice length as n+1, or 0 for a nil slice.
func appendCount(dst []byte, n int, isNil bool) []byte {
	if isNil {
		return append(dst, 0)
	}
	return binary.AppendUvarint(dst, uint64(n)+1)
}

// appendBytes writes b like a string, but with the length plus one, or 0
// for nil, so nil and empty survive a round trip.
func appendBytes(dst, b []byte) []byte {
	dst = appendCount(dst, len(b), b == nil)
	return append(dst, b...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// appendMessage appends the encoding of m to dst: version 1 unless m has a
// field only version 2 holds.
func appendMessage(dst []byte, m *sb.Message) []byte {
	v3 := !m.ReceiptDue.IsZero() || m.Fence != 0
	v2 := v3 || m.Direction != "" || m.Partial || m.WebhookFailures != nil
	switch {
	case v3:
		dst = append(dst, messageVersion3)
	case v2:
		dst = append(dst, messageVersion2)
	default:
		dst = append(dst, valueVersion)
	}
	for _, s := range [...]string{m.ID, m.Key, m.To, m.From, m.Body, m.Reference, m.CallbackURL, m.Encoding} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendVarint(dst, int64(m.Segments))
	dst = appendStatus(dst, m.Status)
	dst = appendTime(dst, m.AcceptedAt)
	dst = appendTime(dst, m.UpdatedAt)
	dst = appendTime(dst, m.ExpiresAt)
	dst = appendString(dst, m.Carrier)
	dst = appendCount(dst, len(m.CarrierIDs), m.CarrierIDs == nil)
	for _, id := range m.CarrierIDs {
		dst = appendString(dst, id)
	}
	dst = appendCount(dst, len(m.PartStatus), m.PartStatus == nil)
	for _, s := range m.PartStatus {
		dst = appendStatus(dst, s)
	}
	dst = binary.AppendVarint(dst, int64(m.Attempts))
	dst = appendCount(dst, len(m.Events), m.Events == nil)
	for i := range m.Events {
		dst = appendEvent(dst, &m.Events[i])
	}
	if !v2 {
		return dst
	}
	dst = appendString(dst, m.Direction)
	dst = appendBool(dst, m.Partial)
	dst = appendCount(dst, len(m.WebhookFailures), m.WebhookFailures == nil)
	for i := range m.WebhookFailures {
		dst = appendWebhookFailure(dst, &m.WebhookFailures[i])
	}
	if !v3 {
		return dst
	}
	dst = appendTime(dst, m.ReceiptDue)
	return binary.AppendVarint(dst, m.Fence)
}

// appendWebhookFailure writes EventID, Type, URL, Reason, Attempts, At.
func appendWebhookFailure(dst []byte, f *sb.WebhookFailure) []byte {
	for _, s := range [...]string{f.EventID, f.Type, f.URL, f.Reason} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendVarint(dst, int64(f.Attempts))
	return appendTime(dst, f.At)
}

func appendEvent(dst []byte, e *sb.Event) []byte {
	dst = appendStatus(dst, e.Status)
	dst = appendTime(dst, e.At)
	dst = appendString(dst, e.Carrier)
	dst = appendString(dst, e.CarrierMessageID)
	var flags byte
	if e.Error != nil {
		flags |= eventHasError
	}
	if e.Part != 0 {
		flags |= eventHasPart
	}
	dst = append(dst, flags)
	if e.Error != nil {
		dst = appendString(dst, e.Error.Code)
		dst = appendString(dst, e.Error.Description)
	}
	if e.Part != 0 {
		dst = binary.AppendVarint(dst, int64(e.Part))
	}
	return dst
}

// decoder reads a value. It holds the value as one string, so every string
// field of a decoded message is a slice of it: one allocation for all of
// them, and the result does not alias Pebble's buffer. The first error
// sticks; later reads return zero values.
type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.off = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.off >= len(d.s) {
			break
		}
		b := d.s[d.off]
		d.off++
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x
		}
	}
	d.fail()
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) int() int { return int(d.varint()) }

func (d *decoder) byte() byte {
	if d.off >= len(d.s) {
		d.fail()
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.fail()
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) status() sb.Status {
	c := d.byte()
	if s, ok := statusOf(c); ok {
		return s
	}
	if c == statusOther {
		return sb.Status(d.string())
	}
	d.fail()
	return ""
}

func (d *decoder) time() time.Time {
	u := d.uvarint()
	if u == 0 {
		return time.Time{}
	}
	nsec := int64(u >> 1)
	sec := d.varint()
	if nsec >= int64(time.Second) {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, nsec).UTC()
}

// count reads a slice length written by appendCount. Every element takes at
// least one byte, so a count beyond the remaining bytes is corrupt; checking
// that keeps a bad value from allocating without bound.
func (d *decoder) count() (n int, isNil bool) {
	u := d.uvarint()
	if u == 0 {
		return 0, true
	}
	if u-1 > uint64(len(d.s)-d.off) {
		d.fail()
		return 0, true
	}
	return int(u - 1), false
}

func (d *decoder) bytes() []byte {
	n, isNil := d.count()
	if isNil {
		return nil
	}
	b := []byte(d.s[d.off : d.off+n])
	d.off += n
	return b
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

// version reads the version byte and checks it is at most highest.
func (d *decoder) version(highest byte) byte {
	v := d.byte()
	if (v == 0 || v > highest) && d.err == nil {
		d.err = fmt.Errorf("%w: value version %d", errCorrupt, v)
		d.off = len(d.s)
	}
	return v
}

// decodeMessage decodes a value written by appendMessage into a new message
// that shares nothing with v.
func decodeMessage(v []byte) (*sb.Message, error) {
	d := decoder{s: string(v)}
	version := d.version(maxMessageVersion)
	m := &sb.Message{}
	for _, p := range [...]*string{&m.ID, &m.Key, &m.To, &m.From, &m.Body, &m.Reference, &m.CallbackURL, &m.Encoding} {
		*p = d.string()
	}
	m.Segments = d.int()
	m.Status = d.status()
	m.AcceptedAt = d.time()
	m.UpdatedAt = d.time()
	m.ExpiresAt = d.time()
	m.Carrier = d.string()
	if n, isNil := d.count(); !isNil {
		m.CarrierIDs = make([]string, n)
		for i := range m.CarrierIDs {
			m.CarrierIDs[i] = d.string()
		}
	}
	if n, isNil := d.count(); !isNil {
		m.PartStatus = make([]sb.Status, n)
		for i := range m.PartStatus {
			m.PartStatus[i] = d.status()
		}
	}
	m.Attempts = d.int()
	if n, isNil := d.count(); !isNil {
		m.Events = make([]sb.Event, n)
		for i := range m.Events {
			d.event(&m.Events[i])
		}
	}
	if version < messageVersion2 {
		return m, d.finish()
	}
	m.Direction = d.string()
	m.Partial = d.bool()
	if n, isNil := d.count(); !isNil {
		m.WebhookFailures = make([]sb.WebhookFailure, n)
		for i := range m.WebhookFailures {
			f := &m.WebhookFailures[i]
			f.EventID, f.Type, f.URL, f.Reason = d.string(), d.string(), d.string(), d.string()
			f.Attempts = d.int()
			f.At = d.time()
		}
	}
	if version >= messageVersion3 {
		m.ReceiptDue = d.time()
		m.Fence = d.varint()
	}
	return m, d.finish()
}

func (d *decoder) event(e *sb.Event) {
	e.Status = d.status()
	e.At = d.time()
	e.Carrier = d.string()
	e.CarrierMessageID = d.string()
	flags := d.byte()
	if flags&^(eventHasError|eventHasPart) != 0 {
		d.fail()
		return
	}
	if flags&eventHasError != 0 {
		e.Error = &sb.EventError{Code: d.string(), Description: d.string()}
	}
	if flags&eventHasPart != 0 {
		e.Part = d.int()
	}
}

// finish reports the first error, or trailing bytes, which mean the value
// was not what the decoder thought it was.
func (d *decoder) finish() error {
	if d.err == nil && d.off != len(d.s) {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.s)-d.off)
	}
	return d.err
}

// appendIdempotency encodes an idempotency record: version, message ID, the
// 32-byte request hash, CreatedAt.
func appendIdempotency(dst []byte, r *sb.IdempotencyRecord) []byte {
	dst = append(dst, valueVersion)
	dst = appendString(dst, r.MessageID)
	dst = append(dst, r.RequestHash[:]...)
	return appendTime(dst, r.CreatedAt)
}

func decodeIdempotency(v []byte) (sb.IdempotencyRecord, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	var r sb.IdempotencyRecord
	r.MessageID = d.string()
	if len(d.s)-d.off < len(r.RequestHash) {
		d.fail()
	} else {
		d.off += copy(r.RequestHash[:], d.s[d.off:])
	}
	r.CreatedAt = d.time()
	return r, d.finish()
}

// appendCarrierRef encodes a carrier index entry: version, part, message ID.
func appendCarrierRef(dst []byte, messageID string, part int) []byte {
	dst = append(dst, valueVersion)
	dst = binary.AppendUvarint(dst, uint64(part))
	return appendString(dst, messageID)
}

func decodeCarrierRef(v []byte) (messageID string, part int, err error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	p := d.uvarint()
	messageID = d.string()
	if p > maxPart {
		d.fail()
	}
	return messageID, int(p), d.finish()
}

// maxPart bounds a decoded part index; Message.Apply never records more
// parts than this.
const maxPart = 1 << 16

// Callback types have one byte on disk, like statuses: add at the end,
// never renumber; another type is written as callbackOther and its string.
const (
	callbackStatus byte = iota + 1
	callbackInbound
	callbackOther byte = 0xff
)

// appendCallback encodes a queued callback: version, Type, Key, URL,
// MessageID, CreatedAt, Data. ID and Endpoint are not in the value: the
// outbox key holds them (o/⟨endpoint⟩<id>), and an endpoint whose receiver
// is down may hold a million entries.
func appendCallback(dst []byte, cb *sb.Callback) []byte {
	dst = append(dst, valueVersion)
	switch cb.Type {
	case sb.CallbackStatus:
		dst = append(dst, callbackStatus)
	case sb.CallbackInbound:
		dst = append(dst, callbackInbound)
	default:
		dst = appendString(append(dst, callbackOther), cb.Type)
	}
	for _, s := range [...]string{cb.Key, cb.URL, cb.MessageID} {
		dst = appendString(dst, s)
	}
	dst = appendTime(dst, cb.CreatedAt)
	return appendBytes(dst, cb.Data)
}

// decodeCallback decodes a value written by appendCallback into a callback
// with the given endpoint and ID, sharing nothing with v.
func decodeCallback(endpoint, id string, v []byte) (sb.Callback, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	cb := sb.Callback{ID: id, Endpoint: endpoint}
	switch c := d.byte(); c {
	case callbackStatus:
		cb.Type = sb.CallbackStatus
	case callbackInbound:
		cb.Type = sb.CallbackInbound
	case callbackOther:
		cb.Type = d.string()
	default:
		d.fail()
	}
	cb.Key, cb.URL, cb.MessageID = d.string(), d.string(), d.string()
	cb.CreatedAt = d.time()
	cb.Data = d.bytes()
	return cb, d.finish()
}

// appendInboundPart encodes an inbound part whole: version, Carrier, From,
// To, DataCoding, Payload, Concat (a presence byte, then Ref as a uvarint,
// Total, Seq), ReceivedAt. The key repeats the identity, but parts are few
// and short-lived, and a self-contained value keeps InboundParts from
// parsing keys.
func appendInboundPart(dst []byte, p *sb.InboundPart) []byte {
	dst = append(dst, valueVersion)
	for _, s := range [...]string{p.Carrier, p.From, p.To} {
		dst = appendString(dst, s)
	}
	dst = append(dst, p.DataCoding)
	dst = appendBytes(dst, p.Payload)
	if c := p.Concat; c == nil {
		dst = append(dst, 0)
	} else {
		dst = binary.AppendUvarint(append(dst, 1), uint64(c.Ref))
		dst = append(dst, c.Total, c.Seq)
	}
	return appendTime(dst, p.ReceivedAt)
}

func decodeInboundPart(v []byte) (sb.InboundPart, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	var p sb.InboundPart
	p.Carrier, p.From, p.To = d.string(), d.string(), d.string()
	p.DataCoding = d.byte()
	p.Payload = d.bytes()
	if d.bool() {
		ref := d.uvarint()
		if ref > 0xffff {
			d.fail()
		}
		p.Concat = &sb.Concat{Ref: uint16(ref), Total: d.byte(), Seq: d.byte()}
	}
	p.ReceivedAt = d.time()
	return p, d.finish()
}

// appendSetting encodes a setting: version, then the value's bytes.
func appendSetting(dst []byte, value string) []byte {
	return append(append(dst, valueVersion), value...)
}

func decodeSetting(v []byte) (string, error) {
	if len(v) == 0 || v[0] != valueVersion {
		return "", errCorrupt
	}
	return string(v[1:]), nil
}

// appendCounter encodes a pending counter: version, then the count as a
// varint.
func appendCounter(dst []byte, n int64) []byte {
	return binary.AppendVarint(append(dst, valueVersion), n)
}

func decodeCounter(v []byte) (int64, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	n := d.varint()
	return n, d.finish()
}

// parkedUpdate is an update by carrier id that found no message yet: its
// transition (Part is set from the index when it is applied) and the time
// after which it is dropped.
type parkedUpdate struct {
	until time.Time
	t     sb.Transition
}

// appendParked encodes the updates parked for one carrier id: version, a
// count, then for each ParkUntil, the event (as in a message), CarrierIDs
// and ReceiptDue.
func appendParked(dst []byte, ps []parkedUpdate) []byte {
	dst = append(dst, valueVersion)
	dst = binary.AppendUvarint(dst, uint64(len(ps)))
	for i := range ps {
		p := &ps[i]
		dst = appendTime(dst, p.until)
		dst = appendEvent(dst, &p.t.Event)
		dst = appendCount(dst, len(p.t.CarrierIDs), p.t.CarrierIDs == nil)
		for _, id := range p.t.CarrierIDs {
			dst = appendString(dst, id)
		}
		dst = appendTime(dst, p.t.ReceiptDue)
	}
	return dst
}

func decodeParked(v []byte) ([]parkedUpdate, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	n := d.uvarint()
	if n > uint64(len(d.s)) {
		d.fail()
		n = 0
	}
	ps := make([]parkedUpdate, n)
	for i := range ps {
		p := &ps[i]
		p.until = d.time()
		d.event(&p.t.Event)
		if n, isNil := d.count(); !isNil {
			p.t.CarrierIDs = make([]string, n)
			for j := range p.t.CarrierIDs {
				p.t.CarrierIDs[j] = d.string()
			}
		}
		p.t.ReceiptDue = d.time()
	}
	return ps, d.finish()
}

// appendGuard encodes the value of an expiry queue entry: version, then
// the ID of the message the record it names must still belong to ("" for
// a parked entry, whose expiry is in its own value).
func appendGuard(dst []byte, messageID string) []byte {
	return appendString(append(dst, valueVersion), messageID)
}

func decodeGuard(v []byte) (string, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	id := d.string()
	return id, d.finish()
}
