package pebble

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// Group commit.
//
// Every write (Accept, Record, FinishCallbacks, AddInboundPart,
// AcceptInbound, InitSetting) queues a request and waits. One committer
// goroutine takes everything queued (up to maxRoundRequests), validates each
// request against the database plus the requests before it in the same
// round, adds the valid ones to one Pebble batch and applies it with Sync
// but without waiting for the fsync (ApplyNoSyncWait: the batch is in the
// WAL buffer and visible to reads when it returns). It hands the round to a
// syncer goroutine, which waits for the fsync and then wakes the round's
// callers, and goes on to the next round while the disk syncs. Pebble's WAL
// writer folds the syncs of rounds that queue up behind one fsync into the
// next.
//
// Only the committer writes, so its reads are consistent: a round sees
// every earlier round (applied batches are visible before their fsync), and
// requests earlier in the same round through an overlay of the messages,
// idempotency keys and settings they wrote. Outbox and inbox entries need
// no overlay: nothing reads them to decide a write, and a batch applies its
// sets and deletes in order, so a callback queued and finished in one round
// ends deleted. A request that fails validation gets its error and adds
// nothing to the batch, so requests in one round keep their own all-or-none
// semantics.
//
// Every caller, failed or not, is woken only after its round's fsync and
// every earlier one: an ECONFLICT may rest on a write that was visible but
// not yet durable.
//
// Lazy requests: removing delivered callbacks from the outbox
// (FinishCallbacks) starts no round of its own. It waits in the queue for
// the next round another write starts, or for lazyDelay when none comes.
// On a node taking a message every millisecond a removal of its own costs
// a round, a WAL write and an fsync; riding along it costs a batch entry.
// Its caller waits a little longer, and a crash in between only means the
// callback is sent again, which at-least-once delivery allows anyway.
// Status records are never lazy: until a message's "submitted" lands, a
// crash sends the message to the handset again, and the little CPU riding
// along saves on a quiet node does not pay for a wider window.
//
// Cancellation: a caller whose ctx ends while its request is still queued
// withdraws it and gets ctx's error. Once the committer has taken the
// request it is committed regardless, and the caller waits for the result.
//
// Failure: if a batch cannot be applied or synced, later rounds were
// validated against writes that may be lost, so the store fails every write
// from then on with EUNAVAILABLE (fail-stop) and must be reopened. Reads
// fail too, and a read that saw a round still syncing waits for its fsync
// (waitSynced): nothing a failed batch wrote is ever read back.

const (
	// maxRoundRequests bounds the requests taken into one round, so one
	// round's callers are not held behind an arbitrarily long queue.
	maxRoundRequests = 1024
	// maxBatchBytes starts a new batch within a round once a batch grows
	// past it, below Pebble's large-batch threshold (half a memtable).
	maxBatchBytes = 4 << 20
	// syncQueue bounds the rounds applied but not yet synced. Pebble
	// folds the rounds queued behind one fsync into the next, so more in
	// flight would not sync sooner: while the queue is full, requests
	// gather into the next round instead, and fewer, larger rounds cost
	// less per request (a batch, a WAL record and counter updates each).
	syncQueue = 4
	// defaultLazyDelay bounds how long a lazy request waits for a round
	// another write starts (see Lazy requests above).
	defaultLazyDelay = 20 * time.Millisecond
)

// Request states: a queued request is taken by the committer or abandoned
// by its caller, whichever swaps the state first.
const (
	stateQueued uint32 = iota
	stateTaken
	stateAbandoned
)

// request is one write call. write runs on the committer goroutine: it
// validates the call against the database and the round's overlay and, if
// it is valid, adds its writes to the batch (write.go). Results other than
// the error it leaves in the calling method's variables, which that method
// reads only after done, and only if err is nil.
type request struct {
	write func(c *committer, b *pebbledb.Batch) error
	lazy  bool // rides with the next round (see Lazy requests above)

	state atomic.Uint32
	done  chan struct{} // closed by the syncer once err is set
	err   error
}

// round is one applied batch and the requests that went into it.
type round struct {
	batch *pebbledb.Batch
	err   error  // from applying the batch
	seq   uint64 // its number among applied rounds; 0 if it was not applied
	reqs  []*request
}

// committer owns the write path: the queue, the committer goroutine and the
// syncer goroutine. stop ends both after draining the queue.
type committer struct {
	db  *pebbledb.DB
	now func() time.Time
	log zerolog.Logger

	mu      sync.Mutex
	queue   []*request
	stopped bool
	// lazyTimer wakes the committer for lazy requests no other write took
	// along, lazyDelay after the first; armed while the queue holds one.
	lazyTimer *time.Timer
	lazyArmed bool
	lazyDelay time.Duration

	wake   chan struct{} // capacity 1: "the queue is not empty"
	quit   chan struct{}
	rounds chan *round
	done   chan struct{} // closed when the syncer has woken its last caller

	failed atomic.Pointer[error]

	// applied counts the rounds handed to Pebble, synced the ones whose
	// fsync completed (rounds sync in order). syncedCh is closed and
	// replaced whenever synced moves or the store fails, waking waitSynced.
	applied, synced atomic.Uint64
	syncedMu        sync.Mutex
	syncedCh        chan struct{}

	// Owned by the committer goroutine, reused across rounds.
	overlay overlay
	// inflight remembers the messages in flight as last written, and the
	// carrier ids indexed for them (cache.go).
	inflight *inFlight
	// parkedKeys holds the key of every stored list of parked updates
	// (r/), read once at open: most carrier ids have none, and the set
	// spares them a Get (park.go). Past maxParked keys (receipts for ids
	// never sent, on an account the SMSC shares, stay parked for days)
	// it is dropped, nil, and every look-up asks the database, whose
	// bloom filters answer a missing key cheaply.
	parkedKeys map[string]struct{}
	maxParked  int
	// fences caches the keys' fencing tokens (fence.go).
	fences map[string]int64
	// counts caches the pending counter of each key seen (countKey); only
	// the committer writes counters, so the cache stays true. deltas are
	// the changes the batch being built makes, written by flush.
	counts map[string]int64
	deltas map[string]int64
	// finalRefs gathers the batch's carrier index entries to queue for
	// expiry, written with it like the counters (finalrefs.go).
	finalRefs finalRefs
	// maxID is at least the highest message ID claimed. floor and recent
	// spare most new IDs the lookup that proves them free: every stored ID
	// above floor was claimed since floor was set, so it is in recent. IDs
	// are time-ordered, but concurrent requests reach the committer a
	// little out of order: an ID below maxID is common (it cost a lookup
	// for one in two, 2 % of the CPU at full load), one below floor rare.
	maxID, floor string
	recent       map[string]struct{}
	// What the request being executed writes, entered into the overlay
	// when it succeeds (writeTouched) and forgotten either way (endTouch).
	touched   map[string]*touchedMessage
	refs      map[string]refEntry    // carrier index entries, by key
	parked    map[string]parkedEntry // parked updates, by key
	expiries  []expiry               // expiry queue entries
	callbacks []sb.Callback          // callbacks queued
	key       []byte
	val       []byte
}

// overlay holds what the requests in the batch being built wrote, so later
// ones see it. Its messages are never modified, only copied.
type overlay struct {
	msgs     map[string]*sb.Message // by ID
	idem     map[string]struct{}    // idempotency index keys
	settings map[string]*string     // by name; nil: deleted
	refs     map[string]refEntry    // carrier index entries, by key
	parked   map[string]parkedEntry // parked updates, by key
	deleted  map[string]struct{}    // message IDs retention deleted
}

func (o *overlay) clear() {
	clear(o.msgs)
	clear(o.idem)
	clear(o.settings)
	clear(o.refs)
	clear(o.parked)
	clear(o.deleted)
}

func newCommitter(db *pebbledb.DB, now func() time.Time, log zerolog.Logger) *committer {
	c := &committer{
		db:       db,
		now:      now,
		log:      log,
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		rounds:   make(chan *round, syncQueue),
		done:     make(chan struct{}),
		recent:   make(map[string]struct{}),
		fences:   make(map[string]int64),
		syncedCh: make(chan struct{}),
		overlay: overlay{msgs: map[string]*sb.Message{}, idem: map[string]struct{}{}, settings: map[string]*string{},
			refs: map[string]refEntry{}, parked: map[string]parkedEntry{}, deleted: map[string]struct{}{}},
		inflight:   newInFlight(maxInFlight),
		parkedKeys: map[string]struct{}{},
		maxParked:  defaultMaxParked,
		counts:     map[string]int64{},
		deltas:     map[string]int64{},
		touched:    map[string]*touchedMessage{},
		refs:       map[string]refEntry{},
		parked:     map[string]parkedEntry{},
		finalRefs:  newFinalRefs(now()),
	}
	c.lazyDelay = defaultLazyDelay
	c.lazyTimer = time.AfterFunc(time.Hour, c.signal)
	c.lazyTimer.Stop()
	return c
}

// signal wakes the committer goroutine.
func (c *committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// start starts the committer and syncer goroutines, which stop ends.
func (c *committer) start() {
	go c.run()
	go c.sync()
}

// stop refuses new requests, lets the queued ones commit, and returns when
// both goroutines have exited.
func (c *committer) stop() {
	c.mu.Lock()
	c.stopped = true
	c.lazyTimer.Stop()
	c.mu.Unlock()
	close(c.quit)
	<-c.done
}

// do queues req and waits for its result (see Cancellation above). A
// store that has failed refuses it at once.
func (c *committer) do(ctx context.Context, req *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.failure(); err != nil {
		return err
	}
	req.done = make(chan struct{})
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return errClosed()
	}
	c.queue = append(c.queue, req)
	if req.lazy && !c.lazyArmed {
		c.lazyArmed = true
		c.lazyTimer.Reset(c.lazyDelay)
	}
	c.mu.Unlock()
	if !req.lazy {
		c.signal()
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return ctx.Err()
		}
		<-req.done
		return req.err
	}
}

// run is the committer goroutine.
func (c *committer) run() {
	defer close(c.rounds)
	for {
		select {
		case <-c.wake:
		case <-c.quit:
		}
		for {
			reqs, stopped := c.take()
			if len(reqs) == 0 {
				if stopped {
					return
				}
				break
			}
			c.commit(reqs)
		}
	}
}

// take removes up to maxRoundRequests requests from the queue.
func (c *committer) take() (reqs []*request, stopped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), maxRoundRequests)
	reqs = c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
		if c.lazyArmed { // a spurious wake-up if it fires anyway: harmless
			c.lazyTimer.Stop()
			c.lazyArmed = false
		}
	}
	return reqs, c.stopped
}

// commit runs one round (or several, if the batch outgrows maxBatchBytes)
// over reqs and hands each to the syncer.
func (c *committer) commit(reqs []*request) {
	r := c.newRound(len(reqs))
	for _, req := range reqs {
		if !req.state.CompareAndSwap(stateQueued, stateTaken) {
			continue // abandoned by its caller
		}
		r.reqs = append(r.reqs, req)
		c.execute(req, r.batch)
		if r.batch.Len() >= maxBatchBytes {
			c.flush(r)
			r = c.newRound(len(reqs))
		}
	}
	c.flush(r)
}

func (c *committer) newRound(n int) *round {
	return &round{batch: c.db.NewBatch(), reqs: make([]*request, 0, n)}
}

// execute validates req and, if valid, adds its writes to b.
func (c *committer) execute(req *request, b *pebbledb.Batch) {
	if err := c.failure(); err != nil {
		req.err = err
		return
	}
	req.err = req.write(c, b)
}

// failure returns the error the store failed with, or nil.
func (c *committer) failure() error {
	if f := c.failed.Load(); f != nil {
		return *f
	}
	return nil
}

// flush applies the round's batch without waiting for the fsync and hands
// the round to the syncer. Once applied, the batch's writes are visible in
// the database, so the overlay is emptied: it also lets go of the callers'
// messages. The round's number is taken before the batch is applied, so a
// read that sees the batch also sees the number and waits for its sync.
func (c *committer) flush(r *round) {
	if len(c.recent) >= recentIDs {
		c.floor = c.maxID // every ID claimed so far is at or below it
		clear(c.recent)
	}
	c.overlay.clear()
	if err := c.finalRefs.write(r.batch); err != nil {
		c.writeFailed(err)
	}
	if err := c.writeCounts(r.batch); err != nil {
		c.writeFailed(err)
	}
	if err := c.failure(); err != nil {
		r.err = err // the batch may hold a half-written request
	} else {
		r.seq = c.applied.Add(1)
		if err := c.apply(r.batch); err != nil {
			r.err = err
			c.fail(err)
		}
	}
	c.rounds <- r
}

// apply hands b to Pebble. Pebble treats an error of its commit pipeline
// (a WAL write after a failed sync) as fatal and calls Logger.Fatalf,
// which panics (log.go); apply turns that into the error the store fails
// with rather than let it end the process.
func (c *committer) apply(b *pebbledb.Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("apply batch: %v", p)
		}
	}()
	return c.db.ApplyNoSyncWait(b, pebbledb.Sync)
}

// fail makes the store refuse writes from now on (see Failure above).
func (c *committer) fail(cause error) {
	err := fmt.Errorf("%w: %w", sb.Errorf(sb.EUNAVAILABLE, "storage cannot commit"), cause)
	if c.failed.CompareAndSwap(nil, &err) {
		c.log.Error().Err(cause).Msg("pebble: commit failed; refusing writes and reads until the store is reopened")
		c.wakeReaders(0)
	}
}

// wakeReaders records that rounds up to seq are synced (0: none more) and
// wakes the reads waiting in waitSynced.
func (c *committer) wakeReaders(seq uint64) {
	c.syncedMu.Lock()
	defer c.syncedMu.Unlock()
	if seq > c.synced.Load() {
		c.synced.Store(seq)
	}
	close(c.syncedCh)
	c.syncedCh = make(chan struct{})
}

// waitSynced returns once every round applied so far is synced, or with
// the store's failure or ctx's error. A read calls it after reading, so
// whatever it saw is durable when it returns (see Failure above). Without
// writes in flight it returns at once.
func (c *committer) waitSynced(ctx context.Context) error {
	target := c.applied.Load()
	for {
		if err := c.failure(); err != nil {
			return err
		}
		if c.synced.Load() >= target {
			return nil
		}
		c.syncedMu.Lock()
		ch := c.syncedCh
		c.syncedMu.Unlock()
		if c.synced.Load() >= target || c.failed.Load() != nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sync is the syncer goroutine: it waits for each round's fsync, in order,
// and wakes the round's callers.
func (c *committer) sync() {
	defer close(c.done)
	for r := range c.rounds {
		err := r.err
		if err == nil {
			err = r.batch.SyncWait()
		}
		if err != nil {
			c.fail(err)
		}
		if err := r.batch.Close(); err != nil {
			c.fail(err)
		}
		failed := c.failure()
		if failed == nil && r.seq > 0 {
			c.wakeReaders(r.seq)
		}
		for _, req := range r.reqs {
			if failed != nil {
				req.err = failed
			}
			close(req.done)
		}
	}
}

// recentIDs is how many claimed IDs recent holds before floor moves up
// (about 3 MB).
const recentIDs = 1 << 16

// loadMaxID sets maxID from the database; the committer must not be
// running yet.
func (c *committer) loadMaxID() error {
	prefix := []byte(prefixMessage)
	it, err := c.db.NewIter(&pebbledb.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	if it.Last() {
		c.maxID = string(it.Key()[len(prefix):])
	}
	c.floor = c.maxID
	return errors.Join(it.Error(), it.Close())
}

// exists reports whether key is in the database (bloom filters make the
// usual answer, no, cheap).
func (c *committer) exists(key []byte) (bool, error) {
	_, closer, err := c.db.Get(key)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}
