package actors

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Every job added from many goroutines is written exactly once, in
// batches of at most maxBatch.
func TestBatcherWritesEveryJobOnce(t *testing.T) {
	var mu sync.Mutex
	var got []int
	b := newBatcher(3, 7, 50, func(batch []int) {
		if len(batch) == 0 || len(batch) > 7 {
			t.Errorf("batch of %d", len(batch))
		}
		mu.Lock()
		got = append(got, batch...)
		mu.Unlock()
	})
	b.start()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				if !b.add(g*1000 + i) {
					t.Errorf("add refused before stop")
				}
			}
		}()
	}
	wg.Wait()
	b.stop()
	slices.Sort(got)
	if len(got) != 8000 {
		t.Fatalf("wrote %d jobs, want 8000", len(got))
	}
	for i, j := range got {
		if i != j {
			t.Fatalf("job %d missing or repeated (found %d)", i, j)
		}
	}
}

// A full queue makes add wait; the add goes through once a worker takes
// jobs, and stop still writes it. Adds after stop are refused.
func TestBatcherBackPressureAndStop(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var written []int
	b := newBatcher(1, 4, 3, func(batch []int) {
		<-release
		mu.Lock()
		written = append(written, batch...)
		mu.Unlock()
	})
	b.start()
	b.add(0)
	waitUntil(t, "the worker to take job 0", 5*time.Second, func() bool { return b.queued() == 0 })
	for i := 1; i <= 3; i++ { // the worker is stuck in write: these fill the queue
		b.add(i)
	}
	added := make(chan bool)
	go func() { added <- b.add(4) }()
	waitUntil(t, "the fifth add to wait for room", 5*time.Second, func() bool { return b.waitingAdds() == 1 })
	stopped := make(chan struct{})
	go func() { b.stop(); close(stopped) }()
	close(release) // the worker goes on: room for job 4
	if !<-added {
		t.Fatal("the add that waited for room was refused")
	}
	<-stopped
	if b.add(5) {
		t.Fatal("add after stop was accepted")
	}
	slices.Sort(written)
	if !slices.Equal(written, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("written %v, want 0..4", written)
	}
}

// After a burst drains, the queue's array is let go.
func TestBatcherReleasesBurstMemory(t *testing.T) {
	release := make(chan struct{})
	b := newBatcher(1, 4, 1000, func([]int) { <-release })
	b.start()
	defer b.stop()
	b.add(-1)
	waitUntil(t, "the worker to take the first job", 5*time.Second, func() bool { return b.queued() == 0 })
	for i := range 500 {
		b.add(i)
	}
	close(release)
	waitUntil(t, "the burst to drain", 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.queue) == 0 && cap(b.queue) == 0
	})
}

func (b *batcher[J]) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue) - b.head
}

func (b *batcher[J]) waitingAdds() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adding
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}
