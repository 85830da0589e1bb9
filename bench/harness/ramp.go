package harness

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// The ramp: loads of increasing rate (--ramp-start, +--ramp-step each, up
// to --ramp-max), each --ramp-step-for long and drained before the next,
// on the same rig. It stops at the first step that is not sustainable —
// p99 accept latency above --ramp-p99, a message lost (no final callback
// within --drain), or the open loop falling behind (under 98 % of the
// offered rate answered in the window) — and reports the highest step
// that was.

type rampStep struct {
	Rate   float64 `json:"rate"`
	OK     bool    `json:"ok"`
	Reason string  `json:"reason,omitempty"`
	// LostMessages: messages had no final status by the end of --drain,
	// which fails the run (delivery broke, or, in the step beyond the
	// capacity, its backlog had not drained: a longer --drain tells).
	LostMessages bool    `json:"lost_messages,omitempty"`
	Summary      summary `json:"summary"`
}

type rampResult struct {
	P99Limit    float64    `json:"p99_limit_ms"`
	Steps       []rampStep `json:"steps"`
	Highest     float64    `json:"highest_sustainable_rate"` // 0: not even the first step
	HighestSeen float64    `json:"highest_sustainable_accepted_per_s"`
	Stopped     string     `json:"stopped"`
	timeline    []sample
}

func runRamp(ctx context.Context, o loadOpts, s settings, sc func() sinkCounts) *rampResult {
	rr := &rampResult{P99Limit: float64(s.rampP99.Microseconds()) / 1000}
	var offset float64
	dups := sc().duplicates
	o.seq = new(atomic.Int64) // one numbering for every step
	for rate, i := s.rampStart, 1; rate <= s.rampMax; rate, i = rate+s.rampStep, i+1 {
		so := o
		so.label = fmt.Sprintf("ramp step %d, %.0f msg/s", i, rate)
		so.profile = rateProfile{base: rate}
		so.duration = s.rampStepFor
		fmt.Fprintf(o.out, "\n== %s for %v (+%v warmup) ==\n", so.label, so.duration, so.warmup)
		res := runLoad(ctx, so)
		c := sc()
		c.duplicates -= dups
		dups += c.duplicates
		sum := res.summarize(c)
		for _, smp := range res.timeline {
			smp.T += offset
			rr.timeline = append(rr.timeline, smp)
		}
		if n := len(res.timeline); n > 0 {
			offset += res.timeline[n-1].T
		}
		st := rampStep{Rate: rate, OK: true, Summary: sum}
		// The first reason in this order is the step's; a loss is one
		// whatever came first, and fails the run.
		switch {
		case sum.Behind || sum.NeverSent > 0:
			st.OK, st.Reason = false, fmt.Sprintf("fell behind: %.0f/s answered of %.0f/s offered, %d never sent", sum.ServedPS, sum.OfferedPS, sum.NeverSent)
		case sum.Accepted < sum.Offered:
			st.OK, st.Reason = false, fmt.Sprintf("%d of %d messages not accepted (%s)", sum.Offered-sum.Accepted, sum.Offered, statusString(sum.Status))
		case sum.Accept.P99 > rr.P99Limit:
			st.OK, st.Reason = false, fmt.Sprintf("p99 accept %s > %s", fmtUS(int64(sum.Accept.P99*1000)), fmtDur(s.rampP99))
		}
		if sum.Measured && sum.Lost > 0 {
			lost := fmt.Sprintf("%d messages lost (no final callback within --drain %v)", sum.Lost, o.drain)
			if st.OK {
				st.Reason = lost
			} else {
				st.Reason += "; " + lost
			}
			st.OK, st.LostMessages = false, true
		}
		rr.Steps = append(rr.Steps, st)
		fmt.Fprintf(o.out, "ramp step %d: %.0f/s offered → %.0f/s accepted, accept p99 %s, delivered %.0f/s, lost %d: %s\n",
			i, sum.OfferedPS, sum.AcceptedPS, fmtUS(int64(sum.Accept.P99*1000)), sum.DeliveredPS, sum.Lost, okOr(st))
		if !st.OK {
			rr.Stopped = st.Reason
			break
		}
		rr.Highest, rr.HighestSeen = rate, sum.AcceptedPS
		if ctx.Err() != nil {
			rr.Stopped = "interrupted"
			break
		}
	}
	if rr.Stopped == "" {
		rr.Stopped = fmt.Sprintf("reached --ramp-max %.0f", s.rampMax)
	}
	return rr
}

func okOr(st rampStep) string {
	if st.OK {
		return "sustainable"
	}
	return "NOT sustainable: " + st.Reason
}

func (rr *rampResult) print(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "== ramp ==")
	fmt.Fprintf(w, "%-10s %-10s %-10s %-10s %-10s %-12s %-6s %-12s %s\n", "rate", "accepted/s", "p50", "p99", "max", "delivered/s", "lost", "cpu µs/msg", "")
	for _, st := range rr.Steps {
		s := st.Summary
		verdict := "ok"
		if !st.OK {
			verdict = st.Reason
		}
		fmt.Fprintf(w, "%-10.0f %-10.0f %-10s %-10s %-10s %-12.0f %-6d %-12.1f %s\n", st.Rate, s.AcceptedPS,
			fmtUS(int64(s.Accept.P50*1000)), fmtUS(int64(s.Accept.P99*1000)), fmtUS(int64(s.Accept.Max*1000)), s.DeliveredPS, s.Lost, s.CPUPerMsg, verdict)
	}
	if rr.Highest > 0 {
		fmt.Fprintf(w, "highest sustainable rate: %.0f msg/s (accepted %.0f/s; p99 accept <= %s, nothing lost); stopped: %s\n",
			rr.Highest, rr.HighestSeen, fmtDur(time.Duration(rr.P99Limit*float64(time.Millisecond))), rr.Stopped)
	} else {
		fmt.Fprintf(w, "highest sustainable rate: none (the first step was not sustainable: %s)\n", rr.Stopped)
	}
}
