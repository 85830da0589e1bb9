package harness

import (
	"context"
	"sync"
	"time"
)

// scheduler is the open loop: request i gets an intended send time from
// the arrival rate alone, whatever the gateway does, and is handed to one
// of inflight workers, which sleeps until that time and sends it. When
// every worker is busy, requests wait in a queue and keep their intended
// time, so the wait shows in their latency (measured from that time): a
// stall cannot hide as a slower offered rate (no coordinated omission).
// A request more than timeout late is given up unsent (expired), which
// keeps a run bounded when the gateway cannot keep up.
type scheduler struct {
	start, end time.Time
	// rate is the offered rate, in messages per second, at an offset from
	// start; each request carries per messages.
	rate     func(elapsed time.Duration) float64
	per      int
	inflight int
	timeout  time.Duration
}

// lookahead is how early the generator hands a request out: workers sleep
// the rest of the way, so their wake-up jitter, not the generator's,
// decides the send time.
const lookahead = time.Millisecond

// run issues requests from start to end (or until ctx ends): offer is
// called as each is scheduled, send by worker w at (or after) its intended
// time, expire instead of send when it is too late. It returns when every
// worker is done.
func (s *scheduler) run(ctx context.Context, offer func(intended time.Time), send func(w int, intended time.Time), expire func(intended time.Time)) {
	jobs := make(chan time.Time, 1<<16)
	var workers sync.WaitGroup
	for w := range s.inflight {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for t := range jobs {
				late := time.Since(t)
				if late > s.timeout {
					expire(t)
					continue
				}
				if late < 0 {
					time.Sleep(-late)
				}
				send(w, t)
			}
		}()
	}
	s.generate(ctx, jobs, offer)
	close(jobs)
	workers.Wait()
}

// generate feeds jobs with intended times until end or ctx ends.
func (s *scheduler) generate(ctx context.Context, jobs chan<- time.Time, offer func(time.Time)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	t := s.start
	for t.Before(s.end) {
		r := s.rate(t.Sub(s.start))
		if r <= 0 {
			// A pause in the profile: nothing is offered; look again in a
			// millisecond.
			t = t.Add(time.Millisecond)
			continue
		}
		if d := time.Until(t); d > lookahead {
			timer.Reset(d - lookahead/2)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		offer(t)
		select {
		case jobs <- t:
		case <-ctx.Done():
			return
		}
		t = t.Add(time.Duration(float64(s.per) * float64(time.Second) / r))
	}
}

// rateProfile is the offered rate over a run: base, times factor during
// the burst [burstAt, burstAt+burstFor) (offsets from the load's start).
type rateProfile struct {
	base              float64
	factor            float64
	burstAt, burstFor time.Duration
}

func (p rateProfile) at(el time.Duration) float64 {
	if p.factor > 0 && p.burstFor > 0 && el >= p.burstAt && el < p.burstAt+p.burstFor {
		return p.base * p.factor
	}
	return p.base
}
