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
	"github.com/cockroachdb/pebble/v2/vfs"
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

	// FS is the filesystem the store lives on; tests pass a simulated
	// one. Default vfs.Default, the operating system's.
	FS vfs.FS

	// CompactionRate is how many bytes per second compactions write while
	// level 0 keeps up, so that a merge's CPU is spread over seconds
	// rather than taken in one burst (pacing.go). Default 8 MiB/s;
	// negative: unpaced.
	CompactionRate int64

	// MinFree is the free disk space, in bytes, below which the store
	// refuses new messages (Accept, AcceptInbound, AddInboundPart fail
	// with EUNAVAILABLE) while every other write goes on, so messages
	// already accepted still reach a final status. MinFreePercent sets it
	// as a percentage of the disk's size instead. With neither, the
	// threshold is the smaller of 1 GiB and 5 % of the disk; a negative
	// MinFree sets none.
	MinFree        int64
	MinFreePercent float64

	// TTL is how long messages are kept: a message, and every index entry
	// that names it, is deleted once the whole UTC day it was accepted on
	// is older than TTL. Default 720h.
	TTL time.Duration

	// CarrierIDGrace is how long a carrier id still finds its message
	// after the message turned final, for late and repeated receipts.
	// Default 72h.
	CarrierIDGrace time.Duration

	// HousekeepingInterval is how often retention runs (Housekeep).
	// Default one minute; below zero, it runs only when Housekeep is
	// called (a store opened to read it, as the archive does, deletes
	// nothing on its own).
	HousekeepingInterval time.Duration
}

const (
	defaultMemTableSize = 32 << 20
	defaultCacheSize    = 32 << 20
	defaultSyncInterval = 500 * time.Microsecond
	defaultTTL          = 720 * time.Hour
	defaultGrace        = 72 * time.Hour
	defaultHousekeeping = time.Minute
	// memTableStopWrites is how many memtables may fill before Pebble
	// stalls writes (its own default).
	memTableStopWrites = 2
	// Level 0 holds 16 sublevels before they are merged into the level
	// below, where Pebble's default is 4. Every flushed table spans every
	// kind of record (a message, its day and carrier index entries, its
	// expiry entries), so a merge rewrites most of the level below
	// whatever it brings: gathering four times as much per merge about
	// halves the bytes compactions write. Point reads then consult more
	// tables, which their bloom filters keep cheap. Writes stop at three
	// times the threshold, Pebble's own ratio.
	l0CompactionThreshold = 16
	l0StopWrites          = 3 * l0CompactionThreshold
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
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CompactionRate == 0 {
		o.CompactionRate = defaultCompactionRate
	}
	if o.TTL <= 0 {
		o.TTL = defaultTTL
	}
	if o.CarrierIDGrace <= 0 {
		o.CarrierIDGrace = defaultGrace
	}
	if o.HousekeepingInterval == 0 {
		o.HousekeepingInterval = defaultHousekeeping
	}
}

// Store is a switchboard.Store on a Pebble database in one directory.
// It is safe for concurrent use. Writes go through one committer goroutine
// that group-commits them (see commit.go); reads go to Pebble directly.
// A housekeeping goroutine applies retention (retention.go).
type Store struct {
	db   *pebbledb.DB
	now  func() time.Time
	opts Options

	// rw keeps reads out of a closing database: reads hold it shared and
	// check closed, Close takes it exclusively to set closed.
	rw     sync.RWMutex
	closed bool

	committer *committer
	disk      *diskGuard
	keeper    *housekeeper
	pacer     *compactionPacer // nil: compactions are not paced
}

var _ sb.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir, and starts its
// committer and its housekeeping, which Close stops.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	po := pebbleOptions(&opts)
	var pacer *compactionPacer
	if opts.CompactionRate > 0 {
		pacer = newCompactionPacer(opts.CompactionRate)
		po.FS = pacedFS{FS: po.FS, pacer: pacer}
	}
	db, err := pebbledb.Open(dir, po)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		// Pebble's lock on the directory: say so rather than "resource
		// temporarily unavailable".
		return nil, fmt.Errorf("pebble: open %s: the directory is locked: is another node using it? (%w)", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	s := &Store{db: db, now: opts.Now, opts: opts, disk: newDiskGuard(opts.FS, dir, &opts), pacer: pacer}
	if err := checkLayout(db, opts.Logger); err != nil {
		return nil, errors.Join(fmt.Errorf("pebble: open %s: %w", dir, err), s.closeDB())
	}
	if pacer != nil {
		pacer.watch(func() int { return int(db.Metrics().Levels[0].Sublevels) })
	}
	s.committer = newCommitter(db, opts.Now, opts.Logger)
	if err := s.committer.loadMaxID(); err != nil {
		return nil, errors.Join(fmt.Errorf("pebble: open %s: find the highest message ID: %w", dir, err), s.closeDB())
	}
	if err := s.committer.loadParkedKeys(); err != nil {
		return nil, errors.Join(fmt.Errorf("pebble: open %s: list parked receipts: %w", dir, err), s.closeDB())
	}
	s.committer.start()
	s.startHousekeeping()
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
		L0CompactionThreshold:       l0CompactionThreshold,
		L0StopWritesThreshold:       l0StopWrites,
		// Pinned rather than FormatNewest, so a Pebble upgrade does not
		// ratchet the files past what the previous binary can open.
		FormatMajorVersion: pebbledb.FormatValueSeparation,
		Logger:             pebbleLogger{o.Logger},
		EventListener:      eventListener(o.Logger),
		FS:                 o.FS,
		// Lets a read of the outbox skip the tables it has read past
		// (outboxtimes.go).
		BlockPropertyCollectors: []func() pebbledb.BlockPropertyCollector{outboxTimesCollector},
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
	s.keeper.stop()
	s.committer.stop()
	if err := s.closeDB(); err != nil {
		return fmt.Errorf("pebble: close: %w", err)
	}
	return nil
}

// closeDB closes the database. A compaction may be running: it need not
// keep its pace while the database waits for it.
func (s *Store) closeDB() error {
	if s.pacer != nil {
		s.pacer.stop()
	}
	return s.db.Close()
}

// Accept stores new messages with their indexes and idempotency records,
// all or none, and returns once they are synced. Besides an existing ID, an
// idempotency key with a live record fails with ECONFLICT. The messages are
// stored as given: the caller sets status accepted and the first event.
func (s *Store) Accept(ctx context.Context, msgs []sb.NewMessage) error {
	if err := s.disk.check(); err != nil {
		return fmt.Errorf("pebble: accept: %w", err)
	}
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

// beginRead admits a read unless ctx is done or the store is closed or
// failed; when it returns nil the caller must call s.rw.RUnlock. Every
// read that found something ends with s.durable, so what it returns is
// durable.
func (s *Store) beginRead(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.committer.failure(); err != nil {
		return err
	}
	s.rw.RLock()
	if s.closed {
		s.rw.RUnlock()
		return errClosed()
	}
	return nil
}

// durable returns once what a read found is durable (see
// committer.waitSynced). A read that found nothing returns at once: a
// write that nothing found could depend on goes through the committer,
// which refuses it if the store failed. So an Idempotency-Key seen for the
// first time, the usual case, never waits.
func (s *Store) durable(ctx context.Context, found bool) error {
	if !found {
		return nil
	}
	return s.committer.waitSynced(ctx)
}

// Message returns a message by ID, or ENOTFOUND.
func (s *Store) Message(ctx context.Context, id string) (*sb.Message, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, fmt.Errorf("pebble: message: %w", err)
	}
	defer s.rw.RUnlock()
	m, err := getMessage(s.db, messageKey(nil, id))
	if err == nil {
		err = s.durable(ctx, true)
	}
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
	if err == nil {
		err = s.durable(ctx, found)
	}
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
	r, found, err := readIdempotency(g, k)
	return r, found && now.Sub(r.CreatedAt) < sb.IdempotencyWindow, err
}

// readIdempotency reads an idempotency record, expired or not.
func readIdempotency(g getter, k []byte) (sb.IdempotencyRecord, bool, error) {
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
		return sb.IdempotencyRecord{}, false, fmt.Errorf("idempotency record %q: %w", k, err)
	}
	return r, true, nil
}

// CarrierMessage finds the message and part a carrier's message id belongs
// to, or ENOTFOUND.
func (s *Store) CarrierMessage(ctx context.Context, carrier, carrierID string) (string, int, error) {
	if err := s.beginRead(ctx); err != nil {
		return "", 0, fmt.Errorf("pebble: carrier message: %w", err)
	}
	defer s.rw.RUnlock()
	ref, found, err := readRef(s.db, carrierKey(nil, carrier, carrierID))
	if err == nil {
		err = s.durable(ctx, found)
	}
	if err != nil {
		return "", 0, fmt.Errorf("pebble: carrier message %s/%s: %w", carrier, carrierID, err)
	}
	if !found {
		return "", 0, fmt.Errorf("pebble: carrier message: %w",
			sb.Errorf(sb.ENOTFOUND, "carrier %s message %s not found", carrier, carrierID))
	}
	return ref.messageID, ref.part, nil
}

// readRef reads a carrier index entry.
func readRef(g getter, k []byte) (refEntry, bool, error) {
	v, closer, err := g.Get(k)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return refEntry{}, false, nil
	}
	if err != nil {
		return refEntry{}, false, err
	}
	defer closer.Close()
	id, part, err := decodeCarrierRef(v)
	if err != nil {
		return refEntry{}, false, fmt.Errorf("carrier index entry %q: %w", k, err)
	}
	return refEntry{messageID: id, part: part}, true, nil
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
	err = it.Error()
	if err == nil {
		err = s.durable(ctx, len(msgs) > 0)
	}
	if err != nil {
		return nil, "", fmt.Errorf("pebble: list messages: %w", err)
	}
	if !ok {
		return msgs, "", nil // the day is done
	}
	return msgs, lastRead, nil
}

// Overdue lists up to limit IDs of submitted messages whose ReceiptDue is
// before before, earliest due first: a range scan of the receipt-due index
// (u/<due><id>), which Record keeps while a message is submitted.
func (s *Store) Overdue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	ids, err := s.overdue(ctx, before, limit)
	if err != nil {
		return nil, fmt.Errorf("pebble: overdue: %w", err)
	}
	return ids, nil
}

func (s *Store) overdue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	if err := s.beginRead(ctx); err != nil {
		return nil, err
	}
	defer s.rw.RUnlock()
	if limit <= 0 {
		return nil, nil
	}
	lower := []byte(prefixDue)
	it, err := s.db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: appendTimeKey(lower, before)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []string
	for ok := it.First(); ok && len(ids) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) <= len(prefixDue)+timeKeyLen {
			return nil, fmt.Errorf("bad key %q", k)
		}
		ids = append(ids, string(k[len(prefixDue)+timeKeyLen:]))
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return ids, s.durable(ctx, len(ids) > 0)
}

// Writable reports whether the store takes writes now: nil, or EUNAVAILABLE
// when it has failed (every write fails, and every read) or the disk is
// nearly full (new messages fail, other writes go on).
func (s *Store) Writable() error {
	if err := s.committer.failure(); err != nil {
		return err
	}
	s.rw.RLock()
	closed := s.closed
	s.rw.RUnlock()
	if closed {
		return errClosed()
	}
	return s.disk.check()
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
	if err := it.Error(); err != nil {
		return nil, err
	}
	return msgs, s.durable(ctx, len(msgs) > 0)
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
	if err := it.Error(); err != nil {
		return nil, err
	}
	return out, s.durable(ctx, len(out) > 0)
}
