package pebble

import (
	"errors"
	"fmt"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// checkLayout records the layout version in a new database, brings a
// database of layout 1 up to the current one, and refuses any other.
func checkLayout(db *pebbledb.DB, log zerolog.Logger) error {
	v, closer, err := db.Get([]byte(layoutKey))
	if errors.Is(err, pebbledb.ErrNotFound) {
		return db.Set([]byte(layoutKey), []byte{layoutVersion}, pebbledb.Sync)
	}
	if err != nil {
		return fmt.Errorf("read layout version: %w", err)
	}
	version := append([]byte(nil), v...)
	closer.Close()
	switch {
	case len(version) == 1 && version[0] == layoutVersion:
		return nil
	case len(version) == 1 && version[0] == 1:
		return migrateFrom1(db, log)
	}
	return fmt.Errorf("layout version %v, want %d", version, layoutVersion)
}

// batchWriter writes many entries in synced batches of migrateBatch.
type batchWriter struct {
	db *pebbledb.DB
	b  *pebbledb.Batch
}

func (w *batchWriter) set(k, v []byte) error { return w.setTogether([2][]byte{k, v}) }

// setTogether writes entries (key, value) in one batch: an interrupted
// migration leaves all of them or none.
func (w *batchWriter) setTogether(entries ...[2][]byte) error {
	if w.b != nil && int(w.b.Count())+len(entries) > migrateBatch {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.b == nil {
		w.b = w.db.NewBatch()
	}
	for _, e := range entries {
		if err := w.b.Set(e[0], e[1], nil); err != nil {
			return err
		}
	}
	if w.b.Count() >= migrateBatch {
		return w.flush()
	}
	return nil
}

func (w *batchWriter) flush() error {
	if w.b == nil {
		return nil
	}
	err := w.b.Commit(pebbledb.Sync)
	w.b.Close()
	w.b = nil
	return err
}

// migrateBatch bounds the entries one migration batch writes.
const migrateBatch = 64 << 10

// migrateFrom1 adds what layout 2 keeps beside layout 1's records: the
// pending counter of every key (counted from the pending index) and an
// expiry queue entry for every idempotency record, so retention finds
// them; and, since layout 1 stored no ReceiptDue, a receipt deadline for
// every submitted message (migratedReceiptDue after its last update), so
// one whose receipt never comes still ends. It writes them in batches and
// the new layout version last, all synced: if it is interrupted, the next
// Open runs it again, and the entries it writes come out the same.
// (Carrier index entries of layout 1 go with their messages, at the TTL.)
func migrateFrom1(db *pebbledb.DB, log zerolog.Logger) error {
	start := time.Now()
	counts, err := countPending(db)
	if err != nil {
		return fmt.Errorf("migrate: count pending messages: %w", err)
	}
	w := &batchWriter{db: db}
	defer func() {
		if w.b != nil {
			w.b.Close()
		}
	}()
	for key, n := range counts {
		if err := w.set(countKey(nil, key), appendCounter(nil, n)); err != nil {
			return fmt.Errorf("migrate: write counters: %w", err)
		}
	}
	records, err := queueIdempotency(db, w)
	if err != nil {
		return fmt.Errorf("migrate: queue idempotency records: %w", err)
	}
	submitted, err := dueSubmitted(db, w)
	if err != nil {
		return fmt.Errorf("migrate: receipt deadlines: %w", err)
	}
	if err := w.set([]byte(layoutKey), []byte{layoutVersion}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	log.Info().Int("keys", len(counts)).Int("idempotency_records", records).Int("submitted", submitted).
		Dur("took", time.Since(start)).Msgf("pebble: storage layout migrated from 1 to %d", layoutVersion)
	return nil
}

// countPending counts the pending index entries of every key.
func countPending(db *pebbledb.DB) (map[string]int64, error) {
	prefix := []byte(prefixPending)
	it, err := db.NewIter(&pebbledb.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for ok := it.First(); ok; ok = it.Next() {
		key, valid := firstComponent(it.Key())
		if !valid {
			it.Close()
			return nil, fmt.Errorf("bad key %q", it.Key())
		}
		counts[key]++
	}
	return counts, errors.Join(it.Error(), it.Close())
}

// eachEntry calls f with every entry under prefix, in key order, and
// returns how many times f reported one it wrote (true).
func eachEntry(db *pebbledb.DB, prefix string, f func(k, v []byte) (bool, error)) (int, error) {
	lower := []byte(prefix)
	it, err := db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: successor(lower)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		wrote, err := f(it.Key(), v)
		if err != nil {
			return n, err
		}
		if wrote {
			n++
		}
	}
	return n, it.Error()
}

// queueIdempotency writes an expiry queue entry for every idempotency
// record, and returns how many.
func queueIdempotency(db *pebbledb.DB, w *batchWriter) (int, error) {
	return eachEntry(db, prefixIdempotency, func(k, v []byte) (bool, error) {
		r, err := decodeIdempotency(v)
		if err != nil {
			return false, fmt.Errorf("idempotency record %q: %w", k, err)
		}
		return true, w.set(expiryKey(nil, expiryIdempotency, r.CreatedAt, k), appendGuard(nil, r.MessageID))
	})
}

// migratedReceiptDue is how long after its last update a submitted message
// of layout 1 waits for its receipt: the engine's default receipt timeout
// (the store does not know the carriers' own).
const migratedReceiptDue = 72 * time.Hour

// dueSubmitted gives every submitted message without a ReceiptDue one, in
// the message and in the receipt-due index, and returns how many.
func dueSubmitted(db *pebbledb.DB, w *batchWriter) (int, error) {
	return eachEntry(db, prefixMessage, func(k, v []byte) (bool, error) {
		m, err := decodeMessage(v)
		if err != nil {
			return false, fmt.Errorf("message %q: %w", k, err)
		}
		// One with a deadline got it, and its entry, from an interrupted
		// run: the entry is set once only (it goes by SingleDelete).
		if m.Status != sb.StatusSubmitted || !m.ReceiptDue.IsZero() {
			return false, nil
		}
		m.ReceiptDue = m.UpdatedAt.Add(migratedReceiptDue)
		return true, w.setTogether([2][]byte{messageKey(nil, m.ID), appendMessage(nil, m)},
			[2][]byte{dueKey(nil, m.ReceiptDue, m.ID), nil})
	})
}
