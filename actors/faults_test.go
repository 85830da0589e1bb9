package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/http/sink"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// faultyStore is a fake standing in for a store that fails: it passes
// calls to a real Pebble store, but fails or slows the ones a test picks,
// which no real disk does on demand.
type faultyStore struct {
	*pebble.Store
	mu    sync.Mutex
	rules map[string]*fault
	calls map[string]int
	// afterRecord, if set, sees what each Record stored before its caller
	// does; it returns whether to stay set.
	afterRecord func([]*switchboard.Message) bool
}

// fault says what happens to calls of one method: the first after calls
// succeed, then failures fail (-1: all the rest); each waits delay first.
type fault struct {
	after, failures int
	delay           time.Duration
}

var errInjected = errors.New("injected store failure")

func newFaultyStore(s *pebble.Store) *faultyStore {
	return &faultyStore{Store: s, rules: map[string]*fault{}, calls: map[string]int{}}
}

func (s *faultyStore) set(method string, f fault) {
	s.mu.Lock()
	s.rules[method] = &f
	s.calls[method] = 0
	s.mu.Unlock()
}

// check applies the method's fault to this call.
func (s *faultyStore) check(method string) error {
	s.mu.Lock()
	s.calls[method]++
	n := s.calls[method]
	f := s.rules[method]
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if n > f.after && (f.failures < 0 || n <= f.after+f.failures) {
		return errInjected
	}
	return nil
}

func (s *faultyStore) Accept(ctx context.Context, msgs []switchboard.NewMessage) error {
	if err := s.check("Accept"); err != nil {
		return err
	}
	return s.Store.Accept(ctx, msgs)
}

func (s *faultyStore) Record(ctx context.Context, updates []switchboard.Update) ([]*switchboard.Message, error) {
	if err := s.check("Record"); err != nil {
		return nil, err
	}
	msgs, err := s.Store.Record(ctx, updates)
	s.mu.Lock()
	after := s.afterRecord
	s.mu.Unlock()
	if err == nil && after != nil && !after(msgs) {
		s.mu.Lock()
		s.afterRecord = nil
		s.mu.Unlock()
	}
	return msgs, err
}

// onceDelivered runs f once, right after the first Record that makes a
// message delivered, before its caller hears of it.
func (s *faultyStore) onceDelivered(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterRecord = func(msgs []*switchboard.Message) bool {
		for _, m := range msgs {
			if m != nil && m.Status == switchboard.StatusDelivered {
				f()
				return false
			}
		}
		return true
	}
}

func (s *faultyStore) FinishCallbacks(ctx context.Context, done []switchboard.FinishedCallback) error {
	if err := s.check("FinishCallbacks"); err != nil {
		return err
	}
	return s.Store.FinishCallbacks(ctx, done)
}

func (s *faultyStore) PendingCount(ctx context.Context, key string) (int, error) {
	if err := s.check("PendingCount"); err != nil {
		return 0, err
	}
	return s.Store.PendingCount(ctx, key)
}

func faultyRig(t *testing.T, o rigOptions) (*rig, *faultyStore) {
	var fs *faultyStore
	o.wrapStore = func(s *pebble.Store) switchboard.Store { fs = newFaultyStore(s); return fs }
	return newRig(t, o), fs
}

// An Accept that fails answers 503 and sends nothing; the next one works.
func TestAcceptFailureIsUnavailableAndNothingIsSent(t *testing.T) {
	r, fs := faultyRig(t, rigOptions{})
	fs.set("Accept", fault{failures: 1})
	res := r.submit(r.keys[0], "+447700900001", "k0|+447700900001|lost")
	if switchboard.ErrorCode(res.Err) != switchboard.EUNAVAILABLE {
		t.Fatalf("submit with a failing store: %+v, want unavailable", res)
	}
	ok := r.submit(r.keys[0], "+447700900001", "k0|+447700900001|kept")
	if ok.Err != nil {
		t.Fatal(ok.Err)
	}
	r.waitFinal([]string{ok.Message.ID}, switchboard.StatusDelivered, 10*time.Second)
	if n := r.timesSeen()["k0|+447700900001|lost"]; n != 0 {
		t.Fatalf("the message whose Accept failed was sent %d times", n)
	}
}

// Records that fail for a while (submitted, receipts, final statuses) are
// tried again: every message still reaches its final status.
func TestRecordFailuresAreRetried(t *testing.T) {
	for _, f := range []fault{{failures: 5}, {after: 20, failures: 30}} {
		r, fs := faultyRig(t, rigOptions{})
		fs.set("Record", f)
		ids := r.submitAll(40)
		r.waitFinal(ids, switchboard.StatusDelivered, 30*time.Second)
	}
}

// A slow store: requests wait for their writes, and everything arrives,
// once each.
func TestSlowStoreKeepsEveryMessageOnce(t *testing.T) {
	r, fs := faultyRig(t, rigOptions{})
	fs.set("Accept", fault{delay: 50 * time.Millisecond})
	fs.set("Record", fault{delay: 20 * time.Millisecond})
	ids := r.submitAll(30)
	r.waitFinal(ids, switchboard.StatusDelivered, 30*time.Second)
	for body, n := range r.timesSeen() {
		if n != 1 {
			t.Errorf("%s sent %d times", body, n)
		}
	}
}

// A key actor restarted while its requests' Accepts are still being
// written neither loses those messages nor sends any twice: the new
// instance waits for its predecessor's commits before it counts and pages.
func TestRestartWhileCommitsAreWritten(t *testing.T) {
	r, fs := faultyRig(t, rigOptions{})
	fs.set("Accept", fault{delay: 300 * time.Millisecond})
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Go(func() {
			to := fmt.Sprintf("+4477009%05d", i)
			res := r.submit(r.keys[0], to, "k0|"+to+"|x")
			if res.Err != nil {
				t.Errorf("submit: %v", res.Err)
				return
			}
			ids[i] = res.Message.ID
		})
	}
	eventually(t, "Accepts under way", 5*time.Second, func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.calls["Accept"] > 0
	})
	if !r.engine.RestartKeyActor(r.keys[0].ID) {
		t.Fatal("no key actor to restart")
	}
	wg.Wait()
	r.waitFinal(ids, switchboard.StatusDelivered, 30*time.Second)
	for body, n := range r.timesSeen() {
		if n != 1 {
			t.Errorf("%s sent %d times", body, n)
		}
	}
}

// A key actor whose store cannot count its messages answers 503 rather
// than admit without its queue bound, and works once the store does.
func TestCountFailureIsUnavailableUntilTheStoreWorks(t *testing.T) {
	r, fs := faultyRig(t, rigOptions{})
	fs.set("PendingCount", fault{failures: 1})
	res := r.submit(r.keys[0], "+447700900001", "first")
	if switchboard.ErrorCode(res.Err) != switchboard.EUNAVAILABLE {
		t.Fatalf("submit while the count fails: %+v, want unavailable", res)
	}
	eventually(t, "the key to load", 10*time.Second, func() bool {
		res = r.submit(r.keys[0], "+447700900001", "second")
		return res.Err == nil
	})
	r.waitFinal([]string{res.Message.ID}, switchboard.StatusDelivered, 10*time.Second)
}

// Removing delivered callbacks from the outbox fails for a while: they are
// delivered (perhaps more than once: at least once) and then removed.
func TestFinishCallbacksFailureRedeliversThenRemoves(t *testing.T) {
	snk, poster := sinkAndPoster(t)
	r, fs := faultyRig(t, rigOptions{callbackURL: snk.URL() + "/hook",
		webhooks: actors.WebhookConfig{Poster: poster, RetryMin: 50 * time.Millisecond}})
	fs.set("FinishCallbacks", fault{failures: 3})
	ids := r.submitAll(10)
	r.waitFinal(ids, switchboard.StatusDelivered, 30*time.Second)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	if !snk.Wait(30*time.Second, func(evs []sink.Event) bool {
		got := 0
		for _, ev := range evs {
			if want[ev.MessageID] && ev.Status == string(switchboard.StatusDelivered) {
				got++
			}
		}
		return got == len(ids)
	}) {
		t.Fatalf("not every delivered callback arrived: %+v", snk.Stats())
	}
	eventually(t, "the outbox to empty", 30*time.Second, func() bool {
		eps, err := r.store.CallbackEndpoints(context.Background())
		return err == nil && len(eps) == 0
	})
}

// A key's callback URL that changes while a record that queued a callback
// to the old one is being written: the callback still goes to the old
// URL (docs/webhooks.md), and its endpoint is told to look, so it does not
// wait in the outbox until a restart.
func TestCallbackQueuedJustBeforeAURLChangeIsSent(t *testing.T) {
	sinks := make([]*sink.Sink, 2)
	for i := range sinks {
		snk, err := sink.Start(sink.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snk.Close() })
		sinks[i] = snk
	}
	client := callback.New(callback.Options{AllowPrivate: true})
	t.Cleanup(client.Close)
	r, fs := faultyRig(t, rigOptions{callbackURL: sinks[0].URL() + "/hook",
		webhooks: actors.WebhookConfig{Poster: callback.Poster{Client: client}, RetryMin: 50 * time.Millisecond}})
	key := r.keys[0]
	fs.onceDelivered(func() {
		moved := *key
		moved.CallbackURL = sinks[1].URL() + "/hook"
		r.ring.Put(&moved)
		r.engine.KeysChanged(key.ID)
	})
	res := r.submit(key, "+447700900001", "k0|+447700900001|0")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if !sawDelivered(sinks[0], res.Message.ID) {
		t.Fatalf("the callback queued to the old URL did not arrive there: %+v", sinks[0].Stats())
	}
}

// The callbacks of a key removed from the configuration while they were
// queued are not sent (they were, signed with an empty secret, which a
// receiver that verifies refuses): they wait a while (KeyGrace), since in
// a cluster a node may learn of a new key a moment after another node
// used it, and are then given up, recorded on their message with reason
// key_removed and no attempts. Meanwhile another key's callbacks to the
// same endpoint go out.
func TestCallbacksOfARemovedKeyAreGivenUp(t *testing.T) {
	snk, poster := sinkAndPoster(t)
	r, fs := faultyRig(t, rigOptions{keys: 2, callbackURL: snk.URL() + "/hook",
		webhooks: actors.WebhookConfig{Poster: poster, RetryMin: 50 * time.Millisecond,
			RetryMax: 100 * time.Millisecond, KeyGrace: time.Second}})
	gone, kept := r.keys[0], r.keys[1]
	fs.onceDelivered(func() { r.ring.Replace([]*switchboard.Key{kept}) }) // before its callback is read
	res := r.submit(gone, "+447700900001", "k0|+447700900001|0")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	other := r.submit(kept, "+447700900002", "k1|+447700900002|0")
	if other.Err != nil {
		t.Fatal(other.Err)
	}
	if !sawDelivered(snk, other.Message.ID) {
		t.Fatalf("the other key's callback did not go out meanwhile: %+v", snk.Stats())
	}
	eventually(t, "the callback given up, recorded", 10*time.Second, func() bool {
		m, err := r.store.Message(context.Background(), res.Message.ID)
		if err != nil || len(m.WebhookFailures) == 0 {
			return false
		}
		f := m.WebhookFailures[len(m.WebhookFailures)-1]
		return f.Reason == switchboard.WebhookKeyRemoved && f.Attempts == 0
	})
	for _, ev := range snk.Events() {
		if ev.MessageID == res.Message.ID && ev.Status == string(switchboard.StatusDelivered) {
			t.Fatalf("the removed key's delivered callback was sent: %+v", ev)
		}
	}
}

// A callback of a key this node does not know yet (in a cluster, another
// node used a key just created) waits, and goes out once the key is known.
func TestCallbacksOfAKeyKnownLaterAreSent(t *testing.T) {
	snk, poster := sinkAndPoster(t)
	r, fs := faultyRig(t, rigOptions{keys: 2, callbackURL: snk.URL() + "/hook",
		webhooks: actors.WebhookConfig{Poster: poster, RetryMin: 50 * time.Millisecond,
			RetryMax: 100 * time.Millisecond}})
	late, other := r.keys[0], r.keys[1]
	fs.onceDelivered(func() { r.ring.Replace([]*switchboard.Key{other}) })
	res := r.submit(late, "+447700900001", "k0|+447700900001|0")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	eventually(t, "the message delivered", 10*time.Second, func() bool { return r.status(res.Message.ID) == switchboard.StatusDelivered })
	r.ring.Replace([]*switchboard.Key{late, other})
	if !sawDelivered(snk, res.Message.ID) {
		t.Fatalf("the delivered callback did not go out once its key was known: %+v", snk.Stats())
	}
}

// sawDelivered waits up to 10 s for snk to get message id's delivered
// callback.
func sawDelivered(snk *sink.Sink, id string) bool {
	return snk.Wait(10*time.Second, func(evs []sink.Event) bool {
		for _, ev := range evs {
			if ev.MessageID == id && ev.Status == string(switchboard.StatusDelivered) {
				return true
			}
		}
		return false
	})
}

// sinkAndPoster starts a callback receiver and a poster that may reach it.
func sinkAndPoster(t *testing.T) (*sink.Sink, actors.Poster) {
	t.Helper()
	snk, err := sink.Start(sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snk.Close() })
	client := callback.New(callback.Options{AllowPrivate: true})
	t.Cleanup(client.Close)
	return snk, callback.Poster{Client: client}
}

// vanishingStore answers ENOTFOUND for every update of the message named
// gone, as a store does for a message deleted under the key's actor.
type vanishingStore struct {
	*pebble.Store
	gone atomic.Pointer[string]
}

func (s *vanishingStore) Record(ctx context.Context, updates []switchboard.Update) ([]*switchboard.Message, error) {
	if g := s.gone.Load(); g != nil {
		for _, u := range updates {
			if u.MessageID == *g {
				return nil, switchboard.Errorf(switchboard.ENOTFOUND, "no message %s", *g)
			}
		}
	}
	return s.Store.Record(ctx, updates)
}

// A status that cannot be recorded because its message no longer exists
// (deleted by retention, or its Accept undone by an owner fenced out) is
// not retried for ever: the key's work ends, and its actor can retire.
func TestRecordOfAVanishedMessageIsNotRetriedForEver(t *testing.T) {
	var vs *vanishingStore
	r := newRig(t, rigOptions{idle: 200 * time.Millisecond,
		simConfig: smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: 300 * time.Millisecond}}},
		wrapStore: func(s *pebble.Store) switchboard.Store { vs = &vanishingStore{Store: s}; return vs }})
	res := r.submit(r.keys[0], "+447700900001", "hello")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	vs.gone.Store(&res.Message.ID) // before the carrier answers, 300 ms on
	eventually(t, "the submit sent", 5*time.Second, func() bool { return r.sims["sim"].Stats().Submits == 1 })
	eventually(t, "the key's actor retired", 10*time.Second, func() bool { return r.engine.KeyActors() == 0 })
}
