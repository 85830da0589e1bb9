package http

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
)

type listBody struct {
	Messages   []map[string]any `json:"messages"`
	NextCursor *string          `json:"next_cursor"`
}

// listIDs lists with the given query and secret and returns the IDs and
// the cursor ("" when absent).
func (ts *testServer) list(t *testing.T, query, secret string) ([]string, string) {
	t.Helper()
	resp, body := ts.do(t, "GET", "/v1/messages?"+query, "", "Authorization", "Bearer "+secret)
	if resp.StatusCode != 200 {
		t.Fatalf("?%s: %d %s", query, resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	got := decode[listBody](t, body)
	var ids []string
	for _, m := range got.Messages {
		if _, ok := m["events"]; ok {
			t.Errorf("a listed message has events: %v", m)
		}
		if _, ok := m["parts"]; !ok {
			t.Errorf("a listed message has no parts: %v", m)
		}
		ids = append(ids, m["id"].(string))
	}
	next := ""
	if got.NextCursor != nil {
		if *got.NextCursor == "" {
			t.Errorf("?%s: next_cursor present and empty", query)
		}
		next = *got.NextCursor
	}
	return ids, next
}

func stubID(n int) string { return fmt.Sprintf("msg_01JYYYYYYYYYYYYYYY%08d", n) }

func TestListMessages(t *testing.T) {
	ts := newTestServer(t, nil)
	for n := 1; n <= 5; n++ {
		ts.engine.put("test", n, nil)
	}
	ts.engine.put("other", 6, nil)
	ts.engine.put("other", 7, nil)
	ts.engine.put("test", 8, func(m *switchboard.Message) { m.AcceptedAt = m.AcceptedAt.Add(24 * time.Hour) })

	ids, next := ts.list(t, "date=2025-01-02", testSecret)
	if want := []string{stubID(5), stubID(4), stubID(3), stubID(2), stubID(1)}; !slices.Equal(ids, want) || next != "" {
		t.Errorf("day of test: %v next %q, want %v and no cursor", ids, next, want)
	}
	// Another key sees its own messages only, and the other way round.
	if ids, _ := ts.list(t, "date=2025-01-02", otherSecret); !slices.Equal(ids, []string{stubID(7), stubID(6)}) {
		t.Errorf("day of other: %v", ids)
	}
	if ids, _ := ts.list(t, "date=2025-01-03", testSecret); !slices.Equal(ids, []string{stubID(8)}) {
		t.Errorf("next day of test: %v", ids)
	}
	if ids, _ := ts.list(t, "date=2024-12-31", testSecret); len(ids) != 0 {
		t.Errorf("a day without messages: %v", ids)
	}

	// Pages of two, each with the same date.
	var all []string
	query := "date=2025-01-02&limit=2"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		ids, next := ts.list(t, query, testSecret)
		all = append(all, ids...)
		if next == "" {
			break
		}
		query = "date=2025-01-02&limit=2&cursor=" + url.QueryEscape(next)
	}
	if want := []string{stubID(5), stubID(4), stubID(3), stubID(2), stubID(1)}; !slices.Equal(all, want) {
		t.Errorf("paged: %v, want %v", all, want)
	}
}

func TestListMessagesDefaultsAndFilters(t *testing.T) {
	ts := newTestServer(t, nil)
	before := time.Now().UTC().Format(dayLayout)
	ts.list(t, "", testSecret)
	after := time.Now().UTC().Format(dayLayout)
	ts.engine.mu.Lock()
	q := ts.engine.lastQuery
	ts.engine.mu.Unlock()
	if (q.Day != before && q.Day != after) || q.Limit != DefaultListLimit || q.Before != "" || q.Status != "" || q.To != "" || q.Direction != "" {
		t.Errorf("defaults: %+v, want today (%s) and limit %d", q, before, DefaultListLimit)
	}
	for query, want := range map[string]switchboard.MessageQuery{
		"date=2025-01-02&status=unknown&direction=inbound&to=%2B447700900123&limit=1000": {
			Day: "2025-01-02", Status: switchboard.StatusUnknown, Direction: "inbound", To: "+447700900123", Limit: 1000},
		"date=2025-01-02&to=+447700900123&direction=outbound&limit=1": {
			Day: "2025-01-02", To: "+447700900123", Direction: "outbound", Limit: 1},
	} {
		ts.list(t, query, testSecret)
		ts.engine.mu.Lock()
		got := ts.engine.lastQuery
		ts.engine.mu.Unlock()
		if got != want {
			t.Errorf("?%s: engine got %+v, want %+v", query, got, want)
		}
	}
}

// A store that reads a bounded number of messages per call may return
// fewer than asked for with more to come: the page keeps asking, up to a
// bound.
func TestListMessagesBoundedScans(t *testing.T) {
	ts := newTestServer(t, nil)
	for n := 1; n <= 40; n++ {
		ts.engine.put("test", n, func(m *switchboard.Message) {
			if n == 39 || n == 33 {
				m.Status = switchboard.StatusDelivered
			}
		})
	}
	ts.engine.mu.Lock()
	ts.engine.listScan = 3
	ts.engine.mu.Unlock()
	calls := func() int {
		ts.engine.mu.Lock()
		defer ts.engine.mu.Unlock()
		n := ts.engine.listCalls
		ts.engine.listCalls = 0
		return n
	}
	ids, next := ts.list(t, "date=2025-01-02&status=delivered&limit=2", testSecret)
	if !slices.Equal(ids, []string{stubID(39), stubID(33)}) || next == "" {
		t.Errorf("filtered across scans: %v (next %q)", ids, next)
	}
	if n := calls(); n != 3 {
		t.Errorf("%d store calls, want 3 (three messages each, until the second match)", n)
	}
	// Nothing matches: the page stops after maxListCalls with a cursor
	// where it stopped, and the next page goes on from there.
	ids, next = ts.list(t, "date=2025-01-02&status=failed", testSecret)
	if len(ids) != 0 || next == "" {
		t.Fatalf("no match within the bound: %v next %q, want none and a cursor", ids, next)
	}
	if n := calls(); n != maxListCalls {
		t.Errorf("%d store calls, want %d", n, maxListCalls)
	}
	if before, _ := decodeCursor(next); before != stubID(40-3*maxListCalls+1) {
		t.Errorf("cursor at %s, want the last message read, %s", before, stubID(40-3*maxListCalls+1))
	}
	ids, next = ts.list(t, "date=2025-01-02&status=failed&cursor="+next, testSecret)
	if len(ids) != 0 || next != "" {
		t.Errorf("the rest of the day: %v next %q, want none and no cursor", ids, next)
	}
}

func TestListMessagesBadQuery(t *testing.T) {
	ts := newTestServer(t, nil)
	good, err := encodeCursor(stubID(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{
		"limit=0", "limit=1001", "limit=abc", "limit=1.5", "limit=-1", "limit=%2B5", "limit=",
		"date=2025-13-01", "date=2025-1-2", "date=yesterday", "date=2025-01-02T00:00:00Z", "date=",
		"status=bogus", "status=Delivered", "status=",
		"direction=up", "direction=",
		"to=123", "to=447700900123", "to=%2B0447700900123", "to=",
		"cursor=!!", "cursor=" + good[:21], "cursor=" + good + "A", "cursor=" + good + "%3D%3D", "cursor=" + good[:21] + "%2B",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("2025-01-02/"+stubID(3))), "cursor=",
		"page=2", "Limit=5", "limit=1&limit=2",
	} {
		resp, body := ts.do(t, "GET", "/v1/messages?"+query, "")
		wantError(t, resp, body, 400, switchboard.EINVALID)
	}
	// Every cursor of the right shape is one: an upper bound on the IDs.
	if ids, _ := ts.list(t, "date=2025-01-02&cursor="+good, testSecret); len(ids) != 0 {
		t.Errorf("a good cursor: %v", ids)
	}
	if before, ok := decodeCursor(good); !ok || before != stubID(3) {
		t.Errorf("cursor round trip: %q %v", before, ok)
	}
	for _, c := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "______________________", "0123456789-_abcdefghij"} {
		if ids, _ := ts.list(t, "date=2025-01-02&cursor="+c, testSecret); len(ids) != 0 && c == "AAAAAAAAAAAAAAAAAAAAAA" {
			t.Errorf("cursor %s: %v", c, ids)
		}
	}
	if _, err := encodeCursor("not-an-id"); err == nil {
		t.Error("a next that is not a message ID encoded")
	}
	ts.engine.mu.Lock()
	ts.engine.msgErr = errors.New("disk on fire")
	ts.engine.mu.Unlock()
	resp, body := ts.do(t, "GET", "/v1/messages", "")
	wantError(t, resp, body, 500, switchboard.EINTERNAL)
}
