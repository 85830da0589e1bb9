// Package archive writes a day of messages to Parquet files
// (github.com/parquet-go/parquet-go), one per API key, for cold storage
// and analysis: the message with its status, carrier ids, error and
// events, as columns any Parquet reader (pyarrow, DuckDB, Spark) can query.
package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	sb "github.com/switchboard-sms/switchboard"
)

// Row is one message as the archive writes it: one column each, the
// events and webhook failures as lists of groups. Optional strings are
// null where the message has none.
type Row struct {
	ID              string           `parquet:"id"`
	Key             string           `parquet:"key,dict"`
	Direction       string           `parquet:"direction,dict"`
	To              string           `parquet:"to"`
	From            string           `parquet:"from,dict"`
	Body            string           `parquet:"body"`
	Reference       *string          `parquet:"reference,optional"`
	CallbackURL     *string          `parquet:"callback_url,optional,dict"`
	Encoding        string           `parquet:"encoding,dict"`
	Segments        int32            `parquet:"segments"`
	Status          string           `parquet:"status,dict"`
	AcceptedAt      time.Time        `parquet:"accepted_at,timestamp(microsecond)"`
	UpdatedAt       time.Time        `parquet:"updated_at,timestamp(microsecond)"`
	ExpiresAt       *time.Time       `parquet:"expires_at,optional,timestamp(microsecond)"`
	Carrier         *string          `parquet:"carrier,optional,dict"`
	CarrierIDs      []string         `parquet:"carrier_ids,list"`
	PartStatuses    []string         `parquet:"part_statuses,list"`
	Attempts        int32            `parquet:"attempts"`
	ErrorCode       *string          `parquet:"error_code,optional,dict"`
	ErrorDesc       *string          `parquet:"error_description,optional"`
	Partial         bool             `parquet:"partial"`
	Fence           int64            `parquet:"fence"` // the accepting owner's fencing token; 0 on a single node
	Events          []EventRow       `parquet:"events,list"`
	WebhookFailures []WebhookFailure `parquet:"webhook_failures,list"`
}

// EventRow is one status transition of a message.
type EventRow struct {
	Status           string    `parquet:"status"`
	At               time.Time `parquet:"at,timestamp(microsecond)"`
	Carrier          *string   `parquet:"carrier,optional"`
	CarrierMessageID *string   `parquet:"carrier_message_id,optional"`
	Part             int32     `parquet:"part"` // 1-based; 0: the whole message
	ErrorCode        *string   `parquet:"error_code,optional"`
	ErrorDesc        *string   `parquet:"error_description,optional"`
}

// WebhookFailure is a callback about the message that was given up on.
type WebhookFailure struct {
	EventID  string    `parquet:"event_id"`
	Type     string    `parquet:"type"`
	URL      string    `parquet:"url"`
	Reason   string    `parquet:"reason"`
	Attempts int32     `parquet:"attempts"`
	At       time.Time `parquet:"at,timestamp(microsecond)"`
}

// RowOf returns m as the archive writes it.
func RowOf(m *sb.Message) Row {
	r := Row{
		ID: m.ID, Key: m.Key, Direction: direction(m), To: m.To, From: m.From, Body: m.Body,
		Reference: optional(m.Reference), CallbackURL: optional(m.CallbackURL),
		Encoding: m.Encoding, Segments: int32(m.Segments), Status: string(m.Status),
		AcceptedAt: m.AcceptedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
		Carrier: optional(m.Carrier), CarrierIDs: m.CarrierIDs, Attempts: int32(m.Attempts),
		Partial: m.Partial, Fence: m.Fence,
	}
	if !m.ExpiresAt.IsZero() {
		t := m.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	for _, s := range m.PartStatus {
		r.PartStatuses = append(r.PartStatuses, string(s))
	}
	if e := m.Error(); e != nil {
		r.ErrorCode, r.ErrorDesc = optional(e.Code), optional(e.Description)
	}
	for _, e := range m.Events {
		ev := EventRow{Status: string(e.Status), At: e.At.UTC(), Carrier: optional(e.Carrier),
			CarrierMessageID: optional(e.CarrierMessageID), Part: int32(e.Part)}
		if e.Error != nil {
			ev.ErrorCode, ev.ErrorDesc = optional(e.Error.Code), optional(e.Error.Description)
		}
		r.Events = append(r.Events, ev)
	}
	for _, w := range m.WebhookFailures {
		r.WebhookFailures = append(r.WebhookFailures, WebhookFailure{EventID: w.EventID, Type: w.Type,
			URL: w.URL, Reason: w.Reason, Attempts: int32(w.Attempts), At: w.At.UTC()})
	}
	return r
}

func direction(m *sb.Message) string {
	if m.Direction == sb.DirectionInbound {
		return sb.DirectionInbound
	}
	return sb.DirectionOutbound
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// File is what Write wrote for one key.
type File struct {
	Key      string
	Path     string // "" when the key had no messages that day
	Messages int
	// Kept is set when Path is a file written before that holds more
	// messages than the store has now (retention deleted some since): it
	// is left as it was, Messages is what it holds, and Write's error
	// says so.
	Kept bool
}

// pageSize is how many messages one ListMessages call asks for, and
// rowGroup how many rows a row group holds: the writer keeps one row
// group in memory.
const (
	pageSize = 1000
	rowGroup = 50_000
)

// Options say what Write writes where.
type Options struct {
	Day  string   // YYYY-MM-DD, the UTC day the messages were accepted on
	Keys []string // the API keys whose messages to write
	Dir  string   // files go to Dir/<Day>/<key>.parquet
	// Version is the gateway's, recorded in each file's metadata
	// (switchboard.version) beside the day and the key.
	Version string
}

// Write writes the messages of each key accepted on the day to
// <dir>/<day>/<key>.parquet, newest first, as the store lists them. A key
// with no messages that day gets no file. A file appears whole or not at
// all (it is written beside, synced and renamed, and its directory
// synced), and an existing one is replaced, so Write may be run again,
// unless it holds more messages than the store has now: a store's
// retention deletes a day in steps, and the file written before it began
// is the only whole copy. That file is kept (File.Kept), the other keys
// are written, and the error names it.
func Write(ctx context.Context, store sb.MessageStore, o Options) ([]File, error) {
	if _, err := time.Parse(time.DateOnly, o.Day); err != nil {
		return nil, sb.Errorf(sb.EINVALID, "day %q is not YYYY-MM-DD", o.Day)
	}
	dayDir := filepath.Join(o.Dir, o.Day)
	if err := os.MkdirAll(dayDir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var files []File
	var kept []error
	for _, key := range o.Keys {
		f, err := writeKey(ctx, store, o, key, dayDir)
		if err != nil {
			return files, errors.Join(append(kept, fmt.Errorf("archive: key %s: %w", key, err))...)
		}
		if f.Kept {
			kept = append(kept, fmt.Errorf("archive: key %s: %s holds %d messages and the store fewer now (retention deleted some): the file is kept; remove it to write what the store has", key, f.Path, f.Messages))
		}
		files = append(files, f)
	}
	return files, errors.Join(kept...)
}

func writeKey(ctx context.Context, store sb.MessageStore, o Options, key, dir string) (File, error) {
	out := File{Key: key}
	tmp, err := os.CreateTemp(dir, "."+key+".parquet.*")
	if err != nil {
		return out, err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	defer tmp.Close()
	w := parquet.NewGenericWriter[Row](tmp,
		parquet.Compression(&zstd.Codec{}),
		parquet.MaxRowsPerRowGroup(rowGroup),
		parquet.KeyValueMetadata("switchboard.day", o.Day),
		parquet.KeyValueMetadata("switchboard.key", key),
		parquet.KeyValueMetadata("switchboard.version", o.Version),
	)
	q := sb.MessageQuery{Key: key, Day: o.Day, Limit: pageSize}
	rows := make([]Row, 0, pageSize)
	for {
		msgs, next, err := store.ListMessages(ctx, q)
		if err != nil {
			return out, fmt.Errorf("list messages: %w", err)
		}
		rows = rows[:0]
		for _, m := range msgs {
			rows = append(rows, RowOf(m))
		}
		if _, err := w.Write(rows); err != nil {
			return out, fmt.Errorf("write: %w", err)
		}
		out.Messages += len(rows)
		if next == "" {
			break
		}
		q.Before = next
	}
	path := filepath.Join(dir, key+".parquet")
	before, err := rowsIn(path)
	switch {
	case err != nil:
		return out, fmt.Errorf("write %s: %w", path, err)
	case before > int64(out.Messages):
		return File{Key: key, Path: path, Messages: int(before), Kept: true}, nil
	case out.Messages == 0:
		return out, nil
	}
	err = w.Close()
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return out, fmt.Errorf("write %s: %w", path, err)
	}
	out.Path = path
	return out, nil
}

// rowsIn is how many rows the Parquet file at path holds; 0 if there is
// none.
func rowsIn(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return 0, fmt.Errorf("read the file written before: %w", err)
	}
	return pf.NumRows(), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
