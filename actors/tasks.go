package actors

import "sync"

// tasks counts goroutines in progress so that Stop can wait for them. It
// is a sync.WaitGroup without WaitGroup's rule that an Add from zero must
// not overlap a Wait: here work can start at any time, as a correlator's
// timer may fire while the engine stops, and wait returns once none is in
// progress. Work started after wait returned is not waited for; it gets
// the engine's ended context.
type tasks struct {
	mu   sync.Mutex
	n    int
	idle *sync.Cond // broadcast when n drops to 0
}

func newTasks() *tasks {
	t := &tasks{}
	t.idle = sync.NewCond(&t.mu)
	return t
}

func (t *tasks) start() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tasks) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		t.idle.Broadcast()
	}
	t.mu.Unlock()
}

// wait returns once no task is in progress.
func (t *tasks) wait() {
	t.mu.Lock()
	for t.n > 0 {
		t.idle.Wait()
	}
	t.mu.Unlock()
}
