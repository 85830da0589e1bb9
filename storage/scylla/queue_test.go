package scylla

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/oklog/ulid/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// traffic makes messages of one key with ULID IDs dated from a start time
// on, a step apart, as a key actor accepting them then would.
type traffic struct {
	key     string
	at      time.Time
	step    time.Duration
	entropy *ulid.MonotonicEntropy
}

func newTraffic(key string, start time.Time, step time.Duration) *traffic {
	return &traffic{key: key, at: start, step: step, entropy: ulid.Monotonic(rand.Reader, 0)}
}

func (g *traffic) next() *sb.Message {
	at := g.at
	g.at = g.at.Add(g.step)
	id := "msg_" + ulid.MustNew(ulid.Timestamp(at), g.entropy).String()
	return &sb.Message{ID: id, Key: g.key, To: "+491701234567", From: "Switchboard", Body: "Your code is 123456",
		Encoding: "gsm7", Segments: 1, Status: sb.StatusAccepted, AcceptedAt: at, UpdatedAt: at,
		ExpiresAt: at.Add(48 * time.Hour), Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}
}

// accept stores n new messages in batches and returns them.
func (g *traffic) accept(t testing.TB, s *Store, n int) []*sb.Message {
	t.Helper()
	var out []*sb.Message
	for n > 0 {
		batch := make([]sb.NewMessage, min(n, 500))
		for i := range batch {
			m := g.next()
			batch[i] = sb.NewMessage{Message: m}
			out = append(out, m)
		}
		if err := s.Accept(context.Background(), batch); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		n -= len(batch)
	}
	return out
}

// finish takes msgs out of pending (they fail), in batches.
func finish(t testing.TB, s *Store, msgs []*sb.Message) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(len(msgs), 500)
		updates := make([]sb.Update, n)
		for i, m := range msgs[:n] {
			updates[i] = sb.Update{MessageID: m.ID, Transition: sb.Transition{
				Event: sb.Event{Status: sb.StatusFailed, At: m.AcceptedAt.Add(time.Second)}, Part: -1}}
		}
		if _, err := s.Record(context.Background(), updates); err != nil {
			t.Fatalf("Record: %v", err)
		}
		msgs = msgs[n:]
	}
}

// storedMark reads an owner's mark and stragglers from queue_marks.
func storedMark(t testing.TB, s *Store, kind, owner string) (string, []string) {
	t.Helper()
	var mark string
	var stragglers []string
	err := s.session.Load().Query(s.cql(`SELECT mark, stragglers FROM %s.queue_marks WHERE kind = ? AND owner = ?`), kind, owner).
		Scan(&mark, &stragglers)
	if err != nil {
		t.Fatalf("read the mark: %v", err)
	}
	return mark, stragglers
}

func pendingIDs(t testing.TB, s *Store, key, after string, limit int) []string {
	t.Helper()
	msgs, err := s.Pending(context.Background(), key, after, "", limit)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func ids(msgs []*sb.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// After messages went through a key, the mark sits past them, at the
// first pending one: a read from the head starts there.
func TestMarkSkipsTheDeletedPrefix(t *testing.T) {
	s := openTest(t, freshKeyspace(t), nil)
	g := newTraffic("k", time.Now().Add(-time.Hour), time.Millisecond)
	done := g.accept(t, s, 3000)
	finish(t, s, done)
	live := g.accept(t, s, 5)

	if got := pendingIDs(t, s, "k", "", 100); !slices.Equal(got, ids(live)) {
		t.Fatalf("pending %v, want %v", got, ids(live))
	}
	mark, stragglers := storedMark(t, s, "pending", "k")
	if mark <= done[len(done)-1].ID || mark > live[0].ID || len(stragglers) != 0 {
		t.Fatalf("mark %s with stragglers %v; want past %s, at most %s, none", mark, stragglers,
			done[len(done)-1].ID, live[0].ID)
	}
	if n, err := s.PendingCount(context.Background(), "k"); err != nil || n != 5 {
		t.Fatalf("PendingCount = %d, %v; want 5", n, err)
	}
}

// One old message left pending while many pass it becomes a straggler:
// the mark moves on, and the message is still listed first.
func TestStraggler(t *testing.T) {
	s := openTest(t, freshKeyspace(t), nil)
	g := newTraffic("k", time.Now().Add(-2*time.Hour), time.Millisecond)
	stuck := g.accept(t, s, 1)
	g.at = g.at.Add(10 * time.Minute)
	done := g.accept(t, s, 1000)
	finish(t, s, done)
	live := g.accept(t, s, 3)

	want := append(ids(stuck), ids(live)...)
	if got := pendingIDs(t, s, "k", "", 100); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	mark, stragglers := storedMark(t, s, "pending", "k")
	if !slices.Equal(stragglers, ids(stuck)) || mark <= done[len(done)-1].ID || mark > live[0].ID {
		t.Fatalf("mark %s with stragglers %v; want %v and a mark past %s", mark, stragglers, ids(stuck), done[len(done)-1].ID)
	}
	if n, err := s.PendingCount(context.Background(), "k"); err != nil || n != 4 {
		t.Fatalf("PendingCount = %d, %v; want 4", n, err)
	}
	// Paging past the straggler does not list it again.
	if got := pendingIDs(t, s, "k", stuck[0].ID, 100); !slices.Equal(got, ids(live)) {
		t.Fatalf("pending after the straggler %v, want %v", got, ids(live))
	}
	finish(t, s, stuck)
	if got := pendingIDs(t, s, "k", "", 100); !slices.Equal(got, ids(live)) {
		t.Fatalf("pending %v, want %v", got, ids(live))
	}
	if _, stragglers := storedMark(t, s, "pending", "k"); len(stragglers) != 0 {
		t.Fatalf("stragglers %v after the straggler left", stragglers)
	}
}

// A message accepted with an ID below the mark (an out-of-order ID) lowers
// the mark, so a read from the head lists it.
func TestInsertBelowTheMark(t *testing.T) {
	s := openTest(t, freshKeyspace(t), nil)
	early := newTraffic("k", time.Now().Add(-time.Hour), time.Millisecond)
	g := newTraffic("k", time.Now().Add(-50*time.Minute), time.Millisecond)
	finish(t, s, g.accept(t, s, 500))
	live := g.accept(t, s, 2)
	pendingIDs(t, s, "k", "", 10) // moves the mark
	if mark, _ := storedMark(t, s, "pending", "k"); mark != live[0].ID {
		t.Fatalf("mark %s, want %s", mark, live[0].ID)
	}
	late := early.accept(t, s, 1)
	want := append(ids(late), ids(live)...)
	if got := pendingIDs(t, s, "k", "", 10); !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	// A new store, which knows no mark yet, sees the same.
	s2 := openTest(t, s.opts.Keyspace, nil)
	if got := pendingIDs(t, s2, "k", "", 10); !slices.Equal(got, want) {
		t.Fatalf("pending from a second store %v, want %v", got, want)
	}
}

// Entries newer than MarkLag keep the mark behind them: another node may
// still be writing IDs that old.
func TestMarkLag(t *testing.T) {
	s := openTest(t, freshKeyspace(t), nil)
	g := newTraffic("k", time.Now().Add(-time.Second), time.Millisecond)
	finish(t, s, g.accept(t, s, 100))
	pendingIDs(t, s, "k", "", 10)
	mark, _ := storedMark(t, s, "pending", "k")
	if floor := idFloor("msg_", time.Now().Add(-s.opts.MarkLag+time.Second)); mark > floor {
		t.Fatalf("mark %s is past the lag floor %s", mark, floor)
	}
}

// A reader that meets a pending entry whose message row is still on its
// way (an Accept writes the entry first, the row after it; the Accept may
// run on another node) must leave the entry: deleting it as stale would
// lose the message once its row lands, for nothing would ever read it as
// pending again. An entry whose message never came is dropped once it is
// older than any write can be.
func TestEntryBeforeItsMessageIsNotStale(t *testing.T) {
	ks := freshKeyspace(t)
	writer := openTest(t, ks, nil)
	var mu sync.Mutex
	var ahead time.Duration // the reader's clock, moved on to orphanAge below
	reader := openTest(t, ks, func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(ahead) }
	})
	ctx := context.Background()
	session, err := writer.beginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := newTraffic("k", time.Now(), time.Millisecond)
	landing, orphan := g.next(), g.next()
	ts := writer.clock.next()
	for _, m := range []*sb.Message{landing, orphan} {
		stmts, done, err := writer.pending.inserts(ctx, session, m.Key, []entry{{id: m.ID, vals: []any{m.Day()}, ttl: time.Hour}}, ts)
		if err != nil {
			t.Fatal(err)
		}
		err = writer.writer.write(ctx, stmts)
		done(err == nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := pendingIDs(t, reader, "k", "", 10); len(got) != 0 {
		t.Fatalf("pending %v before the rows landed, want none", got)
	}
	reader.dropping.Wait() // what the read dropped, dropped by now
	row, err := writer.messageRow(landing, ts)
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.writer.write(ctx, []stmt{row}); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, reader, "k", "", 10); !slices.Equal(got, []string{landing.ID}) {
		t.Fatalf("pending %v once its row landed, want %s: the entry was dropped while the row was on its way", got, landing.ID)
	}
	// orphanAge on: the entry without a message goes.
	mu.Lock()
	ahead = orphanAge + time.Minute
	mu.Unlock()
	pendingIDs(t, reader, "k", "", 10)
	reader.dropping.Wait()
	if _, ok, err := reader.pending.get(ctx, session, "k", orphan.ID); err != nil || ok {
		t.Fatalf("the orphan entry is still there (%v, %v)", ok, err)
	}
	if _, ok, err := reader.pending.get(ctx, session, "k", landing.ID); err != nil || !ok {
		t.Fatalf("the live entry is gone (%v, %v)", ok, err)
	}
}

// A queue's bucket row outlives every entry in it: written with the
// longest-lived entry's expiry and some slack, and again when a later
// entry would outlive the row written before.
func TestBucketRowsOutliveTheirEntries(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 5, 0, 0, time.UTC)
	bucket := func(id string) string { return id[:1] }
	entries := []entry{{id: "a1", ttl: time.Hour}, {id: "a2", ttl: 48 * time.Hour}, {id: "b1", ttl: time.Minute}}
	rows := bucketRows(bucket, entries, nil, now)
	if want := now.Add(48*time.Hour + bucketRowSlack); !rows["a"].Equal(want) {
		t.Errorf("bucket a expires %v, want %v (its longest-lived entry's expiry plus the slack)", rows["a"], want)
	}
	if want := now.Add(time.Minute + bucketRowSlack); !rows["b"].Equal(want) {
		t.Errorf("bucket b expires %v, want %v", rows["b"], want)
	}

	written := rows
	later := now.Add(30 * time.Minute)
	if again := bucketRows(bucket, []entry{{id: "a3", ttl: 48 * time.Hour}}, written, later); len(again) != 0 {
		t.Errorf("an entry the written row outlives wrote rows %v", again)
	}
	again := bucketRows(bucket, []entry{{id: "b2", ttl: 48 * time.Hour}}, written, later)
	if want := later.Add(48*time.Hour + bucketRowSlack); !again["b"].Equal(want) {
		t.Errorf("an entry outliving bucket b's row: rows %v, want b until %v", again, want)
	}
}

// A Record whose first step fails after it registered some inserts (one
// endpoint's mark is read, the next one's cannot be) leaves none of them
// in flight: an entry in flight holds its queue's mark back for the life
// of the process, and every read from the queue's head then walks every
// bucket since. Runs without a database: the unreachable host fails the
// second endpoint's read.
func TestAFailedFirstStepLeavesNothingInFlight(t *testing.T) {
	s := offlineStore(t)
	loaded := s.outbox.owner("https://a:443")
	loaded.loaded = true // its mark was read before; b's is read now, and fails
	for range 20 {       // the endpoints' order is the map's: some calls fail at a, some at b
		c := &recordCall{s: s, session: &gocql.Session{}, work: map[string]*working{}, callbacks: []sb.Callback{
			{ID: "evt_" + ulid.Make().String(), Endpoint: "https://a:443", MessageID: "m"},
			{ID: "evt_" + ulid.Make().String(), Endpoint: "https://b:443", MessageID: "m"},
		}}
		if _, _, err := c.firstStep(context.Background(), s.clock.next()); err == nil {
			t.Fatal("the first step succeeded with b's mark unreadable")
		}
	}
	loaded.mu.Lock()
	n := len(loaded.inflight)
	loaded.mu.Unlock()
	if n > 0 {
		t.Fatalf("%d entries of https://a:443 left in flight after failed records", n)
	}
}

// An owner remembers at most maxBucketsKnown bucket rows, the newest: a
// key sending once a minute filled 4,096 (some 450 KB) in three days, for
// every key and endpoint the process had seen.
func TestOwnersForgetTheirOldestBuckets(t *testing.T) {
	s := offlineStore(t)
	o := s.pending.owner("k")
	o.loaded = true // no read of its mark: the inserts need no database
	g := newTraffic("k", time.Now().Add(-100*time.Hour), time.Minute)
	var newest string
	for range 6000 { // one message a minute: a bucket each
		m := g.next()
		_, done, err := s.pending.inserts(context.Background(), nil, "k", []entry{{id: m.ID, vals: []any{m.Day()}, ttl: time.Hour}}, s.clock.next())
		if err != nil {
			t.Fatal(err)
		}
		done(true)
		newest = bucketOf(m.ID)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buckets) > maxBucketsKnown {
		t.Fatalf("the owner remembers %d buckets, want at most %d", len(o.buckets), maxBucketsKnown)
	}
	if _, ok := o.buckets[newest]; !ok {
		t.Fatal("the newest bucket was forgotten")
	}
}

// offlineStore is a Store whose cluster is never reached (nothing listens
// on its host), for what runs without a database.
func offlineStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Options{Hosts: []string{"127.0.0.1:1"}, Keyspace: "ks", ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
