package actors

import (
	"sync"

	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// intake is how submits reach a bind: straight into its queue, not through
// the bind actor's mailbox, whose messages protoactor drops when it stops
// the actor (a carrier suspended, a bind moved to another node). A bind
// that stops closes its intake before it fails back what is queued, so a
// submit either gets into the queue, whose every job the stopping bind
// answers, or is answered at once with ErrClosed: its outcome is always
// reported.
type intake struct {
	mu     sync.Mutex
	closed bool
	queue  chan *submitJob
}

func newIntake() *intake { return &intake{queue: make(chan *submitJob, bindQueue)} }

// submit queues job, or answers it at once if the bind is stopping
// (ErrClosed) or its queue is full (errBindBusy).
func (in *intake) submit(job *submitJob) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		job.done(smpp.Result{}, smpp.ErrClosed)
		return
	}
	select {
	case in.queue <- job:
		in.mu.Unlock()
	default:
		in.mu.Unlock()
		job.done(smpp.Result{}, errBindBusy)
	}
}

// close refuses every later submit; what is queued stays for the bind to
// answer.
func (in *intake) close() {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
}

// bindRef is a bind a submit can go to: one of this node's (in), or, in a
// cluster, one another node runs (remote: that node's address).
type bindRef struct {
	in     *intake
	remote string
	index  int
}
