package actors

import "time"

// dueQueue holds items that each wait until a time and hands back those
// whose time has come, earliest first. It is a binary heap with each item's
// position kept in a map, so adding, moving and removing an item cost
// O(log n), and a wake-up costs only the items that are due. Actors with
// thousands of waiting items (a key's destinations while no carrier is up,
// an endpoint's retries) would otherwise scan them all on every wake-up.
type dueQueue[T comparable] struct {
	heap []dueItem[T]
	pos  map[T]int
}

type dueItem[T comparable] struct {
	item T
	at   time.Time
}

func newDueQueue[T comparable]() *dueQueue[T] {
	return &dueQueue[T]{pos: make(map[T]int)}
}

func (q *dueQueue[T]) len() int { return len(q.heap) }

// set files x under at, or moves it there if it is already filed.
func (q *dueQueue[T]) set(x T, at time.Time) {
	if i, ok := q.pos[x]; ok {
		q.heap[i].at = at
		q.fix(i)
		return
	}
	q.heap = append(q.heap, dueItem[T]{x, at})
	q.pos[x] = len(q.heap) - 1
	q.up(len(q.heap) - 1)
}

// remove takes x out if it is filed.
func (q *dueQueue[T]) remove(x T) {
	i, ok := q.pos[x]
	if !ok {
		return
	}
	last := len(q.heap) - 1
	q.swap(i, last)
	q.heap[last] = dueItem[T]{}
	q.heap = q.heap[:last]
	delete(q.pos, x)
	if i < last {
		q.fix(i)
	}
}

// earliest returns the first time filed, or the zero time if none is.
func (q *dueQueue[T]) earliest() time.Time {
	if len(q.heap) == 0 {
		return time.Time{}
	}
	return q.heap[0].at
}

// popDue takes out every item due at now (its time not after now) and
// calls f with each, earliest first. f may file items again, but only
// after now: one filed at or before now would come straight back.
func (q *dueQueue[T]) popDue(now time.Time, f func(T)) {
	for len(q.heap) > 0 && !q.heap[0].at.After(now) {
		x := q.heap[0].item
		q.remove(x)
		f(x)
	}
}

func (q *dueQueue[T]) fix(i int) {
	if !q.up(i) {
		q.down(i)
	}
}

// up moves the item at i towards the root while it is earlier than its
// parent and reports whether it moved.
func (q *dueQueue[T]) up(i int) bool {
	start := i
	for i > 0 {
		parent := (i - 1) / 2
		if !q.heap[i].at.Before(q.heap[parent].at) {
			break
		}
		q.swap(i, parent)
		i = parent
	}
	return i != start
}

func (q *dueQueue[T]) down(i int) {
	n := len(q.heap)
	for {
		first := i
		for _, child := range [2]int{2*i + 1, 2*i + 2} {
			if child < n && q.heap[child].at.Before(q.heap[first].at) {
				first = child
			}
		}
		if first == i {
			return
		}
		q.swap(i, first)
		i = first
	}
}

func (q *dueQueue[T]) swap(i, j int) {
	q.heap[i], q.heap[j] = q.heap[j], q.heap[i]
	q.pos[q.heap[i].item] = i
	q.pos[q.heap[j].item] = j
}
