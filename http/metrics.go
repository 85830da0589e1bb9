package http

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
)

// Metrics are the node's Prometheus metrics, registered on a registry the
// caller owns (no global state): the engine's measurements (it implements
// actors.Metrics), the HTTP servers' request durations, gauges read from
// the engine at scrape time, and Go's runtime and process collectors.
// Every label comes from a bounded set: routes, status classes, carrier
// names, statuses, receipt states, store operations; never a message, a
// key or a phone number.
type Metrics struct {
	httpDuration   *prometheus.HistogramVec
	submitDuration *prometheus.HistogramVec
	storeDuration  *prometheus.HistogramVec
	receipts       *prometheus.CounterVec
	messages       *prometheus.CounterVec
	// engine is read at scrape time; nil until Observe.
	engine atomic.Pointer[engineGauges]
}

// engineGauges is what the gauges are read from: the engine.
type engineGauges interface {
	Gauges() actors.Gauges
}

// Names of the metrics an operator's dashboards and alerts use; the deploy
// files name them too, and a test holds both to this list.
const (
	MetricQueueLag        = "switchboard_queue_lag_messages"
	MetricHTTPDuration    = "switchboard_http_request_duration_seconds"
	MetricSubmitDuration  = "switchboard_carrier_submit_duration_seconds"
	MetricReceipts        = "switchboard_receipts_total"
	MetricWebhookDelivery = "switchboard_webhook_deliveries_total"
	MetricWebhookBacklog  = "switchboard_webhook_backlog_events"
	MetricBinds           = "switchboard_binds"
	MetricMessages        = "switchboard_messages_total"
	MetricStoreDuration   = "switchboard_store_write_duration_seconds"
)

var (
	descQueueLag = prometheus.NewDesc(MetricQueueLag,
		"Messages accepted and not yet submitted, by the first carrier of their route; carrier=\"\" counts those waiting only in the store (beyond the key windows and the held budget). The total is sum().",
		[]string{"carrier"}, nil)
	descBacklog = prometheus.NewDesc(MetricWebhookBacklog,
		"Callbacks queued in the store and not yet delivered or given up on.", nil, nil)
	descDeliveries = prometheus.NewDesc(MetricWebhookDelivery,
		"Callbacks by the outcome of an attempt: delivered (2xx), retried (failed, will be tried again), given_up (max_age passed, 410 Gone, or a refused URL).",
		[]string{"result"}, nil)
	descAttempts = prometheus.NewDesc("switchboard_webhook_requests_total",
		"Callback requests made (a batch is one request).", nil, nil)
	descBinds = prometheus.NewDesc(MetricBinds,
		"SMPP binds by carrier and state: bound, down (connecting or reconnecting), suspended (by an operator).",
		[]string{"carrier", "state"}, nil)
	descHeld = prometheus.NewDesc("switchboard_held_messages",
		"Messages the key actors hold in memory (the held budget in use).", nil, nil)
	descHeldMax = prometheus.NewDesc("switchboard_held_messages_limit",
		"The held budget: the most messages all key actors hold in memory together.", nil, nil)
	descPaged = prometheus.NewDesc("switchboard_paged_keys",
		"Keys waiting in line for the held budget: their messages wait in the store until it has room.", nil, nil)
	descSending = prometheus.NewDesc("switchboard_sending_submits",
		"Submits handed to the binds and not yet answered (the sending budget in use).", nil, nil)
	descSendingMax = prometheus.NewDesc("switchboard_sending_submits_limit",
		"The sending budget: the most submits at the binds together.", nil, nil)
	descKeyActors = prometheus.NewDesc("switchboard_key_actors",
		"Key actors running.", nil, nil)
)

// NewMetrics makes the metrics and registers them, with Go's runtime and
// process collectors, on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricHTTPDuration,
			Help:    "HTTP requests by route (its pattern), method and status class (2xx, 4xx, 5xx), from the request read to the response written.",
			Buckets: latency}, []string{"route", "method", "status"}),
		submitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricSubmitDuration,
			Help:    "From a submit_sm part written to a carrier's bind to its response (submit_sm_resp or generic_nack), by carrier.",
			Buckets: append(latency[1:len(latency):len(latency)], 30)}, []string{"carrier"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricStoreDuration,
			Help:    "Durable store writes by operation (accept, record, finish_callbacks, accept_inbound), fsync included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"op"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricReceipts,
			Help: "Delivery receipts by carrier and state: a final status, intermediate, or unmatched (no message had its carrier id yet)."},
			[]string{"carrier", "state"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricMessages,
			Help: "Messages that reached a final status, by status."}, []string{"status"}),
	}
	for _, c := range []prometheus.Collector{m.httpDuration, m.submitDuration, m.storeDuration, m.receipts,
		m.messages, gaugeCollector{m}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Final statuses appear at 0, so rates and ratios have both sides.
	for _, s := range []switchboard.Status{switchboard.StatusDelivered, switchboard.StatusUndeliverable,
		switchboard.StatusExpired, switchboard.StatusRejected, switchboard.StatusFailed, switchboard.StatusUnknown,
		switchboard.StatusCanceled} {
		m.messages.WithLabelValues(string(s))
	}
	return m, nil
}

// Observe makes the gauges read from the engine.
func (m *Metrics) Observe(e engineGauges) { m.engine.Store(&e) }

// CarrierSubmit implements actors.Metrics.
func (m *Metrics) CarrierSubmit(carrier string, d time.Duration) {
	m.submitDuration.WithLabelValues(carrier).Observe(d.Seconds())
}

// Receipt implements actors.Metrics.
func (m *Metrics) Receipt(carrier, state string) { m.receipts.WithLabelValues(carrier, state).Inc() }

// MessageFinal implements actors.Metrics.
func (m *Metrics) MessageFinal(s switchboard.Status) { m.messages.WithLabelValues(string(s)).Inc() }

// StoreWrite implements actors.Metrics.
func (m *Metrics) StoreWrite(op string, d time.Duration) {
	m.storeDuration.WithLabelValues(op).Observe(d.Seconds())
}

// observeUnread records a request fasthttp refused before the handler
// ran (a body or headers too large, a read timeout), under route
// "unknown" (its path was not read, or not trusted) and with no duration:
// fasthttp stamps a request's time only once it is read.
func (m *Metrics) observeUnread(ctx *fasthttp.RequestCtx) {
	var none *route
	m.observeRequest(none.name(), none.methodOf(ctx), ctx.Response.StatusCode(), 0)
}

// observeRequest records one HTTP request.
func (m *Metrics) observeRequest(route, method string, status int, d time.Duration) {
	m.httpDuration.WithLabelValues(route, method, statusClass(status)).Observe(d.Seconds())
}

func statusClass(status int) string {
	switch {
	case status >= 200 && status < 600:
		return strconv.Itoa(status/100) + "xx"
	}
	return "other"
}

// gaugeCollector reads the engine's gauges at scrape time.
type gaugeCollector struct{ m *Metrics }

func (g gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueLag, descBacklog, descDeliveries, descAttempts, descBinds,
		descHeld, descHeldMax, descPaged, descSending, descSendingMax, descKeyActors} {
		ch <- d
	}
}

func (g gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	e := g.m.engine.Load()
	if e == nil {
		return
	}
	s := (*e).Gauges()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for c, n := range s.QueueLag {
		gauge(descQueueLag, float64(n), c)
	}
	gauge(descBacklog, float64(s.WebhookBacklog))
	counter(descDeliveries, s.Webhooks.Delivered, "delivered")
	counter(descDeliveries, s.Webhooks.Retried, "retried")
	counter(descDeliveries, s.Webhooks.GaveUp, "given_up")
	counter(descAttempts, s.Webhooks.Attempts)
	binds := map[[2]string]int{}
	for _, b := range s.Binds {
		for _, st := range []string{actors.BindBound, actors.BindDown, actors.BindSuspended} {
			binds[[2]string{b.Carrier, st}] += 0
		}
		state := b.State
		if state == actors.BindStopped {
			state = actors.BindDown
		}
		binds[[2]string{b.Carrier, state}]++
	}
	for k, n := range binds {
		gauge(descBinds, float64(n), k[0], k[1])
	}
	gauge(descHeld, float64(s.Held))
	gauge(descHeldMax, float64(s.MaxHeld))
	gauge(descPaged, float64(s.KeysWaiting))
	gauge(descSending, float64(s.Sending))
	gauge(descSendingMax, float64(s.MaxSending))
	gauge(descKeyActors, float64(s.KeyActors))
}

// keyNumbers samples the four numbers an operator watches, once a second,
// for the status page: queue lag, API p99, carrier p99 and webhook success
// rate, each over the last few seconds.
type keyNumbers struct {
	m      *Metrics
	engine engineGauges

	mu     sync.Mutex
	points []keyPoint // oldest first, at most keyHistory
	// Cumulative readings of earlier samples, oldest first, for deltas
	// over keyWindow samples.
	readings []reading
}

// keyPoint is one sample. NaN means "no traffic in the window".
type keyPoint struct {
	At             time.Time
	QueueLag       int64
	APIP99         float64 // seconds
	CarrierP99     float64 // seconds
	WebhookSuccess float64 // 0..1
	Requests       float64 // API requests per second
	Submits        float64 // carrier submits per second
}

type reading struct {
	api, carrier      buckets
	delivered, failed int64 // webhook callbacks delivered; retried or given up
}

// buckets is a histogram's cumulative counts by upper bound, summed over
// its label sets.
type buckets struct {
	bounds []float64
	counts []uint64
	total  uint64
}

const (
	keyHistory = 120 // points kept: two minutes
	keyWindow  = 5   // seconds each point covers
)

func (k *keyNumbers) sample(now time.Time) {
	g := k.engine.Gauges()
	r := reading{
		api:       readHistogram(k.m.httpDuration, func(l map[string]string) bool { return isMessagesRoute(l["route"]) }),
		carrier:   readHistogram(k.m.submitDuration, nil),
		delivered: g.Webhooks.Delivered,
		failed:    g.Webhooks.Retried + g.Webhooks.GaveUp,
	}
	var lag int64
	for _, n := range g.QueueLag {
		lag += n
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	p := keyPoint{At: now, QueueLag: lag, APIP99: math.NaN(), CarrierP99: math.NaN(), WebhookSuccess: math.NaN(),
		Requests: math.NaN(), Submits: math.NaN()}
	if n := len(k.readings); n > 0 {
		old := k.readings[max(n-keyWindow, 0)]
		secs := float64(min(n, keyWindow))
		api, carrier := r.api.minus(old.api), r.carrier.minus(old.carrier)
		p.APIP99, p.CarrierP99 = api.quantile(0.99), carrier.quantile(0.99)
		p.Requests, p.Submits = float64(api.total)/secs, float64(carrier.total)/secs
		if d, f := r.delivered-old.delivered, r.failed-old.failed; d+f > 0 {
			p.WebhookSuccess = float64(d) / float64(d+f)
		}
	}
	k.readings = append(k.readings, r)
	if len(k.readings) > keyWindow {
		k.readings = k.readings[1:]
	}
	k.points = append(k.points, p)
	if len(k.points) > keyHistory {
		k.points = k.points[1:]
	}
}

func (k *keyNumbers) history() []keyPoint {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]keyPoint(nil), k.points...)
}

// readHistogram sums the buckets of a histogram's label sets that keep
// selects (nil: all).
func readHistogram(h *prometheus.HistogramVec, keep func(map[string]string) bool) buckets {
	ch := make(chan prometheus.Metric, 64)
	go func() { h.Collect(ch); close(ch) }()
	var b buckets
	for metric := range ch {
		var pb dto.Metric
		if metric.Write(&pb) != nil || pb.Histogram == nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range pb.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if keep != nil && !keep(labels) {
			continue
		}
		bs := pb.Histogram.GetBucket()
		if b.bounds == nil {
			for _, x := range bs {
				b.bounds = append(b.bounds, x.GetUpperBound())
			}
			b.counts = make([]uint64, len(bs))
		}
		for i, x := range bs {
			if i < len(b.counts) {
				b.counts[i] += x.GetCumulativeCount()
			}
		}
		b.total += pb.Histogram.GetSampleCount()
	}
	return b
}

// minus returns the counts added since old.
func (b buckets) minus(old buckets) buckets {
	out := buckets{bounds: b.bounds, counts: make([]uint64, len(b.counts)), total: b.total - old.total}
	for i := range b.counts {
		out.counts[i] = b.counts[i]
		if i < len(old.counts) {
			out.counts[i] -= old.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile the way Prometheus's
// histogram_quantile does: linear within the bucket it falls in; NaN with
// no observations, the highest bound if it falls beyond it.
func (b buckets) quantile(q float64) float64 {
	if b.total == 0 || len(b.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(b.total)
	i := sort.Search(len(b.counts), func(i int) bool { return float64(b.counts[i]) >= rank })
	if i == len(b.counts) {
		return b.bounds[len(b.bounds)-1]
	}
	lower, below := 0.0, uint64(0)
	if i > 0 {
		lower, below = b.bounds[i-1], b.counts[i-1]
	}
	in := b.counts[i] - below
	if in == 0 {
		return b.bounds[i]
	}
	return lower + (b.bounds[i]-lower)*(rank-float64(below))/float64(in)
}
