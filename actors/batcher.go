package actors

import "sync"

// batcher runs jobs in batches on a few workers: each worker takes what is
// queued (up to maxBatch) and hands it to write in one call, so many small
// store writes share one commit. Status transitions and finished callbacks
// both go through one.
type batcher[J any] struct {
	jobs     chan J
	write    func([]J)
	workers  int
	maxBatch int
	wg       sync.WaitGroup
	// mu guards closing jobs: add holds it shared, stop exclusively, so a
	// late add fails instead of panicking on a closed channel.
	mu     sync.RWMutex
	closed bool
}

func newBatcher[J any](workers, maxBatch, queue int, write func([]J)) *batcher[J] {
	return &batcher[J]{jobs: make(chan J, queue), write: write, workers: workers, maxBatch: maxBatch}
}

func (b *batcher[J]) start() {
	for range b.workers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.work()
		}()
	}
}

// stop lets the workers finish what is queued, then returns.
func (b *batcher[J]) stop() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.jobs)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// add queues a job; it reports false, queueing nothing, after stop.
func (b *batcher[J]) add(j J) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false
	}
	b.jobs <- j
	return true
}

func (b *batcher[J]) work() {
	batch := make([]J, 0, b.maxBatch)
	for job := range b.jobs {
		batch = append(batch[:0], job)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case j, ok := <-b.jobs:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		b.write(batch)
		clear(batch) // let the jobs' memory go while the worker waits
	}
}
