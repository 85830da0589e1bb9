package harness

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// sample is one second of the timeline. Counts are of that second;
// latencies are of the requests answered (accept) and the final callbacks
// received (e2e) in it.
type sample struct {
	T         float64 `json:"t"` // seconds from the load's start to the end of this second
	Phase     string  `json:"phase"`
	Rate      float64 `json:"target_rate,omitempty"` // the profile's offered rate, messages/s
	Offered   int64   `json:"offered"`               // messages scheduled
	Accepted  int64   `json:"accepted"`              // messages accepted
	S2xx      int64   `json:"status_2xx"`            // requests
	S4xx      int64   `json:"status_4xx"`
	S5xx      int64   `json:"status_5xx"`
	Other     int64   `json:"status_other,omitempty"`
	Transport int64   `json:"transport_errors"`
	Expired   int64   `json:"never_sent"`
	InFlight  int64   `json:"in_flight"`
	Delivered int64   `json:"delivered"` // final callbacks matched to accepted messages
	Waiting   int64   `json:"waiting"`   // accepted, no final callback yet
	Receipts  int64   `json:"engine_receipts,omitempty"`

	Accept percentiles `json:"accept_latency"`
	E2E    percentiles `json:"e2e_latency"`

	RSSMB      float64 `json:"rss_mb,omitempty"`
	CPU        float64 `json:"cpu_cores,omitempty"`
	MachineCPU float64 `json:"machine_cpu_cores,omitempty"`
}

// summary is the end of a load run: the printed table and the JSON's
// "summary".
type summary struct {
	Label       string           `json:"label,omitempty"`
	Storage     string           `json:"storage,omitempty"` // the gateway's storage (--storage)
	Mode        string           `json:"mode"`              // open | closed
	Rate        float64          `json:"rate,omitempty"`
	WindowS     float64          `json:"window_s"`
	Offered     int64            `json:"offered"`
	OfferedPS   float64          `json:"offered_per_s"`
	Accepted    int64            `json:"accepted"`
	AcceptedPS  float64          `json:"accepted_per_s"`
	ServedPS    float64          `json:"served_per_s"` // accepted by answers during the window
	Behind      bool             `json:"behind"`
	Rejected    int64            `json:"rejected"`
	Status      map[string]int64 `json:"status"`
	Transport   int64            `json:"transport_errors"`
	NeverSent   int64            `json:"never_sent"`
	Accept      percentiles      `json:"accept_latency"`
	AcceptWhat  string           `json:"accept_latency_from"`
	E2E         *percentiles     `json:"e2e_latency,omitempty"`
	DeliveredPS float64          `json:"delivered_per_s"` // final callbacks during the window, per second
	Finals      map[string]int64 `json:"final_statuses,omitempty"`
	Callbacks   bool             `json:"callbacks"` // lost is from final callbacks (else engine receipts, or not measured)
	Measured    bool             `json:"lost_measured"`
	Drained     bool             `json:"drained"`
	DrainS      float64          `json:"drain_s"`
	Lost        int              `json:"lost"`
	Duplicates  int              `json:"duplicates"`
	Unmatched   int              `json:"unmatched_finals"`
	Intermed    int64            `json:"intermediate_callbacks"`
	OutOfOrder  int              `json:"out_of_order"`
	// Undelivered says why --expect-delivered failed the run.
	Undelivered string `json:"undelivered,omitempty"`

	WholeSent     int64 `json:"whole_run_requests"`
	WholeAccepted int64 `json:"whole_run_accepted"`
	Receipts      int64 `json:"engine_receipts,omitempty"`
	Parts         int64 `json:"accepted_parts,omitempty"`
	Submits       int64 `json:"simulator_submits,omitempty"`
	// CarrierDuplicates is how many more submit_sm the simulator took
	// than accepted parts, when the simulator runs in this process.
	CarrierDuplicates int64 `json:"carrier_duplicates"`

	GatewayCPU float64 `json:"gateway_cpu_cores"`
	MachineCPU float64 `json:"machine_cpu_cores"`
	CPUWho     string  `json:"cpu_includes,omitempty"`
	// CPUPerMsg is the measured process's CPU time in the window divided
	// by the messages delivered in it (final callbacks; engine receipts
	// without a sink; accepted when neither is measured), in µs; PerWhat
	// names the divisor.
	CPUPerMsg float64 `json:"cpu_us_per_msg"`
	PerWhat   string  `json:"cpu_per"`
	RSSMB     float64 `json:"rss_mb_end"`
	PeakRSSMB float64 `json:"rss_mb_peak"`

	// DB is what the database did (--storage scylla).
	DB *dbFigures `json:"database,omitempty"`

	OK bool `json:"ok"`
}

// sinkCounts are what the sink says about duplicates and order.
type sinkCounts struct{ duplicates, outOfOrder int }

func (r *loadResult) summarize(sc sinkCounts) summary {
	o, c := r.opts, r.c
	win := o.duration.Seconds()
	s := summary{Label: o.label, Mode: "closed", WindowS: win,
		Offered: c.wOffered.Load(), Accepted: c.wAccepted.Load(), Rejected: c.wRejected.Load(),
		Status: statusMap(&c.wStatus), Transport: c.wTransport.Load(), NeverSent: c.wExpired.Load(),
		Accept: percentilesOf(r.accept), AcceptWhat: "send (closed loop)",
		WholeSent: c.sent.Load(), WholeAccepted: c.accepted.Load(), Parts: c.acceptedParts.Load(),
		Receipts: r.receipts, Submits: r.submits, CPUWho: o.gwWho, RSSMB: r.rssEnd, PeakRSSMB: r.hwm,
		Drained: r.drained, DrainS: r.drainTime.Seconds(), Lost: r.lost, OK: true}
	if o.profile.base > 0 {
		s.Mode, s.Rate, s.AcceptWhat = "open", o.profile.base, "intended send time"
	}
	s.OfferedPS, s.AcceptedPS = float64(s.Offered)/win, float64(s.Accepted)/win
	s.ServedPS = float64(c.dAccepted.Load()) / win
	s.Behind = o.profile.base > 0 && s.Offered > 0 && float64(c.dAccepted.Load()) < 0.98*float64(s.Offered)
	if r.end.usage.at.After(r.begin.usage.at) && o.gw != "" {
		s.GatewayCPU, s.MachineCPU = r.begin.usage.since(r.end.usage)
	}
	switch {
	case o.tracker != nil:
		e := percentilesOf(r.e2e)
		s.E2E = &e
		s.Callbacks, s.Measured = true, true
		s.DeliveredPS = float64(r.end.finals-r.begin.finals) / win
		s.Finals = o.tracker.statuses()
		s.Unmatched = o.tracker.unmatched()
		s.Intermed = o.tracker.intermediate.Load()
		s.Duplicates, s.OutOfOrder = sc.duplicates, sc.outOfOrder
	case o.node != nil:
		s.Measured = true
		s.DeliveredPS = float64(r.end.receipts-r.begin.receipts) / win
	}
	if s.Measured && s.Lost > 0 {
		s.OK = false
	}
	if o.db != nil && o.db.stats != nil {
		s.DB = &dbFigures{Keyspace: o.db.keyspace}
		s.DB.fill(r.dbBefore, r.dbAfter, c.accepted.Load())
		el := r.end.usage.at.Sub(r.begin.usage.at)
		if el > 0 {
			s.DB.DatabaseCPU = (r.end.db - r.begin.db).Seconds() / el.Seconds()
			s.DB.RedisCPU = (r.end.redis - r.begin.redis).Seconds() / el.Seconds()
		}
		s.DB.perMsgRate = s.AcceptedPS
	}
	if r.submits > 0 {
		s.CarrierDuplicates = max(r.submits-s.Parts, 0)
	}
	if o.noDuplicates && (s.Duplicates > 0 || s.CarrierDuplicates > 0) {
		s.OK = false
	}
	if o.expectDelivered {
		if s.Undelivered = undelivered(s); s.Undelivered != "" {
			s.OK = false
		}
	}
	s.CPUPerMsg, s.PerWhat = r.cpuPerMsg()
	return s
}

// cpuPerMsg is the measured process's CPU time in the window per message
// delivered in it, in µs, and what was counted: final callbacks, engine
// receipts (in process, no sink), else messages accepted by answers in
// the window. 0 when nothing was counted or no process is measured.
func (r *loadResult) cpuPerMsg() (float64, string) {
	o := r.opts
	if o.gw == "" || !r.end.usage.at.After(r.begin.usage.at) {
		return 0, ""
	}
	var n int64
	var what string
	switch {
	case o.tracker != nil:
		n, what = r.end.finals-r.begin.finals, "message delivered (final callback)"
	case o.node != nil:
		// The engine counts a receipt per part: a long message is several.
		n, what = r.end.receipts-r.begin.receipts, "part delivered (engine receipt)"
	default:
		n, what = r.c.dAccepted.Load(), "message accepted"
	}
	if n <= 0 {
		return 0, ""
	}
	cpu := r.end.usage.cpu - r.begin.usage.cpu
	return float64(cpu.Microseconds()) / float64(n), what
}

func (s summary) print(w io.Writer, o loadOpts) {
	fmt.Fprintln(w)
	title := "== summary =="
	if s.Label != "" {
		title = "== summary: " + s.Label + " =="
	}
	fmt.Fprintln(w, title)
	if s.Mode == "open" {
		fmt.Fprintf(w, "load: open loop, %.0f msg/s offered for %v after %v warmup; %d conns, %d in flight at most",
			s.Rate, o.duration, o.warmup, o.conns, o.inflight)
	} else {
		fmt.Fprintf(w, "load: closed loop (max), %d conns for %v after %v warmup", o.conns, o.duration, o.warmup)
	}
	if o.batch > 1 {
		fmt.Fprintf(w, "; batches of %d", o.batch)
	}
	if o.profile.factor > 0 && o.profile.burstFor > 0 {
		fmt.Fprintf(w, "; burst x%g for %v at %v", o.profile.factor, o.profile.burstFor, o.profile.burstAt-o.warmup)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "bodies: %s\n", o.gen.describe())
	rows := [][2]string{
		{"offered", fmt.Sprintf("%d msgs (%.0f/s)", s.Offered, s.OfferedPS)},
		{"accepted", fmt.Sprintf("%d msgs (%.0f/s); answered during the window %.0f/s%s", s.Accepted, s.AcceptedPS, s.ServedPS, behind(s))},
		{"status codes", fmt.Sprintf("%s  rejected msgs %d  transport errors %d  never sent (over %v late) %d",
			statusString(s.Status), s.Rejected, s.Transport, o.timeout, s.NeverSent)},
		{"accept latency", fmt.Sprintf("%s  (n=%d, from %s; a request not accepted counts as 10s)", s.Accept, s.Accept.N, s.AcceptWhat)},
	}
	switch {
	case s.E2E != nil:
		rows = append(rows,
			[2]string{"end to end", fmt.Sprintf("%s  (n=%d, 202 → final callback)", *s.E2E, s.E2E.N)},
			[2]string{"delivered", fmt.Sprintf("%.0f/s final callbacks during the window; statuses %s", s.DeliveredPS, statusString(s.Finals))},
		)
	case o.node != nil:
		rows = append(rows, [2]string{"delivered", fmt.Sprintf("%.0f receipts/s during the window (engine; no callbacks)", s.DeliveredPS)})
	default:
		rows = append(rows, [2]string{"delivered", "not measured (no sink: the gateway's callbacks do not reach this driver)"})
	}
	if s.Measured {
		drain := fmt.Sprintf("all accepted finished %.2fs after the load", s.DrainS)
		if !s.Drained {
			drain = fmt.Sprintf("NOT complete within --drain %v", o.drain)
		}
		rows = append(rows, [2]string{"drain", drain})
		lost := fmt.Sprintf("%d", s.Lost)
		if !s.Drained {
			lost += "  (no final status by the end of --drain: lost, or still queued behind --carrier-tps or an outage)"
		}
		if s.Callbacks {
			lost += fmt.Sprintf("  duplicates %d  unmatched finals %d  intermediate callbacks %d  out of order %d",
				s.Duplicates, s.Unmatched, s.Intermed, s.OutOfOrder)
		}
		rows = append(rows, [2]string{"lost", lost})
	}
	if o.node != nil {
		rows = append(rows, [2]string{"engine", fmt.Sprintf("%d receipts for %d accepted parts; simulator accepted %d submit_sm",
			s.Receipts, s.Parts, s.Submits)})
	} else if o.sim != nil {
		rows = append(rows, [2]string{"carrier", fmt.Sprintf("simulator accepted %d submit_sm for %d accepted parts (%d duplicates)",
			s.Submits, s.Parts, s.CarrierDuplicates)})
	}
	if o.gw != "" {
		rows = append(rows,
			[2]string{"cpu in window", fmt.Sprintf("%.2f cores (%s), machine %.2f of %d busy", s.GatewayCPU, s.CPUWho, s.MachineCPU, numCPU())},
			[2]string{"cpu per msg", cpuPerMsgString(s)},
			[2]string{"memory", fmt.Sprintf("RSS %.0f MB at end, peak (VmHWM) %.0f MB", s.RSSMB, s.PeakRSSMB)})
	}
	rows = append(rows, [2]string{"whole run", fmt.Sprintf("%d requests, %d msgs accepted", s.WholeSent, s.WholeAccepted)})
	for _, r := range rows {
		fmt.Fprintf(w, "%-15s %s\n", r[0], r[1])
	}
	if s.DB != nil {
		s.DB.print(w)
	}
	if s.Transport > 0 && s.Callbacks {
		fmt.Fprintf(w, "note: %d requests failed in transport; the gateway may have accepted some, which would read as unmatched finals\n", s.Transport)
	}
	switch {
	case s.OK:
	case s.Lost > 0:
		fmt.Fprintf(w, "FAIL: %d accepted messages got no final callback (or receipt) within --drain %v\n", s.Lost, o.drain)
	case s.Undelivered != "":
		fmt.Fprintf(w, "FAIL: not every message delivered (--expect-delivered): %s\n", s.Undelivered)
	default:
		fmt.Fprintf(w, "FAIL: duplicates (--no-duplicates): %d callbacks arrived twice, the carrier got %d submit_sm too many\n",
			s.Duplicates, s.CarrierDuplicates)
	}
}

// undelivered says what keeps s from being a run in which every request
// was accepted and every message delivered, once each; "" if nothing.
func undelivered(s summary) string {
	var why []string
	if s.Accepted == 0 {
		why = append(why, "nothing was accepted")
	}
	if s.Rejected+s.Transport+s.NeverSent > 0 {
		why = append(why, fmt.Sprintf("%d requests refused, %d failed in transport, %d never sent", s.Rejected, s.Transport, s.NeverSent))
	}
	if s.Unmatched > 0 {
		why = append(why, fmt.Sprintf("%d final callbacks matched no message sent, or came for one twice", s.Unmatched))
	}
	var ended []string
	for status, n := range s.Finals {
		if status != "delivered" && n > 0 {
			ended = append(ended, fmt.Sprintf("%d messages ended %s", n, status))
		}
	}
	sort.Strings(ended)
	return strings.Join(append(why, ended...), "; ")
}

// cpuPerMsgString is the summary's "cpu per msg" row.
func cpuPerMsgString(s summary) string {
	if s.PerWhat == "" {
		return "not measured (nothing delivered in the window)"
	}
	return fmt.Sprintf("%.1f µs of CPU per %s in the window (%s)", s.CPUPerMsg, s.PerWhat, s.CPUWho)
}

func behind(s summary) string {
	if s.Behind {
		return fmt.Sprintf("  BEHIND: %.0f%% of the offered rate was served in time; latencies show the backlog",
			100*s.ServedPS/max(s.OfferedPS, 1e-9))
	}
	return ""
}

func statusMap(s *[600]atomic.Int64) map[string]int64 {
	out := map[string]int64{}
	for code := range s {
		if n := s[code].Load(); n > 0 {
			k := strconv.Itoa(code)
			if code == 0 {
				k = "other"
			}
			out[k] = n
		}
	}
	return out
}

func statusString(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// report is the JSON written by --out.
type report struct {
	Time     time.Time         `json:"time"`
	Command  []string          `json:"command"`
	Source   string            `json:"source,omitempty"`
	Settings map[string]string `json:"settings"`
	Machine  machine           `json:"machine"`
	Target   string            `json:"target"`
	Timeline []sample          `json:"timeline"`
	Summary  *summary          `json:"summary,omitempty"`
	Ramp     *rampResult       `json:"ramp,omitempty"`
	// Runs are the loads of --storage A,B, one per storage.
	Runs []storageRun `json:"runs,omitempty"`
}

// storageRun is one storage's load in a --storage A,B run.
type storageRun struct {
	Storage  string   `json:"storage"`
	Summary  summary  `json:"summary"`
	Timeline []sample `json:"timeline"`
}

type machine struct {
	Host       string  `json:"host"`
	CPU        string  `json:"cpu"`
	NProc      int     `json:"nproc"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	MemoryMB   float64 `json:"memory_mb"`
	Go         string  `json:"go"`
	LoadAvg    string  `json:"load_average"`
}
