package http

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// Listing: GET /v1/messages reads one key's messages of one UTC day from
// the store's (key, day) partition, newest first, a page at a time.

const (
	// DefaultListLimit and MaxListLimit bound a page of GET /v1/messages.
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// maxListCalls bounds the store calls one page makes. A store reads a
	// bounded number of messages per call and may return fewer than asked
	// with more to come (a filter that matches little); the page keeps
	// asking until it is full, the day is done, or this many calls were
	// made, and then returns what it has with a cursor.
	maxListCalls = 8
)

// statuses are the statuses a message can have, for the status filter.
var statuses = []switchboard.Status{switchboard.StatusAccepted, switchboard.StatusQueued, switchboard.StatusSubmitted,
	switchboard.StatusDelivered, switchboard.StatusUndeliverable, switchboard.StatusExpired, switchboard.StatusRejected,
	switchboard.StatusFailed, switchboard.StatusUnknown, switchboard.StatusCanceled, switchboard.StatusReceived}

const dayLayout = "2006-01-02"

// handleList serves GET /v1/messages.
func (s *Server) handleList(ctx *fasthttp.RequestCtx, key *switchboard.Key, _ []byte) error {
	q, err := parseListQuery(ctx.QueryArgs(), time.Now())
	if err != nil {
		return err
	}
	msgs, next, err := s.list(key, q)
	if err != nil {
		return err
	}
	w := s.writer()
	w.openObject()
	w.key("messages")
	w.openArray()
	for _, m := range msgs {
		w.elem()
		w.messageFields(m, false)
	}
	w.closeArray()
	if next != "" {
		c, err := encodeCursor(next)
		if err != nil {
			return err
		}
		w.str("next_cursor", c)
	}
	w.closeObject()
	ctx.Response.Header.Set("Cache-Control", "no-store")
	s.send(ctx, fasthttp.StatusOK, w)
	return nil
}

// list fills one page: it calls the engine until q.Limit messages are
// found, the day is done (next ""), or maxListCalls calls were made.
func (s *Server) list(key *switchboard.Key, q switchboard.MessageQuery) ([]*switchboard.Message, string, error) {
	limit := q.Limit
	var msgs []*switchboard.Message
	for range maxListCalls {
		q.Limit = limit - len(msgs)
		got, next, err := s.engine.ListMessages(s.ctx, key, q)
		if err != nil {
			return nil, "", err
		}
		if len(got) > q.Limit {
			// More than asked for: keep what was asked for and go on
			// after the last message kept (IDs are newest first).
			got = got[:q.Limit]
			next = got[len(got)-1].ID
		}
		msgs = append(msgs, got...)
		if next == "" || len(msgs) == limit {
			return msgs, next, nil
		}
		q.Before = next
	}
	return msgs, q.Before, nil
}

// parseListQuery reads GET /v1/messages' query: every parameter at most
// once, none unknown, none empty. now gives the default date (its UTC day).
func parseListQuery(args *fasthttp.Args, now time.Time) (switchboard.MessageQuery, error) {
	q := switchboard.MessageQuery{Limit: DefaultListLimit}
	var date, cursor string
	var err error
	seen := map[string]bool{}
	args.VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		name, value := string(k), string(v)
		switch {
		case seen[name]:
			err = switchboard.Errorf(switchboard.EINVALID, "Query parameter %.64q is given more than once.", name)
			return
		case value == "" && listParam(name):
			err = switchboard.Errorf(switchboard.EINVALID, "Query parameter %q is empty; leave it out instead.", name)
			return
		}
		seen[name] = true
		switch name {
		case "date":
			date = value
		case "cursor":
			cursor = value
		case "status":
			q.Status = switchboard.Status(value)
			if !validStatus(q.Status) {
				err = switchboard.Errorf(switchboard.EINVALID, `"status" must be one of %s.`, statusList())
			}
		case "direction":
			q.Direction = value
			if value != switchboard.DirectionOutbound && value != switchboard.DirectionInbound {
				err = apiError(switchboard.EINVALID, `"direction" must be outbound or inbound.`)
			}
		case "to":
			// An unescaped "+" in a query string reads as a space; take
			// it as the "+" it almost certainly was.
			if strings.HasPrefix(value, " ") {
				value = "+" + value[1:]
			}
			q.To = value
			if !switchboard.ValidMSISDN(value) {
				err = apiError(switchboard.EINVALID, `"to" must be "+" followed by 8 to 15 digits (send "+" as %2B).`)
			}
		case "limit":
			n, perr := strconv.Atoi(value)
			if perr != nil || n < 1 || n > MaxListLimit || strings.Trim(value, "0123456789") != "" {
				err = switchboard.Errorf(switchboard.EINVALID, `"limit" must be a whole number from 1 to %d.`, MaxListLimit)
			}
			q.Limit = n
		default:
			err = switchboard.Errorf(switchboard.EINVALID, "Unknown query parameter %.64q; known: date, status, direction, to, limit, cursor.", name)
		}
	})
	if err != nil {
		return q, err
	}
	if date != "" {
		if _, perr := time.Parse(dayLayout, date); perr != nil {
			return q, apiError(switchboard.EINVALID, `"date" must be a UTC date like 2025-01-31.`)
		}
	}
	if cursor != "" {
		before, ok := decodeCursor(cursor)
		if !ok {
			return q, apiError(switchboard.EINVALID, `"cursor" is not a cursor; pass "next_cursor" of the previous page as it is.`)
		}
		q.Before = before
	}
	if date == "" {
		date = now.UTC().Format(dayLayout)
	}
	q.Day = date
	return q, nil
}

func listParam(name string) bool {
	switch name {
	case "date", "status", "direction", "to", "limit", "cursor":
		return true
	}
	return false
}

func validStatus(s switchboard.Status) bool {
	for _, v := range statuses {
		if v == s {
			return true
		}
	}
	return false
}

func statusList() string {
	names := make([]string, len(statuses))
	for i, s := range statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// A cursor is the message ID the next page starts below (the store's
// next): its ULID's 16 bytes, base64url-encoded, 22 characters. Every
// string of that shape is a cursor (an upper bound within the caller's own
// messages of the day), and every other string is refused, so the API
// description can say exactly which cursors are valid.
const cursorLength = 22

func encodeCursor(before string) (string, error) {
	id, err := ulid.ParseStrict(strings.TrimPrefix(before, messageIDPrefix))
	if err != nil || !strings.HasPrefix(before, messageIDPrefix) {
		return "", fmt.Errorf("http: the engine's next message ID %q is not a message ID", before)
	}
	return base64.RawURLEncoding.EncodeToString(id[:]), nil
}

func decodeCursor(c string) (before string, ok bool) {
	var id ulid.ULID
	if len(c) != cursorLength {
		return "", false
	}
	if n, err := base64.RawURLEncoding.Decode(id[:], []byte(c)); err != nil || n != len(id) {
		return "", false
	}
	return messageIDPrefix + id.String(), true
}
