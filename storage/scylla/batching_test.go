package scylla

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

func queuedSets(parts ...string) []*writeSet {
	var sets []*writeSet
	for _, p := range parts {
		sets = append(sets, &writeSet{stmts: []stmt{{part: p, cql: "INSERT " + p, args: []any{"v"}}}})
	}
	return sets
}

func batchParts(batches [][]queued) string {
	var out []string
	for _, b := range batches {
		var ps []string
		for _, q := range b {
			ps = append(ps, q.st.part)
		}
		out = append(out, strings.Join(ps, "+"))
	}
	return strings.Join(out, " | ")
}

// Packed, rows of any partitions share batches, each partition's rows
// together; unpacked, a batch holds one partition's.
func TestPlanGroupsAndPacks(t *testing.T) {
	sets := queuedSets("a", "b", "a", "c", "b")
	if got, want := batchParts(plan(sets, true)), "a+a+b+b+c"; got != want {
		t.Errorf("packed: %s, want %s", got, want)
	}
	if got, want := batchParts(plan(sets, false)), "a+a | b+b | c"; got != want {
		t.Errorf("one partition a batch: %s, want %s", got, want)
	}
}

// A batch stops at maxBatchRows statements and at maxBatchBytes of values.
func TestPlanBoundsBatches(t *testing.T) {
	var parts []string
	for i := range maxBatchRows + 10 {
		parts = append(parts, fmt.Sprintf("p%d", i))
	}
	batches := plan(queuedSets(parts...), true)
	if len(batches) != 2 || len(batches[0]) != maxBatchRows || len(batches[1]) != 10 {
		t.Fatalf("%d rows packed into batches of %d and %d, want %d and 10", len(parts), len(batches[0]), len(batches[1]), maxBatchRows)
	}
	big := make([]byte, maxBatchBytes/3)
	var sets []*writeSet
	for range 4 {
		sets = append(sets, &writeSet{stmts: []stmt{{part: "m", cql: "INSERT m", args: []any{big}}}})
	}
	for _, b := range plan(sets, true) {
		size := 0
		for _, q := range b {
			size += rowSize(q.st)
		}
		if size > maxBatchBytes {
			t.Fatalf("a batch of %d bytes, above %d", size, maxBatchBytes)
		}
	}
	// A row larger than the bound still goes, alone.
	huge := []*writeSet{{stmts: []stmt{{part: "h", cql: "INSERT h", args: []any{make([]byte, 2*maxBatchBytes)}}}}}
	if b := plan(huge, true); len(b) != 1 || len(b[0]) != 1 {
		t.Fatalf("a row above the bound: %d batches", len(b))
	}
}

func TestReplicatedEverywhere(t *testing.T) {
	simple := func(rf string) map[string]string {
		return map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": rf}
	}
	nts := map[string]string{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3", "dc2": "2"}
	for _, c := range []struct {
		repl  map[string]string
		nodes map[string]int
		want  bool
	}{
		{simple("1"), map[string]int{"dc1": 1}, true},
		{simple("3"), map[string]int{"dc1": 3}, true},
		{simple("3"), map[string]int{"dc1": 4}, false},
		{simple("2"), map[string]int{"dc1": 1, "dc2": 1}, true},
		{simple("x"), map[string]int{"dc1": 1}, false},
		{nts, map[string]int{"dc1": 3, "dc2": 2}, true},
		{nts, map[string]int{"dc1": 3, "dc2": 3}, false},
		{nts, map[string]int{"dc1": 3, "dc3": 1}, false},
		{map[string]string{"class": "LocalStrategy"}, map[string]int{"dc1": 1}, false},
		{simple("3"), map[string]int{}, false},
	} {
		if got := replicatedEverywhere(c.repl, c.nodes); got != c.want {
			t.Errorf("replicatedEverywhere(%v, %v) = %v, want %v", c.repl, c.nodes, got, c.want)
		}
	}
}

// The recent messages serve only what they may: a message without carrier
// ids, not final, taken with the token it was written with, once.
func TestRecentMessagesRules(t *testing.T) {
	var c recentMessages
	m := &sb.Message{ID: "msg_1", Status: sb.StatusAccepted}
	c.put(m, 10, 7)
	m.Status = sb.StatusFailed // the caller's copy changes; the entry does not
	if _, ok := c.take("msg_1", 8); ok {
		t.Fatal("taken with another token")
	}
	if _, ok := c.take("msg_1", 7); ok {
		t.Fatal("an entry taken once (with the wrong token) was still there")
	}
	m.Status = sb.StatusAccepted
	c.put(m, 10, 7)
	e, ok := c.take("msg_1", 7)
	if !ok || e.ts != 10 || e.m.Status != sb.StatusAccepted || e.m == m {
		t.Fatalf("take = %+v, %v; want its own copy written at 10", e, ok)
	}
	for _, kept := range []*sb.Message{
		{ID: "msg_2", Status: sb.StatusSubmitted, CarrierIDs: []string{"c1"}},
		{ID: "msg_3", Status: sb.StatusDelivered},
	} {
		c.put(kept, 1, 0)
		if _, ok := c.take(kept.ID, 0); ok {
			t.Errorf("%s (%s, carrier ids %v) was kept", kept.ID, kept.Status, kept.CarrierIDs)
		}
	}
	c.put(&sb.Message{ID: "msg_4", Status: sb.StatusQueued, CarrierIDs: []string{""}}, 1, 0)
	c.drop("msg_4")
	if _, ok := c.take("msg_4", 0); ok {
		t.Fatal("a dropped entry was taken")
	}
	for i := range 3 * recentSize {
		c.put(&sb.Message{ID: fmt.Sprint("msg_n", i)}, 1, 0)
	}
	if n := len(c.young) + len(c.old); n > 2*recentSize {
		t.Fatalf("%d entries, above two generations of %d", n, recentSize)
	}
}

// counter counts the statements the driver runs on one table, by kind.
type counter struct {
	mu      sync.Mutex
	table   string
	reads   int
	queries int
}

func (c *counter) ObserveQuery(_ context.Context, q gocql.ObservedQuery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries++
	if strings.Contains(q.Statement, "."+c.table+" ") && strings.HasPrefix(q.Statement, "SELECT") {
		c.reads++
	}
}

func (c *counter) ObserveBatch(_ context.Context, b gocql.ObservedBatch) {}

func (c *counter) get() (reads, queries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.queries
}

func submittedUpdate(m *sb.Message, cid string, fence int64) sb.Update {
	now := time.Now()
	return sb.Update{MessageID: m.ID, Fence: fence, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "sandbox"}, Part: -1,
		CarrierIDs: []string{cid}, ReceiptDue: now.Add(time.Hour)}}
}

func queuedUpdate(m *sb.Message, fence int64) sb.Update {
	return sb.Update{MessageID: m.ID, Fence: fence, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusQueued, At: time.Now()}, Part: -1}}
}

// A Record right after this process accepted the message does not read
// it; one after the message has carrier ids does.
func TestRecordAfterAcceptSkipsTheRead(t *testing.T) {
	count := &counter{table: "messages"}
	s := openTest(t, freshKeyspace(t), func(o *Options) { o.observer = count })
	ctx := context.Background()
	g := newTraffic("k", time.Now(), time.Millisecond)
	m := g.accept(t, s, 1)[0]

	before, _ := count.get()
	got, err := s.Record(ctx, []sb.Update{queuedUpdate(m, 0)})
	if err != nil || got[0].Status != sb.StatusQueued {
		t.Fatalf("Record queued: %v, %v", got, err)
	}
	got, err = s.Record(ctx, []sb.Update{submittedUpdate(m, "c-"+m.ID, 0)})
	if err != nil || got[0].Status != sb.StatusSubmitted {
		t.Fatalf("Record submitted: %v, %v", got, err)
	}
	if reads, _ := count.get(); reads != before {
		t.Fatalf("%d reads of messages for the records after Accept, want none", reads-before)
	}
	if _, err := s.Record(ctx, []sb.Update{{MessageID: m.ID, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusDelivered, At: time.Now()}, Part: 0}}}); err != nil {
		t.Fatal(err)
	}
	if reads, _ := count.get(); reads != before+1 {
		t.Fatalf("%d reads of messages for the receipt, want 1: a submitted message is read", reads-before)
	}
	stored, err := s.Message(ctx, m.ID)
	if err != nil || stored.Status != sb.StatusDelivered || len(stored.Events) != 4 {
		t.Fatalf("stored %+v, %v; want delivered with 4 events", stored, err)
	}
}

// Another owner's write of a message is never hidden by what this process
// remembers: an owner that lost the key (its token fenced off) is refused,
// and one that gets the key back holds a newer token and reads the
// message again.
func TestRecentMessagesAcrossOwners(t *testing.T) {
	ks := freshKeyspace(t)
	a, b := openTest(t, ks, nil), openTest(t, ks, nil)
	ctx := context.Background()
	if _, err := a.RaiseFence(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	g := newTraffic("k", time.Now(), time.Millisecond)
	m := g.next()
	m.Fence = 1
	if err := a.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
		t.Fatal(err)
	}
	// b takes the key over and queues the message.
	if _, err := b.RaiseFence(ctx, "k", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Record(ctx, []sb.Update{queuedUpdate(m, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Record(ctx, []sb.Update{submittedUpdate(m, "stale", 1)}); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("the fenced-off owner's record: %v, want %s", err, sb.EUNAVAILABLE)
	}
	// a gets the key back.
	if _, err := a.RaiseFence(ctx, "k", 3); err != nil {
		t.Fatal(err)
	}
	got, err := a.Record(ctx, []sb.Update{submittedUpdate(m, "c1", 3)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got[0].Events); got[0].Status != sb.StatusSubmitted || n != 3 || got[0].Events[1].Status != sb.StatusQueued {
		t.Fatalf("after the key came back: %+v; want accepted, queued (by the other owner), submitted", got[0].Events)
	}
}

// Concurrent checks that IDs are new share queries, and each caller hears
// about its own IDs.
func TestIDChecksCoalesce(t *testing.T) {
	count := &counter{table: "message_ids"}
	s := openTest(t, freshKeyspace(t), func(o *Options) { o.observer = count })
	ctx := context.Background()
	g := newTraffic("k", time.Now(), time.Millisecond)
	old := g.accept(t, s, 20)
	reads0, _ := count.get()
	const callers = 200
	var wg sync.WaitGroup
	errs := make([]error, callers)
	found := make([][]string, callers)
	fresh := make([]*sb.Message, callers)
	for i := range fresh {
		fresh[i] = g.next()
	}
	for i := range callers {
		wg.Go(func() {
			ids := []string{fresh[i].ID}
			if i%10 == 0 {
				ids = append(ids, old[i/10].ID)
			}
			found[i], errs[i] = s.ids.existing(ctx, ids)
		})
	}
	wg.Wait()
	for i := range callers {
		want := ""
		if i%10 == 0 {
			want = old[i/10].ID
		}
		if errs[i] != nil || strings.Join(found[i], ",") != want {
			t.Fatalf("caller %d: found %v, %v; want [%s]", i, found[i], errs[i], want)
		}
	}
	reads, _ := count.get()
	t.Logf("%d callers checked with %d queries", callers, reads-reads0)
	if reads-reads0 >= callers {
		t.Fatalf("%d queries for %d concurrent callers: no two shared one", reads-reads0, callers)
	}
}

// A read waits for the clean-ups begun before it, not for later ones.
func TestReadsWaitForEarlierCleanUpsOnly(t *testing.T) {
	q := newQueue(&Store{}, pendingQueue)
	first := q.cleaning("k")
	later := q.cleaning("k")
	defer later()
	o := q.owner("k")
	read := make(chan struct{})
	go func() {
		o.mu.Lock()
		o.waitCleanedUpTo(1)
		o.mu.Unlock()
		close(read)
	}()
	first()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the read still waits, for a clean-up begun after it")
	}
}

// rowCounter counts the statements written to one table, alone or in
// batches.
type rowCounter struct {
	mu    sync.Mutex
	table string
	rows  int
}

func (c *rowCounter) count(stmt string) {
	if strings.Contains(stmt, "."+c.table+" ") && !strings.HasPrefix(stmt, "SELECT") {
		c.mu.Lock()
		c.rows++
		c.mu.Unlock()
	}
}

func (c *rowCounter) ObserveQuery(_ context.Context, q gocql.ObservedQuery) { c.count(q.Statement) }

func (c *rowCounter) ObserveBatch(_ context.Context, b gocql.ObservedBatch) {
	for _, st := range b.Statements {
		c.count(st)
	}
}

func (c *rowCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rows
}

// A message whose receipt is recorded with its submit has its carrier id
// written once, with the grace it keeps once final; one whose receipt
// comes later has it written at the submit and shortened at the receipt.
func TestCarrierIDWrittenOnceWhenFinalAtOnce(t *testing.T) {
	count := &rowCounter{table: "carrier_ids"}
	s := openTest(t, freshKeyspace(t), func(o *Options) { o.observer = count })
	ctx := context.Background()
	g := newTraffic("k", time.Now(), time.Millisecond)
	msgs := g.accept(t, s, 2)
	base := count.get() // the schema's statements
	delivered := func(m *sb.Message) sb.Update {
		return sb.Update{MessageID: m.ID, Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: time.Now()}, Part: 0}}
	}
	if _, err := s.Record(ctx, []sb.Update{submittedUpdate(msgs[0], "once", 0), delivered(msgs[0])}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the clean-up", 10*time.Second, func() bool { n, _ := s.PendingCount(ctx, "k"); return n == 1 })
	if n := count.get() - base; n != 1 {
		t.Fatalf("%d carrier_ids writes for a message final in its submit's record, want 1", n)
	}
	if id, _, err := s.CarrierMessage(ctx, "sandbox", "once"); err != nil || id != msgs[0].ID {
		t.Fatalf("CarrierMessage = %s, %v; want %s", id, err, msgs[0].ID)
	}
	if _, err := s.Record(ctx, []sb.Update{submittedUpdate(msgs[1], "twice", 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, []sb.Update{delivered(msgs[1])}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the clean-up", 10*time.Second, func() bool { return count.get()-base == 3 })
}
