package actors

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// Poster sends one callback request. http/callback implements it (wired
// in cmd/switchboard), keeping HTTP out of the engine.
type Poster interface {
	Post(ctx context.Context, req WebhookRequest) PostResult
}

// WebhookRequest is one attempt to deliver one callback, or a batch of
// them (a JSON array) for a key that batches.
type WebhookRequest struct {
	URL    string
	Body   []byte
	Secret string // the key's webhook secret, which signs the body
	// OldSecret, during a webhook secret rotation's overlap, signs the
	// body too: the request carries both signatures.
	OldSecret string
	EventID   string // the one callback's event_id; empty for a batch
}

// PostOutcome is what a delivery attempt means for the callback.
type PostOutcome int

const (
	PostDelivered PostOutcome = iota // 2xx: done
	PostGone                         // 410: stop sending to this URL
	PostRetry                        // anything else: try again later
	PostRefused                      // the URL may never be called (its form or address policy)
)

// PostResult is the answer to one attempt.
type PostResult struct {
	Outcome    PostOutcome
	Status     int           // the HTTP status, 0 without a response
	RetryAfter time.Duration // from Retry-After, 0 if none
	Err        error
}

// WebhookConfig tunes callback delivery. Zero values take the defaults.
type WebhookConfig struct {
	// Poster sends the requests. Without one every attempt fails (as a
	// retry), so callbacks wait in the store until max_age: a setup for
	// tests of the engine alone.
	Poster Poster
	// MaxAge is how long a callback is retried before it is given up on
	// (default 72h).
	MaxAge time.Duration
	// RetryMin and RetryMax bound the backoff between attempts of one
	// callback (defaults 5s and 30m).
	RetryMin, RetryMax time.Duration
	// Concurrency is the most requests in flight to one endpoint
	// (default 64).
	Concurrency int
	// Window is how many callbacks of one endpoint are held in memory; the
	// rest wait in the store (default 2048).
	Window int
	// KeyGrace is how long a callback whose key the delivering node does
	// not know waits for it before it is given up (default 1m): long
	// enough for a key made on another node to arrive (the admin API's in
	// about a second), short enough that the callbacks of a removed key do
	// not hold the endpoint's window for long.
	KeyGrace time.Duration
	// BreakerFailures consecutive failures open an endpoint's circuit;
	// it is probed again after a backoff between BreakerMin and BreakerMax
	// (defaults 5, 1s, 60s).
	BreakerFailures        int
	BreakerMin, BreakerMax time.Duration
	// GoneFor is how long a URL that answered 410 is not called (default
	// 1h); its callbacks are given up on meanwhile.
	GoneFor time.Duration
}

func (c *WebhookConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.MaxAge, 72*time.Hour)
	def(&c.RetryMin, 5*time.Second)
	def(&c.RetryMax, 30*time.Minute)
	def(&c.BreakerMin, time.Second)
	def(&c.BreakerMax, time.Minute)
	def(&c.GoneFor, time.Hour)
	def(&c.KeyGrace, time.Minute)
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Window <= 0 {
		c.Window = 2048
	}
	if c.BreakerFailures <= 0 {
		c.BreakerFailures = 5
	}
}

// dispatcher owns the endpoint actors: one per callback endpoint
// (scheme://host:port), started when the store may hold callbacks for it
// and stopped when it has none left. Finished callbacks are removed from
// the store in batches.
type dispatcher struct {
	e   *Engine
	cfg WebhookConfig
	ids *eventIDs
	// keyEndpoints holds the endpoint of each key's callback_url, parsed
	// once rather than on every status change; replaced when keys change.
	keyEndpoints atomic.Pointer[map[string]parsedURL]

	mu        sync.Mutex
	endpoints map[string]*endpointRef
	stopped   bool // no more work starts (guards work.Add against work.Wait)

	gone goneMarks // URLs that answered 410 (a lock of its own)

	finisher *batcher[finishJob]
	work     sync.WaitGroup // workers: posts and outbox reads in flight, or idle
	jobs     chan func()    // unbuffered: taken only by an idle worker
	stop     context.Context
	cancel   context.CancelFunc

	delivered, gaveUp, attempts, retried atomic.Int64
}

type endpointRef struct {
	pid    *actor.PID
	hinted atomic.Bool // a hint is on its way; more would be redundant
}

type finishJob struct {
	done  switchboard.FinishedCallback
	actor *actor.PID
}

// WebhookStats are the dispatcher's counters since start: requests made,
// and callbacks delivered, given up on, and failed an attempt (to be
// retried).
type WebhookStats struct {
	Attempts, Delivered, GaveUp, Retried int64
	Endpoints                            int
}

func newDispatcher(e *Engine, cfg WebhookConfig, ids *eventIDs) *dispatcher {
	cfg.setDefaults()
	d := &dispatcher{e: e, cfg: cfg, ids: ids,
		endpoints: make(map[string]*endpointRef), jobs: make(chan func())}
	d.stop, d.cancel = context.WithCancel(context.Background())
	d.finisher = newBatcher(2, 1024, 64*1024, d.finish)
	d.keysChanged()
	return d
}

// parsedURL is a callback URL and its endpoint.
type parsedURL struct{ url, endpoint string }

// keysChanged parses the keys' callback URLs again.
func (d *dispatcher) keysChanged() {
	eps := make(map[string]parsedURL)
	for _, k := range d.e.cfg.Keys.All() {
		if ep, err := switchboard.CallbackEndpoint(k.CallbackURL); err == nil {
			eps[k.ID] = parsedURL{url: k.CallbackURL, endpoint: ep}
		}
	}
	d.keyEndpoints.Store(&eps)
}

// keyEndpoint is the endpoint of a key's callback URL u, or "" if u was
// not parsed: the key may have changed in the ring since keysChanged.
func (d *dispatcher) keyEndpoint(keyID, u string) string {
	if p, ok := (*d.keyEndpoints.Load())[keyID]; ok && p.url == u {
		return p.endpoint
	}
	return ""
}

// start resumes every endpoint with callbacks in the store.
func (d *dispatcher) start(ctx context.Context, store switchboard.Outbox) error {
	d.finisher.start()
	endpoints, err := store.CallbackEndpoints(ctx)
	if err != nil {
		return err
	}
	for _, ep := range endpoints {
		d.hint(ep)
	}
	return nil
}

// policy is Notify.Policy: the key's default URL, its endpoint and the
// statuses.
func (d *dispatcher) policy(keyID string) switchboard.KeyCallbacks {
	k, ok := d.e.cfg.Keys.Key(keyID)
	if !ok {
		return switchboard.KeyCallbacks{}
	}
	return switchboard.KeyCallbacks{URL: k.CallbackURL, Endpoint: d.keyEndpoint(keyID, k.CallbackURL), Statuses: keyStatuses(k)}
}

// keyStatuses is the statuses a key's callbacks carry.
func keyStatuses(k *switchboard.Key) switchboard.StatusSet {
	if k.CallbackStatuses == 0 {
		return switchboard.DefaultCallbackStatuses
	}
	return k.CallbackStatuses
}

// hint tells an endpoint's actor that the store may have new callbacks
// for it, starting the actor if needed. Hints coalesce: one on its way
// covers every write before the actor reads the store.
func (d *dispatcher) hint(endpoint string) {
	if f := d.e.fleet; f != nil {
		// In a cluster one node delivers each endpoint's callbacks.
		if owner := f.owner(kindEndpoint, endpoint); owner != f.address {
			if owner != "" {
				f.hints.hint(owner, endpoint)
			}
			return
		}
	}
	d.hintLocal(endpoint)
}

// hintLocal hints an endpoint's actor on this node (see hint).
func (d *dispatcher) hintLocal(endpoint string) {
	// The send happens under d.mu, so retire cannot forget the actor
	// between finding it here and the hint reaching its mailbox.
	d.mu.Lock()
	defer d.mu.Unlock()
	ref := d.endpoints[endpoint]
	if ref == nil {
		ref = &endpointRef{}
		a := newEndpointActor(d, endpoint, ref)
		ref.pid = d.e.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
		d.endpoints[endpoint] = ref
	}
	if ref.hinted.CompareAndSwap(false, true) {
		d.e.system.Root.Send(ref.pid, &outboxHint{})
	}
}

// stopEndpoints stops the endpoint actors of the endpoints moved says have
// moved to another node. Callbacks in flight finish; the rest stay in the
// store for the new owner.
func (d *dispatcher) stopEndpoints(moved func(endpoint string) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ep, ref := range d.endpoints {
		if moved(ep) {
			delete(d.endpoints, ep)
			d.e.system.Root.Stop(ref.pid)
		}
	}
}

// retire forgets an idle endpoint actor unless a hint is on its way;
// the actor stops only if this returns true.
func (d *dispatcher) retire(endpoint string, ref *endpointRef) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.endpoints[endpoint] != ref || ref.hinted.Load() {
		return false
	}
	delete(d.endpoints, endpoint)
	return true
}

// isGone reports whether url answered 410 recently.
func (d *dispatcher) isGone(url string, now time.Time) bool { return d.gone.is(url, now) }

func (d *dispatcher) markGone(url string, now time.Time) { d.gone.mark(url, now, d.cfg.GoneFor) }

// body is the JSON sent for one attempt: event_id and attempt, then the
// stored event's fields.
func body(cb *switchboard.Callback, attempt int) []byte {
	return appendBody(make([]byte, 0, len(cb.Data)+64), cb, attempt)
}

// batchBody is the JSON array sent for one attempt of a batch.
func batchBody(group []*delivery) []byte {
	size := 2
	for _, dl := range group {
		size += len(dl.cb.Data) + 64
	}
	b := append(make([]byte, 0, size), '[')
	for i, dl := range group {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBody(b, &dl.cb, dl.attempts)
	}
	return append(b, ']')
}

func appendBody(b []byte, cb *switchboard.Callback, attempt int) []byte {
	b = append(b, `{"event_id":"`...)
	b = append(b, cb.ID...)
	b = append(b, `","attempt":`...)
	b = strconv.AppendInt(b, int64(attempt), 10)
	if len(cb.Data) > 2 { // a non-empty object: splice its fields in
		b = append(b, ',')
		return append(b, cb.Data[1:]...)
	}
	return append(b, '}')
}

// goWork runs f in a goroutine stopAll waits for; once stopping, it runs
// nothing and returns false.
//
// The goroutine is an idle worker's if one is waiting, else a new one,
// which afterwards waits workerIdle for more work. A post runs deep in
// fasthttp; a fresh goroutine grows and copies its stack on every post
// (3% of the CPU with callbacks on), a reused one has grown already.
// Workers are not capped here: each endpoint caps its own posts, so one
// that hangs holds its workers only and never starves another's.
func (d *dispatcher) goWork(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return false
	}
	select {
	case d.jobs <- f:
		return true
	default:
	}
	d.work.Add(1)
	go d.worker(f)
	return true
}

// workerIdle is how long a worker waits for more work before it exits.
const workerIdle = 10 * time.Second

func (d *dispatcher) worker(f func()) {
	defer d.work.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-d.jobs:
		case <-idle.C:
			return
		case <-d.stop.Done():
			return
		}
	}
}

// post sends one request in a worker and reports to the actor: one
// callback as a JSON object, or, for a key that batches, the group as a
// JSON array (even a group of one, so the receiver sees one shape);
// done is the report to fill with the answer.
func (d *dispatcher) post(self *actor.PID, done *postDone) {
	first := &done.group[0].cb
	req := WebhookRequest{URL: first.URL}
	k, ok := d.e.cfg.Keys.Key(first.Key)
	if !ok {
		// No secret to sign with: the key was removed with callbacks still
		// queued, or, in a cluster, this node has not heard of a new key
		// yet. Nothing is sent; they wait for KeyGrace (keyUnknown).
		done.res = PostResult{Outcome: PostRetry, Err: errKeyUnknown}
		d.e.system.Root.Send(self, done)
		return
	}
	d.attempts.Add(1)
	secrets := k.WebhookSecrets(d.e.now())
	req.Secret = secrets[0]
	if len(secrets) > 1 {
		req.OldSecret = secrets[1]
	}
	if done.batch {
		req.Body = batchBody(done.group)
	} else {
		req.Body, req.EventID = body(first, done.group[0].attempts), first.ID
	}
	d.goWork(func() {
		done.res = d.cfg.Poster.Post(d.stop, req)
		d.e.system.Root.Send(self, done)
	})
}

// errKeyUnknown holds back the callbacks of a key this node does not know.
var errKeyUnknown = errors.New("the callback's key is not configured on this node")

// batchSize is the most callbacks of the key one request carries; 1 (or
// less) means one per request, as a JSON object.
func (d *dispatcher) batchSize(keyID string) int {
	if k, ok := d.e.cfg.Keys.Key(keyID); ok {
		return k.CallbackBatch
	}
	return 1
}

// finish removes a batch of finished callbacks from the store, retrying
// until it lands (or the engine stops: then they are sent again after the
// restart, which at-least-once allows), and tells each endpoint.
func (d *dispatcher) finish(jobs []finishJob) {
	done := make([]switchboard.FinishedCallback, len(jobs))
	for i, j := range jobs {
		done[i] = j.done
	}
	backoff := switchboard.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		err := d.e.store.FinishCallbacks(context.Background(), done)
		if err == nil {
			break
		}
		d.e.log.Error().Err(err).Int("callbacks", len(done)).Msg("removing finished callbacks from the store failed; retrying")
		select {
		case <-d.stop.Done():
			return
		case <-time.After(backoff.Next()):
		}
	}
	byActor := make(map[*actor.PID][]string)
	for _, j := range jobs {
		byActor[j.actor] = append(byActor[j.actor], j.done.Callback.ID)
	}
	for pid, ids := range byActor {
		d.e.system.Root.Send(pid, &finished{ids: ids})
	}
}

// stopAll ends delivery: no attempt starts any more, and removals of
// finished callbacks still queued are written. Attempts in flight are
// waited for until ctx ends (an HTTP request cannot be cut short once
// sent; one still running then reports to a stopped actor); their
// callbacks stay in the store and are sent again after a restart.
func (d *dispatcher) stopAll(ctx context.Context) {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.cancel()
	done := make(chan struct{})
	go func() { d.work.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		d.e.log.Warn().Msg("callback requests still in flight at the shutdown deadline; they are sent again after a restart")
	}
	d.finisher.stop()
}

func (d *dispatcher) stats() WebhookStats {
	d.mu.Lock()
	n := len(d.endpoints)
	d.mu.Unlock()
	return WebhookStats{Attempts: d.attempts.Load(), Delivered: d.delivered.Load(), GaveUp: d.gaveUp.Load(),
		Retried: d.retried.Load(), Endpoints: n}
}

// loadSecrets gives every key of the ring without a webhook secret the
// one generated for it once and kept in the store (FillWebhookSecrets).
func (d *dispatcher) loadSecrets(ctx context.Context) error {
	ring := d.e.cfg.Keys
	var missing []*switchboard.Key
	for _, k := range ring.All() {
		if k.WebhookSecret == "" {
			c := *k
			missing = append(missing, &c)
		}
	}
	if err := d.e.FillWebhookSecrets(ctx, missing); err != nil {
		return err
	}
	for _, k := range missing {
		ring.Put(k)
	}
	return nil
}

// FillWebhookSecrets sets the webhook secret of each key that has none:
// the one generated for its id once and kept in the store, so signatures
// stay verifiable across restarts and nodes. Keys are changed in place:
// fill them before they go into the key ring.
func (e *Engine) FillWebhookSecrets(ctx context.Context, keys []*switchboard.Key) error {
	for _, k := range keys {
		if k.WebhookSecret != "" {
			continue
		}
		var raw [24]byte
		_, _ = cryptorand.Read(raw[:])
		secret, err := e.store.InitSetting(ctx, "webhook_secret/"+k.ID, "whsec_"+base64.RawURLEncoding.EncodeToString(raw[:]))
		if err != nil {
			return fmt.Errorf("key %s: %w", k.ID, err)
		}
		k.WebhookSecret = secret
	}
	return nil
}
