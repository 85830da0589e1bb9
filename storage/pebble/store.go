package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Logger receives the store's own messages and Pebble's: Pebble's
	// informational chatter at debug level, its errors at error level.
	// The zero value logs nothing.
	Logger zerolog.Logger

	// Now is the clock the idempotency window is measured with; it exists
	// so tests can move time. Default time.Now.
	Now func() time.Time

	// MemTableSize is the size of one Pebble memtable; up to two are held
	// at once (one filling, one flushing). Default 32 MiB.
	MemTableSize uint64

	// CacheSize is the size of the block cache for table data. Default
	// 32 MiB, which holds the filter and index blocks the write path
	// probes. Pebble charges memtables to its cache, so the cache Open
	// creates is this plus the memtables.
	//
	// With the defaults the process stayed under 250 MiB RSS while
	// holding and then paging through a million pending messages
	// (TestMillionPending); with 64 MiB for both it peaked near 430 MiB, as
	// the C allocator behind Pebble's cache keeps freed blocks.
	CacheSize int64

	// SyncInterval is the least time between two fsyncs of the WAL.
	// Writes that queue up meanwhile share the next fsync, so at moderate
	// rates a disk that syncs in 0.2 ms is not asked for thousands of
	// fsyncs a second, each costing CPU in the kernel. Every write still
	// waits for its own fsync; the interval only adds up to this much to
	// its latency. Default 500µs; negative: none (sync as soon as asked).
	SyncInterval time.Duration
}

const (
	defaultMemTableSize = 32 << 20
	defaultCacheSize    = 32 << 20
	defaultSyncInterval = 500 * time.Microsecond
	// memTableStopWrites is how many memtables may fill before Pebble
	// stalls writes (its own default).
	memTableStopWrites = 2
)

func (o *Options) setDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = defaultSyncInterval
	}
}

// Store is a switchboard.Store on a Pebble database in one directory.
// It is safe for concurrent use. Writes go through one committer goroutine
// that group-commits them (see commit.go); reads go to Pebble directly.
type Store struct {
	db  *pebbledb.DB
	now func() time.Time

	// rw keeps reads out of a closing database: reads hold it shared and
	// check closed, Close takes it exclusively to set closed.
	rw     sync.RWMutex
	closed bool

	committer *committer
}

var _ sb.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	db, err := pebbledb.Open(dir, pebbleOptions(&opts))
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// Pebble's lock on the directory: say so rather than "resource
		// temporarily unavailable".
		return nil, fmt.Errorf("pebble: open %s: the directory is locked: is another node using it? (%w)", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	if err := checkLayout(db); err != nil {
		return nil, errors.Join(fmt.Errorf("pebble: open %s: %w", dir, err), db.Close())
	}
	s := &Store{db: db, now: opts.Now}
	s.committer = newCommitter(db, opts.Now, opts.Logger)
	if err := s.committer.loadMaxID(); err != nil {
		return nil, errors.Join(fmt.Errorf("pebble: open %s: find the highest message ID: %w", dir, err), db.Close())
	}
	s.committer.start()
	return s, nil
}

func pebbleOptions(o *Options) *pebbledb.Options {
	po := &pebbledb.Options{
		// Memtables take their memory out of the cache; without room for
		// them on top, a cache no larger than the memtables holds no
		// blocks at all, and every Get reads the disk.
		CacheSize:                   o.CacheSize + int64(o.MemTableSize)*memTableStopWrites,
		MemTableSize:                o.MemTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		// Pinned rather than FormatNewest, so a Pebble upgrade does not
		// ratchet the files past what the previous binary can open.
		FormatMajorVersion: pebbledb.FormatValueSeparation,
		Logger:             pebbleLogger{o.Logger},
		EventListener:      eventListener(o.Logger),
	}
	if o.SyncInterval > 0 {
		interval := o.SyncInterval
		po.WALMinSyncInterval = func() time.Duration { return interval }
	}
	// Every Accept probes for an existing ID and idempotency key, nearly
	// always absent: bloom filters answer those misses without reading
	// blocks.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}

// checkLayout records the layout version in a new database and refuses a
// database written with another one.
func checkLayout(db *pebbledb.DB) error {
	v, closer, err := db.Get([]byte(layoutKey))
	if errors.Is(err, pebbledb.ErrNotFound) {
		return db.Set([]byte(layoutKey), []byte{layoutVersion}, pebbledb.Sync)
	}
	if err != nil {
		return fmt.Errorf("read layout version: %w", err)
	}
	defer closer.Close()
	if len(v) != 1 || v[0] != layoutVersion {
		return fmt.Errorf("layout version %v, want %d", v, layoutVersion)
	}
	return nil
}

// errClosed is returned by every call after Close.
func errClosed() error { return sb.Errorf(sb.EUNAVAILABLE, "storage is closed") }

// Close waits for queued writes to commit, stops the committer and closes
// the database. Calls after Close fail with EUNAVAILABLE.
func (s *Store) Close() error {
	s.rw.Lock()
	wasClosed := s.closed
	s.closed = true
	s.rw.Unlock()
	if wasClosed {
		return fmt.Errorf("pebble: close: %w", errClosed())
	}
	s.committer.stop()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble: close: %w", err)
	}
	return nil
}

// Accept stores new messages with their indexes and idempotency records,
// all or none, and returns once they are synced. Besides an existing ID, an
// idempotency key with a live record fails with ECONFLICT. The messages are
// stored as given: the caller sets status accepted and the first event.
func (s *Store) Accept(ctx context.Context, msgs []sb.NewMessage) error {
	write := func(c *committer, b *pebbledb.Batch) error { return c.accept(msgs, b) }
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return fmt.Errorf("pebble: accept: %w", err)
	}
	return nil
}

// Record applies transitions with Message.Apply and stores the results, all
// or none, returning once they are synced. It returns one message per
// update: the message as it stood after that update. A transition that
// changes nothing is not an error; its message is returned unchanged. The
// callback an update's Notify asks for (Notify.StatusCallbacks, given the
// status before that update) is queued in the same batch; one without an
// ID fails the call with EINVALID.
func (s *Store) Record(ctx context.Context, updates []sb.Update) ([]*sb.Message, error) {
	var msgs []*sb.Message
	write := func(c *committer, b *pebbledb.Batch) (err error) {
		msgs, err = c.record(updates, b)
		return err
	}
	if err := s.committer.do(ctx, &request{write: write}); err != nil {
		return nil, fmt.Errorf("pebble: record: %w", err)
	}
	return msgs, nil
}

// beginRead admits a read unless ctx is done or the store is closed; when
// it returns nil the caller must call s.rw.RUnlock.
func (s *Store) beginRead(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.rw.RLock()
	if s.closed {
		s.rw.RUnlock()
		return errClosed()
	}
	return nil
}

// Message returns a message by ID, or ENOTFOUND.
func (s *Store) Message(ctx context.Context, id string) (*sb.Message, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, fmt.Errorf("pebble: message: %w", err)
	}
	defer s.rw.RUnlock()
	m, err := getMessage(s.db, messageKey(nil, id))
	if err != nil {
		return nil, fmt.Errorf("pebble: message %s: %w", id, err)
	}
	return m, nil
}

// getter is what reads need from a DB or a Snapshot.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// getMessage reads and decodes a message, ENOTFOUND if there is none.
func getMessage(g getter, key []byte) (*sb.Message, error) {
	v, closer, err := g.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, sb.Errorf(sb.ENOTFOUND, "message not found")
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return decodeMessage(v)
}

// Idempotency returns the record of an Idempotency-Key of key. A record is
// found while its CreatedAt (the message's AcceptedAt) is younger than
// switchboard.IdempotencyWindow by Options.Now; after that, ENOTFOUND.
func (s *Store) Idempotency(ctx context.Context, key, idemKey string) (sb.IdempotencyRecord, error) {
	if err := s.beginRead(ctx); err != nil {
		return sb.IdempotencyRecord{}, fmt.Errorf("pebble: idempotency: %w", err)
	}
	defer s.rw.RUnlock()
	r, found, err := liveIdempotency(s.db, idempotencyKey(nil, key, idemKey), s.now())
	if err != nil {
		return sb.IdempotencyRecord{}, fmt.Errorf("pebble: idempotency: %w", err)
	}
	if !found {
		return sb.IdempotencyRecord{}, fmt.Errorf("pebble: idempotency: %w",
			sb.Errorf(sb.ENOTFOUND, "idempotency key not found"))
	}
	return r, nil
}

// liveIdempotency reads an idempotency record and reports whether it is
// still inside the window at now.
func liveIdempotency(g getter, k []byte, now time.Time) (sb.IdempotencyRecord, bool, error) {
	v, closer, err := g.Get(k)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return sb.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return sb.IdempotencyRecord{}, false, err
	}
	defer closer.Close()
	r, err := decodeIdempotency(v)
	if err != nil {
		return sb.IdempotencyRecord{}, false, err
	}
	return r, now.Sub(r.CreatedAt) < sb.IdempotencyWindow, nil
}

// CarrierMessage finds the message and part a carrier's message id belongs
// to, or ENOTFOUND.
func (s *Store) CarrierMessage(ctx context.Context, carrier, carrierID string) (string, int, error) {
	if err := s.beginRead(ctx); err != nil {
		return "", 0, fmt.Errorf("pebble: carrier message: %w", err)
	}
	defer s.rw.RUnlock()
	v, closer, err := s.db.Get(carrierKey(nil, carrier, carrierID))
	if errors.Is(err, pebbledb.ErrNotFound) {
		return "", 0, fmt.Errorf("pebble: carrier message: %w",
			sb.Errorf(sb.ENOTFOUND, "carrier %s message %s not found", carrier, carrierID))
	}
	if err != nil {
		return "", 0, fmt.Errorf("pebble: carrier message: %w", err)
	}
	defer closer.Close()
	id, part, err := decodeCarrierRef(v)
	if err != nil {
		return "", 0, fmt.Errorf("pebble: carrier message %s/%s: %w", carrier, carrierID, err)
	}
	return id, part, nil
}

// Pending lists up to limit pending messages of key with afterID < ID <
// beforeID ("": no upper bound), in ID order.
func (s *Store) Pending(ctx context.Context, key, afterID, beforeID string, limit int) ([]*sb.Message, error) {
	msgs, err := s.list(ctx, pendingPrefix(nil, key), afterID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("pebble: pending %s: %w", key, err)
	}
	return msgs, nil
}

// listScanLimit bounds the messages one ListMessages call reads, so a
// filter that matches little cannot make one call read a whole day.
const listScanLimit = 5000

// ListMessages lists a key's messages of one UTC day, newest first, with
// q's filters (see switchboard.MessageStore).
func (s *Store) ListMessages(ctx context.Context, q sb.MessageQuery) ([]*sb.Message, string, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, "", fmt.Errorf("pebble: list messages: %w", err)
	}
	defer s.rw.RUnlock()
	if q.Limit <= 0 {
		return nil, "", nil
	}
	prefix := dayPrefix(nil, q.Key, q.Day)
	upper := successor(prefix)
	if q.Before != "" {
		upper = append(prefix[:len(prefix):len(prefix)], q.Before...)
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebbledb.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("pebble: list messages: %w", err)
	}
	defer it.Close()
	var msgs []*sb.Message
	var key []byte
	lastRead, scanned := "", 0
	ok := it.Last()
	for ; ok && len(msgs) < q.Limit && scanned < listScanLimit; ok = it.Prev() {
		lastRead = string(it.Key()[len(prefix):])
		scanned++
		key = messageKey(key[:0], lastRead)
		m, err := getMessage(snap, key)
		if err != nil {
			return nil, "", fmt.Errorf("pebble: list messages: index entry %q: %w", it.Key(), err)
		}
		if q.Matches(m) {
			msgs = append(msgs, m)
		}
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("pebble: list messages: %w", err)
	}
	if !ok {
		return msgs, "", nil // the day is done
	}
	return msgs, lastRead, nil
}

// Overdue lists submitted messages whose receipt is overdue.
func (s *Store) Overdue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return nil, nil // TODO(pebble): receipt-due index
}

// Writable reports whether the store takes writes.
func (s *Store) Writable() error {
	if f := s.committer.failed.Load(); f != nil {
		return sb.Errorf(sb.EUNAVAILABLE, "storage failed: %v", *f)
	}
	return nil
}

// list reads an index whose entries are prefix+ID, for IDs between afterID
// and beforeID ("": no bound), and returns the messages they name. It reads
// from one snapshot, so the index and the messages agree even while the
// committer writes.
func (s *Store) list(ctx context.Context, prefix []byte, afterID, beforeID string, limit int) ([]*sb.Message, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, err
	}
	defer s.rw.RUnlock()
	if limit <= 0 {
		return nil, nil
	}
	lower := append(prefix[:len(prefix):len(prefix)], afterID...)
	if afterID != "" {
		lower = after(lower)
	}
	upper := successor(prefix)
	if beforeID != "" {
		upper = append(prefix[:len(prefix):len(prefix)], beforeID...)
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil, nil // an empty range; pebble wants lower < upper
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var msgs []*sb.Message
	var key []byte
	for ok := it.First(); ok && len(msgs) < limit; ok = it.Next() {
		key = messageKey(key[:0], string(it.Key()[len(prefix):]))
		m, err := getMessage(snap, key)
		if err != nil {
			return nil, fmt.Errorf("index entry %q: %w", it.Key(), err)
		}
		msgs = append(msgs, m)
	}
	return msgs, it.Error()
}

// PendingKeys lists the API keys that have pending messages, with one seek
// per key (see distinct).
func (s *Store) PendingKeys(ctx context.Context) ([]string, error) {
	keys, err := s.distinct(ctx, prefixPending)
	if err != nil {
		return nil, fmt.Errorf("pebble: pending keys: %w", err)
	}
	return keys, nil
}

// distinct lists the distinct first components of the keys of one kind
// (prefix): the API keys of the pending index, the endpoints of the
// outbox. It skips from one component's entries to the next with a seek,
// so it costs one seek per component rather than one step per entry.
func (s *Store) distinct(ctx context.Context, prefix string) ([]string, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, err
	}
	defer s.rw.RUnlock()
	lower := []byte(prefix)
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: successor(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	var next []byte
	for ok := it.First(); ok; ok = it.SeekGE(next) {
		c, valid := firstComponent(it.Key())
		if !valid {
			return nil, fmt.Errorf("bad key %q", it.Key())
		}
		out = append(out, c)
		next = successor(appendComponent(append(next[:0], prefix...), c))
	}
	return out, it.Error()
}
