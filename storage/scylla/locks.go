package scylla

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// stripedLocks serializes the read-modify-writes of one message in this
// process (Record, FinishCallbacks): a message's ID picks one of the
// mutexes. Writers on other nodes are not covered; see the package
// documentation.
type stripedLocks struct{ m [1024]sync.Mutex }

// lock locks the stripes of ids in a fixed order (so two calls cannot
// deadlock) and returns the unlock.
func (l *stripedLocks) lock(ids []string) func() {
	stripes := make([]int, 0, len(ids))
	for _, id := range ids {
		h := fnv.New32a()
		h.Write([]byte(id))
		stripes = append(stripes, int(h.Sum32()%uint32(len(l.m))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		l.m[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			l.m[i].Unlock()
		}
	}
}

// place is where a message's row is: its key and day (its bucket comes
// from its ID).
type place struct{ key, day string }

// placeCache remembers the places of recent messages, which never change,
// so a Record on the node that accepted them skips the message_ids read.
// Two generations bound it: when the young one fills, it becomes the old.
type placeCache struct {
	mu         sync.Mutex
	young, old map[string]place
}

const placeCacheSize = 1 << 17

func (c *placeCache) get(id string) (place, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.young[id]; ok {
		return p, true
	}
	p, ok := c.old[id]
	return p, ok
}

func (c *placeCache) put(id string, p place) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.young == nil || len(c.young) >= placeCacheSize {
		c.old, c.young = c.young, make(map[string]place, placeCacheSize/4)
	}
	c.young[id] = p
}

// claims are the message IDs and idempotency keys of writes in flight in
// this process: a second write of one is refused (ECONFLICT) while the
// first is out, so two racing calls in one process cannot both pass the
// checks against the database.
type claims struct {
	mu   sync.Mutex
	held map[string]struct{}
}

// claim takes every name or none; ECONFLICT names the first one held.
func (c *claims) claim(names []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = make(map[string]struct{})
	}
	for i, n := range names {
		if _, ok := c.held[n]; ok || slices.Contains(names[:i], n) {
			return sb.Errorf(sb.ECONFLICT, "%s is being written by another request", n)
		}
	}
	for _, n := range names {
		c.held[n] = struct{}{}
	}
	return nil
}

func (c *claims) release(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		delete(c.held, n)
	}
}

// doomed holds the undoing of writes that failed part way: an Accept
// whose outcome is unknown is answered EUNAVAILABLE, so its rows must not
// stay. Each undo deletes what the write may have stored, with a later
// write time, and is retried until it lands (the health prober runs
// repair). Meanwhile reads skip the messages named.
type doomed struct {
	mu   sync.Mutex
	ids  map[string]int // message ID → undos waiting that name it
	sets []*undo
}

// undoLater queues u and wakes the prober, which runs it.
func (s *Store) undoLater(u *undo) {
	s.doomed.add(u)
	s.health.kick()
}

// undo is the deletion of one failed write.
type undo struct {
	ids   []string // messages the write stored
	stmts []stmt   // plain deletes, run as they are
	cas   []stmt   // conditional deletes (of idempotency claims)
}

func (d *doomed) add(u *undo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = make(map[string]int)
	}
	for _, id := range u.ids {
		d.ids[id]++
	}
	d.sets = append(d.sets, u)
}

// waiting reports whether undos wait.
func (d *doomed) waiting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sets) > 0
}

// has reports whether id's write is being undone.
func (d *doomed) has(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ids[id] > 0
}

// repair runs the waiting undos at consistency cl; each that lands is
// dropped.
func (d *doomed) repair(ctx context.Context, session *gocql.Session, cl, serial gocql.Consistency) error {
	d.mu.Lock()
	sets := slices.Clone(d.sets)
	d.mu.Unlock()
	for _, u := range sets {
		if err := u.run(ctx, session, cl, serial); err != nil {
			return fmt.Errorf("undo a failed write: %w", err)
		}
		d.mu.Lock()
		for _, id := range u.ids {
			if d.ids[id]--; d.ids[id] <= 0 {
				delete(d.ids, id)
			}
		}
		d.sets = slices.DeleteFunc(d.sets, func(v *undo) bool { return v == u })
		d.mu.Unlock()
	}
	return nil
}

func (u *undo) run(ctx context.Context, session *gocql.Session, cl, serial gocql.Consistency) error {
	for _, st := range u.stmts {
		if err := session.Query(st.cql, st.args...).WithContext(ctx).Consistency(cl).Idempotent(true).Exec(); err != nil {
			return err
		}
	}
	for _, st := range u.cas {
		if _, err := session.Query(st.cql, st.args...).WithContext(ctx).Consistency(cl).SerialConsistency(serial).
			MapScanCAS(map[string]any{}); err != nil {
			return err
		}
	}
	return nil
}
