package scylla

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
)

// Queues without the queue anti-pattern.
//
// Pending messages (per API key), queued callbacks (per endpoint) and
// receipt deadlines (in a few shards) are queues: entries are inserted in
// roughly increasing ID order and deleted when done. In Cassandra a
// delete is a tombstone, kept for gc_grace_seconds, and a read that
// starts at the head of a queue walks every tombstone of everything that
// went through it: slower and slower, and past 100,000 tombstones the
// read fails outright.
//
// Each owner's entries live in partitions (owner, bucket), a bucket being
// about half a minute of IDs (ids.go), listed in queue_buckets (rows
// never deleted, expiring after every entry of their bucket: bucketRows).
// The owner's row in queue_marks holds a low-water mark: no entry below it
// is live but for a few stragglers, which the row lists. A read from the head reads the
// stragglers by key and starts its scan at the mark, so it never meets
// the tombstones of the deleted prefix, however long that prefix is.
//
// The mark moves forward when a read from the head has found where the
// live entries start (reads, and a probe at most every probeEvery while
// this process deletes an owner's entries). It never passes:
//   - the first live entry the read found, unless that entry is older
//     than straggleAge, when it becomes a straggler (at most
//     maxStragglers): one message stuck behind a dead route does not pin
//     the mark while millions pass it;
//   - an entry this process is inserting (in flight);
//   - the ID floor of MarkLag ago, so an entry another node inserts with
//     an ID up to MarkLag old still lands above the mark.
//
// An entry this process inserts below its mark (an out-of-order ID, a
// retried write) lowers the mark first. Reads for marks run at the
// consistency that overlaps the writes' (Options.readConsistency), so a
// mark only passes entries whose deletes have landed.
//
// What a read from the head may still walk: the tombstones between the
// mark and the first live entry (at most MarkLag of deletes, plus those
// since the last advance: at 1,000 deletes a second, some 15,000), and
// those between live entries further on. Readers that page (the webhook
// dispatcher, a key actor) read from their cursor past the mark, and meet
// none of them.

const (
	maxStragglers = 64
	straggleAge   = time.Minute
	// probeEvery spaces the probes that move an owner's mark after its
	// deletes: a probe reads from the mark, through the tombstones of
	// the last MarkLag that the mark may not pass yet, so probing more
	// often would read them more often, not move the mark further.
	probeEvery = 5 * time.Second
)

// queueKind describes one queue table.
type queueKind struct {
	name  string // the kind in queue_marks and queue_buckets
	table string
	// cols are the columns stored with an entry, after owner, bucket
	// and id; dests points a row's fields at them for a scan.
	cols  []string
	dests func(r *qRow) []any
	// bucket cuts an ID into its bucket; floor is the least ID made at a
	// time (for MarkLag), age the time an ID was made, if it says.
	bucket func(id string) string
	floor  func(t time.Time) string
	age    func(id string) (time.Time, bool)
}

// qRow is one entry of any queue; each kind uses some of the fields.
type qRow struct {
	id        string
	key, day  string
	typ, url  string
	messageID string
	createdAt time.Time
	data      []byte
	// written is the entry's write time (µs, WRITETIME of its first
	// column): whether its message's row was written after it (stale).
	written int64
}

var (
	pendingQueue = queueKind{
		name: "pending", table: "pending", cols: []string{"day"},
		dests:  func(r *qRow) []any { return []any{&r.day} },
		bucket: bucketOf,
		floor:  func(t time.Time) string { return idFloor("msg_", t) },
		age:    func(id string) (time.Time, bool) { return idTime("msg_", id) },
	}
	outboxQueue = queueKind{
		name: "outbox", table: "outbox", cols: []string{"type", "key", "url", "message_id", "created_at", "data"},
		dests: func(r *qRow) []any {
			return []any{&r.typ, &r.key, &r.url, &r.messageID, &r.createdAt, &r.data}
		},
		bucket: bucketOf,
		floor:  func(t time.Time) string { return idFloor("evt_", t) },
		age:    func(id string) (time.Time, bool) { return idTime("evt_", id) },
	}
	dueQueue = queueKind{
		name: "due", table: "receipt_due", cols: []string{"key", "day"},
		dests:  func(r *qRow) []any { return []any{&r.key, &r.day} },
		bucket: func(id string) string { return id[:min(len(id), dueBucketChars)] },
		floor:  dueTime,
		// A receipt deadline says nothing of when its entry was written:
		// no stragglers.
		age: func(string) (time.Time, bool) { return time.Time{}, false },
	}
)

type queue struct {
	s *Store
	k queueKind

	mu    sync.Mutex
	known map[string]*owner
}

// headRead is a read from the head in progress: it learns the lowest ID
// inserted while it reads, which its scan may have missed.
type headRead struct {
	low string
	any bool
}

// owner is what this process knows of one owner's queue.
type owner struct {
	mu         sync.Mutex
	loaded     bool
	mark       string
	stragglers []string
	buckets    map[string]time.Time // registered in queue_buckets by this process, with when the row expires
	seen       time.Time            // when this process last wrote the owner's row
	inflight   map[string]int       // IDs being inserted
	readers    map[*headRead]struct{}
	deletes    int // since the last advance
	lastProbe  time.Time
	probing    bool
	cleanSeq   uint64              // the last clean-up begun (queue.cleaning)
	cleaning   map[uint64]struct{} // clean-ups on their way
	cleaned    sync.Cond           // on o.mu: a clean-up ended
}

// waitCleaned waits, with o.mu held, until the clean-ups begun before it
// was called have ended; later ones it does not wait for, so a steady
// stream of them cannot hold a reader back.
func (o *owner) waitCleaned() { o.waitCleanedUpTo(o.cleanSeq) }

// waitCleanedUpTo waits, with o.mu held, until no clean-up numbered upTo
// or lower is on its way.
func (o *owner) waitCleanedUpTo(upTo uint64) {
	for {
		waiting := false
		for seq := range o.cleaning {
			if seq <= upTo {
				waiting = true
				break
			}
		}
		if !waiting {
			return
		}
		o.cleaned.Wait()
	}
}

func newQueue(s *Store, k queueKind) *queue {
	return &queue{s: s, k: k, known: make(map[string]*owner)}
}

func (q *queue) owner(name string) *owner {
	q.mu.Lock()
	defer q.mu.Unlock()
	o := q.known[name]
	if o == nil {
		o = &owner{buckets: make(map[string]time.Time), inflight: make(map[string]int),
			readers: make(map[*headRead]struct{}), cleaning: make(map[uint64]struct{})}
		o.cleaned.L = &o.mu
		q.known[name] = o
	}
	return o
}

// load reads the owner's mark and stragglers once.
func (q *queue) load(ctx context.Context, session *gocql.Session, name string, o *owner) error {
	o.mu.Lock()
	loaded := o.loaded
	o.mu.Unlock()
	if loaded {
		return nil
	}
	var mark string
	var stragglers []string
	err := session.Query(q.s.cql(`SELECT mark, stragglers FROM %s.queue_marks WHERE kind = ? AND owner = ?`), q.k.name, name).
		WithContext(ctx).Consistency(q.s.opts.readConsistency()).Scan(&mark, &stragglers)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("read the %s mark of %q: %w", q.k.name, name, err)
	}
	o.mu.Lock()
	if !o.loaded {
		o.loaded, o.mark, o.stragglers = true, mark, stragglers
	}
	o.mu.Unlock()
	return nil
}

// entry is one entry to insert: its ID, the values of the kind's columns,
// and its TTL.
type entry struct {
	id   string
	vals []any
	ttl  time.Duration
}

// inserts returns the statements that insert entries of owner name with
// write time ts, with the bucket and owner registrations they need; the
// caller writes them and then calls done with whether they landed. An ID
// below the owner's mark lowers the mark first.
func (q *queue) inserts(ctx context.Context, session *gocql.Session, name string, entries []entry, ts int64) ([]stmt, func(ok bool), error) {
	o := q.owner(name)
	if err := q.load(ctx, session, name, o); err != nil {
		return nil, nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	lowest := ""
	for _, e := range entries {
		o.inflight[e.id]++
		for r := range o.readers {
			if !r.any || e.id < r.low {
				r.low, r.any = e.id, true
			}
		}
		if e.id < o.mark && !slices.Contains(o.stragglers, e.id) && (lowest == "" || e.id < lowest) {
			lowest = e.id
		}
	}
	release := func() {
		for _, e := range entries {
			if o.inflight[e.id]--; o.inflight[e.id] <= 0 {
				delete(o.inflight, e.id)
			}
		}
	}
	if lowest != "" {
		// Lowered before the entries land: a reader never sees an entry
		// below the mark it reads.
		stragglers := slices.DeleteFunc(slices.Clone(o.stragglers), func(id string) bool { return id >= lowest })
		if err := q.writeMark(ctx, session, name, lowest, stragglers); err != nil {
			release()
			return nil, nil, err
		}
		o.mark, o.stragglers = lowest, stragglers
	}
	ttl := q.s.opts.TTL
	now := q.s.now()
	var stmts []stmt
	cols := strings.Join(append([]string{"owner", "bucket", "id"}, q.k.cols...), ", ")
	marks := strings.Repeat(", ?", len(q.k.cols))
	insert := q.s.cql(fmt.Sprintf(`INSERT INTO %%s.%s (%s) VALUES (?, ?, ?%s) USING TTL ? AND TIMESTAMP ?`, q.k.table, cols, marks))
	for _, e := range entries {
		b := q.k.bucket(e.id)
		args := append([]any{name, b, e.id}, e.vals...)
		args = append(args, ttlSeconds(e.ttl), ts)
		stmts = append(stmts, stmt{part: q.k.table + "\x00" + name + "\x00" + b, cql: insert, args: args})
	}
	newBuckets := bucketRows(q.k.bucket, entries, o.buckets, now)
	for b, expires := range newBuckets {
		stmts = append(stmts, stmt{part: "queue_buckets\x00" + q.k.name + "\x00" + name,
			cql:  q.s.cql(`INSERT INTO %s.queue_buckets (kind, owner, bucket) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
			args: []any{q.k.name, name, b, ttlSeconds(expires.Sub(now)), ts}})
	}
	refresh := now.Sub(o.seen) > ttl/4
	if refresh {
		stmts = append(stmts, stmt{part: "queue_marks\x00" + q.k.name,
			cql:  q.s.cql(`INSERT INTO %s.queue_marks (kind, owner, seen) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?`),
			args: []any{q.k.name, name, now, ttlSeconds(ttl), ts}})
	}
	done := func(ok bool) {
		o.mu.Lock()
		defer o.mu.Unlock()
		release()
		if !ok {
			return
		}
		for b, expires := range newBuckets {
			o.buckets[b] = expires
		}
		forgetOldBuckets(o.buckets)
		if refresh {
			o.seen = now
		}
	}
	return stmts, done, nil
}

// maxBucketsKnown bounds what an owner remembers of the bucket rows it
// wrote: every API key and every callback endpoint (customers choose
// those) is an owner, for the life of the process. Inserts land in the
// newest buckets (IDs grow with time), so the oldest are forgotten first;
// one that gets an entry again (an ID out of order) has its row written
// once more, which changes nothing.
const maxBucketsKnown = 64

// forgetOldBuckets keeps the newest half of maxBucketsKnown buckets once
// there are more (bucket names sort by time).
func forgetOldBuckets(buckets map[string]time.Time) {
	if len(buckets) <= maxBucketsKnown {
		return
	}
	names := slices.Sorted(maps.Keys(buckets))
	for _, b := range names[:len(names)-maxBucketsKnown/2] {
		delete(buckets, b)
	}
}

// bucketRowSlack is how much longer than the entry that writes it a
// queue_buckets row lives, so that the entries written after it into the
// same bucket (a bucket is half a minute of IDs) seldom outlive it and
// write it again.
const bucketRowSlack = time.Hour

// abandon ends the inserts whose dones are given without writing them:
// their entries leave the in-flight set, which the mark may not pass, as
// a failed write's do. Every error between inserts and the write calls it.
func abandon(dones []func(bool)) {
	for _, done := range dones {
		done(false)
	}
}

// bucketRows returns the queue_buckets rows entries need, by bucket, with
// when each should expire: a bucket's row must outlive every entry in it,
// or a read from the head, which finds buckets only through their rows,
// would skip live entries. A row written before (written, with its
// expiry) is written again only when an entry would outlive it.
func bucketRows(bucket func(id string) string, entries []entry, written map[string]time.Time, now time.Time) map[string]time.Time {
	rows := map[string]time.Time{}
	for _, e := range entries {
		b, until := bucket(e.id), now.Add(e.ttl)
		if until.After(written[b]) && until.After(rows[b]) {
			rows[b] = until.Add(bucketRowSlack)
		}
	}
	return rows
}

// deletes returns the statements that delete entries ids of owner name.
func (q *queue) deletes(name string, ids []string, ts int64) []stmt {
	del := q.s.cql(fmt.Sprintf(`DELETE FROM %%s.%s USING TIMESTAMP ? WHERE owner = ? AND bucket = ? AND id = ?`, q.k.table))
	stmts := make([]stmt, len(ids))
	for i, id := range ids {
		b := q.k.bucket(id)
		stmts[i] = stmt{part: q.k.table + "\x00" + name + "\x00" + b, cql: del, args: []any{ts, name, b, id}}
	}
	return stmts
}

// cleaning marks deletes of owner name on their way, written after the
// call that made them returned; reads and counts wait for them, so one
// made after that call returned does not see what it deleted. The caller calls
// the function returned once they landed (or failed).
func (q *queue) cleaning(name string) func() {
	o := q.owner(name)
	o.mu.Lock()
	o.cleanSeq++
	seq := o.cleanSeq
	o.cleaning[seq] = struct{}{}
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		delete(o.cleaning, seq)
		o.mu.Unlock()
		o.cleaned.Broadcast()
	}
}

// deleted tells the queue that n entries of owner name were deleted: now
// and then, a probe moves the mark past them.
func (q *queue) deleted(name string, n int) {
	o := q.owner(name)
	o.mu.Lock()
	o.deletes += n
	probe := !o.probing && o.loaded && o.deletes > 0 && q.s.now().Sub(o.lastProbe) > probeEvery
	if probe {
		o.probing, o.deletes, o.lastProbe = true, 0, q.s.now()
	}
	o.mu.Unlock()
	if !probe {
		return
	}
	q.s.background(func(ctx context.Context) {
		defer func() { o.mu.Lock(); o.probing = false; o.mu.Unlock() }()
		session, err := q.s.sess()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, q.s.opts.Timeout)
		defer cancel()
		if _, err := q.read(ctx, session, name, "", "", maxStragglers); err != nil {
			q.s.log.Debug().Err(err).Str("queue", q.k.name).Str("owner", name).Msg("scylla: mark probe")
		}
	})
}

// read returns up to limit live entries of owner name with after < ID <
// before ("" : no bound), in ID order. A read that starts below the mark
// moves the mark up to where it found the entries starting.
func (q *queue) read(ctx context.Context, session *gocql.Session, name, after, before string, limit int) ([]qRow, error) {
	if limit <= 0 || (before != "" && after >= before) {
		return nil, nil
	}
	o := q.owner(name)
	if err := q.load(ctx, session, name, o); err != nil {
		return nil, err
	}
	// The time the mark's floor is measured from: before the scan, so an
	// entry another process inserts while a slow scan runs stays above it.
	began := q.s.now()
	o.mu.Lock()
	o.waitCleaned()
	mark, stragglers := o.mark, slices.Clone(o.stragglers)
	fromHead := after < mark || after == ""
	var head *headRead
	if fromHead {
		head = &headRead{}
		o.readers[head] = struct{}{}
	}
	o.mu.Unlock()
	if head != nil {
		defer func() { o.mu.Lock(); delete(o.readers, head); o.mu.Unlock() }()
	}

	var out []qRow
	// Stragglers, read by key; those gone are forgotten by the next mark.
	var liveStragglers []string
	if fromHead {
		for _, id := range stragglers {
			r, ok, err := q.get(ctx, session, name, id)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			liveStragglers = append(liveStragglers, id)
			if id > after && (before == "" || id < before) && len(out) < limit {
				out = append(out, r)
			}
		}
	}
	start, inclusive := after, false
	if fromHead && mark > after {
		start, inclusive = mark, true
	}
	scanned, complete, err := q.scan(ctx, session, name, start, inclusive, before, limit-len(out))
	if err != nil {
		return nil, err
	}
	out = append(out, scanned...)
	if fromHead {
		q.advance(ctx, session, name, o, head, began, mark, liveStragglers, scanned, complete, before)
	}
	return out, nil
}

// writtenCol selects an entry's write time, after its columns.
func (q *queue) writtenCol() string { return ", WRITETIME(" + q.k.cols[0] + ")" }

// get reads one entry by ID.
func (q *queue) get(ctx context.Context, session *gocql.Session, name, id string) (qRow, bool, error) {
	r := qRow{id: id}
	cols := strings.Join(q.k.cols, ", ") + q.writtenCol()
	err := session.Query(q.s.cql(fmt.Sprintf(`SELECT %s FROM %%s.%s WHERE owner = ? AND bucket = ? AND id = ?`, cols, q.k.table)),
		name, q.k.bucket(id), id).WithContext(ctx).Consistency(q.s.opts.readConsistency()).Scan(append(q.k.dests(&r), &r.written)...)
	if errors.Is(err, gocql.ErrNotFound) {
		return qRow{}, false, nil
	}
	if err != nil {
		return qRow{}, false, fmt.Errorf("read %s entry %s of %q: %w", q.k.name, id, name, err)
	}
	return r, true, nil
}

// scan reads up to limit entries from start (inclusive or not) below
// before, bucket by bucket; complete says it reached the end (or
// before) rather than the limit.
func (q *queue) scan(ctx context.Context, session *gocql.Session, name, start string, inclusive bool, before string, limit int) ([]qRow, bool, error) {
	if limit <= 0 {
		return nil, false, nil
	}
	buckets, err := q.buckets(ctx, session, name, q.k.bucket(start), before)
	if err != nil {
		return nil, false, err
	}
	op := ">"
	if inclusive {
		op = ">="
	}
	cols := strings.Join(append([]string{"id"}, q.k.cols...), ", ") + q.writtenCol()
	cql := fmt.Sprintf(`SELECT %s FROM %%s.%s WHERE owner = ? AND bucket = ? AND id %s ?`, cols, q.k.table, op)
	if before != "" {
		cql += ` AND id < ?`
	}
	cql = q.s.cql(cql + ` LIMIT ?`)
	var out []qRow
	for _, b := range buckets {
		args := []any{name, b, start}
		if before != "" {
			args = append(args, before)
		}
		args = append(args, limit-len(out))
		iter := session.Query(cql, args...).WithContext(ctx).Consistency(q.s.opts.readConsistency()).Iter()
		for {
			var r qRow
			if !iter.Scan(append(append([]any{&r.id}, q.k.dests(&r)...), &r.written)...) {
				break
			}
			out = append(out, r)
		}
		if err := iter.Close(); err != nil {
			return nil, false, fmt.Errorf("read %s entries of %q: %w", q.k.name, name, err)
		}
		if len(out) >= limit {
			return out, false, nil
		}
	}
	return out, true, nil
}

// buckets lists the registered buckets of owner name from first on, up to
// the bucket of before.
func (q *queue) buckets(ctx context.Context, session *gocql.Session, name, first, before string) ([]string, error) {
	cql := `SELECT bucket FROM %s.queue_buckets WHERE kind = ? AND owner = ? AND bucket >= ?`
	args := []any{q.k.name, name, first}
	if before != "" {
		cql += ` AND bucket <= ?`
		args = append(args, q.k.bucket(before))
	}
	iter := session.Query(q.s.cql(cql), args...).WithContext(ctx).Consistency(q.s.opts.readConsistency()).Iter()
	var out []string
	var b string
	for iter.Scan(&b) {
		out = append(out, b)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read %s buckets of %q: %w", q.k.name, name, err)
	}
	return out, nil
}

// advance moves the mark of owner name after a read from the head, begun
// at now, found the live stragglers and the scanned entries from mark on
// (complete: all of them up to before, or the end).
func (q *queue) advance(ctx context.Context, session *gocql.Session, name string, o *owner, head *headRead, now time.Time,
	mark string, liveStragglers []string, scanned []qRow, complete bool, before string) {
	stragglers := liveStragglers
	candidate := ""
	for i, r := range scanned {
		if len(stragglers) < maxStragglers && q.straggles(now, r.id, scanned[i+1:], complete) {
			stragglers = append(stragglers, r.id)
			continue
		}
		candidate = r.id
		break
	}
	if candidate == "" {
		switch {
		case len(scanned) > 0 && !complete:
			// Every entry read became a straggler; the next may be live.
			candidate = scanned[len(scanned)-1].id + "\x00"
		case complete && before != "":
			candidate = before
		case complete:
			candidate = "\U0010FFFF" // nothing live: only the floors below hold it
		default:
			return
		}
	}
	candidate = min(candidate, q.k.floor(now.Add(-q.s.opts.MarkLag)))
	o.mu.Lock()
	for id := range o.inflight {
		candidate = min(candidate, id)
	}
	if head.any {
		candidate = min(candidate, head.low)
	}
	stragglers = slices.DeleteFunc(stragglers, func(id string) bool { return id >= candidate })
	moved := candidate > mark || !slices.Equal(stragglers, o.stragglers)
	if o.mark != mark || !moved || candidate < mark {
		// Lowered by an insert meanwhile, or nothing to do.
		o.mu.Unlock()
		return
	}
	if err := q.writeMark(ctx, session, name, candidate, stragglers); err != nil {
		o.mu.Unlock()
		q.s.log.Debug().Err(err).Str("queue", q.k.name).Str("owner", name).Msg("scylla: move the mark")
		return
	}
	o.mark, o.stragglers = candidate, stragglers
	o.mu.Unlock()
}

// straggles reports whether a live entry read from the head may become a
// straggler: made more than straggleAge ago, and alone, the next live
// entry (next[0], or none when the read was complete) made more than
// straggleAge after it. A backlog of entries close together is no
// straggler: the mark stays at its head, where the reads want to start.
func (q *queue) straggles(now time.Time, id string, next []qRow, complete bool) bool {
	at, ok := q.k.age(id)
	if !ok || now.Sub(at) <= straggleAge {
		return false
	}
	if len(next) == 0 {
		return complete
	}
	nextAt, ok := q.k.age(next[0].id)
	return ok && nextAt.Sub(at) > straggleAge
}

func (q *queue) writeMark(ctx context.Context, session *gocql.Session, name, mark string, stragglers []string) error {
	err := session.Query(q.s.cql(`UPDATE %s.queue_marks USING TTL ? AND TIMESTAMP ? SET mark = ?, stragglers = ? WHERE kind = ? AND owner = ?`),
		ttlSeconds(q.s.opts.TTL), q.s.clock.next(), mark, stragglers, q.k.name, name).
		WithContext(ctx).Consistency(q.s.opts.writeConsistency()).Idempotent(true).Exec()
	if err != nil {
		return fmt.Errorf("write the %s mark of %q: %w", q.k.name, name, err)
	}
	return nil
}

// count counts the live entries of owner name: its live stragglers and
// the entries from its mark on. It costs what the live entries (and the
// tombstones among them) cost, not the owner's history.
func (q *queue) count(ctx context.Context, session *gocql.Session, name string) (int, error) {
	o := q.owner(name)
	if err := q.load(ctx, session, name, o); err != nil {
		return 0, err
	}
	o.mu.Lock()
	o.waitCleaned()
	mark, stragglers := o.mark, slices.Clone(o.stragglers)
	o.mu.Unlock()
	n := 0
	for _, id := range stragglers {
		_, ok, err := q.get(ctx, session, name, id)
		if err != nil {
			return 0, err
		}
		if ok {
			n++
		}
	}
	buckets, err := q.buckets(ctx, session, name, q.k.bucket(mark), "")
	if err != nil {
		return 0, err
	}
	cql := q.s.cql(fmt.Sprintf(`SELECT COUNT(*) FROM %%s.%s WHERE owner = ? AND bucket = ? AND id >= ?`, q.k.table))
	for _, b := range buckets {
		var c int64
		err := session.Query(cql, name, b, mark).WithContext(ctx).Consistency(q.s.opts.readConsistency()).Scan(&c)
		if err != nil {
			return 0, fmt.Errorf("count %s entries of %q: %w", q.k.name, name, err)
		}
		n += int(c)
	}
	return n, nil
}

// owners lists the owners that have written entries (queue_marks), live
// or not.
func (q *queue) owners(ctx context.Context, session *gocql.Session) ([]string, error) {
	iter := session.Query(q.s.cql(`SELECT owner FROM %s.queue_marks WHERE kind = ?`), q.k.name).
		WithContext(ctx).Consistency(q.s.opts.readConsistency()).Iter()
	var out []string
	var name string
	for iter.Scan(&name) {
		out = append(out, name)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("list %s owners: %w", q.k.name, err)
	}
	return out, nil
}

// ttlSeconds is a TTL for USING TTL: whole seconds, at least one.
func ttlSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}
