package smsc

import (
	"container/heap"
	"sync"
	"time"

	"github.com/linxGnu/gosmpp/pdu"
)

// timed is something the scheduler does at a given time: deliver a receipt
// or inbound part (job), or send a submit_sm_resp held back by the Latency
// fault (resp on sess, then schedule its receipt, job, if any).
type timed struct {
	at   time.Time
	n    uint64 // tie-break: equal times fire in the order they were added
	job  *delivery
	resp pdu.PDU
	sess *session
}

// timedHeap is a min-heap of timed by (at, n).
type timedHeap []timed

func (h timedHeap) Len() int { return len(h) }
func (h timedHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].n < h[j].n
	}
	return h[i].at.Before(h[j].at)
}
func (h timedHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timedHeap) Push(x any)   { *h = append(*h, x.(timed)) }
func (h *timedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = timed{} // let the job and session be collected
	*h = old[:len(old)-1]
	return it
}

// scheduler runs timed items on one goroutine. One per server, instead of a
// timer per receipt, because a benchmark schedules hundreds of thousands.
type scheduler struct {
	fire func(timed)

	mu      sync.Mutex
	h       timedHeap
	n       uint64
	stopped bool
	wake    chan struct{}
	stop    chan struct{}
}

func newScheduler(fire func(timed)) *scheduler {
	return &scheduler{fire: fire, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// add queues it; it reports false once the scheduler has stopped, in which
// case it will never fire.
func (q *scheduler) add(it timed) bool {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return false
	}
	it.n = q.n
	q.n++
	heap.Push(&q.h, it)
	first := q.h[0].n == it.n
	q.mu.Unlock()
	if first {
		// The new item is due before whatever the timer waits for.
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// run fires items as they fall due until shutdown is called.
func (q *scheduler) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []timed
	for {
		var next time.Time
		due, next = q.popDue(due[:0], time.Now())
		for i := range due {
			q.fire(due[i])
			due[i] = timed{}
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// popDue moves the items due at now into due and returns the time of the
// next one (zero if none).
func (q *scheduler) popDue(due []timed, now time.Time) ([]timed, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.h) > 0 && !q.h[0].at.After(now) {
		due = append(due, heap.Pop(&q.h).(timed))
	}
	if len(q.h) == 0 {
		return due, time.Time{}
	}
	return due, q.h[0].at
}

// shutdown stops run and returns the items that will now never fire, so
// the caller can account for them.
func (q *scheduler) shutdown() []timed {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return nil
	}
	q.stopped = true
	close(q.stop)
	h := q.h
	q.h = nil
	return h
}
