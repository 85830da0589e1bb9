package callback

import "sync"

// boundedMap is a map from strings, safe for concurrent use, that holds at
// most max entries: when full it is emptied and fills again with the keys
// in use. The client's memories (the URLs that passed the policy, the HMAC
// states per secret) are such maps: a handful of keys carry nearly all the
// traffic, so an occasional emptying costs little and no entry lingers.
type boundedMap[V any] struct {
	max int
	mu  sync.RWMutex
	m   map[string]V
}

func newBoundedMap[V any](max int) *boundedMap[V] {
	return &boundedMap[V]{max: max, m: make(map[string]V)}
}

func (b *boundedMap[V]) get(k string) (V, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.m[k]
	return v, ok
}

// add stores v under k unless k holds a value already, and returns the
// value k holds. The map keeps k: pass a string of its own, not a slice of
// a larger one.
func (b *boundedMap[V]) add(k string, v V) V {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.m[k]; ok {
		return old
	}
	if len(b.m) >= b.max {
		clear(b.m)
	}
	b.m[k] = v
	return v
}
