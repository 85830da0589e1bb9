package pebble

import (
	"bytes"
	"math"
	"unicode"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/oklog/ulid/v2"
)

// Outbox times: a block property that lets a read of the outbox skip the
// tables it has already read past.
//
// A read of an endpoint's outbox starts just after the last callback it
// read (Callbacks' afterID). The callbacks still queued are young, nearly
// all in the memtable, but every table in level 0 spans the whole key
// space, so without help each read seeks in every one of them (16 or more
// under load) only to find nothing after afterID. Each table therefore
// records, per data block and for the table as a whole, the interval of
// the times of its outbox entries (sets and tombstones alike); a read past
// afterID asks only for tables and blocks with an entry at or after
// afterID's time, and Pebble skips the others unopened.
//
// The time of an entry is the millisecond of the ULID in its callback ID
// ("evt_" and a ULID, see switchboard.Callback). ULID text sorts like its
// time, so an entry whose time is before afterID's sorts before afterID:
// nothing a skipped block holds, a tombstone included, lies in the read's
// range. An outbox entry whose ID is not of that form takes every time,
// and other records none, so neither is ever wrongly skipped. A table
// written before the property existed has none and is always read.

const outboxTimesName = "switchboard.outbox-times"

// outboxTimesCollector returns a collector of the property for a new table.
func outboxTimesCollector() pebbledb.BlockPropertyCollector {
	return sstable.NewBlockIntervalCollector(outboxTimesName, outboxTimes{}, nil)
}

// outboxTimes maps a record to the interval of its outbox time.
type outboxTimes struct{}

func (outboxTimes) MapPointKey(k sstable.InternalKey, _ []byte) (sstable.BlockInterval, error) {
	id, ok := outboxEntryID(k.UserKey)
	if !ok {
		return sstable.BlockInterval{}, nil // not an outbox entry
	}
	ms, ok := callbackTime(id)
	if !ok {
		return sstable.BlockInterval{Lower: 0, Upper: math.MaxUint64}, nil
	}
	return sstable.BlockInterval{Lower: ms, Upper: ms + 1}, nil
}

func (outboxTimes) MapRangeKeys(sstable.Span) (sstable.BlockInterval, error) {
	return sstable.BlockInterval{}, nil // the store writes no range keys
}

// outboxFilter returns the filters for a read of the outbox after afterID:
// none when afterID has no time (the read starts at the head).
func outboxFilter(afterID string) []pebbledb.BlockPropertyFilter {
	ms, ok := callbackTime([]byte(afterID))
	if !ok {
		return nil
	}
	// One spare element: Pebble appends to the slice (IterOptions).
	filters := make([]pebbledb.BlockPropertyFilter, 1, 2)
	filters[0] = sstable.NewBlockIntervalFilter(outboxTimesName, ms, math.MaxUint64, nil)
	return filters
}

// outboxEntryID returns the callback ID of an outbox key (o/, the endpoint
// as a component, the ID), without allocating.
func outboxEntryID(k []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(k, []byte(prefixOutbox))
	if !ok {
		return nil, false
	}
	_, id, ok := cutComponent(rest)
	return id, ok
}

// callbackIDPrefix starts every callback ID; the ULID follows.
const callbackIDPrefix = "evt_"

// callbackTime returns the millisecond of the ULID in a callback ID. Only
// an upper-case ULID counts: ULID parsing takes either case, but only in
// one case does the text sort like the time.
func callbackTime(id []byte) (uint64, bool) {
	text, ok := bytes.CutPrefix(id, []byte(callbackIDPrefix))
	if !ok || len(text) < ulid.EncodedSize {
		return 0, false
	}
	text = text[:ulid.EncodedSize]
	if bytes.ContainsFunc(text, unicode.IsLower) {
		return 0, false
	}
	u, err := ulid.ParseStrict(string(text))
	if err != nil {
		return 0, false
	}
	return u.Time(), true
}
