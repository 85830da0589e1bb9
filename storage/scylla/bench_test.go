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

// BenchmarkPendingAfter reads a key's pending work from the head, as a
// key actor does when it starts (Pending from "", PendingCount), after
// 0, 10k, 100k and 1M messages went through the key: accepted, then out of
// pending, each leaving a tombstone in the pending queue. 100 messages are
// pending at each step, after all those that went through. The messages
// are dated over the four hours before the run, as if the key had sent
// them then (the mark does not pass IDs younger than MarkLag). NoMark
// reads the same 100 entries from the head of the queue, as a store
// without a mark would: through every tombstone.
//
//	SWITCHBOARD_TEST_CQL=127.0.0.1:9042 go test ./storage/scylla -run '^$' -bench PendingAfter -benchtime 200x -timeout 60m
func BenchmarkPendingAfter(b *testing.B) {
	s := openTest(b, freshKeyspace(b), nil)
	ctx := context.Background()
	const key = "bench"
	g := newTraffic(key, time.Now().Add(-4*time.Hour), 10*time.Millisecond)
	var live []*sb.Message
	through := 0
	for _, total := range []int{0, 10_000, 100_000, 1_000_000} {
		start := time.Now()
		finish(b, s, live)
		through += len(live)
		through += push(b, s, g, total-through)
		live = g.accept(b, s, 100)
		b.Logf("%d messages through the key (%.0f/s), 100 pending", through,
			float64(through)/time.Since(start).Seconds())

		b.Run(fmt.Sprintf("through=%d/Pending", total), func(b *testing.B) {
			for b.Loop() {
				msgs, err := s.Pending(ctx, key, "", "", 100)
				if err != nil || len(msgs) != 100 || msgs[0].ID != live[0].ID {
					b.Fatalf("Pending = %d messages, %v; want the 100 pending", len(msgs), err)
				}
			}
		})
		b.Run(fmt.Sprintf("through=%d/PendingCount", total), func(b *testing.B) {
			for b.Loop() {
				if n, err := s.PendingCount(ctx, key); err != nil || n != 100 {
					b.Fatalf("PendingCount = %d, %v; want 100", n, err)
				}
			}
		})
		b.Run(fmt.Sprintf("through=%d/NoMark", total), func(b *testing.B) {
			session := s.session.Load()
			for b.Loop() {
				rows, _, err := s.pending.scan(ctx, session, key, "", false, "", 100)
				if err != nil {
					b.Skipf("the read from the head fails: %v", err)
				}
				if len(rows) != 100 {
					b.Fatalf("%d entries, want 100", len(rows))
				}
			}
		})
	}
}

// push sends n messages through the key: accepted, then failed (out of
// pending), in batches, four at once. It returns n.
func push(b *testing.B, s *Store, g *traffic, n int) int {
	const batch, workers = 1000, 4
	batches := make(chan []*sb.Message)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for msgs := range batches {
				news := make([]sb.NewMessage, len(msgs))
				for i, m := range msgs {
					news[i] = sb.NewMessage{Message: m}
				}
				if err := s.Accept(context.Background(), news); err != nil {
					b.Errorf("Accept: %v", err)
					return
				}
				finish(b, s, msgs)
			}
		})
	}
	for left := n; left > 0; left -= batch {
		msgs := make([]*sb.Message, min(left, batch))
		for i := range msgs {
			msgs[i] = g.next()
		}
		batches <- msgs
	}
	close(batches)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return n
}

// statements counts what the driver runs, by kind, for the sizing figures.
type statements struct {
	mu                           sync.Mutex
	reads, writes, lwts, batches int
	rows, bytes                  int
}

func (c *statements) ObserveQuery(_ context.Context, q gocql.ObservedQuery) {
	if q.Attempt > 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.HasPrefix(q.Statement, "SELECT"):
		c.reads++
	case strings.Contains(q.Statement, " IF "):
		c.lwts++
	default:
		c.writes++
		c.rows++
		c.bytes += valueBytes(q.Values)
	}
}

func (c *statements) ObserveBatch(_ context.Context, b gocql.ObservedBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches++
	c.rows += len(b.Statements)
	for _, v := range b.Values {
		c.bytes += valueBytes(v)
	}
}

func valueBytes(vals []any) int {
	n := 0
	for _, v := range vals {
		switch v := v.(type) {
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

func (c *statements) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads, c.writes, c.lwts, c.batches, c.rows, c.bytes = 0, 0, 0, 0, 0, 0
}

// BenchmarkMessageLife runs messages of one key through the life the
// gateway gives them, eight at a time: Accept (one message per call, as
// the API does), the submit recorded with a receipt deadline and a
// callback, the receipt recorded by carrier id with a callback, and both
// callbacks finished. It reports what one message costs the database:
// round trips (single statements, batches, reads, lightweight
// transactions) and rows and bytes of bound values written; and, with
// Idempotency-Key, the same with a key on every message.
//
//	SWITCHBOARD_TEST_CQL=127.0.0.1:9042 go test ./storage/scylla -run '^$' -bench MessageLife -benchtime 20000x
func BenchmarkMessageLife(b *testing.B) {
	for _, idem := range []bool{false, true} {
		b.Run(fmt.Sprintf("idempotency_key=%v", idem), func(b *testing.B) {
			count := &statements{}
			s := openTest(b, freshKeyspace(b), func(o *Options) { o.observer = count })
			g := newTraffic("life", time.Now(), time.Microsecond)
			msgs := make([]*sb.Message, b.N)
			for i := range msgs {
				msgs[i] = g.next()
			}
			count.reset()
			b.ResetTimer()
			work := make(chan int)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for i := range work {
						if err := life(s, msgs[i], idem); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			for i := range msgs {
				work <- i
			}
			close(work)
			wg.Wait()
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(count.writes)/n, "writes/msg")
			b.ReportMetric(float64(count.batches)/n, "batches/msg")
			b.ReportMetric(float64(count.reads)/n, "reads/msg")
			b.ReportMetric(float64(count.lwts)/n, "lwts/msg")
			b.ReportMetric(float64(count.rows)/n, "rows/msg")
			b.ReportMetric(float64(count.bytes)/n, "bytes/msg")
		})
	}
}

// life takes one message through its life (see BenchmarkMessageLife).
func life(s *Store, m *sb.Message, idem bool) error {
	ctx := context.Background()
	nm := sb.NewMessage{Message: m}
	if idem {
		nm.IdempotencyKey = "order-" + m.ID
	}
	if err := s.Accept(ctx, []sb.NewMessage{nm}); err != nil {
		return err
	}
	notify := func(id string) *sb.Notify {
		set, _ := sb.NewStatusSet(sb.StatusSubmitted, sb.StatusDelivered)
		return &sb.Notify{EventID: id, DefaultURL: "https://hooks.example.com/sms", Statuses: set, At: time.Now()}
	}
	evt := "evt_" + m.ID[4:]
	cid := "c" + m.ID[4:]
	now := time.Now()
	_, err := s.Record(ctx, []sb.Update{{MessageID: m.ID, Notify: notify(evt + "a"), Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "sandbox"}, Part: -1,
		CarrierIDs: []string{cid}, ReceiptDue: now.Add(72 * time.Hour)}}})
	if err != nil {
		return err
	}
	_, err = s.Record(ctx, []sb.Update{{ByCarrier: &sb.CarrierRef{Carrier: "sandbox", ID: cid}, ParkUntil: now.Add(time.Hour),
		Notify: notify(evt + "b"), Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: now}, Part: 0}}})
	if err != nil {
		return err
	}
	const endpoint = "https://hooks.example.com:443"
	return s.FinishCallbacks(ctx, []sb.FinishedCallback{
		{Callback: sb.Callback{ID: evt + "a", Endpoint: endpoint, MessageID: m.ID}},
		{Callback: sb.Callback{ID: evt + "b", Endpoint: endpoint, MessageID: m.ID}},
	})
}

// BenchmarkRowWrite compares the two ways a Record could write a message
// row, 16 at once: as the store does (a plain write, one message's updates
// serialized by a lock in the process), and as a lightweight transaction
// on a version would (UPDATE ... IF version = ?), which would also
// serialize the updates of one message across nodes.
//
//	SWITCHBOARD_TEST_CQL=127.0.0.1:9042 go test ./storage/scylla -run '^$' -bench RowWrite -benchtime 5000x
func BenchmarkRowWrite(b *testing.B) {
	s := openTest(b, freshKeyspace(b), nil)
	session := s.session.Load()
	if err := session.Query(s.cql(`CREATE TABLE IF NOT EXISTS %s.rows (id text PRIMARY KEY, version bigint, data blob)`)).Exec(); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 700)
	for _, conditional := range []bool{false, true} {
		b.Run(fmt.Sprintf("conditional=%v", conditional), func(b *testing.B) {
			var next sync.Mutex
			i := 0
			b.SetParallelism(8) // 16 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					next.Lock()
					i++
					id := fmt.Sprintf("row-%d", i%1000)
					next.Unlock()
					var err error
					if conditional {
						_, err = session.Query(s.cql(`UPDATE %s.rows SET data = ?, version = ? WHERE id = ? IF version = null`),
							data, 1, fmt.Sprintf("%s-%d", id, i)).Consistency(gocql.Quorum).SerialConsistency(gocql.Serial).
							MapScanCAS(map[string]any{})
					} else {
						err = session.Query(s.cql(`INSERT INTO %s.rows (id, version, data) VALUES (?, ?, ?)`), id, 1, data).
							Consistency(gocql.Quorum).Exec()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
