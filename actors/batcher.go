package actors

import "sync"

// batcher runs jobs in batches on a few workers: each worker takes what is
// queued (up to maxBatch) and hands it to write in one call, so many small
// store writes share one commit. Status transitions and finished callbacks
// both go through one.
//
// The queue is a slice that grows as jobs arrive, up to limit (then add
// waits: back-pressure), and lets go of a large array once drained. A
// buffered channel of the same bound would hold its whole capacity from
// the start: 10-20 MB for each batcher, idle or not.
type batcher[J any] struct {
	write    func([]J)
	workers  int
	maxBatch int
	limit    int
	wg       sync.WaitGroup

	mu       sync.Mutex
	notEmpty sync.Cond // a job was queued, or stop
	notFull  sync.Cond // jobs were taken
	queue    []J
	head     int  // queue[head:] is waiting
	adding   int  // adds waiting for room; workers outlive them
	closed   bool // stop was called: adds that start now fail
}

func newBatcher[J any](workers, maxBatch, limit int, write func([]J)) *batcher[J] {
	b := &batcher[J]{write: write, workers: workers, maxBatch: maxBatch, limit: limit}
	b.notEmpty.L, b.notFull.L = &b.mu, &b.mu
	return b
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

// stop lets the workers finish what is queued (and what adds already
// waiting for room bring), then returns.
func (b *batcher[J]) stop() {
	b.mu.Lock()
	b.closed = true
	b.notEmpty.Broadcast()
	b.mu.Unlock()
	b.wg.Wait()
}

// add queues a job, waiting while the queue is full; it reports false,
// queueing nothing, if stop was called before it.
func (b *batcher[J]) add(j J) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.adding++
	for len(b.queue)-b.head >= b.limit {
		b.notFull.Wait()
	}
	b.adding--
	b.queue = append(b.queue, j)
	b.notEmpty.Signal()
	return true
}

// take moves up to maxBatch queued jobs into batch; false once stopped
// with nothing left to take or to wait for.
func (b *batcher[J]) take(batch []J) ([]J, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) == b.head && !(b.closed && b.adding == 0) {
		b.notEmpty.Wait()
	}
	if len(b.queue) == b.head {
		b.notEmpty.Broadcast() // the other workers exit too
		return batch, false
	}
	n := min(len(b.queue)-b.head, b.maxBatch)
	batch = append(batch[:0], b.queue[b.head:b.head+n]...)
	clear(b.queue[b.head : b.head+n])
	b.head += n
	switch {
	case b.head == len(b.queue) && cap(b.queue) > 4*b.maxBatch:
		b.queue, b.head = nil, 0 // drained after a burst: let the array go
	case b.head >= len(b.queue)-b.head:
		// At least half is taken: move the rest to the front, so a queue
		// that never quite drains does not grow its array for ever.
		rest := copy(b.queue, b.queue[b.head:])
		clear(b.queue[rest:])
		b.queue, b.head = b.queue[:rest], 0
	}
	b.notFull.Broadcast()
	return batch, true
}

func (b *batcher[J]) work() {
	batch := make([]J, 0, b.maxBatch)
	for {
		var ok bool
		if batch, ok = b.take(batch); !ok {
			return
		}
		b.write(batch)
		clear(batch) // let the jobs' memory go while the worker waits
	}
}
