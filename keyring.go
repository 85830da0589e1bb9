package switchboard

import (
	"sync"
	"sync/atomic"
	"time"
)

// KeyRing finds API keys by their bearer secret, id or number. Keys can be
// added, changed and revoked while it is read: each change builds a new
// index and swaps it in (copy on write), so reads take no lock and see one
// consistent set of keys, and a change is seen by every read that starts
// after it returned.
type KeyRing struct {
	idx atomic.Pointer[keyIndex]
	mu  sync.Mutex // serialises writers
	// Now is the clock secrets' overlaps are judged by; default time.Now.
	Now func() time.Time
}

// keyIndex is one immutable version of the ring.
type keyIndex struct {
	byHash   map[[32]byte]*Key // current and previous secrets
	byID     map[string]*Key
	byNumber map[string]*Key
	all      []*Key
}

// NewKeyRing indexes keys by secret hash, by id and by number.
func NewKeyRing(keys []*Key) *KeyRing {
	r := &KeyRing{}
	r.idx.Store(newKeyIndex(keys))
	return r
}

func newKeyIndex(keys []*Key) *keyIndex {
	x := &keyIndex{byHash: make(map[[32]byte]*Key, len(keys)), byID: make(map[string]*Key, len(keys)),
		byNumber: make(map[string]*Key), all: keys}
	for _, k := range keys {
		if k.PreviousSecretHash != [32]byte{} {
			x.byHash[k.PreviousSecretHash] = k
		}
		x.byID[k.ID] = k
		for _, n := range k.Numbers {
			x.byNumber[NumberDigits(n)] = k
		}
	}
	// Current secrets win over previous ones that collide with them.
	for _, k := range keys {
		x.byHash[k.SecretHash] = k
	}
	return x
}

// Replace makes keys the ring's keys, in this order.
func (r *KeyRing) Replace(keys []*Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idx.Store(newKeyIndex(append([]*Key(nil), keys...)))
}

// Put adds k, or replaces the key with its id (keeping its place in All).
func (r *KeyRing) Put(k *Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.idx.Load().all
	keys := make([]*Key, 0, len(old)+1)
	replaced := false
	for _, o := range old {
		if o.ID == k.ID {
			o, replaced = k, true
		}
		keys = append(keys, o)
	}
	if !replaced {
		keys = append(keys, k)
	}
	r.idx.Store(newKeyIndex(keys))
}

func (r *KeyRing) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// All returns every key, in configuration order. The caller must not
// change the slice.
func (r *KeyRing) All() []*Key { return r.idx.Load().all }

// ByNumber returns the key that owns a phone number (an inbound message's
// destination), however the carrier wrote it: "+447700900123",
// "447700900123" and "00447700900123" are one number.
func (r *KeyRing) ByNumber(number string) (*Key, bool) {
	k, ok := r.idx.Load().byNumber[NumberDigits(number)]
	return k, ok
}

// NumberDigits reduces a phone number to its international digits: no
// "+", no "00" international prefix, no spaces or punctuation.
func NumberDigits(number string) string {
	b := make([]byte, 0, len(number))
	for i := 0; i < len(number); i++ {
		if c := number[i]; c >= '0' && c <= '9' {
			b = append(b, c)
		}
	}
	if len(b) > 2 && b[0] == '0' && b[1] == '0' {
		b = b[2:]
	}
	return string(b)
}

// Authenticate returns the key whose secret this is: its current secret,
// or its previous one while a rotation's overlap lasts; never a revoked
// key. The map is indexed by SHA-256 of the secret, so its timing reveals
// nothing about any secret; the final comparison is constant-time all the
// same.
func (r *KeyRing) Authenticate(secret string) (*Key, bool) {
	h := HashSecret(secret) // once: it finds the key and is compared with it
	k, ok := r.idx.Load().byHash[h]
	if !ok || !k.matchesHashAt(h, r.now()) {
		return nil, false
	}
	return k, true
}

// Key returns a key by id, revoked ones included.
func (r *KeyRing) Key(id string) (*Key, bool) {
	k, ok := r.idx.Load().byID[id]
	return k, ok
}

// Keys returns every key, in no particular order.
func (r *KeyRing) Keys() []*Key {
	x := r.idx.Load()
	out := make([]*Key, 0, len(x.byID))
	for _, k := range x.byID {
		out = append(out, k)
	}
	return out
}
