package scylla

import (
	"context"
	"fmt"
	"sync"
)

// idChecks coalesces the checks that new message IDs are unused
// (message_ids) of concurrent calls: one query at a time per slice of the
// table, each for every ID asked about while the one before ran. One API
// request is one Accept of one message; under load, hundreds of them share
// a handful of queries instead of making one each.
type idChecks struct {
	s      *Store
	mu     sync.Mutex
	slices map[string]*sliceCheck
}

// sliceCheck is one slice's queue: the batch gathering IDs while a query
// runs.
type sliceCheck struct {
	next *idBatch
}

// idBatch is the IDs of one query and its outcome.
type idBatch struct {
	ids   []string
	found map[string]bool
	err   error
	done  chan struct{}
}

// existing returns which of ids have a message_ids row.
func (c *idChecks) existing(ctx context.Context, ids []string) ([]string, error) {
	bySlice := map[string][]string{}
	for _, id := range ids {
		bySlice[sliceOf(id)] = append(bySlice[sliceOf(id)], id)
	}
	var found []string
	for slice, ids := range bySlice {
		b := c.join(slice, ids)
		select {
		case <-b.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if b.err != nil {
			return nil, fmt.Errorf("check message IDs: %w", b.err)
		}
		for _, id := range ids {
			if b.found[id] {
				found = append(found, id)
			}
		}
	}
	return found, nil
}

// join adds ids to the slice's next query, starting its queries if none
// runs.
func (c *idChecks) join(slice string, ids []string) *idBatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slices == nil {
		c.slices = map[string]*sliceCheck{}
	}
	sc, running := c.slices[slice]
	if !running {
		sc = &sliceCheck{}
		c.slices[slice] = sc
	}
	if sc.next == nil {
		sc.next = &idBatch{done: make(chan struct{})}
	}
	b := sc.next
	b.ids = append(b.ids, ids...)
	if !running {
		drive := func(ctx context.Context) { c.drive(ctx, slice, sc) }
		if !c.s.background(drive) {
			go drive(context.Background()) // closing: the session's close ends it
		}
	}
	return b
}

// drive runs the slice's queries until no IDs wait.
func (c *idChecks) drive(ctx context.Context, slice string, sc *sliceCheck) {
	for {
		c.mu.Lock()
		b := sc.next
		sc.next = nil
		if b == nil {
			delete(c.slices, slice)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		b.found, b.err = c.query(ctx, slice, b.ids)
		close(b.done)
	}
}

// query reads which of ids (of one slice) have a row, a hundred at most a
// query.
func (c *idChecks) query(ctx context.Context, slice string, ids []string) (map[string]bool, error) {
	session, err := c.s.sess()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*c.s.opts.Timeout)
	defer cancel()
	ids = sortedUnique(ids)
	found := map[string]bool{}
	for len(ids) > 0 {
		n := min(len(ids), maxIn)
		iter := session.Query(c.s.cql(`SELECT id FROM %s.message_ids WHERE slice = ? AND id IN ?`), slice, ids[:n]).
			WithContext(ctx).Consistency(c.s.opts.readConsistency()).Iter()
		var id string
		for iter.Scan(&id) {
			found[id] = true
		}
		if err := iter.Close(); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return found, nil
}
