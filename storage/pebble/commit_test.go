package pebble

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// A caller that gives up while its request is still queued gets ctx's
// error, and the committer skips the request.
func TestAbandonedRequestIsSkipped(t *testing.T) {
	db, err := pebbledb.Open(t.TempDir(), &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCommitter(db, time.Now, zerolog.Nop()) // not started: requests stay queued
	ctx, cancel := context.WithCancel(t.Context())
	abandoned := &sb.Message{ID: "msg_1", Key: "k", Status: sb.StatusAccepted}
	errc := make(chan error)
	go func() { errc <- c.do(ctx, acceptRequest(abandoned)) }()
	for c.queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned Accept returned %v, want context.Canceled", err)
	}

	c.start()
	defer c.stop()
	kept := &sb.Message{ID: "msg_2", Key: "k", Status: sb.StatusAccepted}
	if err := c.do(t.Context(), acceptRequest(kept)); err != nil {
		t.Fatalf("Accept after the abandoned one: %v", err)
	}
	if _, err := getMessage(db, messageKey(nil, abandoned.ID)); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("abandoned message: %v, want ENOTFOUND", err)
	}
	if _, err := getMessage(db, messageKey(nil, kept.ID)); err != nil {
		t.Fatalf("kept message: %v", err)
	}
}

func acceptRequest(m *sb.Message) *request {
	return &request{write: func(c *committer, b *pebbledb.Batch) error {
		return c.accept([]sb.NewMessage{{Message: m}}, b)
	}}
}

func (c *committer) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// TestRoundOverlay queues requests that read what earlier ones in the same
// round wrote, before the committer starts, so all of them share one round
// and only the overlay can tell them what the batch holds: two InitSettings
// of one name, two Records of one message with a Notify each, two
// FinishCallbacks with failures of one message, two AcceptInbounds of one
// ID.
func TestRoundOverlay(t *testing.T) {
	db, err := pebbledb.Open(t.TempDir(), &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().UTC()
	m := &sb.Message{ID: "msg_1", Key: "k", CallbackURL: "https://example.com/hook", Segments: 1,
		Status: sb.StatusAccepted, AcceptedAt: at, Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}
	if err := db.Set(messageKey(nil, m.ID), appendMessage(nil, m), pebbledb.Sync); err != nil {
		t.Fatal(err)
	}
	c := newCommitter(db, time.Now, zerolog.Nop()) // not started: requests stay queued
	all, _ := sb.NewStatusSet(sb.StatusQueued, sb.StatusSubmitted, sb.StatusFailed)
	notify := func(id string) *sb.Notify { return &sb.Notify{EventID: id, Statuses: all, At: at} }
	failure := func(id string) sb.FinishedCallback {
		return sb.FinishedCallback{Callback: sb.Callback{ID: id, Endpoint: "https://example.com:443", MessageID: m.ID},
			Failure: &sb.WebhookFailure{EventID: id, Reason: sb.WebhookGone}}
	}
	in := &sb.Message{ID: "msg_2", Key: "k", Status: sb.StatusReceived, AcceptedAt: at, Direction: sb.DirectionInbound}

	var (
		settings [2]string
		records  [2][]*sb.Message
		errs     [8]error
		wg       sync.WaitGroup
	)
	writes := []func(c *committer, b *pebbledb.Batch) error{
		func(c *committer, b *pebbledb.Batch) (err error) {
			settings[0], err = c.initSetting("s", "first", b)
			return err
		},
		func(c *committer, b *pebbledb.Batch) (err error) {
			settings[1], err = c.initSetting("s", "second", b)
			return err
		},
		func(c *committer, b *pebbledb.Batch) (err error) {
			records[0], err = c.record([]sb.Update{{MessageID: m.ID, Notify: notify("evt_1"),
				Transition: sb.Transition{Event: sb.Event{Status: sb.StatusQueued, At: at}, Part: -1}}}, b)
			return err
		},
		func(c *committer, b *pebbledb.Batch) (err error) {
			records[1], err = c.record([]sb.Update{{MessageID: m.ID, Notify: notify("evt_2"),
				Transition: sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: at, Carrier: "x"}, Part: -1, CarrierIDs: []string{"c"}}}}, b)
			return err
		},
		func(c *committer, b *pebbledb.Batch) error {
			return c.finish([]sb.FinishedCallback{failure("evt_0")}, b)
		},
		func(c *committer, b *pebbledb.Batch) error {
			return c.finish([]sb.FinishedCallback{failure("evt_1")}, b)
		},
		func(c *committer, b *pebbledb.Batch) error { return c.acceptInbound(in, nil, nil, b) },
		func(c *committer, b *pebbledb.Batch) error { return c.acceptInbound(in, nil, nil, b) },
	}
	for i, w := range writes {
		wg.Go(func() { errs[i] = c.do(t.Context(), &request{write: w}) })
		for c.queued() < i+1 { // queue in order
			time.Sleep(time.Millisecond)
		}
	}
	c.start()
	wg.Wait()
	c.stop()

	if settings != [2]string{"first", "first"} {
		t.Errorf("InitSettings in one round returned %q", settings)
	}
	for i := range 6 {
		if errs[i] != nil {
			t.Errorf("write %d: %v", i, errs[i])
		}
	}
	if errs[6] != nil || sb.ErrorCode(errs[7]) != sb.ECONFLICT {
		t.Errorf("AcceptInbound of one ID twice in a round: %v, %v; want nil, ECONFLICT", errs[6], errs[7])
	}
	if records[0][0].Status != sb.StatusQueued || records[1][0].Status != sb.StatusSubmitted {
		t.Errorf("Records returned %s, %s", records[0][0].Status, records[1][0].Status)
	}
	got, err := getMessage(db, messageKey(nil, m.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != sb.StatusSubmitted || len(got.WebhookFailures) != 2 {
		t.Errorf("message after the round: status %s, failures %+v", got.Status, got.WebhookFailures)
	}
	// evt_1 was queued and then finished in the same round: deleted.
	it, err := db.NewIter(&pebbledb.IterOptions{LowerBound: []byte(prefixOutbox), UpperBound: successor([]byte(prefixOutbox))})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var queued []string
	for ok := it.First(); ok; ok = it.Next() {
		queued = append(queued, string(it.Key()[len(outboxPrefix(nil, "https://example.com:443")):]))
	}
	if len(queued) != 1 || queued[0] != "evt_2" {
		t.Errorf("outbox holds %q, want [evt_2]", queued)
	}
}

// An ID already stored conflicts whether the committer remembers it
// (claimed since floor) or has to look it up (below floor, after recent
// was renewed), and IDs that arrive out of order but are new do not.
func TestClaimIDAcrossFloor(t *testing.T) {
	db, err := pebbledb.Open(t.TempDir(), &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCommitter(db, time.Now, zerolog.Nop())
	if err := c.loadMaxID(); err != nil {
		t.Fatal(err)
	}
	c.start()
	defer c.stop()
	accept := func(id string) error {
		return c.do(t.Context(), acceptRequest(&sb.Message{ID: id, Key: "k", Status: sb.StatusAccepted}))
	}
	for _, id := range []string{"msg_5", "msg_3", "msg_9"} { // out of order, all new
		if err := accept(id); err != nil {
			t.Fatalf("accept %s: %v", id, err)
		}
	}
	if err := accept("msg_3"); sb.ErrorCode(err) != sb.ECONFLICT {
		t.Errorf("msg_3 again, remembered: %v, want ECONFLICT", err)
	}
	// Renew recent as a full one would be at the next round.
	c.mu.Lock() // the committer goroutine is idle between requests
	c.floor = c.maxID
	clear(c.recent)
	c.mu.Unlock()
	if err := accept("msg_5"); sb.ErrorCode(err) != sb.ECONFLICT {
		t.Errorf("msg_5 again, below floor: %v, want ECONFLICT", err)
	}
	if err := accept("msg_4"); err != nil {
		t.Errorf("msg_4, new below floor: %v", err)
	}
	if err := accept("msg_a"); err != nil {
		t.Errorf("msg_a, new above floor: %v", err)
	}
	if err := accept("msg_a"); sb.ErrorCode(err) != sb.ECONFLICT {
		t.Errorf("msg_a again: %v, want ECONFLICT", err)
	}
}

// A lazy request starts no round: it commits in the next round another
// write starts. With no other write, it commits after the lazy delay; and
// a stop commits what is still queued.
func TestLazyRequestRidesWithTheNextRound(t *testing.T) {
	db, err := pebbledb.Open(t.TempDir(), &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := newCommitter(db, time.Now, zerolog.Nop())
	c.lazyDelay = time.Hour // only another write, or the stop, takes it
	c.start()
	stop := sync.OnceFunc(c.stop)
	defer stop()
	lazy := func() <-chan error {
		errc := make(chan error, 1)
		go func() {
			errc <- c.do(t.Context(), &request{write: func(*committer, *pebbledb.Batch) error { return nil }, lazy: true})
		}()
		for c.queued() == 0 && len(errc) == 0 { // queued, or (wrongly) committed already
			time.Sleep(time.Millisecond)
		}
		return errc
	}

	first := lazy()
	if n := c.applied.Load(); n != 0 {
		t.Fatalf("%d rounds after a lazy request alone, want 0", n)
	}
	if err := c.do(t.Context(), acceptRequest(&sb.Message{ID: "msg_1", Key: "k", Status: sb.StatusAccepted})); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("lazy request: %v", err)
	}
	if n := c.applied.Load(); n != 1 {
		t.Fatalf("%d rounds, want 1: the lazy request rides with the Accept", n)
	}

	queuedAtStop := lazy()
	stop()
	if err := <-queuedAtStop; err != nil {
		t.Fatalf("lazy request queued at stop: %v", err)
	}

	alone := newCommitter(db, time.Now, zerolog.Nop())
	alone.lazyDelay = time.Millisecond
	alone.start()
	defer alone.stop()
	if err := alone.do(t.Context(), &request{write: func(*committer, *pebbledb.Batch) error { return nil }, lazy: true}); err != nil {
		t.Fatalf("lazy request with no other write: %v", err)
	}
	if n := alone.applied.Load(); n != 1 {
		t.Fatalf("%d rounds, want 1", n)
	}
}
