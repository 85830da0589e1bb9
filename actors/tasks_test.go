package actors

import (
	"sync"
	"testing"
)

// wait returns only once the work in progress is done.
func TestTasksWaitForWorkInProgress(t *testing.T) {
	ts := newTasks()
	ts.start()
	waited := make(chan struct{})
	go func() { ts.wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("wait returned with a task in progress")
	default:
	}
	ts.done()
	<-waited
	ts.wait() // none in progress: at once
}

// Work may start from zero while another goroutine waits (a correlator's
// timer firing as the engine stops): with a sync.WaitGroup the race
// detector reports that, here it is allowed.
func TestTasksStartDuringWait(t *testing.T) {
	ts := newTasks()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				ts.start()
				ts.done()
			}
		}()
	}
	for range 200 {
		ts.wait()
	}
	wg.Wait()
	ts.wait()
}
