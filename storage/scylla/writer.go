package scylla

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/gocql/gocql"
)

// Group commit. Every write call (Accept, Record, ...) builds its
// statements, one row each, and hands them to the writer in one set; the
// call returns when all of them have landed at the store's consistency,
// or with the first error. The writer's goroutine takes every set queued
// since it last looked and groups their statements by partition. Where
// every node holds every partition (topology.go) the groups are packed
// into as few unlogged batches as the size limits allow, whatever their
// partitions; elsewhere one partition's statements go as one batch (atomic
// and isolated within the partition, one round trip to a replica, which
// token-aware routing picks), a lone statement as itself. A few batches
// run at once per node (batchesPerHost); while that many are out, sets
// queue up, so the busier the store, the bigger its batches and the fewer
// its requests.
//
// Nothing here orders two statements of different sets: a caller that
// needs one write to land before another (a message before its index is
// cleaned up, say) writes them in two sets, one after the other. Rows of
// one message are serialized above the writer (locks.go).

const (
	maxInFlight   = 64       // batches out at once, at most, however many nodes
	maxBatchRows  = 256      // statements in one batch
	maxBatchBytes = 32 << 10 // bound values in one batch, under Cassandra's 50 KiB refusal threshold
	approxRowCost = 64       // bytes counted per statement besides its values
	maxCleanups   = 8        // clean-ups after records out at once (record.go)
)

// stmt is one statement writing one row.
type stmt struct {
	// part names the partition (table and partition key values), for
	// grouping; statements of one partition may share a batch.
	part string
	cql  string
	args []any
}

// writeSet is the statements of one call.
type writeSet struct {
	stmts []stmt
	left  atomic.Int32
	mu    sync.Mutex
	err   error
	done  chan struct{}
}

func (w *writeSet) finish(err error) {
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	if w.left.Add(-1) == 0 {
		close(w.done)
	}
}

type writer struct {
	s *Store

	mu      sync.Mutex
	queue   []*writeSet
	stopped bool
	wake    chan struct{}
	exited  chan struct{}
	running sync.WaitGroup // batches out

	slotMu   sync.Mutex
	slotFree sync.Cond // a batch came back
	inFlight int
}

func newWriter(s *Store) *writer {
	w := &writer{s: s, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	w.slotFree.L = &w.slotMu
	go w.run()
	return w
}

// acquire waits until fewer than limit batches are out and takes a slot.
func (w *writer) acquire(limit int) {
	w.slotMu.Lock()
	for w.inFlight >= limit {
		w.slotFree.Wait()
	}
	w.inFlight++
	w.slotMu.Unlock()
}

func (w *writer) release() {
	w.slotMu.Lock()
	w.inFlight--
	w.slotMu.Unlock()
	w.slotFree.Signal()
}

// write runs stmts and waits for them. It does not stop waiting when ctx
// ends: once handed over, the statements run, and the caller must learn
// whether they landed. ctx only keeps a call from starting.
func (w *writer) write(ctx context.Context, stmts []stmt) error {
	if len(stmts) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	set := &writeSet{stmts: stmts, done: make(chan struct{})}
	set.left.Store(int32(len(stmts)))
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return errClosed()
	}
	w.queue = append(w.queue, set)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-set.done
	return w.s.dbError(set.err)
}

// stop lets the queued sets run, waits for every statement out, and ends
// the writer's goroutine. Later writes fail with EUNAVAILABLE.
func (w *writer) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.exited
	w.running.Wait()
}

func (w *writer) run() {
	defer close(w.exited)
	for {
		<-w.wake
		for {
			packed, hosts := w.s.topo.get()
			limit := min(batchesPerHost*hosts, maxInFlight)
			// A slot first: what is queued while the batches out finish
			// joins the next ones.
			w.acquire(limit)
			w.mu.Lock()
			sets, stopped := w.queue, w.stopped
			w.queue = nil
			w.mu.Unlock()
			if len(sets) == 0 {
				w.release()
				if stopped {
					return
				}
				break
			}
			for i, b := range plan(sets, packed) {
				if i > 0 {
					w.acquire(limit)
				}
				w.send(b)
			}
		}
	}
}

// queued is a statement and the set it belongs to.
type queued struct {
	st  *stmt
	set *writeSet
}

// plan groups the sets' statements by partition, keeping each
// partition's together, and cuts them into batches: one partition's each,
// or, packed, any partitions' up to the size limits.
func plan(sets []*writeSet, packed bool) [][]queued {
	groups := make(map[string][]queued)
	var order []string
	for _, set := range sets {
		for i := range set.stmts {
			st := &set.stmts[i]
			if _, ok := groups[st.part]; !ok {
				order = append(order, st.part)
			}
			groups[st.part] = append(groups[st.part], queued{st, set})
		}
	}
	var batches [][]queued
	var cur []queued
	size := 0
	flush := func() {
		if len(cur) > 0 {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
	}
	for _, part := range order {
		if !packed {
			flush()
		}
		for _, q := range groups[part] {
			n := rowSize(q.st)
			if len(cur) > 0 && (len(cur) >= maxBatchRows || size+n > maxBatchBytes) {
				flush()
			}
			cur = append(cur, q)
			size += n
		}
	}
	flush()
	return batches
}

// send runs one batch on a slot taken for it.
func (w *writer) send(g []queued) {
	w.running.Add(1)
	go func() {
		defer func() { w.release(); w.running.Done() }()
		err := w.exec(g)
		for _, e := range g {
			e.set.finish(err)
		}
	}()
}

func (w *writer) exec(g []queued) error {
	err := w.execGroup(g)
	if lost := w.s.lostAnswer.Load(); err == nil && lost != nil {
		for _, e := range g {
			if (*lost)(e.st.cql) {
				return errors.New("the answer was lost (a test's fault)")
			}
		}
	}
	return err
}

func (w *writer) execGroup(g []queued) error {
	session, err := w.s.sess()
	if err != nil && !w.s.closed.Load() {
		return err
	}
	if session == nil {
		session = w.s.session.Load() // closing: the queued sets still run
		if session == nil {
			return errClosed()
		}
	}
	ctx := context.Background()
	if len(g) == 1 {
		return session.Query(g[0].st.cql, g[0].st.args...).WithContext(ctx).
			Consistency(w.s.opts.writeConsistency()).Idempotent(true).Exec()
	}
	b := session.Batch(gocql.UnloggedBatch).WithContext(ctx)
	b.Cons = w.s.opts.writeConsistency()
	for _, e := range g {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: e.st.cql, Args: e.st.args, Idempotent: true})
	}
	return session.ExecuteBatch(b)
}

// rowSize estimates the bytes a statement adds to a batch.
func rowSize(st *stmt) int {
	n := approxRowCost
	for _, a := range st.args {
		switch v := a.(type) {
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		default:
			n += 8
		}
	}
	return n
}
