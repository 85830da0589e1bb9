package http

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// Response bodies are written by hand rather than by encoding/json: the 202
// of POST /v1/messages is on the hot path, and appending to a pooled buffer
// allocates nothing. Keys are constants and need no escaping; every string
// value goes through appendString.

const contentTypeJSON = "application/json"

// maxPooledBuffer keeps the pool from holding on to the few large buffers
// (a 1000-message batch response) forever.
const maxPooledBuffer = 64 << 10

// jsonWriter appends one JSON document. first tracks whether the next
// member or element needs a comma before it.
type jsonWriter struct {
	b     []byte
	first bool
}

// responder writes JSON responses and errors the same way for every
// server of this package: the public API and the admin API.
type responder struct {
	log  zerolog.Logger
	bufs sync.Pool
	// quiet is an error Error writes without logging it (the drain's
	// 503, which every request gets while draining); quietPath a path
	// whose errors are not logged (/readyz, which says why itself).
	quiet     error
	quietPath string
}

// writer takes a jsonWriter from the pool; send returns it.
func (s *responder) writer() *jsonWriter {
	w, _ := s.bufs.Get().(*jsonWriter)
	if w == nil {
		w = &jsonWriter{b: make([]byte, 0, 1024)}
	}
	w.b, w.first = w.b[:0], false
	return w
}

// send writes the document as the response body (fasthttp copies it) and
// returns the writer to the pool.
func (s *responder) send(ctx *fasthttp.RequestCtx, status int, w *jsonWriter) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType(contentTypeJSON)
	ctx.SetBody(w.b)
	if cap(w.b) <= maxPooledBuffer {
		s.bufs.Put(w)
	}
}

func (w *jsonWriter) sep() {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
}

func (w *jsonWriter) openObject()  { w.b = append(w.b, '{'); w.first = true }
func (w *jsonWriter) closeObject() { w.b = append(w.b, '}'); w.first = false }
func (w *jsonWriter) openArray()   { w.b = append(w.b, '['); w.first = true }
func (w *jsonWriter) closeArray()  { w.b = append(w.b, ']'); w.first = false }

// elem starts an array element.
func (w *jsonWriter) elem() { w.sep(); w.first = true }

// key starts an object member; k is a constant and is not escaped.
func (w *jsonWriter) key(k string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	w.first = true
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendString(w.b, v)
	w.first = false
}

// strOmit writes k only when v is not empty.
func (w *jsonWriter) strOmit(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *jsonWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
	w.first = false
}

func (w *jsonWriter) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
	w.first = false
}

// time writes t in UTC as RFC 3339 with nanoseconds, or null when zero.
func (w *jsonWriter) time(k string, t time.Time) {
	w.key(k)
	if t.IsZero() {
		w.b = append(w.b, "null"...)
	} else {
		w.b = append(w.b, '"')
		w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
		w.b = append(w.b, '"')
	}
	w.first = false
}

// strings writes an array of strings, [] when empty.
func (w *jsonWriter) strings(k string, vs []string) {
	w.key(k)
	w.openArray()
	for _, v := range vs {
		w.elem()
		w.b = appendString(w.b, v)
		w.first = false
	}
	w.closeArray()
}

// errorObject writes {"code","message"} as the value of the current key.
func (w *jsonWriter) errorObject(code, message string) {
	w.openObject()
	w.str("code", code)
	w.str("message", message)
	w.closeObject()
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Like encoding/json it escapes
// <, > and & (responses may be shown in HTML) and U+2028/U+2029 (they end
// lines in JavaScript), and replaces invalid UTF-8 with U+FFFD, so the
// output is always valid JSON whatever the store held.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// accepted writes the members of an accepted message: the body of a 202
// and of an accepted batch item. status is always "accepted", even on an
// idempotent replay of a message that has moved on: it is the outcome of
// the submit; GET /v1/messages/{id} tells the current status.
func (w *jsonWriter) accepted(m *switchboard.Message) {
	w.str("id", m.ID)
	w.str("status", string(switchboard.StatusAccepted))
	w.str("to", m.To)
	w.str("from", m.From)
	w.int("segments", int64(m.Segments))
	w.str("encoding", m.Encoding)
	w.time("accepted_at", m.AcceptedAt)
	w.strOmit("reference", m.Reference)
}

// message writes the body of GET /v1/messages/{id}. The message body is
// included: it is the client's own data, shown only to the key that sent it.
func (w *jsonWriter) message(m *switchboard.Message) { w.messageFields(m, true) }

// messageFields writes a message as an object; a listing leaves out the
// events.
func (w *jsonWriter) messageFields(m *switchboard.Message, events bool) {
	w.openObject()
	w.str("id", m.ID)
	w.str("direction", direction(m))
	w.str("status", string(m.Status))
	if why := m.Error(); why != nil {
		w.key("error")
		w.eventError(why)
	}
	w.str("to", m.To)
	w.str("from", m.From)
	w.str("body", m.Body)
	w.str("reference", m.Reference)
	w.str("callback_url", m.CallbackURL)
	w.int("segments", int64(m.Segments))
	w.str("encoding", m.Encoding)
	w.time("accepted_at", m.AcceptedAt)
	w.time("updated_at", m.UpdatedAt)
	w.time("expires_at", m.ExpiresAt)
	w.str("carrier", m.Carrier)
	w.strings("carrier_message_ids", m.CarrierIDs)
	w.parts(m.Parts())
	if events {
		w.key("events")
		w.openArray()
		for i := range m.Events {
			w.elem()
			w.event(&m.Events[i])
		}
		w.closeArray()
	}
	if m.Direction == switchboard.DirectionInbound {
		w.bool("partial", m.Partial)
	}
	w.key("webhook_failures")
	w.openArray()
	for i := range m.WebhookFailures {
		w.elem()
		w.webhookFailure(&m.WebhookFailures[i])
	}
	w.closeArray()
	w.closeObject()
}

func direction(m *switchboard.Message) string {
	if m.Direction == switchboard.DirectionInbound {
		return "inbound"
	}
	return "outbound"
}

func (w *jsonWriter) webhookFailure(f *switchboard.WebhookFailure) {
	w.openObject()
	w.str("event_id", f.EventID)
	w.str("type", f.Type)
	w.str("url", f.URL)
	w.str("reason", f.Reason)
	w.int("attempts", int64(f.Attempts))
	w.time("at", f.At)
	w.closeObject()
}

func (w *jsonWriter) event(ev *switchboard.Event) {
	w.openObject()
	w.str("status", string(ev.Status))
	w.time("at", ev.At)
	w.strOmit("carrier", ev.Carrier)
	w.strOmit("carrier_message_id", ev.CarrierMessageID)
	if ev.Error != nil {
		w.key("error")
		w.eventError(ev.Error)
	}
	if ev.Part != 0 {
		w.int("part", int64(ev.Part))
	}
	w.closeObject()
}

// eventError writes {"code","description"} as the value of the current key.
func (w *jsonWriter) eventError(e *switchboard.EventError) {
	w.openObject()
	w.str("code", e.Code)
	w.strOmit("description", e.Description)
	w.closeObject()
}

// parts writes "parts": the state of each SMS part of a message.
func (w *jsonWriter) parts(ps []switchboard.PartState) {
	w.key("parts")
	w.openArray()
	for _, p := range ps {
		w.elem()
		w.openObject()
		w.int("index", int64(p.Index))
		w.strOmit("carrier_message_id", p.CarrierMessageID)
		w.str("status", string(p.Status))
		w.closeObject()
	}
	w.closeArray()
}
