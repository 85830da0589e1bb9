package archive_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/archive"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// day is yesterday (UTC), inside any retention the store keeps.
func day() time.Time { return time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour) }

func newID(at time.Time) string {
	return "msg_" + ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String()
}

// messages returns messages of key k1 on day d covering every column: a
// delivered long message, a failed one with the carrier's error, a
// pending Unicode one with a given-up webhook, an inbound one.
func messages(d time.Time) []*sb.Message {
	at := func(h int) time.Time { return d.Add(time.Duration(h)*time.Hour + 123456*time.Microsecond) }
	delivered := &sb.Message{
		ID: newID(at(1)), Key: "k1", To: "+447700900001", From: "Acme", Body: "Your code is 123456",
		Reference: "order-1", CallbackURL: "https://hooks.example.com/sms", Encoding: "gsm7", Segments: 2,
		Status: sb.StatusDelivered, AcceptedAt: at(1), UpdatedAt: at(1).Add(3 * time.Second),
		ExpiresAt: at(1).Add(48 * time.Hour), Carrier: "sandbox", CarrierIDs: []string{"c-1", "c-2"},
		PartStatus: []sb.Status{sb.StatusDelivered, sb.StatusDelivered}, Attempts: 1, Fence: 1764750000123456,
		Events: []sb.Event{
			{Status: sb.StatusAccepted, At: at(1)},
			{Status: sb.StatusSubmitted, At: at(1).Add(time.Second), Carrier: "sandbox"},
			{Status: sb.StatusDelivered, At: at(1).Add(3 * time.Second), CarrierMessageID: "c-2", Part: 2},
		},
	}
	failed := &sb.Message{
		ID: newID(at(2)), Key: "k1", To: "+447700900002", From: "Acme", Body: "fails", Encoding: "gsm7",
		Segments: 1, Status: sb.StatusFailed, AcceptedAt: at(2), UpdatedAt: at(2).Add(time.Second),
		ExpiresAt: at(2).Add(48 * time.Hour), Attempts: 3,
		Events: []sb.Event{
			{Status: sb.StatusAccepted, At: at(2)},
			{Status: sb.StatusFailed, At: at(2).Add(time.Second), Carrier: "sandbox",
				Error: &sb.EventError{Code: "smpp_0x0000000B", Description: "Invalid destination address"}},
		},
	}
	pending := &sb.Message{
		ID: newID(at(3)), Key: "k1", To: "+447700900003", From: "Acme", Body: "Grüße 👋", Encoding: "ucs2",
		Segments: 1, Status: sb.StatusAccepted, AcceptedAt: at(3), UpdatedAt: at(3), ExpiresAt: at(3).Add(time.Hour),
		Events: []sb.Event{{Status: sb.StatusAccepted, At: at(3)}},
		WebhookFailures: []sb.WebhookFailure{{EventID: "evt_1", Type: "message.status", URL: "https://hooks.example.com/sms",
			Reason: sb.WebhookGone, Attempts: 2, At: at(3).Add(time.Minute)}},
	}
	inbound := &sb.Message{
		ID: newID(at(4)), Key: "k1", To: "+447700900123", From: "+447700900999", Body: "STOP", Encoding: "gsm7",
		Segments: 1, Status: sb.StatusReceived, AcceptedAt: at(4), UpdatedAt: at(4), Carrier: "sandbox",
		Direction: sb.DirectionInbound, Partial: true,
		Events: []sb.Event{{Status: sb.StatusReceived, At: at(4), Carrier: "sandbox"}},
	}
	return []*sb.Message{delivered, failed, pending, inbound}
}

func TestArchiveReadBackWithPyarrow(t *testing.T) {
	python := pyarrowPython(t)
	ctx := t.Context()
	store, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d := day()
	k1 := messages(d)
	accept := func(msgs ...*sb.Message) {
		t.Helper()
		for _, m := range msgs {
			if err := store.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	accept(k1...)
	// Another day's message stays out; another key's go to its own file,
	// more of them than one listing call returns.
	other := *k1[0]
	other.ID, other.AcceptedAt = newID(d.Add(-time.Hour)), d.Add(-time.Hour)
	accept(&other)
	var k2 []*sb.Message
	for i := range 2500 {
		m := *k1[1]
		m.Key, m.AcceptedAt = "k2", d.Add(time.Duration(i)*time.Second)
		m.ID = newID(m.AcceptedAt)
		k2 = append(k2, &m)
	}
	accept(k2...)

	dir := t.TempDir()
	files, err := archive.Write(ctx, store, archive.Options{Day: d.Format(time.DateOnly), Keys: []string{"k1", "k2", "k3"}, Dir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := []archive.File{
		{Key: "k1", Path: filepath.Join(dir, d.Format(time.DateOnly), "k1.parquet"), Messages: 4},
		{Key: "k2", Path: filepath.Join(dir, d.Format(time.DateOnly), "k2.parquet"), Messages: 2500},
		{Key: "k3"},
	}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("files %+v, want %+v", files, want)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, d.Format(time.DateOnly)))
	if len(entries) != 2 {
		t.Fatalf("%d entries in the day's directory, want the 2 files and nothing else", len(entries))
	}

	script := filepath.Join(t.TempDir(), "read.py")
	os.WriteFile(script, []byte(readParquet), 0o600)
	out, err := exec.Command(python, script, files[0].Path, files[1].Path).Output()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, out)
	}
	var read map[string]struct {
		Schema   map[string]string
		Metadata map[string]string
		Rows     []map[string]any
	}
	if err := json.Unmarshal(out, &read); err != nil {
		t.Fatalf("pyarrow's output: %v\n%s", err, out)
	}

	f1 := read[files[0].Path]
	for col, typ := range map[string]string{
		"id": "string", "segments": "int32", "accepted_at": "timestamp[us, tz=UTC]", "partial": "bool",
		"carrier_ids": "list<element: string not null>",
		"events": "list<element: struct<status: string not null, at: timestamp[us, tz=UTC] not null, carrier: string, " +
			"carrier_message_id: string, part: int32 not null, error_code: string, error_description: string> not null>",
	} {
		if f1.Schema[col] != typ {
			t.Errorf("column %s: pyarrow type %q, want %q", col, f1.Schema[col], typ)
		}
	}
	if m := f1.Metadata; m["switchboard.day"] != d.Format(time.DateOnly) || m["switchboard.key"] != "k1" || m["switchboard.version"] != "test" {
		t.Errorf("metadata %v", m)
	}
	// Newest first, as listed.
	if len(f1.Rows) != 4 {
		t.Fatalf("k1: %d rows, want 4", len(f1.Rows))
	}
	for i, m := range k1 {
		wantRow(t, f1.Rows[len(k1)-1-i], m)
	}

	rows2 := read[files[1].Path].Rows
	if len(rows2) != len(k2) {
		t.Fatalf("k2: %d rows, want %d", len(rows2), len(k2))
	}
	for i, r := range rows2 {
		if want := k2[len(k2)-1-i].ID; r["id"] != want {
			t.Fatalf("k2 row %d: id %v, want %s (newest first)", i, r["id"], want)
		}
	}
}

// wantRow checks every column of a row pyarrow read against the message.
func wantRow(t *testing.T, got map[string]any, m *sb.Message) {
	t.Helper()
	ts := func(x time.Time) string { return x.UTC().Format("2006-01-02T15:04:05.000000+00:00") }
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	strs := func(ss []string) []any {
		out := []any{}
		for _, s := range ss {
			out = append(out, s)
		}
		return out
	}
	var partStatuses []string
	for _, s := range m.PartStatus {
		partStatuses = append(partStatuses, string(s))
	}
	dir := "outbound"
	if m.Direction == sb.DirectionInbound {
		dir = "inbound"
	}
	var errCode, errDesc any
	if e := m.Error(); e != nil {
		errCode, errDesc = opt(e.Code), opt(e.Description)
	}
	var expires any
	if !m.ExpiresAt.IsZero() {
		expires = ts(m.ExpiresAt)
	}
	events := []any{}
	for _, e := range m.Events {
		var code, desc any
		if e.Error != nil {
			code, desc = opt(e.Error.Code), opt(e.Error.Description)
		}
		events = append(events, map[string]any{"status": string(e.Status), "at": ts(e.At), "carrier": opt(e.Carrier),
			"carrier_message_id": opt(e.CarrierMessageID), "part": float64(e.Part), "error_code": code, "error_description": desc})
	}
	failures := []any{}
	for _, w := range m.WebhookFailures {
		failures = append(failures, map[string]any{"event_id": w.EventID, "type": w.Type, "url": w.URL,
			"reason": w.Reason, "attempts": float64(w.Attempts), "at": ts(w.At)})
	}
	want := map[string]any{
		"id": m.ID, "key": m.Key, "direction": dir, "to": m.To, "from": m.From, "body": m.Body,
		"reference": opt(m.Reference), "callback_url": opt(m.CallbackURL), "encoding": m.Encoding,
		"segments": float64(m.Segments), "status": string(m.Status), "accepted_at": ts(m.AcceptedAt),
		"updated_at": ts(m.UpdatedAt), "expires_at": expires, "carrier": opt(m.Carrier),
		"carrier_ids": strs(m.CarrierIDs), "part_statuses": strs(partStatuses), "attempts": float64(m.Attempts),
		"error_code": errCode, "error_description": errDesc, "partial": m.Partial, "fence": float64(m.Fence), "events": events,
		"webhook_failures": failures,
	}
	for col, w := range want {
		if g, ok := got[col]; !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("message %s, column %s: pyarrow read %#v, want %#v", m.ID, col, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("message %s: %d columns, want %d: %v", m.ID, len(got), len(want), keys(got))
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprint(k))
	}
	return out
}
