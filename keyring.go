package switchboard

// KeyRing finds API keys by their bearer secret. It is built once from
// configuration and only read afterwards, so it needs no lock.
type KeyRing struct {
	byHash map[[32]byte]*Key
	byID   map[string]*Key
}

// NewKeyRing indexes keys by secret hash and by id.
func NewKeyRing(keys []*Key) *KeyRing {
	r := &KeyRing{byHash: make(map[[32]byte]*Key, len(keys)), byID: make(map[string]*Key, len(keys))}
	for _, k := range keys {
		r.byHash[k.SecretHash] = k
		r.byID[k.ID] = k
	}
	return r
}

// Authenticate returns the key whose secret this is. The map is indexed
// by SHA-256 of the secret, so its timing reveals nothing about any secret;
// the final comparison is constant-time all the same.
func (r *KeyRing) Authenticate(secret string) (*Key, bool) {
	k, ok := r.byHash[HashSecret(secret)]
	if !ok || !k.Matches(secret) {
		return nil, false
	}
	return k, true
}

// Key returns a key by id.
func (r *KeyRing) Key(id string) (*Key, bool) {
	k, ok := r.byID[id]
	return k, ok
}

// Keys returns every key, in no particular order.
func (r *KeyRing) Keys() []*Key {
	out := make([]*Key, 0, len(r.byID))
	for _, k := range r.byID {
		out = append(out, k)
	}
	return out
}
