package scylla

import (
	"sync"

	sb "github.com/switchboard-sms/switchboard"
)

// recentMessages spares Record its read of a message this process wrote
// last, in the one stretch of a message's life where no other node writes
// it: from Accept until it is given carrier ids (submitted) or anything
// queues a callback about it. Until then
//
//   - a receipt cannot name it: receipts find messages by carrier id, and
//     it has none yet (a receipt that overtakes its submit is parked, and
//     applied by the Record that indexes the id, which reads);
//   - the receipt-deadline sweep cannot name it: it has no deadline;
//   - no webhook failure can be added to it: no callback about it exists;
//   - only the key's owner writes it, and every write of a key's owner
//     carries its fencing token (0 on a single node). An entry is used
//     only by an update carrying the token it was written with: an owner
//     that lost the key and got it back holds a newer token and reads.
//
// So an entry is made by Accept and carried on only by Records that used
// it, queued no callback about the message and left it without carrier
// ids and not final; any other write, a failed one included, drops it, and
// once dropped it is never made again (what may have happened meanwhile is
// only in the database). A write another process makes to the keyspace
// outside this (two single nodes on one keyspace, which is not supported)
// would not be seen.
//
// Two generations bound it: when the young one fills, it becomes the old
// and the old is dropped, so a message still waiting after some
// thousands of others were accepted is read again.
type recentMessages struct {
	mu         sync.Mutex
	young, old map[string]recent
}

// recent is a message as this process last wrote it.
type recent struct {
	m     *sb.Message // this entry's own copy
	ts    int64       // the write time of its row
	fence int64       // the fencing token it was written with
}

const recentSize = 1 << 14

// cacheable reports whether m is in the stretch of its life an entry may
// cover (see recentMessages): not final, and without carrier ids.
func cacheable(m *sb.Message) bool {
	if m.Status.Final() {
		return false
	}
	for _, id := range m.CarrierIDs {
		if id != "" {
			return false
		}
	}
	return true
}

// put remembers m (a copy) as written at ts with fence, if it may be.
func (c *recentMessages) put(m *sb.Message, ts, fence int64) {
	if !cacheable(m) {
		c.drop(m.ID)
		return
	}
	e := recent{m: m.Clone(), ts: ts, fence: fence}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.old, m.ID)
	if c.young == nil || len(c.young) >= recentSize {
		c.old, c.young = c.young, make(map[string]recent, recentSize/4)
	}
	c.young[m.ID] = e
}

// take removes and returns the entry of id if it was written with fence.
// The caller owns the message it returns; until it puts it back, a Record
// of the message reads it from the database.
func (c *recentMessages) take(id string, fence int64) (recent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.young[id]
	if !ok {
		e, ok = c.old[id]
	}
	delete(c.young, id)
	delete(c.old, id)
	return e, ok && e.fence == fence
}

// drop forgets the entries of ids.
func (c *recentMessages) drop(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.young, id)
		delete(c.old, id)
	}
}
